//! The worker's side of the worker protocol (`worker.proto`): connect to the daemon, say hello
//! with the job's ticket, receive the job and the checkpoint it starts from, then report from the
//! training thread ([`Link`]) while two tasks of the async runtime heartbeat and read what the
//! daemon says (acknowledgements for the training thread, stop requests into the stop flag).
//!
//! A worker whose daemon is gone (its stream broke: the daemon was killed, or stopped without
//! waiting) exits at once, whatever its training thread is doing: nothing it could still do would
//! be stored, and a worker must never outlive its daemon.

use std::{
    sync::{
        atomic::{AtomicBool, AtomicU8},
        mpsc as std_mpsc, Arc, Mutex,
    },
    time::Duration,
};

use strata_proto::worker::v1::{self as wire, worker_client::WorkerClient};
use strata_server::domain::StopRequest;
use strata_server::workers::wire::{
    stop_from_wire, FLOW_WINDOW_BYTES, MAX_MESSAGE_BYTES, MAX_PROGRESS_BATCHES, PROGRESS_GATHER,
    PROTOCOL_VERSION,
};
use tokio::sync::{mpsc, Notify};
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Endpoint;

/// How often the worker tells the daemon it is alive, whatever its training does.
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(2);
/// The exit status of a worker whose daemon went away.
pub const EXIT_DAEMON_GONE: i32 = 3;
/// Messages to the daemon queued before the sender waits (progress is dropped instead).
const OUTGOING_BUFFER: usize = 16;
/// Largest checkpoint a job may start from (the daemon bounds what it keeps far below this).
const MAX_START_CHECKPOINT_BYTES: u64 = 64 << 30;
/// How long a finished worker waits for the daemon to take its last message before it exits.
const FAREWELL_TIMEOUT: Duration = Duration::from_secs(10);

/// Where and as what the worker connects.
pub struct Connect {
    /// `unix:PATH` for the daemon's local socket; `http://` or `https://HOST:PORT` for a remote
    /// worker.
    pub address: String,
    /// The job it was started for (empty for a remote worker, which pulls one).
    pub ticket: String,
    /// The workers' token.
    pub token: String,
    /// A remote worker's offer.
    pub offer: Option<wire::Offer>,
    /// The run a remote worker lost its daemon during, if any.
    pub stale_run_id: String,
    /// A PEM CA certificate to trust for `https://` (else the system's roots).
    pub tls_ca: Option<Vec<u8>>,
}

/// Why a session could not begin; `permanent` when trying again cannot help (the daemon refused
/// this worker's token, its offer or its protocol).
#[derive(Debug)]
pub struct Refused {
    pub message: String,
    pub permanent: bool,
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl From<String> for Refused {
    fn from(message: String) -> Self {
        Refused {
            message,
            permanent: false,
        }
    }
}

/// A job as the daemon sent it, with the checkpoint it starts from.
pub struct Received {
    pub job: wire::Job,
    pub checkpoint: Option<Vec<u8>>,
}

/// What the daemon answers the training thread.
#[derive(Debug)]
pub enum Reply {
    /// The run's record as the daemon stores it (the answer to `DataLoaded`).
    RunRecord(Vec<u8>),
    /// This epoch is durable (the answer to an epoch).
    EpochStored(u32),
}

/// The connected session, as the training thread uses it.
pub struct Link {
    runtime: tokio::runtime::Handle,
    outgoing: mpsc::Sender<wire::WorkerMessage>,
    replies: Mutex<std_mpsc::Receiver<Reply>>,
    /// Raised (a `StopRequest`) when the daemon asks the job to stop.
    pub stop: Arc<AtomicU8>,
    /// Set once the job's end is sent: the daemon closing its stream is then the goodbye.
    finishing: Arc<AtomicBool>,
    closed: Arc<Notify>,
    /// Batch losses not sent yet: sent together every [`PROGRESS_GATHER`], and before an epoch.
    gathered: Arc<Mutex<Vec<strata_proto::BatchProgress>>>,
    /// A remote worker's session broke before its job's end (the job was stopped).
    lost: Arc<AtomicBool>,
}

fn message(message: wire::worker_message::Message) -> wire::WorkerMessage {
    wire::WorkerMessage {
        message: Some(message),
    }
}

/// Connects, says hello and receives the job (and its checkpoint); starts the heartbeat and the
/// task that reads the daemon's messages. Call within the runtime.
pub async fn connect(connect: &Connect) -> Result<(Link, Received), Refused> {
    let mut endpoint = Endpoint::from_shared(connect.address.clone())
        .map_err(|e| Refused {
            message: format!("'{}' is not an address to connect to: {e}", connect.address),
            permanent: true,
        })?
        .connect_timeout(Duration::from_secs(30))
        .initial_stream_window_size(FLOW_WINDOW_BYTES)
        .initial_connection_window_size(FLOW_WINDOW_BYTES)
        .http2_keep_alive_interval(Duration::from_secs(10))
        .keep_alive_timeout(Duration::from_secs(20))
        .keep_alive_while_idle(true);
    if connect.address.starts_with("https://") {
        let tls = match &connect.tls_ca {
            Some(ca) => tonic::transport::ClientTlsConfig::new()
                .ca_certificate(tonic::transport::Certificate::from_pem(ca)),
            None => tonic::transport::ClientTlsConfig::new().with_native_roots(),
        };
        endpoint = endpoint.tls_config(tls).map_err(|e| Refused {
            message: format!("unusable TLS settings: {e}"),
            permanent: true,
        })?;
    }
    let channel = endpoint
        .connect()
        .await
        .map_err(|e| format!("cannot connect to the daemon at {}: {e}", connect.address))?;
    let bearer: tonic::metadata::MetadataValue<_> = format!("Bearer {}", connect.token)
        .parse()
        .map_err(|_| "the workers' token is not printable ASCII".to_string())?;
    let mut client =
        WorkerClient::with_interceptor(channel, move |mut request: tonic::Request<()>| {
            request
                .metadata_mut()
                .insert("authorization", bearer.clone());
            Ok(request)
        })
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES);
    let (outgoing, to_daemon) = mpsc::channel(OUTGOING_BUFFER);
    let hello = wire::Hello {
        protocol: PROTOCOL_VERSION,
        ticket: connect.ticket.clone(),
        pid: std::process::id(),
        host: host_name(),
        version: env!("CARGO_PKG_VERSION").to_string(),
        offer: connect.offer.clone(),
        stale_run_id: connect.stale_run_id.clone(),
    };
    outgoing
        .send(message(wire::worker_message::Message::Hello(hello)))
        .await
        .map_err(|_| "the session closed before it began".to_string())?;
    let mut incoming = client
        .work(ReceiverStream::new(to_daemon))
        .await
        .map_err(|status| Refused {
            message: format!("the daemon refused this worker: {}", status.message()),
            permanent: matches!(
                status.code(),
                tonic::Code::Unauthenticated
                    | tonic::Code::PermissionDenied
                    | tonic::Code::InvalidArgument
                    | tonic::Code::FailedPrecondition
            ),
        })?
        .into_inner();
    // A remote worker may wait long for its job: it heartbeats meanwhile.
    let beating = tokio::spawn(heartbeat(outgoing.clone()));
    let received = match receive_job(&mut incoming).await {
        Ok(received) => received,
        Err(why) => {
            beating.abort();
            return Err(why.into());
        }
    };
    let remote = connect.offer.is_some();
    let lost = Arc::new(AtomicBool::new(false));
    let (replies_tx, replies) = std_mpsc::channel();
    let stop = Arc::new(AtomicU8::new(0));
    let finishing = Arc::new(AtomicBool::new(false));
    let closed = Arc::new(Notify::new());
    tokio::spawn(read_daemon(
        incoming,
        replies_tx,
        stop.clone(),
        finishing.clone(),
        closed.clone(),
        remote.then(|| lost.clone()),
    ));
    let gathered = Arc::new(Mutex::new(Vec::new()));
    tokio::spawn(send_gathered(outgoing.clone(), gathered.clone()));
    Ok((
        Link {
            runtime: tokio::runtime::Handle::current(),
            outgoing,
            replies: Mutex::new(replies),
            stop,
            finishing,
            closed,
            gathered,
            lost,
        },
        received,
    ))
}

/// The job, then (when it has one) the checkpoint it starts from, in chunks.
async fn receive_job(
    incoming: &mut tonic::Streaming<wire::DaemonMessage>,
) -> Result<Received, String> {
    use wire::daemon_message::Message;
    let lost = |e: tonic::Status| format!("the session with the daemon broke: {}", e.message());
    let job = loop {
        match incoming.message().await.map_err(lost)? {
            Some(wire::DaemonMessage {
                message: Some(Message::Job(job)),
            }) => break job,
            // A run this worker was training when it lost its daemon moved on without it.
            Some(wire::DaemonMessage {
                message: Some(Message::Stop(stop)),
            }) if stop.kind == wire::StopKind::Stale as i32 => {
                tracing::warn!(run = %stop.run_id, "the daemon says the run this worker was training has moved on; it is dropped");
            }
            _ => return Err("the daemon sent no job".into()),
        }
    };
    let expected = job.checkpoint_bytes;
    if expected > MAX_START_CHECKPOINT_BYTES {
        return Err(format!("the job's checkpoint has {expected} bytes"));
    }
    let checkpoint = if expected == 0 {
        None
    } else {
        let mut bytes = Vec::with_capacity(expected as usize);
        while (bytes.len() as u64) < expected {
            match incoming.message().await.map_err(lost)? {
                Some(wire::DaemonMessage {
                    message: Some(Message::Checkpoint(chunk)),
                }) => bytes.extend_from_slice(&chunk.data),
                _ => {
                    return Err(format!(
                        "the daemon sent {} of the checkpoint's {expected} bytes",
                        bytes.len()
                    ))
                }
            }
        }
        if bytes.len() as u64 != expected {
            return Err(format!(
                "the daemon sent {} bytes of a {expected}-byte checkpoint",
                bytes.len()
            ));
        }
        Some(bytes)
    };
    Ok(Received { job, checkpoint })
}

/// Reads the daemon's messages until it closes the stream; exits the process if it closes it
/// before the job's end was sent.
async fn read_daemon(
    mut incoming: tonic::Streaming<wire::DaemonMessage>,
    replies: std_mpsc::Sender<Reply>,
    stop: Arc<AtomicU8>,
    finishing: Arc<AtomicBool>,
    closed: Arc<Notify>,
    remote: Option<Arc<AtomicBool>>,
) {
    use wire::daemon_message::Message;
    let why = loop {
        match incoming.message().await {
            Ok(Some(wire::DaemonMessage { message })) => match message {
                Some(Message::RunRecord(record)) => {
                    let _ = replies.send(Reply::RunRecord(record.stored));
                }
                Some(Message::EpochStored(stored)) => {
                    let _ = replies.send(Reply::EpochStored(stored.epoch));
                }
                Some(Message::Stop(asked)) => {
                    let request = stop_from_wire(asked);
                    tracing::info!(?request, "the daemon asks this job to stop");
                    request.request(&stop);
                }
                Some(Message::Job(_) | Message::Checkpoint(_)) | None => {
                    tracing::warn!(
                        "ignored a message from the daemon that is no part of a running job"
                    );
                }
            },
            Ok(None) => break "the daemon closed the session".to_string(),
            Err(status) => break format!("the session broke: {}", status.message()),
        }
    };
    if finishing.load(std::sync::atomic::Ordering::Acquire) {
        closed.notify_one();
        return;
    }
    if let Some(lost) = remote {
        // A remote worker outlives its daemon: its job stops (nothing more of it can be
        // stored), and the worker connects again for its next.
        tracing::warn!(reason = %why, "the session with the daemon is lost; the job stops");
        lost.store(true, std::sync::atomic::Ordering::Release);
        StopRequest::Interrupt.request(&stop);
        drop(replies);
        closed.notify_one();
        return;
    }
    // The daemon is gone: whatever the training thread is doing can no longer be stored.
    eprintln!("strata-worker: {why}; the daemon is gone, so this worker exits");
    // SAFETY: _exit ends the process at once, without running destructors another thread
    // (deep in libtorch) may be using.
    unsafe { libc::_exit(EXIT_DAEMON_GONE) };
}

/// Sends the batch losses gathered, every [`PROGRESS_GATHER`], in one message: the daemon wakes
/// once for many batches however fast they train (its watchers get every one, a few milliseconds
/// later). Progress is a live view: when the stream is full it waits for the next round.
async fn send_gathered(
    outgoing: mpsc::Sender<wire::WorkerMessage>,
    gathered: Arc<Mutex<Vec<strata_proto::BatchProgress>>>,
) {
    let mut every = tokio::time::interval(PROGRESS_GATHER);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        if outgoing.is_closed() {
            return;
        }
        let mut pending = gathered.lock().unwrap_or_else(|p| p.into_inner());
        if pending.is_empty() {
            continue;
        }
        let Ok(permit) = outgoing.try_reserve() else {
            continue;
        };
        let batches = std::mem::take(&mut *pending);
        drop(pending);
        permit.send(progress_message(batches));
    }
}

fn progress_message(batches: Vec<strata_proto::BatchProgress>) -> wire::WorkerMessage {
    message(wire::worker_message::Message::Progress(wire::Progress {
        batches,
    }))
}

/// Tells the daemon every [`HEARTBEAT_INTERVAL`] that this worker is alive.
async fn heartbeat(outgoing: mpsc::Sender<wire::WorkerMessage>) {
    let mut every = tokio::time::interval(HEARTBEAT_INTERVAL);
    loop {
        every.tick().await;
        let beat = message(wire::worker_message::Message::Heartbeat(wire::Heartbeat {}));
        if outgoing.send(beat).await.is_err() {
            return;
        }
    }
}

fn host_name() -> String {
    let mut name = [0u8; 256];
    // SAFETY: gethostname writes at most `len` bytes into the buffer.
    let ok = unsafe { libc::gethostname(name.as_mut_ptr().cast(), name.len()) } == 0;
    let end = name.iter().position(|&b| b == 0).unwrap_or(name.len());
    if ok {
        String::from_utf8_lossy(&name[..end]).into_owned()
    } else {
        String::new()
    }
}

impl Link {
    /// Sends a message, waiting while the stream is full. From the training thread only (it
    /// blocks).
    pub fn send(&self, message: wire::worker_message::Message) -> Result<(), String> {
        self.outgoing
            .blocking_send(self::message(message))
            .map_err(|_| "the session with the daemon is closed".to_string())
    }

    /// Sends a message unless the stream is full (live progress: a view, not a record).
    pub fn send_if_room(&self, message: wire::worker_message::Message) {
        let _ = self.outgoing.try_send(self::message(message));
    }

    /// Gathers a batch loss, to be sent with the others of the next few milliseconds (the most
    /// recent [`MAX_PROGRESS_BATCHES`] are kept when they come faster than they can be sent).
    pub fn progress(&self, batch: strata_proto::BatchProgress) {
        let mut gathered = self.gathered.lock().unwrap_or_else(|p| p.into_inner());
        if gathered.len() == MAX_PROGRESS_BATCHES {
            gathered.remove(0);
        }
        gathered.push(batch);
    }

    /// Sends the batch losses gathered so far now (before an epoch, so they arrive before it).
    /// From the training thread only (it blocks).
    pub fn send_progress(&self) -> Result<(), String> {
        let batches = std::mem::take(&mut *self.gathered.lock().unwrap_or_else(|p| p.into_inner()));
        if batches.is_empty() {
            return Ok(());
        }
        self.outgoing
            .blocking_send(progress_message(batches))
            .map_err(|_| "the session with the daemon is closed".to_string())
    }

    /// Waits for the daemon's next answer. From the training thread only (it blocks).
    pub fn reply(&self) -> Result<Reply, String> {
        self.replies
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .recv()
            .map_err(|_| "the session with the daemon is closed".to_string())
    }

    /// Whether a remote worker's session broke before the job's end.
    pub fn lost(&self) -> bool {
        self.lost.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Sends the job's end and waits (briefly) until the daemon has taken it and closed the
    /// session.
    pub fn finish(&self, finished: wire::Finished) {
        if self.lost() {
            return;
        }
        let _ = self.send_progress();
        self.finishing
            .store(true, std::sync::atomic::Ordering::Release);
        if self
            .send(wire::worker_message::Message::Finished(finished))
            .is_err()
        {
            return;
        }
        let closed = self.closed.clone();
        self.runtime.block_on(async {
            let _ = tokio::time::timeout(FAREWELL_TIMEOUT, closed.notified()).await;
        });
    }
}
