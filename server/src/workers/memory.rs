//! How much memory a worker may use (`--run-memory-limit`), and how the limit is applied.
//!
//! - **cgroup v2**, where the daemon may create cgroups (a systemd service with `Delegate=yes`, a
//!   container given its own writable cgroup): each worker runs in a cgroup of its own under the
//!   daemon's, with `memory.max` at the limit and no swap. The kernel then enforces it exactly:
//!   a worker that asks for more is killed by the out-of-memory killer of its own cgroup, and
//!   only it; `memory.events` says so afterwards and `memory.peak` how much it used.
//! - **Otherwise, the daemon watches**: it reads each worker's resident memory of its own (its
//!   anonymous pages and swap, `RssAnon + VmSwap` in `/proc/PID/status`; not the shared
//!   libraries) every [`WATCH_INTERVAL`] and kills a worker over the limit. No `setrlimit` is
//!   used: `RLIMIT_AS` breaks CUDA, whose driver reserves tens of GiB of address space at start,
//!   and `RLIMIT_DATA` counts mappings the CUDA driver makes too, so either would turn GPU runs
//!   into spurious failures. A watch cannot see a spike shorter than its interval; the kernel's
//!   own out-of-memory killer stays the last resort for those.
//!
//! Without a limit, the watch still samples each worker (every [`SAMPLE_INTERVAL`]), so that a
//! worker killed by the kernel's out-of-memory killer is reported with how much it used.

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

/// How often a worker's memory is read when a limit is enforced by watching.
pub const WATCH_INTERVAL: Duration = Duration::from_millis(100);
/// How often a worker's memory is read otherwise (for the figure its failure reports).
pub const SAMPLE_INTERVAL: Duration = Duration::from_millis(500);
/// The smallest limit accepted: a worker holds about 200 MiB of libtorch before it reads any data.
pub const MIN_LIMIT_BYTES: u64 = 64 << 20;

/// `--run-memory-limit`: `4GiB`, `512MiB`, `2G` (binary, as Docker's), `1.5GB` (decimal), or
/// a number of bytes.
pub fn parse_limit(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number
        .parse()
        .map_err(|_| format!("'{text}' is not a size; write it like 4GiB, 512MiB or 2G"))?;
    let scale: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kib" => 1024.0,
        "m" | "mib" => 1024.0 * 1024.0,
        "g" | "gib" => 1024.0 * 1024.0 * 1024.0,
        "t" | "tib" => 1024f64.powi(4),
        "kb" => 1e3,
        "mb" => 1e6,
        "gb" => 1e9,
        "tb" => 1e12,
        other => {
            return Err(format!(
                "'{other}' is not a unit; use KiB, MiB, GiB, TiB (or K, M, G, T), KB, MB, GB or TB"
            ))
        }
    };
    let bytes = number * scale;
    if !bytes.is_finite() || bytes > u64::MAX as f64 {
        return Err(format!("'{text}' is too large"));
    }
    let bytes = bytes as u64;
    if bytes < MIN_LIMIT_BYTES {
        return Err(format!(
            "'{text}' is below {}: a worker holds about 200 MiB of libtorch before it reads any data",
            shown_bytes(MIN_LIMIT_BYTES)
        ));
    }
    Ok(bytes)
}

/// A size as people read it: `9.8 GiB`, `512 MiB`, `800 KiB`.
pub fn shown_bytes(bytes: u64) -> String {
    let units = [("GiB", 30), ("MiB", 20), ("KiB", 10)];
    for (unit, shift) in units {
        if bytes >= 1 << shift {
            let value = bytes as f64 / (1u64 << shift) as f64;
            return if value >= 100.0 || value.fract() < 0.05 {
                format!("{value:.0} {unit}")
            } else {
                format!("{value:.1} {unit}")
            };
        }
    }
    format!("{bytes} bytes")
}

/// The memory a process holds of its own: anonymous resident pages and swap, from
/// `/proc/PID/status`; `None` once it is gone.
pub fn own_memory_of(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    Some(own_memory_in_status(&status))
}

fn own_memory_in_status(status: &str) -> u64 {
    let kib = |key: &str| -> u64 {
        status
            .lines()
            .find_map(|line| line.strip_prefix(key))
            .and_then(|rest| rest.trim().strip_suffix("kB"))
            .and_then(|n| n.trim().parse::<u64>().ok())
            .unwrap_or(0)
    };
    (kib("RssAnon:") + kib("VmSwap:")) * 1024
}

/// How the limit is applied to every worker.
#[derive(Clone, Debug)]
pub enum Enforcement {
    /// Each worker in a cgroup of its own under this one.
    Cgroup { parent: PathBuf },
    /// The daemon reads each worker's memory and kills it over the limit.
    Watch,
}

impl Enforcement {
    pub fn describe(&self) -> String {
        match self {
            Enforcement::Cgroup { parent } => format!(
                "cgroup v2 (each worker in a cgroup of its own under {})",
                parent.display()
            ),
            Enforcement::Watch => format!(
                "watched by stratad (each worker's own memory read every {} ms; cgroup v2 is not available to this daemon)",
                WATCH_INTERVAL.as_millis()
            ),
        }
    }
}

/// The limit and how it is applied.
#[derive(Clone, Debug)]
pub struct MemoryPolicy {
    pub limit: Option<u64>,
    pub enforcement: Enforcement,
}

impl MemoryPolicy {
    /// No limit: workers are only sampled.
    pub fn unlimited() -> Self {
        MemoryPolicy {
            limit: None,
            enforcement: Enforcement::Watch,
        }
    }

    /// A limit, through a cgroup where this daemon may make one, else by watching. Says why the
    /// cgroup could not be used in `fallback_reason`.
    pub fn limited(limit: u64) -> (Self, Option<String>) {
        match cgroup::prepare_parent() {
            Ok(parent) => (
                MemoryPolicy {
                    limit: Some(limit),
                    enforcement: Enforcement::Cgroup { parent },
                },
                None,
            ),
            Err(why) => (
                MemoryPolicy {
                    limit: Some(limit),
                    enforcement: Enforcement::Watch,
                },
                Some(why),
            ),
        }
    }

    /// The cgroup a new worker is to run in, created with the limit; `None` when the limit is
    /// watched instead (or there is none). A cgroup that cannot be made falls back to watching.
    pub fn cgroup_for(&self, name: &str) -> Option<cgroup::WorkerCgroup> {
        let (Some(limit), Enforcement::Cgroup { parent }) = (self.limit, &self.enforcement) else {
            return None;
        };
        match cgroup::WorkerCgroup::create(parent, name, limit) {
            Ok(group) => Some(group),
            Err(err) => {
                tracing::warn!(error = %err, "could not make a cgroup for a worker; its memory limit is watched instead");
                None
            }
        }
    }
}

/// The parts of cgroup v2 the daemon uses.
pub mod cgroup {
    use super::*;

    /// Where the cgroup v2 hierarchy is mounted, from `/proc/self/mountinfo`.
    pub(super) fn mount_point(mountinfo: &str) -> Option<PathBuf> {
        mountinfo.lines().find_map(|line| {
            // ID PARENT MAJ:MIN ROOT MOUNT_POINT OPTIONS... - FSTYPE SOURCE SUPER_OPTIONS
            let (before, after) = line.split_once(" - ")?;
            let fstype = after.split_whitespace().next()?;
            (fstype == "cgroup2").then(|| before.split_whitespace().nth(4).map(PathBuf::from))?
        })
    }

    /// This process's cgroup v2 path, from `/proc/self/cgroup` (its `0::PATH` line).
    pub(super) fn own_path(cgroup: &str) -> Option<PathBuf> {
        cgroup
            .lines()
            .find_map(|line| line.strip_prefix("0::"))
            .map(|path| PathBuf::from(path.trim()))
    }

    fn read(path: &Path) -> Result<String, String> {
        std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
    }

    fn write(path: &Path, value: &str) -> Result<(), String> {
        std::fs::write(path, value).map_err(|e| format!("cannot write {}: {e}", path.display()))
    }

    fn has_word(text: &str, word: &str) -> bool {
        text.split_whitespace().any(|w| w == word)
    }

    /// The daemon's own cgroup made ready to hold the workers' cgroups with the memory controller
    /// on: the daemon moves itself into a leaf `stratad` beneath it first (cgroup v2 lets a
    /// cgroup hand controllers to its children only while no process sits in it), as systemd's
    /// `Delegate=yes` services do.
    pub(super) fn prepare_parent() -> Result<PathBuf, String> {
        let mount = mount_point(&read(Path::new("/proc/self/mountinfo"))?)
            .ok_or("no cgroup v2 hierarchy is mounted")?;
        let own = own_path(&read(Path::new("/proc/self/cgroup"))?)
            .ok_or("this process is in no cgroup v2")?;
        let mut dir = mount.join(own.strip_prefix("/").unwrap_or(&own));
        if dir.file_name().is_some_and(|name| name == "stratad") {
            // Moved there by an earlier run of this set-up (a restart in the same service).
            dir.pop();
        }
        let controllers = read(&dir.join("cgroup.controllers"))?;
        if !has_word(&controllers, "memory") {
            return Err(format!(
                "the memory controller is not available in {}",
                dir.display()
            ));
        }
        if !has_word(&read(&dir.join("cgroup.subtree_control"))?, "memory") {
            let leaf = dir.join("stratad");
            if !leaf.is_dir() {
                std::fs::create_dir(&leaf)
                    .map_err(|e| format!("cannot create {}: {e}", leaf.display()))?;
            }
            write(&leaf.join("cgroup.procs"), &std::process::id().to_string())?;
            write(&dir.join("cgroup.subtree_control"), "+memory")?;
        }
        Ok(dir)
    }

    /// One worker's cgroup: made before the worker starts, removed once it has ended.
    pub struct WorkerCgroup {
        dir: PathBuf,
        /// `cgroup.procs`, opened (close-on-exec) for the worker to move itself in before it
        /// runs any code of its own.
        procs: std::fs::File,
    }

    impl WorkerCgroup {
        pub(super) fn create(parent: &Path, name: &str, limit: u64) -> Result<Self, String> {
            let dir = parent.join(name);
            std::fs::create_dir(&dir)
                .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
            let made = (|| {
                write(&dir.join("memory.max"), &limit.to_string())?;
                // The limit must be on memory, not memory plus swap; not every kernel has these.
                let _ = std::fs::write(dir.join("memory.swap.max"), "0");
                let _ = std::fs::write(dir.join("memory.oom.group"), "1");
                std::fs::OpenOptions::new()
                    .write(true)
                    .open(dir.join("cgroup.procs"))
                    .map_err(|e| format!("cannot open {}/cgroup.procs: {e}", dir.display()))
            })();
            match made {
                Ok(procs) => Ok(WorkerCgroup { dir, procs }),
                Err(err) => {
                    let _ = std::fs::remove_dir(&dir);
                    Err(err)
                }
            }
        }

        /// The descriptor the forked worker writes `0` to, to move itself in.
        pub fn procs_fd(&self) -> std::os::fd::RawFd {
            use std::os::fd::AsRawFd;
            self.procs.as_raw_fd()
        }

        /// Processes of the cgroup the kernel's out-of-memory killer killed.
        pub fn oom_kills(&self) -> u64 {
            std::fs::read_to_string(self.dir.join("memory.events"))
                .ok()
                .and_then(|events| {
                    events.lines().find_map(|line| {
                        line.strip_prefix("oom_kill ")
                            .and_then(|n| n.trim().parse().ok())
                    })
                })
                .unwrap_or(0)
        }

        /// The most memory the cgroup held (`memory.peak`, kernels from 5.19), if known.
        pub fn peak(&self) -> Option<u64> {
            std::fs::read_to_string(self.dir.join("memory.peak"))
                .ok()
                .and_then(|n| n.trim().parse().ok())
        }
    }

    impl Drop for WorkerCgroup {
        fn drop(&mut self) {
            // Empty once its worker has been reaped; a moment after, on a busy kernel.
            for _ in 0..50 {
                if std::fs::remove_dir(&self.dir).is_ok() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            tracing::warn!(cgroup = %self.dir.display(), "could not remove a worker's cgroup");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_read_like_docker_and_kubernetes_sizes() {
        assert_eq!(parse_limit("4GiB"), Ok(4 << 30));
        assert_eq!(parse_limit("512MiB"), Ok(512 << 20));
        assert_eq!(parse_limit("2G"), Ok(2 << 30));
        assert_eq!(parse_limit("1.5GB"), Ok(1_500_000_000));
        assert_eq!(parse_limit("100000000"), Ok(100_000_000));
        assert!(parse_limit("1MiB").unwrap_err().contains("below 64 MiB"));
        assert!(parse_limit("lots").unwrap_err().contains("not a size"));
        assert!(parse_limit("4 parsecs").unwrap_err().contains("not a unit"));
        assert_eq!(shown_bytes(9_800 << 20), "9.6 GiB");
        assert_eq!(shown_bytes(512 << 20), "512 MiB");
        assert_eq!(shown_bytes(1 << 30), "1 GiB");
        assert_eq!(shown_bytes(100), "100 bytes");
    }

    #[test]
    fn a_workers_own_memory_is_its_anonymous_pages_and_swap() {
        let status = "Name:\tstrata-worker\nVmRSS:\t  425884 kB\nRssAnon:\t  212344 kB\nRssFile:\t  213540 kB\nVmSwap:\t      16 kB\n";
        assert_eq!(own_memory_in_status(status), (212_344 + 16) * 1024);
        assert!(own_memory_of(std::process::id()).unwrap() > 0);
    }

    #[test]
    fn the_cgroup_v2_hierarchy_and_this_process_in_it_are_found() {
        let mountinfo = "24 30 0:22 / /sys/fs/cgroup rw,nosuid - tmpfs tmpfs rw\n\
                         35 24 0:30 / /sys/fs/cgroup/unified rw,nosuid,nodev - cgroup2 cgroup2 rw\n";
        assert_eq!(
            cgroup::mount_point(mountinfo),
            Some(PathBuf::from("/sys/fs/cgroup/unified"))
        );
        assert_eq!(
            cgroup::mount_point("1 2 0:1 / / rw - ext4 /dev/sda rw"),
            None
        );
        let own = "4:memory:/x\n0::/system.slice/stratad.service\n";
        assert_eq!(
            cgroup::own_path(own),
            Some(PathBuf::from("/system.slice/stratad.service"))
        );
    }
}
