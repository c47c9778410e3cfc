//! `strata-worker`: trains one job for a Strata daemon, then exits. `stratad` starts it, one per
//! run (or range test, or TorchScript check), with a ticket and a token. `strata-worker serve`
//! is a remote worker: on any machine, it connects to a daemon's `--worker-listen` address and
//! pulls the queued runs it can serve, one after another, until it is stopped (SIGTERM: its run
//! goes back to the daemon's queue). `strata-worker devices` lists the devices libtorch sees.

use std::{io::IsTerminal, path::PathBuf, process::ExitCode};

use clap::{Parser, Subcommand, ValueEnum};
use strata_server::workers::{wire::finished_to_wire, TOKEN_ENV};
use strata_worker::{
    jobs::{self, Access},
    session::{self, Connect},
    train,
};
use tracing_subscriber::EnvFilter;

mod remote;

#[derive(Clone, Copy, Debug, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

/// Trains one job (a run, a learning-rate range test, a TorchScript module's check) for a Strata
/// daemon with libtorch, then exits. stratad starts it; its token comes in STRATA_WORKER_TOKEN.
#[derive(Parser, Debug)]
#[command(name = "strata-worker", version)]
struct Args {
    #[command(subcommand)]
    command: Option<Command>,
    /// Where the daemon listens for its workers: `unix:PATH` (its socket).
    #[arg(long)]
    connect: Option<String>,
    /// The ticket of the job this worker was started for.
    #[arg(long)]
    job: Option<String>,
    /// libtorch threads the training uses.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1024))]
    threads: u32,
    /// A directory the job's files (datasets, TorchScript modules) may be read from; repeatable.
    #[arg(long = "data-root")]
    data_roots: Vec<PathBuf>,
    /// Load TorchScript modules (code) when a job names one.
    #[arg(long)]
    allow_torchscript: bool,
    /// Log format on stderr (filter with RUST_LOG, default info).
    #[arg(long, env = "STRATA_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Prints the devices libtorch sees on this host as JSON: {"devices": ["cpu", "cuda:0", ...]}.
    Devices,
    /// Serves a daemon as a remote worker: connects to its --worker-listen address, says what it
    /// offers (its devices, memory, data roots, name and labels), and trains the queued runs it
    /// can serve, one at a time, reconnecting whenever the daemon is gone. The workers' token
    /// comes from --token-file or STRATA_WORKER_TOKEN. SIGTERM or SIGINT stops it: a run it
    /// trains is stopped at its next batch and re-queued by the daemon.
    Serve(ServeArgs),
}

#[derive(clap::Args, Debug)]
struct ServeArgs {
    /// The daemon's worker address: `https://HOST:PORT` (`http://` on loopback only).
    #[arg(long, env = "STRATA_WORKER_CONNECT")]
    connect: String,
    /// A file holding the workers' token (stratad's --worker-token-file); else
    /// STRATA_WORKER_TOKEN.
    #[arg(long, env = "STRATA_WORKER_TOKEN_FILE")]
    token_file: Option<PathBuf>,
    /// A PEM CA certificate to trust for the daemon's TLS certificate (else the system's).
    #[arg(long, env = "STRATA_WORKER_TLS_CA")]
    tls_ca: Option<PathBuf>,
    /// This worker's name, unique among the daemon's workers (default: the host name):
    /// 1–64 of A-Z a-z 0-9 . _ -.
    #[arg(long, env = "STRATA_WORKER_NAME")]
    name: Option<String>,
    /// A label runs can ask for (`strata start --on-worker LABEL`); repeatable.
    #[arg(long = "label", env = "STRATA_WORKER_LABELS", value_delimiter = ',')]
    labels: Vec<String>,
    /// The memory this worker offers, in bytes or with a unit (16GiB); default: its cgroup's
    /// limit, else the host's.
    #[arg(long, value_parser = parse_memory)]
    memory: Option<u64>,
}

fn parse_memory(text: &str) -> Result<u64, String> {
    strata_server::workers::memory::parse_limit(text)
}

fn main() -> ExitCode {
    let args = Args::parse();
    match args.command {
        Some(Command::Devices) => {
            let devices = serde_json::json!({ "devices": train::available_devices() });
            println!("{devices}");
            return ExitCode::SUCCESS;
        }
        Some(Command::Serve(ref serve_args)) => return remote::serve(&args, serve_args),
        None => {}
    }
    let (Some(address), Some(ticket)) = (args.connect.clone(), args.job.clone()) else {
        eprintln!("strata-worker: stratad starts workers (with --connect and --job); by hand, `strata-worker devices` lists the devices libtorch sees");
        return ExitCode::from(2);
    };
    let Ok(token) = std::env::var(TOKEN_ENV) else {
        eprintln!("strata-worker: {TOKEN_ENV} is not set; stratad gives its workers their token");
        return ExitCode::from(2);
    };
    init_logging(args.log_format);
    die_of_crash_signals();
    // This thread trains, with --threads threads of its own; the async runtime's threads (which
    // talk to the daemon) keep any tensor work to themselves.
    train::threads::set_tensor_threads_of_this_thread(args.threads as usize);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .on_thread_start(train::threads::keep_tensor_work_on_this_thread)
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("strata-worker: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let connect = Connect {
        address,
        ticket,
        token,
        offer: None,
        stale_run_id: String::new(),
        tls_ca: None,
    };
    let (link, received) = match runtime.block_on(session::connect(&connect)) {
        Ok(connected) => connected,
        Err(err) => {
            eprintln!("strata-worker: {err}");
            return ExitCode::FAILURE;
        }
    };
    let access = Access {
        data_roots: args.data_roots,
        allow_torchscript: args.allow_torchscript,
    };
    let ended = jobs::run(&link, received, &access);
    link.finish(finished_to_wire(&ended.outcome, &ended.field));
    ExitCode::SUCCESS
}

/// A crash signal ends the worker, and the daemon reports it. Rust's runtime handles SIGSEGV and
/// SIGBUS to tell a stack overflow apart, and returns from any other: a fault then strikes again
/// and kills, but the same signal sent by another process (`kill -SEGV`) would be swallowed once,
/// leaving a worker someone meant to end.
fn die_of_crash_signals() {
    for signal in [libc::SIGSEGV, libc::SIGBUS] {
        // SAFETY: restores the default action; no handler of ours runs.
        unsafe { libc::signal(signal, libc::SIG_DFL) };
    }
}

/// Logs go to stderr (the daemon forwards them into its own log), filtered by RUST_LOG.
fn init_logging(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    match format {
        LogFormat::Text => logs.init(),
        LogFormat::Json => logs.json().init(),
    }
}
