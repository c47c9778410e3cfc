//! The Rust client library of `stratad`, used by the `strata` CLI (`client/`), the end-to-end
//! tests and the benchmarks.
//!
//! [`Client`] wraps the generated gRPC client with address handling, an optional bearer token and
//! TLS, and one error type ([`ClientError`]) that keeps the server's [`tonic::Status`] so callers
//! can map codes. [`Fleet`] is the daemons a client talks to (from `--addr` values, a daemons
//! file or a `dns:` name), asked concurrently, with the unreachable ones set aside. [`labels`] reads the daemon's values (a run's status, an epoch's gap, a
//! parameter's freeze state, its layer groups) the one way every output shows them.
//!
//! Nothing here renders or parses a command line: tables, charts, plots, `--json` shapes, exports
//! and the sweep driver belong to the CLI crate (`strata-cli`, `client/`). The library's files are
//! `lib.rs`, `client.rs`, `auth.rs`, `error.rs`, `labels.rs` and `fleet/` (`mod.rs`: the fleet;
//! `addresses.rs`: where daemons are).

mod auth;
mod client;
mod error;
pub mod fleet;
pub mod labels;

pub use auth::BearerAuth;
pub use client::{endpoint_uri, Client, StrataGrpc};
pub use error::ClientError;
pub use fleet::{DaemonSpec, Fleet};
pub use labels::{diagnosis_label, epoch_gap, metric_label, status_label, verdict_label};
