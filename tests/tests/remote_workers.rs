//! Remote workers (`strata-worker serve`) as separate processes, each with its own data root,
//! pulling runs over loopback from a daemon that trains nothing itself (`--max-concurrent-runs
//! 0`): runs spread over them, a run no worker can serve waits and says why, a worker killed or
//! gone silent mid-run loses only its place (its run resumes on the other with every epoch
//! once), workers without the workers' token are refused, and a worker outlives its daemon's
//! restart.

use std::{
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use serde_json::Value;
use strata_client::Client;
use strata_e2e::{remote::RemoteWorker, wait_until, Daemon};
use strata_proto::{RunConfig, RunStatus, StartRunRequest};

/// Bounds that only turn a hang into a failure.
const DEADLINE: Duration = Duration::from_secs(300);
const POLL: Duration = Duration::from_millis(50);
const WORKER_TOKEN: &str = "workers-token-0123456789abcdef";

/// A daemon that trains nothing itself, taking remote workers on loopback.
fn remote_daemon(dir: &Path, extra: &[&str]) -> (Daemon, PathBuf) {
    let token_file = dir.join("worker-token");
    std::fs::write(&token_file, format!("{WORKER_TOKEN}\n")).unwrap();
    let mut args = vec![
        "--max-concurrent-runs",
        "0",
        "--worker-token-file",
        token_file.to_str().unwrap(),
    ];
    if !extra.contains(&"--worker-listen") {
        args.extend(["--worker-listen", "127.0.0.1:0"]);
    }
    args.extend(extra);
    let daemon = Daemon::start_in(&dir.join("data"), &args);
    assert!(
        daemon.workers.is_some(),
        "stratad printed its workers' address"
    );
    (daemon, token_file)
}

fn workers(daemon: &Daemon) -> Vec<Value> {
    let out = daemon.strata(&["workers", "--json"]);
    assert_eq!(out.code, 0, "strata workers: {}", out.stderr);
    out.json()["workers"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn worker<'a>(listed: &'a [Value], name: &str) -> &'a Value {
    listed
        .iter()
        .find(|w| w["name"] == name)
        .unwrap_or_else(|| panic!("worker {name} is listed: {listed:?}"))
}

/// Waits until the daemon lists `names` connected.
fn wait_for_workers(daemon: &Daemon, names: &[&str]) {
    let started = Instant::now();
    loop {
        let listed = workers(daemon);
        if names
            .iter()
            .all(|name| listed.iter().any(|w| w["name"] == *name))
        {
            return;
        }
        assert!(
            started.elapsed() < DEADLINE,
            "workers {names:?} never connected: {listed:?}"
        );
        std::thread::sleep(POLL);
    }
}

fn short_config(seed: u64) -> RunConfig {
    RunConfig {
        dataset: "moons".into(),
        samples: Some(200),
        model: "mlp:16".into(),
        epochs: Some(2),
        seed: Some(seed),
        ..Default::default()
    }
}

/// Long enough (thousands of batches an epoch) to be caught mid-run after its first epoch.
fn long_config(epochs: u32) -> RunConfig {
    RunConfig {
        dataset: "moons".into(),
        samples: Some(20_000),
        model: "mlp:32,32".into(),
        batch_size: Some(4),
        epochs: Some(epochs),
        seed: Some(7),
        ..Default::default()
    }
}

async fn start(client: &Client, config: RunConfig) -> String {
    client
        .start_run(StartRunRequest {
            config: Some(config),
            ..Default::default()
        })
        .await
        .expect("start")
        .run_id
}

async fn completed(client: &Client, run: &str) -> Vec<u32> {
    let done = wait_until(client, run, "ended", |r| {
        !matches!(
            RunStatus::try_from(r.status),
            Ok(RunStatus::Queued | RunStatus::Running)
        )
    })
    .await;
    assert_eq!(
        done.status,
        RunStatus::Completed as i32,
        "run {run}: {}",
        done.reason
    );
    let got = client.get_run_every_epoch(run).await.expect("get");
    got.epochs.iter().map(|e| e.epoch).collect()
}

fn runs_done(daemon: &Daemon, name: &str) -> u64 {
    worker(&workers(daemon), name)["runs_done"]
        .as_u64()
        .unwrap()
}

/// The worker training `run` now, once one is and it has stored an epoch.
async fn trained_by(client: &Client, run: &str) -> String {
    wait_until(
        client,
        run,
        "trained on a remote worker past epoch 1",
        |r| !r.worker.is_empty() && r.epochs_done >= 1,
    )
    .await
    .worker
}

#[tokio::test(flavor = "multi_thread")]
async fn two_remote_workers_share_the_queue_and_a_killed_one_s_run_resumes_on_the_other() {
    let tmp = tempfile::tempdir().unwrap();
    let (daemon, token) = remote_daemon(tmp.path(), &[]);
    let connect = daemon.workers.clone().unwrap();
    let (root_a, root_b) = (tmp.path().join("a"), tmp.path().join("b"));
    let w1 = RemoteWorker::start(&connect, Some(&token), "w1", &root_a, &["--label", "big"]);
    let w2 = RemoteWorker::start(&connect, Some(&token), "w2", &root_b, &[]);
    wait_for_workers(&daemon, &["w1", "w2"]);
    let info = daemon.strata(&["info", "--json"]).json();
    assert_eq!(info["takes_remote_workers"], true);
    assert_eq!(info["remote_workers"], 2);
    assert_eq!(info["max_concurrent_runs"], 0);
    let listed = workers(&daemon);
    let one = worker(&listed, "w1");
    assert_eq!(one["labels"], serde_json::json!(["big"]));
    assert_eq!(one["devices"][0], "cpu");
    assert!(
        one["address"].as_str().unwrap().starts_with("127.0.0.1:"),
        "{one}"
    );
    assert!(one["last_heartbeat_ms"].as_i64().unwrap() > 0);
    assert_eq!(
        one["data_roots"][0],
        std::fs::canonicalize(&root_a).unwrap().to_str().unwrap()
    );
    let client = daemon.client().await;

    // Runs spread over both: each idle worker takes one as they come.
    let mut runs = Vec::new();
    for seed in 1..=4 {
        runs.push(start(&client, short_config(seed)).await);
    }
    for run in &runs {
        assert_eq!(completed(&client, run).await, vec![1, 2]);
    }
    let (done1, done2) = (runs_done(&daemon, "w1"), runs_done(&daemon, "w2"));
    assert_eq!(done1 + done2, 4);
    assert!(done1 >= 1 && done2 >= 1, "w1 trained {done1}, w2 {done2}");

    // A run no worker can serve waits, and list and show say why.
    let waits = start(
        &client,
        RunConfig {
            on_worker: "gpu-box".into(),
            ..short_config(9)
        },
    )
    .await;
    let queued = wait_until(&client, &waits, "said why it waits", |r| {
        r.waiting.contains("no connected worker can serve it")
    })
    .await;
    assert_eq!(queued.status, RunStatus::Queued as i32);
    assert!(
        queued.waiting.contains("w1 has no label 'gpu-box'")
            && queued.waiting.contains("w2 has no label 'gpu-box'"),
        "{}",
        queued.waiting
    );
    let list = daemon.strata(&["list"]);
    assert!(
        list.stderr.contains(&waits) && list.stderr.contains("no connected worker can serve it"),
        "{}",
        list.stderr
    );
    // The dashboard's list says it too, and its workers panel reads the connected workers.
    let dashboard = daemon.dashboard.clone().expect("the dashboard");
    let listed = strata_e2e::http::get(&dashboard, "/api/runs", &[]).json();
    let row = listed["runs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == waits.as_str())
        .unwrap()
        .clone();
    assert!(row["waiting"]
        .as_str()
        .unwrap()
        .contains("no connected worker"));
    let panel = strata_e2e::http::get(&dashboard, "/api/workers", &[]).json();
    assert_eq!(panel["takes_workers"], true);
    let names: Vec<&str> = panel["workers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["w1", "w2"]);
    let shown = daemon.strata(&["show", &waits, "--json"]).json();
    assert!(shown["waiting"].as_str().unwrap().contains("gpu-box"));
    assert_eq!(shown["config"]["on_worker"], "gpu-box");
    client.cancel_run(&waits).await.expect("cancel");
    // A GPU run waits for a worker with a GPU (this daemon has none either: only a worker can
    // serve it).
    let gpu = start(
        &client,
        RunConfig {
            device: "cuda".into(),
            ..short_config(8)
        },
    )
    .await;
    let queued = wait_until(&client, &gpu, "said why it waits", |r| {
        r.waiting.contains("no connected worker can serve it")
    })
    .await;
    assert!(
        queued.waiting.contains("w1 has no GPU") && queued.waiting.contains("w2 has no GPU"),
        "{}",
        queued.waiting
    );
    client.cancel_run(&gpu).await.expect("cancel");
    let cancelled = wait_until(&client, &gpu, "ended", |r| {
        r.status != RunStatus::Queued as i32
    })
    .await;
    assert_eq!(cancelled.status, RunStatus::Cancelled as i32);

    // A labelled run goes to the worker with the label; a dataset only one worker's data root
    // holds goes to that one.
    let before = (runs_done(&daemon, "w1"), runs_done(&daemon, "w2"));
    let labelled = start(
        &client,
        RunConfig {
            on_worker: "big".into(),
            ..short_config(5)
        },
    )
    .await;
    completed(&client, &labelled).await;
    let csv = root_b.join("points.csv");
    let rows: String = (0..120)
        .map(|i| format!("{},{},{}\n", i % 7, (i * 3) % 11, i % 2))
        .collect();
    std::fs::write(&csv, format!("x,y,label\n{rows}")).unwrap();
    let on_b = start(
        &client,
        RunConfig {
            dataset: format!("csv:{}", csv.display()),
            model: "mlp:8".into(),
            epochs: Some(1),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(completed(&client, &on_b).await, vec![1]);
    assert_eq!(
        (runs_done(&daemon, "w1"), runs_done(&daemon, "w2")),
        (before.0 + 1, before.1 + 1),
        "the labelled run on w1, the csv under b on w2"
    );

    // SIGKILL the worker training a run: it resumes on the other, every epoch stored once.
    let long = start(&client, long_config(6)).await;
    let first = trained_by(&client, &long).await;
    let (killed, other) = if first == "w1" {
        (&w1, &w2)
    } else {
        (&w2, &w1)
    };
    killed.signal("KILL");
    let moved = wait_until(&client, &long, "moved to the other worker", |r| {
        r.worker == other.name
    })
    .await;
    assert_eq!(moved.worker_losses, 1);
    assert_eq!(completed(&client, &long).await, (1..=6).collect::<Vec<_>>());
    let log = daemon.log();
    assert!(
        log.contains("a remote worker was lost")
            && log.contains(&format!("worker {}", killed.name)),
        "{log}"
    );
    drop((w1, w2));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_silent_worker_is_taken_for_lost_and_told_its_run_moved_on() {
    let tmp = tempfile::tempdir().unwrap();
    let (daemon, token) = remote_daemon(tmp.path(), &["--worker-heartbeat-timeout", "3"]);
    let connect = daemon.workers.clone().unwrap();
    let w1 = RemoteWorker::start(&connect, Some(&token), "w1", &tmp.path().join("a"), &[]);
    let w2 = RemoteWorker::start(&connect, Some(&token), "w2", &tmp.path().join("b"), &[]);
    wait_for_workers(&daemon, &["w1", "w2"]);
    let client = daemon.client().await;
    let run = start(&client, long_config(5)).await;
    let first = trained_by(&client, &run).await;
    let (silent, other) = if first == "w1" {
        (&w1, &w2)
    } else {
        (&w2, &w1)
    };
    // Stopped, not killed: its connection stays open, only its heartbeats stop.
    silent.signal("STOP");
    let moved = wait_until(&client, &run, "moved to the other worker", |r| {
        r.worker == other.name
    })
    .await;
    assert_eq!(moved.worker_losses, 1);
    assert!(
        daemon.log().contains("sent nothing for 3 s"),
        "{}",
        daemon.log()
    );
    // Back, it finds its session closed, drops the run and is told it moved on.
    silent.signal("CONT");
    let started = Instant::now();
    while !silent.log().contains("has moved on") {
        assert!(started.elapsed() < DEADLINE, "{}", silent.log());
        tokio::time::sleep(POLL).await;
    }
    assert_eq!(completed(&client, &run).await, (1..=5).collect::<Vec<_>>());
    wait_for_workers(&daemon, &[&silent.name]);

    // SIGTERM (a pod scaled down, a Slurm job at its end): the worker stops its run at the next
    // batch and exits 0; the daemon gives the run to the other worker.
    let mut workers = [w1, w2];
    let run = start(&client, long_config(4)).await;
    let first = trained_by(&client, &run).await;
    let at = workers.iter().position(|w| w.name == first).unwrap();
    workers[at].signal("TERM");
    assert_eq!(workers[at].wait(), Some(0), "{}", workers[at].log());
    let other = &workers[1 - at].name;
    let moved = wait_until(&client, &run, "moved to the other worker", |r| {
        r.worker == *other
    })
    .await;
    assert!(
        moved.reason.contains(&format!("worker {first} shut down")),
        "{}",
        moved.reason
    );
    assert_eq!(completed(&client, &run).await, vec![1, 2, 3, 4]);
}

#[test]
fn workers_need_the_workers_token_and_the_daemon_its_rules() {
    let tmp = tempfile::tempdir().unwrap();
    let users = tmp.path().join("users-token");
    std::fs::write(&users, "users-token-0123456789abcdef\n").unwrap();
    let (daemon, _) = remote_daemon(tmp.path(), &["--token-file", users.to_str().unwrap()]);
    let connect = daemon.workers.clone().unwrap();
    let root = tmp.path().join("root");
    let mut none = RemoteWorker::start(&connect, None, "none", &root, &[]);
    assert_eq!(none.wait(), Some(2));
    assert!(none.log().contains("no workers' token"), "{}", none.log());
    let wrong = tmp.path().join("wrong");
    std::fs::write(&wrong, "not-the-token-at-all").unwrap();
    let mut refused = RemoteWorker::start(&connect, Some(&wrong), "wrong", &root, &[]);
    assert_eq!(refused.wait(), Some(2));
    assert!(
        refused.log().contains("bearer token is wrong"),
        "{}",
        refused.log()
    );
    let mut user = RemoteWorker::start(&connect, Some(&users), "user", &root, &[]);
    assert_eq!(user.wait(), Some(2));
    assert!(user.log().contains("the users' token"), "{}", user.log());
    let listed = strata_e2e::strata_with(
        &daemon.addr,
        &["workers", "--json"],
        &[("STRATA_TOKEN", "users-token-0123456789abcdef")],
    );
    assert_eq!(listed.code, 0, "{}", listed.stderr);
    assert_eq!(listed.json()["workers"], serde_json::json!([]));
    drop(daemon);

    // A daemon that takes no remote workers refuses a run that asks for one.
    let plain = Daemon::start_in(&tmp.path().join("plain"), &[]);
    let refused = plain.strata(&["start", "--dataset", "xor", "--on-worker", "gpu"]);
    assert_eq!(refused.code, 2, "{}", refused.stderr);
    assert!(
        refused.stderr.contains("--worker-listen"),
        "{}",
        refused.stderr
    );
    let listed = plain.strata(&["workers", "--json"]);
    assert_eq!(listed.json()["workers"], serde_json::json!([]));
    drop(plain);

    // The daemon's own rules: TLS beyond loopback, a token of the workers' own, and remote
    // workers for a daemon that trains nothing itself.
    let token = tmp.path().join("worker-token");
    let refusals: [(&[&str], &str); 3] = [
        (
            &[
                "--worker-listen",
                "0.0.0.0:0",
                "--worker-token-file",
                token.to_str().unwrap(),
            ],
            "remote workers connect over TLS",
        ),
        (
            &[
                "--worker-listen",
                "127.0.0.1:0",
                "--worker-token-file",
                users.to_str().unwrap(),
                "--token-file",
                users.to_str().unwrap(),
            ],
            "give workers a token of their own",
        ),
        (&["--max-concurrent-runs", "0"], "--worker-listen"),
    ];
    for (i, (args, says)) in refusals.iter().enumerate() {
        let refused = Daemon::try_start_in(&tmp.path().join(format!("d{i}")), args)
            .err()
            .unwrap_or_else(|| panic!("stratad {args:?} started"));
        assert_eq!(refused.code, Some(2), "{args:?}: {}", refused.log);
        assert!(refused.log.contains(says), "{args:?}: {}", refused.log);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_worker_reconnects_to_a_restarted_daemon_and_the_queue_goes_on() {
    let tmp = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listen = format!("127.0.0.1:{port}");
    let (mut daemon, token) = remote_daemon(tmp.path(), &["--worker-listen", &listen]);
    let connect = daemon.workers.clone().unwrap();
    let w1 = RemoteWorker::start(&connect, Some(&token), "w1", &tmp.path().join("a"), &[]);
    wait_for_workers(&daemon, &["w1"]);
    let client = daemon.client().await;
    let run = start(&client, long_config(4)).await;
    trained_by(&client, &run).await;
    daemon.signal_and_wait("KILL");

    let (daemon, _) = remote_daemon(tmp.path(), &["--worker-listen", &listen]);
    wait_for_workers(&daemon, &["w1"]);
    let client = daemon.client().await;
    // The run the kill interrupted resumes on the worker that came back; a new one follows it.
    let interrupted = client.get_run(&run).await.unwrap().run.unwrap();
    assert_eq!(interrupted.status, RunStatus::Interrupted as i32);
    client.resume_run(&run, 0).await.expect("resume");
    let next = start(&client, short_config(3)).await;
    assert_eq!(completed(&client, &run).await, vec![1, 2, 3, 4]);
    assert_eq!(completed(&client, &next).await, vec![1, 2]);
    assert!(w1.log().contains("has moved on"), "{}", w1.log());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_worker_trains_over_tls_with_the_daemon_s_certificate() {
    let tmp = tempfile::tempdir().unwrap();
    let cert =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    let (cert_path, key_path) = (tmp.path().join("cert.pem"), tmp.path().join("key.pem"));
    std::fs::write(&cert_path, cert.cert.pem()).unwrap();
    std::fs::write(&key_path, cert.signing_key.serialize_pem()).unwrap();
    // TLS for the workers' listener only: the users' port stays plain on loopback.
    let (daemon, token) = remote_daemon(
        tmp.path(),
        &[
            "--worker-tls-cert",
            cert_path.to_str().unwrap(),
            "--worker-tls-key",
            key_path.to_str().unwrap(),
        ],
    );
    let https = daemon
        .workers
        .clone()
        .unwrap()
        .replace("http://127.0.0.1", "https://localhost");
    let w1 = RemoteWorker::start(
        &https,
        Some(&token),
        "tls-1",
        &tmp.path().join("a"),
        &["--tls-ca", cert_path.to_str().unwrap()],
    );
    wait_for_workers(&daemon, &["tls-1"]);
    let client = daemon.client().await;
    let run = start(&client, short_config(4)).await;
    assert_eq!(completed(&client, &run).await, vec![1, 2]);
    assert_eq!(runs_done(&daemon, "tls-1"), 1);
    let listed = workers(&daemon);
    assert!(
        worker(&listed, "tls-1")["address"]
            .as_str()
            .unwrap()
            .starts_with("127.0.0.1:"),
        "{listed:?}"
    );
    drop(w1);
}
