//! The gRPC transport: the service, conversions between the wire protocol and the domain, the
//! error → status mapping, and the connection-level guards (auth, connection limits, malformed
//! requests). Only this module and the daemon's set-up know tonic or the generated types.

pub mod auth;
pub mod connections;
pub mod convert;
pub mod malformed;
pub mod service;
pub mod status;
