//! [`Client`]: a connection to one `stratad` (address, token, TLS) and the calls it answers.

use std::time::Duration;

use strata_proto::strata_client::StrataClient;
use strata_proto::{
    AnalysisThresholds, CancelRunRequest, CancelRunResponse, CompareRunsRequest,
    CompareRunsResponse, DeleteRunRequest, DeleteRunResponse, GetRunRequest, GetRunResponse,
    GetServerInfoRequest, ListRunsRequest, ListRunsResponse, ListWorkersRequest,
    ListWorkersResponse, LrFindEvent, LrFindRequest, ResumeRunRequest, ResumeRunResponse,
    ServerInfo, StartRunRequest, StartRunResponse, WatchEvent, WatchRunRequest,
};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};

use crate::error::error_chain;
use crate::{BearerAuth, ClientError};

/// The generated gRPC client as [`Client`] holds it: over one channel, with the token interceptor.
pub type StrataGrpc = StrataClient<InterceptedService<Channel, BearerAuth>>;

/// How long [`Client::connect`] waits for the TCP connection before giving up. Short, because
/// the daemon normally runs on the same host or LAN; a hung CLI is worse than a clear error.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Largest response the client accepts. GetRun of a long run with many groups can exceed tonic's
/// 4 MiB default; 64 MiB is far above any realistic run and still bounds a broken server.
const MAX_RESPONSE_BYTES: usize = 64 * 1024 * 1024;

/// A connection to one `stratad`.
///
/// Cheap to clone; every method takes `&self` so one client can serve concurrent calls (the
/// underlying channel multiplexes them).
#[derive(Clone)]
pub struct Client {
    grpc: StrataGrpc,
    addr: String,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

/// Turns what a user types (`host:port` or `http://host:port`) into an endpoint URI.
pub fn endpoint_uri(addr: &str) -> String {
    let addr = addr.trim();
    if addr.contains("://") {
        addr.to_string()
    } else {
        format!("http://{addr}")
    }
}

impl Client {
    /// Connects to the daemon at `addr` (`http://host:port` or bare `host:port`), sending
    /// `token` as a bearer token on every call when given.
    ///
    /// Connects eagerly so that an unreachable daemon is reported here, once, clearly.
    pub async fn connect(addr: &str, token: Option<String>) -> Result<Client, ClientError> {
        Self::connect_with(addr, token, None).await
    }

    /// Like [`Client::connect`]; `tls_ca` is a PEM CA certificate to trust for `https://`
    /// addresses (without it, the system's roots).
    pub async fn connect_with(
        addr: &str,
        token: Option<String>,
        tls_ca: Option<Vec<u8>>,
    ) -> Result<Client, ClientError> {
        let auth = BearerAuth::new(token.as_deref())?;
        let uri = endpoint_uri(addr);
        let scheme = uri.split_once("://").map_or("http", |(scheme, _)| scheme);
        let tls = if scheme.eq_ignore_ascii_case("https") {
            let config = ClientTlsConfig::new();
            Some(match tls_ca {
                Some(pem) => config.ca_certificate(Certificate::from_pem(pem)),
                None => config.with_enabled_roots(),
            })
        } else if scheme.eq_ignore_ascii_case("http") {
            // A token over plaintext is the user's choice on loopback; a CA for a plaintext
            // address is a mistake worth pointing out.
            if tls_ca.is_some() {
                return Err(ClientError::InvalidAddress {
                    addr: addr.to_string(),
                    reason: "--tls-ca needs an https:// address".into(),
                });
            }
            None
        } else {
            return Err(ClientError::InvalidAddress {
                addr: addr.to_string(),
                reason: format!("unsupported scheme '{scheme}'; use http://host:port, https://host:port or host:port"),
            });
        };
        let endpoint = Endpoint::from_shared(uri)
            .map_err(|err| ClientError::InvalidAddress {
                addr: addr.to_string(),
                reason: error_chain(&err),
            })?
            .connect_timeout(CONNECT_TIMEOUT);
        let endpoint = match tls {
            Some(tls) => endpoint
                .tls_config(tls)
                .map_err(|err| ClientError::InvalidAddress {
                    addr: addr.to_string(),
                    reason: error_chain(&err),
                })?,
            None => endpoint,
        };
        let channel = endpoint
            .connect()
            .await
            .map_err(|err| ClientError::Connect {
                addr: addr.to_string(),
                reason: error_chain(&err),
            })?;
        let grpc = StrataClient::with_interceptor(channel, auth)
            .max_decoding_message_size(MAX_RESPONSE_BYTES);
        Ok(Client {
            grpc,
            addr: addr.to_string(),
        })
    }

    /// The address this client was connected with, as given.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// The generated client, for calls this wrapper does not cover.
    pub fn grpc(&self) -> StrataGrpc {
        self.grpc.clone()
    }

    /// Validates and (unless `dry_run`) starts a run.
    pub async fn start_run(
        &self,
        request: StartRunRequest,
    ) -> Result<StartRunResponse, ClientError> {
        Ok(self.grpc.clone().start_run(request).await?.into_inner())
    }

    /// One run (by id or unique id prefix) with its stored epochs and the daemon's analysis of
    /// them (default thresholds). A run of more than 2,000 epochs comes with an even spread of
    /// them (`epochs_thinned`); [`Client::get_run_every_epoch`] reads them all.
    pub async fn get_run(&self, run: &str) -> Result<GetRunResponse, ClientError> {
        self.get_run_with(run, None).await
    }

    /// Like [`Client::get_run`], with analysis thresholds overridden (unset fields: defaults).
    pub async fn get_run_with(
        &self,
        run: &str,
        thresholds: Option<AnalysisThresholds>,
    ) -> Result<GetRunResponse, ClientError> {
        let request = GetRunRequest {
            run: run.to_string(),
            thresholds,
            from_epoch: 0,
        };
        Ok(self.grpc.clone().get_run(request).await?.into_inner())
    }

    /// [`Client::get_run`] with every stored epoch: a thinned answer is completed by reading the
    /// run's epochs page by page (GetRun's `from_epoch`), each page bounded by the daemon.
    pub async fn get_run_every_epoch(&self, run: &str) -> Result<GetRunResponse, ClientError> {
        let mut response = self.get_run(run).await?;
        if !response.epochs_thinned {
            return Ok(response);
        }
        // Pages name the run by its full id: the prefix could become ambiguous meanwhile.
        let id = response
            .run
            .as_ref()
            .map_or(run.to_string(), |r| r.id.clone());
        let mut epochs = Vec::new();
        let mut from_epoch = 1;
        loop {
            let request = GetRunRequest {
                run: id.clone(),
                thresholds: None,
                from_epoch,
            };
            let page = self.grpc.clone().get_run(request).await?.into_inner();
            epochs.extend(page.epochs);
            if page.next_epoch <= from_epoch {
                break;
            }
            from_epoch = page.next_epoch;
        }
        response.epochs = epochs;
        response.epochs_thinned = false;
        Ok(response)
    }

    /// Analyses runs (ids or unique prefixes) and ranks them by best validation loss.
    pub async fn compare_runs(
        &self,
        runs: &[String],
        thresholds: Option<AnalysisThresholds>,
    ) -> Result<CompareRunsResponse, ClientError> {
        let request = CompareRunsRequest {
            runs: runs.to_vec(),
            thresholds,
        };
        Ok(self.grpc.clone().compare_runs(request).await?.into_inner())
    }

    /// Runs, newest first.
    pub async fn list_runs(
        &self,
        request: ListRunsRequest,
    ) -> Result<ListRunsResponse, ClientError> {
        Ok(self.grpc.clone().list_runs(request).await?.into_inner())
    }

    /// The run's stored epochs from `from_epoch`, then live events until its final status.
    pub async fn watch_run(
        &self,
        run: &str,
        from_epoch: u32,
    ) -> Result<tonic::Streaming<WatchEvent>, ClientError> {
        let request = WatchRunRequest {
            run: run.to_string(),
            from_epoch,
        };
        Ok(self.grpc.clone().watch_run(request).await?.into_inner())
    }

    /// Runs a learning-rate range test per layer group: its plan, progress, then each group's
    /// result. Dropping the stream stops the test on the daemon.
    pub async fn lr_find(
        &self,
        request: LrFindRequest,
    ) -> Result<tonic::Streaming<LrFindEvent>, ClientError> {
        Ok(self.grpc.clone().lr_find(request).await?.into_inner())
    }

    /// Stops a queued or running run.
    pub async fn cancel_run(&self, run: &str) -> Result<CancelRunResponse, ClientError> {
        self.cancel_run_because(run, String::new()).await
    }

    /// Stops a queued or running run, recording `reason` as why it ended.
    pub async fn cancel_run_because(
        &self,
        run: &str,
        reason: String,
    ) -> Result<CancelRunResponse, ClientError> {
        let request = CancelRunRequest {
            run: run.to_string(),
            reason,
        };
        Ok(self.grpc.clone().cancel_run(request).await?.into_inner())
    }

    /// Continues an interrupted or cancelled run (to `epochs` in total when not 0).
    pub async fn resume_run(
        &self,
        run: &str,
        epochs: u32,
    ) -> Result<ResumeRunResponse, ClientError> {
        let request = ResumeRunRequest {
            run: run.to_string(),
            epochs,
        };
        Ok(self.grpc.clone().resume_run(request).await?.into_inner())
    }

    /// Deletes a finished run with its epochs and checkpoints.
    pub async fn delete_run(&self, run: &str) -> Result<DeleteRunResponse, ClientError> {
        let request = DeleteRunRequest {
            run: run.to_string(),
        };
        Ok(self.grpc.clone().delete_run(request).await?.into_inner())
    }

    /// The remote workers connected to the daemon.
    pub async fn list_workers(&self) -> Result<ListWorkersResponse, ClientError> {
        Ok(self
            .grpc
            .clone()
            .list_workers(ListWorkersRequest {})
            .await?
            .into_inner())
    }

    /// The daemon's version, devices and limits.
    pub async fn server_info(&self) -> Result<ServerInfo, ClientError> {
        Ok(self
            .grpc
            .clone()
            .get_server_info(GetServerInfoRequest {})
            .await?
            .into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Compile-time check: callers spawn these calls on tokio tasks, which needs `Send` futures.
    #[allow(dead_code)]
    fn client_futures_are_send(client: &Client) {
        fn assert_send<T: Send>(_: T) {}
        assert_send(client.start_run(StartRunRequest::default()));
        assert_send(client.get_run("x"));
        assert_send(client.compare_runs(&[], None));
        assert_send(client.list_runs(ListRunsRequest::default()));
        assert_send(client.watch_run("x", 0));
        assert_send(client.cancel_run("x"));
        assert_send(client.server_info());
    }

    #[test]
    fn bare_addresses_get_a_scheme() {
        assert_eq!(endpoint_uri("127.0.0.1:50051"), "http://127.0.0.1:50051");
        assert_eq!(endpoint_uri(" localhost:1 "), "http://localhost:1");
        assert_eq!(endpoint_uri("http://h:2"), "http://h:2");
        assert_eq!(endpoint_uri("https://h:2"), "https://h:2");
    }

    #[tokio::test]
    async fn unreachable_daemon_is_a_clear_error() {
        // A port that was just free: bound by us, then released, so nothing listens there.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .unwrap()
            .port();
        let addr = format!("127.0.0.1:{port}");
        let err = Client::connect(&addr, None)
            .await
            .expect_err("nothing listens there");
        assert_eq!(err.code(), tonic::Code::Unavailable);
        assert!(err.is_connection_error());
        assert!(
            err.to_string()
                .starts_with(&format!("cannot reach stratad at {addr}: ")),
            "{err}"
        );
    }

    #[tokio::test]
    async fn malformed_address_is_invalid_argument() {
        for addr in ["http://bad host:1", "grpc://127.0.0.1:1"] {
            let err = Client::connect(addr, None).await.expect_err("bad address");
            assert_eq!(err.code(), tonic::Code::InvalidArgument, "{addr}: {err}");
        }
    }
}
