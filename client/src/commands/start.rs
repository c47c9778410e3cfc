//! `strata start`: prints only the run id (for `id=$(strata start ...)`), the resolved rate
//! table for `--dry-run`, and goes on watching with `--follow`.

use strata_client::Client;
use strata_proto::StartRunRequest;

use crate::cli::StartArgs;
use crate::commands::watch::follow;
use crate::exit::{CliError, Exit};
use crate::json;
use crate::output::{note, Out};
use crate::render::rates::parameter_table;
use crate::render::run::task_line;

pub async fn run(
    client: &Client,
    args: StartArgs,
    as_json: bool,
    out: &mut Out,
) -> Result<Exit, CliError> {
    let request = StartRunRequest {
        config: Some(args.config.to_proto()),
        name: args.name.unwrap_or_default(),
        tags: args.tags,
        dry_run: args.dry_run,
        baseline: args.baseline,
        sweep: None,
    };
    let response = client.start_run(request).await?;
    // On stderr, so that `id=$(strata start ...)` still captures the id alone.
    if !as_json {
        for warning in &response.warnings {
            note(&format!("warning: {warning}"));
        }
    }
    if args.dry_run {
        if as_json {
            out.json(&json::dry_run(&response))?;
        } else {
            if let Some(task) = response.facts.as_ref().and_then(task_line) {
                out.line(&format!("Task  {task}\n"))?;
            }
            out.line(&parameter_table(&response.parameters))?;
        }
        return Ok(Exit::Success);
    }
    if response.run_id.is_empty() {
        return Err(CliError::Failed(
            "stratad accepted the run but returned no run id".into(),
        ));
    }
    if as_json {
        out.json(&json::start(&response))?;
    } else {
        out.line(&response.run_id)?;
        if !response.twin_run_id.is_empty() {
            note(&format!(
                "single-rate twin: {} (queued behind it; `strata show {}` compares them once both have epochs)",
                response.twin_run_id, response.run_id
            ));
        }
    }
    if args.follow {
        return follow(client, &response.run_id, 0, as_json, out).await;
    }
    Ok(Exit::Success)
}
