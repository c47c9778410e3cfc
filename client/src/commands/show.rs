//! `strata show`: the run, its epochs and the daemon's analysis; `--plot` draws its curves.

use strata_client::Fleet;

use crate::cli::{thresholds, ShowArgs};
use crate::commands::{with_daemon, write_plot};
use crate::exit::{CliError, Exit};
use crate::json;
use crate::output::Out;
use crate::render::format::run_label;
use crate::render::plot::RunCurves;
use crate::render::run::show;

pub async fn run(
    fleet: &Fleet,
    args: ShowArgs,
    as_json: bool,
    out: &mut Out,
) -> Result<Exit, CliError> {
    let found = fleet
        .find_run(&args.run, thresholds(&args.thresholds))
        .await?;
    let response = found.run;
    if as_json {
        let shown = json::show(&response);
        out.json(&with_daemon(fleet, shown, Some(&found.daemon.name)))?;
    } else {
        out.line(&show(&response))?;
    }
    if let Some(path) = &args.plot {
        let run = response.run.clone().unwrap_or_default();
        let title = format!(
            "Run {}: training (dashed) and validation (solid) loss",
            run_label(&run)
        );
        write_plot(
            path,
            &title,
            &[RunCurves::of(run_label(&run), &response.epochs)],
        )?;
    }
    Ok(Exit::Success)
}
