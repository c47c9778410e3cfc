//! `stratad`, the Strata daemon: the control plane — a sled store of per-epoch metrics, the queue,
//! the analysis, the gRPC service that starts, streams and reports runs, and the dashboard. Runs
//! train in worker processes (`strata-worker`, the `strata-worker` crate) that talk to it over the
//! worker protocol ([`workers`]); this crate links no libtorch.
//!
//! The worker builds on this crate's library for what both sides must read alike: the domain, the
//! spec parser, the store's record encoding, the checkpoint file format, the dataset readers.

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
pub mod workers;
