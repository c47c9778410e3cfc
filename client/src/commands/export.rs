//! `strata export`: every epoch and group record, as CSV or JSON to stdout or `--output`, or
//! runs as TensorBoard event files under the `--output` folder.

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use strata_client::Fleet;
use strata_proto::GetRunResponse;

use crate::cli::{ExportArgs, ExportFormat};
use crate::commands::{failed_at, locate};
use crate::exit::{CliError, Exit};
use crate::export;
use crate::output::{note, Out};
use crate::tensorboard;

pub async fn run(
    fleet: &Fleet,
    args: ExportArgs,
    as_json: bool,
    out: &mut Out,
) -> Result<Exit, CliError> {
    let to_text: fn(&GetRunResponse) -> String = match args.format(as_json) {
        ExportFormat::Csv => |response| export::csv(&response.epochs),
        ExportFormat::Json => export::json,
        ExportFormat::Tensorboard => {
            // `Cli::check` made sure of the folder.
            let dir = args.output.as_deref().unwrap_or(Path::new("."));
            return write_tensorboard(fleet, &args.runs, dir).await;
        }
    };
    // `Cli::check` made sure of one run.
    let client = locate(fleet, &args.runs[0]).await?;
    let response = client
        .get_run_every_epoch(&args.runs[0])
        .await
        .map_err(failed_at(client))?;
    let text = to_text(&response);
    match &args.output {
        Some(path) => {
            std::fs::write(path, text).map_err(|e| cannot_write(path, e))?;
            note(&format!(
                "wrote {} epochs to {}",
                response.epochs.len(),
                path.display()
            ));
        }
        None => out.text(&text)?,
    }
    Ok(Exit::Success)
}

/// One event file per run, each in its own folder under `dir`; an earlier export's file for the
/// run is replaced, so TensorBoard does not draw its points twice.
async fn write_tensorboard(fleet: &Fleet, runs: &[String], dir: &Path) -> Result<Exit, CliError> {
    // Every run is fetched before anything is written: a wrong id leaves the folder as it was.
    let mut responses: Vec<GetRunResponse> = Vec::with_capacity(runs.len());
    for run in runs {
        let client = locate(fleet, run).await?;
        let response = client
            .get_run_every_epoch(run)
            .await
            .map_err(failed_at(client))?;
        // Two prefixes of one run export it once.
        let id = |r: &GetRunResponse| r.run.as_ref().map(|run| run.id.clone());
        if !responses.iter().any(|r| id(r) == id(&response)) {
            responses.push(response);
        }
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let file_name = tensorboard::event_file_name(now.as_secs(), &tensorboard::host_name());
    for response in &responses {
        let run = response.run.clone().unwrap_or_default();
        let folder = dir.join(tensorboard::run_folder_name(&run));
        std::fs::create_dir_all(&folder).map_err(|e| cannot_write(&folder, e))?;
        remove_earlier_exports(&folder)?;
        let path = folder.join(&file_name);
        let bytes = tensorboard::event_file(&run, &response.epochs, now.as_secs_f64());
        std::fs::write(&path, bytes).map_err(|e| cannot_write(&path, e))?;
        note(&format!(
            "wrote {} epochs of {} to {}",
            response.epochs.len(),
            run.id,
            path.display()
        ));
    }
    note(&format!(
        "view them with: tensorboard --logdir {}",
        dir.display()
    ));
    Ok(Exit::Success)
}

/// Removes the event files an earlier export wrote into a run's folder (and nothing else).
fn remove_earlier_exports(folder: &Path) -> Result<(), CliError> {
    let entries = std::fs::read_dir(folder).map_err(|e| cannot_write(folder, e))?;
    for entry in entries.flatten() {
        let path = entry.path();
        if tensorboard::is_strata_event_file(&path) && path.is_file() {
            std::fs::remove_file(&path)
                .map_err(|e| CliError::Failed(format!("cannot replace {}: {e}", path.display())))?;
        }
    }
    Ok(())
}

fn cannot_write(path: &Path, err: std::io::Error) -> CliError {
    CliError::Failed(format!("cannot write {}: {err}", path.display()))
}
