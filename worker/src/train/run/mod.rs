//! The training loop of one run, on the worker's training thread.
//!
//! The hot loop stays on the tensor side: the epoch's loss is summed into a tensor, batch losses
//! and gradient norms are read back (a device sync) only on the sampled steps that feed live
//! progress, and nothing is stored or formatted per batch.

mod measure;
mod step_plan;
mod trainer;

use std::sync::atomic::AtomicU8;

use strata_server::{
    domain::{BatchProgress, EpochMetrics, Outcome, StopRequest, TaskFacts},
    error::StrataError,
    spec::{rates::ResolvedParam, RunSpec},
    store::record,
};
use tch::{Device, TchError};

use super::checkpoint::{self, Checkpoint};
pub(crate) use measure::loss_of;
pub(crate) use trainer::seeded_model;
use trainer::Trainer;

/// What the worker measured on a run's data once it was loaded.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MeasuredData {
    pub task: TaskFacts,
    pub train_rows: u64,
    pub val_rows: u64,
    pub steps_per_epoch: u64,
}

/// Where a run reports to while it trains: the daemon, through the worker's session. The loop
/// itself knows neither the daemon nor the async runtime.
pub trait RunSink: Sync {
    /// The data is loaded: what it is. Called once per start, before the first epoch. Returns the
    /// run's record as the daemon stores it, which every checkpoint carries.
    fn data_loaded(&self, data: &MeasuredData) -> strata_server::error::Result<Vec<u8>>;
    /// An epoch finished: its record and its checkpoint (the file's bytes), for the daemon to
    /// store durably (and then stream). May return before they are stored; a sink that does
    /// makes sure the previous epoch is stored before it takes the next.
    fn epoch_finished(
        &self,
        epoch: &EpochMetrics,
        checkpoint: Vec<u8>,
    ) -> strata_server::error::Result<()>;
    /// A sampled batch loss, for watchers only.
    fn progress(&self, progress: BatchProgress);
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

/// Everything the loop needs from the daemon's job.
pub struct TrainJob<'a> {
    pub run_id: String,
    pub spec: &'a RunSpec,
    pub resolved: &'a [ResolvedParam],
    pub device: Device,
    pub sink: &'a dyn RunSink,
    pub stop: &'a AtomicU8,
    /// Epochs already trained: 0 for a fresh run, else the epoch `start_from` is the checkpoint
    /// of.
    pub resume_after_epoch: u32,
    /// The checkpoint the run starts from: its own for a resume, its source's for a fresh
    /// fine-tune.
    pub start_from: Option<Checkpoint>,
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
        // The checkpoint goes with its epoch: the daemon stores it first, then the record, so
        // every stored epoch has a checkpoint to resume from.
        let checkpoint = checkpoint::encode(
            &job.run_id,
            epoch,
            trainer.model.parameters(),
            &trainer.optimizer,
            checkpoint::DataScaling {
                features: &trainer.data.standardization,
                targets: matches!(trainer.data.task, strata_server::spec::Task::Regression)
                    .then_some(trainer.targets),
            },
            &trainer.records,
        )
        .map_err(Halt::Failed)?;
        job.sink.epoch_finished(&metrics, checkpoint)?;
        let val_loss = metrics.val_loss;
        if !val_loss.is_finite() {
            return Err(Halt::Diverged(format!(
                "the validation loss became {val_loss} at epoch {epoch}"
            )));
        }
    }
    Ok(())
}
