//! `strata list`: a table, newest first; with several daemons, every daemon's runs merged by
//! creation time, with the daemon of each.

use strata_client::Fleet;
use strata_proto::{ListRunsRequest, ListRunsResponse, Run};

use crate::cli::ListArgs;
use crate::commands::with_daemon;
use crate::exit::{CliError, Exit};
use crate::json;
use crate::output::{note, Out};
use crate::render::list::list_table;

pub async fn run(
    fleet: &Fleet,
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
    let limit = request.limit as usize;
    let answers = fleet
        .ask_all(move |client| {
            let request = request.clone();
            async move { client.list_runs(request).await }
        })
        .await?;
    let several_answered = answers.len() > 1;
    let mut runs: Vec<(String, Run)> = answers
        .into_iter()
        .flat_map(|(daemon, answer)| {
            let name = daemon.name.clone();
            answer.runs.into_iter().map(move |run| (name.clone(), run))
        })
        .collect();
    // One daemon's order is its own (newest first); several merge by creation time, each
    // daemon's order kept among equals (a stable sort), then keep the newest `limit`.
    if several_answered {
        runs.sort_by_key(|(_, run)| std::cmp::Reverse(run.created_at_ms));
        if limit > 0 {
            runs.truncate(limit);
        }
    }
    let (daemons, runs): (Vec<String>, Vec<Run>) = runs.into_iter().unzip();
    if as_json {
        let mut value = with_daemon(fleet, json::list(&ListRunsResponse { runs }), None);
        if let Some(shown) = value.get_mut("runs").and_then(|runs| runs.as_array_mut()) {
            for (run, daemon) in shown.iter_mut().zip(&daemons) {
                *run = with_daemon(fleet, run.take(), Some(daemon));
            }
        }
        out.json(&value)?;
    } else if runs.is_empty() {
        // On stderr, so that scripts counting lines of stdout count runs.
        note("no runs");
    } else {
        let daemon_column = fleet.is_several().then_some(daemons.as_slice());
        out.line(&list_table(&runs, daemon_column))?;
        // Why a run waits, when no worker can take it: on stderr, after the table.
        for run in &runs {
            if run.waiting.starts_with("no connected worker")
                || run.waiting.starts_with("waits for a remote worker")
            {
                note(&format!("{} {}", run.id, run.waiting));
            }
        }
    }
    Ok(Exit::Success)
}
