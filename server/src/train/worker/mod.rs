//! The training loop of one run, on its own thread.
//!
//! The hot loop stays on the tensor side: the epoch's loss is summed into a tensor, batch losses
//! and gradient norms are read back (a device sync) only on the sampled steps that feed live
//! progress, and nothing is stored or formatted per batch.

mod measure;
mod step_plan;
mod trainer;

use std::{
    path::PathBuf,
    sync::atomic::{AtomicU8, Ordering},
};

use tch::{Device, TchError};

use super::checkpoint;
use crate::{
    domain::{BatchProgress, DataFacts, EpochMetrics, RunId, RunRecord},
    error::StrataError,
    spec::{rates::ResolvedParam, RunSpec},
    store::{epoch_log, record},
};
pub(crate) use measure::loss_of;
pub(crate) use trainer::seeded_model;
use trainer::Trainer;

/// Where a run reports to while it trains. The run manager implements it: it stores what must
/// last (durably, before anyone is told) and passes it on to the run's watchers. The loop itself
/// knows neither the store nor the async runtime.
pub trait RunSink: Sync {
    /// The data is loaded: what it is. Called once per start, before the first epoch.
    fn data_loaded(&self, facts: &DataFacts) -> crate::error::Result<()>;
    /// An epoch finished and its checkpoint is on the disk: store it durably, then stream it.
    fn epoch_finished(&self, epoch: &EpochMetrics) -> crate::error::Result<()>;
    /// A sampled batch loss, for watchers only.
    fn progress(&self, progress: BatchProgress);
}

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
    /// The run's record as stored when it started (checkpoints carry it).
    pub record: RunRecord,
    /// The stored epochs the run goes on from (none for a new run).
    pub kept_epochs: Vec<EpochMetrics>,
    pub sink: &'a dyn RunSink,
    pub stop: &'a AtomicU8,
    pub checkpoint_dir: PathBuf,
    /// Checkpoints kept per run (the newest).
    pub keep_checkpoints: usize,
    /// Epochs already trained: 0 for a fresh run, else the epoch whose checkpoint to resume from.
    pub resume_after_epoch: u32,
    /// A fresh fine-tuning run starts from this checkpoint's matching parameters.
    pub init_from: Option<PathBuf>,
}

/// A checkpoint a run starts from, and the parameters it provides (matched by name and shape).
#[derive(Clone, Debug)]
pub struct InitFrom {
    pub path: PathBuf,
    pub loaded: std::collections::HashSet<String>,
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

fn check_stop(job: &TrainJob<'_>) -> Result<(), Halt> {
    match StopRequest::load(job.stop) {
        StopRequest::None => Ok(()),
        request => Err(Halt::Stopped(request)),
    }
}

fn run_epochs(job: &TrainJob<'_>) -> Result<(), Halt> {
    let mut trainer = Trainer::new(job)?;
    for epoch in job.resume_after_epoch + 1..=job.spec.epochs {
        check_stop(job)?;
        let metrics = trainer.epoch(epoch)?;
        trainer.records.epochs.clear();
        record::encode_epoch_delimited(&metrics, &mut trainer.records.epochs);
        // The checkpoint first, then the record: every stored epoch has a checkpoint to resume
        // from, and the newest checkpoint is at most one epoch ahead of the stored records (the
        // start-up check relies on it). Durable before streamed.
        checkpoint::write(
            &job.checkpoint_dir,
            &job.run_id.to_string(),
            epoch,
            trainer.model.parameters(),
            &trainer.optimizer,
            checkpoint::DataScaling {
                features: &trainer.data.standardization,
                targets: matches!(trainer.data.task, crate::spec::Task::Regression)
                    .then_some(trainer.targets),
            },
            &trainer.records,
        )
        .map_err(Halt::Failed)?;
        epoch_log::append(&job.checkpoint_dir, &metrics)
            .map_err(|e| Halt::Failed(format!("cannot append to the run's epoch log: {e}")))?;
        job.sink.epoch_finished(&metrics)?;
        checkpoint::prune(&job.checkpoint_dir, job.keep_checkpoints);
        let val_loss = metrics.val_loss;
        if !val_loss.is_finite() {
            return Err(Halt::Diverged(format!(
                "the validation loss became {val_loss} at epoch {epoch}"
            )));
        }
    }
    Ok(())
}
