//! `stratad`: the Strata daemon.

use std::{io::IsTerminal, path::PathBuf, process::ExitCode};

use clap::{Parser, Subcommand, ValueEnum};
use strata_server::{
    check::{self, CheckOptions},
    daemon::{self, DaemonConfig, TlsFiles},
    dashboard::DashboardListen,
    error::StrataError,
};
use tracing_subscriber::EnvFilter;

/// How long exit waits for blocking work left over after the runs are recorded.
const RUNTIME_SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(2);

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Switch {
    On,
    Off,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

/// The Strata daemon: trains runs with per-layer learning rates, each in a worker process of its
/// own (strata-worker), and records every epoch.
#[derive(Parser, Debug)]
#[command(name = "stratad", version)]
struct Args {
    /// Without a command, stratad serves (with the flags below).
    #[command(subcommand)]
    command: Option<Command>,
    /// Address to serve gRPC on (port 0 picks a free port, printed on start).
    #[arg(long, env = "STRATA_LISTEN", default_value = "127.0.0.1:50051")]
    listen: String,
    /// Where runs, epochs and checkpoints are kept.
    #[arg(long, env = "STRATA_DATA_DIR", default_value = "./strata-data")]
    data_dir: PathBuf,
    /// Runs that train at the same time in this daemon's own workers; the rest wait in a FIFO
    /// queue. 0 (with --worker-listen): it trains nothing itself, remote workers train its runs.
    #[arg(long, env = "STRATA_MAX_CONCURRENT_RUNS", default_value_t = 1, value_parser = clap::value_parser!(u32).range(0..=64))]
    max_concurrent_runs: u32,
    /// libtorch threads each training run's worker uses (0: the cores shared among
    /// --max-concurrent-runs, at least one each).
    #[arg(long, env = "STRATA_THREADS", default_value_t = 0)]
    threads: u32,
    /// The worker program runs train in (default: strata-worker beside stratad).
    #[arg(long, env = "STRATA_WORKER")]
    worker: Option<PathBuf>,
    /// The most memory each run's worker may use (4GiB, 512MiB, 2G): a run that needs more fails
    /// with a reason that says so, instead of taking the host down. Applied with cgroup v2 where
    /// stratad may create cgroups, else watched by stratad (see docs/src/operations/workers.md). Default: no limit.
    #[arg(long, env = "STRATA_RUN_MEMORY_LIMIT", value_parser = parse_memory_limit)]
    run_memory_limit: Option<u64>,
    /// Seconds a worker asked to stop (a cancel, a shutdown) has to stop at a batch boundary
    /// before it is killed.
    #[arg(long, env = "STRATA_STOP_GRACE", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=3600))]
    stop_grace: u64,
    /// Keep a CPU worker started (libtorch loaded, connected) for the next CPU run, range test or
    /// TorchScript check, so it starts without waiting for one; started after the first job, let
    /// go after 5 idle minutes.
    #[arg(long, env = "STRATA_SPARE_WORKER", value_enum, default_value_t = Switch::On)]
    spare_worker: Switch,
    /// Checkpoints (model and optimizer state) kept per run, newest first.
    #[arg(long, env = "STRATA_KEEP_CHECKPOINTS", default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=1000))]
    keep_checkpoints: u32,
    /// A file holding the bearer token every call must present (health excepted). The token can
    /// also come from the STRATA_TOKEN environment variable.
    #[arg(long, env = "STRATA_TOKEN_FILE")]
    token_file: Option<PathBuf>,
    /// PEM certificate (chain) to serve TLS with; needs --tls-key.
    #[arg(long, env = "STRATA_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, env = "STRATA_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// A directory whose files clients may name (`csv:PATH`, `idx:DIR`, `--val-dataset`,
    /// `torchscript:PATH`); repeatable. Default: the directory stratad starts in (none when that
    /// is `/`). Symlinks are followed and must stay inside.
    #[arg(long = "data-root", env = "STRATA_DATA_ROOTS", value_delimiter = ':')]
    data_roots: Vec<PathBuf>,
    /// Let clients train `torchscript:PATH` models. A TorchScript module is code: it runs with
    /// stratad's rights (it can read and write any file stratad can, or never return). Off by
    /// default; turn it on only when every client and every file under the data roots is trusted.
    #[arg(long, env = "STRATA_ALLOW_TORCHSCRIPT")]
    allow_torchscript: bool,
    /// Serve beyond loopback without a token. Without this, stratad refuses to listen on a
    /// non-loopback address unless --token-file or STRATA_TOKEN is set.
    #[arg(long, env = "STRATA_INSECURE_NO_AUTH")]
    insecure_no_auth: bool,
    /// Serve the dashboard as plain HTTP beyond loopback: only behind a proxy that terminates
    /// TLS (an Ingress). Without this (or --tls-cert, or --insecure-no-auth), stratad refuses a
    /// non-loopback --dashboard-listen.
    #[arg(long, env = "STRATA_DASHBOARD_PLAIN_HTTP")]
    dashboard_plain_http: bool,
    /// Connections open at once; more wait to be accepted (also capped at half the open-file
    /// limit).
    #[arg(long, env = "STRATA_MAX_CONNECTIONS", default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    max_connections: u32,
    /// Runs that may wait in the queue at once; more are refused (RESOURCE_EXHAUSTED) until some
    /// start. Each holds ~40 KB, and shutdown records them all in one write.
    #[arg(long, env = "STRATA_MAX_QUEUED_RUNS", default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    max_queued_runs: u32,
    /// Runs logged from outside (CreateRun) that may be live at once; more are refused
    /// (RESOURCE_EXHAUSTED) until some finish or time out. Each holds ~30 KB.
    #[arg(long, env = "STRATA_MAX_EXTERNAL_RUNS", default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    max_external_runs: u32,
    /// Seconds a run logged from outside (CreateRun/LogEpochs) may send nothing before it is
    /// marked interrupted.
    #[arg(long, env = "STRATA_EXTERNAL_TIMEOUT", default_value_t = 600, value_parser = clap::value_parser!(u64).range(1..=31_536_000))]
    external_timeout: u64,
    /// Address to serve the dashboard (web pages of the runs and their curves) on: default
    /// 127.0.0.1:8080 (if that is taken, stratad warns and serves without it); `off` for none;
    /// port 0 picks a free port, printed on start. Beyond loopback it needs a token, as gRPC does.
    #[arg(long, env = "STRATA_DASHBOARD_LISTEN")]
    dashboard_listen: Option<String>,
    /// Log format on stderr (filter with RUST_LOG, default info).
    #[arg(long, env = "STRATA_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// Address remote workers (`strata-worker serve` on other machines) connect to, to pull
    /// queued runs; needs --worker-token-file, and TLS (--tls-cert/--tls-key) beyond loopback.
    /// Port 0 picks a free port, printed on start.
    #[arg(long, env = "STRATA_WORKER_LISTEN", requires = "worker_token_file")]
    worker_listen: Option<String>,
    /// A file holding the token remote workers present: the workers' own, never the users'
    /// (--token-file), which a worker is refused with.
    #[arg(long, env = "STRATA_WORKER_TOKEN_FILE", requires = "worker_listen")]
    worker_token_file: Option<PathBuf>,
    /// PEM certificate (chain) for the workers' listener (default: --tls-cert's); needs
    /// --worker-tls-key.
    #[arg(long, env = "STRATA_WORKER_TLS_CERT", requires = "worker_tls_key")]
    worker_tls_cert: Option<PathBuf>,
    /// PEM private key of --worker-tls-cert.
    #[arg(long, env = "STRATA_WORKER_TLS_KEY", requires = "worker_tls_cert")]
    worker_tls_key: Option<PathBuf>,
    /// Take remote workers without TLS beyond loopback, on a network you trust (a Docker
    /// Compose network on one host): their token and the runs' checkpoints travel in plain text.
    #[arg(long, env = "STRATA_WORKER_INSECURE_PLAINTEXT")]
    worker_insecure_plaintext: bool,
    /// Seconds a remote worker may send nothing (it heartbeats every 2 s) before it is taken for
    /// lost: its run is interrupted and re-queued.
    #[arg(long, env = "STRATA_WORKER_HEARTBEAT_TIMEOUT", default_value_t = 30, value_parser = clap::value_parser!(u64).range(3..=3600))]
    worker_heartbeat_timeout: u64,
    /// Automatic re-queues of a run whose remote worker was lost (it resumes from its newest
    /// checkpoint on the next worker); after that it waits, interrupted, for a person to resume it.
    #[arg(long, env = "STRATA_WORKER_RETRIES", default_value_t = 3, value_parser = clap::value_parser!(u32).range(0..=100))]
    worker_retries: u32,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Verifies a data dir while no daemon uses it: every record decodes, every run's epochs are
    /// 1..N, the run folders agree with the store, every checkpoint's checksum verifies. Exit 0
    /// when healthy, 1 when damage is found (or is left after --repair), 2 when it cannot check.
    Check {
        /// The data dir to check.
        #[arg(long, env = "STRATA_DATA_DIR", default_value = "./strata-data")]
        data_dir: PathBuf,
        /// Repair what can be: rebuild lost records from the runs' checkpoints, move damaged
        /// files aside (never deleted); the report says what could not be repaired.
        #[arg(long)]
        repair: bool,
        /// The report as one JSON document.
        #[arg(long)]
        json: bool,
    },
}

fn parse_memory_limit(text: &str) -> Result<u64, String> {
    strata_server::workers::memory::parse_limit(text)
}

/// The token from --token-file, else from STRATA_TOKEN; never logged.
fn read_token(file: Option<&std::path::Path>) -> Result<Option<String>, String> {
    let token = match file {
        Some(path) => std::fs::read_to_string(path)
            .map_err(|e| format!("--token-file: cannot read {}: {e}", path.display()))?,
        None => match std::env::var("STRATA_TOKEN") {
            Ok(token) => token,
            Err(_) => return Ok(None),
        },
    };
    let token = token.trim().to_string();
    if token.is_empty() {
        return Err("the token is empty (--token-file or STRATA_TOKEN)".into());
    }
    if !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err("the token must be printable ASCII without spaces".into());
    }
    Ok(Some(token))
}

/// The workers' token from --worker-token-file; never logged.
fn read_worker_token(path: &std::path::Path) -> Result<String, String> {
    let token = std::fs::read_to_string(path)
        .map_err(|e| format!("--worker-token-file: cannot read {}: {e}", path.display()))?;
    let token = token.trim().to_string();
    if token.len() < 16 || !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(format!(
            "--worker-token-file: the token in {} must be at least 16 printable ASCII characters without spaces (make one with `openssl rand -hex 32`)",
            path.display()
        ));
    }
    Ok(token)
}

/// The directory stratad starts in, unless that is `/` (which would allow every file).
fn default_data_roots() -> Vec<PathBuf> {
    match std::env::current_dir() {
        Ok(dir) if dir.parent().is_some() => vec![dir],
        _ => {
            tracing::warn!("no --data-root and the working directory is /: clients cannot name files (csv:, idx:, torchscript:) until one is given");
            Vec::new()
        }
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    if let Some(Command::Check {
        data_dir,
        repair,
        json,
    }) = &args.command
    {
        return ExitCode::from(check::run(&CheckOptions {
            data_dir: data_dir.clone(),
            repair: *repair,
            json: *json,
        }));
    }
    init_logging(args.log_format);
    let token = match read_token(args.token_file.as_deref()) {
        Ok(token) => token,
        Err(message) => {
            eprintln!("stratad: {message}");
            return ExitCode::from(2);
        }
    };
    let worker_token = match args.worker_token_file.as_deref().map(read_worker_token) {
        None => None,
        Some(Ok(token)) => Some(token),
        Some(Err(message)) => {
            eprintln!("stratad: {message}");
            return ExitCode::from(2);
        }
    };
    serve(daemon_config(args, token, worker_token))
}

/// Logs go to stderr, filtered by RUST_LOG (default info), in colour on a terminal.
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

/// The daemon's settings from the flags (the data roots default to the working directory).
fn daemon_config(args: Args, token: Option<String>, worker_token: Option<String>) -> DaemonConfig {
    DaemonConfig {
        remote_workers: args.worker_listen.zip(worker_token).map(|(listen, token)| {
            strata_server::daemon::RemoteWorkers {
                listen,
                token,
                tls: args
                    .worker_tls_cert
                    .clone()
                    .zip(args.worker_tls_key.clone())
                    .map(|(cert, key)| TlsFiles { cert, key }),
                insecure_plaintext: args.worker_insecure_plaintext,
                heartbeat_timeout: std::time::Duration::from_secs(args.worker_heartbeat_timeout),
                retries: args.worker_retries,
            }
        }),
        listen: args.listen,
        data_dir: args.data_dir,
        max_concurrent_runs: args.max_concurrent_runs as usize,
        threads: args.threads as usize,
        worker: args.worker,
        run_memory_limit: args.run_memory_limit,
        stop_grace: std::time::Duration::from_secs(args.stop_grace),
        log_json: matches!(args.log_format, LogFormat::Json),
        spare_worker: args.spare_worker == Switch::On,
        keep_checkpoints: args.keep_checkpoints as usize,
        token,
        tls: args
            .tls_cert
            .zip(args.tls_key)
            .map(|(cert, key)| TlsFiles { cert, key }),
        data_roots: if args.data_roots.is_empty() {
            default_data_roots()
        } else {
            args.data_roots
        },
        insecure_no_auth: args.insecure_no_auth,
        dashboard_plain_http: args.dashboard_plain_http,
        allow_torchscript: args.allow_torchscript,
        max_connections: args.max_connections as usize,
        limits: strata_server::runs::Limits {
            max_queued_runs: args.max_queued_runs as usize,
            max_external_runs: args.max_external_runs as usize,
            external_timeout: std::time::Duration::from_secs(args.external_timeout),
        },
        dashboard: DashboardListen::from_flag(args.dashboard_listen.as_deref()),
    }
}

/// Runs the daemon until a signal stops it; its exit code: 2 for a bad flag or setting, 1 for any
/// other failure.
fn serve(config: DaemonConfig) -> ExitCode {
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
    let served = runtime.block_on(async {
        let shutdown = daemon::wait_for_signal().map_err(|e| {
            StrataError::Internal(format!("cannot install the signal handlers: {e}"))
        })?;
        daemon::run(config, shutdown, |listening| {
            // One line per listener on stdout, gRPC's first, so scripts and tests that asked for
            // port 0 learn the ports.
            println!("stratad listening on {}", listening.grpc);
            if let Some(dashboard) = listening.dashboard {
                let scheme = if listening.dashboard_https {
                    "https"
                } else {
                    "http"
                };
                println!("stratad dashboard on {scheme}://{dashboard}/");
            }
            if let Some(workers) = listening.workers {
                println!("stratad workers on {workers}");
            }
        })
        .await
    });
    // Runs are stopped and recorded by now. Dropping the runtime would wait for every blocking
    // task still running (a dataset being read for a request that will never be answered), so
    // the process could outlive its "stopped" line by minutes: give them a moment, no more.
    runtime.shutdown_timeout(RUNTIME_SHUTDOWN_GRACE);
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(err @ StrataError::InvalidArgument { .. }) => {
            eprintln!("stratad: {err}");
            ExitCode::from(2)
        }
        Err(err) => {
            eprintln!("stratad: {err}");
            ExitCode::FAILURE
        }
    }
}
