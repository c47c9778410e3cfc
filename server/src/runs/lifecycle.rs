//! Starting, resuming, cancelling, watching and deleting runs, and stopping them all at shutdown.

use std::{sync::atomic::Ordering, sync::Arc, time::Duration};

use tokio::sync::broadcast;

use super::{
    blocking, external, live, prepare::Prepared, resume_point::choose_resume_point, Baseline,
    RunStatus, Runs, StartRequest, Started, Watch,
};
use crate::{
    domain::{RunConfig, RunEvent, RunId, RunRecord, RunState, StopRequest},
    error::{Result, StrataError},
    spec::{validate_labels, validate_sweep_trial},
    store::now_ms,
    train,
};

/// How long shutdown waits for running runs to stop at a batch boundary and record it.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);
/// How long `cancel` waits for a running run to reach a batch boundary before answering.
const CANCEL_WAIT: Duration = Duration::from_secs(30);
/// Longest reason a cancel may give for a run's end (longer is cut).
const MAX_CANCEL_REASON_BYTES: usize = 1024;

impl Runs {
    pub(super) fn check_accepting(&self) -> Result<()> {
        if self.shutting_down.load(Ordering::Acquire) {
            return Err(StrataError::ShuttingDown);
        }
        Ok(())
    }

    /// Validates the request, resolves the rate table and, unless it is a dry run, stores the
    /// run as queued (durably) and queues it — with its single-rate twin right behind it, when
    /// one is asked for.
    pub async fn start(self: &Arc<Self>, request: StartRequest) -> Result<Started> {
        self.check_accepting()?;
        let StartRequest {
            config,
            name,
            tags,
            dry_run,
            baseline,
            sweep,
        } = request;
        validate_labels(&name, &tags)?;
        if let Some(trial) = &sweep {
            validate_sweep_trial(trial)?;
            if baseline.is_some() {
                return Err(StrataError::invalid(
                    "baseline",
                    "a sweep's trial has no single-rate twin; sweep the uniform rate as a trial instead",
                ));
            }
        }
        let prepared = self.prepare(config, true).await?;
        let parameters = prepared.rate_table();
        let config = prepared.spec.config.clone();
        let (facts, warnings) = (prepared.facts(), prepared.warnings());
        // The twin is prepared before anything is stored: a run is never stored without the
        // twin it asked for.
        let twin = match baseline {
            Some(baseline) => Some(self.prepare(twin_config(&config, baseline), true).await?),
            None => None,
        };
        if dry_run {
            return Ok(Started {
                id: None,
                parameters,
                config,
                facts,
                warnings,
                twin: None,
            });
        }

        // Places in the queue for the run and its twin, before anything is stored.
        let places = 1 + usize::from(twin.is_some());
        self.queue.reserve(places)?;
        let id = self.store.next_run_id();
        let twin_id = twin.as_ref().map(|_| self.store.next_run_id());
        let mut runs = vec![(
            RunRecord {
                name: name.clone(),
                tags: tags.clone(),
                created_at_ms: now_ms(),
                device: prepared.device.label(),
                twin: twin_id,
                sweep,
                ..RunRecord::queued(id, config.clone(), parameters.clone(), prepared.facts())
            },
            prepared,
        )];
        if let (Some(twin_id), Some(twin)) = (twin_id, twin) {
            let named = if name.is_empty() {
                format!("single-rate twin of {id}")
            } else {
                format!("{name} (single-rate twin)")
            };
            runs.push((
                RunRecord {
                    name: truncated_name(named),
                    tags,
                    created_at_ms: now_ms(),
                    device: twin.device.label(),
                    twin_of: Some(id),
                    ..RunRecord::queued(
                        twin_id,
                        twin.spec.config.clone(),
                        twin.rate_table(),
                        twin.facts(),
                    )
                },
                twin,
            ));
        }
        // On a task of its own: a client that goes away cannot cut storing and queueing in half
        // (a run stored but never queued would stay "queued" until a restart).
        let this = self.clone();
        let stored = tokio::spawn(async move { this.store_and_enqueue(runs).await })
            .await
            .map_err(|e| StrataError::Internal(format!("storing the run failed: {e}")))
            .and_then(|stored| stored);
        if let Err(err) = stored {
            self.queue.unreserve(places);
            return Err(err);
        }
        tracing::info!(run = %id, dataset = %config.dataset, model = %config.model, "run queued");
        if let Some(twin_id) = twin_id {
            tracing::info!(run = %twin_id, twin_of = %id, "single-rate twin queued");
        }
        Ok(Started {
            id: Some(id),
            parameters,
            config,
            facts,
            warnings,
            twin: twin_id,
        })
    }

    /// Stores new runs as queued — their records in one durable write, then their folders — and
    /// queues them in order: a run and its twin are stored together, and queued only once both
    /// are.
    async fn store_and_enqueue(self: Arc<Self>, runs: Vec<(RunRecord, Prepared)>) -> Result<()> {
        let mut claimed = Vec::new();
        for (run, _) in &runs {
            match self.live.claim(run.id) {
                Ok(live) => claimed.push(live),
                Err(err) => {
                    for (run, _) in runs.iter().take(claimed.len()) {
                        self.live.release(run.id);
                    }
                    return Err(err);
                }
            }
        }
        let release = |this: &Self| {
            for (run, _) in &runs {
                this.live.release(run.id);
            }
        };
        // A start racing shutdown: the workers may be closed already.
        if let Err(err) = self.check_accepting() {
            release(&self);
            return Err(err);
        }
        let records: Vec<RunRecord> = runs.iter().map(|(run, _)| run.clone()).collect();
        let folders: Vec<_> = records.iter().map(|r| self.checkpoint_dir(r.id)).collect();
        let store = self.store.clone();
        let stored = blocking(move || {
            store.put_runs(&records)?;
            // The folders after the records: a run folder always implies a run record, which is
            // how start-up tells a store that lost runs from one that never had them.
            for (run, folder) in records.iter().zip(&folders) {
                let record = crate::store::record::encode_run(run);
                if let Err(err) = train::checkpoint::file::create_run_folder(folder, &record) {
                    let reason =
                        format!("cannot create the run's folder {}: {err}", folder.display());
                    for run in &records {
                        store.update_run(run.id, |run| {
                            run.status = RunStatus::Failed;
                            run.reason = reason.clone();
                            run.finished_at_ms = now_ms();
                        })?;
                    }
                    return Err(StrataError::storage(reason));
                }
            }
            Ok(())
        })
        .await;
        if let Err(err) = stored {
            release(&self);
            return Err(err);
        }
        for ((run, prepared), live) in runs.into_iter().zip(claimed) {
            self.live.changed(run.id);
            self.enqueue(run.id, prepared, 0, live);
        }
        Ok(())
    }

    /// Continues an interrupted, cancelled or failed run (or a completed one, to more epochs)
    /// from the checkpoint of its last stored epoch — or, when that one is damaged or missing, from its
    /// newest intact checkpoint (see [`choose_resume_point`]).
    pub async fn resume(self: &Arc<Self>, run: &str, epochs: u32) -> Result<RunState> {
        self.check_accepting()?;
        let id = self.resolve(run).await?;
        let state = {
            let (this, named) = (self.clone(), run.to_string());
            blocking(move || this.state_of(id, &named)).await?
        };
        if state.record.is_external() {
            return Err(external::not_controlled_here(id, "resume"));
        }
        let (status, done) = (state.record.status, state.epochs_done);
        // A failed run resumes too: its worker may have crashed or run out of memory, and a
        // failure of its data or config fails again, with the reason, when it is prepared below.
        let resumable = matches!(
            status,
            RunStatus::Interrupted | RunStatus::Cancelled | RunStatus::Failed
        ) || (status == RunStatus::Completed && epochs > done);
        if !resumable {
            return Err(StrataError::FailedPrecondition(format!(
                "run {id} is {}; only interrupted, cancelled or failed runs resume (a completed one with a larger --epochs)",
                status.label()
            )));
        }
        let mut config = state.record.config.clone();
        if epochs > 0 {
            config.epochs = Some(epochs);
        }
        // Past its first epoch a run resumes from its own checkpoint, not its source's.
        let prepared = self.prepare(config, done == 0).await?;
        if done >= prepared.spec.epochs {
            return Err(StrataError::FailedPrecondition(format!(
                "run {id} already has {done} epoch(s); resume with --epochs N (N > {done}) to train further"
            )));
        }
        let checkpoint_dir = self.checkpoint_dir(id);
        self.queue.reserve(1)?;
        let live = match self.live.claim(id) {
            Ok(live) => live,
            Err(err) => {
                self.queue.unreserve(1);
                return Err(err);
            }
        };
        let config = prepared.spec.config.clone();
        let this = self.clone();
        let updated = blocking(move || {
            // Preparing took a while and the run was not claimed meanwhile: another resume may
            // have trained it since. Act only on the state this request was checked against.
            let current = this.state_of(id, &id.to_string())?;
            if current.record.status != status || current.epochs_done != done {
                return Err(StrataError::FailedPrecondition(format!(
                    "run {id} changed while this resume was being prepared (it is now {} with {} epoch(s)); look at it again before resuming",
                    current.record.status.label(),
                    current.epochs_done
                )));
            }
            let start =
                choose_resume_point(&this.store, id, &checkpoint_dir, &this.data_dir, done)?;
            this.store.update_run(id, |run| {
                run.status = RunStatus::Queued;
                run.reason = start.reason.clone();
                run.config = config;
                run.finished_at_ms = 0;
                run.resumes += 1;
            })?;
            Ok(start)
        })
        .await;
        let start = match updated {
            Ok(start) => start,
            Err(err) => {
                self.live.release(id);
                self.queue.unreserve(1);
                return Err(err);
            }
        };
        let after_epoch = start.after_epoch;
        self.live.changed(id);
        self.enqueue(id, prepared, after_epoch, live);
        if after_epoch < done {
            tracing::warn!(run = %id, after_epoch, stored_epochs = done, reason = %start.reason, "run resumed from an older checkpoint");
        } else {
            tracing::info!(run = %id, after_epoch, "run resumed");
        }
        let this = self.clone();
        blocking(move || this.state_of(id, &id.to_string())).await
    }

    /// Deletes a run that is not queued or running: its record, epochs and checkpoints.
    ///
    /// The folder is renamed to `ID.deleted` first, then the records go, then the folder: a crash
    /// at any point leaves a state the start-up check recognises (never a run folder without a
    /// record, which would read as a damaged store).
    pub async fn delete(self: &Arc<Self>, run: &str) -> Result<RunId> {
        let id = self.resolve(run).await?;
        let this = self.clone();
        blocking(move || this.delete_idle(id)).await
    }

    fn delete_idle(&self, id: RunId) -> Result<RunId> {
        let dir = self.checkpoint_dir(id);
        let runs_dir = crate::integrity::runs_dir(&self.data_dir);
        let deleting = runs_dir.join(format!("{id}{}", crate::integrity::DELETING_SUFFIX));
        // Holding the live registry keeps a concurrent resume from claiming the run meanwhile.
        let has_folder = self.live.while_idle(id, || {
            let has_folder = dir.exists();
            if has_folder {
                std::fs::rename(&dir, &deleting)
                    .and_then(|()| crate::durable::sync_dir(&runs_dir))
                    .map_err(|e| {
                        StrataError::storage_from(format!("cannot delete {}", dir.display()), e)
                    })?;
            }
            self.analyses.forget(id);
            if let Err(err) = self.store.delete_run(id) {
                if has_folder {
                    // Put the folder back: the run was not deleted.
                    let _ = std::fs::rename(&deleting, &dir)
                        .and_then(|()| crate::durable::sync_dir(&runs_dir));
                }
                return Err(err);
            }
            Ok(has_folder)
        })?;
        if has_folder {
            let removed = std::fs::remove_dir_all(&deleting)
                .and_then(|()| crate::durable::sync_dir(&runs_dir));
            if let Err(err) = removed {
                tracing::warn!(run = %id, error = %err, "could not remove the run's checkpoints; the next start removes them");
            }
        }
        tracing::info!(run = %id, "run deleted");
        self.live.changed(id);
        Ok(id)
    }

    /// Stops a queued or running run and waits (briefly) until its end is recorded. `reason`
    /// (when not empty) is recorded as why it ended.
    pub async fn cancel(self: &Arc<Self>, run: &str, reason: String) -> Result<RunState> {
        let id = self.resolve(run).await?;
        let named = run.to_string();
        let external = {
            let (store, named) = (self.store.clone(), named.clone());
            blocking(move || store.get_run(id)?.ok_or(StrataError::RunNotFound(named)))
                .await?
                .is_external()
        };
        if external {
            return Err(external::not_controlled_here(id, "cancel"));
        }
        let Some(live) = self.live.get(id) else {
            let this = self.clone();
            let state = blocking(move || this.state_of(id, &named)).await?;
            return Err(StrataError::FailedPrecondition(format!(
                "run {id} is {}; only queued or running runs can be cancelled",
                state.record.status.label()
            )));
        };
        let mut events = live.subscribe();
        live.set_cancel_reason(crate::error::truncated(
            crate::spec::printable_reason(reason),
            MAX_CANCEL_REASON_BYTES,
        ));
        live.request_stop(StopRequest::Cancel);
        drop(live);
        let ended = async {
            loop {
                match events.recv().await {
                    Ok(RunEvent::Status { status, .. }) if status.is_terminal() => break,
                    Err(broadcast::error::RecvError::Closed) => break,
                    _ => {}
                }
            }
        };
        let _ = tokio::time::timeout(CANCEL_WAIT, ended).await;
        let this = self.clone();
        blocking(move || this.state_of(id, &named)).await
    }

    /// Streams the run's stored epochs from `from_epoch`, then its live events, with no gap and
    /// no duplicate: the watcher subscribes before reading the store, and drops live epochs it
    /// already sent from history.
    pub async fn watch(self: &Arc<Self>, run: &str, from_epoch: u32) -> Result<Watch> {
        let id = self.resolve(run).await?;
        let subscription = self.live.get(id).map(|live| live.subscribe());
        let (store, named) = (self.store.clone(), run.to_string());
        let record =
            blocking(move || store.get_run(id)?.ok_or(StrataError::RunNotFound(named))).await?;
        Ok(Watch {
            metric: record.facts.task.metric(),
            events: live::spawn_watcher(self.store.clone(), id, from_epoch, subscription),
        })
    }

    /// The daemon-wide feed of runs that were stored, changed status, gained an epoch or were
    /// deleted: ids only, for a view that re-reads what it shows. A receiver that falls more than
    /// [`CHANGES_BUFFER_EVENTS`](super::CHANGES_BUFFER_EVENTS) behind is told it lagged.
    pub fn subscribe_changes(&self) -> tokio::sync::broadcast::Receiver<RunId> {
        self.live.subscribe_changes()
    }

    /// Stops taking work, interrupts queued and running runs at a batch boundary, waits for them
    /// to record it, and flushes the store.
    pub async fn shutdown(self: &Arc<Self>) {
        self.shutting_down.store(true, Ordering::Release);
        self.stopping.cancel();
        self.interrupt_external().await;
        self.interrupt_queued().await;
        for run in self.live.all() {
            run.request_stop(StopRequest::Interrupt);
        }
        self.tasks.close();
        // One grace period however often this is called (the server's shutdown and the
        // daemon's exit both call it): a run that does not stop delays exit once, not twice.
        let deadline = *self
            .shutdown_deadline
            .get_or_init(|| tokio::time::Instant::now() + SHUTDOWN_GRACE);
        if tokio::time::timeout_at(deadline, self.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!("runs did not stop within {SHUTDOWN_GRACE:?}; they will be marked interrupted on the next start");
        }
        let store = self.store.clone();
        if let Err(err) = blocking(move || store.flush()).await {
            tracing::error!(error = %err, "could not flush the store");
        }
    }
}

impl Runs {
    /// Stops the queued runs and records them all interrupted in one durable write: shutdown
    /// takes one sync however many wait (at `--max-queued-runs`, one per run took longer than
    /// the grace). Their stop flags are set while none can leave the queue, so none of them
    /// starts training after its end is recorded.
    async fn interrupt_queued(self: &Arc<Self>) {
        let queued: Vec<Arc<live::LiveRun>> = self.queue.while_held(|waiting| {
            waiting
                .iter()
                .filter_map(|&id| self.live.get(id))
                .inspect(|run| run.set_stop(StopRequest::Interrupt))
                .collect()
        });
        if queued.is_empty() {
            return;
        }
        let reason = "stratad shut down while the run was queued; resume it to continue";
        let ids: Vec<RunId> = queued.iter().map(|run| run.id()).collect();
        let store = self.store.clone();
        let recorded = blocking(move || {
            store.update_runs(&ids, |run| {
                run.status = RunStatus::Interrupted;
                run.reason = reason.to_string();
                run.finished_at_ms = now_ms();
            })
        })
        .await;
        match recorded {
            Ok(()) => queued
                .iter()
                .for_each(|run| run.end_recorded(reason.to_string())),
            Err(err) => {
                tracing::error!(error = %err, "could not record the queued runs as interrupted; each records its own end")
            }
        }
        for run in &queued {
            run.request_stop(StopRequest::Interrupt);
        }
    }
}

/// The single-rate twin's config: the run's, with every group at one rate (the baseline's, else
/// the run's base rate — a slice's top rate, its head's) and nothing frozen — same data, split, seed, initialization (including a
/// fine-tune's source checkpoint), model, optimizer, schedule and epochs.
fn twin_config(config: &RunConfig, baseline: Baseline) -> RunConfig {
    // A `--lr-slice LO:HI` run has no base rate: its last group (the head) trains at HI.
    let slice_top = config
        .lr_slice
        .split_once(':')
        .and_then(|(_, hi)| hi.trim().parse::<f64>().ok());
    RunConfig {
        lr: baseline.lr.or(config.lr).or(slice_top),
        layer_lr: Vec::new(),
        freeze: Vec::new(),
        lr_decay: None,
        lr_slice: String::new(),
        ..config.clone()
    }
}

/// A run's name within the length names are allowed (a twin's is its run's plus a suffix).
fn truncated_name(name: String) -> String {
    name.chars().take(crate::spec::MAX_NAME_CHARS).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_twin_trains_every_group_at_one_rate_with_nothing_frozen() {
        let config = RunConfig {
            dataset: "spirals".into(),
            lr: Some(1e-2),
            layer_lr: vec!["layer0=1e-3".into()],
            freeze: vec!["layer1@3".into()],
            lr_decay: Some(0.5),
            seed: Some(7),
            epochs: Some(9),
            ..RunConfig::default()
        };
        let twin = twin_config(&config, Baseline::default());
        assert_eq!(twin.lr, Some(1e-2));
        assert!(twin.layer_lr.is_empty() && twin.freeze.is_empty());
        assert_eq!(twin.lr_decay, None);
        assert_eq!((twin.seed, twin.epochs), (Some(7), Some(9)));
        assert_eq!(
            twin_config(&config, Baseline { lr: Some(3e-3) }).lr,
            Some(3e-3)
        );
        // A slice has no base rate: the twin takes its top (the head's) rate, not a default.
        let sliced = RunConfig {
            lr: None,
            lr_slice: "1e-5:1e-4".into(),
            ..RunConfig::default()
        };
        let twin = twin_config(&sliced, Baseline::default());
        assert_eq!(twin.lr, Some(1e-4));
        assert_eq!(twin.lr_slice, "");
        assert_eq!(truncated_name("x".repeat(300)).chars().count(), 200);
    }
}
