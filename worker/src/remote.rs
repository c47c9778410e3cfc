//! `strata-worker serve`: a remote worker. It connects to a daemon's `--worker-listen` address
//! with the workers' token, offers what it has, and trains the runs the daemon hands it, one at a
//! time, reconnecting (with a growing pause, at most [`MAX_BACKOFF`]) whenever the daemon is gone
//! or restarts. A run it was training when it lost the daemon is named in its next hello, and
//! the daemon tells it that run has moved on.

use std::{
    path::PathBuf,
    process::ExitCode,
    sync::{
        atomic::{AtomicBool, AtomicU8, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

use strata_proto::worker::v1 as wire;
use strata_server::{
    domain::StopRequest,
    workers::{wire::finished_to_wire, TOKEN_ENV},
};
use strata_worker::{
    jobs::{self, Access},
    session::{self, Connect},
    train,
};

use super::{die_of_crash_signals, init_logging, Args, ServeArgs};

/// The longest pause between two tries to reach the daemon.
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// The stop flag of the job training now, for the signal handler.
type Current = Arc<Mutex<Option<Arc<AtomicU8>>>>;

pub fn serve(args: &Args, serve: &ServeArgs) -> ExitCode {
    init_logging(args.log_format);
    die_of_crash_signals();
    let token = match read_token(serve.token_file.as_ref()) {
        Ok(token) => token,
        Err(message) => {
            eprintln!("strata-worker: {message}");
            return ExitCode::from(2);
        }
    };
    let tls_ca = match &serve.tls_ca {
        Some(path) => match std::fs::read(path) {
            Ok(pem) => Some(pem),
            Err(e) => {
                eprintln!(
                    "strata-worker: --tls-ca: cannot read {}: {e}",
                    path.display()
                );
                return ExitCode::from(2);
            }
        },
        None => None,
    };
    let offer = match offer(args, serve) {
        Ok(offer) => offer,
        Err(message) => {
            eprintln!("strata-worker: {message}");
            return ExitCode::from(2);
        }
    };
    if !(serve.connect.starts_with("http://") || serve.connect.starts_with("https://")) {
        eprintln!(
            "strata-worker: --connect {}: give the daemon's worker address as https://HOST:PORT (http:// on loopback)",
            serve.connect
        );
        return ExitCode::from(2);
    }
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
    let current: Current = Arc::default();
    let stopping = Arc::new(AtomicBool::new(false));
    if let Err(err) = runtime.block_on(async { on_signal(current.clone(), stopping.clone()) }) {
        eprintln!("strata-worker: cannot install the signal handlers: {err}");
        return ExitCode::FAILURE;
    }
    tracing::info!(
        name = %offer.name,
        daemon = %serve.connect,
        devices = ?offer.devices,
        data_roots = ?offer.data_roots,
        labels = ?offer.labels,
        "remote worker started"
    );
    let access = Access {
        data_roots: args.data_roots.clone(),
        allow_torchscript: args.allow_torchscript,
    };
    let mut stale_run_id = String::new();
    let mut backoff = Duration::from_millis(500);
    while !stopping.load(Ordering::Acquire) {
        let connect = Connect {
            address: serve.connect.clone(),
            ticket: String::new(),
            token: token.clone(),
            offer: Some(offer.clone()),
            stale_run_id: stale_run_id.clone(),
            tls_ca: tls_ca.clone(),
        };
        let (link, received) = match runtime.block_on(session::connect(&connect)) {
            Ok(connected) => connected,
            Err(refused) if refused.permanent => {
                eprintln!("strata-worker: {refused}");
                return ExitCode::from(2);
            }
            Err(refused) => {
                tracing::warn!(reason = %refused, retry_in_ms = backoff.as_millis() as u64, "no session with the daemon");
                std::thread::sleep(backoff);
                backoff = (backoff * 2).min(MAX_BACKOFF);
                continue;
            }
        };
        backoff = Duration::from_millis(500);
        stale_run_id.clear();
        let run_id = match &received.job.kind {
            Some(wire::job::Kind::Train(train)) => train.run_id.clone(),
            _ => String::new(),
        };
        tracing::info!(run = %run_id, device = %received.job.device, "job received");
        *current.lock().unwrap_or_else(|p| p.into_inner()) = Some(link.stop.clone());
        if stopping.load(Ordering::Acquire) {
            StopRequest::Interrupt.request(&link.stop);
        }
        let ended = jobs::run(&link, received, &access);
        *current.lock().unwrap_or_else(|p| p.into_inner()) = None;
        if link.lost() {
            tracing::warn!(run = %run_id, "the daemon was lost during the job; connecting again");
            stale_run_id = run_id;
            continue;
        }
        link.finish(finished_to_wire(&ended.outcome, &ended.field));
        tracing::info!(run = %run_id, "job ended");
        // The daemon closes each job's session; the next one is opened right away.
        drop(link);
    }
    tracing::info!("remote worker stopped");
    ExitCode::SUCCESS
}

/// SIGTERM or SIGINT: the job training now is stopped at its next batch (the daemon re-queues
/// it), and the worker exits once it has said so; an idle worker exits at once.
fn on_signal(current: Current, stopping: Arc<AtomicBool>) -> std::io::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    tokio::spawn(async move {
        tokio::select! {
            _ = terminate.recv() => {}
            _ = interrupt.recv() => {}
        }
        stopping.store(true, Ordering::Release);
        let job = current.lock().unwrap_or_else(|p| p.into_inner()).clone();
        match job {
            Some(stop) => {
                tracing::info!("stopping: the run in training goes back to the daemon's queue");
                StopRequest::Interrupt.request(&stop);
            }
            None => {
                tracing::info!("stopping (no run in training)");
                std::process::exit(0);
            }
        }
    });
    Ok(())
}

fn read_token(file: Option<&PathBuf>) -> Result<String, String> {
    let token = match file {
        Some(path) => std::fs::read_to_string(path)
            .map_err(|e| format!("--token-file: cannot read {}: {e}", path.display()))?,
        None => std::env::var(TOKEN_ENV).map_err(|_| {
            format!("no workers' token: give --token-file FILE (the daemon's --worker-token-file) or set {TOKEN_ENV}")
        })?,
    };
    let token = token.trim().to_string();
    if token.is_empty() || !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err("the workers' token must be printable ASCII without spaces".into());
    }
    Ok(token)
}

/// What this worker offers: its name and labels, the devices libtorch sees, its memory and its
/// data roots (resolved).
fn offer(args: &Args, serve: &ServeArgs) -> Result<wire::Offer, String> {
    let name = match &serve.name {
        Some(name) => name.clone(),
        None => host_name(),
    };
    strata_server::spec::validate_worker_label("--name", &name).map_err(|e| e.to_string())?;
    for label in &serve.labels {
        strata_server::spec::validate_worker_label("--label", label).map_err(|e| e.to_string())?;
    }
    let data_roots = args
        .data_roots
        .iter()
        .map(|root| {
            std::fs::canonicalize(root)
                .map(|real| real.display().to_string())
                .map_err(|e| format!("--data-root {}: {e}", root.display()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(wire::Offer {
        name,
        labels: serve.labels.clone(),
        devices: train::available_devices(),
        memory_bytes: serve.memory.unwrap_or_else(memory_bytes),
        data_roots,
        allow_torchscript: args.allow_torchscript,
        threads: args.threads,
    })
}

/// The memory this process may use: its cgroup's limit, else the host's (0: unknown).
fn memory_bytes() -> u64 {
    let cgroup = std::fs::read_to_string("/sys/fs/cgroup/memory.max")
        .ok()
        .and_then(|text| text.trim().parse::<u64>().ok());
    let host = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find_map(|line| line.strip_prefix("MemTotal:"))
                .and_then(|rest| {
                    rest.trim()
                        .trim_end_matches("kB")
                        .trim()
                        .parse::<u64>()
                        .ok()
                })
                .map(|kb| kb * 1024)
        });
    match (cgroup, host) {
        (Some(limit), Some(host)) => limit.min(host),
        (Some(limit), None) => limit,
        (None, host) => host.unwrap_or(0),
    }
}

fn host_name() -> String {
    let mut name = [0u8; 256];
    // SAFETY: gethostname writes at most `len` bytes into the buffer.
    let ok = unsafe { libc::gethostname(name.as_mut_ptr().cast(), name.len()) } == 0;
    let end = name.iter().position(|&b| b == 0).unwrap_or(name.len());
    let name = if ok {
        String::from_utf8_lossy(&name[..end]).into_owned()
    } else {
        String::new()
    };
    // A host name is mostly what a worker name allows; anything else becomes '-'.
    let name: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '-'
            }
        })
        .take(64)
        .collect();
    if name.is_empty() {
        "worker".into()
    } else {
        name
    }
}
