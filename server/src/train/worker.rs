//! The training loop of one run, on its own thread.
//!
//! The hot loop stays on the tensor side: the epoch's loss is summed into a tensor, batch losses
//! and gradient norms are read back (a device sync) only on the sampled steps that feed live
//! progress, and nothing is stored or formatted per batch.

use std::{
    path::PathBuf,
    sync::{
        atomic::{AtomicU8, Ordering},
        Mutex,
    },
    time::Instant,
};

use strata_proto::{watch_event::Event, BatchProgress, EpochRecord, GroupEpochStats, WatchEvent};
use tch::{COptimizer, Device, Kind, Reduction, TchError, Tensor};
use tokio::sync::broadcast;

use super::{
    data::{build_dataset, Dataset, SeededRng},
    model::Model,
};
use crate::{
    error::StrataError,
    spec::{rates::ResolvedParam, OptimizerKind, RunSpec, Task},
    store::{RunId, Store},
};

/// Validation runs in chunks of this many rows, so a large validation set never needs one huge
/// activation tensor.
const VALIDATION_CHUNK_ROWS: i64 = 8192;
const CHECKPOINT_FILE: &str = "model.safetensors";
const CHECKPOINT_TMP_FILE: &str = "model.tmp.safetensors";

/// libtorch's RNG is global: seeding and initialising a model must not interleave with another
/// run's, or seeded runs would not be reproducible.
static MODEL_INIT_LOCK: Mutex<()> = Mutex::new(());

/// What asked a run to stop early.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum StopRequest {
    None = 0,
    Cancel = 1,
    /// The daemon is shutting down.
    Interrupt = 2,
}

impl StopRequest {
    pub fn load(flag: &AtomicU8) -> StopRequest {
        match flag.load(Ordering::Acquire) {
            1 => StopRequest::Cancel,
            2 => StopRequest::Interrupt,
            _ => StopRequest::None,
        }
    }
}

/// How a run ended.
#[derive(Debug)]
pub enum Outcome {
    Completed,
    Stopped(StopRequest),
    Diverged(String),
    Failed(String),
}

enum Halt {
    Stopped(StopRequest),
    Diverged(String),
    Failed(String),
}

impl From<TchError> for Halt {
    fn from(err: TchError) -> Self {
        Halt::Failed(format!("libtorch: {err}"))
    }
}

impl From<StrataError> for Halt {
    fn from(err: StrataError) -> Self {
        Halt::Failed(err.to_string())
    }
}

/// Everything the loop needs from the daemon.
pub struct TrainJob<'a> {
    pub run_id: RunId,
    pub spec: &'a RunSpec,
    pub resolved: &'a [ResolvedParam],
    pub device: Device,
    pub store: &'a Store,
    pub events: &'a broadcast::Sender<WatchEvent>,
    pub stop: &'a AtomicU8,
    pub checkpoint_dir: PathBuf,
}

/// Trains the run to its end. Never panics on libtorch errors: they fail the run.
pub fn train(job: &TrainJob<'_>) -> Outcome {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run_epochs(job))) {
        Ok(Ok(())) => Outcome::Completed,
        Ok(Err(Halt::Stopped(request))) => Outcome::Stopped(request),
        Ok(Err(Halt::Diverged(reason))) => Outcome::Diverged(reason),
        Ok(Err(Halt::Failed(reason))) => Outcome::Failed(reason),
        Err(panic) => {
            let what = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "unknown panic".into());
            Outcome::Failed(format!("training failed: {what}"))
        }
    }
}

/// A layer group's parameters, by index into the model's parameter list.
struct Group {
    name: String,
    members: Vec<usize>,
}

fn groups_of(resolved: &[ResolvedParam]) -> Vec<Group> {
    let mut groups: Vec<Group> = Vec::new();
    for (i, p) in resolved.iter().enumerate() {
        match groups.iter_mut().find(|g| g.name == p.info.group) {
            Some(group) => group.members.push(i),
            None => groups.push(Group {
                name: p.info.group.clone(),
                members: vec![i],
            }),
        }
    }
    groups
}

fn build_optimizer(
    job: &TrainJob<'_>,
    params: &[(String, Tensor)],
) -> Result<COptimizer, TchError> {
    let spec = job.spec.optimizer;
    let first_lr = job.resolved.first().map_or(1e-3, |p| p.lr);
    let mut optimizer = match spec.kind {
        OptimizerKind::Sgd { momentum } => {
            COptimizer::sgd(first_lr, momentum, 0.0, spec.weight_decay, false)?
        }
        OptimizerKind::Adam => {
            COptimizer::adam(first_lr, 0.9, 0.999, spec.weight_decay, 1e-8, false)?
        }
        OptimizerKind::AdamW => {
            COptimizer::adamw(first_lr, 0.9, 0.999, spec.weight_decay, 1e-8, false)?
        }
    };
    // One optimizer group per parameter: every parameter gets exactly its resolved rate.
    for (index, (_, tensor)) in params.iter().enumerate() {
        optimizer.add_parameters(tensor, index)?;
    }
    for (index, p) in job.resolved.iter().enumerate() {
        optimizer.set_learning_rate_group(index, p.lr)?;
    }
    Ok(optimizer)
}

fn loss_of(task: Task, output: &Tensor, target: &Tensor) -> Result<Tensor, TchError> {
    match task {
        Task::Classification { .. } => output.f_log_softmax(-1, Kind::Float)?.f_nll_loss(
            target,
            None::<Tensor>,
            Reduction::Mean,
            -100,
        ),
        Task::Regression => output.f_mse_loss(target, Reduction::Mean),
    }
}

fn squared_norm(tensors: impl Iterator<Item = Tensor>) -> Result<f64, TchError> {
    let mut total = 0.0;
    for t in tensors {
        total += t.f_square()?.f_sum(Kind::Double)?.f_double_value(&[])?;
    }
    Ok(total)
}

/// Validation loss and accuracy (classification) or R² (regression), without gradients.
fn validate(model: &Model, data: &Dataset) -> Result<(f64, f64), TchError> {
    tch::no_grad(|| {
        let rows = data.val_x.size()[0];
        let mut loss_sum = 0.0;
        let mut correct = 0.0;
        let mut squared_error = 0.0;
        let mut start = 0;
        while start < rows {
            let len = VALIDATION_CHUNK_ROWS.min(rows - start);
            let x = data.val_x.f_narrow(0, start, len)?;
            let y = data.val_y.f_narrow(0, start, len)?;
            let output = model.forward(&x, false)?;
            loss_sum += loss_of(data.task, &output, &y)?.f_double_value(&[])? * len as f64;
            match data.task {
                Task::Classification { .. } => {
                    correct += output
                        .f_argmax(-1, false)?
                        .f_eq_tensor(&y)?
                        .f_sum(Kind::Double)?
                        .f_double_value(&[])?;
                }
                Task::Regression => {
                    squared_error += output
                        .f_sub(&y)?
                        .f_square()?
                        .f_sum(Kind::Double)?
                        .f_double_value(&[])?;
                }
            }
            start += len;
        }
        let metric = match data.task {
            Task::Classification { .. } => correct / rows as f64,
            Task::Regression => {
                let variance = data
                    .val_y
                    .f_sub(&data.val_y.f_mean(Kind::Float)?)?
                    .f_square()?
                    .f_sum(Kind::Double)?
                    .f_double_value(&[])?;
                if variance > 0.0 {
                    1.0 - squared_error / variance
                } else {
                    0.0
                }
            }
        };
        Ok((loss_sum / rows as f64, metric))
    })
}

fn send(events: &broadcast::Sender<WatchEvent>, event: Event) {
    // No watcher is not an error: events are a live view, the store is the record.
    let _ = events.send(WatchEvent { event: Some(event) });
}

fn check_stop(job: &TrainJob<'_>) -> Result<(), Halt> {
    match StopRequest::load(job.stop) {
        StopRequest::None => Ok(()),
        request => Err(Halt::Stopped(request)),
    }
}

fn save_checkpoint(model: &Model, dir: &PathBuf) -> Result<(), Halt> {
    std::fs::create_dir_all(dir)
        .map_err(|e| Halt::Failed(format!("cannot create {}: {e}", dir.display())))?;
    let tmp = dir.join(CHECKPOINT_TMP_FILE);
    model.save(&tmp)?;
    // Write then rename: a crash leaves the previous checkpoint or the new one, never half of one.
    std::fs::rename(&tmp, dir.join(CHECKPOINT_FILE))
        .map_err(|e| Halt::Failed(format!("cannot write checkpoint in {}: {e}", dir.display())))
}

fn run_epochs(job: &TrainJob<'_>) -> Result<(), Halt> {
    let spec = job.spec;
    let data = build_dataset(&spec.dataset, spec.seed, job.device)?;
    let task = data.task;
    let model = {
        let _guard = MODEL_INIT_LOCK
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        tch::manual_seed(spec.seed as i64);
        Model::for_run(
            &spec.model,
            &data.sample_shape(),
            task.outputs(),
            job.resolved,
            job.device,
        )?
    };
    let params = model.parameters();
    let optimizer = build_optimizer(job, params)?;
    let groups = groups_of(job.resolved);

    let train_rows = data.train_len();
    let batch_size = i64::from(spec.batch_size).min(train_rows);
    let steps_per_epoch = ((train_rows + batch_size - 1) / batch_size) as u64;
    let total_steps = steps_per_epoch * u64::from(spec.epochs);
    let sample_every = match spec.progress_events_per_epoch {
        0 => u64::MAX,
        n => (steps_per_epoch / u64::from(n)).max(1),
    };
    let mut optimizer = optimizer;
    let mut step: u64 = 0;

    for epoch in 1..=spec.epochs {
        check_stop(job)?;
        let started = Instant::now();
        let frozen: Vec<bool> = job
            .resolved
            .iter()
            .map(|p| p.frozen_until.is_frozen_in(epoch))
            .collect();
        for ((_, tensor), &is_frozen) in params.iter().zip(&frozen) {
            // No gradient, hence no update, no momentum and no weight decay for frozen parameters.
            let _ = tensor.f_set_requires_grad(!is_frozen)?;
        }
        let at_start: Vec<Tensor> = params
            .iter()
            .map(|(_, t)| t.f_detach().map(|d| d.copy()))
            .collect::<Result<_, _>>()?;

        let order = Tensor::f_from_slice(
            &SeededRng::new(spec.seed ^ u64::from(epoch).wrapping_mul(0x9E37))
                .permutation(train_rows as usize),
        )?
        .f_to_device(job.device)?;
        let mut loss_sum = Tensor::f_zeros([], (Kind::Double, job.device))?;
        let mut grad_norm_sums = vec![0.0; groups.len()];
        let mut grad_norm_samples = 0u32;
        let mut multiplier = 1.0;

        for batch in 0..steps_per_epoch {
            check_stop(job)?;
            if !spec.schedule.is_constant() {
                multiplier = spec.schedule.multiplier(step, total_steps, steps_per_epoch);
                for (index, p) in job.resolved.iter().enumerate() {
                    optimizer.set_learning_rate_group(index, p.lr * multiplier)?;
                }
            }
            let start = batch as i64 * batch_size;
            let len = batch_size.min(train_rows - start);
            let idx = order.f_narrow(0, start, len)?;
            let x = data.train_x.f_index_select(0, &idx)?;
            let y = data.train_y.f_index_select(0, &idx)?;
            optimizer.zero_grad()?;
            let loss = loss_of(task, &model.forward(&x, true)?, &y)?;
            loss.f_backward()?;
            let sampled = (batch + 1) % sample_every == 0
                || batch + 1 == steps_per_epoch && sample_every != u64::MAX;
            if sampled {
                for (g, group) in groups.iter().enumerate() {
                    let grads = group
                        .members
                        .iter()
                        .map(|&i| params[i].1.grad())
                        .filter(|g| g.defined());
                    grad_norm_sums[g] += squared_norm(grads)?.sqrt();
                }
                grad_norm_samples += 1;
            }
            optimizer.step()?;
            let detached = loss.f_detach()?;
            loss_sum = loss_sum.f_add(&detached.f_mul_scalar(len as f64)?)?;
            if sampled {
                let value = detached.f_double_value(&[])?;
                if !value.is_finite() {
                    return Err(Halt::Diverged(format!(
                        "the training loss became {value} at epoch {epoch}, batch {}",
                        batch + 1
                    )));
                }
                send(
                    job.events,
                    Event::Progress(BatchProgress {
                        epoch,
                        batch: batch as u32 + 1,
                        batches: steps_per_epoch as u32,
                        loss: value,
                    }),
                );
            }
            step += 1;
        }

        let train_loss = loss_sum.f_double_value(&[])? / train_rows as f64;
        let (val_loss, val_metric) = validate(&model, &data)?;
        let mut group_stats = Vec::with_capacity(groups.len());
        for (g, group) in groups.iter().enumerate() {
            let weight_sq =
                squared_norm(group.members.iter().map(|&i| params[i].1.shallow_clone()))?;
            let start_sq =
                squared_norm(group.members.iter().map(|&i| at_start[i].shallow_clone()))?;
            let delta_sq = squared_norm(
                group
                    .members
                    .iter()
                    .map(|&i| params[i].1.f_detach().and_then(|w| w.f_sub(&at_start[i])))
                    .collect::<Result<Vec<_>, _>>()?
                    .into_iter(),
            )?;
            let all_frozen = group.members.iter().all(|&i| frozen[i]);
            // The group's rate is its largest parameter's (the weight's), as the table shows it.
            let main = group
                .members
                .iter()
                .copied()
                .max_by_key(|&i| job.resolved[i].info.shape.iter().product::<i64>())
                .unwrap_or(0);
            group_stats.push(GroupEpochStats {
                name: group.name.clone(),
                lr: if all_frozen {
                    0.0
                } else {
                    job.resolved[main].lr * multiplier
                },
                grad_norm: if grad_norm_samples > 0 {
                    grad_norm_sums[g] / f64::from(grad_norm_samples)
                } else {
                    0.0
                },
                weight_norm: weight_sq.sqrt(),
                update_ratio: if start_sq > 0.0 {
                    (delta_sq / start_sq).sqrt()
                } else {
                    0.0
                },
                frozen: all_frozen,
            });
        }
        let elapsed = started.elapsed().as_secs_f64();
        let record = EpochRecord {
            epoch,
            train_loss,
            val_loss,
            val_accuracy: val_metric,
            duration_ms: elapsed * 1e3,
            samples_per_sec: if elapsed > 0.0 {
                train_rows as f64 / elapsed
            } else {
                0.0
            },
            groups: group_stats,
        };
        // Durable first, then streamed.
        job.store.put_epoch(job.run_id, &record)?;
        save_checkpoint(&model, &job.checkpoint_dir)?;
        send(job.events, Event::Epoch(record));
        if !train_loss.is_finite() || !val_loss.is_finite() {
            return Err(Halt::Diverged(format!(
                "the loss became non-finite in epoch {epoch} (train {train_loss}, validation {val_loss})"
            )));
        }
    }
    Ok(())
}
