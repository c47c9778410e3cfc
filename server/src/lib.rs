//! `stratad`, the Strata daemon: training workers on libtorch, a sled store of per-epoch
//! metrics, and the gRPC service that starts, streams and reports runs.

pub mod analysis;
pub mod check;
pub mod daemon;
pub mod dashboard;
pub mod domain;
pub mod durable;
pub mod error;
pub mod integrity;
pub mod runs;
pub mod spec;
pub mod store;
pub mod train;
pub mod transport;
