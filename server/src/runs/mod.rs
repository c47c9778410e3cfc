//! The run manager: validates and stores new runs, queues them FIFO behind
//! `--max-concurrent-runs` slots, trains each in a worker process of its own, streams their
//! events, records how each ended, and answers queries about them.
//!
//! - [`prepare`]: a config checked against its data and model (a TorchScript module's in a
//!   worker), and its rate table;
//! - [`lifecycle`]: start, resume, cancel, delete, shutdown;
//! - [`queue`]: the FIFO queue and the training slots;
//! - [`training`]: a run on a slot, in its worker: started, followed, stopped when asked, and
//!   how it ended (a worker's crash, out-of-memory or silence included);
//! - [`ingest`]: what a training worker reports, made durable — each epoch's checkpoint, then its
//!   record — before it is acknowledged and streamed;
//! - [`live`]: the runs in flight, their stop flags, and the watch fan-out;
//! - [`queries`]: get, list, compare, each bounded: a run's epochs thinned or paged
//!   ([`thinning`]), analyses kept until their run changes ([`analysis_cache`]);
//! - [`external`]: runs trained outside the daemon, which log their epochs to it, and
//!   [`steps`]: their per-step records;
//! - [`lr_find`]: the learning-rate range test per group, on a training slot in a worker, stored
//!   nowhere.
//!
//! The blocking/async boundary is decided here, once: every public method is async, and whatever
//! blocks (sled reads and writes with their fsyncs, file reads, dataset loads) runs on the
//! blocking pool through [`blocking`], never on the async runtime's threads. Callers (the
//! transport) never block and never decide.

mod analysis_cache;
mod external;
mod ingest;
mod lifecycle;
mod live;
mod lr_find;
mod prepare;
mod queries;
mod queue;
mod resume_point;
mod steps;
mod thinning;
mod training;

use std::{
    path::PathBuf,
    sync::{atomic::AtomicBool, Arc},
};

use tokio::sync::Semaphore;
use tokio_util::task::TaskTracker;

pub use self::external::{
    CreateExternal, Created, ExternalEnd, Logged, LoggedEpoch, DEFAULT_EXTERNAL_TIMEOUT,
    MAX_LOG_BATCH_EPOCHS,
};
pub use self::live::{CHANGES_BUFFER_EVENTS, WATCH_BUFFER_EVENTS};
pub use self::lr_find::{
    LrFindEvent, LrFindPlan, LrFindRequest, MAX_LR_FIND_STEPS, MAX_LR_FIND_STEPS_TOTAL,
    MIN_LR_FIND_STEPS,
};
pub use self::steps::{LoggedSteps, RunSteps, MAX_RUN_STEP_VALUES, MAX_STEPS_PER_BATCH};
pub use self::thinning::{
    returned_epochs, MAX_COMPARED_EPOCHS, MAX_RETURNED_EPOCHS, MAX_RETURNED_GROUP_RECORDS,
};
use crate::{
    analysis::{RunAnalysis, TwinComparison},
    domain::{
        DataFacts, EpochMetrics, ParameterRate, RunConfig, RunEvent, RunId, RunState, RunStatus,
        SweepTrial, ValMetric, Verdict,
    },
    error::{Result, StrataError},
    spec::paths::DataRoots,
    store::Store,
    workers::Workers,
};

/// Datasets read at once to validate a start or a dry run; more requests wait their turn.
const MAX_CONCURRENT_DATASET_LOADS: usize = 2;
/// Runs that may wait in the queue at once, by default (`--max-queued-runs`).
pub const DEFAULT_MAX_QUEUED_RUNS: usize = 1000;
/// Runs logged from outside that may be live at once, by default (`--max-external-runs`).
pub const DEFAULT_MAX_EXTERNAL_RUNS: usize = 1000;

/// How much live state the manager holds, and for how long: each queued run holds its prepared
/// spec and a task (~40 KB), each live external run its event channel (~30 KB) until it ends or
/// stays silent for `external_timeout`; shutdown records each.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub max_queued_runs: usize,
    pub max_external_runs: usize,
    pub external_timeout: std::time::Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_queued_runs: DEFAULT_MAX_QUEUED_RUNS,
            max_external_runs: DEFAULT_MAX_EXTERNAL_RUNS,
            external_timeout: DEFAULT_EXTERNAL_TIMEOUT,
        }
    }
}

/// A run to start.
#[derive(Clone, Debug, Default)]
pub struct StartRequest {
    pub config: RunConfig,
    pub name: String,
    pub tags: Vec<String>,
    /// Resolve and validate only: nothing is stored or trained.
    pub dry_run: bool,
    /// Also start the run's single-rate twin.
    pub baseline: Option<Baseline>,
    /// The sweep the run is a trial of.
    pub sweep: Option<SweepTrial>,
}

/// A single-rate twin's rate.
#[derive(Clone, Copy, Debug, Default)]
pub struct Baseline {
    /// Every group's one rate (None: the run's base rate).
    pub lr: Option<f64>,
}

/// A started (or dry-run) run: its id, resolved rate table and config with defaults filled in.
#[derive(Clone, Debug)]
pub struct Started {
    /// `None` for a dry run.
    pub id: Option<RunId>,
    pub parameters: Vec<ParameterRate>,
    pub config: RunConfig,
    /// What is known of the data so far (the task, the class count).
    pub facts: DataFacts,
    /// What the user should know before trusting the run, one sentence each.
    pub warnings: Vec<String>,
    /// The single-rate twin started beside it.
    pub twin: Option<RunId>,
}

/// A watch's stream of events, and the run's validation metric (its epochs' `val_metric`).
pub struct Watch {
    pub metric: ValMetric,
    pub events: tokio::sync::mpsc::Receiver<Result<RunEvent>>,
}

/// Which of a run's epochs a `get` answers with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EpochsWanted {
    /// All of them, thinned to an even spread of [`MAX_RETURNED_EPOCHS`] when longer.
    Whole,
    /// At most [`MAX_RETURNED_EPOCHS`] consecutive stored epochs from this one on.
    Page { from_epoch: u32 },
    /// None: the run and its analysis only (`epochs_thinned` says whether a whole answer
    /// would be thinned).
    None,
}

/// One run with its epochs and their analysis.
#[derive(Clone, Debug)]
pub struct RunDetail {
    pub state: RunState,
    /// What [`EpochsWanted`] asked for, at most [`MAX_RETURNED_EPOCHS`].
    pub epochs: Vec<EpochMetrics>,
    /// `epochs` is an even spread of the run's epochs (first, best and last among them).
    pub epochs_thinned: bool,
    /// For a page: where the next begins; 0 when it holds the last stored epoch.
    pub next_epoch: u32,
    pub analysis: RunAnalysis,
    /// Against its single-rate twin, when it has one with a best validation loss.
    pub twin: Option<TwinComparison>,
}

/// Which runs `list` returns.
#[derive(Clone, Debug, Default)]
pub struct ListFilter {
    pub status: Option<RunStatus>,
    pub tag: Option<String>,
    /// Judged with the default thresholds.
    pub verdict: Option<Verdict>,
    pub limit: Option<usize>,
    /// Only the trials of this sweep.
    pub sweep: Option<String>,
}

pub struct Runs {
    store: Arc<Store>,
    data_dir: PathBuf,
    /// Where client-named files may be read from.
    data_roots: DataRoots,
    /// Datasets being read for a start or a dry run (each held in memory meanwhile).
    dataset_loads: Arc<Semaphore>,
    keep_checkpoints: usize,
    queue: queue::Queue,
    /// The worker processes runs, range tests and TorchScript checks run in.
    workers: Arc<Workers>,
    live: live::LiveRuns,
    /// The live external runs, and how long each may stay silent.
    external: external::ExternalRuns,
    external_timeout: std::time::Duration,
    shutting_down: AtomicBool,
    /// Cancelled when shutdown begins: what range tests (which are no live runs) wait on.
    stopping: tokio_util::sync::CancellationToken,
    /// When the runs must have stopped by, once shutdown began.
    shutdown_deadline: std::sync::OnceLock<tokio::time::Instant>,
    /// The tasks that drive runs and range tests (shutdown waits for them).
    tasks: TaskTracker,
    /// Each run's analysis with the default thresholds, until the run changes.
    analyses: analysis_cache::AnalysisCache,
}

/// Runs blocking work (store reads and flushes, file reads) off the async runtime.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| StrataError::Internal(format!("a blocking task failed: {e}")))?
}

/// [`blocking`] for a query whose caller may stop waiting (its client left): `work` is told
/// through the flag, set when the caller drops the future, and stops at its next check.
async fn blocking_until_abandoned<T: Send + 'static>(
    work: impl FnOnce(&AtomicBool) -> Result<T> + Send + 'static,
) -> Result<T> {
    struct SetOnDrop(Arc<AtomicBool>);
    impl Drop for SetOnDrop {
        fn drop(&mut self) {
            self.0.store(true, std::sync::atomic::Ordering::Relaxed);
        }
    }
    let abandoned = Arc::new(AtomicBool::new(false));
    let _set_when_dropped = SetOnDrop(abandoned.clone());
    blocking(move || work(&abandoned)).await
}

impl Runs {
    /// Opens the manager over a store whose unfinished runs were already marked interrupted;
    /// runs train in `workers`.
    pub fn new(
        store: Arc<Store>,
        data_dir: PathBuf,
        max_concurrent_runs: usize,
        workers: Arc<Workers>,
        keep_checkpoints: usize,
        data_roots: DataRoots,
        limits: Limits,
    ) -> Arc<Self> {
        Arc::new(Runs {
            store,
            data_dir,
            data_roots,
            dataset_loads: Arc::new(Semaphore::new(MAX_CONCURRENT_DATASET_LOADS)),
            keep_checkpoints: keep_checkpoints.max(1),
            queue: queue::Queue::new(max_concurrent_runs, limits.max_queued_runs),
            workers,
            live: live::LiveRuns::default(),
            external: external::ExternalRuns::new(limits.max_external_runs),
            external_timeout: limits.external_timeout,
            shutting_down: AtomicBool::new(false),
            stopping: tokio_util::sync::CancellationToken::new(),
            shutdown_deadline: std::sync::OnceLock::new(),
            tasks: TaskTracker::new(),
            analyses: analysis_cache::AnalysisCache::default(),
        })
    }

    /// How long an external run may log nothing before it is interrupted.
    pub fn external_timeout(&self) -> std::time::Duration {
        self.external_timeout
    }

    pub fn max_concurrent_runs(&self) -> usize {
        self.queue.slots()
    }

    /// The devices runs can train on (`cpu`, then `cuda:N` for each GPU workers can use).
    pub fn devices(&self) -> Vec<String> {
        self.workers.devices().labels().to_vec()
    }

    /// Runs training now and runs queued for a slot.
    pub fn load(&self) -> (usize, usize) {
        let (running, queued) = self.queue.load();
        let remote = self.workers.hub().map_or(0, |hub| {
            hub.registry
                .list()
                .iter()
                .filter(|w| w.training.is_some())
                .count()
        });
        (running + remote, queued)
    }

    /// This daemon's part of every run id it makes.
    pub fn run_id_tag(&self) -> crate::domain::RunIdTag {
        self.store.run_id_tag()
    }

    /// The one run `run` (an id or a unique prefix) names.
    async fn resolve(&self, run: &str) -> Result<RunId> {
        let (store, run) = (self.store.clone(), run.to_string());
        blocking(move || store.resolve(&run)).await
    }

    fn checkpoint_dir(&self, id: RunId) -> PathBuf {
        crate::integrity::runs_dir(&self.data_dir).join(id.to_string())
    }

    /// The run's state as queries answer it (blocking).
    fn state_of(&self, id: RunId, named: &str) -> Result<RunState> {
        let (record, epochs_done) = self
            .store
            .get_run_with_epochs_done(id)?
            .ok_or_else(|| StrataError::RunNotFound(named.to_string()))?;
        let (worker, worker_losses) = self.live.remote(id);
        Ok(RunState {
            record,
            epochs_done,
            queue_position: self.queue.position(id),
            worker_pid: self.live.worker_pid(id),
            waiting: self.waiting_reason(id),
            worker,
            worker_losses,
        })
    }

    /// Why a queued run waits, in words (empty for a run that does not wait).
    fn waiting_reason(&self, id: RunId) -> String {
        let position = self.queue.position(id);
        if position == 0 {
            return String::new();
        }
        let ahead = position - 1;
        let Some(hub) = self.workers.hub() else {
            return format!("waits for a free training slot ({ahead} ahead of it)");
        };
        let Some((_, need)) = hub.dispatch.waiting(id) else {
            return format!("waits for a free training slot or worker ({ahead} ahead of it)");
        };
        let offers = hub.registry.offers();
        let refusals: Vec<String> = offers
            .iter()
            .filter_map(|offer| {
                offer
                    .serves(&need)
                    .err()
                    .map(|why| format!("{} {why}", offer.name))
            })
            .collect();
        let own = if self.queue.slots() > 0 && need.label.is_none() {
            " or a slot of this daemon's"
        } else {
            ""
        };
        if offers.is_empty() {
            format!("waits for a remote worker that can serve it{own}: none is connected")
        } else if refusals.len() == offers.len() {
            format!(
                "no connected worker can serve it{}: {}",
                if own.is_empty() {
                    ""
                } else {
                    " (it waits for one, or a slot of this daemon's)"
                },
                refusals.join("; ")
            )
        } else {
            format!("waits for a free worker that can serve it{own} ({ahead} ahead of it)")
        }
    }

    /// The remote workers connected now, with the heartbeat timeout and retries (`None`: the
    /// daemon takes no remote workers).
    pub fn remote_workers(&self) -> Option<(Vec<crate::workers::remote::WorkerView>, u32, u32)> {
        let hub = self.workers.hub()?;
        Some((
            hub.registry.list(),
            hub.registry.heartbeat_timeout().as_secs() as u32,
            hub.retries,
        ))
    }
}
