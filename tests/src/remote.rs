//! Remote workers for the tests: `strata-worker serve` processes of their own, each with its own
//! data roots, connected to a daemon's `--worker-listen` address.

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
};

use crate::{bin, clear_strata_env, send_signal};

/// A running `strata-worker serve`. Killed when dropped.
pub struct RemoteWorker {
    child: Option<Child>,
    pub name: String,
    log: PathBuf,
}

impl RemoteWorker {
    /// A worker named `name` serving the daemon at `connect` (`http://127.0.0.1:PORT`), reading
    /// datasets under `data_root`, with `token_file` and `extra` flags of `serve`; its log goes
    /// beside `data_root`.
    pub fn start(
        connect: &str,
        token_file: Option<&Path>,
        name: &str,
        data_root: &Path,
        extra: &[&str],
    ) -> RemoteWorker {
        std::fs::create_dir_all(data_root).expect("the worker's data root");
        let log = data_root.with_extension(format!("{name}.log"));
        let log_file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .expect("a log file");
        let mut command = Command::new(bin("strata-worker"));
        clear_strata_env(&mut command);
        command.env_remove("STRATA_WORKER_TOKEN");
        command
            .args(["--threads", "1", "--data-root"])
            .arg(data_root)
            .args(["serve", "--connect", connect, "--name", name]);
        if let Some(file) = token_file {
            command.arg("--token-file").arg(file);
        }
        let child = command
            .args(extra)
            .env("RUST_LOG", "info")
            .env("CUDA_VISIBLE_DEVICES", "")
            .env("OMP_NUM_THREADS", "1")
            .env("MKL_NUM_THREADS", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .expect("strata-worker starts");
        RemoteWorker {
            child: Some(child),
            name: name.to_string(),
            log,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// What it logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends `signal` (`KILL`, `STOP`, `CONT`, `TERM`).
    pub fn signal(&self, signal: &str) {
        assert!(send_signal(self.pid(), signal), "kill -{signal} failed");
    }

    /// Waits for it to exit (after a signal, or a refusal): its exit code.
    pub fn wait(&mut self) -> Option<i32> {
        let mut child = self.child.take().expect("the worker runs");
        child.wait().expect("strata-worker exits").code()
    }
}

impl Drop for RemoteWorker {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
