//! `strata compare`: the runs side by side, best first, with the daemon's verdicts; `--plot`
//! draws every run's curves.

use strata_client::Client;

use crate::cli::{thresholds, CompareArgs};
use crate::commands::write_plot;
use crate::exit::{CliError, Exit};
use crate::json;
use crate::output::Out;
use crate::render::analysis::compare;
use crate::render::format::run_label;
use crate::render::plot::RunCurves;

pub async fn run(
    client: &Client,
    args: CompareArgs,
    as_json: bool,
    out: &mut Out,
) -> Result<Exit, CliError> {
    let response = client
        .compare_runs(&args.runs, thresholds(&args.thresholds))
        .await?;
    if as_json {
        out.json(&json::compare(&response))?;
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
