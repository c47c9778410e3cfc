//! How a command ends: its exit code and the one line it prints on stderr.

use std::io;

use strata_client::ClientError;
use tonic::Code;

/// How a command that did its job ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Exit 0.
    Success,
    /// Exit 3: the watched run ended failed, diverged or cancelled (already reported on stdout).
    RunEndedBadly,
}

impl Exit {
    pub fn code(self) -> u8 {
        match self {
            Exit::Success => 0,
            Exit::RunEndedBadly => 3,
        }
    }
}

/// Why a command could not do its job.
#[derive(Debug)]
pub enum CliError {
    /// Anything else: exit 1.
    Failed(String),
    /// A usage error found after parsing (a daemons file that does not say what it must, a
    /// daemon name no one configured, a sweep's values): exit 2.
    Usage(String),
    /// A call to the daemon failed; mapped by its gRPC code in [`CliError::report`] (a config
    /// the daemon rejects is a usage error, exit 2, like clap's own).
    Client(ClientError),
    /// A call to the daemon at `addr`, one of several, failed: reported as [`CliError::Client`]
    /// with that daemon's address.
    OnDaemon { addr: String, error: ClientError },
    /// Stdout was closed (`strata list | head`): stop quietly, as other Unix tools do.
    BrokenPipe,
    /// The user pressed Ctrl-C while watching: exit 130, the shell convention for SIGINT.
    CtrlC,
}

impl From<ClientError> for CliError {
    fn from(err: ClientError) -> Self {
        CliError::Client(err)
    }
}

impl From<io::Error> for CliError {
    fn from(err: io::Error) -> Self {
        if err.kind() == io::ErrorKind::BrokenPipe {
            CliError::BrokenPipe
        } else {
            CliError::Failed(format!("cannot write output: {err}"))
        }
    }
}

impl CliError {
    /// The exit code, and the message for `error: ...` on stderr (none for a quiet exit).
    /// `addr` is the daemon address the user gave, for the "cannot reach" message.
    pub fn report(self, addr: &str) -> (u8, Option<String>) {
        match self {
            CliError::BrokenPipe => (0, None),
            CliError::CtrlC => (130, None),
            CliError::Failed(message) => (1, Some(one_line(&message))),
            CliError::Usage(message) => (2, Some(one_line(&message))),
            CliError::OnDaemon { addr, error } => CliError::Client(error).report(&addr),
            CliError::Client(err) => {
                let message = one_line(&err.to_string());
                match err.code() {
                    // A failed connect already says where and why.
                    _ if matches!(err, ClientError::Connect { .. }) => (1, Some(message)),
                    // A call whose transport broke before or during it: the daemon is gone.
                    Code::Unavailable if err.status().is_some() => (
                        1,
                        Some(format!("cannot reach stratad at {addr} (is it running?)")),
                    ),
                    _ if err.is_connection_error() => (
                        1,
                        Some(format!(
                            "lost the connection to stratad at {addr}: {message}"
                        )),
                    ),
                    // The daemon validates specs; its rejection is the user's usage error.
                    Code::InvalidArgument => (2, Some(message)),
                    Code::Unauthenticated => {
                        (1, Some(format!("{message} (set --token or STRATA_TOKEN)")))
                    }
                    _ => (1, Some(message)),
                }
            }
        }
    }
}

/// A message on one line: the CLI's contract is exactly one line of error on stderr.
fn one_line(message: &str) -> String {
    let parts: Vec<&str> = message
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .collect();
    if parts.is_empty() {
        "unknown error".to_string()
    } else {
        parts.join("; ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(code: Code, message: &str) -> CliError {
        CliError::Client(ClientError::from(tonic::Status::new(code, message)))
    }

    #[test]
    fn server_codes_map_to_exit_codes() {
        let (code, message) = status(
            Code::InvalidArgument,
            "layer_lr: rule 'x=1' matches no parameter",
        )
        .report("a");
        assert_eq!(
            (code, message.as_deref()),
            (2, Some("layer_lr: rule 'x=1' matches no parameter"))
        );
        let (code, message) = status(Code::NotFound, "no run matches 'ff'").report("a");
        assert_eq!((code, message.as_deref()), (1, Some("no run matches 'ff'")));
        let (code, message) = status(Code::Unavailable, "transport error").report("h:1");
        assert_eq!(
            (code, message.as_deref()),
            (1, Some("cannot reach stratad at h:1 (is it running?)"))
        );
    }

    #[test]
    fn messages_are_one_line() {
        let (_, message) = CliError::Failed("first\n\n  second\n".into()).report("a");
        assert_eq!(message.as_deref(), Some("first; second"));
    }

    #[test]
    fn broken_pipe_is_quiet() {
        let err = CliError::from(io::Error::from(io::ErrorKind::BrokenPipe));
        assert_eq!(err.report("a"), (0, None));
    }
}
