//! The `stratad` processes the benchmarks talk to: started on 127.0.0.1:0 (the port read from
//! the daemon's first line), optionally under a tracer, measured through `/proc`, stopped with
//! SIGTERM.

use std::{
    ffi::OsString,
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::Duration,
};

use anyhow::{anyhow, bail, Context, Result};
use strata_client::Client;

/// After a run ends the daemon starts a spare worker (libtorch loading, for half a second or so of
/// CPU): what is timed next must not share the cores with it.
pub async fn settle_after_run() {
    tokio::time::sleep(Duration::from_secs(2)).await;
}

/// How long a daemon may take to open its port (its worker program's device list included).
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);

/// Where the binaries under test are.
#[derive(Clone, Debug)]
pub struct Binaries {
    pub stratad: PathBuf,
    pub strata: PathBuf,
}

impl Binaries {
    pub fn in_dir(dir: &Path) -> Result<Binaries> {
        let found = |name: &str| {
            let path = dir.join(name);
            if path.is_file() {
                Ok(path)
            } else {
                Err(anyhow!(
                    "{} is missing: build it first (scripts/bench.sh builds everything in release)",
                    path.display()
                ))
            }
        };
        // stratad starts it beside itself, per run.
        found("strata-worker")?;
        Ok(Binaries {
            stratad: found("stratad")?,
            strata: found("strata")?,
        })
    }
}

/// How to start a daemon.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// libtorch threads (`--threads`, and OMP/MKL's), or `None` for libtorch's default.
    pub threads: Option<usize>,
    pub max_concurrent_runs: Option<usize>,
    /// The folder client-named files may be read from.
    pub data_root: Option<PathBuf>,
    /// A program (and its arguments) that runs stratad as its direct child, e.g. `strace -f`.
    pub wrapper: Vec<OsString>,
    /// `--allow-torchscript`.
    pub allow_torchscript: bool,
    /// `--spare-worker off`.
    pub no_spare_worker: bool,
    /// Any other flags (`--worker-listen …`).
    pub extra_args: Vec<String>,
}

/// A running `stratad`. Stopped (SIGTERM, then SIGKILL) when dropped.
pub struct Daemon {
    child: Option<Child>,
    /// stratad's own pid (the wrapper's child when it runs under one).
    pub pid: u32,
    /// `http://127.0.0.1:PORT`
    pub addr: String,
    /// The dashboard's `http://127.0.0.1:PORT` (on a port of its own, like gRPC's).
    pub dashboard: Option<String>,
    pub data_dir: PathBuf,
    /// Where remote workers connect (`http://127.0.0.1:PORT`), with `--worker-listen`.
    pub workers: Option<String>,
}

impl Daemon {
    /// Starts a daemon on `data_dir` (created if missing) and waits until it listens.
    pub fn start(binaries: &Binaries, data_dir: &Path, options: &Options) -> Result<Daemon> {
        std::fs::create_dir_all(data_dir)
            .with_context(|| format!("cannot create {}", data_dir.display()))?;
        let data_dir = data_dir.canonicalize()?;
        let log = data_dir.with_extension("stratad.log");
        let log_file = std::fs::File::create(&log)?;
        let mut command = match options.wrapper.split_first() {
            Some((program, args)) => {
                let mut command = Command::new(program);
                command.args(args).arg(&binaries.stratad);
                command
            }
            None => Command::new(&binaries.stratad),
        };
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("STRATA_") {
                command.env_remove(name);
            }
        }
        command
            .args([
                "--listen",
                "127.0.0.1:0",
                "--dashboard-listen",
                "127.0.0.1:0",
            ])
            .arg("--data-dir")
            .arg(&data_dir)
            // The comparison is on the CPU whatever the machine has.
            .env("CUDA_VISIBLE_DEVICES", "")
            .env("RUST_LOG", "warn");
        if let Some(threads) = options.threads {
            command
                .args(["--threads", &threads.to_string()])
                .env("OMP_NUM_THREADS", threads.to_string())
                .env("MKL_NUM_THREADS", threads.to_string());
        }
        if let Some(runs) = options.max_concurrent_runs {
            command.args(["--max-concurrent-runs", &runs.to_string()]);
        }
        if let Some(root) = &options.data_root {
            command.arg("--data-root").arg(root);
        }
        if options.allow_torchscript {
            command.arg("--allow-torchscript");
        }
        if options.no_spare_worker {
            command.args(["--spare-worker", "off"]);
        }
        command.args(&options.extra_args);

        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log_file)
            .spawn()
            .with_context(|| format!("cannot run {}", binaries.stratad.display()))?;
        let stdout = child.stdout.take().expect("stdout is piped");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            // Every line (gRPC's address, then the dashboard's); draining so the daemon never
            // blocks on a full pipe.
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let Ok(line) = rx.recv_timeout(STARTUP_TIMEOUT) else {
            let _ = child.kill();
            let _ = child.wait();
            bail!(
                "stratad did not start; its log:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        };
        let addr = line
            .strip_prefix("stratad listening on ")
            .ok_or_else(|| anyhow!("unexpected first line from stratad: {line}"))?;
        let dashboard = rx.recv_timeout(STARTUP_TIMEOUT).ok().and_then(|line| {
            line.strip_prefix("stratad dashboard on ")
                .map(|url| url.trim_end_matches('/').to_string())
        });
        let workers = if options.extra_args.iter().any(|a| a == "--worker-listen") {
            rx.recv_timeout(STARTUP_TIMEOUT).ok().and_then(|line| {
                line.strip_prefix("stratad workers on ")
                    .map(|addr| format!("http://{addr}"))
            })
        } else {
            None
        };
        let pid = if options.wrapper.is_empty() {
            child.id()
        } else {
            only_child_of(child.id())?
        };
        Ok(Daemon {
            child: Some(child),
            pid,
            addr: format!("http://{addr}"),
            dashboard,
            data_dir,
            workers,
        })
    }

    pub async fn client(&self) -> Result<Client> {
        Client::connect(&self.addr, None)
            .await
            .map_err(|e| anyhow!("cannot connect to {}: {e}", self.addr))
    }

    /// Resident memory now, in bytes.
    pub fn rss_bytes(&self) -> Result<u64> {
        status_kib(self.pid, "VmRSS:").map(|kib| kib * 1024)
    }

    /// Resident memory now that no file backs (the heap, stacks), in bytes: what the daemon itself
    /// holds, without the shared libraries it maps.
    pub fn anonymous_rss_bytes(&self) -> Result<u64> {
        status_kib(self.pid, "RssAnon:").map(|kib| kib * 1024)
    }

    /// The most resident memory the process has had, in bytes.
    pub fn peak_rss_bytes(&self) -> Result<u64> {
        status_kib(self.pid, "VmHWM:").map(|kib| kib * 1024)
    }

    /// CPU time (user + system, all threads) used so far, in seconds, with that of its workers
    /// that have ended (each run's worker ends before the run's end is recorded).
    pub fn cpu_seconds(&self) -> Result<f64> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid))?;
        // The command name may hold spaces: fields are counted from after its closing ')'.
        let after = stat
            .rsplit_once(')')
            .map(|(_, rest)| rest)
            .ok_or_else(|| anyhow!("unexpected /proc/PID/stat"))?;
        let fields: Vec<&str> = after.split_whitespace().collect();
        // utime, stime, cutime and cstime are fields 14 to 17 of stat(5); `after` starts at
        // field 3.
        let mut ticks = 0u64;
        for field in &fields[11..15] {
            ticks += field.parse::<u64>()?;
        }
        // SAFETY: sysconf has no preconditions.
        let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
        Ok(ticks as f64 / per_second)
    }

    /// SIGTERM, then waits for the process (and its wrapper) to exit.
    pub fn stop(mut self) -> Result<()> {
        self.stop_inner()
    }

    fn stop_inner(&mut self) -> Result<()> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        signal(self.pid, libc::SIGTERM);
        for _ in 0..600 {
            if child.try_wait()?.is_some() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        signal(self.pid, libc::SIGKILL);
        let _ = child.kill();
        child.wait()?;
        bail!("stratad did not stop within 30 s of SIGTERM; killed")
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.stop_inner();
    }
}

fn signal(pid: u32, signal: libc::c_int) {
    // SAFETY: kill(2) has no memory-safety preconditions; the pid is a child of ours.
    unsafe {
        libc::kill(pid as libc::pid_t, signal);
    }
}

fn status_kib(pid: u32, field: &str) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status
        .lines()
        .find(|line| line.starts_with(field))
        .ok_or_else(|| anyhow!("no {field} in /proc/{pid}/status"))?;
    Ok(line
        .split_whitespace()
        .nth(1)
        .ok_or_else(|| anyhow!("unexpected {line}"))?
        .parse()?)
}

/// The only child of a wrapper process (stratad under strace), once it exists.
fn only_child_of(pid: u32) -> Result<u32> {
    let path = format!("/proc/{pid}/task/{pid}/children");
    for _ in 0..200 {
        let children = std::fs::read_to_string(&path).unwrap_or_default();
        if let Some(child) = children.split_whitespace().next() {
            return Ok(child.parse()?);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    bail!("the wrapper (pid {pid}) started no process")
}
