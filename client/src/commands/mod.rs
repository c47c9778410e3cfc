//! One module per `strata` command: each makes its calls to the daemon, hands the answer to
//! `render` (people) or `json` (`--json`), and says how the command ends.

pub mod cancel;
pub mod compare;
pub mod completions;
pub mod delete;
pub mod export;
pub mod info;
pub mod list;
pub mod lr_find;
pub mod resume;
pub mod show;
pub mod start;
pub mod sweep;
pub mod sync;
pub mod watch;
pub mod workers;

use std::path::Path;

use serde_json::{json, Value};
use strata_client::fleet::{default_daemons_file, read_daemons_file, FindRunError, Unreachable};
use strata_client::{Client, DaemonSpec, Fleet};

use crate::cli::GlobalArgs;
use crate::exit::CliError;
use crate::output::note;
use crate::render::plot::{plot_file, RunCurves};

/// The daemon `strata` talks to when nothing names one.
pub const DEFAULT_ADDR: &str = "http://127.0.0.1:50051";

/// The daemons the global flags name: every `--addr`, and the daemons file's (`--daemons`, or
/// the default file when neither is given), else [`DEFAULT_ADDR`].
pub fn daemon_specs(global: &GlobalArgs) -> Result<Vec<DaemonSpec>, CliError> {
    let GlobalArgs {
        addr,
        daemons,
        token,
        tls_ca,
        json: _,
    } = global;
    let tls_ca = match tls_ca {
        Some(path) => Some(std::fs::read(path).map_err(|e| {
            CliError::Failed(format!("--tls-ca: cannot read {}: {e}", path.display()))
        })?),
        None => None,
    };
    let mut specs: Vec<DaemonSpec> = addr
        .iter()
        .filter(|addr| !addr.trim().is_empty())
        .map(|addr| DaemonSpec::from_addr(addr, token.clone(), tls_ca.clone()))
        .collect();
    let file = match daemons {
        Some(path) => Some(path.clone()),
        None if specs.is_empty() => default_daemons_file().filter(|path| path.is_file()),
        None => None,
    };
    if let Some(path) = file {
        specs.extend(
            read_daemons_file(&path, token.as_deref(), tls_ca.as_deref())
                .map_err(CliError::Usage)?,
        );
    }
    if specs.is_empty() {
        specs.push(DaemonSpec::from_addr(DEFAULT_ADDR, token.clone(), tls_ca));
    }
    Ok(specs)
}

/// Connects to the daemons `specs` name. One daemon is connected to as it always was (failing to
/// reach it is the command's error); several at once, and the command goes on with those that
/// answered unless none did.
pub async fn connect(specs: Vec<DaemonSpec>) -> Result<Fleet, CliError> {
    if let [spec] = specs.as_slice() {
        if !spec.is_dns() {
            let client =
                Client::connect_with(&spec.addr, spec.token.clone(), spec.tls_ca.clone()).await?;
            return Ok(Fleet::single(spec.name.clone(), client));
        }
    }
    let fleet = Fleet::connect(specs).await;
    if fleet.is_empty() {
        let reasons: Vec<String> = fleet
            .unreachable()
            .iter()
            .map(|u| format!("{} ({})", u.name, u.reason))
            .collect();
        return Err(CliError::Failed(match reasons.as_slice() {
            [one] => one.clone(),
            _ => format!("cannot reach any daemon: {}", reasons.join("; ")),
        }));
    }
    Ok(fleet)
}

/// One line on stderr per daemon that could not be asked.
pub fn warn_unreachable(fleet: &Fleet) {
    for Unreachable { name, reason, .. } in fleet.unreachable() {
        note(&format!(
            "warning: daemon {name} could not be asked, its runs are left out: {reason}"
        ));
    }
}

/// `--json`'s `"unreachable"`: `[{"daemon","addr","error"}]`.
pub fn unreachable_json(fleet: &Fleet) -> Value {
    Value::Array(
        fleet
            .unreachable()
            .into_iter()
            .map(|u| json!({ "daemon": u.name, "addr": u.addr, "error": u.reason }))
            .collect(),
    )
}

/// Adds `"daemon": NAME` (and the top-level `"unreachable"` list, for an object answering for
/// every daemon) to a `--json` object when several daemons are configured; with one, the object
/// stays as it always was.
pub fn with_daemon(fleet: &Fleet, mut value: Value, daemon: Option<&str>) -> Value {
    if fleet.is_several() {
        if let Value::Object(object) = &mut value {
            match daemon {
                Some(name) => object.insert("daemon".into(), name.into()),
                None => object.insert("unreachable".into(), unreachable_json(fleet)),
            };
        }
    }
    value
}

/// The client of the daemon that has run `run` (an id or unique prefix). With one daemon that
/// is the daemon, unasked: its own answer to the command says whether the run exists.
pub async fn locate<'a>(fleet: &'a Fleet, run: &str) -> Result<&'a Client, CliError> {
    if let [daemon] = fleet.daemons() {
        return Ok(&daemon.client);
    }
    Ok(&fleet.find_run(run, None).await?.daemon.client)
}

/// A failed call to `client`'s daemon, reported with that daemon's address (one of several).
pub fn failed_at(client: &Client) -> impl FnOnce(strata_client::ClientError) -> CliError + '_ {
    move |error| CliError::OnDaemon {
        addr: client.addr().to_string(),
        error,
    }
}

/// What [`Fleet::ask_all`] returns when a daemon answered no.
impl From<(strata_client::fleet::Daemon, strata_client::ClientError)> for CliError {
    fn from((daemon, error): (strata_client::fleet::Daemon, strata_client::ClientError)) -> Self {
        CliError::OnDaemon {
            addr: daemon.client.addr().to_string(),
            error,
        }
    }
}

impl From<FindRunError> for CliError {
    fn from(err: FindRunError) -> Self {
        match err {
            FindRunError::Daemon { daemon, error } => CliError::OnDaemon {
                addr: daemon.client.addr().to_string(),
                error,
            },
            other => CliError::Failed(other.to_string()),
        }
    }
}

/// Draws `curves` to `path` for `--plot`, and says so on stderr (stdout stays the command's
/// output).
fn write_plot(path: &Path, title: &str, curves: &[RunCurves]) -> Result<(), CliError> {
    plot_file(path, title, curves).map_err(CliError::Failed)?;
    note(&format!("wrote {}", path.display()));
    Ok(())
}
