//! `strata cancel`: stops a queued or running run.

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
        .cancel_run(&args.run)
        .await
        .map_err(failed_at(client))?;
    if as_json {
        out.json(&json::cancel(&response, &args.run))?;
    } else {
        let id = response
            .run
            .as_ref()
            .map_or(args.run.as_str(), |run| run.id.as_str());
        out.line(&format!("cancelled {id}"))?;
    }
    Ok(Exit::Success)
}
