//! `strata`: the command-line client of `stratad`.
//!
//! Exit codes: 0 success; 2 usage error (bad flags, or a config the daemon rejects);
//! 3 a watched run ended failed, diverged or cancelled; 1 anything else, with one
//! `error: ...` line on stderr.

mod cli;
mod exit;
mod export;
#[cfg(test)]
mod fixtures;
mod json;
mod output;
mod render;
mod watch;

use std::process::ExitCode;

use clap::Parser;
use strata_client::Client;
use strata_proto::{ListRunsRequest, StartRunRequest};

use crate::cli::{
    Cli, Command, CompareArgs, ExportArgs, ExportFormat, ListArgs, ShowArgs, StartArgs,
};
use crate::exit::{CliError, Exit};
use crate::output::{note, Out};
use crate::render::format::run_label;
use crate::render::plot::{plot_file, RunCurves};

// One thread is plenty for a client making one call at a time, and starts faster.
#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    // Clap prints its own usage errors and exits 2 (0 for --help and --version).
    let cli = Cli::parse();
    let addr = cli.global.addr.clone();
    match run(cli).await {
        Ok(exit) => ExitCode::from(exit.code()),
        Err(err) => {
            let (code, message) = err.report(&addr);
            if let Some(message) = message {
                note(&format!("error: {message}"));
            }
            ExitCode::from(code)
        }
    }
}

async fn run(cli: Cli) -> Result<Exit, CliError> {
    let as_json = cli.global.json;
    let tls_ca = match &cli.global.tls_ca {
        Some(path) => Some(std::fs::read(path).map_err(|e| {
            CliError::Failed(format!("--tls-ca: cannot read {}: {e}", path.display()))
        })?),
        None => None,
    };
    let client = Client::connect_with(&cli.global.addr, cli.global.token, tls_ca).await?;
    let mut out = Out::new();
    match cli.command {
        Command::Start(args) => start(&client, *args, as_json, &mut out).await,
        Command::Watch(args) => {
            watch::watch(&client, &args.run, args.from_epoch, as_json, &mut out).await
        }
        Command::Show(args) => show(&client, args, as_json, &mut out).await,
        Command::Compare(args) => compare(&client, args, as_json, &mut out).await,
        Command::Export(args) => export(&client, args, as_json, &mut out).await,
        Command::List(args) => list(&client, args, as_json, &mut out).await,
        Command::Cancel(args) => {
            let response = client.cancel_run(&args.run).await?;
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
        Command::Resume(args) => {
            let response = client
                .resume_run(&args.run, args.epochs.unwrap_or(0))
                .await?;
            let id = response
                .run
                .as_ref()
                .map_or(args.run.clone(), |run| run.id.clone());
            if args.follow {
                return watch::watch(&client, &id, 0, as_json, &mut out).await;
            }
            // The reason says where it resumes from (an older checkpoint, if the newest was
            // damaged).
            let reason = response.run.as_ref().map_or("", |run| run.reason.as_str());
            if as_json {
                out.json(
                    &serde_json::json!({ "run_id": id, "status": "queued", "reason": reason }),
                )?;
            } else if reason.is_empty() {
                out.line(&format!("resumed {id}"))?;
            } else {
                out.line(&format!("resumed {id}: {reason}"))?;
            }
            Ok(Exit::Success)
        }
        Command::Delete(args) => {
            let response = client.delete_run(&args.run).await?;
            if as_json {
                out.json(&serde_json::json!({ "run_id": response.run_id, "deleted": true }))?;
            } else {
                out.line(&format!("deleted {}", response.run_id))?;
            }
            Ok(Exit::Success)
        }
        Command::Info => {
            let info = client.server_info().await?;
            if as_json {
                out.json(&json::server_info(&info))?;
            } else {
                out.line(&render::info::server_info(&info))?;
            }
            Ok(Exit::Success)
        }
    }
}

/// `strata start`: prints only the run id (for `id=$(strata start ...)`), the resolved rate
/// table for `--dry-run`, and goes on watching with `--follow`.
async fn start(
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
    };
    let response = client.start_run(request).await?;
    if args.dry_run {
        if as_json {
            out.json(&json::dry_run(&response))?;
        } else {
            out.line(&render::rates::parameter_table(&response.parameters))?;
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
    }
    if args.follow {
        return watch::watch(client, &response.run_id, 0, as_json, out).await;
    }
    Ok(Exit::Success)
}

/// `strata list`: a table, newest first as the daemon returns them.
async fn list(
    client: &Client,
    args: ListArgs,
    as_json: bool,
    out: &mut Out,
) -> Result<Exit, CliError> {
    let request = ListRunsRequest {
        status: args.status.map_or(0, |status| status as i32),
        tag: args.tag.unwrap_or_default(),
        limit: args.limit.unwrap_or(0),
        verdict: args
            .verdict
            .map_or(String::new(), |verdict| verdict.label().to_string()),
    };
    let response = client.list_runs(request).await?;
    if as_json {
        out.json(&json::list(&response))?;
    } else if response.runs.is_empty() {
        // On stderr, so that scripts counting lines of stdout count runs.
        note("no runs");
    } else {
        out.line(&render::list::list_table(&response.runs))?;
    }
    Ok(Exit::Success)
}

/// Draws `curves` to `path`, and says so on stderr (stdout stays the command's output).
fn write_plot(path: &std::path::Path, title: &str, curves: &[RunCurves]) -> Result<(), CliError> {
    plot_file(path, title, curves).map_err(CliError::Failed)?;
    note(&format!("wrote {}", path.display()));
    Ok(())
}

/// `strata show`: the run, its epochs and the daemon's analysis; `--plot` draws its curves.
async fn show(
    client: &Client,
    args: ShowArgs,
    as_json: bool,
    out: &mut Out,
) -> Result<Exit, CliError> {
    let response = client
        .get_run_with(&args.run, cli::thresholds(&args.thresholds))
        .await?;
    if as_json {
        out.json(&json::show(&response))?;
    } else {
        out.line(&render::run::show(&response))?;
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

/// `strata compare`: the runs side by side, best first, with the daemon's verdicts.
async fn compare(
    client: &Client,
    args: CompareArgs,
    as_json: bool,
    out: &mut Out,
) -> Result<Exit, CliError> {
    let response = client
        .compare_runs(&args.runs, cli::thresholds(&args.thresholds))
        .await?;
    if as_json {
        out.json(&json::compare(&response))?;
    } else {
        out.line(&render::analysis::compare(&response))?;
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

/// `strata export`: every epoch and group record, as CSV or JSON, to stdout or `--output`.
async fn export(
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
