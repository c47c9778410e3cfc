//! The daemon's workers: every run, range test and TorchScript check runs in a worker process of
//! its own (`strata-worker`, the one program that links libtorch), so a crash, an out-of-memory or
//! a GPU's memory stays with its job, and the daemon (store, queue, watchers, dashboard) carries on.
//!
//! - [`wire`]: the worker protocol's messages to and from the domain, for both sides;
//! - [`service`]: the gRPC service workers connect to, on a Unix socket in a folder only this
//!   user can enter, behind a token of workers ([`Workers::start`]);
//! - [`process`]: a worker process started for one job, watched until it ends (memory sampled,
//!   killed over its limit), and its end in words;
//! - [`session`]: the daemon's side of one job's session: messages both ways, heartbeats, a stop
//!   request and the kill after its grace;
//! - [`memory`]: `--run-memory-limit`, through cgroup v2 where the daemon may make cgroups, else
//!   watched;
//! - [`devices`]: the devices workers can use, and which GPU each worker sees.
//!
//! A worker is started per job with a one-time ticket; it connects, says hello with the ticket,
//! and the task that started it gets the session ([`Workers::launch`]). The same protocol serves
//! workers on other machines ([`remote`], [`pull`]), which connect on their own to
//! `--worker-listen` and pull the queued runs they can serve ([`Workers::serve_remote`]).

pub mod devices;
pub mod memory;
pub mod process;
pub mod pull;
pub mod remote;
pub mod service;
pub mod session;
pub mod wire;

use std::{
    ffi::OsString,
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use strata_proto::worker::v1::{self as proto_wire, worker_server::WorkerServer};
use tokio::{net::UnixListener, sync::oneshot};
use tokio_util::sync::CancellationToken;

use crate::{
    error::{Result, StrataError},
    transport::auth::TokenCheck,
};
pub use devices::{Device, Devices};
use memory::MemoryPolicy;
use process::{Spawn, WorkerProcess};
use service::{Waiting, WorkerService};
pub use session::{Event, Session};

/// The worker program's name; stratad looks for it beside itself unless `--worker` names it.
pub const WORKER_PROGRAM: &str = "strata-worker";
/// How long a started worker may take to connect (it loads libtorch first).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(120);
/// How long a worker may send nothing at all before it is taken for hung and killed (it sends a
/// heartbeat every 2 s whatever its training does).
const HEARTBEAT_TIMEOUT: Duration = Duration::from_secs(30);
/// Connections the remote workers' listener holds at once: one per worker, and room for as many
/// again reconnecting or refused.
const MAX_WORKER_CONNECTIONS: usize = 2 * remote::MAX_REMOTE_WORKERS;
/// How long a spare worker waits for a job before it is let go.
const SPARE_IDLE: Duration = Duration::from_secs(300);
/// The environment variable that gives a worker its token (never its command line, which any
/// user of the host can read).
pub const TOKEN_ENV: &str = "STRATA_WORKER_TOKEN";
/// A Unix socket's path must fit in `sun_path` (108 bytes on Linux, with its terminating NUL).
const MAX_SOCKET_PATH_BYTES: usize = 100;

/// How the daemon runs its workers.
#[derive(Clone, Debug)]
pub struct WorkersConfig {
    /// The worker program.
    pub program: PathBuf,
    /// libtorch threads each worker uses.
    pub threads_per_run: usize,
    /// The folders a worker may read client-named files from (the daemon's own).
    pub data_roots: Vec<PathBuf>,
    pub allow_torchscript: bool,
    /// `--run-memory-limit`, in bytes.
    pub memory_limit: Option<u64>,
    /// How long a worker asked to stop has before it is killed.
    pub stop_grace: Duration,
    /// Workers log as JSON (as the daemon does).
    pub log_json: bool,
    /// Keep a CPU worker started ahead of the next CPU job.
    pub spare_worker: bool,
}

/// The worker program beside the running `stratad`, or where `named` says.
pub fn locate_program(named: Option<&Path>) -> Result<PathBuf> {
    let path = match named {
        Some(path) => path.to_path_buf(),
        None => {
            let exe = std::env::current_exe().map_err(|e| {
                StrataError::Internal(format!("cannot find stratad's own path: {e}"))
            })?;
            exe.with_file_name(WORKER_PROGRAM)
        }
    };
    let executable = std::fs::metadata(&path).map(|m| {
        use std::os::unix::fs::PermissionsExt;
        m.is_file() && m.permissions().mode() & 0o111 != 0
    });
    match executable {
        Ok(true) => Ok(path),
        Ok(false) => Err(StrataError::invalid(
            "worker",
            format!("{} is not an executable file", path.display()),
        )),
        Err(e) => Err(StrataError::invalid(
            "worker",
            format!(
                "the worker program {} cannot be found ({e}): install strata-worker beside stratad (it is built with it), or name it with --worker PATH",
                path.display()
            ),
        )),
    }
}

/// The daemon's workers: where they connect, what they may use, and the jobs waiting for them.
pub struct Workers {
    config: WorkersConfig,
    devices: Devices,
    memory: MemoryPolicy,
    /// The daemon's own `CUDA_VISIBLE_DEVICES`, to name a worker's GPU as the host does.
    cuda_visible: Option<String>,
    socket: PathBuf,
    /// The socket's private folder, removed when the daemon stops.
    socket_dir: PathBuf,
    token: String,
    waiting: Arc<Waiting>,
    stop_serving: CancellationToken,
    /// A CPU worker started ahead of the job that will take it.
    spare: std::sync::Mutex<Spare>,
    /// Told when the spare is ready, or could not be started.
    spare_changed: tokio::sync::Notify,
    /// Remote workers, once [`Workers::serve_remote`] listens for them.
    hub: std::sync::OnceLock<Arc<Hub>>,
}

/// Where and how the daemon takes remote workers.
pub struct RemoteListen {
    pub addr: String,
    /// The workers' token (`--worker-token-file`).
    pub token: String,
    /// The users' token, refused from a worker with a word of why.
    pub users_token: Option<String>,
    pub tls: Option<tonic::transport::ServerTlsConfig>,
    /// Plain text beyond loopback (a trusted network).
    pub insecure_plaintext: bool,
    /// Silence after which a remote worker is taken for lost.
    pub heartbeat_timeout: Duration,
    /// Automatic re-queues of a run whose worker was lost.
    pub retries: u32,
}

/// The remote workers: who is connected, the idle ones matched to queued runs, and the rules for
/// losing one.
pub struct Hub {
    pub registry: remote::Registry,
    pub dispatch: Arc<pull::Dispatch>,
    /// `--worker-retries`.
    pub retries: u32,
    timeouts: pull::Timeouts,
}

/// The workers' token, with the users' token refused by name (a worker given the wrong file).
#[derive(Clone)]
struct WorkerTokenCheck {
    workers: TokenCheck,
    users: Option<String>,
}

impl tonic::service::Interceptor for WorkerTokenCheck {
    fn call(
        &mut self,
        request: tonic::Request<()>,
    ) -> std::result::Result<tonic::Request<()>, tonic::Status> {
        let users = self.users.as_deref().filter(|users| {
            request
                .metadata()
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
                .is_some_and(|presented| presented.trim() == *users)
        });
        if users.is_some() {
            return Err(tonic::Status::permission_denied(
                "this is the users' token: a worker presents the workers' token (stratad's --worker-token-file)",
            ));
        }
        self.workers.call(request)
    }
}

/// The spare worker's state.
enum Spare {
    None,
    Starting,
    /// Connected and waiting for a job.
    Ready(Box<(WorkerProcess, session::Connection)>),
}

impl Workers {
    /// Lists the devices, applies the memory limit's mechanism, and starts serving the worker
    /// protocol on a Unix socket of its own.
    pub async fn start(config: WorkersConfig) -> Result<Arc<Workers>> {
        let devices = Devices::probe(&config.program).await?;
        let memory = match config.memory_limit {
            None => MemoryPolicy::unlimited(),
            Some(limit) => {
                let (policy, fallback) = MemoryPolicy::limited(limit);
                if let Some(why) = fallback {
                    tracing::info!(reason = %why, "cgroup v2 is not available for the run memory limit");
                }
                tracing::info!(
                    limit = %memory::shown_bytes(limit),
                    how = %policy.enforcement.describe(),
                    "run memory limit"
                );
                policy
            }
        };
        let (socket, socket_dir) = socket_path()?;
        let listener = bind_socket(&socket)?;
        let token = random_token()?;
        let waiting = Arc::new(Waiting::default());
        let stop_serving = CancellationToken::new();
        let service = WorkerServer::new(WorkerService {
            waiting: waiting.clone(),
            remote: None,
        })
        .max_decoding_message_size(wire::MAX_MESSAGE_BYTES)
        .max_encoding_message_size(wire::MAX_MESSAGE_BYTES);
        let service = tonic::service::interceptor::InterceptedService::new(
            service,
            TokenCheck::new(Some(&token)),
        );
        let incoming = tokio_stream::wrappers::UnixListenerStream::new(listener);
        let stop = stop_serving.clone();
        tokio::spawn(async move {
            let served = tonic::transport::Server::builder()
                // Checkpoints arrive in 1 MiB chunks: windows of several chunks, so a chunk is not
                // held up waiting for the daemon to say it read the last one.
                .initial_stream_window_size(wire::FLOW_WINDOW_BYTES)
                .initial_connection_window_size(wire::FLOW_WINDOW_BYTES)
                .add_service(service)
                .serve_with_incoming_shutdown(incoming, stop.cancelled_owned())
                .await;
            if let Err(err) = served {
                tracing::error!(error = %err, "the workers' socket stopped serving");
            }
        });
        Ok(Arc::new(Workers {
            cuda_visible: std::env::var("CUDA_VISIBLE_DEVICES").ok(),
            config,
            devices,
            memory,
            socket,
            socket_dir,
            token,
            waiting,
            stop_serving,
            spare: std::sync::Mutex::new(Spare::None),
            spare_changed: tokio::sync::Notify::new(),
            hub: std::sync::OnceLock::new(),
        }))
    }

    /// The remote workers' hub, when the daemon takes remote workers (`--worker-listen`).
    pub fn hub(&self) -> Option<&Arc<Hub>> {
        self.hub.get()
    }

    /// Listens for remote workers on `listen.addr` (TLS when given; refused beyond loopback
    /// without it), behind the workers' token. Returns the bound address.
    pub async fn serve_remote(&self, listen: RemoteListen) -> Result<std::net::SocketAddr> {
        let RemoteListen {
            addr,
            token,
            users_token,
            tls,
            insecure_plaintext,
            heartbeat_timeout,
            retries,
        } = listen;
        if users_token.as_deref() == Some(token.as_str()) {
            return Err(StrataError::invalid(
                "worker_token_file",
                "the workers' token is the users' token (--token-file): give workers a token of their own, so a worker's host cannot act as a user",
            ));
        }
        let listener = tokio::net::TcpListener::bind(&addr).await.map_err(|e| {
            StrataError::invalid("worker_listen", format!("cannot listen on {addr}: {e}"))
        })?;
        let bound = listener
            .local_addr()
            .map_err(|e| StrataError::Internal(e.to_string()))?;
        if !bound.ip().is_loopback() && tls.is_none() && insecure_plaintext {
            tracing::warn!(%bound, "taking remote workers without TLS beyond loopback (--worker-insecure-plaintext): their token and the runs' checkpoints travel in plain text");
        } else if !bound.ip().is_loopback() && tls.is_none() {
            return Err(StrataError::invalid(
                "worker_listen",
                format!("{bound} is reachable beyond this machine: remote workers connect over TLS there (their token and the runs' checkpoints travel on it); give stratad --worker-tls-cert and --worker-tls-key (or --tls-cert and --tls-key), listen on 127.0.0.1, or say --worker-insecure-plaintext on a network you trust"),
            ));
        }
        let hub = Arc::new(Hub {
            registry: remote::Registry::new(heartbeat_timeout),
            dispatch: Arc::new(pull::Dispatch::default()),
            retries,
            timeouts: pull::Timeouts {
                heartbeat: heartbeat_timeout,
                stop_grace: self.config.stop_grace,
            },
        });
        if self.hub.set(hub.clone()).is_err() {
            return Err(StrataError::Internal(
                "remote workers are served already".into(),
            ));
        }
        let service = WorkerServer::new(WorkerService {
            waiting: Arc::new(Waiting::default()),
            remote: Some(hub),
        })
        .max_decoding_message_size(wire::MAX_MESSAGE_BYTES)
        .max_encoding_message_size(wire::MAX_MESSAGE_BYTES);
        let service = tonic::service::interceptor::InterceptedService::new(
            service,
            WorkerTokenCheck {
                workers: TokenCheck::new(Some(&token)),
                users: users_token,
            },
        );
        // Connections are bounded as the users' are: a full listener closes an idle one (no
        // session open: a scanner, a client that never sent a request) to admit another; a
        // worker's session is never closed for room.
        let mut builder = tonic::transport::Server::builder()
            .initial_stream_window_size(wire::FLOW_WINDOW_BYTES)
            .initial_connection_window_size(wire::FLOW_WINDOW_BYTES)
            .http2_keepalive_interval(Some(Duration::from_secs(10)))
            .http2_keepalive_timeout(Some(Duration::from_secs(20)))
            .layer(crate::transport::connections::InFlightLayer);
        if let Some(tls) = tls {
            builder = builder.tls_config(tls).map_err(|e| {
                StrataError::invalid("tls_cert", format!("unusable certificate or key: {e}"))
            })?;
        }
        let incoming = crate::transport::connections::bounded_incoming(
            listener,
            crate::transport::connections::ConnectionSlots::new(MAX_WORKER_CONNECTIONS),
            Duration::from_secs(10),
        );
        let stop = self.stop_serving.clone();
        let router = builder.add_service(service);
        tokio::spawn(async move {
            if let Err(err) = router
                .serve_with_incoming_shutdown(incoming, stop.cancelled_owned())
                .await
            {
                tracing::error!(error = %err, "the remote workers' listener stopped serving");
            }
        });
        Ok(bound)
    }

    /// The devices workers can use.
    pub fn devices(&self) -> &Devices {
        &self.devices
    }

    /// Where workers connect.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// Stops serving workers, lets the spare go and removes the socket (once every run has
    /// stopped).
    pub fn close(&self) {
        self.stop_serving.cancel();
        self.retire_spare(0);
        let _ = std::fs::remove_file(&self.socket);
        let _ = std::fs::remove_dir(&self.socket_dir);
    }

    /// Starts a worker for `job` on `device` (or hands it to the spare, for a CPU job) and waits
    /// for it to connect; then sends it the job and the checkpoint the job starts from. `name`
    /// says what the worker is for in logs. The error says why no worker could take the job.
    pub async fn launch(
        self: &Arc<Self>,
        job: proto_wire::Job,
        device: Device,
        checkpoint: Option<&Path>,
        name: &str,
    ) -> std::result::Result<Session, String> {
        let checkpoint_bytes = match checkpoint {
            Some(path) => std::fs::metadata(path)
                .map_err(|e| format!("cannot read the checkpoint {}: {e}", path.display()))?
                .len(),
            None => 0,
        };
        let job = proto_wire::Job {
            device: device.as_seen_by_worker().to_string(),
            checkpoint_bytes,
            ..job
        };
        let spares = device == Device::Cpu && self.config.spare_worker;
        let spare = if spares {
            self.take_spare().await
        } else {
            None
        };
        if let Some((process, connection)) = spare {
            tracing::info!(
                worker = process.pid,
                job = name,
                "the spare worker takes the job"
            );
            let session = self.session(process, connection, spares);
            match hand_over(&session, job.clone(), checkpoint, checkpoint_bytes).await {
                Ok(()) => return Ok(session),
                // It died while it waited: a worker of its own for the job, then.
                Err(why) => tracing::warn!(reason = %why, "the spare worker is gone"),
            }
        }
        let (process, connection) = self.start_worker(device, name).await?;
        tracing::info!(worker = process.pid, job = name, device = %device.label(), host = %connection.hello.host, "worker connected");
        let session = self.session(process, connection, spares);
        hand_over(&session, job, checkpoint, checkpoint_bytes).await?;
        Ok(session)
    }

    /// A job's session; with `refill`, a spare is started once the job's worker has ended: in
    /// the quiet after a job, not while one trains (on a machine whose cores the job uses, a
    /// worker loading libtorch beside it would slow it).
    fn session(
        self: &Arc<Self>,
        process: WorkerProcess,
        connection: session::Connection,
        refill: bool,
    ) -> Session {
        let on_end: Option<Box<dyn FnOnce() + Send + Sync>> = refill.then(|| {
            let this = self.clone();
            Box::new(move || this.refill_spare()) as Box<dyn FnOnce() + Send + Sync>
        });
        Session::new(
            process,
            connection,
            HEARTBEAT_TIMEOUT,
            self.config.stop_grace,
            on_end,
        )
    }

    /// A new worker on `device`, connected (it waits for its job).
    async fn start_worker(
        &self,
        device: Device,
        name: &str,
    ) -> std::result::Result<(WorkerProcess, session::Connection), String> {
        let ticket = random_hex(16).map_err(|e| format!("cannot make a worker's ticket: {e}"))?;
        let (connected_tx, connected) = oneshot::channel();
        self.waiting.add(ticket.clone(), connected_tx);
        let started = self
            .spawn_and_connect(&ticket, device, name, connected)
            .await;
        self.waiting.remove(&ticket);
        started
    }

    /// The spare worker, if one is ready and alive — or starting: it is further along than a
    /// worker started now would be.
    async fn take_spare(&self) -> Option<(WorkerProcess, session::Connection)> {
        loop {
            let changed = self.spare_changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            {
                let mut slot = self.spare.lock().unwrap_or_else(|p| p.into_inner());
                match std::mem::replace(&mut *slot, Spare::None) {
                    Spare::Ready(ready) => {
                        let (process, connection) = *ready;
                        return (!process.has_ended()).then_some((process, connection));
                    }
                    Spare::None => return None,
                    Spare::Starting => *slot = Spare::Starting,
                }
            }
            changed.await;
        }
    }

    /// Starts a spare CPU worker in the background, unless one is ready or starting: the next
    /// CPU job (a run, a range test, a TorchScript module's check) then needs no worker start
    /// (libtorch's load, the connection). Called when a CPU job's worker has ended. A spare that
    /// no job takes within [`SPARE_IDLE`] is let go, so an idle daemon holds no worker.
    fn refill_spare(self: &Arc<Self>) {
        {
            let mut slot = self.spare.lock().unwrap_or_else(|p| p.into_inner());
            if !matches!(*slot, Spare::None) || self.stop_serving.is_cancelled() {
                return;
            }
            *slot = Spare::Starting;
        }
        let this = self.clone();
        tokio::spawn(async move {
            let started = this.start_worker(Device::Cpu, "spare").await;
            let mut slot = this.spare.lock().unwrap_or_else(|p| p.into_inner());
            // Whoever waits for it takes it, or starts a worker of its own.
            this.spare_changed.notify_waiters();
            match started {
                Ok((process, connection)) if !this.stop_serving.is_cancelled() => {
                    let pid = process.pid;
                    tracing::debug!(worker = pid, "a spare worker is ready");
                    *slot = Spare::Ready(Box::new((process, connection)));
                    drop(slot);
                    let this = this.clone();
                    tokio::spawn(async move {
                        tokio::time::sleep(SPARE_IDLE).await;
                        this.retire_spare(pid);
                    });
                }
                Ok((process, _)) => {
                    process.kill(process::KillCause::Abandoned);
                    *slot = Spare::None;
                }
                Err(why) => {
                    tracing::warn!(reason = %why, "could not start a spare worker");
                    *slot = Spare::None;
                }
            }
        });
    }

    /// Lets the spare go if it is still `pid`, unused (or any spare, with `None`).
    fn retire_spare(&self, pid: u32) {
        let mut slot = self.spare.lock().unwrap_or_else(|p| p.into_inner());
        if let Spare::Ready(ready) = &*slot {
            if ready.0.pid == pid || pid == 0 {
                let Spare::Ready(ready) = std::mem::replace(&mut *slot, Spare::None) else {
                    return;
                };
                tracing::debug!(
                    worker = ready.0.pid,
                    "the spare worker was not needed; let go"
                );
                ready.0.kill(process::KillCause::Abandoned);
            }
        }
    }

    async fn spawn_and_connect(
        &self,
        ticket: &str,
        device: Device,
        name: &str,
        connected: oneshot::Receiver<session::Connection>,
    ) -> std::result::Result<(WorkerProcess, session::Connection), String> {
        let config = &self.config;
        let mut args: Vec<OsString> = vec![
            "--connect".into(),
            format!("unix:{}", self.socket.display()).into(),
            "--job".into(),
            ticket.into(),
            "--threads".into(),
            config.threads_per_run.to_string().into(),
            "--log-format".into(),
            if config.log_json { "json" } else { "text" }.into(),
        ];
        for root in &config.data_roots {
            args.push("--data-root".into());
            args.push(root.clone().into());
        }
        if config.allow_torchscript {
            args.push("--allow-torchscript".into());
        }
        let envs = vec![
            (TOKEN_ENV, self.token.clone()),
            (
                "CUDA_VISIBLE_DEVICES",
                device.cuda_visible_devices(self.cuda_visible.as_deref()),
            ),
        ];
        let mut process = WorkerProcess::spawn(Spawn {
            program: &config.program,
            args,
            envs,
            memory: &self.memory,
            name: format!("strata-worker-{ticket}"),
        })
        .map_err(|e| format!("cannot start the worker {}: {e}", config.program.display()))?;
        tracing::debug!(worker = process.pid, job = name, "worker started");
        tokio::select! {
            connection = connected => match connection {
                Ok(connection) => Ok((process, connection)),
                Err(_) => Err("the worker's connection was lost".to_string()),
            },
            exit = process.ended() => Err(exit.describe("before it connected")),
            () = tokio::time::sleep(CONNECT_TIMEOUT) => {
                process.kill(process::KillCause::Abandoned);
                Err(format!("the worker did not connect within {} s", CONNECT_TIMEOUT.as_secs()))
            }
        }
    }
}

/// Sends a connected worker its job, and the checkpoint it starts from.
pub async fn hand_over(
    session: &Session,
    job: proto_wire::Job,
    checkpoint: Option<&Path>,
    checkpoint_bytes: u64,
) -> std::result::Result<(), String> {
    session
        .send(proto_wire::daemon_message::Message::Job(job))
        .await
        .map_err(|_| "the worker went away before it had its job".to_string())?;
    if let Some(path) = checkpoint {
        send_checkpoint(session, path, checkpoint_bytes).await?;
    }
    Ok(())
}

/// Sends a remote worker its job (with `device` set already) and the checkpoint it starts from.
pub async fn hand_over_remote(
    session: &Session,
    job: proto_wire::Job,
    checkpoint: Option<&Path>,
) -> std::result::Result<(), String> {
    let checkpoint_bytes = match checkpoint {
        Some(path) => std::fs::metadata(path)
            .map_err(|e| format!("cannot read the checkpoint {}: {e}", path.display()))?
            .len(),
        None => 0,
    };
    let job = proto_wire::Job {
        checkpoint_bytes,
        ..job
    };
    hand_over(session, job, checkpoint, checkpoint_bytes).await
}

/// Streams a checkpoint file to a worker in chunks.
async fn send_checkpoint(
    session: &Session,
    path: &Path,
    length: u64,
) -> std::result::Result<(), String> {
    use std::os::unix::fs::FileExt;
    let unreadable =
        |e: std::io::Error| format!("cannot read the checkpoint {}: {e}", path.display());
    let file = Arc::new(std::fs::File::open(path).map_err(unreadable)?);
    let mut sent = 0u64;
    while sent < length {
        let size = wire::CHECKPOINT_CHUNK_BYTES.min((length - sent) as usize);
        let (file, at) = (file.clone(), sent);
        let chunk = tokio::task::spawn_blocking(move || {
            let mut chunk = vec![0u8; size];
            file.read_exact_at(&mut chunk, at).map(|()| chunk)
        })
        .await
        .map_err(|e| format!("reading the checkpoint failed: {e}"))?
        .map_err(unreadable)?;
        sent += chunk.len() as u64;
        session
            .send(proto_wire::daemon_message::Message::Checkpoint(
                proto_wire::CheckpointChunk { data: chunk },
            ))
            .await
            .map_err(|_| "the worker went away while it was sent its checkpoint".to_string())?;
    }
    Ok(())
}

/// The workers' socket, in a folder of this daemon's own that only its user can enter, in the
/// temporary directory (never in the data dir, which people copy and back up). Folders left by
/// daemons that were killed are removed on the way.
fn socket_path() -> Result<(PathBuf, PathBuf)> {
    use std::os::unix::fs::DirBuilderExt;
    let mut base = std::env::temp_dir();
    if base.as_os_str().len() > MAX_SOCKET_PATH_BYTES - 40 {
        base = PathBuf::from("/tmp");
    }
    remove_stale_socket_dirs(&base);
    let suffix = random_hex(4)
        .map_err(|e| StrataError::Internal(format!("cannot name the workers' socket: {e}")))?;
    let dir = base.join(format!(
        "{SOCKET_DIR_PREFIX}{}-{suffix}",
        std::process::id()
    ));
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&dir)
        .map_err(|e| {
            StrataError::Internal(format!(
                "cannot create {} for the workers' socket: {e}",
                dir.display()
            ))
        })?;
    Ok((dir.join("worker.sock"), dir))
}

/// What the folders of the workers' sockets are called: `stratad-PID-RANDOM`.
const SOCKET_DIR_PREFIX: &str = "stratad-";

/// Removes the socket folders of this user's daemons that are gone (killed before they could
/// remove their own).
fn remove_stale_socket_dirs(base: &Path) {
    use std::os::unix::fs::MetadataExt;
    let Ok(entries) = std::fs::read_dir(base) else {
        return;
    };
    // SAFETY: geteuid has no preconditions.
    let me = unsafe { libc::geteuid() };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix(SOCKET_DIR_PREFIX)
            .and_then(|rest| rest.split_once('-'))
            .and_then(|(pid, _)| pid.parse::<i32>().ok())
        else {
            continue;
        };
        let ours = entry.metadata().is_ok_and(|m| m.is_dir() && m.uid() == me);
        // SAFETY: kill with signal 0 only asks whether the process exists.
        let gone = unsafe { libc::kill(pid, 0) } != 0
            && std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH);
        if ours && gone {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// Binds the workers' socket, readable and writable by this user only.
fn bind_socket(path: &Path) -> Result<UnixListener> {
    use std::os::unix::fs::PermissionsExt;
    let cannot = |e: std::io::Error| {
        StrataError::Internal(format!(
            "cannot listen for workers on {}: {e}",
            path.display()
        ))
    };
    let listener = UnixListener::bind(path).map_err(cannot)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(cannot)?;
    Ok(listener)
}

/// `bytes` random bytes as hex, from the kernel.
fn random_hex(bytes: usize) -> std::io::Result<String> {
    use std::io::Read;
    let mut buffer = vec![0u8; bytes];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut buffer)?;
    Ok(buffer.iter().map(|b| format!("{b:02x}")).collect())
}

/// The workers' token: new at every start, known only to the daemon and the workers it starts.
fn random_token() -> Result<String> {
    random_hex(32)
        .map_err(|e| StrataError::Internal(format!("cannot make the workers' token: {e}")))
}
