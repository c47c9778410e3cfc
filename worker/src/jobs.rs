//! A job from the daemon turned into the training it asks for, run to its end on this (the
//! training) thread: a run, a learning-rate range test, or a TorchScript module described.
//!
//! The job's config is parsed and its files confined under this worker's data roots exactly as
//! the daemon did when it accepted the run (the same code, `strata_server::spec`), so a worker
//! refuses what its daemon would.

use std::path::PathBuf;

use strata_proto::worker::v1 as wire;
use strata_server::{
    domain::{
        BatchProgress, EpochMetrics, GroupProbe, LrFindProgress, LrFindRange, Outcome, StopRequest,
    },
    error::{Result, StrataError},
    spec::{paths::DataRoots, RunSpec},
    workers::wire::{
        data_loaded_to_wire, epoch_to_wire, progress_to_wire, resolved_from_wire,
        CHECKPOINT_CHUNK_BYTES,
    },
};

use crate::{
    session::{Link, Received, Reply},
    train::{
        self,
        checkpoint::Checkpoint,
        lr_find::{lr_find, LrFindHalt, LrFindJob},
        run::{MeasuredData, RunSink, TrainJob},
    },
};

/// What this worker may read.
pub struct Access {
    pub data_roots: Vec<PathBuf>,
    pub allow_torchscript: bool,
}

/// How a job ended, and for a failure caused by its input, the request field it names.
pub struct Ended {
    pub outcome: Outcome,
    pub field: String,
}

impl From<StrataError> for Ended {
    fn from(err: StrataError) -> Self {
        let field = match &err {
            StrataError::InvalidArgument { field, .. } => field.clone(),
            _ => String::new(),
        };
        let reason = match err {
            StrataError::InvalidArgument { message, .. } => message,
            other => other.to_string(),
        };
        Ended {
            outcome: Outcome::Failed(reason),
            field,
        }
    }
}

impl From<Outcome> for Ended {
    fn from(outcome: Outcome) -> Self {
        Ended {
            outcome,
            field: String::new(),
        }
    }
}

/// Runs the job to its end.
pub fn run(link: &Link, received: Received, access: &Access) -> Ended {
    let Received { job, checkpoint } = received;
    let wire::Job {
        kind,
        device,
        checkpoint_bytes: _,
    } = job;
    let ran = match kind {
        Some(wire::job::Kind::Train(train)) => {
            run_training(link, train, &device, checkpoint, access)
        }
        Some(wire::job::Kind::LrFind(probe)) => run_probe(link, probe, &device, checkpoint, access),
        Some(wire::job::Kind::Describe(describe)) => describe_module(link, describe, access),
        None => Err(StrataError::Internal("the daemon sent an empty job".into())),
    };
    ran.unwrap_or_else(Ended::from)
}

fn roots(access: &Access) -> Result<DataRoots> {
    DataRoots::new(&access.data_roots)
        .map(|roots| roots.with_torchscript(access.allow_torchscript))
        .map_err(|e| StrataError::invalid("data_root", e.to_string()))
}

/// The job's config as a spec, its files confined under this worker's data roots.
fn spec_of(config: Option<strata_proto::RunConfig>, access: &Access) -> Result<RunSpec> {
    let config = config.ok_or_else(|| StrataError::Internal("the job has no config".into()))?;
    let mut spec = RunSpec::try_from(strata_server::domain::RunConfig::from(config))?;
    roots(access)?.confine(&mut spec)?;
    Ok(spec)
}

fn start_from(checkpoint: Option<Vec<u8>>) -> Result<Option<Checkpoint>> {
    checkpoint
        .map(Checkpoint::from_bytes)
        .transpose()
        .map_err(StrataError::FailedPrecondition)
}

fn run_training(
    link: &Link,
    job: wire::TrainJob,
    device: &str,
    checkpoint: Option<Vec<u8>>,
    access: &Access,
) -> Result<Ended> {
    let wire::TrainJob {
        run_id,
        config,
        parameters,
        resume_after_epoch,
    } = job;
    let spec = spec_of(config, access)?;
    let resolved = resolved_from_wire(parameters);
    let device = train::device(device)?;
    let start_from = start_from(checkpoint)?;
    let sink = DaemonSink {
        link,
        unacknowledged: std::sync::Mutex::new(None),
    };
    let job = TrainJob {
        run_id,
        spec: &spec,
        resolved: &resolved,
        device,
        sink: &sink,
        stop: &link.stop,
        resume_after_epoch,
        start_from,
    };
    tracing::info!(run = %job.run_id, device = ?device, resume_after_epoch, "training");
    let outcome = train::run::train(&job);
    // The job ends once its last epoch is stored: the daemon answers it before it takes the end.
    match (sink.stored(), outcome) {
        (Err(err), Outcome::Completed) => Err(err),
        (_, outcome) => Ok(outcome.into()),
    }
}

/// What a run reports, sent to the daemon.
///
/// An epoch is sent, with its checkpoint, and the loop goes on to the next epoch while the daemon
/// stores it; the next epoch is sent only once the daemon has said the last one is stored. So at
/// most one epoch is in flight, the daemon's syncs overlap the next epoch's training instead of
/// adding to it, and nothing the daemon has not stored is ever counted: the daemon streams and
/// counts an epoch only once it is durable, whatever the worker does meanwhile.
struct DaemonSink<'a> {
    link: &'a Link,
    /// The epoch sent and not yet said to be stored.
    unacknowledged: std::sync::Mutex<Option<u32>>,
}

impl DaemonSink<'_> {
    /// Waits until the daemon has stored the epoch last sent, if one is in flight.
    fn stored(&self) -> Result<()> {
        let pending = self
            .unacknowledged
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        let Some(epoch) = pending else {
            return Ok(());
        };
        match self.link.reply().map_err(lost)? {
            Reply::EpochStored(stored) if stored == epoch => Ok(()),
            other => Err(lost(format!(
                "the daemon answered {other:?} to epoch {epoch}"
            ))),
        }
    }
}

fn lost(why: String) -> StrataError {
    StrataError::Internal(why)
}

impl RunSink for DaemonSink<'_> {
    fn data_loaded(&self, data: &MeasuredData) -> Result<Vec<u8>> {
        let loaded = data_loaded_to_wire(
            data.task,
            data.train_rows,
            data.val_rows,
            data.steps_per_epoch,
        );
        self.link
            .send(wire::worker_message::Message::DataLoaded(loaded))
            .map_err(lost)?;
        match self.link.reply().map_err(lost)? {
            Reply::RunRecord(stored) => Ok(stored),
            other => Err(lost(format!(
                "the daemon answered {other:?} to the data's facts"
            ))),
        }
    }

    fn epoch_finished(&self, epoch: &EpochMetrics, checkpoint: Vec<u8>) -> Result<()> {
        use wire::worker_message::Message;
        self.link.send_progress().map_err(lost)?;
        self.stored()?;
        for chunk in checkpoint.chunks(CHECKPOINT_CHUNK_BYTES) {
            self.link
                .send(Message::Checkpoint(wire::CheckpointChunk {
                    data: chunk.to_vec(),
                }))
                .map_err(lost)?;
        }
        self.link
            .send(Message::Epoch(wire::EpochDone {
                epoch: Some(epoch_to_wire(epoch)),
                checkpoint_bytes: checkpoint.len() as u64,
            }))
            .map_err(lost)?;
        *self
            .unacknowledged
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some(epoch.epoch);
        Ok(())
    }

    fn progress(&self, progress: BatchProgress) {
        self.link.progress(progress_to_wire(&progress));
    }
}

fn run_probe(
    link: &Link,
    job: wire::LrFindJob,
    device: &str,
    checkpoint: Option<Vec<u8>>,
    access: &Access,
) -> Result<Ended> {
    let wire::LrFindJob {
        config,
        parameters,
        start_lr,
        end_lr,
        steps,
        groups,
    } = job;
    let spec = spec_of(config, access)?;
    let resolved = resolved_from_wire(parameters);
    let device = train::device(device)?;
    let source = start_from(checkpoint)?;
    let stop = || StopRequest::load(&link.stop) != StopRequest::None;
    let progress = |progress: LrFindProgress| {
        link.send_if_room(wire::worker_message::Message::LrFindProgress(
            progress.into(),
        ));
    };
    // A group's result is sent whole, waiting for room if need be; a send that fails means the
    // daemon is gone, and the session ends the process.
    let probed = |probe: GroupProbe| {
        let _ = link.send(wire::worker_message::Message::Probed(probe.into()));
    };
    let job = LrFindJob {
        spec: &spec,
        resolved: &resolved,
        device,
        init_from: source.as_ref(),
        range: LrFindRange {
            start_lr,
            end_lr,
            steps,
        },
        groups: &groups,
        stop: &stop,
        progress: &progress,
        probed: &probed,
    };
    Ok(match lr_find(&job) {
        Ok(()) => Outcome::Completed,
        Err(LrFindHalt::Stopped) => Outcome::Stopped(StopRequest::load(&link.stop)),
        Err(LrFindHalt::Failed(reason)) => Outcome::Failed(reason),
    }
    .into())
}

fn describe_module(link: &Link, job: wire::DescribeJob, access: &Access) -> Result<Ended> {
    let wire::DescribeJob {
        torchscript,
        sample_shape,
        outputs,
    } = job;
    // The same refusal the daemon gives (without --allow-torchscript, or outside the roots).
    let path = roots(access)?.resolve_torchscript(std::path::Path::new(&torchscript))?;
    let described =
        std::panic::catch_unwind(|| train::model::describe_module(&path, &sample_shape, outputs))
            .unwrap_or_else(|_| {
            Err(StrataError::invalid(
                "model",
                format!("loading {} panicked", path.display()),
            ))
        })?;
    let parameters = described
        .into_iter()
        .map(|p| wire::Parameter {
            name: p.name,
            shape: p.shape,
        })
        .collect();
    link.send(wire::worker_message::Message::Described(wire::Described {
        parameters,
    }))
    .map_err(lost)?;
    Ok(Outcome::Completed.into())
}
