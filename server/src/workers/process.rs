//! A worker process on this host: started for one job in a process group of its own (a Ctrl-C
//! meant for the daemon reaches the daemon, which stops its workers in order), watched until it
//! ends — its memory sampled, and killed over its limit — and what its end means in words.

use std::{
    ffi::OsString,
    path::Path,
    process::{ExitStatus, Stdio},
    sync::{Arc, Mutex},
    time::Duration,
};

use tokio::{
    io::{AsyncBufReadExt, BufReader},
    process::{Child, Command},
    sync::{mpsc, watch},
};

use super::memory::{self, cgroup::WorkerCgroup, shown_bytes, MemoryPolicy};

/// How long a worker whose job is over (or whose session was dropped) has to exit on its own
/// before it is killed.
const EXIT_GRACE: Duration = Duration::from_secs(5);
/// Longest line of a worker's stderr kept as its last words.
const MAX_LAST_WORDS_BYTES: usize = 400;

/// Why the daemon killed a worker.
#[derive(Clone, Debug, PartialEq)]
pub enum KillCause {
    /// Its own memory went over the run memory limit (watched, not a cgroup).
    MemoryLimit { used: u64, limit: u64 },
    /// It sent nothing, not even a heartbeat, for this long.
    NoHeartbeat { silent: Duration },
    /// It was asked to stop and did not within this long.
    StopGrace { grace: Duration },
    /// Its session ended on the daemon's side (the reason is recorded there).
    Abandoned,
}

/// How a worker process ended.
#[derive(Clone, Debug)]
pub struct WorkerExit {
    pub pid: u32,
    pub status: Option<ExitStatus>,
    /// Why the daemon killed it, if it did.
    pub killed_by_daemon: Option<KillCause>,
    /// Its cgroup's out-of-memory killer killed it (a cgroup-enforced limit).
    pub oom_killed: bool,
    /// Another out-of-memory kill was counted in the daemon's own cgroup while it ran (a host
    /// or container out-of-memory, not the run's own limit).
    pub oom_nearby: bool,
    /// The most memory of its own it was seen to hold.
    pub peak_bytes: u64,
    pub limit: Option<u64>,
    /// The last line it wrote to stderr.
    pub last_words: String,
}

/// The name and meaning of the signals a worker may die of.
fn signal_name(signal: i32) -> Option<(&'static str, &'static str)> {
    Some(match signal {
        1 => ("SIGHUP", "hangup"),
        2 => ("SIGINT", "interrupt"),
        3 => ("SIGQUIT", "quit"),
        4 => ("SIGILL", "illegal instruction"),
        5 => ("SIGTRAP", "trace trap"),
        6 => ("SIGABRT", "aborted"),
        7 => ("SIGBUS", "bus error"),
        8 => ("SIGFPE", "arithmetic error"),
        9 => ("SIGKILL", "killed"),
        11 => ("SIGSEGV", "segmentation fault"),
        13 => ("SIGPIPE", "broken pipe"),
        14 => ("SIGALRM", "alarm"),
        15 => ("SIGTERM", "terminated"),
        24 => ("SIGXCPU", "CPU time limit exceeded"),
        25 => ("SIGXFSZ", "file size limit exceeded"),
        31 => ("SIGSYS", "bad system call"),
        _ => return None,
    })
}

const MEMORY_ADVICE: &str = "lower the batch size or give the run more memory";

impl WorkerExit {
    /// What happened, in words, `during` something (`during epoch 3`, `while loading its data`).
    pub fn describe(&self, during: &str) -> String {
        use std::os::unix::process::ExitStatusExt;
        let limit = self.limit.map(shown_bytes);
        if let Some(cause) = &self.killed_by_daemon {
            return match cause {
                KillCause::MemoryLimit { used, limit } => format!(
                    "the worker was stopped by stratad {during}: it used {}, over the run memory limit of {} (--run-memory-limit); {MEMORY_ADVICE}",
                    shown_bytes(*used),
                    shown_bytes(*limit)
                ),
                KillCause::NoHeartbeat { silent } => format!(
                    "the worker sent nothing for {} s {during} (no heartbeat) and was killed",
                    silent.as_secs()
                ),
                KillCause::StopGrace { grace } => format!(
                    "the worker did not stop within {} s of being asked to, {during}, and was killed",
                    grace.as_secs()
                ),
                KillCause::Abandoned => format!("the worker was stopped by stratad {during}"),
            };
        }
        let used = shown_bytes(self.peak_bytes);
        if self.oom_killed {
            return match limit {
                Some(limit) => format!(
                    "the worker was killed by the out-of-memory killer {during}: it used {used} of its {limit} (--run-memory-limit); {MEMORY_ADVICE}"
                ),
                None => format!(
                    "the worker was killed by the out-of-memory killer {during}: it used {used}; {MEMORY_ADVICE}"
                ),
            };
        }
        let Some(status) = self.status else {
            return format!("the worker ended {during}, and how is not known");
        };
        if let Some(signal) = status.signal() {
            if signal == 9 && self.oom_nearby {
                return format!(
                    "the worker was killed by the out-of-memory killer {during}: it used {used}; {MEMORY_ADVICE}"
                );
            }
            let named = match signal_name(signal) {
                Some((name, meaning)) => format!("signal {signal} ({meaning}, {name})"),
                None => format!("signal {signal}"),
            };
            let core = if status.core_dumped() {
                " (core dumped)"
            } else {
                ""
            };
            let who = if signal == 9 {
                format!(" by another process or the kernel's out-of-memory killer; it used {used}")
            } else {
                String::new()
            };
            return format!("the worker was killed by {named}{core} {during}{who}");
        }
        let code = status.code().unwrap_or(-1);
        let words = if self.last_words.is_empty() {
            String::new()
        } else {
            format!(": {}", self.last_words)
        };
        format!("the worker exited with status {code} {during}{words}")
    }
}

/// What a worker process is started with.
pub struct Spawn<'a> {
    pub program: &'a Path,
    pub args: Vec<OsString>,
    pub envs: Vec<(&'static str, String)>,
    pub memory: &'a MemoryPolicy,
    /// Names its cgroup, when it gets one.
    pub name: String,
}

/// A started worker process, watched by a task of its own until it ends.
pub struct WorkerProcess {
    pub pid: u32,
    kill: mpsc::UnboundedSender<KillCause>,
    ended: watch::Receiver<Option<Arc<WorkerExit>>>,
}

impl WorkerProcess {
    /// Starts the worker: in a process group of its own, in its own cgroup when the memory
    /// limit is one, its stderr forwarded to the daemon's (each line prefixed with its pid).
    pub fn spawn(spawn: Spawn<'_>) -> std::io::Result<WorkerProcess> {
        let Spawn {
            program,
            args,
            envs,
            memory,
            name,
        } = spawn;
        let cgroup = memory.cgroup_for(&name);
        let mut command = Command::new(program);
        command
            .args(&args)
            .envs(envs.iter().map(|(k, v)| (*k, v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(false);
        if let Some(group) = &cgroup {
            let fd = group.procs_fd();
            // SAFETY: only async-signal-safe calls (write) between fork and exec.
            unsafe {
                command.pre_exec(move || {
                    let zero = b"0";
                    if libc::write(fd, zero.as_ptr().cast(), zero.len()) < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        let mut child = command.spawn()?;
        let pid = child.id().unwrap_or(0);
        let last_words = Arc::new(Mutex::new(String::new()));
        let stderr_done = child
            .stderr
            .take()
            .map(|stderr| tokio::spawn(forward_stderr(pid, stderr, last_words.clone())));
        let (kill, kills) = mpsc::unbounded_channel();
        let (ended_tx, ended) = watch::channel(None);
        // A cgroup enforces the limit itself; otherwise (no cgroup, or none could be made for
        // this worker) the watch does.
        let watched_limit = if cgroup.is_some() { None } else { memory.limit };
        let watch = Watcher {
            pid,
            watched_limit,
            limit: memory.limit,
            cgroup,
            oom_before: own_cgroup_oom_kills(),
        };
        tokio::spawn(async move {
            let exit = watch.run(child, kills, last_words, stderr_done).await;
            let _ = ended_tx.send(Some(Arc::new(exit)));
        });
        Ok(WorkerProcess { pid, kill, ended })
    }

    /// Whether the worker has ended already.
    pub fn has_ended(&self) -> bool {
        self.ended.borrow().is_some()
    }

    /// Kills the worker (SIGKILL), recording why.
    pub fn kill(&self, cause: KillCause) {
        let _ = self.kill.send(cause);
    }

    /// Waits for the worker to end.
    pub async fn ended(&mut self) -> Arc<WorkerExit> {
        loop {
            if let Some(exit) = self.ended.borrow_and_update().clone() {
                return exit;
            }
            if self.ended.changed().await.is_err() {
                // The watcher is gone without a word: only if the runtime shuts down.
                return Arc::new(WorkerExit {
                    pid: self.pid,
                    status: None,
                    killed_by_daemon: None,
                    oom_killed: false,
                    oom_nearby: false,
                    peak_bytes: 0,
                    limit: None,
                    last_words: String::new(),
                });
            }
        }
    }
}

/// Forwards a worker's stderr to the daemon's, keeping its last line.
async fn forward_stderr(
    pid: u32,
    stderr: tokio::process::ChildStderr,
    last_words: Arc<Mutex<String>>,
) {
    let mut lines = BufReader::new(stderr).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        eprintln!("[worker {pid}] {line}");
        let line = line.trim();
        if !line.is_empty() {
            *last_words.lock().unwrap_or_else(|p| p.into_inner()) =
                crate::error::truncated(line.to_string(), MAX_LAST_WORDS_BYTES);
        }
    }
}

/// The out-of-memory kills counted in the daemon's own cgroup (v2's `memory.events`, or v1's
/// `memory.oom_control`), when it can read them.
fn own_cgroup_oom_kills() -> Option<u64> {
    let cgroups = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let count = |text: String| {
        text.lines().find_map(|line| {
            line.strip_prefix("oom_kill ")
                .and_then(|n| n.trim().parse::<u64>().ok())
        })
    };
    for line in cgroups.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
        let path = path.trim_start_matches('/');
        if controllers.is_empty() {
            let file = Path::new("/sys/fs/cgroup").join(path).join("memory.events");
            if let Some(n) = std::fs::read_to_string(file).ok().and_then(count) {
                return Some(n);
            }
        } else if controllers.split(',').any(|c| c == "memory") {
            let file = Path::new("/sys/fs/cgroup/memory")
                .join(path)
                .join("memory.oom_control");
            if let Some(n) = std::fs::read_to_string(file).ok().and_then(count) {
                return Some(n);
            }
        }
    }
    None
}

/// The task that watches one worker until it ends.
struct Watcher {
    pid: u32,
    /// The limit this watch enforces (none when a cgroup does, or there is none).
    watched_limit: Option<u64>,
    limit: Option<u64>,
    cgroup: Option<WorkerCgroup>,
    oom_before: Option<u64>,
}

impl Watcher {
    async fn run(
        self,
        mut child: Child,
        mut kills: mpsc::UnboundedReceiver<KillCause>,
        last_words: Arc<Mutex<String>>,
        stderr_done: Option<tokio::task::JoinHandle<()>>,
    ) -> WorkerExit {
        let pid = self.pid;
        let mut peak = 0u64;
        let mut cause: Option<KillCause> = None;
        let every = if self.watched_limit.is_some() {
            memory::WATCH_INTERVAL
        } else {
            memory::SAMPLE_INTERVAL
        };
        let mut sample = tokio::time::interval(every);
        let mut orphaned_at: Option<tokio::time::Instant> = None;
        let kill_now = |cause: &mut Option<KillCause>, why: KillCause| {
            if cause.is_none() {
                *cause = Some(why);
            }
            // SAFETY: kill(2) on our own child, not yet reaped (so the pid is still its own).
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        };
        let status = loop {
            let orphan_deadline = async {
                match orphaned_at {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                status = child.wait() => break status.ok(),
                asked = kills.recv(), if orphaned_at.is_none() => match asked {
                    Some(why) => kill_now(&mut cause, why),
                    // The session is gone: a worker whose job is over exits by itself.
                    None => orphaned_at = Some(tokio::time::Instant::now() + EXIT_GRACE),
                },
                () = orphan_deadline => {
                    kill_now(&mut cause, KillCause::Abandoned);
                    // No more kill requests can come; wait for the exit.
                    break child.wait().await.ok();
                }
                _ = sample.tick() => {
                    if let Some(used) = memory::own_memory_of(pid) {
                        peak = peak.max(used);
                        if let Some(limit) = self.watched_limit {
                            if used > limit {
                                kill_now(&mut cause, KillCause::MemoryLimit { used, limit });
                            }
                        }
                    }
                }
            }
        };
        if let Some(done) = stderr_done {
            let _ = tokio::time::timeout(Duration::from_secs(1), done).await;
        }
        let (oom_killed, cgroup_peak) = match &self.cgroup {
            Some(group) => (group.oom_kills() > 0, group.peak()),
            None => (false, None),
        };
        let oom_nearby = match (self.oom_before, own_cgroup_oom_kills()) {
            (Some(before), Some(after)) => after > before,
            _ => false,
        };
        // Removing the cgroup waits briefly for the kernel to empty it: off the async threads.
        if let Some(group) = self.cgroup {
            let _ = tokio::task::spawn_blocking(move || drop(group)).await;
        }
        let last_words = last_words.lock().unwrap_or_else(|p| p.into_inner()).clone();
        WorkerExit {
            pid,
            status,
            killed_by_daemon: cause,
            oom_killed,
            oom_nearby,
            peak_bytes: cgroup_peak.unwrap_or(0).max(peak),
            limit: self.limit,
            last_words,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::process::ExitStatusExt;

    use super::*;

    fn exit(status: ExitStatus) -> WorkerExit {
        WorkerExit {
            pid: 7,
            status: Some(status),
            killed_by_daemon: None,
            oom_killed: false,
            oom_nearby: false,
            peak_bytes: 3 << 30,
            limit: None,
            last_words: String::new(),
        }
    }

    #[test]
    fn a_workers_end_is_told_in_words() {
        let segv = exit(ExitStatus::from_raw(11)).describe("during epoch 3");
        assert_eq!(
            segv,
            "the worker was killed by signal 11 (segmentation fault, SIGSEGV) during epoch 3"
        );
        let abrt = exit(ExitStatus::from_raw(6 | 0x80)).describe("during epoch 1");
        assert!(
            abrt.contains("signal 6 (aborted, SIGABRT) (core dumped)"),
            "{abrt}"
        );
        let kill = exit(ExitStatus::from_raw(9)).describe("during epoch 2");
        assert!(kill.contains("signal 9 (killed, SIGKILL)"), "{kill}");
        assert!(kill.contains("it used 3 GiB"), "{kill}");
        let oom = WorkerExit {
            oom_killed: true,
            limit: Some(4 << 30),
            ..exit(ExitStatus::from_raw(9))
        };
        assert_eq!(
            oom.describe("during epoch 2"),
            "the worker was killed by the out-of-memory killer during epoch 2: it used 3 GiB of its 4 GiB (--run-memory-limit); lower the batch size or give the run more memory"
        );
        let over = WorkerExit {
            killed_by_daemon: Some(KillCause::MemoryLimit {
                used: 5 << 30,
                limit: 4 << 30,
            }),
            ..exit(ExitStatus::from_raw(9))
        };
        assert!(over
            .describe("while loading its data")
            .contains("stopped by stratad while loading its data: it used 5 GiB, over the run memory limit of 4 GiB"));
        let code = WorkerExit {
            last_words: "strata-worker: cannot connect".into(),
            ..exit(ExitStatus::from_raw(1 << 8))
        };
        assert_eq!(
            code.describe("before it connected"),
            "the worker exited with status 1 before it connected: strata-worker: cannot connect"
        );
    }
}
