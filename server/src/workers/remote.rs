//! Remote workers: `strata-worker serve` on other machines, connected to the daemon's
//! `--worker-listen` address with the workers' token (TLS beyond loopback). Each says what it
//! offers ([`Offer`]: its devices, memory, data roots, name and labels) and pulls: it opens a
//! session with an empty ticket and waits, heartbeating, until the queue hands it a run it can
//! serve ([`Offer::serves`] against the run's [`Need`]). The daemon needs no credentials for the
//! cluster the workers run on: they come to it.
//!
//! The [`Registry`] knows the connected workers by name — what `strata workers` and the dashboard
//! list — and keeps two workers from answering to one name. A worker that connects again while
//! its earlier session is still open (its network came back, its pod was replaced under the same
//! name) ends that session: the run it held is taken for lost and re-queued.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    sync::{
        atomic::{AtomicI64, AtomicU32, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

use strata_proto::worker::v1 as wire;
use tokio_util::sync::CancellationToken;

use crate::{domain::RunId, spec::DeviceSpec, store::now_ms};

/// Most labels, devices and data roots one worker may offer.
const MAX_OFFERED_ITEMS: usize = 64;
/// Longest data root a worker may name.
const MAX_ROOT_BYTES: usize = 4096;
/// Most remote workers connected at once: each holds a session and an entry (a few KB).
pub const MAX_REMOTE_WORKERS: usize = 1024;

/// What a remote worker can serve.
#[derive(Clone, Debug, PartialEq)]
pub struct Offer {
    pub name: String,
    pub labels: Vec<String>,
    /// `cpu`, then `cuda:N`.
    pub devices: Vec<String>,
    pub memory_bytes: u64,
    pub data_roots: Vec<PathBuf>,
    pub allow_torchscript: bool,
    pub threads: u32,
}

impl Offer {
    /// Checks a worker's offer: its name and labels, a bounded count of each list, devices that
    /// are `cpu` or `cuda:N`, data roots that are absolute.
    pub fn from_wire(offer: wire::Offer) -> Result<Offer, String> {
        let wire::Offer {
            name,
            labels,
            devices,
            memory_bytes,
            data_roots,
            allow_torchscript,
            threads,
        } = offer;
        let refused = |field: &str, e: crate::error::StrataError| format!("{field}: {e}");
        crate::spec::validate_worker_label("name", &name).map_err(|e| refused("offer", e))?;
        for (what, count) in [
            ("labels", labels.len()),
            ("devices", devices.len()),
            ("data roots", data_roots.len()),
        ] {
            if count > MAX_OFFERED_ITEMS {
                return Err(format!(
                    "the worker offers {count} {what}; at most {MAX_OFFERED_ITEMS}"
                ));
            }
        }
        for label in &labels {
            crate::spec::validate_worker_label("label", label).map_err(|e| refused("offer", e))?;
        }
        for device in &devices {
            let known = device == "cpu"
                || device.strip_prefix("cuda:").is_some_and(|n| {
                    !n.is_empty() && n.len() <= 4 && n.bytes().all(|b| b.is_ascii_digit())
                });
            if !known {
                return Err(format!(
                    "the worker offers the device {}; devices are cpu and cuda:N",
                    crate::spec::shown(device)
                ));
            }
        }
        let data_roots = data_roots
            .into_iter()
            .map(|root| {
                let path = PathBuf::from(&root);
                if root.len() > MAX_ROOT_BYTES || !path.is_absolute() {
                    Err(format!(
                        "the worker's data root {} is not an absolute path",
                        crate::spec::shown(&root)
                    ))
                } else {
                    Ok(path)
                }
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Offer {
            name,
            labels,
            devices,
            memory_bytes,
            data_roots,
            allow_torchscript,
            threads,
        })
    }

    fn has_cuda(&self) -> bool {
        self.devices.iter().any(|d| d.starts_with("cuda:"))
    }

    /// The device this worker would train a run of `need` on, or why it cannot serve it at all.
    pub fn serves(&self, need: &Need) -> Result<String, String> {
        if let Some(label) = &need.label {
            if &self.name != label && !self.labels.contains(label) {
                return Err(format!("has no label '{label}'"));
            }
        }
        let device = match need.device {
            DeviceSpec::Cpu => "cpu".to_string(),
            DeviceSpec::Auto if self.has_cuda() => "cuda:0".to_string(),
            DeviceSpec::Auto => "cpu".to_string(),
            DeviceSpec::Cuda(n) => {
                let wanted = format!("cuda:{n}");
                if !self.devices.contains(&wanted) {
                    return Err(if self.has_cuda() {
                        format!("has no {wanted}")
                    } else {
                        "has no GPU".to_string()
                    });
                }
                wanted
            }
        };
        if need.torchscript && !self.allow_torchscript {
            return Err("does not load TorchScript modules (--allow-torchscript)".into());
        }
        if let Some(file) = need.files.iter().find(|f| !self.reads(f)) {
            return Err(format!(
                "cannot read {} (its data roots: {})",
                file.display(),
                if self.data_roots.is_empty() {
                    "none".to_string()
                } else {
                    self.data_roots
                        .iter()
                        .map(|r| r.display().to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                }
            ));
        }
        Ok(device)
    }

    fn reads(&self, file: &Path) -> bool {
        self.data_roots.iter().any(|root| file.starts_with(root))
    }
}

/// What a run needs of whoever trains it.
#[derive(Clone, Debug, PartialEq)]
pub struct Need {
    pub device: DeviceSpec,
    /// `--on-worker`: a remote worker with this label or name.
    pub label: Option<String>,
    /// The files it reads (as the daemon resolved them): a remote worker must have each under
    /// one of its data roots, at the same path (a shared file system).
    pub files: Vec<PathBuf>,
    pub torchscript: bool,
}

/// A connected remote worker: what it said when it connected, and what it does now.
pub struct Connected {
    pub offer: Offer,
    /// Where it connects from.
    pub address: String,
    pub host: String,
    pub pid: u32,
    pub version: String,
    pub connected_at_ms: i64,
    last_heard_ms: AtomicI64,
    /// The run it trains, and on which device.
    training: Mutex<Option<(RunId, String)>>,
    runs_done: AtomicU32,
    /// Sessions open now (0 or 1: a worker opens its next once its last ended).
    open_sessions: AtomicU32,
    /// Cancelled when the worker connects again (or is replaced): its open session ends.
    superseded: CancellationToken,
    /// Its connection broke or closed (its process gone, most likely): it is listed no more,
    /// and a new process may take its name at once.
    gone: std::sync::atomic::AtomicBool,
}

impl Connected {
    /// The worker was heard from just now.
    pub fn heard(&self) {
        self.last_heard_ms.store(now_ms(), Ordering::Relaxed);
    }

    pub fn last_heard_ms(&self) -> i64 {
        self.last_heard_ms.load(Ordering::Relaxed)
    }

    /// Its connection broke or closed while the daemon read it.
    pub fn went_away(&self) {
        self.gone.store(true, Ordering::Release);
    }

    fn is_gone(&self) -> bool {
        self.gone.load(Ordering::Acquire)
    }

    /// Cancelled when a newer connection of this worker takes its place.
    pub fn superseded(&self) -> &CancellationToken {
        &self.superseded
    }

    /// It starts training `run` on `device`.
    pub fn trains(&self, run: RunId, device: &str) {
        *self.training.lock().unwrap_or_else(|p| p.into_inner()) = Some((run, device.to_string()));
    }

    /// Its run ended on the daemon's side (`done`: it trained it to an end it reported).
    pub fn trained(&self, done: bool) {
        *self.training.lock().unwrap_or_else(|p| p.into_inner()) = None;
        if done {
            self.runs_done.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn training(&self) -> Option<(RunId, String)> {
        self.training
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn runs_done(&self) -> u32 {
        self.runs_done.load(Ordering::Relaxed)
    }

    /// A session of this worker opened; the guard closes it.
    pub fn session_opened(self: &Arc<Self>) -> OpenSession {
        self.open_sessions.fetch_add(1, Ordering::AcqRel);
        OpenSession(self.clone())
    }

    fn has_open_session(&self) -> bool {
        self.open_sessions.load(Ordering::Acquire) > 0
    }
}

/// Held while a worker's session is open.
pub struct OpenSession(Arc<Connected>);

impl OpenSession {
    pub fn worker(&self) -> &Arc<Connected> {
        &self.0
    }
}

impl Drop for OpenSession {
    fn drop(&mut self) {
        self.0.open_sessions.fetch_sub(1, Ordering::AcqRel);
        self.0.heard();
    }
}

/// A worker as `strata workers` lists it.
#[derive(Clone, Debug)]
pub struct WorkerView {
    pub offer: Offer,
    pub address: String,
    pub host: String,
    pub pid: u32,
    pub version: String,
    pub connected_at_ms: i64,
    pub last_heard_ms: i64,
    pub training: Option<(RunId, String)>,
    pub runs_done: u32,
}

/// The connected remote workers, by name.
pub struct Registry {
    workers: Mutex<HashMap<String, Arc<Connected>>>,
    heartbeat_timeout: Duration,
}

/// Who a worker is, beyond its name: a worker that restarts is a new one.
fn same_process(worker: &Connected, hello: &wire::Hello) -> bool {
    worker.host == hello.host && worker.pid == hello.pid
}

impl Registry {
    pub fn new(heartbeat_timeout: Duration) -> Registry {
        Registry {
            workers: Mutex::default(),
            heartbeat_timeout,
        }
    }

    pub fn heartbeat_timeout(&self) -> Duration {
        self.heartbeat_timeout
    }

    fn heard_lately(&self, worker: &Connected) -> bool {
        !worker.is_gone()
            && now_ms() - worker.last_heard_ms() < self.heartbeat_timeout.as_millis() as i64
    }

    /// Takes a worker's session: the same process again keeps its entry (a session a newer one
    /// replaces ends, its run taken for lost); a new process takes the name of one gone quiet,
    /// never of one still heard from (that is another worker with the same name).
    pub fn admit(
        &self,
        hello: &wire::Hello,
        offer: Offer,
        address: String,
    ) -> Result<OpenSession, tonic::Status> {
        let mut workers = self.workers.lock().unwrap_or_else(|p| p.into_inner());
        workers.retain(|_, w| (w.has_open_session() && !w.is_gone()) || self.heard_lately(w));
        if let Some(known) = workers.get(&offer.name) {
            if same_process(known, hello) && known.offer == offer {
                if known.has_open_session() {
                    // It opened a new session while the daemon still holds its last: that one's
                    // connection is gone without the daemon having noticed yet.
                    known.superseded.cancel();
                } else {
                    known.gone.store(false, Ordering::Release);
                    known.heard();
                    return Ok(known.session_opened());
                }
            } else if (known.has_open_session() && !known.is_gone()) || self.heard_lately(known) {
                return Err(tonic::Status::already_exists(format!(
                    "a worker named '{}' is connected (pid {} on {}, from {}); give each worker its own --name",
                    offer.name, known.pid, known.host, known.address
                )));
            } else {
                known.superseded.cancel();
            }
        } else if workers.len() >= MAX_REMOTE_WORKERS {
            return Err(tonic::Status::resource_exhausted(format!(
                "{MAX_REMOTE_WORKERS} remote workers are connected, as many as stratad takes"
            )));
        }
        let now = now_ms();
        let worker = Arc::new(Connected {
            offer,
            address,
            host: hello.host.clone(),
            pid: hello.pid,
            version: hello.version.clone(),
            connected_at_ms: now,
            last_heard_ms: AtomicI64::new(now),
            training: Mutex::new(None),
            runs_done: AtomicU32::new(0),
            open_sessions: AtomicU32::new(0),
            superseded: CancellationToken::new(),
            gone: std::sync::atomic::AtomicBool::new(false),
        });
        let session = worker.session_opened();
        workers.insert(worker.offer.name.clone(), worker);
        Ok(session)
    }

    /// The workers connected now (with a session open, or heard from within the heartbeat
    /// timeout: between two sessions), by name.
    pub fn list(&self) -> Vec<WorkerView> {
        let workers = self.workers.lock().unwrap_or_else(|p| p.into_inner());
        let mut listed: Vec<WorkerView> = workers
            .values()
            .filter(|w| (w.has_open_session() && !w.is_gone()) || self.heard_lately(w))
            .map(|w| WorkerView {
                offer: w.offer.clone(),
                address: w.address.clone(),
                host: w.host.clone(),
                pid: w.pid,
                version: w.version.clone(),
                connected_at_ms: w.connected_at_ms,
                last_heard_ms: w.last_heard_ms(),
                training: w.training(),
                runs_done: w.runs_done(),
            })
            .collect();
        listed.sort_by(|a, b| a.offer.name.cmp(&b.offer.name));
        listed
    }

    /// How many are connected.
    pub fn count(&self) -> usize {
        let workers = self.workers.lock().unwrap_or_else(|p| p.into_inner());
        workers
            .values()
            .filter(|w| (w.has_open_session() && !w.is_gone()) || self.heard_lately(w))
            .count()
    }

    /// The offers of the workers connected now (what a queued run's wait is explained by).
    pub fn offers(&self) -> Vec<Offer> {
        self.list().into_iter().map(|w| w.offer).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offer(name: &str) -> Offer {
        Offer {
            name: name.into(),
            labels: vec!["big".into()],
            devices: vec!["cpu".into(), "cuda:0".into()],
            memory_bytes: 1 << 30,
            data_roots: vec![PathBuf::from("/shared/data")],
            allow_torchscript: false,
            threads: 4,
        }
    }

    fn need(device: DeviceSpec) -> Need {
        Need {
            device,
            label: None,
            files: Vec::new(),
            torchscript: false,
        }
    }

    #[test]
    fn a_worker_serves_what_its_offer_covers_and_says_why_not() {
        let gpu = offer("gpu-1");
        assert_eq!(gpu.serves(&need(DeviceSpec::Auto)).unwrap(), "cuda:0");
        assert_eq!(gpu.serves(&need(DeviceSpec::Cpu)).unwrap(), "cpu");
        assert_eq!(
            gpu.serves(&need(DeviceSpec::Cuda(1))).unwrap_err(),
            "has no cuda:1"
        );
        let cpu = Offer {
            devices: vec!["cpu".into()],
            ..offer("c")
        };
        assert_eq!(cpu.serves(&need(DeviceSpec::Auto)).unwrap(), "cpu");
        assert_eq!(
            cpu.serves(&need(DeviceSpec::Cuda(0))).unwrap_err(),
            "has no GPU"
        );
        let labelled = Need {
            label: Some("big".into()),
            ..need(DeviceSpec::Cpu)
        };
        assert!(gpu.serves(&labelled).is_ok());
        let named = Need {
            label: Some("gpu-1".into()),
            ..need(DeviceSpec::Cpu)
        };
        assert!(gpu.serves(&named).is_ok());
        let other = Need {
            label: Some("small".into()),
            ..need(DeviceSpec::Cpu)
        };
        assert_eq!(gpu.serves(&other).unwrap_err(), "has no label 'small'");
        let reads = |file: &str| Need {
            files: vec![PathBuf::from(file)],
            ..need(DeviceSpec::Cpu)
        };
        assert!(gpu.serves(&reads("/shared/data/x.csv")).is_ok());
        let err = gpu.serves(&reads("/shared/database/x.csv")).unwrap_err();
        assert!(err.contains("cannot read /shared/database/x.csv"), "{err}");
        let script = Need {
            torchscript: true,
            ..need(DeviceSpec::Cpu)
        };
        assert!(gpu.serves(&script).unwrap_err().contains("TorchScript"));
    }

    #[test]
    fn offers_are_checked() {
        let wire = |name: &str, devices: Vec<&str>, roots: Vec<&str>| wire::Offer {
            name: name.into(),
            labels: vec![],
            devices: devices.into_iter().map(String::from).collect(),
            memory_bytes: 0,
            data_roots: roots.into_iter().map(String::from).collect(),
            allow_torchscript: false,
            threads: 1,
        };
        assert!(Offer::from_wire(wire("w1", vec!["cpu", "cuda:3"], vec!["/d"])).is_ok());
        assert!(Offer::from_wire(wire("w 1", vec!["cpu"], vec![])).is_err());
        assert!(Offer::from_wire(wire("", vec!["cpu"], vec![])).is_err());
        assert!(Offer::from_wire(wire("w", vec!["tpu"], vec![])).is_err());
        assert!(Offer::from_wire(wire("w", vec!["cpu"], vec!["relative"])).is_err());
    }

    #[test]
    fn one_name_one_worker_and_a_worker_that_reconnects_replaces_its_old_session() {
        let registry = Registry::new(Duration::from_secs(30));
        let hello = |pid: u32| wire::Hello {
            protocol: 1,
            ticket: String::new(),
            pid,
            host: "node-1".into(),
            version: "0".into(),
            offer: None,
            stale_run_id: String::new(),
        };
        let first = registry.admit(&hello(10), offer("w1"), "a".into()).unwrap();
        // Another process under the same name is refused while the first is connected.
        let err = registry
            .admit(&hello(11), offer("w1"), "b".into())
            .err()
            .unwrap();
        assert_eq!(err.code(), tonic::Code::AlreadyExists);
        assert!(err.message().contains("give each worker its own --name"));
        // The same process opening a new session supersedes its open one.
        let second = registry.admit(&hello(10), offer("w1"), "a".into()).unwrap();
        assert!(first.worker().superseded().is_cancelled());
        drop(first);
        drop(second);
        // Between sessions it stays listed, and takes its next session without a fuss.
        assert_eq!(registry.count(), 1);
        let third = registry.admit(&hello(10), offer("w1"), "a".into()).unwrap();
        assert!(!third.worker().superseded().is_cancelled());
        assert_eq!(registry.list()[0].offer.name, "w1");
        // Its connection broke (its process killed): unlisted, and a new process takes the name.
        third.worker().went_away();
        assert_eq!(registry.count(), 0);
        let fourth = registry.admit(&hello(12), offer("w1"), "c".into()).unwrap();
        assert_eq!(fourth.worker().pid, 12);
    }
}
