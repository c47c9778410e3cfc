//! The run manager: validates and stores new runs, queues them FIFO behind
//! `--max-concurrent-runs` slots, trains each on a blocking thread, streams their events and
//! records how each ended.

use std::{
    collections::{HashMap, VecDeque},
    path::PathBuf,
    sync::{
        atomic::{AtomicBool, AtomicU8, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

use strata_proto::{
    watch_event::Event, CompareRunsResponse, EpochRecord, GetRunResponse, ListRunsRequest,
    ParameterRate, Run, RunConfig, RunStatus, StartRunRequest, StartRunResponse, StatusChange,
    Verdict, WatchEvent,
};
use tokio::sync::{broadcast, mpsc, Notify, Semaphore};
use tokio_util::task::TaskTracker;

use crate::{
    analysis::{self, Thresholds},
    error::{Result, StrataError},
    spec::{
        paths::{abandon_reads_when, DataRoots, RaiseOnDrop},
        rates::ResolvedParam,
        validate_labels, InitSource, RunSpec,
    },
    store::{now_ms, RunId, Store},
    train::{
        self,
        worker::{InitFrom, Outcome, StopRequest, TrainJob},
    },
};

/// Events buffered per run for its watchers. A watcher further behind than this is skipped
/// forward (epochs are re-read from the store, so it never misses one).
pub const WATCH_BUFFER_EVENTS: usize = 256;
/// Events queued per watcher connection before its task waits for the client to read.
const WATCHER_QUEUE_EVENTS: usize = 64;
/// Runs one comparison may name.
const MAX_COMPARED_RUNS: usize = 1000;
/// Datasets read at once to validate a start or a dry run; more requests wait their turn.
const MAX_CONCURRENT_DATASET_LOADS: usize = 2;
/// How long shutdown waits for running runs to stop at a batch boundary and record it.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);
/// How long `cancel` waits for a running run to reach a batch boundary before answering.
const CANCEL_WAIT: Duration = Duration::from_secs(30);

/// A run that is queued or running: its live event channel and its stop flag.
struct LiveRun {
    events: broadcast::Sender<WatchEvent>,
    stop: AtomicU8,
    stop_notify: Notify,
}

impl LiveRun {
    fn request_stop(&self, request: StopRequest) {
        // A cancel never downgrades a shutdown's interrupt.
        let _ = self.stop.compare_exchange(
            StopRequest::None as u8,
            request as u8,
            Ordering::AcqRel,
            Ordering::Acquire,
        );
        self.stop_notify.notify_one();
    }
}

/// A validated run, ready to train.
struct Prepared {
    spec: RunSpec,
    resolved: Vec<ResolvedParam>,
    task: crate::spec::Task,
    /// Where a fine-tuning run's initial parameters come from.
    init: Option<InitFrom>,
    device: tch::Device,
}

pub struct Runs {
    store: Arc<Store>,
    data_dir: PathBuf,
    /// Where client-named files may be read from.
    data_roots: DataRoots,
    /// Datasets being read for a start or a dry run (each held in memory meanwhile).
    dataset_loads: Arc<Semaphore>,
    keep_checkpoints: usize,
    /// Queued runs in FIFO order (the slots' semaphore is FIFO too); for queue positions.
    waiting: Mutex<VecDeque<RunId>>,
    slots: Arc<Semaphore>,
    max_concurrent_runs: usize,
    live: Mutex<HashMap<RunId, Arc<LiveRun>>>,
    shutting_down: AtomicBool,
    /// When the runs must have stopped by, once shutdown began.
    shutdown_deadline: std::sync::OnceLock<tokio::time::Instant>,
    workers: TaskTracker,
}

fn to_proto_rates(prepared: &Prepared) -> Vec<ParameterRate> {
    let loaded = |name: &str| {
        prepared
            .init
            .as_ref()
            .is_some_and(|init| init.loaded.contains(name))
    };
    prepared
        .resolved
        .iter()
        .map(|p| ParameterRate {
            name: p.info.name.clone(),
            group: p.info.group.clone(),
            shape: p.info.shape.clone(),
            lr: p.lr,
            frozen_until: p.frozen_until.to_proto(),
            init: if loaded(&p.info.name) {
                "loaded"
            } else {
                "fresh"
            }
            .into(),
        })
        .collect()
}

fn event(event: Event) -> WatchEvent {
    WatchEvent { event: Some(event) }
}

/// Runs blocking work (store reads and flushes, file reads) off the async runtime.
pub(crate) async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| StrataError::Internal(format!("a blocking task failed: {e}")))?
}

/// Longest reason recorded for a run's end.
const MAX_REASON_BYTES: usize = 1024;

/// An error as a run's recorded reason: its first line only (libtorch appends a C++ backtrace with
/// memory addresses and install paths), at most [`MAX_REASON_BYTES`].
fn reason_for_clients(reason: &str) -> String {
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
    /// Opens the manager over a store whose unfinished runs were already marked interrupted.
    pub fn new(
        store: Arc<Store>,
        data_dir: PathBuf,
        max_concurrent_runs: usize,
        keep_checkpoints: usize,
        data_roots: DataRoots,
    ) -> Arc<Self> {
        Arc::new(Runs {
            store,
            data_dir,
            data_roots,
            dataset_loads: Arc::new(Semaphore::new(MAX_CONCURRENT_DATASET_LOADS)),
            keep_checkpoints: keep_checkpoints.max(1),
            waiting: Mutex::new(VecDeque::new()),
            slots: Arc::new(Semaphore::new(max_concurrent_runs.max(1))),
            max_concurrent_runs: max_concurrent_runs.max(1),
            live: Mutex::new(HashMap::new()),
            shutting_down: AtomicBool::new(false),
            shutdown_deadline: std::sync::OnceLock::new(),
            workers: TaskTracker::new(),
        })
    }

    pub fn max_concurrent_runs(&self) -> usize {
        self.max_concurrent_runs
    }

    fn live(&self, id: RunId) -> Option<Arc<LiveRun>> {
        self.live
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&id)
            .cloned()
    }

    fn resolve(&self, run: &str) -> Result<RunId> {
        self.store.resolve(run)
    }

    /// Validates a config and resolves its rate table against the model it builds. With
    /// `init_from` in the config (and `locate_init`), finds the checkpoint to start from and which
    /// parameters it provides.
    async fn prepare(&self, config: RunConfig, locate_init: bool) -> Result<Prepared> {
        let mut spec = RunSpec::try_from(config)?;
        self.data_roots.confine(&mut spec)?;
        let device = train::resolve_device(spec.device)?;
        let source = match &spec.init_from {
            Some(source) if locate_init => Some(self.locate_init_source(source)?),
            _ => None,
        };
        // Reading a dataset holds it in memory: a few at a time, whatever the number of requests.
        let _loading = self
            .dataset_loads
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| StrataError::ShuttingDown)?;
        // If the client goes away, this future is dropped and the reading below stops.
        let abandoned = Arc::new(AtomicBool::new(false));
        let _raise_when_dropped = RaiseOnDrop(abandoned.clone());
        blocking(move || {
            let _reads = abandon_reads_when(abandoned);
            let train::PreparedRun { mut spec, resolved, task } = train::prepare_run(spec)?;
            let init = match source {
                Some((run, epoch, path)) => {
                    let loaded = train::checkpoint::Checkpoint::read(&path)
                        .map_err(|e| StrataError::invalid("init_from", e))?
                        .matching_parameters(&resolved);
                    if loaded.is_empty() {
                        return Err(StrataError::invalid(
                            "init_from",
                            format!("no parameter of run {run} (epoch {epoch}) matches this model by name and shape"),
                        ));
                    }
                    spec.config.init_from = format!("{run}@{epoch}");
                    Some(InitFrom { path, loaded })
                }
                None => None,
            };
            Ok(Prepared { spec, resolved, task, device, init })
        })
        .await
    }

    /// The run, epoch and checkpoint file named by `--init-from`.
    fn locate_init_source(&self, source: &InitSource) -> Result<(RunId, u32, PathBuf)> {
        let run = self.store.resolve(&source.run).map_err(|err| match err {
            StrataError::RunNotFound(_) | StrataError::AmbiguousRun { .. } => {
                StrataError::invalid("init_from", err.to_string())
            }
            other => other,
        })?;
        let dir = self.checkpoint_dir(run);
        let available = train::checkpoint::epochs_in(&dir);
        let epoch = match (source.epoch, available.last()) {
            (Some(epoch), _) if available.contains(&epoch) => epoch,
            (None, Some(&last)) => last,
            (None, None) => {
                let status = self
                    .store
                    .get_run(run)?
                    .map_or(RunStatus::Unspecified, |r| r.status());
                let state = match status {
                    RunStatus::Queued | RunStatus::Running => format!(
                        "it is {} and has not finished an epoch yet; wait for it (`strata watch {run}` returns when it ends)",
                        status.label()
                    ),
                    other => format!(
                        "it ended {} before finishing an epoch, so there is nothing to start from",
                        other.label()
                    ),
                };
                return Err(StrataError::invalid(
                    "init_from",
                    format!("run {run} has no checkpoint: {state}"),
                ));
            }
            (wanted, _) => {
                let have = if available.is_empty() {
                    "none".to_string()
                } else {
                    available
                        .iter()
                        .map(|e| e.to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                let what = wanted.map_or("a checkpoint".to_string(), |e| {
                    format!("a checkpoint of epoch {e}")
                });
                return Err(StrataError::invalid(
                    "init_from",
                    format!("run {run} has no {what}; it keeps epochs: {have} (stratad --keep-checkpoints sets how many)"),
                ));
            }
        };
        Ok((run, epoch, train::checkpoint::path_for(&dir, epoch)))
    }

    /// Validates the request, resolves the rate table and, unless it is a dry run, stores the
    /// run as queued (durably) and queues it.
    pub async fn start(self: &Arc<Self>, request: StartRunRequest) -> Result<StartRunResponse> {
        if self.shutting_down.load(Ordering::Acquire) {
            return Err(StrataError::ShuttingDown);
        }
        let StartRunRequest {
            config,
            name,
            tags,
            dry_run,
        } = request;
        let config = config.ok_or_else(|| StrataError::invalid("config", "required"))?;
        validate_labels(&name, &tags)?;
        let prepared = self.prepare(config, true).await?;
        let parameters = to_proto_rates(&prepared);
        let config = prepared.spec.config.clone();
        if dry_run {
            return Ok(StartRunResponse {
                run_id: String::new(),
                parameters,
                config: Some(config),
            });
        }

        let id = self.store.next_run_id();
        let run = Run {
            id: id.to_string(),
            name,
            tags,
            status: RunStatus::Queued as i32,
            reason: String::new(),
            config: Some(config.clone()),
            parameters: parameters.clone(),
            created_at_ms: now_ms(),
            started_at_ms: 0,
            finished_at_ms: 0,
            epochs_done: 0,
            val_metric: prepared.task.metric_name().into(),
            parameter_count: prepared
                .resolved
                .iter()
                .map(|p| p.info.shape.iter().product::<i64>())
                .sum::<i64>() as u64,
            device: train::device_label(prepared.device),
            queue_position: 0,
            resumes: 0,
        };
        let live = self.claim(id)?;
        let store = self.store.clone();
        let folder = self.checkpoint_dir(id);
        let stored = blocking(move || {
            store.put_run(&run)?;
            // The folder after the record: a run folder always implies a run record, which is
            // how start-up tells a store that lost runs from one that never had them.
            let record = prost::Message::encode_to_vec(&run);
            if let Err(err) = train::checkpoint::file::create_run_folder(&folder, &record) {
                let reason = format!("cannot create the run's folder {}: {err}", folder.display());
                store.update_run(id, |run| {
                    run.set_status(RunStatus::Failed);
                    run.reason = reason.clone();
                    run.finished_at_ms = now_ms();
                })?;
                return Err(StrataError::Storage(reason));
            }
            Ok(())
        })
        .await;
        if let Err(err) = stored {
            self.release(id);
            return Err(err);
        }
        self.enqueue(id, prepared, 0, live);
        tracing::info!(run = %id, dataset = %config.dataset, model = %config.model, "run queued");
        Ok(StartRunResponse {
            run_id: id.to_string(),
            parameters,
            config: Some(config),
        })
    }

    /// Continues an interrupted or cancelled run (or a completed one, to more epochs) from the
    /// checkpoint of its last stored epoch — or, when that one is damaged or missing, from its
    /// newest intact checkpoint (see [`choose_resume_point`]).
    pub async fn resume(self: &Arc<Self>, run: &str, epochs: u32) -> Result<Run> {
        if self.shutting_down.load(Ordering::Acquire) {
            return Err(StrataError::ShuttingDown);
        }
        let id = self.resolve(run)?;
        let record = self
            .store
            .get_run(id)?
            .ok_or_else(|| StrataError::RunNotFound(run.to_string()))?;
        let status = record.status();
        let resumable = matches!(status, RunStatus::Interrupted | RunStatus::Cancelled)
            || (status == RunStatus::Completed && epochs > record.epochs_done);
        if !resumable {
            return Err(StrataError::FailedPrecondition(format!(
                "run {id} is {}; only interrupted or cancelled runs resume (a completed one with a larger --epochs)",
                status.label()
            )));
        }
        let mut config = record.config.clone().unwrap_or_default();
        if epochs > 0 {
            config.epochs = Some(epochs);
        }
        let done = record.epochs_done;
        // Past its first epoch a run resumes from its own checkpoint, not its source's.
        let prepared = self.prepare(config, done == 0).await?;
        if done >= prepared.spec.epochs {
            return Err(StrataError::FailedPrecondition(format!(
                "run {id} already has {done} epoch(s); resume with --epochs N (N > {done}) to train further"
            )));
        }
        let checkpoint_dir = self.checkpoint_dir(id);
        let live = self.claim(id)?;
        let config = prepared.spec.config.clone();
        let store = self.store.clone();
        let data_dir = self.data_dir.clone();
        let updated = blocking(move || {
            // Preparing took a while and the run was not claimed meanwhile: another resume may
            // have trained it since. Act only on the state this request was checked against.
            let current = store
                .get_run(id)?
                .ok_or_else(|| StrataError::RunNotFound(id.to_string()))?;
            if current.status() != status || current.epochs_done != done {
                return Err(StrataError::FailedPrecondition(format!(
                    "run {id} changed while this resume was being prepared (it is now {} with {} epoch(s)); look at it again before resuming",
                    current.status().label(),
                    current.epochs_done
                )));
            }
            let start = choose_resume_point(&store, id, &checkpoint_dir, &data_dir, done)?;
            let run = store.update_run(id, |run| {
                run.set_status(RunStatus::Queued);
                run.reason = start.reason.clone();
                run.config = Some(config);
                run.finished_at_ms = 0;
                run.resumes += 1;
            })?;
            Ok((run, start.after_epoch))
        })
        .await;
        let (updated, after_epoch) = match updated {
            Ok(updated) => updated,
            Err(err) => {
                self.release(id);
                return Err(err);
            }
        };
        self.enqueue(id, prepared, after_epoch, live);
        if after_epoch < done {
            tracing::warn!(run = %id, after_epoch, stored_epochs = done, reason = %updated.reason, "run resumed from an older checkpoint");
        } else {
            tracing::info!(run = %id, after_epoch, "run resumed");
        }
        Ok(self.with_queue_position(updated))
    }

    /// Registers a run as live, or says it already is.
    fn claim(&self, id: RunId) -> Result<Arc<LiveRun>> {
        let mut live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        if live.contains_key(&id) {
            return Err(StrataError::FailedPrecondition(format!(
                "run {id} is already queued or running"
            )));
        }
        let (events, _) = broadcast::channel(WATCH_BUFFER_EVENTS);
        let run = Arc::new(LiveRun {
            events,
            stop: AtomicU8::new(0),
            stop_notify: Notify::new(),
        });
        live.insert(id, run.clone());
        Ok(run)
    }

    fn release(&self, id: RunId) {
        self.live
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&id);
    }

    fn checkpoint_dir(&self, id: RunId) -> PathBuf {
        crate::integrity::runs_dir(&self.data_dir).join(id.to_string())
    }

    fn enqueue(
        self: &Arc<Self>,
        id: RunId,
        prepared: Prepared,
        resume_after_epoch: u32,
        live: Arc<LiveRun>,
    ) {
        self.waiting
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push_back(id);
        let this = self.clone();
        self.workers
            .spawn(async move { this.drive(id, prepared, resume_after_epoch, live).await });
    }

    /// 1-based place of a queued run in the FIFO queue, 0 if it is not waiting.
    fn queue_position(&self, id: RunId) -> u32 {
        let waiting = self.waiting.lock().unwrap_or_else(|p| p.into_inner());
        waiting
            .iter()
            .position(|w| *w == id)
            .map_or(0, |i| i as u32 + 1)
    }

    fn with_queue_position(&self, mut run: Run) -> Run {
        if let Ok(id) = run.id.parse() {
            run.queue_position = self.queue_position(id);
        }
        run
    }

    /// Waits for a slot (or a stop), trains, and records the outcome.
    async fn drive(
        self: Arc<Self>,
        id: RunId,
        prepared: Prepared,
        resume_after_epoch: u32,
        live: Arc<LiveRun>,
    ) {
        let permit = tokio::select! {
            permit = self.slots.clone().acquire_owned() => permit.ok(),
            _ = live.stop_notify.notified() => None,
        };
        self.waiting
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|w| *w != id);
        let stop = StopRequest::load(&live.stop);
        let outcome = match permit {
            Some(_) if stop == StopRequest::None => {
                // The files were checked when the run was started, but it may have waited in
                // the queue since, and a path under a root may now lead out of it: check again
                // just before they are read (they are then opened without following links).
                let mut prepared = prepared;
                let marked = match self.data_roots.confine(&mut prepared.spec) {
                    Err(err) => Err(err),
                    Ok(()) => {
                        let (this, live) = (self.clone(), live.clone());
                        blocking(move || this.mark_running(id, &live)).await
                    }
                };
                if let Err(err) = marked {
                    Outcome::Failed(err.to_string())
                } else {
                    let store = self.store.clone();
                    let checkpoint_dir = self.checkpoint_dir(id);
                    let keep_checkpoints = self.keep_checkpoints;
                    let live_for_worker = live.clone();
                    let trained = tokio::task::spawn_blocking(move || {
                        let job = TrainJob {
                            run_id: id,
                            spec: &prepared.spec,
                            resolved: &prepared.resolved,
                            device: prepared.device,
                            store: &store,
                            events: &live_for_worker.events,
                            stop: &live_for_worker.stop,
                            checkpoint_dir,
                            keep_checkpoints,
                            resume_after_epoch,
                            init_from: prepared.init.as_ref().map(|init| init.path.clone()),
                        };
                        train::worker::train(&job)
                    })
                    .await;
                    trained.unwrap_or_else(|e| {
                        Outcome::Failed(format!("the training thread failed: {e}"))
                    })
                }
            }
            _ => Outcome::Stopped(match stop {
                StopRequest::None => StopRequest::Interrupt,
                request => request,
            }),
        };
        // Recording the end flushes the store: off the async runtime.
        let this = self.clone();
        let _ = tokio::task::spawn_blocking(move || this.finish(id, &live, outcome)).await;
        // The slot is freed only once the end is recorded, so the next queued run starts after
        // this one has finished, as recorded (its `started_at_ms` ≥ this one's `finished_at_ms`).
        drop(permit);
    }

    fn mark_running(&self, id: RunId, live: &LiveRun) -> Result<()> {
        self.store.update_run(id, |run| {
            run.set_status(RunStatus::Running);
            run.started_at_ms = now_ms();
        })?;
        let _ = live.events.send(event(Event::Status(StatusChange {
            status: RunStatus::Running as i32,
            reason: String::new(),
        })));
        tracing::info!(run = %id, "run started");
        Ok(())
    }

    /// Records how the run ended (durably), tells its watchers, and forgets its live state, in
    /// that order: a watcher either sees the final event or finds the final status stored.
    fn finish(&self, id: RunId, live: &LiveRun, outcome: Outcome) {
        let epochs_done = self.store.epochs_done(id).unwrap_or(0);
        let (status, reason) = match outcome {
            Outcome::Completed => (RunStatus::Completed, String::new()),
            Outcome::Stopped(StopRequest::Cancel) => (
                RunStatus::Cancelled,
                format!("cancelled on request after {epochs_done} epoch(s)"),
            ),
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
            run.set_status(status);
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
        let _ = live.events.send(event(Event::Status(StatusChange {
            status: status as i32,
            reason,
        })));
        self.live
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&id);
    }

    pub fn get(&self, run: &str, thresholds: &Thresholds) -> Result<GetRunResponse> {
        let id = self.resolve(run)?;
        let record = self
            .store
            .get_run(id)?
            .ok_or_else(|| StrataError::RunNotFound(run.to_string()))?;
        let epochs = self.store.epochs(id, 1)?;
        let analysis = analysis::analyse(&record, &epochs, thresholds);
        Ok(GetRunResponse {
            run: Some(self.with_queue_position(record)),
            epochs,
            analysis: Some(analysis),
        })
    }

    pub fn list(&self, request: &ListRunsRequest) -> Result<Vec<Run>> {
        let status = RunStatus::try_from(request.status).map_err(|_| {
            StrataError::invalid("status", format!("{} is not a run status", request.status))
        })?;
        let verdict = match request.verdict.as_str() {
            "" => None,
            label => Some(Verdict::from_label(label).ok_or_else(|| {
                StrataError::invalid(
                    "verdict",
                    format!(
                        "{} is not a verdict; allowed: {}",
                        crate::spec::shown(label),
                        Verdict::labels()
                    ),
                )
            })?),
        };
        let limit = if request.limit == 0 {
            usize::MAX
        } else {
            request.limit as usize
        };
        let mut runs = Vec::new();
        for run in self.store.runs_newest_first() {
            let run = run?;
            let status_ok = status == RunStatus::Unspecified || run.status() == status;
            let tag_ok = request.tag.is_empty() || run.tags.contains(&request.tag);
            if status_ok && tag_ok && self.has_verdict(&run, verdict)? {
                runs.push(self.with_queue_position(run));
                if runs.len() >= limit {
                    break;
                }
            }
        }
        Ok(runs)
    }

    /// Deletes a run that is not queued or running: its record, epochs and checkpoints.
    ///
    /// The folder is renamed to `ID.deleted` first, then the records go, then the folder: a crash
    /// at any point leaves a state the start-up check recognises (never a run folder without a
    /// record, which would read as a damaged store).
    pub fn delete(&self, run: &str) -> Result<RunId> {
        let id = self.resolve(run)?;
        // Holding the live map's lock keeps a concurrent resume from claiming the run meanwhile.
        let live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        if live.contains_key(&id) {
            return Err(StrataError::FailedPrecondition(format!(
                "run {id} is queued or running; cancel it before deleting it"
            )));
        }
        let dir = self.checkpoint_dir(id);
        let runs_dir = crate::integrity::runs_dir(&self.data_dir);
        let deleting = runs_dir.join(format!("{id}{}", crate::integrity::DELETING_SUFFIX));
        let has_folder = dir.exists();
        if has_folder {
            std::fs::rename(&dir, &deleting)
                .and_then(|()| crate::durable::sync_dir(&runs_dir))
                .map_err(|e| {
                    StrataError::Storage(format!("cannot delete {}: {e}", dir.display()))
                })?;
        }
        if let Err(err) = self.store.delete_run(id) {
            if has_folder {
                // Put the folder back: the run was not deleted.
                let _ = std::fs::rename(&deleting, &dir)
                    .and_then(|()| crate::durable::sync_dir(&runs_dir));
            }
            return Err(err);
        }
        drop(live);
        if has_folder {
            let removed = std::fs::remove_dir_all(&deleting)
                .and_then(|()| crate::durable::sync_dir(&runs_dir));
            if let Err(err) = removed {
                tracing::warn!(run = %id, error = %err, "could not remove the run's checkpoints; the next start removes them");
            }
        }
        tracing::info!(run = %id, "run deleted");
        Ok(id)
    }

    /// Stops a queued or running run and waits (briefly) until its end is recorded.
    pub async fn cancel(&self, run: &str) -> Result<Run> {
        let id = self.resolve(run)?;
        let Some(live) = self.live(id) else {
            let record = self
                .store
                .get_run(id)?
                .ok_or_else(|| StrataError::RunNotFound(run.to_string()))?;
            return Err(StrataError::FailedPrecondition(format!(
                "run {id} is {}; only queued or running runs can be cancelled",
                record.status().label()
            )));
        };
        let mut events = live.events.subscribe();
        live.request_stop(StopRequest::Cancel);
        drop(live);
        let ended = async {
            loop {
                match events.recv().await {
                    Ok(WatchEvent {
                        event: Some(Event::Status(change)),
                    }) if RunStatus::try_from(change.status).is_ok_and(RunStatus::is_terminal) => {
                        break
                    }
                    Err(broadcast::error::RecvError::Closed) => break,
                    _ => {}
                }
            }
        };
        let _ = tokio::time::timeout(CANCEL_WAIT, ended).await;
        self.store
            .get_run(id)?
            .ok_or_else(|| StrataError::RunNotFound(run.to_string()))
    }

    /// Streams the run's stored epochs from `from_epoch`, then its live events, with no gap and
    /// no duplicate: the watcher subscribes before reading the store, and drops live epochs it
    /// already sent from history.
    pub fn watch(
        self: &Arc<Self>,
        run: &str,
        from_epoch: u32,
    ) -> Result<mpsc::Receiver<std::result::Result<WatchEvent, tonic::Status>>> {
        let id = self.resolve(run)?;
        let subscription = self.live(id).map(|live| live.events.subscribe());
        if self.store.get_run(id)?.is_none() {
            return Err(StrataError::RunNotFound(run.to_string()));
        }
        let (tx, rx) = mpsc::channel(WATCHER_QUEUE_EVENTS);
        let store = self.store.clone();
        tokio::spawn(async move {
            let mut watcher = Watcher {
                id,
                store,
                tx,
                next_epoch: from_epoch.max(1),
            };
            if let Err(err) = watcher.stream(subscription).await {
                let _ = watcher.tx.send(Err(err.into())).await;
            }
        });
        Ok(rx)
    }

    /// Stops taking work, interrupts queued and running runs at a batch boundary, waits for them
    /// to record it, and flushes the store.
    pub async fn shutdown(&self) {
        self.shutting_down.store(true, Ordering::Release);
        let live: Vec<Arc<LiveRun>> = self
            .live
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect();
        for run in &live {
            run.request_stop(StopRequest::Interrupt);
        }
        self.workers.close();
        // One grace period however often this is called (the server's shutdown and the
        // daemon's exit both call it): a run that does not stop delays exit once, not twice.
        let deadline = *self
            .shutdown_deadline
            .get_or_init(|| tokio::time::Instant::now() + SHUTDOWN_GRACE);
        if tokio::time::timeout_at(deadline, self.workers.wait())
            .await
            .is_err()
        {
            tracing::warn!("runs did not stop within {SHUTDOWN_GRACE:?}; they will be marked interrupted on the next start");
        }
        if let Err(err) = self.store.flush() {
            tracing::error!(error = %err, "could not flush the store");
        }
    }
}

/// Analysis across runs: comparing them, and filtering by verdict.
impl Runs {
    /// Analyses the named runs (ids or unique prefixes; a run named twice counts once) and ranks
    /// them by best validation loss.
    pub fn compare(&self, runs: &[String], thresholds: &Thresholds) -> Result<CompareRunsResponse> {
        if runs.is_empty() {
            return Err(StrataError::invalid(
                "runs",
                "name at least one run (an id or a unique prefix)",
            ));
        }
        if runs.len() > MAX_COMPARED_RUNS {
            return Err(StrataError::invalid(
                "runs",
                format!(
                    "{} runs named; at most {MAX_COMPARED_RUNS} are compared at once",
                    runs.len()
                ),
            ));
        }
        let mut records = Vec::new();
        for run in runs {
            let id = self.resolve(run)?;
            if records.iter().any(|(seen, _)| *seen == id) {
                continue;
            }
            let record = self
                .store
                .get_run(id)?
                .ok_or_else(|| StrataError::RunNotFound(run.to_string()))?;
            records.push((id, record));
        }
        // Reading and decoding the epochs is most of the work: spread it over the cores.
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let chunk = records.len().div_ceil(threads).max(1);
        let store = &self.store;
        let analysed: Vec<(Run, Vec<EpochRecord>)> = std::thread::scope(|scope| {
            let readers: Vec<_> = records
                .chunks(chunk)
                .map(|part| {
                    scope.spawn(move || {
                        part.iter()
                            .map(|(id, record)| Ok((record.clone(), store.epochs(*id, 1)?)))
                            .collect::<Result<Vec<_>>>()
                    })
                })
                .collect();
            readers
                .into_iter()
                .map(|reader| {
                    reader
                        .join()
                        .map_err(|_| StrataError::Internal("an epoch reader failed".into()))?
                })
                .collect::<Result<Vec<Vec<_>>>>()
                .map(|parts| parts.into_iter().flatten().collect())
        })?;
        Ok(analysis::compare(analysed, thresholds))
    }

    /// Whether the run's analysis (default thresholds) has `verdict`; true when none is asked.
    fn has_verdict(&self, run: &Run, verdict: Option<Verdict>) -> Result<bool> {
        let Some(verdict) = verdict else {
            return Ok(true);
        };
        let epochs = self.store.epochs(run.id.parse()?, 1)?;
        let analysis = analysis::analyse(run, &epochs, &Thresholds::default());
        Ok(analysis.verdict == verdict.label())
    }
}

/// Where a resumed run starts, and what its reason says about it.
struct ResumePoint {
    after_epoch: u32,
    reason: String,
}

/// Picks the newest intact checkpoint at or below the run's last stored epoch `done`. When that is
/// not `done`'s own, the damaged checkpoints above it are moved aside (`*.damaged`, never deleted)
/// and the records of the epochs after it are dropped: those epochs are retrained, so the run's
/// epochs stay 1..N with no gap or duplicate, and every stored epoch keeps a checkpoint at or
/// below it. With no intact checkpoint at all nothing is changed and the resume is refused: the
/// run stays as it was, resumable once a checkpoint is restored.
fn choose_resume_point(
    store: &Store,
    id: RunId,
    dir: &std::path::Path,
    data_dir: &std::path::Path,
    done: u32,
) -> Result<ResumePoint> {
    use crate::train::checkpoint::file::{self, CheckpointFile};
    if done == 0 {
        return Ok(ResumePoint {
            after_epoch: 0,
            reason: "resumed from the start (no epoch was stored)".into(),
        });
    }
    let present = file::epochs_in(dir);
    let mut unusable: Vec<(u32, String)> = Vec::new();
    let mut chosen = None;
    for &epoch in present.iter().rev().filter(|&&e| e <= done) {
        let verified = CheckpointFile::read(&file::path_for(dir, epoch))
            .and_then(|f| f.check_identity(&id.to_string(), epoch));
        match verified {
            Ok(()) => {
                chosen = Some(epoch);
                break;
            }
            Err(why) => unusable.push((epoch, why)),
        }
    }
    let described = |list: &[(u32, String)]| {
        list.iter()
            .map(|(e, why)| format!("epoch {e}: {why}"))
            .collect::<Vec<_>>()
            .join("; ")
    };
    let Some(after) = chosen else {
        let found = if unusable.is_empty() {
            "there is none".to_string()
        } else {
            described(&unusable)
        };
        return Err(StrataError::FailedPrecondition(format!(
            "run {id} cannot resume: it has {done} stored epoch(s) but no intact checkpoint to continue from in {} ({found}). Nothing was changed: the run keeps its epochs and can resume once a checkpoint is restored; `stratad check --data-dir {}` reports on the data dir",
            dir.display(),
            data_dir.display()
        )));
    };
    if after == done {
        return Ok(ResumePoint {
            after_epoch: done,
            reason: format!("resumed after epoch {done}"),
        });
    }
    let mut why: Vec<String> = Vec::new();
    for (epoch, problem) in &unusable {
        let moved =
            file::set_aside(&file::path_for(dir, *epoch), file::DAMAGED_SUFFIX).map_err(|e| {
                StrataError::Storage(format!(
                    "cannot move the damaged checkpoint of epoch {epoch} aside: {e}"
                ))
            })?;
        why.push(format!(
            "the checkpoint of epoch {epoch} is damaged ({problem}) and was moved aside to {}",
            moved.display()
        ));
    }
    let missing: Vec<String> = (after + 1..=done)
        .filter(|e| !present.contains(e))
        .map(|e| e.to_string())
        .collect();
    if !missing.is_empty() && unusable.is_empty() {
        why.push(format!(
            "the checkpoint of epoch {done} is missing (none kept after epoch {after})"
        ));
    }
    // Checkpoints after the one resumed from (above the stored epochs, or left by the fallback)
    // belong to epochs about to be retrained: set them aside, or the next start would read them
    // as epochs whose records were lost.
    for &epoch in present.iter().filter(|&&e| e > after) {
        let path = file::path_for(dir, epoch);
        if path.exists() {
            file::set_aside(&path, file::UNRECORDED_SUFFIX).map_err(|e| {
                StrataError::Storage(format!(
                    "cannot move the checkpoint of epoch {epoch} aside: {e}"
                ))
            })?;
        }
    }
    store.drop_epochs_after(id, after)?;
    Ok(ResumePoint {
        after_epoch: after,
        reason: format!(
            "resumed after epoch {after}, from its newest intact checkpoint: {}; epochs {}..{done} are retrained and their earlier records were dropped",
            why.join("; "),
            after + 1
        ),
    })
}

/// One watcher's stream.
struct Watcher {
    id: RunId,
    store: Arc<Store>,
    tx: mpsc::Sender<std::result::Result<WatchEvent, tonic::Status>>,
    next_epoch: u32,
}

/// The client went away: nothing more to send.
struct Disconnected;

impl Watcher {
    async fn send(&self, event: Event) -> std::result::Result<(), Disconnected> {
        self.tx
            .send(Ok(WatchEvent { event: Some(event) }))
            .await
            .map_err(|_| Disconnected)
    }

    async fn send_epoch(&mut self, record: EpochRecord) -> std::result::Result<(), Disconnected> {
        if record.epoch >= self.next_epoch {
            self.next_epoch = record.epoch + 1;
            self.send(Event::Epoch(record)).await?;
        }
        Ok(())
    }

    /// Sends every stored epoch not sent yet.
    async fn catch_up(&mut self) -> Result<()> {
        let store = self.store.clone();
        let (id, from) = (self.id, self.next_epoch);
        for record in blocking(move || store.epochs(id, from)).await? {
            if self.send_epoch(record).await.is_err() {
                return Ok(());
            }
        }
        Ok(())
    }

    /// Sends the stored epochs not sent yet, then the stored status; true if that status is
    /// terminal (the stream is complete). The status is read first, so every epoch stored before
    /// it is sent before it.
    async fn send_stored_state(&mut self) -> Result<bool> {
        let run = self
            .store
            .get_run(self.id)?
            .ok_or_else(|| StrataError::RunNotFound(self.id.to_string()))?;
        self.catch_up().await?;
        let terminal = run.status().is_terminal();
        if self
            .send(Event::Status(StatusChange {
                status: run.status,
                reason: run.reason,
            }))
            .await
            .is_err()
        {
            return Ok(true);
        }
        Ok(terminal)
    }

    async fn stream(
        &mut self,
        subscription: Option<broadcast::Receiver<WatchEvent>>,
    ) -> Result<()> {
        let finished = self.send_stored_state().await?;
        let Some(mut events) = subscription.filter(|_| !finished) else {
            return Ok(());
        };
        loop {
            let sent = match events.recv().await {
                Ok(WatchEvent {
                    event: Some(Event::Epoch(record)),
                }) => {
                    if record.epoch > self.next_epoch {
                        self.catch_up().await?;
                    }
                    self.send_epoch(record).await
                }
                Ok(WatchEvent {
                    event: Some(Event::Status(change)),
                }) => {
                    let terminal =
                        RunStatus::try_from(change.status).is_ok_and(RunStatus::is_terminal);
                    if terminal {
                        self.catch_up().await?;
                    }
                    let sent = self.send(Event::Status(change)).await;
                    if terminal {
                        return Ok(());
                    }
                    sent
                }
                Ok(WatchEvent { event: Some(other) }) => self.send(other).await,
                Ok(WatchEvent { event: None }) => Ok(()),
                Err(broadcast::error::RecvError::Lagged(skipped)) => {
                    let notice = format!("this watcher fell behind: {skipped} live events skipped; epochs resent from the store");
                    let sent = self.send(Event::Notice(notice)).await;
                    self.catch_up().await?;
                    sent
                }
                Err(broadcast::error::RecvError::Closed) => {
                    self.send_stored_state().await?;
                    return Ok(());
                }
            };
            if sent.is_err() {
                return Ok(());
            }
        }
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
