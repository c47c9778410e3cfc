//! A run on a training slot: waiting for the slot, training in a worker process of its own, and
//! recording how it ended — a worker that crashed, ran out of memory or went silent included (the
//! run fails, resumable, and the daemon, the other runs and the watchers carry on).

use std::sync::Arc;

use strata_proto::worker::v1 as wire;

use super::{
    blocking,
    ingest::{rewrite_epoch_log, Ingest},
    live::LiveRun,
    prepare::Prepared,
    Runs,
};
use crate::{
    domain::{Outcome, RunEvent, RunId, RunRecord, RunStatus, StopRequest},
    store::now_ms,
    train::checkpoint::path_for,
    workers::{
        remote::Need,
        session::End,
        wire::{finished_from_wire, progress_from_wire, MAX_PROGRESS_BATCHES},
        Event, Session,
    },
};
use tokio::sync::OwnedSemaphorePermit;

/// What a message to a worker that is gone fails with.
const WORKER_GONE: &str = "the worker went away";

/// How a run's time on a worker ended: with an outcome to record, or with its remote worker lost
/// (the run goes back to the queue).
pub(super) enum Ended {
    Outcome(Outcome),
    Lost(String),
}

/// Where a run trains.
pub(super) enum Placement {
    /// A slot of the daemon's own (a worker process it starts).
    Local(OwnedSemaphorePermit),
    /// A remote worker that pulled it, on one of its devices.
    Remote {
        session: Box<Session>,
        device: String,
        worker: String,
    },
}

impl Placement {
    fn into_permit(self) -> Option<OwnedSemaphorePermit> {
        match self {
            Placement::Local(permit) => Some(permit),
            Placement::Remote { .. } => None,
        }
    }
}

/// What a run needs of a remote worker that trains it.
pub(super) fn need_of(prepared: &Prepared) -> Need {
    use crate::spec::{DataSource, Validation};
    let spec = &prepared.spec;
    let mut files = Vec::new();
    match &spec.dataset.source {
        DataSource::Csv { path, .. } => files.push(path.clone()),
        DataSource::Idx { dir } => files.push(dir.clone()),
        DataSource::Synthetic(_) => {}
    }
    if let Validation::CsvFile(path) = &spec.dataset.validation {
        files.push(path.clone());
    }
    let torchscript = match &spec.model {
        crate::spec::ModelSpec::TorchScript { path } => {
            files.push(path.clone());
            true
        }
        _ => false,
    };
    Need {
        device: spec.device,
        label: spec.on_worker.clone(),
        files,
        torchscript,
    }
}

/// Longest reason recorded for a run's end.
const MAX_REASON_BYTES: usize = 1024;

/// An error as a run's recorded reason: its first line only (libtorch appends a C++ backtrace with
/// memory addresses and install paths), at most [`MAX_REASON_BYTES`].
pub(super) fn reason_for_clients(reason: &str) -> String {
    let first = reason
        .split("Exception raised from")
        .next()
        .unwrap_or("")
        .lines()
        .map(str::trim)
        .find(|line| !line.is_empty())
        .unwrap_or("")
        .to_string();
    crate::error::truncated(first, MAX_REASON_BYTES)
}

impl Runs {
    /// Queues a claimed run and drives it to its end on a worker task.
    pub(super) fn enqueue(
        self: &Arc<Self>,
        id: RunId,
        prepared: Prepared,
        resume_after_epoch: u32,
        live: Arc<LiveRun>,
    ) {
        self.queue.push(id);
        let this = self.clone();
        self.tasks
            .spawn(async move { this.drive(id, prepared, resume_after_epoch, live).await });
    }

    /// Waits for a slot or a remote worker (or a stop), trains, and records the outcome. A run
    /// whose remote worker was lost goes back to the queue, to resume from its newest checkpoint
    /// (up to the daemon's `--worker-retries` times), and waits for the next worker.
    async fn drive(
        self: Arc<Self>,
        id: RunId,
        prepared: Prepared,
        resume_after_epoch: u32,
        live: Arc<LiveRun>,
    ) {
        let mut resume_after_epoch = resume_after_epoch;
        loop {
            let placed = self.place(id, &prepared, &live).await;
            let stop = StopRequest::load(&live.stop);
            let (ended, permit) = match placed {
                Some(placement) if stop == StopRequest::None => {
                    self.train(id, &prepared, resume_after_epoch, &live, placement)
                        .await
                }
                placed => (
                    Ended::Outcome(Outcome::Stopped(match stop {
                        StopRequest::None => StopRequest::Interrupt,
                        request => request,
                    })),
                    placed.and_then(Placement::into_permit),
                ),
            };
            let this = self.clone();
            let live = live.clone();
            match ended {
                Ended::Outcome(outcome) => {
                    // Recording the end flushes the store: off the async runtime.
                    let _ = blocking(move || {
                        this.finish(id, &live, outcome);
                        Ok(())
                    })
                    .await;
                }
                Ended::Lost(why) => {
                    tracing::warn!(run = %id, reason = %why, "a remote worker was lost");
                    let requeued = blocking(move || {
                        Ok(match this.requeue_after_loss(id, &live, &why) {
                            Ok(after) => Some(after),
                            Err(reason) => {
                                this.finish_interrupted(id, &live, reason);
                                None
                            }
                        })
                    })
                    .await;
                    if let Ok(Some(after)) = requeued {
                        resume_after_epoch = after;
                        continue;
                    }
                }
            }
            // The slot is freed only once the end is recorded, so the next queued run starts
            // after this one has finished, as recorded (its `started_at_ms` ≥ this one's
            // `finished_at_ms`).
            drop(permit);
            return;
        }
    }

    /// Waits for where the run trains: a slot of the daemon's own (unless it asks for a remote
    /// worker, or a device only one has), or a remote worker that can serve it, whichever comes
    /// first; `None` when it is asked to stop meanwhile. Either way it leaves the queue.
    async fn place(&self, id: RunId, prepared: &Prepared, live: &LiveRun) -> Option<Placement> {
        let Some(hub) = self.workers.hub().cloned() else {
            return self
                .queue
                .wait_for_slot(id, &live.stop_notify)
                .await
                .map(Placement::Local);
        };
        let local = prepared.remote_only.is_none()
            && prepared.spec.on_worker.is_none()
            && self.queue.slots() > 0;
        let need = need_of(prepared);
        loop {
            let matched = hub.dispatch.wants_worker(id, need.clone());
            let placed = tokio::select! {
                biased;
                () = live.stop_notify.notified() => None,
                permit = self.queue.take_slot(), if local => permit.map(Placement::Local),
                assigned = matched => match assigned {
                    Ok(assigned) => match assigned.session.await {
                        Ok(session) => Some(Placement::Remote {
                            session: Box::new(session),
                            device: assigned.device,
                            worker: assigned.worker,
                        }),
                        // The worker went between its match and its hand-over: wait again.
                        Err(_) => continue,
                    },
                    Err(_) => continue,
                },
            };
            self.queue.leave(id);
            return placed;
        }
    }

    /// Marks the run running, starts its worker (or hands the job to its remote worker) and
    /// follows it to the run's end; a local worker has exited when this returns (so a run's
    /// slot, and its GPU's memory, are free once its end is recorded).
    async fn train(
        self: &Arc<Self>,
        id: RunId,
        prepared: &Prepared,
        resume_after_epoch: u32,
        live: &Arc<LiveRun>,
        placement: Placement,
    ) -> (Ended, Option<OwnedSemaphorePermit>) {
        let this = self.clone();
        let prepared = prepared.clone();
        let started = blocking(move || {
            let mut prepared = prepared;
            Ok(this
                .start_running(id, &mut prepared, resume_after_epoch)
                .map(|record| (prepared, record)))
        })
        .await;
        let (prepared, record) = match started {
            Ok(Ok(started)) => started,
            Ok(Err(reason)) => {
                return (
                    Ended::Outcome(Outcome::Failed(reason)),
                    placement.into_permit(),
                )
            }
            Err(err) => {
                return (
                    Ended::Outcome(Outcome::Failed(err.to_string())),
                    placement.into_permit(),
                )
            }
        };
        live.send(RunEvent::Status {
            status: RunStatus::Running,
            reason: String::new(),
        });
        let dir = self.checkpoint_dir(id);
        let checkpoint = match resume_after_epoch {
            0 => prepared.init.as_ref().map(|init| init.path.clone()),
            after => Some(path_for(&dir, after)),
        };
        let job = wire::Job {
            kind: Some(wire::job::Kind::Train(wire::TrainJob {
                run_id: id.to_string(),
                config: Some(prepared.spec.config.clone().into()),
                parameters: prepared.rate_table().into_iter().map(Into::into).collect(),
                resume_after_epoch,
            })),
            ..Default::default()
        };
        let (mut session, permit) = match placement {
            Placement::Local(permit) => {
                let launched = self
                    .workers
                    .launch(
                        job,
                        prepared.device,
                        checkpoint.as_deref(),
                        &format!("run {id}"),
                    )
                    .await;
                match launched {
                    Ok(session) => (session, Some(permit)),
                    Err(why) => {
                        return (
                            Ended::Outcome(Outcome::Failed(format!(
                                "no worker could train the run: {why}"
                            ))),
                            Some(permit),
                        )
                    }
                }
            }
            Placement::Remote {
                session,
                device,
                worker,
            } => {
                if let Some(remote) = session.remote_worker() {
                    remote.trains(id, &device);
                }
                live.set_worker(&worker);
                let job = wire::Job {
                    device: device.clone(),
                    ..job
                };
                if let Err(why) =
                    crate::workers::hand_over_remote(&session, job, checkpoint.as_deref()).await
                {
                    if let Some(remote) = session.remote_worker() {
                        remote.trained(false);
                    }
                    live.set_worker("");
                    let _ = session.ended().await;
                    return (Ended::Lost(format!("worker {worker}: {why}")), None);
                }
                tracing::info!(run = %id, worker = %worker, device = %device, "run started on a remote worker");
                (*session, None)
            }
        };
        live.set_worker_pid(session.pid());
        if session.remote_worker().is_none() {
            tracing::info!(run = %id, worker = session.pid(), device = %prepared.device.label(), "run started");
        }
        let mut ingest = Ingest::new(
            &record,
            self.store.clone(),
            dir,
            self.keep_checkpoints,
            prepared.spec.epochs,
            resume_after_epoch,
        );
        let ended = self.follow(&mut session, live, &mut ingest).await;
        if let Some(remote) = session.remote_worker() {
            remote.trained(matches!(ended, Ended::Outcome(_)));
        }
        if let Some(exit) = session.ended().await {
            tracing::debug!(run = %id, worker = exit.pid, status = ?exit.status, "worker ended");
        }
        live.set_worker_pid(0);
        live.set_worker("");
        (ended, permit)
    }

    /// Puts a run whose remote worker was lost back in the queue, to resume from its newest
    /// checkpoint (blocking): the epoch it resumes after. An `Err` says why it waits for a person
    /// instead (its retries are spent, the queue is full): the run's interruption reason.
    fn requeue_after_loss(&self, id: RunId, live: &LiveRun, why: &str) -> Result<u32, String> {
        use std::sync::atomic::Ordering;
        let retries = self.workers.hub().map_or(0, |hub| hub.retries);
        let losses = live.worker_losses.fetch_add(1, Ordering::AcqRel) + 1;
        if losses > retries {
            return Err(format!(
                "{why}; {losses} workers lost, more than --worker-retries {retries}: resume the run to continue"
            ));
        }
        if StopRequest::load(&live.stop) != StopRequest::None {
            return Err(format!("{why}; resume the run to continue"));
        }
        self.queue.reserve(1).map_err(|e| {
            format!("{why}; it could not be re-queued ({e}): resume the run to continue")
        })?;
        let done = self.store.epochs_done(id).unwrap_or(0);
        let start = match super::resume_point::choose_resume_point(
            &self.store,
            id,
            &self.checkpoint_dir(id),
            &self.data_dir,
            done,
        ) {
            Ok(start) => start,
            Err(e) => {
                self.queue.unreserve(1);
                return Err(format!("{why}; it could not be re-queued ({e})"));
            }
        };
        let reason = format!(
            "{why}; re-queued to resume after epoch {} (automatic retry {losses} of {retries})",
            start.after_epoch
        );
        if let Err(e) = self.store.update_run(id, |run| {
            run.status = RunStatus::Queued;
            run.reason = reason.clone();
        }) {
            self.queue.unreserve(1);
            return Err(format!("{why}; it could not be re-queued ({e})"));
        }
        live.send(RunEvent::Status {
            status: RunStatus::Interrupted,
            reason: reason.clone(),
        });
        live.send(RunEvent::Status {
            status: RunStatus::Queued,
            reason,
        });
        self.queue.push(id);
        Ok(start.after_epoch)
    }

    /// Records the run interrupted for `reason` (blocking): it waits for a person to resume it.
    fn finish_interrupted(&self, id: RunId, live: &LiveRun, reason: String) {
        let stored = self.store.update_run(id, |run| {
            run.status = RunStatus::Interrupted;
            run.reason = reason.clone();
            run.finished_at_ms = now_ms();
        });
        if let Err(err) = stored {
            tracing::error!(run = %id, error = %err, "could not record the run's end");
        }
        tracing::warn!(run = %id, %reason, "run interrupted");
        live.send(RunEvent::Status {
            status: RunStatus::Interrupted,
            reason,
        });
        self.live.release(id);
    }

    /// Confines the run's files again, marks it running and readies its folder (blocking). The
    /// files were checked when the run was started, but it may have waited in the queue since,
    /// and a path under a root may now lead out of it: checked again just before a worker reads
    /// them (it opens them without following links).
    fn start_running(
        &self,
        id: RunId,
        prepared: &mut Prepared,
        resume_after_epoch: u32,
    ) -> Result<RunRecord, String> {
        self.data_roots
            .confine(&mut prepared.spec)
            .map_err(|e| e.to_string())?;
        let record = self
            .store
            .update_run(id, |run| {
                run.status = RunStatus::Running;
                run.started_at_ms = now_ms();
            })
            .map_err(|e| e.to_string())?;
        rewrite_epoch_log(
            &self.store,
            id,
            &self.checkpoint_dir(id),
            resume_after_epoch,
        )
        .map_err(|e| e.to_string())?;
        Ok(record)
    }

    /// Follows the run's worker to the run's end: stores what it reports (durably, before it is
    /// acknowledged and streamed, see [`Ingest`]), passes a stop request on, and turns a worker
    /// that ended without saying how the run did into the run's failure.
    async fn follow(&self, session: &mut Session, live: &LiveRun, ingest: &mut Ingest) -> Ended {
        loop {
            let asked = StopRequest::load(&live.stop);
            if asked != StopRequest::None && session.stop_requested() == StopRequest::None {
                session.stop(asked).await;
            }
            let event = tokio::select! {
                event = session.next() => event,
                () = live.stop_notify.notified() => continue,
            };
            let message = match event {
                Event::Message(message) => message,
                Event::Ended(end) => {
                    let what = end.describe(&ingest.doing());
                    return match (session.stop_requested(), end) {
                        (StopRequest::None, End::Lost(_)) => Ended::Lost(what),
                        (StopRequest::None, End::Exited(_)) => Ended::Outcome(Outcome::Failed(
                            format!("{what}; resume the run to continue"),
                        )),
                        (asked, _) => {
                            tracing::warn!("{what}");
                            Ended::Outcome(Outcome::Stopped(asked))
                        }
                    };
                }
            };
            match self.take(message, session, live, ingest).await {
                Ok(None) => {}
                // A remote worker that stopped unasked is shutting down (a pod evicted, a Slurm
                // job at its end): the run goes to another.
                Ok(Some(Outcome::Stopped(_)))
                    if session.stop_requested() == StopRequest::None
                        && session.remote_worker().is_some() =>
                {
                    let name = session
                        .remote_worker()
                        .map_or(String::new(), |w| w.offer.name.clone());
                    return Ended::Lost(format!("worker {name} shut down {}", ingest.doing()));
                }
                Ok(Some(outcome)) => return Ended::Outcome(outcome),
                Err(reason) if session.remote_worker().is_some() && reason == WORKER_GONE => {
                    let name = session
                        .remote_worker()
                        .map_or(String::new(), |w| w.offer.name.clone());
                    return Ended::Lost(format!(
                        "the connection to worker {name} broke {}",
                        ingest.doing()
                    ));
                }
                Err(reason) => {
                    session.abandon();
                    return Ended::Outcome(Outcome::Failed(reason));
                }
            }
        }
    }

    /// Takes one message of a training worker; `Some` once it says how the run ended.
    async fn take(
        &self,
        message: wire::worker_message::Message,
        session: &Session,
        live: &LiveRun,
        ingest: &mut Ingest,
    ) -> Result<Option<Outcome>, String> {
        use wire::{daemon_message::Message as ToWorker, worker_message::Message};
        let gone = |_| WORKER_GONE.to_string();
        match message {
            Message::DataLoaded(loaded) => {
                let stored = ingest.data_loaded(loaded).await?;
                session
                    .send(ToWorker::RunRecord(wire::RunRecord { stored }))
                    .await
                    .map_err(gone)?;
            }
            Message::Progress(progress) => {
                if progress.batches.len() > MAX_PROGRESS_BATCHES {
                    return Err(format!(
                        "the worker sent {} batch losses at once",
                        progress.batches.len()
                    ));
                }
                for batch in progress.batches {
                    live.send(RunEvent::Progress(progress_from_wire(batch)));
                }
            }
            Message::Checkpoint(chunk) => ingest.checkpoint_chunk(chunk.data).await?,
            Message::Epoch(done) => {
                let stored = ingest.epoch(done).await?.0;
                // A worker already gone is no reason to fail the run here: the epoch is stored,
                // and the worker's end, next, says what became of it.
                let _ = session
                    .send(ToWorker::EpochStored(wire::EpochStored {
                        epoch: stored.epoch,
                    }))
                    .await;
                live.send(RunEvent::Epoch(stored));
                ingest.prune().await;
            }
            Message::Finished(finished) => {
                return Ok(Some(finished_from_wire(
                    &finished,
                    session.stop_requested(),
                )))
            }
            Message::Hello(_)
            | Message::Heartbeat(_)
            | Message::LrFindProgress(_)
            | Message::Probed(_)
            | Message::Described(_) => {
                return Err("the worker sent a message that is no part of training a run".into())
            }
        }
        Ok(None)
    }

    /// Records how the run ended (durably), tells its watchers, and forgets its live state, in
    /// that order: a watcher either sees the final event or finds the final status stored.
    fn finish(&self, id: RunId, live: &LiveRun, outcome: Outcome) {
        // A queued run that shutdown stopped and recorded (with the others, in one write).
        if let (Outcome::Stopped(StopRequest::Interrupt), Some(reason)) =
            (&outcome, live.recorded_end())
        {
            live.send(RunEvent::Status {
                status: RunStatus::Interrupted,
                reason: reason.to_string(),
            });
            self.live.release(id);
            return;
        }
        let epochs_done = self.store.epochs_done(id).unwrap_or(0);
        let (status, reason) = match outcome {
            Outcome::Completed => (RunStatus::Completed, String::new()),
            Outcome::Stopped(StopRequest::Cancel) => (RunStatus::Cancelled, {
                let asked = live.cancel_reason();
                if asked.is_empty() {
                    format!("cancelled on request after {epochs_done} epoch(s)")
                } else {
                    format!("{asked} (cancelled after {epochs_done} epoch(s))")
                }
            }),
            Outcome::Stopped(_) => (
                RunStatus::Interrupted,
                format!(
                    "stratad shut down after {epochs_done} epoch(s); resume the run to continue"
                ),
            ),
            Outcome::Diverged(reason) => (RunStatus::Diverged, reason_for_clients(&reason)),
            Outcome::Failed(reason) => {
                // The whole error (a libtorch backtrace, say) for the operator; clients get
                // its first line.
                tracing::warn!(run = %id, error = %reason, "run failed");
                (RunStatus::Failed, reason_for_clients(&reason))
            }
        };
        let stored = self.store.update_run(id, |run| {
            run.status = status;
            run.reason = reason.clone();
            run.finished_at_ms = now_ms();
        });
        if let Err(err) = stored {
            tracing::error!(run = %id, error = %err, "could not record the run's end");
        }
        match status {
            RunStatus::Completed => {
                tracing::info!(run = %id, epochs = epochs_done, "run completed")
            }
            _ => tracing::warn!(run = %id, status = status.label(), %reason, "run ended"),
        }
        live.send(RunEvent::Status { status, reason });
        self.live.release(id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_lose_backtraces_and_length() {
        let torch = "Torch(\"[enforce fail at alloc_cpu.cpp:117] data. DefaultCPUAllocator: not enough memory\nException raised from alloc_cpu at /pytorch/c10/core/impl/alloc_cpu.cpp:117 (most recent call first):\nframe #0: c10::Error::Error + 0x9c (0x7fb1 in /x/libc10.so)\")";
        let reason = reason_for_clients(torch);
        assert!(reason.contains("not enough memory"), "{reason}");
        assert!(
            !reason.contains("frame") && !reason.contains("0x7fb1"),
            "{reason}"
        );
        assert!(reason_for_clients(&"x".repeat(5000)).len() <= MAX_REASON_BYTES + 16);
        assert_eq!(reason_for_clients("plain"), "plain");
    }
}
