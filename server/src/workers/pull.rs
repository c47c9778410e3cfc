//! A remote worker between its hello and its job: it waits, heartbeating, in the queue's pool of
//! idle workers until the queue hands it a run it can serve (or its connection ends, or it goes
//! silent, or a newer connection of the same worker replaces it — then it leaves the pool, and
//! the worker, seeing its session closed, opens a new one).

use std::sync::Arc;

use strata_proto::worker::v1 as wire;
use tokio::{
    sync::{mpsc, oneshot},
    time::{Duration, Instant},
};

use super::{
    remote::{Connected, OpenSession},
    session::{Connection, Session},
};

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
    pool: mpsc::UnboundedSender<IdleWorker>,
    timeouts: Timeouts,
) {
    let worker = open.worker().clone();
    loop {
        let (assign, assigned) = oneshot::channel();
        let offered = pool.send(IdleWorker {
            worker: worker.clone(),
            assign,
        });
        if offered.is_err() {
            return;
        }
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
                Ok(None) | Err(_) => return None,
            },
            () = tokio::time::sleep_until(last_heard + heartbeat_timeout) => {
                tracing::warn!(worker = %worker.offer.name, silent_s = heartbeat_timeout.as_secs(), "an idle worker sent nothing (no heartbeat); its session is closed");
                return None;
            }
            () = worker.superseded().cancelled() => return None,
        }
    }
}
