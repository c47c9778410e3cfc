//! `strata start`: prints only the run id (for `id=$(strata start ...)`), the resolved rate
//! table for `--dry-run`, and goes on watching with `--follow`.

use strata_client::fleet::most_free;
use strata_client::{Client, Fleet};
use strata_proto::StartRunRequest;

use crate::cli::StartArgs;
use crate::commands::watch::follow;
use crate::commands::with_daemon;
use crate::exit::{CliError, Exit};
use crate::json;
use crate::output::{note, Out};
use crate::render::rates::parameter_table;
use crate::render::run::task_line;

pub async fn run(
    fleet: &Fleet,
    args: StartArgs,
    as_json: bool,
    out: &mut Out,
) -> Result<Exit, CliError> {
    let (daemon, client) = place(fleet, args.on.as_deref()).await?;
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
    if fleet.is_several() && !as_json {
        note(&format!("started on {daemon}"));
    }
    if as_json {
        out.json(&with_daemon(fleet, json::start(&response), Some(daemon)))?;
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

/// The daemon a new run goes to: the one `--on` names, else the one with the most free slots
/// (the only one, unasked, when there is one).
pub(crate) async fn place<'a>(
    fleet: &'a Fleet,
    on: Option<&str>,
) -> Result<(&'a str, &'a Client), CliError> {
    if let Some(name) = on {
        if let Some(daemon) = fleet.daemon(name) {
            return Ok((&daemon.name, &daemon.client));
        }
        if let Some(lost) = fleet.unreachable().into_iter().find(|u| u.name == name) {
            return Err(CliError::Failed(format!(
                "--on {name}: that daemon could not be reached: {}",
                lost.reason
            )));
        }
        let names: Vec<&str> = fleet.daemons().iter().map(|d| d.name.as_str()).collect();
        return Err(CliError::Usage(format!(
            "--on {name}: no daemon has that name; the daemons are {}",
            names.join(", ")
        )));
    }
    if let [only] = fleet.daemons() {
        return Ok((&only.name, &only.client));
    }
    let infos = fleet.server_infos().await?;
    let daemon = most_free(&infos)
        .ok_or_else(|| CliError::Failed("no daemon answered to take the run".into()))?;
    Ok((&daemon.name, &daemon.client))
}
