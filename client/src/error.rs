//! [`ClientError`]: everything that can go wrong talking to `stratad`, and the one-line messages
//! made from transport errors.

/// Everything that can go wrong talking to `stratad`.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The address could not be turned into a URI.
    #[error("invalid address {addr:?}: {reason}")]
    InvalidAddress { addr: String, reason: String },
    /// The token cannot be sent as gRPC metadata (it must be visible ASCII).
    #[error("invalid token: {0}")]
    InvalidToken(String),
    /// No connection could be made to the daemon.
    #[error("cannot reach stratad at {addr}: {reason} (is it running?)")]
    Connect { addr: String, reason: String },
    /// The call reached the daemon (or the transport under it) and failed with this status.
    /// Boxed because `Status` is large and would bloat every `Result` (clippy::result_large_err).
    #[error("{}", status_message(.0))]
    Status(Box<tonic::Status>),
}

impl ClientError {
    /// The gRPC code this error corresponds to, so callers can map every error the same way:
    /// a bad address or token is the caller's input (`InvalidArgument`), a failed connect is
    /// `Unavailable`, and a call's status is its own code.
    pub fn code(&self) -> tonic::Code {
        match self {
            ClientError::InvalidAddress { .. } | ClientError::InvalidToken(_) => {
                tonic::Code::InvalidArgument
            }
            ClientError::Connect { .. } => tonic::Code::Unavailable,
            ClientError::Status(status) => status.code(),
        }
    }

    /// Whether the connection to the daemon failed (it is not running, or went away mid-call),
    /// as opposed to the daemon answering with an error. Statuses the daemon sends arrive
    /// without a source error; those tonic raises locally from a broken transport carry one.
    pub fn is_connection_error(&self) -> bool {
        match self {
            ClientError::Connect { .. } => true,
            ClientError::Status(status) => {
                status.code() == tonic::Code::Unavailable
                    || std::error::Error::source(status.as_ref()).is_some()
            }
            ClientError::InvalidAddress { .. } | ClientError::InvalidToken(_) => false,
        }
    }

    /// The server's status, when the error came from a call.
    pub fn status(&self) -> Option<&tonic::Status> {
        match self {
            ClientError::Status(status) => Some(status),
            _ => None,
        }
    }
}

impl From<tonic::Status> for ClientError {
    fn from(status: tonic::Status) -> Self {
        ClientError::Status(Box::new(status))
    }
}

/// A status's message, or its code's description when the server sent none.
fn status_message(status: &tonic::Status) -> String {
    if status.message().is_empty() {
        status.code().description().to_string()
    } else {
        status.message().to_string()
    }
}

/// An error and its sources on one line. Transport errors say little at the top ("transport
/// error"); the useful part ("Connection refused") is further down the chain.
pub(crate) fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut current = Some(err);
    while let Some(err) = current {
        let text = err.to_string();
        // Skip tonic's generic top line and pieces a layer repeats from its source.
        let generic = text == "transport error" && err.source().is_some();
        if !generic && !text.is_empty() && !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        current = err.source();
    }
    let mut chain = parts.join(": ");
    if let Some(hint) = tls_hint(&chain) {
        chain.push_str("; ");
        chain.push_str(hint);
    }
    chain
}

/// What to do about the certificate errors people meet with a self-made certificate.
fn tls_hint(chain: &str) -> Option<&'static str> {
    if chain.contains("CaUsedAsEndEntity") {
        Some("the daemon's certificate is a CA certificate (what `openssl req -x509` makes unless told otherwise), which the CLI does not accept as a server's; make the daemon one it accepts with: openssl req -x509 -newkey rsa:2048 -nodes -days 365 -keyout key.pem -out cert.pem -subj /CN=HOST -addext subjectAltName=DNS:HOST -addext basicConstraints=critical,CA:FALSE (see docs/src/operations/security.md, TLS)")
    } else if chain.contains("Expired") {
        Some("the daemon's certificate has expired; give stratad a new one")
    } else if chain.contains("NotValidForName") {
        Some("the daemon's certificate does not name the host in --addr; add it with -addext subjectAltName=DNS:HOST,IP:ADDR")
    } else if chain.contains("UnknownIssuer") {
        Some("the daemon's certificate is not trusted; pass it (or its CA) with --tls-ca FILE")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_errors_keep_code_and_message() {
        let err = ClientError::from(tonic::Status::not_found("no run matches 'abc'"));
        assert_eq!(err.code(), tonic::Code::NotFound);
        assert_eq!(err.to_string(), "no run matches 'abc'");
        assert!(err.status().is_some());
        assert!(!err.is_connection_error(), "a status sent by the daemon");
        let empty = ClientError::from(tonic::Status::new(tonic::Code::Internal, ""));
        assert!(!empty.to_string().is_empty());
    }
}
