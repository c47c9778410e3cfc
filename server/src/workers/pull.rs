//! A remote worker between its hello and its job: it waits, heartbeating, in the queue's pool of
//! idle workers until the queue hands it a run it can serve (or its connection ends, or it goes
//! silent, or a newer connection of the same worker replaces it — then it leaves the pool, and
//! the worker, seeing its session closed, opens a new one).

use std::sync::Arc;

use strata_proto::worker::v1 as wire;
use tokio::{
    sync::oneshot,
    time::{Duration, Instant},
};

use super::{
    remote::{Connected, Need, OpenSession},
    session::{Connection, Session},
};
use crate::domain::RunId;

/// Who takes an idle worker: the task of the run the queue gave it.
pub type Taker = oneshot::Sender<Session>;

/// A remote worker waiting for a job. The queue hands it one by sending a [`Taker`] through
/// `assign`; a worker gone meanwhile has dropped the other end (`assign.is_closed()`).
pub struct IdleWorker {
    pub worker: Arc<Connected>,
    pub assign: oneshot::Sender<Taker>,
}

/// How long the worker's sessions wait for it.
#[derive(Clone, Copy)]
pub(super) struct Timeouts {
    pub heartbeat: Duration,
    pub stop_grace: Duration,
}

/// Offers the worker to the queue and keeps its session alive until the queue gives it a job:
/// then the session goes to the run's task. Returns (closing the session) when the worker is
/// gone, silent, replaced, or the daemon stops taking workers.
pub(super) async fn wait_for_job(
    mut open: OpenSession,
    mut connection: Connection,
    dispatch: Arc<Dispatch>,
    timeouts: Timeouts,
) {
    let worker = open.worker().clone();
    loop {
        let (assign, assigned) = oneshot::channel();
        dispatch.worker_idle(IdleWorker {
            worker: worker.clone(),
            assign,
        });
        let Some(taker) = wait(&worker, &mut connection, assigned, timeouts.heartbeat).await else {
            return;
        };
        let session = Session::remote(open, connection, timeouts.heartbeat, timeouts.stop_grace);
        match taker.send(session) {
            Ok(()) => return,
            // The run stopped waiting (cancelled) as it was given this worker: idle again.
            Err(session) => match session.into_remote_parts() {
                Some(parts) => (open, connection) = parts,
                None => return,
            },
        }
    }
}

/// Reads the idle worker's heartbeats until the queue assigns it; `None` when it is gone.
async fn wait(
    worker: &Connected,
    connection: &mut Connection,
    mut assigned: oneshot::Receiver<Taker>,
    heartbeat_timeout: Duration,
) -> Option<Taker> {
    let mut last_heard = Instant::now();
    loop {
        tokio::select! {
            biased;
            taker = &mut assigned => return taker.ok(),
            message = connection.incoming.message() => match message {
                Ok(Some(wire::WorkerMessage {
                    message: Some(wire::worker_message::Message::Heartbeat(_)) | None,
                })) => {
                    last_heard = Instant::now();
                    worker.heard();
                }
                Ok(Some(_)) => {
                    tracing::warn!(worker = %worker.offer.name, "a worker waiting for a job sent something other than a heartbeat; its session is closed");
                    return None;
                }
                Ok(None) | Err(_) => {
                    worker.went_away();
                    return None;
                }
            },
            () = tokio::time::sleep_until(last_heard + heartbeat_timeout) => {
                tracing::warn!(worker = %worker.offer.name, silent_s = heartbeat_timeout.as_secs(), "an idle worker sent nothing (no heartbeat); its session is closed");
                return None;
            }
            () = worker.superseded().cancelled() => return None,
        }
    }
}

/// A queued run's registration with the remote workers: what it needs, and where its worker is
/// sent once one is matched to it.
struct WantsWorker {
    run: RunId,
    need: Need,
    matched: oneshot::Sender<Assigned>,
}

/// A remote worker matched to a run: its session comes through `session` (the worker's pull
/// task sends it), and it trains the run on `device`.
pub struct Assigned {
    pub session: oneshot::Receiver<Session>,
    pub device: String,
    pub worker: String,
}

/// Matches queued runs and idle remote workers: a worker coming idle takes the first waiting run
/// it can serve; a run coming takes the first idle worker that can serve it (both in the order
/// they came).
#[derive(Default)]
pub struct Dispatch {
    state: std::sync::Mutex<DispatchState>,
}

#[derive(Default)]
struct DispatchState {
    idle: Vec<IdleWorker>,
    waiting: Vec<WantsWorker>,
}

/// Hands `worker` the run: `Ok` once the worker's pull task has been told.
fn hand(worker: IdleWorker, device: String, run: WantsWorker) -> Result<(), WantsWorker> {
    let (taker, session) = oneshot::channel();
    let name = worker.worker.offer.name.clone();
    if worker.assign.send(taker).is_err() {
        // The worker left meanwhile: the run waits on.
        return Err(run);
    }
    let assigned = Assigned {
        session,
        device,
        worker: name,
    };
    // A run that stopped waiting meanwhile drops its end: the worker's pull task then finds the
    // taker gone and offers the worker again.
    let _ = run.matched.send(assigned);
    Ok(())
}

impl Dispatch {
    fn state(&self) -> std::sync::MutexGuard<'_, DispatchState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A worker is idle: it takes the first waiting run it serves, or waits for one.
    pub fn worker_idle(&self, worker: IdleWorker) {
        let mut state = self.state();
        state.waiting.retain(|w| !w.matched.is_closed());
        let found = state
            .waiting
            .iter()
            .enumerate()
            .find_map(|(i, w)| worker.worker.offer.serves(&w.need).ok().map(|d| (i, d)));
        match found {
            Some((i, device)) => {
                let run = state.waiting.remove(i);
                if let Err(run) = hand(worker, device, run) {
                    state.waiting.insert(i, run);
                }
            }
            None => state.idle.push(worker),
        }
    }

    /// `run` waits for a remote worker that serves `need`: the first idle one takes it now, or
    /// the first to come idle. Dropping the receiver withdraws it.
    pub fn wants_worker(&self, run: RunId, need: Need) -> oneshot::Receiver<Assigned> {
        let (matched, receiver) = oneshot::channel();
        let mut wants = WantsWorker { run, need, matched };
        let mut state = self.state();
        state.idle.retain(|w| !w.assign.is_closed());
        while let Some((i, device)) = state
            .idle
            .iter()
            .enumerate()
            .find_map(|(i, w)| w.worker.offer.serves(&wants.need).ok().map(|d| (i, d)))
        {
            let worker = state.idle.remove(i);
            match hand(worker, device, wants) {
                Ok(()) => return receiver,
                Err(back) => wants = back,
            }
        }
        state.waiting.push(wants);
        receiver
    }

    /// What `run` waits for, if it waits for a remote worker: how many runs wait ahead of it,
    /// and its need.
    pub fn waiting(&self, run: RunId) -> Option<(usize, Need)> {
        let state = self.state();
        let at = state.waiting.iter().position(|w| w.run == run)?;
        Some((at, state.waiting[at].need.clone()))
    }

    /// Idle workers now.
    pub fn idle(&self) -> usize {
        let mut state = self.state();
        state.idle.retain(|w| !w.assign.is_closed());
        state.idle.len()
    }
}
