//! A small client library for `stratad`, shared by the `strata` CLI and the end-to-end tests.
//!
//! [`Client`] wraps the generated gRPC client with address handling, an optional bearer token and
//! TLS, and one error type ([`ClientError`]) that keeps the server's [`tonic::Status`] so callers
//! can map codes. [`Fleet`] is the daemons a client talks to (from `--addr` values, a daemons
//! file or a `dns:` name), asked concurrently, with the unreachable ones set aside. [`model`] reads the daemon's values (a run's status, an epoch's gap, a
//! parameter's freeze state, its layer groups) the one way every output shows them.
//!
//! Nothing here renders: tables, charts, plots, `--json` shapes and exports belong to the `strata`
//! binary (`main.rs` and its modules). The library's files are `lib.rs`, `client.rs`, `auth.rs`,
//! `error.rs`, `model.rs`, `fleet/` (`mod.rs`: the fleet; `addresses.rs`: where daemons are) and
//! `sweep/` (expanding, driving and ranking sweeps).

mod auth;
mod client;
mod error;
pub mod fleet;
pub mod model;
pub mod sweep;

pub use auth::BearerAuth;
pub use client::{endpoint_uri, Client, StrataGrpc};
pub use error::ClientError;
pub use fleet::{DaemonSpec, Fleet};
pub use model::{diagnosis_label, epoch_gap, metric_label, status_label, verdict_label};
