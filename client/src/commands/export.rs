//! `strata export`: every epoch and group record, as CSV or JSON, to stdout or `--output`.

use strata_client::Client;

use crate::cli::{ExportArgs, ExportFormat};
use crate::exit::{CliError, Exit};
use crate::export;
use crate::output::{note, Out};

pub async fn run(
    client: &Client,
    args: ExportArgs,
    as_json: bool,
    out: &mut Out,
) -> Result<Exit, CliError> {
    let response = client.get_run(&args.run).await?;
    let format = args.format.unwrap_or(if as_json {
        ExportFormat::Json
    } else {
        ExportFormat::Csv
    });
    let text = match format {
        ExportFormat::Csv => export::csv(&response.epochs),
        ExportFormat::Json => export::json(&response),
    };
    match &args.output {
        Some(path) => {
            std::fs::write(path, text)
                .map_err(|e| CliError::Failed(format!("cannot write {}: {e}", path.display())))?;
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
