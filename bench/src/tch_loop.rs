//! The hand-written tch loop Strata's training is held against: what a Rust user would write
//! without Strata. The same model (PyTorch's `nn.Linear` initialization, layer by layer, weight
//! before bias, after `manual_seed`), libtorch's own Adam with a parameter group per rate, a fresh
//! permutation per epoch, every batch (the last one short), and the validation loss and accuracy
//! after each epoch. No checkpoints, no records: it is the floor.

use std::time::Instant;

use anyhow::Result;
use tch::{
    nn::{self, OptimizerConfig},
    Device, Kind, Tensor,
};

use crate::data::read_raw;
use crate::training::{Case, Trained};

/// `nn.Linear(fan_in, fan_out)` as PyTorch initializes it: `kaiming_uniform_(a=√5)` for the
/// weight (bound computed as torch computes it), uniform in ±1/√fan_in for the bias.
fn linear(path: &nn::Path, fan_in: i64, fan_out: i64) -> (Tensor, Tensor) {
    let gain = (2.0f64 / (1.0 + 5.0)).sqrt();
    let weight_bound = 3f64.sqrt() * (gain / (fan_in as f64).sqrt());
    let bias_bound = 1.0 / (fan_in as f64).sqrt();
    let weight = path.var(
        "weight",
        &[fan_out, fan_in],
        nn::Init::Uniform {
            lo: -weight_bound,
            up: weight_bound,
        },
    );
    let bias = path.var(
        "bias",
        &[fan_out],
        nn::Init::Uniform {
            lo: -bias_bound,
            up: bias_bound,
        },
    );
    (weight, bias)
}

/// CPU time (user + system, every thread) this process has used, in seconds.
fn process_cpu_seconds() -> f64 {
    // SAFETY: getrusage fills the struct it is given; a zeroed rusage is a valid value.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage
    };
    let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 * 1e-6;
    seconds(usage.ru_utime) + seconds(usage.ru_stime)
}

/// Trains `case` with `threads` libtorch threads; timed (wall and CPU) from reading the raw arrays
/// to the last epoch's validation.
pub fn train(case: &Case, threads: usize) -> Result<Trained> {
    tch::set_num_threads(threads as i32);
    let data = &case.data;
    let features = data.features as i64;
    let started = Instant::now();
    let cpu_started = process_cpu_seconds();
    let load = |part| -> Result<(Tensor, Tensor)> {
        let (x, y) = read_raw(part, data.features)?;
        let rows = (y.len() / 8) as i64;
        Ok((
            Tensor::f_from_data_size(&x, &[rows, features], Kind::Float)?,
            Tensor::f_from_data_size(&y, &[rows], Kind::Int64)?,
        ))
    };
    let (train_x, train_y) = load(&data.train)?;
    let (val_x, val_y) = load(&data.val)?;
    let mean = train_x.mean_dim(0, true, Kind::Float);
    let std = train_x.std_dim(0, true, true);
    let std = std.where_scalarother(&std.gt(1e-8), 1.0);
    let train_x = (train_x - &mean) / &std;
    let val_x = (val_x - &mean) / &std;

    tch::manual_seed(case.seed as i64);
    let vs = nn::VarStore::new(Device::Cpu);
    // Group 0: the first layer, at its own rate; group 1: everything else.
    let mut layers = Vec::new();
    let mut fan_in = features;
    for (i, &width) in case.hidden.iter().enumerate() {
        let group = vs.root().set_group(usize::from(i != 0));
        layers.push(linear(&(&group / format!("layer{i}")), fan_in, width));
        fan_in = width;
    }
    let head = linear(
        &(&vs.root().set_group(1) / "head"),
        fan_in,
        data.classes as i64,
    );
    let forward = |x: &Tensor| {
        let hidden = layers
            .iter()
            .fold(x.shallow_clone(), |x, (w, b)| x.linear(w, Some(b)).relu());
        hidden.linear(&head.0, Some(&head.1))
    };
    let mut optimizer = nn::Adam::default().build(&vs, case.lr)?;
    optimizer.set_lr_group(0, case.layer0_lr);
    optimizer.set_lr_group(1, case.lr);

    let rows = train_x.size()[0];
    let batch = i64::from(case.batch_size);
    let (mut val_loss, mut val_accuracy) = (f64::NAN, f64::NAN);
    for _ in 0..case.epochs {
        let order = Tensor::randperm(rows, (Kind::Int64, Device::Cpu));
        let mut loss_sum = Tensor::zeros([], (Kind::Float, Device::Cpu));
        let mut start = 0;
        while start < rows {
            let len = batch.min(rows - start);
            let idx = order.narrow(0, start, len);
            let loss = forward(&train_x.index_select(0, &idx))
                .cross_entropy_for_logits(&train_y.index_select(0, &idx));
            optimizer.backward_step(&loss);
            loss_sum += loss.detach() * len as f64;
            start += len;
        }
        let _train_loss = loss_sum.double_value(&[]) / rows as f64;
        (val_loss, val_accuracy) = tch::no_grad(|| {
            let output = forward(&val_x);
            (
                output.cross_entropy_for_logits(&val_y).double_value(&[]),
                output.accuracy_for_logits(&val_y).double_value(&[]),
            )
        });
    }
    Ok(Trained {
        seconds: started.elapsed().as_secs_f64(),
        cpu_seconds: process_cpu_seconds() - cpu_started,
        val_loss,
        val_accuracy,
    })
}
