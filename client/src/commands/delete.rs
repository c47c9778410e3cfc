//! `strata delete`: deletes a finished run with its epochs and checkpoints.

use strata_client::Fleet;

use crate::cli::RunArg;
use crate::commands::{failed_at, locate};
use crate::exit::{CliError, Exit};
use crate::json;
use crate::output::Out;

pub async fn run(
    fleet: &Fleet,
    args: RunArg,
    as_json: bool,
    out: &mut Out,
) -> Result<Exit, CliError> {
    let client = locate(fleet, &args.run).await?;
    let response = client
        .delete_run(&args.run)
        .await
        .map_err(failed_at(client))?;
    if as_json {
        out.json(&json::delete(&response))?;
    } else {
        out.line(&format!("deleted {}", response.run_id))?;
    }
    Ok(Exit::Success)
}
