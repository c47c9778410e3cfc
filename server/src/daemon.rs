//! Starting and stopping the daemon: store recovery, the gRPC server with health and reflection,
//! and a clean shutdown on SIGINT/SIGTERM.

use std::{future::Future, net::SocketAddr, path::PathBuf, sync::Arc};

use strata_proto::strata_server::StrataServer;
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::transport::Server;

use crate::{error::StrataError, runs::Runs, service::StrataService, store::Store};

/// Largest request the daemon decodes.
const MAX_REQUEST_BYTES: usize = 4 << 20;

#[derive(Clone, Debug)]
pub struct DaemonConfig {
    pub listen: String,
    pub data_dir: PathBuf,
    pub max_concurrent_runs: usize,
    /// libtorch intra-op threads (0: libtorch's default).
    pub threads: usize,
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
    let interrupted = store.mark_unfinished_interrupted()?;
    if interrupted > 0 {
        tracing::warn!(
            runs = interrupted,
            "marked runs left unfinished by an earlier stop as interrupted"
        );
    }
    let runs = Runs::new(store, config.data_dir.clone(), config.max_concurrent_runs);

    let listener = TcpListener::bind(&config.listen).await.map_err(|e| {
        StrataError::invalid("listen", format!("cannot listen on {}: {e}", config.listen))
    })?;
    let addr = listener
        .local_addr()
        .map_err(|e| StrataError::Internal(e.to_string()))?;

    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    health_reporter
        .set_serving::<StrataServer<StrataService>>()
        .await;
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(strata_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()
        .map_err(|e| StrataError::Internal(format!("reflection: {e}")))?;
    let service = StrataServer::new(StrataService::new(
        runs.clone(),
        config.data_dir.display().to_string(),
    ))
    .max_decoding_message_size(MAX_REQUEST_BYTES);

    tracing::info!(%addr, data_dir = %config.data_dir.display(), devices = ?crate::train::available_devices(), "stratad listening");
    on_listening(addr);
    let stop_runs = runs.clone();
    let served = Server::builder()
        .add_service(health_service)
        .add_service(reflection)
        .add_service(service)
        .serve_with_incoming_shutdown(TcpListenerStream::new(listener), async move {
            shutdown.await;
            tracing::info!("shutting down: interrupting runs at the next batch");
            health_reporter
                .set_not_serving::<StrataServer<StrataService>>()
                .await;
            // Runs stop first, so their watchers receive the final event before connections close.
            stop_runs.shutdown().await;
        })
        .await;
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
