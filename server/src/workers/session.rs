//! The daemon's side of one job's session with its worker: the messages both ways, the worker's
//! heartbeat, a stop request and the kill once its grace is over, and how the worker ended.

use std::{sync::Arc, time::Duration};

use strata_proto::worker::v1 as wire;
use tokio::{sync::mpsc, time::Instant};
use tonic::Status;

use super::{
    process::{KillCause, WorkerExit, WorkerProcess},
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
    /// The worker process ended (its stream ended with it, or before it).
    Ended(Arc<WorkerExit>),
}

/// The worker's messages stopped coming before the worker did: its stream closed.
#[derive(Debug)]
pub struct WorkerGone;

/// One job's session: its worker process and its connection.
pub struct Session {
    process: WorkerProcess,
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
        Session {
            on_end,
            process,
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

    /// The worker's process id.
    pub fn pid(&self) -> u32 {
        self.process.pid
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

    /// Kills the worker: its job is over on the daemon's side.
    pub fn abandon(&self) {
        self.process.kill(KillCause::Abandoned);
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
            tokio::select! {
                biased;
                message = self.incoming.message(), if !self.stream_ended => match message {
                    Ok(Some(wire::WorkerMessage { message: Some(message) })) => {
                        self.last_heard = Instant::now();
                        if !matches!(message, wire::worker_message::Message::Heartbeat(_)) {
                            return Event::Message(message);
                        }
                    }
                    Ok(Some(wire::WorkerMessage { message: None })) => {
                        self.last_heard = Instant::now();
                    }
                    // Closed or broken: the worker's end is what tells how the job went.
                    Ok(None) | Err(_) => self.stream_ended = true,
                },
                exit = self.process.ended() => return Event::Ended(exit),
                () = tokio::time::sleep_until(heartbeat_deadline) => {
                    self.process.kill(KillCause::NoHeartbeat { silent: self.heartbeat_timeout });
                    // Its end comes next.
                    self.last_heard = Instant::now() + Duration::from_secs(3600);
                }
                () = stop_grace => {
                    self.process.kill(KillCause::StopGrace { grace: self.stop_grace });
                    self.stop_deadline = None;
                }
            }
        }
    }

    /// Closes the session and waits for the worker to exit (once it said `Finished`, the closed
    /// stream is its goodbye, and it exits); one that lingers is killed after a grace.
    pub async fn ended(self) -> Arc<WorkerExit> {
        let Session {
            mut process,
            incoming,
            outgoing,
            on_end,
            ..
        } = self;
        drop(outgoing);
        drop(incoming);
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
        exit
    }
}
