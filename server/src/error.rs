//! The daemon's errors. Their gRPC codes are decided in one place, in the transport
//! ([`crate::transport::status`]).

/// Everything a request to the daemon can fail with.
#[derive(Debug, thiserror::Error)]
pub enum StrataError {
    /// A field of the request is malformed or out of range. `field` is the name the user typed
    /// (`layer_lr[0]`, `lr`), `message` what is wrong and what is allowed.
    #[error("{field}: {message}")]
    InvalidArgument { field: String, message: String },
    #[error("no run matches '{0}'")]
    RunNotFound(String),
    #[error("'{prefix}' matches several runs ({examples}); type more of the id")]
    AmbiguousRun { prefix: String, examples: String },
    /// The request is well formed but the run is in the wrong state for it.
    #[error("{0}")]
    FailedPrecondition(String),
    /// The daemon holds as much of something as its flags allow (queued runs, live external
    /// runs): the message names the limit, its flag, and what frees room.
    #[error("{0}")]
    AtLimit(String),
    /// The daemon is stopping and takes no new work.
    #[error("stratad is shutting down")]
    ShuttingDown,
    #[error("storage error: {0}")]
    Storage(String),
    /// The data dir is damaged: the store disagrees with the run folders, or a record or
    /// checkpoint is unreadable. The message says what and how to recover.
    #[error("{0}")]
    DataDamaged(String),
    #[error("internal error: {0}")]
    Internal(String),
}

impl StrataError {
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        StrataError::InvalidArgument {
            field: field.into(),
            message: message.into(),
        }
    }
}

impl From<sled::Error> for StrataError {
    fn from(err: sled::Error) -> Self {
        StrataError::Storage(err.to_string())
    }
}

impl From<prost::DecodeError> for StrataError {
    fn from(err: prost::DecodeError) -> Self {
        StrataError::Storage(format!("corrupt record: {err}"))
    }
}

/// `message` cut to at most `max` bytes, at a character boundary, saying that it was cut.
pub fn truncated(mut message: String, max: usize) -> String {
    if message.len() > max {
        let mut end = max;
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        message.truncate(end);
        message.push_str("… (cut)");
    }
    message
}

pub type Result<T, E = StrataError> = std::result::Result<T, E>;
