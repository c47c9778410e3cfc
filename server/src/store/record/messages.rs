//! The protobuf messages of the record format. Their field tags are what is on the disk: a tag
//! is never renumbered or reused.

use prost::Message;

#[derive(Clone, PartialEq, Message)]
pub struct StoredRun {
    #[prost(string, tag = "1")]
    pub id: String,
    #[prost(string, tag = "2")]
    pub name: String,
    #[prost(string, repeated, tag = "3")]
    pub tags: Vec<String>,
    #[prost(int32, tag = "4")]
    pub status: i32,
    #[prost(string, tag = "5")]
    pub reason: String,
    #[prost(message, optional, tag = "6")]
    pub config: Option<StoredConfig>,
    #[prost(message, repeated, tag = "7")]
    pub parameters: Vec<StoredParameter>,
    #[prost(int64, tag = "8")]
    pub created_at_ms: i64,
    #[prost(int64, tag = "9")]
    pub started_at_ms: i64,
    #[prost(int64, tag = "10")]
    pub finished_at_ms: i64,
    // 11 (epochs_done) and 15 (queue_position): format 1 only, derived, ignored.
    /// `accuracy` or `r2`: format 1's only record of the task; format 2 keeps writing it.
    #[prost(string, tag = "12")]
    pub val_metric: String,
    #[prost(uint64, tag = "13")]
    pub parameter_count: u64,
    #[prost(string, tag = "14")]
    pub device: String,
    #[prost(uint32, tag = "16")]
    pub resumes: u32,
    /// The id of the run's single-rate twin, and of the run a twin is the twin of (empty: none).
    #[prost(string, tag = "21")]
    pub twin: String,
    #[prost(string, tag = "22")]
    pub twin_of: String,
    /// Absent in format 1.
    #[prost(message, optional, tag = "20")]
    pub facts: Option<StoredFacts>,
    /// Present for a run logged from outside (absent: trained by the daemon, as every run
    /// recorded before external runs).
    #[prost(message, optional, tag = "23")]
    pub external: Option<StoredExternal>,
    /// Present for a sweep's trial (absent: not one, as every run recorded before sweeps).
    #[prost(message, optional, tag = "24")]
    pub sweep: Option<StoredSweepTrial>,
}

#[derive(Clone, PartialEq, Message)]
pub struct StoredSweepTrial {
    #[prost(string, tag = "1")]
    pub sweep_id: String,
    #[prost(uint32, tag = "2")]
    pub trial: u32,
    /// Name → value, in the sweep's order.
    #[prost(message, repeated, tag = "3")]
    pub settings: Vec<StoredHyperparameter>,
}

#[derive(Clone, PartialEq, Message)]
pub struct StoredExternal {
    #[prost(message, repeated, tag = "1")]
    pub hyperparameters: Vec<StoredHyperparameter>,
    /// The run has a run folder (its record in `run.pb`, its epochs in `epochs.pb`), as every
    /// external run stored since they got one; absent in records written before, whose folders
    /// start-up (or a repair) writes from the store.
    #[prost(bool, tag = "2")]
    pub folder: bool,
    /// The key its client chose to find it again (`CreateRunRequest.client_key`; empty: none,
    /// as every run recorded before format 3).
    #[prost(string, tag = "3")]
    pub client_key: String,
}

#[derive(Clone, PartialEq, Message)]
pub struct StoredHyperparameter {
    #[prost(string, tag = "1")]
    pub key: String,
    #[prost(string, tag = "2")]
    pub value: String,
}

#[derive(Clone, PartialEq, Message)]
pub struct StoredConfig {
    #[prost(string, tag = "1")]
    pub dataset: String,
    #[prost(uint32, optional, tag = "2")]
    pub samples: Option<u32>,
    #[prost(double, optional, tag = "3")]
    pub noise: Option<f64>,
    #[prost(uint32, optional, tag = "4")]
    pub classes: Option<u32>,
    #[prost(double, optional, tag = "5")]
    pub val_fraction: Option<f64>,
    #[prost(string, tag = "6")]
    pub model: String,
    #[prost(string, tag = "7")]
    pub optimizer: String,
    #[prost(double, optional, tag = "8")]
    pub lr: Option<f64>,
    #[prost(double, optional, tag = "9")]
    pub momentum: Option<f64>,
    #[prost(double, optional, tag = "10")]
    pub weight_decay: Option<f64>,
    #[prost(string, repeated, tag = "11")]
    pub layer_lr: Vec<String>,
    #[prost(string, repeated, tag = "12")]
    pub freeze: Vec<String>,
    #[prost(double, optional, tag = "13")]
    pub lr_decay: Option<f64>,
    #[prost(string, tag = "14")]
    pub lr_slice: String,
    #[prost(string, tag = "15")]
    pub schedule: String,
    #[prost(uint32, optional, tag = "16")]
    pub epochs: Option<u32>,
    #[prost(uint32, optional, tag = "17")]
    pub batch_size: Option<u32>,
    #[prost(uint64, optional, tag = "18")]
    pub seed: Option<u64>,
    #[prost(string, tag = "19")]
    pub device: String,
    #[prost(uint32, optional, tag = "20")]
    pub progress_events_per_epoch: Option<u32>,
    #[prost(string, tag = "21")]
    pub label: String,
    #[prost(string, tag = "22")]
    pub val_dataset: String,
    #[prost(string, tag = "23")]
    pub task: String,
    #[prost(double, optional, tag = "24")]
    pub clip_grad_norm: Option<f64>,
    #[prost(string, tag = "30")]
    pub init_from: String,
    #[prost(bool, tag = "25")]
    pub dedupe: bool,
    /// Absent before remote workers: any worker.
    #[prost(string, tag = "31")]
    pub on_worker: String,
}

#[derive(Clone, PartialEq, Message)]
pub struct StoredParameter {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub group: String,
    #[prost(int64, repeated, tag = "3")]
    pub shape: Vec<i64>,
    #[prost(double, tag = "4")]
    pub lr: f64,
    /// 0: trained from the start; N > 0: frozen until epoch N; -1: frozen for good.
    #[prost(int32, tag = "5")]
    pub frozen_until: i32,
    /// `fresh` or `loaded`.
    #[prost(string, tag = "6")]
    pub init: String,
}

#[derive(Clone, PartialEq, Message)]
pub struct StoredFacts {
    /// 1 classification, 2 regression.
    #[prost(uint32, tag = "1")]
    pub task: u32,
    #[prost(uint32, tag = "2")]
    pub classes: u32,
    #[prost(double, optional, tag = "3")]
    pub target_variance: Option<f64>,
    #[prost(uint64, tag = "4")]
    pub train_rows: u64,
    #[prost(uint64, tag = "5")]
    pub val_rows: u64,
    #[prost(uint64, tag = "6")]
    pub steps_per_epoch: u64,
    #[prost(string, tag = "7")]
    pub label: String,
    #[prost(string, tag = "8")]
    pub task_reason: String,
    /// Absent when the data was not checked (synthetic sets, runs recorded before the check).
    #[prost(message, optional, tag = "9")]
    pub leakage: Option<StoredLeakage>,
}

#[derive(Clone, PartialEq, Message)]
pub struct StoredLeakage {
    #[prost(uint64, tag = "1")]
    pub val_rows: u64,
    #[prost(uint64, tag = "2")]
    pub train_rows: u64,
    #[prost(uint64, tag = "3")]
    pub exact_rows: u64,
    #[prost(uint64, tag = "4")]
    pub near_rows: u64,
    #[prost(double, tag = "5")]
    pub near_tolerance_std: f64,
    #[prost(message, repeated, tag = "6")]
    pub label_columns: Vec<StoredLeakyColumn>,
    #[prost(double, optional, tag = "7")]
    pub class_balance_distance: Option<f64>,
    #[prost(uint64, tag = "8")]
    pub dropped_repeats: u64,
    #[prost(uint64, tag = "9")]
    pub dropped_val_copies: u64,
    #[prost(string, repeated, tag = "10")]
    pub findings: Vec<String>,
}

#[derive(Clone, PartialEq, Message)]
pub struct StoredLeakyColumn {
    #[prost(uint32, tag = "1")]
    pub position: u32,
    #[prost(string, tag = "2")]
    pub name: String,
    /// 1 equals the label, 2 determines the class (`values`), 3 correlated (`correlation`).
    #[prost(uint32, tag = "3")]
    pub how: u32,
    #[prost(uint32, tag = "4")]
    pub values: u32,
    #[prost(double, tag = "5")]
    pub correlation: f64,
}

#[derive(Clone, PartialEq, Message)]
pub struct StoredEpoch {
    #[prost(uint32, tag = "1")]
    pub epoch: u32,
    #[prost(double, tag = "2")]
    pub train_loss: f64,
    #[prost(double, tag = "3")]
    pub val_loss: f64,
    /// Accuracy or R², as the run's task says.
    #[prost(double, tag = "4")]
    pub val_metric: f64,
    #[prost(double, tag = "5")]
    pub duration_ms: f64,
    #[prost(double, tag = "6")]
    pub samples_per_sec: f64,
    #[prost(message, repeated, tag = "7")]
    pub groups: Vec<StoredGroupStats>,
    /// An external run's other named scalars, in name order (absent: none, as every trained
    /// run's epochs and every epoch recorded before they existed).
    #[prost(message, repeated, tag = "8")]
    pub extra: Vec<StoredScalar>,
    /// Not validated: `val_loss` and `val_metric` are NaN and mean nothing (absent: validated,
    /// as every epoch of a trained run and every epoch recorded before format 3).
    #[prost(bool, tag = "9")]
    pub no_validation: bool,
}

#[derive(Clone, PartialEq, Message)]
pub struct StoredScalar {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(double, tag = "2")]
    pub value: f64,
}

#[derive(Clone, PartialEq, Message)]
pub struct StoredGroupStats {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(double, tag = "2")]
    pub lr: f64,
    #[prost(double, tag = "3")]
    pub grad_norm: f64,
    #[prost(double, tag = "4")]
    pub weight_norm: f64,
    #[prost(double, tag = "5")]
    pub update_ratio: f64,
    #[prost(bool, tag = "6")]
    pub frozen: bool,
}

/// One write of a run's step log (`steps.pb`): consecutive step records, by column.
#[derive(Clone, PartialEq, Message)]
pub struct StoredStepChunk {
    /// Each row's global step, increasing.
    #[prost(uint64, repeated, tag = "1")]
    pub steps: Vec<u64>,
    /// Each row's epoch (0: not known).
    #[prost(uint32, repeated, tag = "2")]
    pub epochs: Vec<u32>,
    #[prost(message, repeated, tag = "3")]
    pub columns: Vec<StoredStepColumn>,
}

/// One named scalar over a chunk's rows.
#[derive(Clone, PartialEq, Message)]
pub struct StoredStepColumn {
    #[prost(string, tag = "1")]
    pub name: String,
    /// The rows that have it, increasing (empty: every row).
    #[prost(uint32, repeated, tag = "2")]
    pub rows: Vec<u32>,
    /// Its value at each of those rows.
    #[prost(double, repeated, tag = "3")]
    pub values: Vec<f64>,
}
