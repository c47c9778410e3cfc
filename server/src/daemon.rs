//! Starting and stopping the daemon: store recovery and its check against the run folders, the gRPC server with health and reflection,
//! and a clean shutdown on SIGINT/SIGTERM.

use std::{future::Future, net::SocketAddr, path::PathBuf, sync::Arc};

use strata_proto::strata_server::StrataServer;
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::transport::{Identity, Server, ServerTlsConfig};

use crate::{
    auth::TokenCheck, error::StrataError, integrity, runs::Runs, service::StrataService,
    store::Store,
};

/// How long shutdown waits for clients to close their connections once runs are stopped.
const CONNECTION_DRAIN: std::time::Duration = std::time::Duration::from_secs(2);
/// Largest request the daemon decodes.
const MAX_REQUEST_BYTES: usize = 4 << 20;

#[derive(Clone, Debug)]
pub struct DaemonConfig {
    pub listen: String,
    pub data_dir: PathBuf,
    pub max_concurrent_runs: usize,
    /// libtorch intra-op threads (0: libtorch's default).
    pub threads: usize,
    /// Checkpoints kept per run (the newest).
    pub keep_checkpoints: usize,
    /// When set, every call but health needs `authorization: Bearer TOKEN`.
    pub token: Option<String>,
    /// PEM certificate chain and private key: serve TLS instead of plaintext.
    pub tls: Option<TlsFiles>,
}

#[derive(Clone, Debug)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

fn tls_config(files: &TlsFiles) -> Result<ServerTlsConfig, StrataError> {
    let read = |field: &str, path: &PathBuf| {
        std::fs::read(path).map_err(|e| {
            StrataError::invalid(field, format!("cannot read {}: {e}", path.display()))
        })
    };
    let identity = Identity::from_pem(read("tls_cert", &files.cert)?, read("tls_key", &files.key)?);
    Ok(ServerTlsConfig::new().identity(identity))
}

/// Opens the store, binds the listener and serves until `shutdown` resolves. Calls `on_listening`
/// with the bound address once the port is open (the address may be `127.0.0.1:0`).
pub async fn run(
    config: DaemonConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
    on_listening: impl FnOnce(SocketAddr),
) -> Result<(), StrataError> {
    if config.threads > 0 {
        tch::set_num_threads(config.threads as i32);
    }
    let store = Arc::new(Store::open(&config.data_dir)?);
    // Before anything is changed: a store that lost runs or epochs must not start as if empty.
    integrity::check_at_startup(&store, &config.data_dir)?;
    let interrupted = store.mark_unfinished_interrupted()?;
    if interrupted > 0 {
        tracing::warn!(
            runs = interrupted,
            "marked runs left unfinished by an earlier stop as interrupted"
        );
    }
    let runs = Runs::new(
        store,
        config.data_dir.clone(),
        config.max_concurrent_runs,
        config.keep_checkpoints,
    );

    let listener = TcpListener::bind(&config.listen).await.map_err(|e| {
        StrataError::invalid("listen", format!("cannot listen on {}: {e}", config.listen))
    })?;
    let addr = listener
        .local_addr()
        .map_err(|e| StrataError::Internal(e.to_string()))?;

    if !addr.ip().is_loopback() && config.token.is_none() {
        tracing::warn!(%addr, "listening beyond loopback without a token: anyone who can reach this port can start and delete runs (set --token-file or STRATA_TOKEN)");
    }

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
    let service =
        tonic::service::interceptor::InterceptedService::new(service, token_check.clone());
    let reflection =
        tonic::service::interceptor::InterceptedService::new(reflection, token_check.clone());
    let reflection_alpha =
        tonic::service::interceptor::InterceptedService::new(reflection_alpha, token_check);
    let mut builder = Server::builder();
    if let Some(files) = &config.tls {
        builder = builder.tls_config(tls_config(files)?).map_err(|e| {
            StrataError::invalid("tls_cert", format!("unusable certificate or key: {e}"))
        })?;
    }

    tracing::info!(
        %addr,
        data_dir = %config.data_dir.display(),
        devices = ?crate::train::available_devices(),
        tls = config.tls.is_some(),
        auth = config.token.is_some(),
        "stratad listening"
    );
    on_listening(addr);
    let stop_runs = runs.clone();
    let (runs_stopped, runs_stopped_rx) = tokio::sync::oneshot::channel::<()>();
    let served = builder
        .add_service(health_service)
        .add_service(reflection)
        .add_service(reflection_alpha)
        .add_service(service)
        .serve_with_incoming_shutdown(TcpListenerStream::new(listener), async move {
            shutdown.await;
            tracing::info!("shutting down: interrupting runs at the next batch");
            health_reporter
                .set_not_serving::<StrataServer<StrataService>>()
                .await;
            // Runs stop first, so their watchers receive the final event before connections close.
            stop_runs.shutdown().await;
            let _ = runs_stopped.send(());
        });
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

/// Resolves on SIGINT or SIGTERM.
pub async fn wait_for_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => tracing::info!("received SIGINT"),
        _ = terminate => tracing::info!("received SIGTERM"),
    }
}
