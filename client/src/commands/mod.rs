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
pub mod watch;

use std::path::Path;

use strata_client::Client;

use crate::cli::GlobalArgs;
use crate::exit::CliError;
use crate::output::note;
use crate::render::plot::{plot_file, RunCurves};

/// Connects to the daemon the global flags name, with their token and CA certificate.
pub async fn connect(global: GlobalArgs) -> Result<Client, CliError> {
    let GlobalArgs {
        addr,
        token,
        tls_ca,
        json: _,
    } = global;
    let tls_ca = match &tls_ca {
        Some(path) => Some(std::fs::read(path).map_err(|e| {
            CliError::Failed(format!("--tls-ca: cannot read {}: {e}", path.display()))
        })?),
        None => None,
    };
    Ok(Client::connect_with(&addr, token, tls_ca).await?)
}

/// Draws `curves` to `path` for `--plot`, and says so on stderr (stdout stays the command's
/// output).
fn write_plot(path: &Path, title: &str, curves: &[RunCurves]) -> Result<(), CliError> {
    plot_file(path, title, curves).map_err(CliError::Failed)?;
    note(&format!("wrote {}", path.display()));
    Ok(())
}
