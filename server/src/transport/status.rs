//! The one place that decides the gRPC code of each error: exhaustive, so a new error variant
//! does not build until it has one.

use tonic::Status;

use crate::error::{truncated, StrataError};

/// Longest error message sent to a client: inputs are quoted short where they are built, and
/// this bounds whatever else (an OS error, a path) makes it through.
const MAX_STATUS_MESSAGE_BYTES: usize = 1024;

impl From<StrataError> for Status {
    fn from(err: StrataError) -> Self {
        let message = truncated(err.to_string(), MAX_STATUS_MESSAGE_BYTES);
        match err {
            StrataError::InvalidArgument { .. } => Status::invalid_argument(message),
            StrataError::RunNotFound(_) => Status::not_found(message),
            StrataError::AmbiguousRun { .. } => Status::invalid_argument(message),
            StrataError::FailedPrecondition(_) => Status::failed_precondition(message),
            StrataError::AtLimit(_) => Status::resource_exhausted(message),
            StrataError::ShuttingDown => Status::unavailable(message),
            StrataError::Storage { .. } => Status::internal(message),
            StrataError::DataDamaged(_) => Status::data_loss(message),
            StrataError::Internal(_) => Status::internal(message),
        }
    }
}
