//! A run's configuration, validated: every field of the protocol's `RunConfig` parsed into a typed
//! spec, with defaults filled in and every bad value named.

pub mod dataset;
pub mod glob;
mod init_from;
mod labels;
mod limits;
pub mod model;
pub mod paths;
pub mod rates;
mod run_spec;
pub mod schedule;
mod shown;

use crate::domain::RunConfig;

pub use dataset::{
    DataSource, DatasetSpec, SyntheticKind, SyntheticSpec, Task, TaskKind, Validation, DATASETS,
};
pub use init_from::InitSource;
pub use labels::{
    check_shown_text, invisible, printable_reason, validate_labels, validate_sweep_trial,
    validate_worker_label, MAX_NAME_CHARS, MAX_WORKER_LABEL_CHARS,
};
pub use limits::MAX_PARAMETERS;
pub(crate) use limits::{check_length, finite_in, in_range};
pub use model::ModelSpec;
use rates::RateSpec;
use schedule::Schedule;
pub use shown::{shown, shown_number};

pub const DEFAULT_SAMPLES: u32 = 1000;
pub const DEFAULT_CLASSES: u32 = 3;
pub const DEFAULT_VAL_FRACTION: f64 = 0.2;
pub const DEFAULT_MODEL: &str = "mlp:64,64";
pub const DEFAULT_OPTIMIZER: &str = "adam";
pub const DEFAULT_LR: f64 = 1e-3;
pub const DEFAULT_SGD_MOMENTUM: f64 = 0.9;
pub const DEFAULT_SCHEDULE: &str = "constant";
pub const DEFAULT_EPOCHS: u32 = 10;
pub const DEFAULT_BATCH_SIZE: u32 = 32;
pub const DEFAULT_DEVICE: &str = "cpu";
pub const DEFAULT_PROGRESS_EVENTS_PER_EPOCH: u32 = 20;

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum OptimizerKind {
    Sgd { momentum: f64 },
    Adam,
    AdamW,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct OptimizerSpec {
    pub kind: OptimizerKind,
    pub weight_decay: f64,
    /// Largest total gradient L2 norm per step; larger gradients are scaled down to it.
    pub clip_grad_norm: Option<f64>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceSpec {
    Cpu,
    Cuda(usize),
    /// The first GPU if there is one, else the CPU.
    Auto,
}

/// A validated run configuration (parsed by `RunSpec::try_from(RunConfig)`). `config` is the
/// request's config with every default filled in, as stored and reported back.
#[derive(Clone, Debug)]
pub struct RunSpec {
    pub config: RunConfig,
    pub dataset: DatasetSpec,
    pub model: ModelSpec,
    pub optimizer: OptimizerSpec,
    pub rates: RateSpec,
    pub schedule: Schedule,
    pub epochs: u32,
    pub batch_size: u32,
    pub seed: u64,
    pub device: DeviceSpec,
    pub progress_events_per_epoch: u32,
    /// Start from another run's checkpoint (fine-tuning).
    pub init_from: Option<InitSource>,
    /// Train only on a remote worker with this label or name.
    pub on_worker: Option<String>,
}

impl RunSpec {
    /// Records what reading the dataset found: the task (detected or confirmed) and the split
    /// fraction actually used (`None` when validation comes from a file), so the stored config
    /// says how the run was really set up.
    pub fn record_data(&mut self, task: Task, val_fraction: Option<f64>) {
        self.dataset.task = Some(task.kind());
        self.config.task = task.kind().label().to_string();
        self.config.val_fraction = val_fraction;
    }
}

#[cfg(test)]
mod tests;
