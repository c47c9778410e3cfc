//! Test harness: a real `stratad` process on 127.0.0.1:0 with a temporary data dir, and the real
//! `strata` CLI and client library to drive it.
//!
//! The binaries come from the same target folder as the test executable; `scripts/test.sh`
//! builds them before running the tests.

use std::{
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    sync::mpsc,
    time::Duration,
};

pub mod browser;
pub mod external;
pub mod http;
pub mod proxy;
pub mod remote;

use serde_json::Value;
use strata_client::Client;
use tempfile::TempDir;

/// How long a daemon may take to open its port (loading libtorch included).
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);

/// The folder holding `stratad` and `strata`: next to the test executable's `deps/` folder,
/// or `STRATA_BIN_DIR` when set.
pub fn bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("STRATA_BIN_DIR") {
        return PathBuf::from(dir);
    }
    let exe = std::env::current_exe().expect("the test executable's path");
    let deps = exe.parent().expect("the test executable's folder");
    deps.parent()
        .expect("the target profile folder")
        .to_path_buf()
}

pub fn bin(name: &str) -> PathBuf {
    let path = bin_dir().join(name);
    assert!(
        path.exists(),
        "{} is missing: build the binaries first with `cargo build --workspace --bins` (scripts/test.sh does)",
        path.display()
    );
    path
}

/// A running `stratad`. Killed when dropped.
pub struct Daemon {
    child: Option<Child>,
    /// stratad's pid: the child's, or the wrapper's child's.
    server_pid: u32,
    /// `http://127.0.0.1:PORT`
    pub addr: String,
    /// The dashboard's `http://127.0.0.1:PORT` (no trailing slash), unless it was turned off.
    pub dashboard: Option<String>,
    /// Where remote workers connect (`http://127.0.0.1:PORT`), with `--worker-listen`.
    pub workers: Option<String>,
    pub data_dir: PathBuf,
    log: PathBuf,
    _tmp: Option<TempDir>,
}

impl Daemon {
    /// A daemon on a fresh temporary data dir.
    pub fn start() -> Daemon {
        let tmp = tempfile::tempdir().expect("a temporary folder");
        let mut daemon = Daemon::start_in(&tmp.path().join("data"), &[]);
        daemon._tmp = Some(tmp);
        daemon
    }

    /// A daemon on `data_dir`, with extra flags.
    pub fn start_in(data_dir: &Path, extra_args: &[&str]) -> Daemon {
        Daemon::start_with(data_dir, extra_args, &[])
    }

    /// A daemon on `data_dir`, with extra flags and environment variables.
    pub fn start_with(data_dir: &Path, extra_args: &[&str], envs: &[(&str, &str)]) -> Daemon {
        Daemon::start_wrapped(data_dir, extra_args, envs, &[])
    }

    /// A daemon on `data_dir` run by a wrapper program (`wrapper[0]`, with `wrapper[1..]` before
    /// stratad's own command line), e.g. `strace -f -o FILE`. The wrapper must run stratad as its
    /// direct child and exit when it does; signals go to stratad itself.
    pub fn start_wrapped(
        data_dir: &Path,
        extra_args: &[&str],
        envs: &[(&str, &str)],
        wrapper: &[&str],
    ) -> Daemon {
        Daemon::try_start_wrapped(data_dir, extra_args, envs, wrapper).unwrap_or_else(|refused| {
            panic!(
                "stratad did not report its address (exit {:?}); log:\n{}",
                refused.code, refused.log
            )
        })
    }

    /// A daemon on `data_dir`, or how it refused to start (it exited before listening).
    pub fn try_start_in(data_dir: &Path, extra_args: &[&str]) -> Result<Daemon, Refused> {
        Daemon::try_start_wrapped(data_dir, extra_args, &[], &[])
    }

    /// [`Daemon::try_start_in`] with environment variables.
    pub fn try_start_with(
        data_dir: &Path,
        extra_args: &[&str],
        envs: &[(&str, &str)],
    ) -> Result<Daemon, Refused> {
        Daemon::try_start_wrapped(data_dir, extra_args, envs, &[])
    }

    fn try_start_wrapped(
        data_dir: &Path,
        extra_args: &[&str],
        envs: &[(&str, &str)],
        wrapper: &[&str],
    ) -> Result<Daemon, Refused> {
        std::fs::create_dir_all(data_dir).expect("the data dir");
        let log = data_dir.with_extension(format!("stratad-{}.log", std::process::id()));
        let log_file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .expect("a log file");
        let mut command = match wrapper.split_first() {
            Some((program, args)) => {
                let mut command = Command::new(program);
                command.args(args).arg(bin("stratad"));
                command
            }
            None => Command::new(bin("stratad")),
        };
        clear_strata_env(&mut command);
        // Every daemon's dashboard on a port of its own (the default, 8080, is one for all).
        let dashboard_given = extra_args.contains(&"--dashboard-listen");
        if !dashboard_given {
            command.args(["--dashboard-listen", "127.0.0.1:0"]);
        }
        let dashboard_off = extra_args
            .windows(2)
            .any(|pair| pair[0] == "--dashboard-listen" && pair[1] == "off");
        let mut child = command
            .args(["--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            .args(["--threads", "1"])
            // The tests write their datasets and modules in temporary folders.
            .arg("--data-root")
            .arg(std::env::temp_dir())
            .args(extra_args)
            .env("RUST_LOG", "info")
            // The same numbers on every host: CPU only (a GPU host would train elsewhere and
            // differently), one OpenMP/MKL thread whatever the caller's environment says.
            .env("CUDA_VISIBLE_DEVICES", "")
            .env("OMP_NUM_THREADS", "1")
            .env("MKL_NUM_THREADS", "1")
            .envs(envs.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log_file)
            .spawn()
            .expect("stratad starts");
        let stdout = child.stdout.take().expect("stratad's stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            // The first two lines (gRPC's address, then the dashboard's when it is on); then
            // keep draining so the daemon never blocks on a full pipe.
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let line = match rx.recv_timeout(STARTUP_TIMEOUT) {
            Ok(line) => line,
            Err(_) => {
                // Closed stdout: it exited. A timeout: it hangs, and is killed (with a wrapper,
                // stratad itself too, or it would outlive the test holding the data dir).
                if !wrapper.is_empty() {
                    if let Some(server) = children_of(child.id()).first() {
                        send_signal(*server, "KILL");
                    }
                }
                let _ = child.kill();
                let status = child.wait().expect("stratad exits");
                return Err(Refused {
                    code: status.code(),
                    log: std::fs::read_to_string(&log).unwrap_or_default(),
                });
            }
        };
        let addr = line
            .strip_prefix("stratad listening on ")
            .unwrap_or_else(|| panic!("unexpected first line from stratad: {line}"));
        let dashboard = if dashboard_off {
            None
        } else {
            // Printed right after the first line, or not at all (a default address taken).
            rx.recv_timeout(STARTUP_TIMEOUT).ok().and_then(|line| {
                line.strip_prefix("stratad dashboard on ")
                    .map(|url| url.trim_end_matches('/').to_string())
            })
        };
        // Printed after the others, with --worker-listen.
        let workers = if extra_args.contains(&"--worker-listen") {
            rx.recv_timeout(STARTUP_TIMEOUT).ok().and_then(|line| {
                line.strip_prefix("stratad workers on ")
                    .map(|addr| format!("http://{addr}"))
            })
        } else {
            None
        };
        let server_pid = if wrapper.is_empty() {
            child.id()
        } else {
            only_child_of(child.id())
        };
        Ok(Daemon {
            child: Some(child),
            server_pid,
            addr: format!("http://{addr}"),
            dashboard,
            workers,
            data_dir: data_dir.to_path_buf(),
            log,
            _tmp: None,
        })
    }

    pub fn pid(&self) -> u32 {
        if self.child.is_some() {
            self.server_pid
        } else {
            0
        }
    }

    /// What the daemon logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends `signal` (`TERM`, `INT`, `KILL`) and waits for the process to exit.
    pub fn signal_and_wait(&mut self, signal: &str) -> ExitStatus {
        let mut child = self.child.take().expect("the daemon is running");
        assert!(
            send_signal(self.server_pid, signal),
            "kill -{signal} failed"
        );
        child.wait().expect("stratad exits")
    }

    /// Sends SIGTERM and waits up to `bound` for the process to exit: `None` if it did not (it is
    /// then killed). The bound only turns a hang into a failure.
    pub fn stop_within(mut self, bound: Duration) -> Option<ExitStatus> {
        let mut child = self.child.take().expect("the daemon is running");
        assert!(send_signal(self.server_pid, "TERM"), "kill -TERM failed");
        let deadline = std::time::Instant::now() + bound;
        while std::time::Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        send_signal(self.server_pid, "KILL");
        let _ = child.kill();
        let _ = child.wait();
        None
    }

    /// Stops the daemon with SIGTERM and returns its exit status.
    pub fn stop(mut self) -> ExitStatus {
        self.signal_and_wait("TERM")
    }

    pub async fn client(&self) -> Client {
        Client::connect(&self.addr, None)
            .await
            .expect("the client connects")
    }

    /// Runs the `strata` CLI against this daemon.
    pub fn strata(&self, args: &[&str]) -> CliOutput {
        strata(&self.addr, args)
    }
}

/// A daemon that exited before it listened: its exit code and what it logged (stderr).
#[derive(Debug)]
pub struct Refused {
    pub code: Option<i32>,
    pub log: String,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            if self.server_pid != child.id() {
                send_signal(self.server_pid, "KILL");
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Sends `signal` (`TERM`, `KILL`, ...) to `pid`; whether `kill` said it was sent.
pub fn send_signal(pid: u32, signal: &str) -> bool {
    Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status()
        .is_ok_and(|s| s.success())
}

/// The child processes of `pid`, read from /proc.
fn children_of(pid: u32) -> Vec<u32> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    tasks
        .filter_map(|task| {
            let path = task.ok()?.path().join("children");
            std::fs::read_to_string(path).ok()
        })
        .flat_map(|list| {
            list.split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect::<Vec<u32>>()
        })
        .collect()
}

/// The one child process of `pid` (a wrapper's stratad), read from /proc.
fn only_child_of(pid: u32) -> u32 {
    let children = children_of(pid);
    match children[..] {
        [only] => only,
        _ => panic!("the wrapper {pid} should run stratad as its one child, has {children:?}"),
    }
}

/// What one `strata` invocation printed and how it exited.
#[derive(Debug)]
pub struct CliOutput {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl From<std::process::Output> for CliOutput {
    fn from(output: std::process::Output) -> Self {
        CliOutput {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }
}

impl CliOutput {
    /// Asserts success and parses stdout as one JSON document.
    pub fn json(&self) -> Value {
        assert_eq!(self.code, 0, "strata failed: {self:?}");
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.stdout))
    }

    /// Parses stdout as one JSON document per line.
    pub fn json_lines(&self) -> Vec<Value> {
        self.stdout
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
            .collect()
    }
}

/// Runs `stratad ARGS --data-dir DATA_DIR` as a command (e.g. `check`), not as the daemon.
pub fn stratad_command(args: &[&str], data_dir: &Path) -> CliOutput {
    let mut command = Command::new(bin("stratad"));
    clear_strata_env(&mut command);
    let output = command
        .args(args)
        .arg("--data-dir")
        .arg(data_dir)
        .stdin(Stdio::null())
        .output()
        .expect("stratad runs");
    CliOutput::from(output)
}

/// Copies the folder `from` into `to` (created if missing), every copied file writable by its
/// owner: a fixture checked out read-only still gives a data dir that sled can open for writing.
pub fn copy_dir(from: &Path, to: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(to).unwrap_or_else(|e| panic!("create {}: {e}", to.display()));
    let entries =
        std::fs::read_dir(from).unwrap_or_else(|e| panic!("read {}: {e}", from.display()));
    for entry in entries {
        let entry = entry.unwrap_or_else(|e| panic!("read {}: {e}", from.display()));
        let (source, target) = (entry.path(), to.join(entry.file_name()));
        if entry.file_type().expect("a file type").is_dir() {
            copy_dir(&source, &target);
            continue;
        }
        std::fs::copy(&source, &target)
            .unwrap_or_else(|e| panic!("copy {} to {}: {e}", source.display(), target.display()));
        let mut permissions = std::fs::metadata(&target).expect("the copy").permissions();
        permissions.set_mode(permissions.mode() | 0o200);
        std::fs::set_permissions(&target, permissions).expect("the copy made writable");
    }
}

/// The tests configure daemon and CLI explicitly: settings from the caller's environment
/// (`STRATA_TOKEN`, `STRATA_ADDR`, ...) must not leak in.
pub fn clear_strata_env(command: &mut Command) {
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("STRATA_") {
            command.env_remove(key);
        }
    }
}

pub fn strata(addr: &str, args: &[&str]) -> CliOutput {
    strata_with(addr, args, &[])
}

/// Runs the `strata` CLI with extra environment variables.
pub fn strata_with(addr: &str, args: &[&str], envs: &[(&str, &str)]) -> CliOutput {
    let mut command = Command::new(bin("strata"));
    clear_strata_env(&mut command);
    let output = command
        .envs(envs.iter().copied())
        .arg("--addr")
        .arg(addr)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("strata runs");
    CliOutput::from(output)
}

/// Starts a run with exactly these flags and returns its id.
pub fn start_with_flags(daemon: &Daemon, flags: &[&str]) -> String {
    let mut args = vec!["start", "--json"];
    args.extend_from_slice(flags);
    let out = daemon.strata(&args);
    out.json()["run_id"]
        .as_str()
        .unwrap_or_else(|| panic!("no run id: {out:?}"))
        .to_string()
}

/// `strata show RUN --json`.
pub fn show(daemon: &Daemon, run: &str) -> Value {
    daemon.strata(&["show", run, "--json"]).json()
}

/// One layer group's record within an epoch of `show --json`.
pub fn group<'a>(epoch: &'a Value, name: &str) -> &'a Value {
    epoch["groups"]
        .as_array()
        .and_then(|groups| groups.iter().find(|g| g["name"] == name))
        .unwrap_or_else(|| panic!("no group {name} in {epoch}"))
}

/// Equal up to float noise: JSON's decimal round trip may move the last bit.
pub fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-12 * a.abs().max(b.abs())
}

/// Flags for a tiny, fast run.
pub const TINY_RUN: &[&str] = &[
    "--dataset",
    "spirals",
    "--samples",
    "240",
    "--model",
    "mlp:16,16",
    "--batch-size",
    "32",
];

/// Starts a tiny run (with extra flags) through the CLI and returns its id.
pub fn start_run(daemon: &Daemon, extra: &[&str]) -> String {
    let flags: Vec<&str> = TINY_RUN.iter().chain(extra).copied().collect();
    start_with_flags(daemon, &flags)
}

/// Watches a run to its end through the CLI and returns the NDJSON events.
pub fn watch_to_end(daemon: &Daemon, run: &str) -> (i32, Vec<Value>) {
    let out = daemon.strata(&["watch", run, "--json"]);
    (out.code, out.json_lines())
}

/// The repository's root folder (the tests crate sits in it).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate sits in the repository")
        .to_path_buf()
}

/// Scripts the PyTorch module `class Net` (its Python source, with `import torch` done) with the
/// real PyTorch in `.torch/` into `path`, seeded, or says why it cannot (no PyTorch, no python3).
pub fn script_torch_module(path: &Path, net_class: &str) -> Result<(), String> {
    let torch = repo_root().join(".torch");
    if !torch.join("torch").is_dir() {
        return Err(format!(
            "{} holds no PyTorch (scripts/setup-libtorch.sh installs it)",
            torch.display()
        ));
    }
    let program = format!(
        "import sys, torch\n{net_class}\ntorch.manual_seed(0)\ntorch.jit.script(Net()).save(sys.argv[1])\n"
    );
    // torch.jit.script reads the class's source, so the program must be a file.
    let script = path.with_extension("py");
    std::fs::write(&script, program).unwrap();
    let output = match Command::new("python3")
        .arg(&script)
        .arg(path)
        .env("PYTHONPATH", &torch)
        .output()
    {
        Ok(output) => output,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err("python3 is not installed".into())
        }
        Err(e) => panic!("python3 did not run: {e}"),
    };
    assert!(
        output.status.success(),
        "scripting the module failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(())
}

/// Runs `command` to its end and gives its standard output; a failure (or a command that cannot
/// start) fails the test with both outputs and `what` it was.
pub fn run_ok(command: &mut Command, what: &str) -> String {
    let out = command.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    assert!(out.status.success(), "{what} failed:\n{stdout}\n{stderr}");
    stdout
}

/// A run long enough that a test can act while it trains, short per epoch: moons, 3,000 samples,
/// `mlp:64,64`, batches of 16.
pub fn long_config(epochs: u32) -> strata_proto::RunConfig {
    strata_proto::RunConfig {
        dataset: "moons".into(),
        samples: Some(3000),
        model: "mlp:64,64".into(),
        batch_size: Some(16),
        epochs: Some(epochs),
        seed: Some(11),
        ..Default::default()
    }
}

/// Starts `config` through `client`; its run id.
pub async fn start_config(
    client: &strata_client::Client,
    config: strata_proto::RunConfig,
) -> String {
    client
        .start_run(strata_proto::StartRunRequest {
            config: Some(config),
            ..Default::default()
        })
        .await
        .expect("start")
        .run_id
}

/// Polls `run` (every 20 ms, for at most 300 s) until `done` says it is as wanted; the run as it
/// then is. `what` names the wait in the failure.
pub async fn wait_until(
    client: &strata_client::Client,
    run: &str,
    what: &str,
    done: impl Fn(&strata_proto::Run) -> bool,
) -> strata_proto::Run {
    let started = std::time::Instant::now();
    loop {
        let now = client.get_run(run).await.expect("get").run.expect("run");
        if done(&now) {
            return now;
        }
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "run {run} never {what}: it is {:?} ({})",
            now.status(),
            now.reason
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
