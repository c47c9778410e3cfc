//! Starting and stopping the daemon: store recovery and its check against the run folders, the
//! workers' socket, the gRPC server with health and reflection, and a clean shutdown on
//! SIGINT/SIGTERM.

use std::{
    future::Future,
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::Arc,
};

use strata_proto::strata_server::StrataServer;
use tokio::net::TcpListener;
use tonic::{
    service::interceptor::InterceptedService,
    transport::{server::Router, Identity, Server, ServerTlsConfig},
};
use tonic_health::server::HealthReporter;

use crate::{
    dashboard::{self, DashboardListen},
    error::StrataError,
    integrity,
    runs::{Limits, Runs},
    spec::paths::DataRoots,
    store::Store,
    transport::{
        auth::TokenCheck,
        connections::{bounded_incoming, connection_limit, ConnectionSlots, InFlightLayer},
        malformed::MalformedIsInvalid,
        service::StrataService,
    },
    workers::{self, Workers, WorkersConfig},
};

/// The gRPC services behind the layer that counts each connection's requests in flight.
type GrpcRouter = Router<tower_layer::Stack<InFlightLayer, tower_layer::Identity>>;

/// libtorch threads per worker when `--threads` does not say: the cores shared among the runs that
/// train at once, so that every worker's threads together fit on the cores.
pub fn default_threads_per_run(max_concurrent_runs: usize) -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    (cores / max_concurrent_runs.max(1)).max(1)
}

/// Whether the process runs with root's rights (`/proc/self` belongs to the effective user).
fn running_as_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// How long shutdown waits for clients to close their connections once runs are stopped.
const CONNECTION_DRAIN: std::time::Duration = std::time::Duration::from_secs(2);
/// A new connection must send its first request bytes within this.
const CONNECTION_START_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
/// HTTP/2 pings on open connections, and how long a peer may take to answer one.
const KEEPALIVE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(30);
const KEEPALIVE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(20);
/// Largest request the daemon decodes (the largest honest one, 256 rules of each kind and every
/// text field at its limit, is well under this).
const MAX_REQUEST_BYTES: usize = 1 << 20;
/// Requests in flight on one connection: with the request limit, what one connection can make
/// the daemon buffer (64 MiB). The cap on connections bounds the rest.
const MAX_STREAMS_PER_CONNECTION: u32 = 64;
/// A connection is asked to close (its streams finish first, so a long `watch` is not cut) after
/// this long: one that holds a slot without ever sending a request gives it back.
const MAX_CONNECTION_AGE: std::time::Duration = std::time::Duration::from_secs(600);

#[derive(Clone, Debug)]
pub struct DaemonConfig {
    pub listen: String,
    pub data_dir: PathBuf,
    pub max_concurrent_runs: usize,
    /// libtorch threads per training run, i.e. per worker (0: the cores shared among the slots).
    pub threads: usize,
    /// The worker program (`None`: `strata-worker` beside stratad).
    pub worker: Option<PathBuf>,
    /// The most memory each worker may use, in bytes.
    pub run_memory_limit: Option<u64>,
    /// How long a worker asked to stop (a cancel, a shutdown) has before it is killed.
    pub stop_grace: std::time::Duration,
    /// Logs (the workers' too) as JSON.
    pub log_json: bool,
    /// Keep a CPU worker started ahead of the next CPU job.
    pub spare_worker: bool,
    /// Checkpoints kept per run (the newest).
    pub keep_checkpoints: usize,
    /// When set, every call but health needs `authorization: Bearer TOKEN`.
    pub token: Option<String>,
    /// PEM certificate chain and private key: serve TLS instead of plaintext.
    pub tls: Option<TlsFiles>,
    /// Directories client-named files (datasets, TorchScript modules) may be read from.
    pub data_roots: Vec<PathBuf>,
    /// Serve beyond loopback without a token (refused otherwise).
    pub insecure_no_auth: bool,
    /// Serve the dashboard as plain HTTP beyond loopback (a TLS proxy in front of it).
    pub dashboard_plain_http: bool,
    /// Let clients name TorchScript modules (code that runs with the daemon's rights).
    pub allow_torchscript: bool,
    /// Connections open at once (capped at half the open-file limit).
    pub max_connections: usize,
    /// Queued runs and live external runs held at most, and how long an external run may log
    /// nothing before it is marked interrupted.
    pub limits: Limits,
    /// Whether and where to serve the dashboard (same token, same loopback rule as gRPC).
    pub dashboard: DashboardListen,
    /// Whether and where remote workers connect (`--worker-listen`).
    pub remote_workers: Option<RemoteWorkers>,
}

/// Remote workers: where they connect, their token, and the rules for losing one.
#[derive(Clone, Debug)]
pub struct RemoteWorkers {
    pub listen: String,
    /// The workers' token (`--worker-token-file`), never the users'.
    pub token: String,
    /// The workers' listener's certificate and key (`None`: the daemon's own, if any).
    pub tls: Option<TlsFiles>,
    /// Plain text beyond loopback, on a trusted network (`--worker-insecure-plaintext`).
    pub insecure_plaintext: bool,
    pub heartbeat_timeout: std::time::Duration,
    pub retries: u32,
}

/// Where the daemon listens, once bound (ports resolved).
#[derive(Clone, Copy, Debug)]
pub struct Listening {
    pub grpc: SocketAddr,
    /// `None` when the dashboard is off (or its default address was taken).
    pub dashboard: Option<SocketAddr>,
    /// Where remote workers connect (`None`: the daemon takes none).
    pub workers: Option<SocketAddr>,
    /// The dashboard serves HTTPS (with gRPC's certificate).
    pub dashboard_https: bool,
}

#[derive(Clone, Debug)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// A certificate expiring within this is worth a warning at start-up.
const CERTIFICATE_WARN_BEFORE_SECS: i64 = 14 * 24 * 3600;

/// What about the serving certificate (the first in the PEM) will make clients refuse it, or soon.
fn certificate_warnings(pem: &[u8], now_secs: i64) -> Vec<String> {
    let Ok((_, pem)) = x509_parser::pem::parse_x509_pem(pem) else {
        return vec!["the certificate file holds no PEM certificate that could be read".into()];
    };
    let Ok(cert) = pem.parse_x509() else {
        return vec!["the certificate in the file could not be parsed".into()];
    };
    let validity = cert.validity();
    let (not_before, not_after) = (
        validity.not_before.timestamp(),
        validity.not_after.timestamp(),
    );
    let mut warnings = Vec::new();
    if not_after < now_secs {
        warnings.push(format!(
            "the certificate expired on {}: clients will refuse it; give stratad a new one",
            validity.not_after
        ));
    } else if not_after - now_secs < CERTIFICATE_WARN_BEFORE_SECS {
        warnings.push(format!("the certificate expires on {}", validity.not_after));
    }
    if not_before > now_secs {
        warnings.push(format!(
            "the certificate is not valid before {}: clients will refuse it until then",
            validity.not_before
        ));
    }
    if cert.is_ca() {
        warnings.push("the certificate is a CA certificate: rustls clients (the strata CLI among them) refuse one presented by a server; make one with basicConstraints=critical,CA:FALSE (see docs/src/operations/security.md, TLS)".into());
    }
    warnings
}

/// The certificate chain and key as read once at start-up: gRPC and the dashboard serve the
/// same ones.
#[derive(Clone)]
pub struct TlsPem {
    pub cert: Vec<u8>,
    pub key: Vec<u8>,
}

impl TlsPem {
    fn read(files: &TlsFiles) -> Result<TlsPem, StrataError> {
        let read = |field: &str, path: &PathBuf| {
            std::fs::read(path).map_err(|e| {
                StrataError::invalid(field, format!("cannot read {}: {e}", path.display()))
            })
        };
        let cert = read("tls_cert", &files.cert)?;
        let now_secs = crate::store::now_ms() / 1000;
        for warning in certificate_warnings(&cert, now_secs) {
            tracing::warn!(cert = %files.cert.display(), "{warning}");
        }
        Ok(TlsPem {
            cert,
            key: read("tls_key", &files.key)?,
        })
    }
}

fn tls_config(pem: &TlsPem) -> ServerTlsConfig {
    ServerTlsConfig::new().identity(Identity::from_pem(&pem.cert, &pem.key))
}

/// Opens the store, binds the listeners and serves until `shutdown` resolves. Calls
/// `on_listening` with the bound addresses once the ports are open (asked as port 0, they are
/// the ports picked).
pub async fn run(
    config: DaemonConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
    on_listening: impl FnOnce(Listening),
) -> Result<(), StrataError> {
    let program = workers::locate_program(config.worker.as_deref())?;
    let store = open_store(&config.data_dir)?;
    let data_roots = data_roots(&config)?;
    let threads_per_run = match config.threads {
        0 => default_threads_per_run(config.max_concurrent_runs),
        threads => threads,
    };
    let workers = Workers::start(WorkersConfig {
        program,
        threads_per_run,
        data_roots: data_roots.roots().to_vec(),
        allow_torchscript: config.allow_torchscript,
        memory_limit: config.run_memory_limit,
        stop_grace: config.stop_grace,
        log_json: config.log_json,
        spare_worker: config.spare_worker,
    })
    .await?;
    if config.max_concurrent_runs == 0 && config.remote_workers.is_none() {
        return Err(StrataError::invalid(
            "max_concurrent_runs",
            "0 means this daemon trains nothing itself, which needs remote workers to train its runs: add --worker-listen (and --worker-token-file), or give 1 or more",
        ));
    }
    let workers_addr = match &config.remote_workers {
        None => None,
        Some(remote) => Some(
            workers
                .serve_remote(workers::RemoteListen {
                    addr: remote.listen.clone(),
                    token: remote.token.clone(),
                    users_token: config.token.clone(),
                    tls: remote
                        .tls
                        .as_ref()
                        .or(config.tls.as_ref())
                        .map(|files| TlsPem::read(files).map(|pem| tls_config(&pem)))
                        .transpose()?,
                    insecure_plaintext: remote.insecure_plaintext,
                    heartbeat_timeout: remote.heartbeat_timeout,
                    retries: remote.retries,
                })
                .await?,
        ),
    };
    let runs = Runs::new(
        store,
        config.data_dir.clone(),
        config.max_concurrent_runs,
        workers.clone(),
        config.keep_checkpoints,
        data_roots.clone(),
        config.limits,
    );
    let tls = config.tls.as_ref().map(TlsPem::read).transpose()?;
    let (listener, addr) = bind(&config).await?;
    let dashboard_tls = tls.as_ref().map(dashboard::tls_acceptor).transpose()?;
    let dashboard_listener = dashboard::bind(
        &config.dashboard,
        dashboard::Exposure {
            token: config.token.is_some(),
            tls: dashboard_tls.is_some(),
            insecure_no_auth: config.insecure_no_auth,
            plain_http: config.dashboard_plain_http,
        },
    )
    .await?;
    let dashboard_addr = dashboard_listener
        .as_ref()
        .map(dashboard::local_addr)
        .transpose()?;
    let max_connections = connection_limit(config.max_connections);
    let (router, health_reporter) = router(&config, tls.as_ref(), &runs).await?;
    tracing::info!(
        %addr,
        data_dir = %config.data_dir.display(),
        data_roots = ?data_roots.roots(),
        max_connections,
        devices = ?workers.devices().labels(),
        workers = %workers.socket().display(),
        threads_per_run,
        tls = config.tls.is_some(),
        auth = config.token.is_some(),
        dashboard = ?dashboard_addr,
        remote_workers = ?workers_addr,
        "stratad listening"
    );
    on_listening(Listening {
        grpc: addr,
        dashboard: dashboard_addr,
        workers: workers_addr,
        dashboard_https: dashboard_tls.is_some(),
    });
    let stop_dashboard = tokio_util::sync::CancellationToken::new();
    if let Some(listener) = dashboard_listener {
        tokio::spawn(dashboard::serve(
            listener,
            runs.clone(),
            config.token.clone(),
            dashboard_tls,
            stop_dashboard.clone(),
        ));
    }
    let served = serve(
        router,
        listener,
        max_connections,
        shutdown,
        health_reporter,
        runs,
    )
    .await;
    // After the runs stopped: the browsers' streams have had their runs' final events, and no
    // worker is left to connect.
    stop_dashboard.cancel();
    workers.close();
    served
}

/// Serves until `shutdown` resolves; then stops the runs (recording them), gives clients
/// [`CONNECTION_DRAIN`] to close their connections, and returns.
async fn serve(
    router: GrpcRouter,
    listener: TcpListener,
    max_connections: usize,
    shutdown: impl Future<Output = ()> + Send + 'static,
    health_reporter: HealthReporter,
    runs: Arc<Runs>,
) -> Result<(), StrataError> {
    let stop_runs = runs.clone();
    let (runs_stopped, runs_stopped_rx) = tokio::sync::oneshot::channel::<()>();
    let served = router.serve_with_incoming_shutdown(
        bounded_incoming(
            listener,
            ConnectionSlots::new(max_connections),
            CONNECTION_START_TIMEOUT,
        ),
        async move {
            shutdown.await;
            tracing::info!("shutting down: interrupting runs at the next batch");
            health_reporter
                .set_not_serving::<StrataServer<StrataService>>()
                .await;
            // Runs stop first, so their watchers receive the final event before connections close.
            stop_runs.shutdown().await;
            let _ = runs_stopped.send(());
        },
    );
    // Graceful shutdown waits for clients to close their connections; one that keeps an idle
    // connection open must not keep the daemon alive once everything is recorded.
    let drain_deadline = async {
        if runs_stopped_rx.await.is_ok() {
            tokio::time::sleep(CONNECTION_DRAIN).await;
        } else {
            std::future::pending::<()>().await;
        }
    };
    let served = tokio::select! {
        served = served => served,
        _ = drain_deadline => {
            tracing::info!("closing connections still open after {CONNECTION_DRAIN:?}");
            Ok(())
        }
    };
    runs.shutdown().await;
    served.map_err(|e| StrataError::Internal(format!("server: {e}")))?;
    tracing::info!("stratad stopped");
    Ok(())
}

/// Opens the store and checks it against the run folders before anything is changed (a store
/// that lost runs or epochs must not start as if empty); then marks the runs an earlier stop left
/// unfinished.
fn open_store(data_dir: &Path) -> Result<Arc<Store>, StrataError> {
    let store = Arc::new(Store::open(data_dir)?);
    integrity::check_at_startup(&store, data_dir)?;
    let interrupted = store.mark_unfinished_interrupted()?;
    if interrupted > 0 {
        tracing::warn!(
            runs = interrupted,
            "marked runs left unfinished by an earlier stop as interrupted"
        );
    }
    Ok(store)
}

/// The folders clients may name files in, with a warning for each way they open up the host.
fn data_roots(config: &DaemonConfig) -> Result<DataRoots, StrataError> {
    let data_roots = DataRoots::new(&config.data_roots)
        .map_err(|e| StrataError::invalid("data_root", e.to_string()))?
        .with_torchscript(config.allow_torchscript);
    if data_roots.allows_everything() {
        tracing::warn!("a data root is /: clients can make stratad read any file it may read (but /proc, /sys and /dev); give the folders that hold datasets instead");
    }
    if config.allow_torchscript {
        tracing::warn!(
            "--allow-torchscript: a client's TorchScript module runs with stratad's rights"
        );
    }
    Ok(data_roots)
}

/// Binds the listener; refuses an address reachable beyond this machine without a token (unless
/// told it is trusted), and warns about running as root.
async fn bind(config: &DaemonConfig) -> Result<(TcpListener, SocketAddr), StrataError> {
    let listener = TcpListener::bind(&config.listen).await.map_err(|e| {
        StrataError::invalid("listen", format!("cannot listen on {}: {e}", config.listen))
    })?;
    let addr = listener
        .local_addr()
        .map_err(|e| StrataError::Internal(e.to_string()))?;
    if !addr.ip().is_loopback() && config.token.is_none() {
        if !config.insecure_no_auth {
            return Err(StrataError::invalid(
                "listen",
                format!("{addr} is reachable beyond this machine and no token is set: anyone who can reach it could start and delete runs and make stratad read files under its data roots. Set --token-file FILE (or STRATA_TOKEN), listen on 127.0.0.1, or say --insecure-no-auth on a network you trust"),
            ));
        }
        tracing::warn!(%addr, "listening beyond loopback without a token (--insecure-no-auth): anyone who can reach this port can start and delete runs");
    }
    if running_as_root() {
        tracing::warn!("stratad runs as root: a client can make it read any file under its data roots that root can; run it as an unprivileged user");
    }
    Ok((listener, addr))
}

/// The gRPC server with its services: health (serving from now on, which the returned reporter
/// changes at shutdown), reflection and Strata's own, each behind the token check.
async fn router(
    config: &DaemonConfig,
    tls: Option<&TlsPem>,
    runs: &Arc<Runs>,
) -> Result<(GrpcRouter, HealthReporter), StrataError> {
    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    health_reporter
        .set_serving::<StrataServer<StrataService>>()
        .await;
    // Both reflection versions: older tools (grpcurl before 1.9, many IDEs) only ask v1alpha.
    let reflection_builder = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(strata_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    let reflection = reflection_builder()
        .build_v1()
        .map_err(|e| StrataError::Internal(format!("reflection: {e}")))?;
    let reflection_alpha = reflection_builder()
        .build_v1alpha()
        .map_err(|e| StrataError::Internal(format!("reflection: {e}")))?;
    let token_check = TokenCheck::new(config.token.as_deref());
    let service = StrataServer::new(StrataService::new(
        runs.clone(),
        config.data_dir.display().to_string(),
    ))
    .max_decoding_message_size(MAX_REQUEST_BYTES);
    let service = MalformedIsInvalid(InterceptedService::new(service, token_check.clone()));
    let reflection = InterceptedService::new(reflection, token_check.clone());
    let reflection_alpha = InterceptedService::new(reflection_alpha, token_check);
    // Keepalive pings close connections whose peer went silent after its first request.
    let mut builder = Server::builder()
        .http2_keepalive_interval(Some(KEEPALIVE_INTERVAL))
        .http2_keepalive_timeout(Some(KEEPALIVE_TIMEOUT))
        .max_concurrent_streams(MAX_STREAMS_PER_CONNECTION)
        .max_connection_age(MAX_CONNECTION_AGE)
        // Requests in flight per connection: a busy connection is never closed to make room.
        .layer(InFlightLayer);
    if let Some(pem) = tls {
        builder = builder.tls_config(tls_config(pem)).map_err(|e| {
            StrataError::invalid("tls_cert", format!("unusable certificate or key: {e}"))
        })?;
    }
    let router = builder
        .add_service(health_service)
        .add_service(reflection)
        .add_service(reflection_alpha)
        .add_service(service);
    Ok((router, health_reporter))
}

/// Installs the SIGINT and SIGTERM handlers now, and returns a future that resolves on either.
/// Installing them before the daemon says it is listening matters: a signal that came between
/// that line and the first poll of a lazily-installed handler would kill the process outright,
/// skipping the orderly shutdown (found by the shutdown-race test). Call within the runtime.
pub fn wait_for_signal() -> std::io::Result<impl Future<Output = ()> + Send + 'static> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => tracing::info!("received SIGINT"),
            _ = terminate.recv() => tracing::info!("received SIGTERM"),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn certificate(days_from_now: (i64, i64), ca: bool) -> (String, i64) {
        let now = rcgen::date_time_ymd(2030, 6, 1);
        let mut params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        let days_away = |days: i64| {
            let span = std::time::Duration::from_secs(days.unsigned_abs() * 86_400);
            if days < 0 {
                now - span
            } else {
                now + span
            }
        };
        params.not_before = days_away(days_from_now.0);
        params.not_after = days_away(days_from_now.1);
        if ca {
            params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        }
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        (cert.pem(), now.unix_timestamp())
    }

    #[test]
    fn runs_share_the_cores_by_default() {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        assert_eq!(default_threads_per_run(1), cores);
        assert_eq!(default_threads_per_run(cores * 2), 1);
    }

    #[test]
    fn expired_early_and_ca_certificates_are_warned_about() {
        let (good, now) = certificate((-1, 365), false);
        assert!(certificate_warnings(good.as_bytes(), now).is_empty());
        let (expired, now) = certificate((-30, -1), false);
        let warnings = certificate_warnings(expired.as_bytes(), now);
        assert!(warnings[0].contains("expired"), "{warnings:?}");
        let (soon, now) = certificate((-30, 3), false);
        assert!(certificate_warnings(soon.as_bytes(), now)[0].contains("expires on"));
        let (early, now) = certificate((2, 30), false);
        assert!(certificate_warnings(early.as_bytes(), now)[0].contains("not valid before"));
        let (ca, now) = certificate((-1, 365), true);
        assert!(certificate_warnings(ca.as_bytes(), now)[0].contains("CA certificate"));
        assert!(!certificate_warnings(b"junk", now).is_empty());
    }
}
