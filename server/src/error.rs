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
    /// The store or the data dir could not be read or written: `context` says what was being
    /// done; `source` is the error underneath when there is one (sled's, the file system's, a
    /// record's decoding), kept for code that looks at it (its `io::ErrorKind`) and said after
    /// the context, so that the one-line message a client or the log gets is whole.
    #[error("storage error: {context}{}", cause(.source.as_deref()))]
    Storage {
        context: String,
        #[source]
        source: Option<BoxError>,
    },
    /// The data dir is damaged: the store disagrees with the run folders, or a record or
    /// checkpoint is unreadable. The message says what and how to recover.
    #[error("{0}")]
    DataDamaged(String),
    #[error("internal error: {0}")]
    Internal(String),
}

/// An underlying error of any kind.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// `: SOURCE`, or nothing.
fn cause(source: Option<&(dyn std::error::Error + Send + Sync + 'static)>) -> String {
    source.map_or(String::new(), |source| format!(": {source}"))
}

impl StrataError {
    /// A storage error with nothing underneath it.
    pub fn storage(context: impl Into<String>) -> Self {
        StrataError::Storage {
            context: context.into(),
            source: None,
        }
    }

    /// A storage error caused by `source`: `context` says what was being done.
    pub fn storage_from(context: impl Into<String>, source: impl Into<BoxError>) -> Self {
        StrataError::Storage {
            context: context.into(),
            source: Some(source.into()),
        }
    }

    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        StrataError::InvalidArgument {
            field: field.into(),
            message: message.into(),
        }
    }
}

impl From<sled::Error> for StrataError {
    fn from(err: sled::Error) -> Self {
        // sled's own message says what failed ("IO error: …", "Corruption: …").
        StrataError::Storage {
            context: err.to_string(),
            source: Some(Box::new(err)),
        }
    }
}

impl From<prost::DecodeError> for StrataError {
    fn from(err: prost::DecodeError) -> Self {
        StrataError::storage_from("corrupt record", err)
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;

    /// A storage error says what was being done and what went wrong underneath, in one line, and
    /// keeps the error underneath for code that looks at it.
    #[test]
    fn a_storage_error_keeps_its_source() {
        let disk = std::io::Error::new(std::io::ErrorKind::StorageFull, "No space left on device");
        let err = StrataError::storage_from("cannot sync /d/db", disk);
        assert_eq!(
            err.to_string(),
            "storage error: cannot sync /d/db: No space left on device"
        );
        let source = err.source().expect("a source");
        let io = source
            .downcast_ref::<std::io::Error>()
            .expect("the io error");
        assert_eq!(io.kind(), std::io::ErrorKind::StorageFull);
        assert_eq!(
            StrataError::storage("corrupt epoch key").to_string(),
            "storage error: corrupt epoch key"
        );
        assert!(StrataError::storage("corrupt epoch key").source().is_none());
    }
}
