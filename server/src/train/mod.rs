//! Training: datasets, models, layer-rate resolution against a real model, and the loop.

pub mod checkpoint;
pub mod data;
pub mod lr_find;
pub mod model;
pub mod optim;
pub mod targets;
pub mod threads;
pub mod worker;

use tch::Device;

use crate::{
    domain::Leakage,
    error::{Result, StrataError},
    spec::{
        rates::{resolve_layer_rates, ResolvedParam},
        DeviceSpec, RunSpec, Task,
    },
};

/// The libtorch device for a run, or an error saying which devices exist.
pub fn resolve_device(spec: DeviceSpec) -> Result<Device> {
    let gpus = tch::Cuda::device_count().max(0) as usize;
    match spec {
        DeviceSpec::Cpu => Ok(Device::Cpu),
        DeviceSpec::Auto if gpus > 0 => Ok(Device::Cuda(0)),
        DeviceSpec::Auto => Ok(Device::Cpu),
        DeviceSpec::Cuda(n) if n < gpus => Ok(Device::Cuda(n)),
        DeviceSpec::Cuda(n) => Err(StrataError::invalid(
            "device",
            format!(
                "cuda:{n} is not available; this daemon sees {}",
                available_devices().join(", ")
            ),
        )),
    }
}

/// Every device a run can use: `cpu`, then `cuda:N` for each visible GPU.
pub fn available_devices() -> Vec<String> {
    let gpus = tch::Cuda::device_count().max(0);
    std::iter::once("cpu".to_string())
        .chain((0..gpus).map(|n| format!("cuda:{n}")))
        .collect()
}

pub fn device_label(device: Device) -> String {
    match device {
        Device::Cuda(n) => format!("cuda:{n}"),
        _ => "cpu".to_string(),
    }
}

/// A run checked against its real data and model, ready to be stored and queued.
pub struct PreparedRun {
    /// The spec, its config recording the task and the split the data gave.
    pub spec: RunSpec,
    pub resolved: Vec<ResolvedParam>,
    pub task: Task,
    /// A CSV's label column and why the task is what it is.
    pub label: Option<data::csv::LabelChoice>,
    /// Why the task is what it is.
    pub task_reason: String,
    /// What the leakage check found on the run's split (file datasets only).
    pub leakage: Option<Leakage>,
}

/// Reads what the dataset looks like (rejecting a bad file before anything is stored), then
/// resolves the layer rates against the parameters the model really has for that data. Blocking:
/// it reads files and builds the model once on the CPU.
/// The most memory a training step's activations may take (float32 values, counted three times:
/// the values, their gradients and the optimizer's temporaries). A run asking for more is refused
/// before it is stored, instead of failing, or meeting the OOM killer, once it trains.
const MAX_ACTIVATION_BYTES: i64 = 8 << 30;

pub fn prepare_run(mut spec: RunSpec) -> Result<PreparedRun> {
    let shape = data::probe_dataset(&spec.dataset, spec.seed)?;
    let per_sample = spec
        .model
        .activations_per_sample(&shape.sample, shape.task.outputs());
    if let Some(per_sample) = per_sample {
        let bytes = per_sample
            .saturating_mul(i64::from(spec.batch_size))
            .saturating_mul(4 * 3);
        if bytes > MAX_ACTIVATION_BYTES {
            return Err(StrataError::invalid(
                "batch_size",
                format!(
                    "a batch of {} makes this model hold about {} GiB of activations; at most {} GiB are allowed — lower batch_size or the layer widths",
                    spec.batch_size,
                    bytes >> 30,
                    MAX_ACTIVATION_BYTES >> 30
                ),
            ));
        }
    }
    let params = model::describe_parameters(&spec.model, &shape.sample, shape.task.outputs())?;
    let resolved = resolve_layer_rates(&params, &spec.rates)?;
    let task_reason = match (&shape.label, spec.dataset.task, &spec.dataset.source) {
        (Some(choice), ..) => choice.reason.clone(),
        (None, Some(kind), _) => format!("task {} as asked", kind.label()),
        (None, None, crate::spec::DataSource::Synthetic(_)) => {
            format!("a synthetic {} set", shape.task.kind().label())
        }
        (None, None, _) => "detected: IDX labels are classes".to_string(),
    };
    spec.record_data(shape.task, shape.val_fraction);
    Ok(PreparedRun {
        spec,
        resolved,
        task: shape.task,
        label: shape.label,
        task_reason,
        leakage: shape.leakage,
    })
}
