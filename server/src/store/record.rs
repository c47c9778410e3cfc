//! The store's own record format: how runs and epochs are kept on the disk — in sled, in each run
//! folder's `run.pb` and `epochs.pb`, and inside checkpoints. Protobuf messages defined here, not
//! in the wire protocol, so the protocol can change without touching what is stored.
//!
//! Format 1 was the wire protocol's `Run` and `EpochRecord`; format 2 keeps their field numbers
//! and types (so every format-1 record decodes as format 2) and adds the run's data facts. Fields
//! that format 1 derived on every read (`epochs_done`, `queue_position`) are reserved and never
//! written. A store says which format it was written in: the file [`FORMAT_FILE`] in its folder,
//! read before sled opens it, so a store from a newer `stratad` is refused without a byte of it
//! changed; see [`super::upgrade`] for how an older one is brought up to date.

use prost::Message;

use crate::domain::{
    DataFacts, EpochMetrics, FrozenUntil, GroupStats, ParamInit, ParameterRate, RunConfig, RunId,
    RunRecord, RunStatus, TaskFacts,
};

/// The record format this build writes, and the newest it reads.
pub const FORMAT: u32 = 2;
/// The file in the store's folder (`DATA_DIR/db`) holding the format number, in decimal.
pub const FORMAT_FILE: &str = "strata-format";

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
    /// Absent in format 1.
    #[prost(message, optional, tag = "20")]
    pub facts: Option<StoredFacts>,
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

/// Why a stored record could not be read back.
pub type DecodeResult<T> = std::result::Result<T, String>;

fn status_code(status: RunStatus) -> i32 {
    match status {
        RunStatus::Queued => 1,
        RunStatus::Running => 2,
        RunStatus::Completed => 3,
        RunStatus::Failed => 4,
        RunStatus::Cancelled => 5,
        RunStatus::Diverged => 6,
        RunStatus::Interrupted => 7,
    }
}

fn status_of(code: i32) -> DecodeResult<RunStatus> {
    RunStatus::ALL
        .into_iter()
        .find(|s| status_code(*s) == code)
        .ok_or_else(|| format!("unknown run status {code}"))
}

impl From<&RunConfig> for StoredConfig {
    fn from(config: &RunConfig) -> Self {
        let RunConfig {
            dataset,
            samples,
            noise,
            classes,
            val_fraction,
            model,
            optimizer,
            lr,
            momentum,
            weight_decay,
            layer_lr,
            freeze,
            lr_decay,
            lr_slice,
            schedule,
            epochs,
            batch_size,
            seed,
            device,
            progress_events_per_epoch,
            label,
            val_dataset,
            task,
            init_from,
            clip_grad_norm,
        } = config.clone();
        StoredConfig {
            dataset,
            samples,
            noise,
            classes,
            val_fraction,
            model,
            optimizer,
            lr,
            momentum,
            weight_decay,
            layer_lr,
            freeze,
            lr_decay,
            lr_slice,
            schedule,
            epochs,
            batch_size,
            seed,
            device,
            progress_events_per_epoch,
            label,
            val_dataset,
            task,
            clip_grad_norm,
            init_from,
        }
    }
}

impl From<StoredConfig> for RunConfig {
    fn from(stored: StoredConfig) -> Self {
        let StoredConfig {
            dataset,
            samples,
            noise,
            classes,
            val_fraction,
            model,
            optimizer,
            lr,
            momentum,
            weight_decay,
            layer_lr,
            freeze,
            lr_decay,
            lr_slice,
            schedule,
            epochs,
            batch_size,
            seed,
            device,
            progress_events_per_epoch,
            label,
            val_dataset,
            task,
            clip_grad_norm,
            init_from,
        } = stored;
        RunConfig {
            dataset,
            samples,
            noise,
            classes,
            val_fraction,
            model,
            optimizer,
            lr,
            momentum,
            weight_decay,
            layer_lr,
            freeze,
            lr_decay,
            lr_slice,
            schedule,
            epochs,
            batch_size,
            seed,
            device,
            progress_events_per_epoch,
            label,
            val_dataset,
            task,
            init_from,
            clip_grad_norm,
        }
    }
}

impl From<&ParameterRate> for StoredParameter {
    fn from(p: &ParameterRate) -> Self {
        StoredParameter {
            name: p.name.clone(),
            group: p.group.clone(),
            shape: p.shape.clone(),
            lr: p.lr,
            frozen_until: match p.frozen {
                FrozenUntil::Never => 0,
                FrozenUntil::Epoch(e) => e.min(i32::MAX as u32) as i32,
                FrozenUntil::Forever => -1,
            },
            init: match p.init {
                ParamInit::Fresh => "fresh",
                ParamInit::Loaded => "loaded",
            }
            .into(),
        }
    }
}

impl From<StoredParameter> for ParameterRate {
    fn from(p: StoredParameter) -> Self {
        ParameterRate {
            name: p.name,
            group: p.group,
            shape: p.shape,
            lr: p.lr,
            frozen: match p.frozen_until {
                0 => FrozenUntil::Never,
                e if e > 0 => FrozenUntil::Epoch(e as u32),
                _ => FrozenUntil::Forever,
            },
            init: if p.init == "loaded" {
                ParamInit::Loaded
            } else {
                ParamInit::Fresh
            },
        }
    }
}

impl From<&DataFacts> for StoredFacts {
    fn from(facts: &DataFacts) -> Self {
        let (task, classes, target_variance) = match facts.task {
            TaskFacts::Classification { classes } => (1, classes, None),
            TaskFacts::Regression { target_variance } => (2, 0, target_variance),
        };
        StoredFacts {
            task,
            classes,
            target_variance,
            train_rows: facts.train_rows,
            val_rows: facts.val_rows,
            steps_per_epoch: facts.steps_per_epoch,
            label: facts.label.clone(),
            task_reason: facts.task_reason.clone(),
        }
    }
}

impl StoredFacts {
    fn to_domain(&self) -> DecodeResult<DataFacts> {
        let task = match self.task {
            1 => TaskFacts::Classification {
                classes: self.classes,
            },
            2 => TaskFacts::Regression {
                target_variance: self.target_variance,
            },
            other => return Err(format!("unknown task {other}")),
        };
        Ok(DataFacts {
            task,
            train_rows: self.train_rows,
            val_rows: self.val_rows,
            steps_per_epoch: self.steps_per_epoch,
            label: self.label.clone(),
            task_reason: self.task_reason.clone(),
        })
    }
}

impl From<&RunRecord> for StoredRun {
    fn from(run: &RunRecord) -> Self {
        StoredRun {
            id: run.id.to_string(),
            name: run.name.clone(),
            tags: run.tags.clone(),
            status: status_code(run.status),
            reason: run.reason.clone(),
            config: Some(StoredConfig::from(&run.config)),
            parameters: run.parameters.iter().map(StoredParameter::from).collect(),
            created_at_ms: run.created_at_ms,
            started_at_ms: run.started_at_ms,
            finished_at_ms: run.finished_at_ms,
            val_metric: run.facts.task.metric().label().into(),
            parameter_count: run.parameter_count,
            device: run.device.clone(),
            resumes: run.resumes,
            facts: Some(StoredFacts::from(&run.facts)),
        }
    }
}

impl StoredRun {
    /// The record as the domain knows it. A format-1 record has no facts: `legacy_facts` says
    /// what to assume (see [`super::upgrade`]).
    pub fn to_domain(
        self,
        legacy_facts: impl FnOnce(&StoredRun) -> DataFacts,
    ) -> DecodeResult<RunRecord> {
        let id: RunId = self
            .id
            .parse()
            .map_err(|_| format!("its id '{}' is not a run id", crate::spec::shown(&self.id)))?;
        let facts = match &self.facts {
            Some(facts) => facts.to_domain()?,
            None => legacy_facts(&self),
        };
        let StoredRun {
            id: _,
            name,
            tags,
            status,
            reason,
            config,
            parameters,
            created_at_ms,
            started_at_ms,
            finished_at_ms,
            val_metric: _,
            parameter_count,
            device,
            resumes,
            facts: _,
        } = self;
        Ok(RunRecord {
            id,
            name,
            tags,
            status: status_of(status)?,
            reason,
            config: config.map(RunConfig::from).unwrap_or_default(),
            parameters: parameters.into_iter().map(ParameterRate::from).collect(),
            created_at_ms,
            started_at_ms,
            finished_at_ms,
            facts,
            parameter_count,
            device,
            resumes,
        })
    }
}

impl From<&EpochMetrics> for StoredEpoch {
    fn from(e: &EpochMetrics) -> Self {
        StoredEpoch {
            epoch: e.epoch,
            train_loss: e.train_loss,
            val_loss: e.val_loss,
            val_metric: e.val_metric,
            duration_ms: e.duration_ms,
            samples_per_sec: e.samples_per_sec,
            groups: e
                .groups
                .iter()
                .map(|g| StoredGroupStats {
                    name: g.name.clone(),
                    lr: g.lr,
                    grad_norm: g.grad_norm,
                    weight_norm: g.weight_norm,
                    update_ratio: g.update_ratio,
                    frozen: g.frozen,
                })
                .collect(),
        }
    }
}

impl From<StoredEpoch> for EpochMetrics {
    fn from(e: StoredEpoch) -> Self {
        let StoredEpoch {
            epoch,
            train_loss,
            val_loss,
            val_metric,
            duration_ms,
            samples_per_sec,
            groups,
        } = e;
        EpochMetrics {
            epoch,
            train_loss,
            val_loss,
            val_metric,
            duration_ms,
            samples_per_sec,
            groups: groups
                .into_iter()
                .map(|g| GroupStats {
                    name: g.name,
                    lr: g.lr,
                    grad_norm: g.grad_norm,
                    weight_norm: g.weight_norm,
                    update_ratio: g.update_ratio,
                    frozen: g.frozen,
                })
                .collect(),
        }
    }
}

pub fn encode_run(run: &RunRecord) -> Vec<u8> {
    StoredRun::from(run).encode_to_vec()
}

pub fn encode_epoch(epoch: &EpochMetrics) -> Vec<u8> {
    StoredEpoch::from(epoch).encode_to_vec()
}

/// Appends the epoch, length-delimited (as the epoch log and checkpoints keep them).
pub fn encode_epoch_delimited(epoch: &EpochMetrics, out: &mut Vec<u8>) {
    // Encoding into a Vec only fails when it runs out of capacity, which a Vec never does.
    let _ = StoredEpoch::from(epoch).encode_length_delimited(out);
}

pub fn decode_epoch(bytes: &[u8]) -> DecodeResult<EpochMetrics> {
    StoredEpoch::decode(bytes)
        .map(EpochMetrics::from)
        .map_err(|e| format!("it does not decode ({e})"))
}

/// The next length-delimited epoch of `bytes`, and what follows it.
pub fn decode_epoch_delimited(bytes: &mut &[u8]) -> DecodeResult<EpochMetrics> {
    StoredEpoch::decode_length_delimited(bytes)
        .map(EpochMetrics::from)
        .map_err(|e| format!("it does not decode ({e})"))
}

pub fn decode_stored_run(bytes: &[u8]) -> DecodeResult<StoredRun> {
    StoredRun::decode(bytes).map_err(|e| format!("it does not decode ({e})"))
}
