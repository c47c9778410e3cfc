//! The dashboard: a web page of the runs and their curves, served over HTTP/1 beside gRPC, over
//! the same run manager. It speaks domain types ([`crate::runs::Runs`]), never proto types.
//!
//! - [`api`]: the JSON routes (runs list, one run, a comparison) and their bounds;
//! - [`events`]: server-sent events — a run's epochs, history then live, from the same watch
//!   fan-out `strata watch` uses, and the daemon-wide feed of changed runs;
//! - [`access`]: the token (a cookie once `?token=` was given), the loopback Host check, and the
//!   headers every response carries;
//! - [`sweep`]: a sweep's trials, each setting's effect and the recommendation, from the store;
//! - [`assets`]: the pages, scripts and the vendored chart library, compiled into the binary;
//! - [`json`]: domain types as the browser reads them (the CLI's `--json` field names).

mod access;
mod api;
mod assets;
mod events;
mod json;
mod sweep;

use std::{net::SocketAddr, sync::Arc, time::Duration};

use axum::{middleware, routing::get, Router};
use hyper_util::{
    rt::{TokioIo, TokioTimer},
    service::TowerToHyperService,
};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use crate::{
    error::StrataError,
    runs::Runs,
    transport::connections::{BoundedConnection, ConnectionSlots, CountInFlight, WithPeer},
};

/// Where the dashboard listens unless told otherwise: loopback, so only this machine's browsers
/// reach it without a token.
pub const DEFAULT_DASHBOARD_LISTEN: &str = "127.0.0.1:8080";
/// Browser connections open at once; beyond, the one idle the longest (no request being
/// answered) is closed to admit a new one, and with none idle the new one waits (see
/// [`crate::transport::connections`]).
const MAX_CONNECTIONS: usize = 128;
/// Event streams open at once (each holds a watcher task and its queue); beyond, the oldest
/// stream of the client holding the most is closed to make room ([`events::StreamSlots`]): a
/// browser reconnects a closed stream by itself, after the last event it received.
const MAX_EVENT_STREAMS: usize = 64;
/// A connection must send its request headers within this.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// How long to wait before accepting again after `accept` failed (out of file descriptors).
const ACCEPT_RETRY: Duration = Duration::from_millis(100);

/// Whether and where to serve the dashboard.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DashboardListen {
    Off,
    /// The default address: if it is taken, the daemon warns and serves gRPC without it.
    Default,
    /// An address the user gave: if it cannot be bound, the daemon does not start.
    Given(String),
}

impl DashboardListen {
    /// From `--dashboard-listen`: `off`, an address, or nothing (the default).
    pub fn from_flag(flag: Option<&str>) -> DashboardListen {
        match flag {
            None => DashboardListen::Default,
            Some(v) if v.eq_ignore_ascii_case("off") => DashboardListen::Off,
            Some(addr) => DashboardListen::Given(addr.to_string()),
        }
    }
}

/// What every route shares.
#[derive(Clone)]
struct Dashboard {
    runs: Arc<Runs>,
    /// Event streams in use (see [`MAX_EVENT_STREAMS`]).
    streams: Arc<events::StreamSlots>,
}

/// What protects the dashboard beyond this machine.
#[derive(Clone, Copy, Debug)]
pub struct Exposure {
    /// The daemon has a token (the dashboard asks for it).
    pub token: bool,
    /// The dashboard serves HTTPS (`--tls-cert/--tls-key`).
    pub tls: bool,
    /// `--insecure-no-auth`: a network the user trusts.
    pub insecure_no_auth: bool,
    /// `--dashboard-plain-http`: a proxy in front of it terminates TLS.
    pub plain_http: bool,
}

/// The dashboard's HTTPS from the certificate and key gRPC serves (read once, PEM): HTTP/1.1
/// over TLS 1.2 or 1.3, ring as tonic's TLS.
pub fn tls_acceptor(pem: &crate::daemon::TlsPem) -> Result<TlsAcceptor, StrataError> {
    use tokio_rustls::rustls::{
        self,
        pki_types::{pem::PemObject, CertificateDer, PrivateKeyDer},
    };
    let unusable = |field: &str, e: &dyn std::fmt::Display| {
        StrataError::invalid(field, format!("unusable for the dashboard's HTTPS: {e}"))
    };
    let certs = CertificateDer::pem_slice_iter(&pem.cert)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| unusable("tls_cert", &e))?;
    let key = PrivateKeyDer::from_pem_slice(&pem.key).map_err(|e| unusable("tls_key", &e))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| unusable("tls_cert", &e))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| unusable("tls_key", &e))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// Binds the dashboard's listener as `listen` says, with gRPC's rule: beyond loopback only with a
/// token (or `--insecure-no-auth`); and, since a browser sends the token with every request,
/// only over HTTPS (or plain HTTP when told a proxy terminates TLS, or the network is trusted).
/// `None` when off, or when the default address is taken.
pub async fn bind(
    listen: &DashboardListen,
    exposure: Exposure,
) -> Result<Option<TcpListener>, StrataError> {
    let addr = match listen {
        DashboardListen::Off => return Ok(None),
        DashboardListen::Default => DEFAULT_DASHBOARD_LISTEN,
        DashboardListen::Given(addr) => addr.as_str(),
    };
    let listener = match TcpListener::bind(addr).await {
        Ok(listener) => listener,
        Err(err) if *listen == DashboardListen::Default => {
            tracing::warn!(%addr, error = %err, "the dashboard's default address is taken: serving without a dashboard (give --dashboard-listen ADDR, or off)");
            return Ok(None);
        }
        Err(err) => {
            return Err(StrataError::invalid(
                "dashboard_listen",
                format!("cannot listen on {addr}: {err}"),
            ))
        }
    };
    let bound = local_addr(&listener)?;
    let beyond = !bound.ip().is_loopback();
    if beyond && !exposure.token {
        if !exposure.insecure_no_auth {
            return Err(StrataError::invalid(
                "dashboard_listen",
                format!("{bound} is reachable beyond this machine and no token is set: anyone who can reach it could read every run. Set --token-file FILE (or STRATA_TOKEN), use a 127.0.0.1 address, say --dashboard-listen off, or --insecure-no-auth on a network you trust"),
            ));
        }
        tracing::warn!(%bound, "dashboard beyond loopback without a token (--insecure-no-auth)");
    }
    if beyond && exposure.token && !exposure.tls {
        if !exposure.plain_http {
            return Err(StrataError::invalid(
                "dashboard_listen",
                format!("{bound} is reachable beyond this machine, and without a certificate the dashboard would be plain HTTP: the token and every run would cross the network unencrypted. Give --tls-cert FILE --tls-key FILE (the dashboard then serves HTTPS with gRPC's certificate), use a 127.0.0.1 address, say --dashboard-listen off, or --dashboard-plain-http when a proxy in front of it terminates TLS"),
            ));
        }
        tracing::warn!(%bound, "the dashboard is plain HTTP beyond loopback (--dashboard-plain-http): keep the proxy that terminates TLS in front of it");
    }
    Ok(Some(listener))
}

pub fn local_addr(listener: &TcpListener) -> Result<SocketAddr, StrataError> {
    listener
        .local_addr()
        .map_err(|e| StrataError::Internal(format!("the dashboard's address: {e}")))
}

/// Serves the dashboard on `listener` (over TLS with `tls`) until `shutdown` is cancelled; then
/// closes every connection (event streams never end by themselves).
pub async fn serve(
    listener: TcpListener,
    runs: Arc<Runs>,
    token: Option<String>,
    tls: Option<TlsAcceptor>,
    shutdown: CancellationToken,
) {
    let Ok(bound) = local_addr(&listener) else {
        return;
    };
    let app = router(runs, token, tls.is_some(), bound);
    let connections = ConnectionSlots::new(MAX_CONNECTIONS);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    tracing::warn!(error = %err, "the dashboard could not accept a connection");
                    tokio::time::sleep(ACCEPT_RETRY).await;
                    continue;
                }
            },
            () = shutdown.cancelled() => return,
        };
        let slot = tokio::select! {
            slot = connections.admit() => slot,
            () = shutdown.cancelled() => return,
        };
        // Each request is in flight until its answer ends (an event stream until it is closed):
        // a connection answering one is never closed to admit another.
        let service = CountInFlight::on(slot.activity.clone(), WithPeer::new(app.clone(), peer));
        let stream = BoundedConnection::new(stream, slot, HEADER_READ_TIMEOUT);
        let shutdown = shutdown.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            let served = async {
                match tls {
                    None => serve_connection(stream, service).await,
                    // The handshake within the time a request's headers have: a client that
                    // opens a connection and says nothing holds no slot for long.
                    Some(tls) => {
                        match tokio::time::timeout(HEADER_READ_TIMEOUT, tls.accept(stream)).await {
                            Ok(Ok(stream)) => serve_connection(stream, service).await,
                            Ok(Err(err)) => {
                                tracing::debug!(%peer, error = %err, "a dashboard TLS handshake failed")
                            }
                            Err(_) => tracing::debug!(%peer, "a dashboard TLS handshake timed out"),
                        }
                    }
                }
            };
            tokio::select! {
                () = served => {}
                () = shutdown.cancelled() => {}
            }
        });
    }
}

/// One connection's HTTP/1 requests, answered until it closes.
async fn serve_connection<S>(stream: S, service: CountInFlight<WithPeer<Router>>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let connection = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .serve_connection(TokioIo::new(stream), TowerToHyperService::new(service));
    if let Err(err) = connection.await {
        tracing::debug!(error = %err, "a dashboard connection ended with an error");
    }
}

/// Every route, behind the access check. Unknown paths are a 404 naming the path.
fn router(runs: Arc<Runs>, token: Option<String>, https: bool, bound: SocketAddr) -> Router {
    let dashboard = Dashboard {
        runs,
        streams: events::StreamSlots::new(MAX_EVENT_STREAMS),
    };
    let access = access::Access::new(token, https, bound);
    Router::new()
        .route("/", get(assets::runs_page))
        .route("/runs/{run}", get(assets::run_page))
        .route("/compare", get(assets::compare_page))
        .route("/sweeps/{sweep}", get(assets::sweep_page))
        .route("/assets/{file}", get(assets::asset))
        .route("/api/runs", get(api::list))
        .route("/api/runs/{run}", get(api::run))
        .route("/api/runs/{run}/steps", get(api::run_steps))
        .route("/api/compare", get(api::compare))
        .route("/api/workers", get(api::workers))
        .route("/api/sweeps/{sweep}", get(sweep::sweep))
        .route("/api/runs/{run}/events", get(events::run_events))
        .route("/api/events", get(events::changes))
        .fallback(api::not_found)
        .with_state(dashboard)
        .layer(middleware::from_fn_with_state(access, access::check))
}
