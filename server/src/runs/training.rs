//! A run on a training slot: waiting for the slot, training on the slot's thread, and recording
//! how it ended; and the [`RunSink`] through which the loop reports while it trains.

use std::sync::Arc;

use super::{blocking, live::LiveRun, prepare::Prepared, Runs};
use crate::{
    domain::{BatchProgress, DataFacts, EpochMetrics, RunEvent, RunId, RunStatus},
    error::Result,
    store::{now_ms, Store},
    train::{
        self,
        worker::{Outcome, RunSink, StopRequest, TrainJob},
    },
};

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

/// What a training run reports to: each epoch is stored durably, then streamed (so a watcher
/// never sees an epoch a crash could still lose); the data's facts go into the run's record.
struct ManagedRun<'a> {
    id: RunId,
    store: &'a Store,
    live: &'a LiveRun,
}

impl RunSink for ManagedRun<'_> {
    fn data_loaded(&self, facts: &DataFacts) -> Result<()> {
        self.store
            .update_run(self.id, |run| run.facts = facts.clone())?;
        Ok(())
    }

    fn epoch_finished(&self, epoch: &EpochMetrics) -> Result<()> {
        self.store.put_epoch(self.id, epoch)?;
        self.live.send(RunEvent::Epoch(epoch.clone()));
        Ok(())
    }

    fn progress(&self, progress: BatchProgress) {
        self.live.send(RunEvent::Progress(progress));
    }
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
        self.workers
            .spawn(async move { this.drive(id, prepared, resume_after_epoch, live).await });
    }

    /// Waits for a slot (or a stop), trains, and records the outcome.
    async fn drive(
        self: Arc<Self>,
        id: RunId,
        prepared: Prepared,
        resume_after_epoch: u32,
        live: Arc<LiveRun>,
    ) {
        let permit = self.queue.wait_for_slot(id, &live.stop_notify).await;
        let stop = StopRequest::load(&live.stop);
        let outcome = match permit {
            Some(_) if stop == StopRequest::None => {
                let this = self.clone();
                let live = live.clone();
                self.training_threads
                    .run(move || this.train(id, prepared, resume_after_epoch, &live))
                    .await
                    .unwrap_or_else(|e| Outcome::Failed(format!("the training thread failed: {e}")))
            }
            _ => Outcome::Stopped(match stop {
                StopRequest::None => StopRequest::Interrupt,
                request => request,
            }),
        };
        // Recording the end flushes the store: off the async runtime.
        let this = self.clone();
        let _ = blocking(move || {
            this.finish(id, &live, outcome);
            Ok(())
        })
        .await;
        // The slot is freed only once the end is recorded, so the next queued run starts after
        // this one has finished, as recorded (its `started_at_ms` ≥ this one's `finished_at_ms`).
        drop(permit);
    }

    /// Marks the run running and trains it to its end (blocking).
    fn train(
        &self,
        id: RunId,
        mut prepared: Prepared,
        resume_after_epoch: u32,
        live: &LiveRun,
    ) -> Outcome {
        // The files were checked when the run was started, but it may have waited in the queue
        // since, and a path under a root may now lead out of it: check again just before they
        // are read (they are then opened without following links).
        if let Err(err) = self.data_roots.confine(&mut prepared.spec) {
            return Outcome::Failed(err.to_string());
        }
        let started = self.store.update_run(id, |run| {
            run.status = RunStatus::Running;
            run.started_at_ms = now_ms();
        });
        let record = match started {
            Ok(record) => record,
            Err(err) => return Outcome::Failed(err.to_string()),
        };
        live.send(RunEvent::Status {
            status: RunStatus::Running,
            reason: String::new(),
        });
        tracing::info!(run = %id, "run started");
        let kept_epochs = match resume_after_epoch {
            0 => Ok(Vec::new()),
            after => self
                .store
                .epochs(id, 1)
                .map(|epochs| epochs.into_iter().filter(|e| e.epoch <= after).collect()),
        };
        let kept_epochs = match kept_epochs {
            Ok(kept) => kept,
            Err(err) => return Outcome::Failed(err.to_string()),
        };
        let sink = ManagedRun {
            id,
            store: &self.store,
            live,
        };
        train::worker::train(&TrainJob {
            run_id: id,
            spec: &prepared.spec,
            resolved: &prepared.resolved,
            device: prepared.device,
            record,
            kept_epochs,
            sink: &sink,
            stop: &live.stop,
            checkpoint_dir: self.checkpoint_dir(id),
            keep_checkpoints: self.keep_checkpoints,
            resume_after_epoch,
            init_from: prepared.init.as_ref().map(|init| init.path.clone()),
        })
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
