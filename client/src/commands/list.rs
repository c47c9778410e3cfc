//! `strata list`: a table, newest first as the daemon returns them.

use strata_client::Client;
use strata_proto::ListRunsRequest;

use crate::cli::ListArgs;
use crate::exit::{CliError, Exit};
use crate::json;
use crate::output::{note, Out};
use crate::render::list::list_table;

pub async fn run(
    client: &Client,
    args: ListArgs,
    as_json: bool,
    out: &mut Out,
) -> Result<Exit, CliError> {
    let request = ListRunsRequest {
        status: args.status.map_or(0, |status| status as i32),
        tag: args.tag.unwrap_or_default(),
        limit: args.limit.unwrap_or(0),
        verdict: args.verdict.map_or(0, |verdict| verdict as i32),
        sweep: args.sweep.unwrap_or_default(),
    };
    let response = client.list_runs(request).await?;
    if as_json {
        out.json(&json::list(&response))?;
    } else if response.runs.is_empty() {
        // On stderr, so that scripts counting lines of stdout count runs.
        note("no runs");
    } else {
        out.line(&list_table(&response.runs))?;
    }
    Ok(Exit::Success)
}
