//! `strata`: the command-line client of `stratad`. This file parses the command line and hands
//! it to the command's module in `commands/`.
//!
//! Exit codes: 0 success; 2 usage error (bad flags, or a config the daemon rejects);
//! 3 a watched run ended failed, diverged or cancelled; 1 anything else, with one
//! `error: ...` line on stderr.
//!
//! The binary's modules: `cli` (flags), `commands` (one per command), `render` (text and
//! pictures for people), `json` (`--json` shapes), `export` and `tensorboard` (what `strata
//! export` writes; `tfrecord` frames TensorBoard's files), `sweep` (a sweep's trials expanded,
//! driven over the daemons and ranked), `output` (stdout and stderr), `exit` (exit codes). The
//! connection to the daemons is the `strata_client` library (`clients/rust/`).

mod cli;
mod commands;
mod exit;
mod export;
#[cfg(test)]
mod fixtures;
mod json;
mod output;
mod render;
mod sweep;
mod tensorboard;
mod tfrecord;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, Command};
use crate::exit::{CliError, Exit};
use crate::output::{note, Out};

// One thread is plenty for a client making one call at a time, and starts faster.
#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    // Clap prints its own usage errors and exits 2 (0 for --help and --version).
    let cli = Cli::parse();
    if let Err(err) = cli.check() {
        err.exit();
    }
    // The address a "cannot reach" message names: the one daemon's (errors from one of several
    // name their own).
    let addr = match cli.global.addr.as_slice() {
        [] => commands::DEFAULT_ADDR.to_string(),
        addrs => addrs.join(", "),
    };
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
    let out = &mut Out::new();
    // Completions need no daemon.
    if let Command::Completions(args) = &cli.command {
        return commands::completions::run(args.shell, out);
    }
    // Sync connects to the daemon each spool names, unless --addr names one.
    if let Command::Sync(args) = &cli.command {
        return commands::sync::run(&cli.global, args, as_json, out).await;
    }
    let fleet = commands::connect(commands::daemon_specs(&cli.global)?).await?;
    let fleet = &fleet;
    let result = match cli.command {
        Command::Start(args) => commands::start::run(fleet, *args, as_json, out).await,
        Command::Watch(args) => commands::watch::run(fleet, args, as_json, out).await,
        Command::Show(args) => commands::show::run(fleet, args, as_json, out).await,
        Command::Compare(args) => commands::compare::run(fleet, args, as_json, out).await,
        Command::Export(args) => commands::export::run(fleet, args, as_json, out).await,
        Command::List(args) => commands::list::run(fleet, args, as_json, out).await,
        Command::Cancel(args) => commands::cancel::run(fleet, args, as_json, out).await,
        Command::Resume(args) => commands::resume::run(fleet, args, as_json, out).await,
        Command::Delete(args) => commands::delete::run(fleet, args, as_json, out).await,
        Command::LrFind(args) => commands::lr_find::run(fleet, *args, as_json, out).await,
        Command::Info => commands::info::run(fleet, as_json, out).await,
        Command::Workers => commands::workers::run(fleet, as_json, out).await,
        Command::Sweep(args) => commands::sweep::run(fleet, *args, as_json, out).await,
        Command::Completions(_) | Command::Sync(_) => unreachable!("answered before connecting"),
    };
    // After the answer, before any error line: which daemons it is missing.
    commands::warn_unreachable(fleet);
    result
}
