//! `stratad`, the Strata daemon: training workers on libtorch, a sled store of per-epoch
//! metrics, and the gRPC service that starts, streams and reports runs.

pub mod analysis;
pub mod auth;
pub mod check;
pub mod connections;
pub mod daemon;
pub mod durable;
pub mod error;
pub mod integrity;
pub mod malformed;
pub mod runs;
pub mod service;
pub mod spec;
pub mod store;
pub mod train;
