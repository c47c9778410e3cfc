//! A run's configuration as the user gave it, with the daemon's defaults filled in once it is
//! validated (see [`crate::spec::RunSpec`], which parses it). Specs stay the strings the CLI
//! takes, so every client shares one definition of them.

/// Every setting of a run. `None` and empty strings take the daemon's defaults; a stored run has
/// them filled in.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RunConfig {
    pub dataset: String,
    pub samples: Option<u32>,
    pub noise: Option<f64>,
    pub classes: Option<u32>,
    pub val_fraction: Option<f64>,
    pub model: String,
    pub optimizer: String,
    pub lr: Option<f64>,
    pub momentum: Option<f64>,
    pub weight_decay: Option<f64>,
    pub layer_lr: Vec<String>,
    pub freeze: Vec<String>,
    pub lr_decay: Option<f64>,
    pub lr_slice: String,
    pub schedule: String,
    pub epochs: Option<u32>,
    pub batch_size: Option<u32>,
    pub seed: Option<u64>,
    pub device: String,
    pub progress_events_per_epoch: Option<u32>,
    pub label: String,
    pub val_dataset: String,
    pub task: String,
    pub init_from: String,
    pub clip_grad_norm: Option<f64>,
    /// Drop exact repeats of a row (features and label) before the split, and validation-file
    /// rows that repeat a training row.
    pub dedupe: bool,
    /// Train only on a remote worker with this label or name (empty: anywhere it can train).
    pub on_worker: String,
}
