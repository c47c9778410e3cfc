//! Each run trains in a worker process of its own: a worker that crashes, runs out of memory,
//! hangs or loses its daemon takes only its own run with it, and the daemon, the other runs and
//! the watchers carry on.
//!
//! The runs here are far longer than they can train before they are stopped, however fast the
//! machine, and are then resumed to a few epochs past where they stopped (as `lifecycle.rs` does).

use std::time::{Duration, Instant};

use strata_client::Client;
use strata_e2e::{long_config, start_config, wait_until, Daemon};
use strata_proto::{watch_event::Event, RunConfig, RunStatus};

/// Bounds that only turn a hang into a failure.
const DEADLINE: Duration = Duration::from_secs(300);
const POLL: Duration = Duration::from_millis(20);

/// The run as `get` answers it now, with its stored epochs' numbers.
async fn state(client: &Client, run: &str) -> (strata_proto::Run, Vec<u32>) {
    let got = client.get_run_every_epoch(run).await.expect("get");
    let epochs = got.epochs.iter().map(|e| e.epoch).collect();
    (got.run.expect("the run"), epochs)
}

/// The worker training `run`, once it has stored at least `epochs` epochs.
async fn worker_after_epochs(client: &Client, run: &str, epochs: u32) -> u32 {
    wait_until(client, run, "trained that far in a worker", |r| {
        r.worker_pid > 0 && r.epochs_done >= epochs
    })
    .await
    .worker_pid
}

/// Every event of a run's stream until its terminal status: the epochs' numbers in the order
/// they came, and that status with its reason.
fn watch(client: &Client, run: &str) -> tokio::task::JoinHandle<(Vec<u32>, RunStatus, String)> {
    let (client, run) = (client.clone(), run.to_string());
    tokio::spawn(async move {
        let mut stream = client.watch_run(&run, 0).await.expect("watch");
        let mut epochs = Vec::new();
        while let Some(event) = stream.message().await.expect("the stream") {
            match event.event {
                Some(Event::Epoch(epoch)) => epochs.push(epoch.epoch),
                Some(Event::Status(change)) => {
                    let status = RunStatus::try_from(change.status).unwrap();
                    if status.is_terminal() {
                        return (epochs, status, change.reason);
                    }
                }
                _ => {}
            }
        }
        panic!("the stream of {run} ended without a terminal status");
    })
}

/// Whether the process is alive (a zombie waiting for its parent is not).
fn running(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            stat.rsplit_once(')')
                .map(|(_, rest)| !rest.trim_start().starts_with('Z'))
        })
        .unwrap_or(false)
}

/// The worker processes of the daemon `daemon_pid` (the runs', and its spare): those connected
/// to its socket, which is named after its pid.
fn workers_of(daemon_pid: u32) -> Vec<u32> {
    let socket = format!("stratad-{daemon_pid}-");
    std::fs::read_dir("/proc")
        .expect("/proc")
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|cmdline| String::from_utf8_lossy(&cmdline).contains(&socket))
        })
        .filter(|&pid| running(pid))
        .collect()
}

fn signal(pid: u32, name: &str) {
    let sent = std::process::Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .status()
        .expect("kill runs");
    assert!(sent.success(), "kill -{name} {pid}");
}

/// The memory the process holds resident, from `/proc/PID/status`.
fn resident_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("the status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().strip_suffix("kB"))
        .and_then(|v| v.trim().parse::<u64>().ok())
        .expect("VmRSS")
        * 1024
}

/// Resumes `run` to `epochs` through the CLI and follows it to its end; returns `show --json`.
fn resume_to(daemon: &Daemon, run: &str, epochs: u32) -> serde_json::Value {
    let out = daemon.strata(&["resume", run, "--epochs", &epochs.to_string(), "--follow"]);
    assert_eq!(out.code, 0, "{out:?}\n{}", daemon.log());
    daemon.strata(&["show", run, "--json"]).json()
}

fn epoch_numbers(show: &serde_json::Value) -> Vec<u64> {
    show["epochs"]
        .as_array()
        .expect("epochs")
        .iter()
        .map(|e| e["epoch"].as_u64().unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_worker_killed_mid_epoch_fails_its_run_alone_and_the_run_resumes_whole() {
    let tmp = tempfile::tempdir().unwrap();
    let daemon = Daemon::start_in(&tmp.path().join("data"), &["--max-concurrent-runs", "2"]);
    // The daemon itself links no libtorch: training is its workers' alone.
    let maps = std::fs::read_to_string(format!("/proc/{}/maps", daemon.pid())).unwrap();
    assert!(!maps.contains("libtorch"), "stratad maps libtorch");
    let client = daemon.client().await;

    // Another run trains beside every crash, in a worker of its own.
    let beside = start_config(&client, long_config(100_000)).await;
    let beside_watch = watch(&client, &beside);
    let beside_pid = worker_after_epochs(&client, &beside, 1).await;

    for (name, number, meaning) in [
        ("SEGV", 11, "segmentation fault"),
        ("ABRT", 6, "aborted"),
        ("KILL", 9, "killed"),
    ] {
        let run = start_config(&client, long_config(100_000)).await;
        let watcher = watch(&client, &run);
        let pid = worker_after_epochs(&client, &run, 2).await;
        assert_ne!(pid, beside_pid, "each run has a worker of its own");
        let show = daemon.strata(&["show", &run]);
        assert!(
            show.stdout.contains(&format!("worker pid {pid}")),
            "show names the worker: {}",
            show.stdout
        );
        signal(pid, name);

        let failed = wait_until(&client, &run, "failed", |r| r.status().is_terminal()).await;
        assert_eq!(failed.status(), RunStatus::Failed, "{}", failed.reason);
        let (_, stored) = state(&client, &run).await;
        let done = *stored.last().expect("epochs stored before the kill");
        assert_eq!(stored, (1..=done).collect::<Vec<_>>());
        let said = format!("the worker was killed by signal {number} ({meaning}");
        let during = format!("during epoch {}", done + 1);
        assert!(
            failed.reason.contains(&said) && failed.reason.contains(&during),
            "the reason names the signal and the epoch: {}",
            failed.reason
        );
        assert_eq!(failed.worker_pid, 0);
        assert!(!running(pid));

        // The watcher saw every stored epoch once, then the failure.
        let (seen, status, reason) = watcher.await.unwrap();
        assert_eq!(seen, stored, "the watcher's epochs");
        assert_eq!((status, reason), (RunStatus::Failed, failed.reason.clone()));

        // The run beside it trains on, in the same worker.
        let (beside_now, _) = state(&client, &beside).await;
        assert_eq!(
            (beside_now.status(), beside_now.worker_pid),
            (RunStatus::Running, beside_pid),
            "the other run was touched: {}",
            beside_now.reason
        );

        // Resumed (in a new worker) from its newest checkpoint, it completes with every epoch
        // once; a watcher of the resumed run sees them all once too.
        let target = done + 2;
        let resumed_watch = {
            let out = daemon.strata(&["resume", &run, "--epochs", &target.to_string()]);
            assert_eq!(out.code, 0, "{out:?}");
            watch(&client, &run)
        };
        let (seen, status, _) = resumed_watch.await.unwrap();
        assert_eq!(status, RunStatus::Completed);
        assert_eq!(seen, (1..=target).collect::<Vec<_>>());
        let show = daemon.strata(&["show", &run, "--json"]).json();
        assert_eq!(show["status"], "completed");
        assert_eq!(show["resumes"], 1);
        assert_eq!(
            epoch_numbers(&show),
            (1..=u64::from(target)).collect::<Vec<_>>()
        );
    }

    // The run beside every crash gained epochs all along; stopped cleanly now (a cancel is a stop
    // request, honoured at a batch boundary), it resumes to completion with every epoch once.
    let before = state(&client, &beside).await.1.len();
    worker_after_epochs(&client, &beside, before as u32 + 1).await;
    let out = daemon.strata(&["cancel", &beside]);
    assert_eq!(out.code, 0, "{out:?}");
    let (seen, status, _) = beside_watch.await.unwrap();
    let (cancelled, stored) = state(&client, &beside).await;
    assert_eq!(
        (status, cancelled.status()),
        (RunStatus::Cancelled, RunStatus::Cancelled)
    );
    assert_eq!(seen, stored, "the watcher of the run beside");
    assert!(!running(beside_pid));
    let target = stored.len() as u32 + 1;
    let show = resume_to(&daemon, &beside, target);
    assert_eq!(show["status"], "completed");
    assert_eq!(
        epoch_numbers(&show),
        (1..=u64::from(target)).collect::<Vec<_>>()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn killing_the_daemon_ends_its_workers_and_leaves_their_runs_interrupted() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let mut daemon = Daemon::start_in(&data, &["--max-concurrent-runs", "3"]);
    let client = daemon.client().await;
    let runs = [
        start_config(&client, long_config(100_000)).await,
        start_config(&client, long_config(100_000)).await,
    ];
    let mut training = Vec::new();
    for run in &runs {
        training.push(worker_after_epochs(&client, run, 1).await);
    }
    // A short run beside them: once its worker ends, the daemon starts a spare worker for the
    // next CPU job.
    let short = start_config(&client, long_config(1)).await;
    let ended = wait_until(&client, &short, "ended", |r| r.status().is_terminal()).await;
    assert_eq!(ended.status(), RunStatus::Completed, "{}", ended.reason);
    let daemon_pid = daemon.pid();
    let started = Instant::now();
    while workers_of(daemon_pid).len() < 3 {
        assert!(started.elapsed() < DEADLINE, "no spare worker was started");
        tokio::time::sleep(POLL).await;
    }
    let pids = workers_of(daemon_pid);
    assert!(
        training.iter().all(|pid| pids.contains(pid)),
        "{training:?} in {pids:?}"
    );
    assert!(!daemon.signal_and_wait("KILL").success());

    // Each worker notices its daemon is gone and exits: none is left training for nobody.
    let started = Instant::now();
    while pids.iter().any(|&pid| running(pid)) {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "workers outlived their daemon: {:?}",
            pids.iter().filter(|&&p| running(p)).collect::<Vec<_>>()
        );
        tokio::time::sleep(POLL).await;
    }

    let daemon = Daemon::start_in(&data, &["--max-concurrent-runs", "2"]);
    let client = daemon.client().await;
    for run in &runs {
        let (state, stored) = state(&client, run).await;
        assert_eq!(state.status(), RunStatus::Interrupted, "{}", state.reason);
        assert_eq!(stored, (1..=stored.len() as u32).collect::<Vec<_>>());
    }
    let done = state(&client, &runs[0]).await.1.len() as u32;
    let show = resume_to(&daemon, &runs[0], done + 1);
    assert_eq!(show["status"], "completed");
    assert_eq!(
        epoch_numbers(&show),
        (1..=u64::from(done + 1)).collect::<Vec<_>>()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_run_over_its_memory_limit_fails_clearly_and_the_daemon_keeps_its_memory() {
    let tmp = tempfile::tempdir().unwrap();
    let daemon = Daemon::start_in(&tmp.path().join("data"), &["--run-memory-limit", "600MiB"]);
    let client = daemon.client().await;
    // A small run first, so the daemon has done everything a run makes it do once.
    let small = start_config(&client, long_config(2)).await;
    let done = wait_until(&client, &small, "ended", |r| r.status().is_terminal()).await;
    assert_eq!(done.status(), RunStatus::Completed, "{}", done.reason);
    let before = resident_bytes(daemon.pid());

    // About 36 million parameters: with Adam's state and the gradients, over 500 MiB on top of
    // libtorch's own.
    let big = start_config(
        &client,
        RunConfig {
            model: "mlp:6000,6000".into(),
            samples: Some(500),
            ..long_config(3)
        },
    )
    .await;
    let failed = wait_until(&client, &big, "ended", |r| r.status().is_terminal()).await;
    assert_eq!(failed.status(), RunStatus::Failed, "{}", failed.reason);
    assert!(
        failed.reason.contains("--run-memory-limit")
            && failed
                .reason
                .contains("lower the batch size or give the run more memory"),
        "{}",
        failed.reason
    );
    let after = resident_bytes(daemon.pid());
    assert!(
        after <= before + (24 << 20),
        "the daemon grew from {before} to {after} bytes"
    );
    // The daemon serves on, and trains the next run.
    let next = start_config(&client, long_config(2)).await;
    let done = wait_until(&client, &next, "ended", |r| r.status().is_terminal()).await;
    assert_eq!(done.status(), RunStatus::Completed, "{}", done.reason);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_worker_that_does_not_stop_when_cancelled_is_killed_after_its_grace() {
    let tmp = tempfile::tempdir().unwrap();
    let module = tmp.path().join("spin.pt");
    // Evaluates normally (a start checks the module in evaluation mode), trains two batches, and
    // never returns from the third: it cannot reach the batch boundary where a stop is honoured.
    let scripted = strata_e2e::script_torch_module(
        &module,
        r#"class Net(torch.nn.Module):
    calls: int
    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(2, 3)
        self.calls = 0
    def forward(self, x):
        if self.training:
            self.calls += 1
            if self.calls >= 3:
                n = 1
                while n > 0:
                    n = n + 1
        return self.fc(x)"#,
    );
    if let Err(why) = scripted {
        println!(
            "SKIPPED a_worker_that_does_not_stop_when_cancelled_is_killed_after_its_grace: {why}"
        );
        return;
    }
    let daemon = Daemon::start_in(
        &tmp.path().join("data"),
        &["--allow-torchscript", "--stop-grace", "2"],
    );
    let client = daemon.client().await;
    let run = start_config(
        &client,
        RunConfig {
            dataset: "spirals".into(),
            samples: Some(240),
            model: format!("torchscript:{}", module.display()),
            batch_size: Some(32),
            progress_events_per_epoch: Some(100),
            epochs: Some(3),
            ..Default::default()
        },
    )
    .await;
    let mut stream = client.watch_run(&run, 0).await.expect("watch");
    // Once the second batch is reported, the worker is in the third, for good (the watch is
    // taken before the worker starts, and sees every live event).
    while let Some(event) = stream.message().await.expect("the stream") {
        if matches!(event.event, Some(Event::Progress(p)) if p.epoch == 1 && p.batch == 2) {
            break;
        }
    }
    let pid = worker_after_epochs(&client, &run, 0).await;
    let out = daemon.strata(&["cancel", &run, "--json"]);
    assert_eq!(out.code, 0, "{out:?}");
    let cancelled = wait_until(&client, &run, "ended", |r| r.status().is_terminal()).await;
    assert_eq!(
        cancelled.status(),
        RunStatus::Cancelled,
        "{}",
        cancelled.reason
    );
    assert!(!running(pid), "the worker was not killed");
    assert!(
        daemon
            .log()
            .contains("the worker did not stop within 2 s of being asked to"),
        "the log says why the worker was killed"
    );
}
