//! `strata compare`: the runs side by side, best first, with the daemon's verdicts; `--plot`
//! draws every run's curves. Runs on several daemons: each daemon analyses its own, and their
//! answers are merged into one ranking ([`merge_comparisons`]).

use strata_client::fleet::merge_comparisons;
use strata_client::Fleet;
use strata_proto::{AnalysisThresholds, CompareRunsResponse};

use crate::cli::{thresholds, CompareArgs};
use crate::commands::{with_daemon, write_plot};
use crate::exit::{CliError, Exit};
use crate::json;
use crate::output::Out;
use crate::render::analysis::compare;
use crate::render::format::run_label;
use crate::render::plot::RunCurves;

pub async fn run(
    fleet: &Fleet,
    args: CompareArgs,
    as_json: bool,
    out: &mut Out,
) -> Result<Exit, CliError> {
    let thresholds = thresholds(&args.thresholds);
    let (response, daemons) = match fleet.daemons() {
        [only] => {
            let response = only.client.compare_runs(&args.runs, thresholds).await?;
            let daemons = vec![only.name.clone(); response.runs.len()];
            (response, daemons)
        }
        _ => compare_across(fleet, &args.runs, thresholds).await?,
    };
    if as_json {
        let mut value = with_daemon(fleet, json::compare(&response), None);
        if let Some(shown) = value.get_mut("runs").and_then(|runs| runs.as_array_mut()) {
            for (run, daemon) in shown.iter_mut().zip(&daemons) {
                *run = with_daemon(fleet, run.take(), Some(daemon));
            }
        }
        out.json(&value)?;
    } else {
        out.line(&compare(&response))?;
    }
    if let Some(path) = &args.plot {
        let curves: Vec<RunCurves> = response
            .runs
            .iter()
            .map(|c| {
                let run = c.run.clone().unwrap_or_default();
                RunCurves::of(run_label(&run), &c.epochs)
            })
            .collect();
        let title = format!(
            "Training (dashed) and validation (solid) loss of {} run{}",
            curves.len(),
            if curves.len() == 1 { "" } else { "s" }
        );
        write_plot(path, &title, &curves)?;
    }
    Ok(Exit::Success)
}

/// Finds each run's daemon, has every daemon compare its own runs (in the order the user named
/// them), and merges the answers.
async fn compare_across(
    fleet: &Fleet,
    runs: &[String],
    thresholds: Option<AnalysisThresholds>,
) -> Result<(CompareRunsResponse, Vec<String>), CliError> {
    // (daemon index, the names of its runs), in the order of each daemon's first run.
    let mut per_daemon: Vec<(usize, Vec<String>)> = Vec::new();
    for (run, daemon) in runs.iter().zip(fleet.find_daemons(runs).await?) {
        let index = fleet
            .daemons()
            .iter()
            .position(|d| d.name == daemon.name)
            .unwrap_or(0);
        match per_daemon.iter_mut().find(|(i, _)| *i == index) {
            Some((_, names)) => names.push(run.clone()),
            None => per_daemon.push((index, vec![run.clone()])),
        }
    }
    let mut answers = Vec::with_capacity(per_daemon.len());
    for (index, names) in per_daemon {
        let daemon = &fleet.daemons()[index];
        let answer = daemon
            .client
            .compare_runs(&names, thresholds)
            .await
            .map_err(|error| (daemon.clone(), error))?;
        answers.push((daemon.name.clone(), answer));
    }
    Ok(merge_comparisons(answers))
}
