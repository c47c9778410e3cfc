//! The runs in flight (queued or running): their event channels and stop flags, and the watch
//! fan-out that streams a run's stored history and then its live events.

use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicU32, AtomicU8, Ordering},
        Arc, Mutex, MutexGuard,
    },
};

use tokio::sync::{broadcast, mpsc, Notify};

use super::blocking;
use crate::{
    domain::{EpochMetrics, RunEvent, RunId, StopRequest},
    error::{Result, StrataError},
    store::Store,
};

/// Events buffered per run for its watchers. A watcher further behind than this is skipped
/// forward (epochs are re-read from the store, so it never misses one).
pub const WATCH_BUFFER_EVENTS: usize = 256;
/// Events queued per watcher connection before its task waits for the client to read.
const WATCHER_QUEUE_EVENTS: usize = 64;
/// Stored epochs a watcher reads at once while it catches up.
const CATCH_UP_PAGE_EPOCHS: usize = 500;
/// Run changes buffered for the daemon-wide feed (the dashboard's runs page). A listener further
/// behind is told it lagged and re-reads the list: changes carry no data of their own.
pub const CHANGES_BUFFER_EVENTS: usize = 1024;

/// A run that is queued or running: its live event channel and its stop flag.
pub(super) struct LiveRun {
    id: RunId,
    events: broadcast::Sender<RunEvent>,
    /// The daemon-wide feed of changed runs.
    changes: broadcast::Sender<RunId>,
    pub stop: AtomicU8,
    pub stop_notify: Notify,
    /// Why a cancel asked the run to stop, when its caller said (a sweep stopping a trial).
    cancel_reason: Mutex<String>,
    /// Set when shutdown recorded the run's end already (queued runs, in one write for all):
    /// the reason it recorded.
    recorded_end: std::sync::OnceLock<String>,
    /// The process id of the worker training it; 0 while it has none.
    worker_pid: AtomicU32,
    /// The remote worker training it (its name); empty while it has none.
    worker: Mutex<String>,
    /// Remote workers lost while training it since it was started or resumed.
    pub worker_losses: AtomicU32,
}

impl LiveRun {
    pub fn id(&self) -> RunId {
        self.id
    }

    /// Keeps the reason a cancel gives, to be recorded when the run stops (empty: none given).
    pub fn set_cancel_reason(&self, reason: String) {
        if !reason.is_empty() {
            *self.cancel_reason.lock().unwrap_or_else(|p| p.into_inner()) = reason;
        }
    }

    /// The reason a cancel gave, if any.
    pub fn cancel_reason(&self) -> String {
        self.cancel_reason
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn request_stop(&self, request: StopRequest) {
        self.set_stop(request);
        self.stop_notify.notify_one();
    }

    /// Sets the stop flag without waking the run (shutdown wakes queued runs once their end is
    /// recorded).
    pub fn set_stop(&self, request: StopRequest) {
        request.request(&self.stop);
    }

    /// Says shutdown recorded the run's end, with this reason.
    pub fn end_recorded(&self, reason: String) {
        let _ = self.recorded_end.set(reason);
    }

    /// The reason shutdown recorded, if it recorded the run's end.
    pub fn recorded_end(&self) -> Option<&str> {
        self.recorded_end.get().map(String::as_str)
    }

    /// Names the worker training the run (0: none any more).
    pub fn set_worker_pid(&self, pid: u32) {
        self.worker_pid.store(pid, Ordering::Release);
    }

    /// Names the remote worker training the run (empty: none any more).
    pub fn set_worker(&self, name: &str) {
        *self.worker.lock().unwrap_or_else(|p| p.into_inner()) = name.to_string();
    }

    pub fn worker(&self) -> String {
        self.worker
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Tells the run's watchers. No watcher is not an error: events are a live view, the store
    /// is the record.
    pub fn send(&self, event: RunEvent) {
        let changed = matches!(event, RunEvent::Epoch(_) | RunEvent::Status { .. });
        let _ = self.events.send(event);
        if changed {
            let _ = self.changes.send(self.id);
        }
    }

    pub fn subscribe(&self) -> broadcast::Receiver<RunEvent> {
        self.events.subscribe()
    }
}

/// The registry of live runs, and the feed of runs whose record or epochs changed.
pub(super) struct LiveRuns {
    runs: Mutex<HashMap<RunId, Arc<LiveRun>>>,
    changes: broadcast::Sender<RunId>,
}

impl Default for LiveRuns {
    fn default() -> Self {
        LiveRuns {
            runs: Mutex::default(),
            changes: broadcast::channel(CHANGES_BUFFER_EVENTS).0,
        }
    }
}

impl LiveRuns {
    /// Says a run was stored, changed status, gained an epoch or was deleted. Nobody listening is
    /// not an error, and a send never waits: a slow listener never slows a run.
    pub fn changed(&self, id: RunId) {
        let _ = self.changes.send(id);
    }

    pub fn subscribe_changes(&self) -> broadcast::Receiver<RunId> {
        self.changes.subscribe()
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<RunId, Arc<LiveRun>>> {
        self.runs.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn get(&self, id: RunId) -> Option<Arc<LiveRun>> {
        self.lock().get(&id).cloned()
    }

    /// The process id of the worker training `id`; 0 when it has none.
    pub fn worker_pid(&self, id: RunId) -> u32 {
        self.lock()
            .get(&id)
            .map_or(0, |run| run.worker_pid.load(Ordering::Acquire))
    }

    /// The remote worker training `id` (empty: none), and the workers it lost.
    pub fn remote(&self, id: RunId) -> (String, u32) {
        self.lock().get(&id).map_or((String::new(), 0), |run| {
            (run.worker(), run.worker_losses.load(Ordering::Acquire))
        })
    }

    pub fn all(&self) -> Vec<Arc<LiveRun>> {
        self.lock().values().cloned().collect()
    }

    /// Registers a run as live, or says it already is.
    pub fn claim(&self, id: RunId) -> Result<Arc<LiveRun>> {
        let mut live = self.lock();
        if live.contains_key(&id) {
            return Err(StrataError::FailedPrecondition(format!(
                "run {id} is already queued or running"
            )));
        }
        let (events, _) = broadcast::channel(WATCH_BUFFER_EVENTS);
        let run = Arc::new(LiveRun {
            id,
            events,
            changes: self.changes.clone(),
            stop: AtomicU8::new(0),
            stop_notify: Notify::new(),
            cancel_reason: Mutex::new(String::new()),
            recorded_end: std::sync::OnceLock::new(),
            worker_pid: AtomicU32::new(0),
            worker: Mutex::new(String::new()),
            worker_losses: AtomicU32::new(0),
        });
        live.insert(id, run.clone());
        Ok(run)
    }

    pub fn release(&self, id: RunId) {
        self.lock().remove(&id);
        self.changed(id);
    }

    /// Runs `work` while no run can be claimed, if `id` is not live; else says it is.
    pub fn while_idle<T>(&self, id: RunId, work: impl FnOnce() -> Result<T>) -> Result<T> {
        let live = self.lock();
        if live.contains_key(&id) {
            return Err(StrataError::FailedPrecondition(format!(
                "run {id} is queued or running; cancel it before deleting it (a run logged from outside: finish it, or let it go silent until it is interrupted)"
            )));
        }
        let done = work();
        drop(live);
        done
    }
}

/// Streams the run's stored epochs from `from_epoch`, then its live events from `subscription`
/// (taken before this is called, so nothing falls between history and live), with no gap and
/// no duplicate, ending after the run's terminal status.
pub(super) fn spawn_watcher(
    store: Arc<Store>,
    id: RunId,
    from_epoch: u32,
    subscription: Option<broadcast::Receiver<RunEvent>>,
) -> mpsc::Receiver<Result<RunEvent>> {
    let (tx, rx) = mpsc::channel(WATCHER_QUEUE_EVENTS);
    tokio::spawn(async move {
        let mut watcher = Watcher {
            id,
            store,
            tx,
            next_epoch: from_epoch.max(1),
        };
        if let Err(err) = watcher.stream(subscription).await {
            let _ = watcher.tx.send(Err(err)).await;
        }
    });
    rx
}

/// One watcher's stream.
struct Watcher {
    id: RunId,
    store: Arc<Store>,
    tx: mpsc::Sender<Result<RunEvent>>,
    next_epoch: u32,
}

/// The client went away: nothing more to send.
struct Disconnected;

impl Watcher {
    async fn send(&self, event: RunEvent) -> std::result::Result<(), Disconnected> {
        self.tx.send(Ok(event)).await.map_err(|_| Disconnected)
    }

    async fn send_epoch(&mut self, record: EpochMetrics) -> std::result::Result<(), Disconnected> {
        if record.epoch >= self.next_epoch {
            self.next_epoch = record.epoch + 1;
            self.send(RunEvent::Epoch(record)).await?;
        }
        Ok(())
    }

    /// Sends every stored epoch not sent yet, a page at a time: a watcher of a long run holds
    /// at most [`CATCH_UP_PAGE_EPOCHS`] of its epochs.
    async fn catch_up(&mut self) -> Result<()> {
        loop {
            let store = self.store.clone();
            let (id, from) = (self.id, self.next_epoch);
            let page = blocking(move || store.epoch_page(id, from, CATCH_UP_PAGE_EPOCHS)).await?;
            let full = page.len() == CATCH_UP_PAGE_EPOCHS;
            for record in page {
                if self.send_epoch(record).await.is_err() {
                    return Ok(());
                }
            }
            if !full {
                return Ok(());
            }
        }
    }

    /// Sends the stored epochs not sent yet, then the stored status; true if that status is
    /// terminal (the stream is complete). The status is read first, so every epoch stored before
    /// it is sent before it.
    async fn send_stored_state(&mut self) -> Result<bool> {
        let (store, id) = (self.store.clone(), self.id);
        let run = blocking(move || {
            store
                .get_run(id)?
                .ok_or_else(|| StrataError::RunNotFound(id.to_string()))
        })
        .await?;
        self.catch_up().await?;
        let terminal = run.status.is_terminal();
        let status = RunEvent::Status {
            status: run.status,
            reason: run.reason,
        };
        if self.send(status).await.is_err() {
            return Ok(true);
        }
        Ok(terminal)
    }

    async fn stream(&mut self, subscription: Option<broadcast::Receiver<RunEvent>>) -> Result<()> {
        let finished = self.send_stored_state().await?;
        let Some(mut events) = subscription.filter(|_| !finished) else {
            return Ok(());
        };
        loop {
            let sent = match events.recv().await {
                Ok(RunEvent::Epoch(record)) => {
                    if record.epoch > self.next_epoch {
                        self.catch_up().await?;
                    }
                    self.send_epoch(record).await
                }
                Ok(RunEvent::Status { status, reason }) => {
                    if status.is_terminal() {
                        self.catch_up().await?;
                    }
                    let sent = self.send(RunEvent::Status { status, reason }).await;
                    if status.is_terminal() {
                        return Ok(());
                    }
                    sent
                }
                Ok(other) => self.send(other).await,
                Err(broadcast::error::RecvError::Lagged(skipped)) => {
                    let notice = format!("this watcher fell behind: {skipped} live events skipped; epochs resent from the store");
                    let sent = self.send(RunEvent::Notice(notice)).await;
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
    use crate::domain::{RunRecord, RunStatus};

    fn epoch(n: u32) -> EpochMetrics {
        EpochMetrics {
            epoch: n,
            train_loss: f64::from(n),
            ..Default::default()
        }
    }

    async fn collect(mut rx: mpsc::Receiver<Result<RunEvent>>) -> Vec<RunEvent> {
        let mut events = Vec::new();
        while let Some(event) = rx.recv().await {
            events.push(event.unwrap());
        }
        events
    }

    fn epochs_of(events: &[RunEvent]) -> Vec<u32> {
        events
            .iter()
            .filter_map(|e| match e {
                RunEvent::Epoch(m) => Some(m.epoch),
                _ => None,
            })
            .collect()
    }

    /// History from the store, then live events: every epoch once, in order, whether it reached
    /// the watcher from the store, from the broadcast, or from both; the terminal status last.
    #[tokio::test]
    async fn a_watcher_sees_history_then_live_without_gap_or_duplicate() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(dir.path()).unwrap());
        let id = store.next_run_id();
        let mut record = RunRecord::example(id);
        record.status = RunStatus::Running;
        store.put_run(&record).unwrap();
        store.put_epochs(id, &[epoch(1), epoch(2)]).unwrap();

        let live = LiveRuns::default();
        let run = live.claim(id).unwrap();
        assert!(live.claim(id).is_err(), "a run is claimed once");
        let rx = spawn_watcher(store.clone(), id, 0, Some(run.subscribe()));
        // Epoch 2 is stored and also broadcast late; epoch 3 is stored, epoch 4 is only stored
        // before the end (the watcher catches up from the store).
        run.send(RunEvent::Epoch(epoch(2)));
        store.put_epoch(id, &epoch(3)).unwrap();
        run.send(RunEvent::Epoch(epoch(3)));
        store.put_epoch(id, &epoch(4)).unwrap();
        record.status = RunStatus::Completed;
        store.put_run(&record).unwrap();
        run.send(RunEvent::Status {
            status: RunStatus::Completed,
            reason: String::new(),
        });
        let events = collect(rx).await;
        assert_eq!(epochs_of(&events), [1, 2, 3, 4]);
        assert!(matches!(
            events.last(),
            Some(RunEvent::Status {
                status: RunStatus::Completed,
                ..
            })
        ));

        // A finished run: its history and its status, then the end; from an epoch on.
        live.release(id);
        let events = collect(spawn_watcher(store, id, 3, None)).await;
        assert_eq!(epochs_of(&events), [3, 4]);
        assert_eq!(events.len(), 3);
    }

    /// The feed of changed runs hears of a run claimed and stored (said by the manager), its
    /// epochs and statuses (through its live channel), and its release; progress is no change.
    #[tokio::test]
    async fn the_changes_feed_names_each_changed_run() {
        let live = LiveRuns::default();
        let mut changes = live.subscribe_changes();
        let id = RunId(7);
        let run = live.claim(id).unwrap();
        live.changed(id);
        run.send(RunEvent::Progress(crate::domain::BatchProgress {
            epoch: 1,
            batch: 1,
            batches: 2,
            loss: 1.0,
        }));
        run.send(RunEvent::Epoch(epoch(1)));
        run.send(RunEvent::Status {
            status: RunStatus::Completed,
            reason: String::new(),
        });
        live.release(id);
        let mut heard = Vec::new();
        while let Ok(changed) = changes.try_recv() {
            heard.push(changed);
        }
        assert_eq!(heard, [id, id, id, id], "stored, epoch, status, released");
    }
}
