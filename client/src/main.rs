//! `strata`: the command-line client of `stratad`.
//!
//! Exit codes: 0 success; 2 usage error (bad flags, or a config the daemon rejects);
//! 3 a watched run ended failed, diverged or cancelled; 1 anything else, with one
//! `error: ...` line on stderr.

mod cli;
mod error;
mod output;
mod watch;

use std::process::ExitCode;

use clap::Parser;
use strata_client::{json, render, Client};
use strata_proto::{ListRunsRequest, StartRunRequest};

use crate::cli::{Cli, Command, ListArgs, StartArgs};
use crate::error::{CliError, Exit};
use crate::output::{note, Out};

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
        Command::Show(args) => {
            let response = client.get_run(&args.run).await?;
            if as_json {
                out.json(&json::show(&response))?;
            } else {
                out.line(&render::show(&response))?;
            }
            Ok(Exit::Success)
        }
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
            if as_json {
                out.json(&serde_json::json!({ "run_id": id, "status": "queued" }))?;
            } else {
                out.line(&format!("resumed {id}"))?;
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
                out.line(&render::server_info(&info))?;
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
            out.line(&render::parameter_table(&response.parameters))?;
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
        verdict: String::new(),
    };
    let response = client.list_runs(request).await?;
    if as_json {
        out.json(&json::list(&response))?;
    } else if response.runs.is_empty() {
        // On stderr, so that scripts counting lines of stdout count runs.
        note("no runs");
    } else {
        out.line(&render::list_table(&response.runs))?;
    }
    Ok(Exit::Success)
}
