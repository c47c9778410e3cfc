//! `stratad`: the Strata daemon.

use std::{io::IsTerminal, path::PathBuf, process::ExitCode};

use clap::{Parser, ValueEnum};
use strata_server::daemon::{self, DaemonConfig};
use tracing_subscriber::EnvFilter;

#[derive(Clone, Copy, Debug, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

/// The Strata daemon: trains runs with per-layer learning rates and records every epoch.
#[derive(Parser, Debug)]
#[command(name = "stratad", version)]
struct Args {
    /// Address to serve gRPC on (port 0 picks a free port, printed on start).
    #[arg(long, env = "STRATA_LISTEN", default_value = "127.0.0.1:50051")]
    listen: String,
    /// Where runs, epochs and checkpoints are kept.
    #[arg(long, env = "STRATA_DATA_DIR", default_value = "./strata-data")]
    data_dir: PathBuf,
    /// Runs that train at the same time; the rest wait in a FIFO queue.
    #[arg(long, env = "STRATA_MAX_CONCURRENT_RUNS", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=64))]
    max_concurrent_runs: u32,
    /// libtorch intra-op threads (0: libtorch's default, one per core).
    #[arg(long, env = "STRATA_THREADS", default_value_t = 0)]
    threads: u32,
    /// Log format on stderr (filter with RUST_LOG, default info).
    #[arg(long, env = "STRATA_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    match args.log_format {
        LogFormat::Text => logs.init(),
        LogFormat::Json => logs.json().init(),
    }
    let config = DaemonConfig {
        listen: args.listen,
        data_dir: args.data_dir,
        max_concurrent_runs: args.max_concurrent_runs as usize,
        threads: args.threads as usize,
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("stratad: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let served = runtime.block_on(daemon::run(config, daemon::wait_for_signal(), |addr| {
        // One line on stdout, so scripts and tests that asked for port 0 learn the port.
        println!("stratad listening on {addr}");
    }));
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("stratad: {err}");
            ExitCode::FAILURE
        }
    }
}
