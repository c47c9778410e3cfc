//! The worker protocol's gRPC service: a worker connects, says hello with the ticket of the job it
//! was started for, and its session is handed to the run manager's task waiting for it.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use strata_proto::worker::v1::{self as wire, worker_server::Worker};
use tokio::sync::{mpsc, oneshot};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use super::{pull, remote::Offer, session::Connection, wire::PROTOCOL_VERSION, Hub};

/// How long a connected worker may take to say hello.
const HELLO_TIMEOUT: Duration = Duration::from_secs(30);
/// Messages to a worker queued before the daemon waits for it to read (a checkpoint's chunks).
const TO_WORKER_BUFFER: usize = 8;

/// The jobs waiting for their worker to connect, by ticket.
#[derive(Default)]
pub(super) struct Waiting(Mutex<HashMap<String, oneshot::Sender<Connection>>>);

impl Waiting {
    pub fn add(&self, ticket: String, connected: oneshot::Sender<Connection>) {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(ticket, connected);
    }

    pub fn remove(&self, ticket: &str) -> Option<oneshot::Sender<Connection>> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(ticket)
    }
}

pub(super) struct WorkerService {
    pub waiting: Arc<Waiting>,
    /// On the remote workers' listener: the hub they pull runs from (and no tickets).
    pub remote: Option<Arc<Hub>>,
}

#[tonic::async_trait]
impl Worker for WorkerService {
    type WorkStream = ReceiverStream<Result<wire::DaemonMessage, Status>>;

    async fn work(
        &self,
        request: Request<Streaming<wire::WorkerMessage>>,
    ) -> Result<Response<Self::WorkStream>, Status> {
        let address = peer_address(&request);
        let mut incoming = request.into_inner();
        let first = tokio::time::timeout(HELLO_TIMEOUT, incoming.message())
            .await
            .map_err(|_| Status::deadline_exceeded("no hello within 30 s"))??;
        let Some(wire::WorkerMessage {
            message: Some(wire::worker_message::Message::Hello(hello)),
        }) = first
        else {
            return Err(Status::invalid_argument(
                "a worker's first message is its hello",
            ));
        };
        if hello.protocol != PROTOCOL_VERSION {
            return Err(Status::failed_precondition(format!(
                "this daemon speaks worker protocol {PROTOCOL_VERSION}, the worker {} (strata-worker {}); run the strata-worker built with this stratad",
                hello.protocol, hello.version
            )));
        }
        if let Some(hub) = &self.remote {
            return remote_session(hub, hello, incoming, address);
        }
        let Some(connected) = self.waiting.remove(&hello.ticket) else {
            return Err(Status::not_found(format!(
                "no job waits for ticket '{}'",
                crate::spec::shown(&hello.ticket)
            )));
        };
        let (outgoing, to_worker) = mpsc::channel(TO_WORKER_BUFFER);
        connected
            .send(Connection {
                hello,
                incoming,
                outgoing,
            })
            .map_err(|_| Status::aborted("the job this worker was started for is gone"))?;
        Ok(Response::new(ReceiverStream::new(to_worker)))
    }
}

/// A remote worker's session: its offer checked, its name taken in the registry, then it waits
/// in the hub's pool for a run it can serve.
fn remote_session(
    hub: &Arc<Hub>,
    hello: wire::Hello,
    incoming: Streaming<wire::WorkerMessage>,
    address: String,
) -> Result<Response<ReceiverStream<Result<wire::DaemonMessage, Status>>>, Status> {
    if !hello.ticket.is_empty() {
        return Err(Status::invalid_argument(
            "tickets are for the daemon's own workers; a remote worker says hello with its offer and no ticket",
        ));
    }
    let Some(offer) = hello.offer.clone() else {
        return Err(Status::invalid_argument(
            "a remote worker's hello must carry its offer",
        ));
    };
    let offer = Offer::from_wire(offer).map_err(Status::invalid_argument)?;
    let open = hub.registry.admit(&hello, offer, address)?;
    let (outgoing, to_worker) = mpsc::channel(TO_WORKER_BUFFER);
    if !hello.stale_run_id.is_empty() {
        let run = crate::spec::shown(&hello.stale_run_id);
        tracing::warn!(worker = %open.worker().offer.name, run = %run, "a worker came back with a run that has moved on without it; told to drop it");
        let stale = wire::DaemonMessage {
            message: Some(wire::daemon_message::Message::Stop(wire::Stop {
                kind: wire::StopKind::Stale as i32,
                run_id: hello.stale_run_id.clone(),
            })),
        };
        let _ = outgoing.try_send(Ok(stale));
    }
    tracing::info!(worker = %open.worker().offer.name, host = %hello.host, pid = hello.pid, "remote worker connected, waiting for a run");
    let connection = Connection {
        hello,
        incoming,
        outgoing,
    };
    tokio::spawn(pull::wait_for_job(
        open,
        connection,
        hub.dispatch.clone(),
        hub.timeouts,
    ));
    Ok(Response::new(ReceiverStream::new(to_worker)))
}

/// Where a request came from: its connection's peer (through the connection slots, with or
/// without TLS), or empty for a Unix socket.
fn peer_address<T>(request: &Request<T>) -> String {
    use crate::transport::connections::ConnectionInfo;
    let extensions = request.extensions();
    extensions
        .get::<ConnectionInfo>()
        .and_then(|info| info.tcp.remote_addr())
        .or_else(|| {
            extensions
                .get::<tonic::transport::server::TlsConnectInfo<ConnectionInfo>>()
                .and_then(|info| info.get_ref().tcp.remote_addr())
        })
        .or_else(|| request.remote_addr())
        .map_or_else(String::new, |a| a.to_string())
}
