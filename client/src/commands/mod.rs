//! One module per `strata` command: each makes its calls to the daemon, hands the answer to
//! `render` (people) or `json` (`--json`), and says how the command ends.

pub mod cancel;
pub mod compare;
pub mod completions;
pub mod delete;
pub mod export;
pub mod info;
pub mod list;
pub mod resume;
pub mod show;
pub mod start;
pub mod sweep;
pub mod watch;

use std::path::Path;

use strata_client::Client;

use crate::cli::GlobalArgs;
use crate::exit::CliError;
use crate::output::note;
use crate::render::plot::{plot_file, RunCurves};

/// Connects to the (first) daemon the global flags name, with their token and CA certificate.
pub async fn connect(global: GlobalArgs) -> Result<Client, CliError> {
    let tls_ca = read_tls_ca(&global)?;
    let addr = global.addr.first().cloned().unwrap_or_default();
    Ok(Client::connect_with(&addr, global.token, tls_ca).await?)
}

/// The `--tls-ca` certificate's contents, when one is named.
fn read_tls_ca(global: &GlobalArgs) -> Result<Option<Vec<u8>>, CliError> {
    match &global.tls_ca {
        Some(path) => Ok(Some(std::fs::read(path).map_err(|e| {
            CliError::Failed(format!("--tls-ca: cannot read {}: {e}", path.display()))
        })?)),
        None => Ok(None),
    }
}

/// Connects to every daemon the global flags name: those that answer, named by their address,
/// and for each that does not, its address and why.
pub async fn connect_all(
    global: &GlobalArgs,
) -> Result<(Vec<Client>, Vec<(String, String)>), CliError> {
    let tls_ca = read_tls_ca(global)?;
    let mut clients = Vec::new();
    let mut unreachable = Vec::new();
    for addr in &global.addr {
        match Client::connect_with(addr, global.token.clone(), tls_ca.clone()).await {
            Ok(client) => clients.push(client),
            Err(err) => unreachable.push((addr.clone(), err.to_string())),
        }
    }
    Ok((clients, unreachable))
}

/// Draws `curves` to `path` for `--plot`, and says so on stderr (stdout stays the command's
/// output).
fn write_plot(path: &Path, title: &str, curves: &[RunCurves]) -> Result<(), CliError> {
    plot_file(path, title, curves).map_err(CliError::Failed)?;
    note(&format!("wrote {}", path.display()));
    Ok(())
}
