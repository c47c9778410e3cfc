//! The daemon's side of one job's session with its worker: the messages both ways, the worker's
//! heartbeat, a stop request and the kill once its grace is over, and how the worker ended — a
//! local worker's process exits; a remote worker's session is lost when its connection breaks or
//! it goes silent (the daemon cannot see its process, nor kill it: it closes the session, and a
//! worker whose session is closed drops its job).

use std::{sync::Arc, time::Duration};

use strata_proto::worker::v1 as wire;
use tokio::{sync::mpsc, time::Instant};
use tonic::Status;

use super::{
    process::{KillCause, WorkerExit, WorkerProcess},
    remote::{Connected, OpenSession},
    wire::stop_to_wire,
};
use crate::domain::StopRequest;

/// What the worker said when it connected, and its two streams.
pub struct Connection {
    pub hello: wire::Hello,
    pub incoming: tonic::Streaming<wire::WorkerMessage>,
    pub outgoing: mpsc::Sender<Result<wire::DaemonMessage, Status>>,
}

/// What happened next in a session.
#[derive(Debug)]
pub enum Event {
    /// A message from the worker (heartbeats are taken care of here).
    Message(wire::worker_message::Message),
    /// The worker ended, or was lost.
    Ended(End),
}

/// How a session's worker ended.
#[derive(Debug)]
pub enum End {
    /// A local worker's process exited (its stream ended with it, or before it).
    Exited(Arc<WorkerExit>),
    /// A remote worker's session ended without its job's end: why, in words ("the connection
    /// to worker gpu-1 broke").
    Lost(String),
}

impl End {
    /// What happened, in words, `during` something (`during epoch 3`).
    pub fn describe(&self, during: &str) -> String {
        match self {
            End::Exited(exit) => exit.describe(during),
            End::Lost(why) => format!("{why} {during}"),
        }
    }
}

/// Where a session's worker runs.
enum Host {
    /// A process of this daemon's, started for the job.
    Local(WorkerProcess),
    /// A remote worker, connected on its own.
    Remote(OpenSession),
}

/// The worker's messages stopped coming before the worker did: its stream closed.
#[derive(Debug)]
pub struct WorkerGone;

/// One job's session: its worker process and its connection.
pub struct Session {
    host: Host,
    incoming: tonic::Streaming<wire::WorkerMessage>,
    outgoing: mpsc::Sender<Result<wire::DaemonMessage, Status>>,
    heartbeat_timeout: Duration,
    stop_grace: Duration,
    last_heard: Instant,
    stop_deadline: Option<Instant>,
    stop_requested: StopRequest,
    stream_ended: bool,
    /// Told when the worker has ended (the daemon's workers, to start a spare in the quiet that
    /// follows a CPU job).
    on_end: Option<Box<dyn FnOnce() + Send + Sync>>,
}

impl Session {
    pub(super) fn new(
        process: WorkerProcess,
        connection: Connection,
        heartbeat_timeout: Duration,
        stop_grace: Duration,
        on_end: Option<Box<dyn FnOnce() + Send + Sync>>,
    ) -> Session {
        Session::with_host(
            Host::Local(process),
            connection,
            heartbeat_timeout,
            stop_grace,
            on_end,
        )
    }

    /// A remote worker's session (it connected on its own, and pulled the job).
    pub(super) fn remote(
        worker: OpenSession,
        connection: Connection,
        heartbeat_timeout: Duration,
        stop_grace: Duration,
    ) -> Session {
        Session::with_host(
            Host::Remote(worker),
            connection,
            heartbeat_timeout,
            stop_grace,
            None,
        )
    }

    fn with_host(
        host: Host,
        connection: Connection,
        heartbeat_timeout: Duration,
        stop_grace: Duration,
        on_end: Option<Box<dyn FnOnce() + Send + Sync>>,
    ) -> Session {
        Session {
            on_end,
            host,
            incoming: connection.incoming,
            outgoing: connection.outgoing,
            heartbeat_timeout,
            stop_grace,
            last_heard: Instant::now(),
            stop_deadline: None,
            stop_requested: StopRequest::None,
            stream_ended: false,
        }
    }

    /// The worker's process id on this host (0 for a remote worker).
    pub fn pid(&self) -> u32 {
        match &self.host {
            Host::Local(process) => process.pid,
            Host::Remote(_) => 0,
        }
    }

    /// The remote worker this session is with, if it is one.
    pub fn remote_worker(&self) -> Option<&Arc<Connected>> {
        match &self.host {
            Host::Local(_) => None,
            Host::Remote(open) => Some(open.worker()),
        }
    }

    /// What the worker was asked to stop for, if it was.
    pub fn stop_requested(&self) -> StopRequest {
        self.stop_requested
    }

    /// Sends a message to the worker (waiting while its stream is full).
    pub async fn send(&self, message: wire::daemon_message::Message) -> Result<(), WorkerGone> {
        self.outgoing
            .send(Ok(wire::DaemonMessage {
                message: Some(message),
            }))
            .await
            .map_err(|_| WorkerGone)
    }

    /// Asks the worker to stop at its next batch; it is killed if it has not ended
    /// `stop_grace` later.
    pub async fn stop(&mut self, request: StopRequest) {
        if self.stop_requested == StopRequest::None {
            self.stop_requested = request;
        }
        if self.stop_deadline.is_none() {
            self.stop_deadline = Some(Instant::now() + self.stop_grace);
        }
        let _ = self
            .send(wire::daemon_message::Message::Stop(stop_to_wire(request)))
            .await;
    }

    /// Kills the worker: its job is over on the daemon's side. (A remote worker is told by its
    /// session closing, when the session is dropped or ended.)
    pub fn abandon(&self) {
        if let Host::Local(process) = &self.host {
            process.kill(KillCause::Abandoned);
        }
    }

    /// The worker's next message, or its end. A worker that sends nothing (not even a heartbeat)
    /// for longer than the heartbeat timeout, or that does not stop within its grace once asked,
    /// is killed, and its end follows.
    pub async fn next(&mut self) -> Event {
        loop {
            let heartbeat_deadline = self.last_heard + self.heartbeat_timeout;
            let stop_deadline = self.stop_deadline;
            let stop_grace = async {
                match stop_deadline {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            let (process, remote) = match &mut self.host {
                Host::Local(process) => (Some(process), None),
                Host::Remote(open) => (None, Some(open.worker().clone())),
            };
            let process_ended = async {
                match process {
                    Some(process) => process.ended().await,
                    None => std::future::pending().await,
                }
            };
            let superseded = async {
                match &remote {
                    Some(worker) => worker.superseded().cancelled().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                biased;
                message = self.incoming.message(), if !self.stream_ended => match message {
                    Ok(Some(wire::WorkerMessage { message: Some(message) })) => {
                        self.heard(remote.as_deref());
                        if !matches!(message, wire::worker_message::Message::Heartbeat(_)) {
                            return Event::Message(message);
                        }
                    }
                    Ok(Some(wire::WorkerMessage { message: None })) => {
                        self.heard(remote.as_deref());
                    }
                    // Closed or broken: a local worker's end is what tells how the job went; a
                    // remote worker's is unknown here.
                    Ok(None) | Err(_) => {
                        self.stream_ended = true;
                        if let Some(worker) = &remote {
                            worker.went_away();
                            return Event::Ended(End::Lost(format!(
                                "the connection to worker {} broke",
                                worker.offer.name
                            )));
                        }
                    }
                },
                exit = process_ended => return Event::Ended(End::Exited(exit)),
                () = superseded => {
                    let name = remote.as_ref().map_or("", |w| w.offer.name.as_str());
                    return Event::Ended(End::Lost(format!(
                        "worker {name} connected again (its earlier connection was taken for lost)"
                    )));
                }
                () = tokio::time::sleep_until(heartbeat_deadline) => {
                    match (&self.host, &remote) {
                        (Host::Local(process), _) => {
                            process.kill(KillCause::NoHeartbeat { silent: self.heartbeat_timeout });
                            // Its end comes next.
                            self.last_heard = Instant::now() + Duration::from_secs(3600);
                        }
                        (Host::Remote(_), worker) => {
                            let name = worker.as_ref().map_or("", |w| w.offer.name.as_str());
                            return Event::Ended(End::Lost(format!(
                                "worker {name} sent nothing for {} s (no heartbeat)",
                                self.heartbeat_timeout.as_secs()
                            )));
                        }
                    }
                }
                () = stop_grace => {
                    self.stop_deadline = None;
                    match &self.host {
                        Host::Local(process) => {
                            process.kill(KillCause::StopGrace { grace: self.stop_grace });
                        }
                        Host::Remote(open) => {
                            return Event::Ended(End::Lost(format!(
                                "worker {} did not stop within {} s of being asked to",
                                open.worker().offer.name,
                                self.stop_grace.as_secs()
                            )));
                        }
                    }
                }
            }
        }
    }

    /// A remote session not started yet, taken apart again (its job's taker went away).
    pub(super) fn into_remote_parts(self) -> Option<(OpenSession, Connection)> {
        let Session {
            host,
            incoming,
            outgoing,
            ..
        } = self;
        let Host::Remote(open) = host else {
            return None;
        };
        Some((
            open,
            Connection {
                hello: wire::Hello::default(),
                incoming,
                outgoing,
            },
        ))
    }

    fn heard(&mut self, remote: Option<&Connected>) {
        self.last_heard = Instant::now();
        if let Some(worker) = remote {
            worker.heard();
        }
    }

    /// Closes the session and waits for a local worker to exit (once it said `Finished`, the
    /// closed stream is its goodbye, and it exits); one that lingers is killed after a grace. A
    /// remote worker's session just closes (the worker opens its next): `None`.
    pub async fn ended(self) -> Option<Arc<WorkerExit>> {
        let Session {
            host,
            incoming,
            outgoing,
            on_end,
            ..
        } = self;
        drop(outgoing);
        drop(incoming);
        let mut process = match host {
            Host::Local(process) => process,
            Host::Remote(open) => {
                drop(open);
                return None;
            }
        };
        let grace = Duration::from_secs(5);
        let exit = match tokio::time::timeout(grace, process.ended()).await {
            Ok(exit) => exit,
            Err(_) => {
                process.kill(KillCause::Abandoned);
                process.ended().await
            }
        };
        if let Some(on_end) = on_end {
            on_end();
        }
        Some(exit)
    }
}
