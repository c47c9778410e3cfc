//! Runs trained outside the daemon: created running, fed epochs in batches, ended by their client
//! — or by silence, after the daemon's `--external-timeout`.
//!
//! Each external run has one [`ExternalLog`] behind an async mutex while it is live: a batch,
//! a finish and the silence watch take it in turn, so a batch's checks (numbering, repeats)
//! and its write see the same stored epochs. Its live events go through the same [`LiveRun`]
//! channel as a trained run's, so watching is the same; its stop flag is never read (cancel and
//! resume refuse external runs before they touch it).

use std::{
    collections::HashMap,
    sync::{Arc, Mutex as SyncMutex},
    time::Duration,
};

use tokio::{sync::Mutex, time::Instant};

mod validate;

pub(super) use validate::check_extra_name;
use validate::*;
pub use validate::{MAX_LOG_BATCH_EPOCHS, MIN_TARGET_VARIANCE};

use super::{blocking, live::LiveRun, Runs};
use crate::{
    domain::{
        DataFacts, EpochMetrics, FrozenUntil, GroupStats, ParamInit, ParameterRate, RunConfig,
        RunEvent, RunId, RunOrigin, RunRecord, RunState, RunStatus, TaskFacts, ValMetric,
    },
    error::{truncated, Result, StrataError},
    spec::{shown_number, validate_labels, MAX_NAME_CHARS},
    store::now_ms,
};

/// How long an external run may log nothing before it is marked interrupted, by default.
pub const DEFAULT_EXTERNAL_TIMEOUT: Duration = Duration::from_secs(600);

/// An external run to create: what its client says it is.
#[derive(Clone, Debug)]
pub struct CreateExternal {
    pub name: String,
    pub tags: Vec<String>,
    pub hyperparameters: Vec<(String, String)>,
    pub dataset: String,
    pub model: String,
    /// The parameter groups in the model's order, each with its base rate.
    pub groups: Vec<(String, f64)>,
    pub task: TaskFacts,
    pub parameter_count: u64,
    pub train_rows: u64,
    pub val_rows: u64,
    pub steps_per_epoch: u64,
    /// The key its client chose to find it again (empty: none); see [`Runs::create_external`].
    pub client_key: String,
}

/// What CreateRun did.
#[derive(Clone, Debug)]
pub struct Created {
    pub state: RunState,
    /// The client key named a run already stored: nothing was created.
    pub existing: bool,
}

/// An epoch as a client logs it: its metrics, and which metric it says `val_metric` is (`None`:
/// not measured, or not validated at all).
#[derive(Clone, Debug)]
pub struct LoggedEpoch {
    pub metrics: EpochMetrics,
    pub metric: Option<ValMetric>,
}

/// What a batch did.
#[derive(Clone, Copy, Debug)]
pub struct Logged {
    /// New epochs stored (repeats of stored epochs are not counted).
    pub stored: u32,
    pub epochs_done: u32,
    pub status: RunStatus,
}

/// How a client ends its run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExternalEnd {
    Completed,
    Failed,
    Cancelled,
}

/// A live external run's log: when it last heard from its client, whether it has ended, and
/// what its step log holds (read on its first LogSteps).
pub(super) struct ExternalLog {
    pub(super) last_heard: Instant,
    pub(super) ended: bool,
    live: Arc<LiveRun>,
    pub(super) steps: Option<super::steps::StepsSoFar>,
}

/// The live external runs, at most `max` of them (`--max-external-runs`).
pub(super) struct ExternalRuns {
    runs: SyncMutex<HashMap<RunId, Arc<Mutex<ExternalLog>>>>,
    /// Live runs and runs being created: what the limit counts.
    taken: SyncMutex<usize>,
    max: usize,
    /// Every stored run's client key, read from the store on the first CreateRun that has one.
    /// Held while a keyed run is created or found again: two calls with one key never make two
    /// runs.
    keys: Mutex<Option<HashMap<String, RunId>>>,
}

impl ExternalRuns {
    pub fn new(max: usize) -> Self {
        ExternalRuns {
            runs: SyncMutex::default(),
            taken: SyncMutex::new(0),
            max: max.max(1),
            keys: Mutex::new(None),
        }
    }

    /// Takes a place for a run being created, or says there is none.
    fn reserve(&self) -> Result<()> {
        let mut taken = self.taken.lock().unwrap_or_else(|p| p.into_inner());
        if *taken >= self.max {
            return Err(StrataError::AtLimit(format!(
                "{taken} runs logged from outside are live, as many as stratad takes (--max-external-runs {}); finish some (FinishRun), let silent ones time out (--external-timeout), or raise the limit",
                self.max
            )));
        }
        *taken += 1;
        Ok(())
    }

    /// Gives back the place of a run that ended (or was never created).
    fn unreserve(&self) {
        let mut taken = self.taken.lock().unwrap_or_else(|p| p.into_inner());
        *taken = taken.saturating_sub(1);
    }

    pub(super) fn get(&self, id: RunId) -> Option<Arc<Mutex<ExternalLog>>> {
        self.runs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&id)
            .cloned()
    }

    fn insert(&self, id: RunId, log: Arc<Mutex<ExternalLog>>) {
        self.runs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, log);
    }

    fn remove(&self, id: RunId) {
        let removed = self
            .runs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&id);
        if removed.is_some() {
            self.unreserve();
        }
    }

    fn all(&self) -> Vec<(RunId, Arc<Mutex<ExternalLog>>)> {
        self.runs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(id, log)| (*id, log.clone()))
            .collect()
    }
}

/// The refusal of cancel and resume for a run logged from outside.
pub(super) fn not_controlled_here(id: RunId, what: &str) -> StrataError {
    StrataError::FailedPrecondition(format!(
        "run {id} was logged from outside; stratad does not train it, so it cannot {what} it — {}",
        match what {
            "resume" => "continue training in your own loop and log to a new run",
            _ => "stop the loop that logs it (its client ends it with FinishRun)",
        }
    ))
}

impl Runs {
    /// Stores a new external run, running, and starts its silence watch. With a client key the
    /// daemon already holds, answers that run instead — running again if it was interrupted
    /// (see the proto's `CreateRunRequest.client_key`).
    pub async fn create_external(self: &Arc<Self>, request: CreateExternal) -> Result<Created> {
        self.check_accepting()?;
        let key = request.client_key.clone();
        // Every field checked first, whether the run is then created or found again.
        let record = self.external_record(request)?;
        if key.is_empty() {
            let state = self.store_external(record).await?;
            return Ok(Created {
                state,
                existing: false,
            });
        }
        let mut keys = self.external.keys.lock().await;
        if keys.is_none() {
            let store = self.store.clone();
            *keys = Some(blocking(move || store.client_keys()).await?);
        }
        let keys = keys.get_or_insert_with(HashMap::new);
        if let Some(&id) = keys.get(&key) {
            // A key whose run was deleted since is free again.
            if let Some(state) = self.find_again(id, &key, &record).await? {
                return Ok(Created {
                    state,
                    existing: true,
                });
            }
        }
        let state = self.store_external(record).await?;
        keys.insert(key, state.record.id);
        Ok(Created {
            state,
            existing: false,
        })
    }

    /// The run a client key names, checked against what the client says it is now; running again
    /// if it was interrupted. `None` when the run is gone (deleted).
    async fn find_again(
        self: &Arc<Self>,
        id: RunId,
        key: &str,
        asked: &RunRecord,
    ) -> Result<Option<RunState>> {
        let store = self.store.clone();
        let Some(stored) = blocking(move || store.get_run(id)).await? else {
            return Ok(None);
        };
        check_same_run(key, &stored, asked)?;
        if let Some(log) = self.external.get(id) {
            let mut log = log.lock().await;
            if !log.ended {
                // Its client is back before the silence timeout: the same run, kept alive.
                log.last_heard = Instant::now();
                drop(log);
                let this = self.clone();
                return blocking(move || this.state_of(id, &id.to_string()))
                    .await
                    .map(Some);
            }
        }
        let store = self.store.clone();
        let Some(stored) = blocking(move || store.get_run(id)).await? else {
            return Ok(None);
        };
        if stored.status != RunStatus::Interrupted && stored.status != RunStatus::Running {
            // Ended by its client (or diverged): answered as it is.
            let this = self.clone();
            return blocking(move || this.state_of(id, &id.to_string()))
                .await
                .map(Some);
        }
        self.reopen_external(id).await.map(Some)
    }

    /// An interrupted external run running again, its epochs kept: its client is back.
    async fn reopen_external(self: &Arc<Self>, id: RunId) -> Result<RunState> {
        let live = self.claim_external(id)?;
        let store = self.store.clone();
        let reopened = blocking(move || {
            store.update_run(id, |run| {
                run.status = RunStatus::Running;
                run.reason = String::new();
                run.finished_at_ms = 0;
                run.resumes += 1;
            })
        })
        .await;
        if let Err(err) = reopened {
            self.live.release(id);
            self.external.unreserve();
            return Err(err);
        }
        self.watch_external(id, live);
        tracing::info!(run = %id, "external run continued by its client");
        let this = self.clone();
        blocking(move || this.state_of(id, &id.to_string())).await
    }

    /// A place among the live external runs, and the run's live channel.
    fn claim_external(&self, id: RunId) -> Result<Arc<LiveRun>> {
        self.external.reserve()?;
        self.live
            .claim(id)
            .inspect_err(|_| self.external.unreserve())
    }

    /// Registers a live external run and starts its silence watch.
    fn watch_external(self: &Arc<Self>, id: RunId, live: Arc<LiveRun>) {
        let log = Arc::new(Mutex::new(ExternalLog {
            last_heard: Instant::now(),
            ended: false,
            live,
            steps: None,
        }));
        self.external.insert(id, log.clone());
        self.spawn_silence_watch(id, log);
        self.live.changed(id);
    }

    /// Stores a new external run's record and folder, running, and starts its silence watch.
    async fn store_external(self: &Arc<Self>, record: RunRecord) -> Result<RunState> {
        let id = record.id;
        let live = self.claim_external(id)?;
        let store = self.store.clone();
        let folder = self.checkpoint_dir(id);
        let stored = {
            let record = record.clone();
            blocking(move || {
                store.put_run(&record)?;
                // The folder after the record, as for a trained run: its `run.pb` and, as epochs
                // come, `epochs.pb` are the second copies a damaged store is rebuilt from.
                let copy = crate::store::record::encode_run(&record);
                if let Err(err) = crate::train::checkpoint::file::create_run_folder(&folder, &copy)
                {
                    let reason =
                        format!("cannot create the run's folder {}: {err}", folder.display());
                    store.update_run(record.id, |run| {
                        run.status = RunStatus::Failed;
                        run.reason = reason.clone();
                        run.finished_at_ms = now_ms();
                    })?;
                    return Err(StrataError::storage(reason));
                }
                Ok(())
            })
            .await
        };
        if let Err(err) = stored {
            self.live.release(id);
            self.external.unreserve();
            return Err(err);
        }
        self.watch_external(id, live);
        tracing::info!(run = %id, "external run created");
        Ok(RunState {
            record,
            epochs_done: 0,
            queue_position: 0,
            worker_pid: 0,
            waiting: String::new(),
            worker: String::new(),
            worker_losses: 0,
        })
    }

    /// The run's record, once every field is checked.
    fn external_record(&self, request: CreateExternal) -> Result<RunRecord> {
        let CreateExternal {
            name,
            tags,
            mut hyperparameters,
            dataset,
            model,
            groups,
            task,
            parameter_count,
            train_rows,
            val_rows,
            steps_per_epoch,
            client_key,
        } = request;
        validate_labels(&name, &tags)?;
        check_client_key(&client_key)?;
        for (field, text) in [("dataset", &dataset), ("model", &model)] {
            check_text(field, text, MAX_NAME_CHARS)?;
            if text.trim().is_empty() {
                return Err(StrataError::invalid(
                    field,
                    "required: describe it in words (e.g. 'CIFAR-10', 'resnet18')",
                ));
            }
        }
        if hyperparameters.len() > MAX_HYPERPARAMETERS {
            return Err(StrataError::invalid(
                "hyperparameters",
                format!("at most {MAX_HYPERPARAMETERS}"),
            ));
        }
        for (key, value) in &hyperparameters {
            check_text("hyperparameters", key, MAX_KEY_CHARS)?;
            if key.is_empty() {
                return Err(StrataError::invalid("hyperparameters", "a key is empty"));
            }
            check_text(&format!("hyperparameters[{key}]"), value, MAX_NAME_CHARS)?;
        }
        hyperparameters.sort();
        check_groups(&groups)?;
        let task_reason = match task {
            TaskFacts::Classification { classes } if classes < 2 => {
                return Err(StrataError::invalid(
                    "classes",
                    format!("{classes}: a classification has at least 2 classes"),
                ))
            }
            TaskFacts::Classification { classes } => {
                format!("logged from outside: classification of {classes} classes")
            }
            TaskFacts::Regression { target_variance } => match target_variance {
                Some(v) if v.is_finite() && v >= MIN_TARGET_VARIANCE => {
                    "logged from outside: regression".to_string()
                }
                given => {
                    return Err(StrataError::invalid(
                        "target_variance",
                        format!(
                            "{}: the variance of the validation targets must be finite and at least {MIN_TARGET_VARIANCE:e} (targets that barely vary leave nothing to judge a regression's loss against; rescale them)",
                            given.map_or("missing".to_string(), shown_number)
                        ),
                    ))
                }
            },
        };
        let parameters = groups
            .iter()
            .map(|(group, lr)| ParameterRate {
                name: group.clone(),
                group: group.clone(),
                shape: Vec::new(),
                lr: *lr,
                frozen: FrozenUntil::Never,
                init: ParamInit::Fresh,
            })
            .collect();
        let config = RunConfig {
            dataset,
            model,
            task: match task {
                TaskFacts::Classification { .. } => "classification".into(),
                TaskFacts::Regression { .. } => "regression".into(),
            },
            ..RunConfig::default()
        };
        let facts = DataFacts {
            train_rows,
            val_rows,
            steps_per_epoch,
            task_reason,
            ..DataFacts::of_task(task)
        };
        let id = self.store.next_run_id();
        let now = now_ms();
        Ok(RunRecord {
            name,
            tags,
            status: RunStatus::Running,
            created_at_ms: now,
            started_at_ms: now,
            parameter_count,
            device: "external".into(),
            origin: RunOrigin::External {
                hyperparameters,
                client_key,
            },
            ..RunRecord::queued(id, config, parameters, facts)
        })
    }

    /// Stores a batch of an external run's epochs (its new ones, with one sync), then streams
    /// them; see the proto's LogEpochs for the rules. A refused batch stores nothing.
    pub async fn log_epochs(
        self: &Arc<Self>,
        run: &str,
        epochs: Vec<LoggedEpoch>,
    ) -> Result<Logged> {
        if epochs.len() > MAX_LOG_BATCH_EPOCHS {
            return Err(StrataError::invalid(
                "epochs",
                format!(
                    "{} epochs in one batch; at most {MAX_LOG_BATCH_EPOCHS} (send the rest in another call)",
                    epochs.len()
                ),
            ));
        }
        let id = self.resolve(run).await?;
        let log = self.live_external(id, run, "log epochs to").await?;
        let mut log = log.lock().await;
        if log.ended {
            return Err(self.not_running(id, run, "log epochs to").await);
        }
        let first = epochs.first().map_or(u32::MAX, |e| e.metrics.epoch);
        let (store, named) = (self.store.clone(), run.to_string());
        let sent = epochs.len();
        let (record, stored) = blocking(move || {
            let (record, done) = store
                .get_run_with_epochs_done(id)?
                .ok_or(StrataError::RunNotFound(named))?;
            // Only the stored epochs this batch sends again are compared: at most its own
            // length, however long the run.
            let resent = (done as usize + 1).saturating_sub(first.max(1) as usize);
            let stored = store.epoch_page(id, first.max(1), resent.min(sent))?;
            Ok((record, (stored, done)))
        })
        .await?;
        let (stored, done) = stored;
        let new = check_batch(&record, &epochs, &stored, done)?;
        log.last_heard = Instant::now();
        let diverged = new.iter().find(|e| e.diverged()).map(|e| {
            let (which, value) = if e.train_loss.is_finite() {
                ("validation", e.val_loss)
            } else {
                ("training", e.train_loss)
            };
            format!("the {which} loss became {value} at epoch {}", e.epoch)
        });
        let count = new.len() as u32;
        let epochs_done = done + count;
        if !new.is_empty() {
            let (store, folder) = (self.store.clone(), self.checkpoint_dir(id));
            let to_store = new.clone();
            blocking(move || {
                // The run's epoch log first, then the store, as a trained run's: a crash in
                // between leaves the log ahead by this batch at most, which start-up stores.
                crate::store::epoch_log::append_all(&folder, &to_store).map_err(|e| {
                    StrataError::storage_from(
                        format!(
                            "cannot append to the run's epoch log in {}",
                            folder.display()
                        ),
                        e,
                    )
                })?;
                store.put_epochs(id, &to_store)
            })
            .await?;
            // Streamed only once they are on the disk.
            for epoch in new {
                log.live.send(RunEvent::Epoch(epoch));
            }
        }
        let status = match diverged {
            Some(reason) => {
                self.end_external(id, &mut log, RunStatus::Diverged, reason)
                    .await?;
                RunStatus::Diverged
            }
            None => RunStatus::Running,
        };
        Ok(Logged {
            stored: count,
            epochs_done,
            status,
        })
    }

    /// Ends an external run as its client says.
    pub async fn finish_external(
        self: &Arc<Self>,
        run: &str,
        end: ExternalEnd,
        reason: String,
    ) -> Result<RunState> {
        let id = self.resolve(run).await?;
        let log = self.live_external(id, run, "finish").await?;
        let mut log = log.lock().await;
        if log.ended {
            return Err(self.not_running(id, run, "finish").await);
        }
        let reason = truncated(
            crate::spec::printable_reason(reason),
            MAX_FINISH_REASON_BYTES,
        );
        let (status, reason) = match end {
            ExternalEnd::Completed => (RunStatus::Completed, reason),
            ExternalEnd::Failed if reason.is_empty() => {
                (RunStatus::Failed, "its client reported a failure".into())
            }
            ExternalEnd::Failed => (RunStatus::Failed, reason),
            ExternalEnd::Cancelled if reason.is_empty() => {
                (RunStatus::Cancelled, "cancelled by its client".into())
            }
            ExternalEnd::Cancelled => (RunStatus::Cancelled, reason),
        };
        self.end_external(id, &mut log, status, reason).await?;
        let (this, named) = (self.clone(), run.to_string());
        blocking(move || this.state_of(id, &named)).await
    }

    /// The live log of an external run, or why the run takes no more logging.
    pub(super) async fn live_external(
        self: &Arc<Self>,
        id: RunId,
        named: &str,
        what: &str,
    ) -> Result<Arc<Mutex<ExternalLog>>> {
        match self.external.get(id) {
            Some(log) => Ok(log),
            None => Err(self.not_running(id, named, what).await),
        }
    }

    /// Why a run that is not a live external run takes no logging.
    pub(super) async fn not_running(
        self: &Arc<Self>,
        id: RunId,
        named: &str,
        what: &str,
    ) -> StrataError {
        let (this, named) = (self.clone(), named.to_string());
        match blocking(move || this.state_of(id, &named)).await {
            Err(err) => err,
            Ok(state) if !state.record.is_external() => StrataError::FailedPrecondition(format!(
                "run {id} is trained by stratad; only runs created with CreateRun take logged epochs"
            )),
            Ok(state) => StrataError::FailedPrecondition(format!(
                "run {id} is {}{}; cannot {what} it (create a new run to log more)",
                state.record.status.label(),
                match state.record.reason.as_str() {
                    "" => String::new(),
                    reason => format!(" ({reason})"),
                }
            )),
        }
    }

    /// Records an external run's end durably, tells its watchers, forgets it: the order of
    /// [`Runs::finish`] for trained runs.
    async fn end_external(
        self: &Arc<Self>,
        id: RunId,
        log: &mut ExternalLog,
        status: RunStatus,
        reason: String,
    ) -> Result<()> {
        let store = self.store.clone();
        let recorded = reason.clone();
        blocking(move || {
            store.update_run(id, |run| {
                run.status = status;
                run.reason = recorded;
                run.finished_at_ms = now_ms();
            })
        })
        .await?;
        self.forget_ended(id, log, status, reason);
        Ok(())
    }

    /// Once its end is recorded: tells its watchers and forgets the run.
    fn forget_ended(&self, id: RunId, log: &mut ExternalLog, status: RunStatus, reason: String) {
        log.ended = true;
        tracing::info!(run = %id, status = status.label(), %reason, "external run ended");
        log.live.send(RunEvent::Status { status, reason });
        self.external.remove(id);
        self.live.release(id);
    }

    /// Marks the run interrupted once its client has sent nothing for the timeout.
    fn spawn_silence_watch(self: &Arc<Self>, id: RunId, log: Arc<Mutex<ExternalLog>>) {
        let this = self.clone();
        let timeout = self.external_timeout;
        tokio::spawn(async move {
            loop {
                let deadline = log.lock().await.last_heard + timeout;
                tokio::time::sleep_until(deadline).await;
                let mut log = log.lock().await;
                if log.ended {
                    return;
                }
                if log.last_heard + timeout <= Instant::now() {
                    let reason = format!(
                        "its client logged nothing for {}s (stratad's --external-timeout); its epochs so far are kept",
                        timeout.as_secs_f64()
                    );
                    if let Err(err) = this
                        .end_external(id, &mut log, RunStatus::Interrupted, reason)
                        .await
                    {
                        tracing::error!(run = %id, error = %err, "could not record a silent external run as interrupted");
                    }
                    return;
                }
            }
        });
    }

    /// At shutdown: every live external run becomes interrupted (its client can no longer log).
    /// All of them recorded in one durable write: shutdown takes one sync however many there
    /// are (at `--max-external-runs`, one sync per run took longer than the grace).
    pub(super) async fn interrupt_external(self: &Arc<Self>) {
        let mut ending = Vec::new();
        for (id, log) in self.external.all() {
            let log = log.lock_owned().await;
            if !log.ended {
                ending.push((id, log));
            }
        }
        if ending.is_empty() {
            return;
        }
        let reason = "stratad shut down while the run was being logged; its epochs so far are kept";
        let ids: Vec<RunId> = ending.iter().map(|(id, _)| *id).collect();
        let store = self.store.clone();
        let recorded = blocking(move || {
            store.update_runs(&ids, |run| {
                run.status = RunStatus::Interrupted;
                run.reason = reason.to_string();
                run.finished_at_ms = now_ms();
            })
        })
        .await;
        if let Err(err) = recorded {
            tracing::error!(runs = ending.len(), error = %err, "could not record the external runs as interrupted; the next start does");
            return;
        }
        for (id, mut log) in ending {
            self.forget_ended(id, &mut log, RunStatus::Interrupted, reason.to_string());
        }
    }
}
