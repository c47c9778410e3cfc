//! What the daemon holds while runs are live is bounded (issue 30, finding 3): queued runs and
//! live external runs up to their flags, refused beyond with RESOURCE_EXHAUSTED naming the flag,
//! room given back as runs start or end; shutdown records them all and exits within its grace.

use std::time::Duration;

use strata_e2e::{external, start_run, Daemon};
use strata_proto::{FinishRunRequest, RunStatus};
use tonic::Code;

/// Runs each limit allows in these tests.
const LIMIT: usize = 20;
/// Shutdown's grace (the README's); the bound only turns a hang into a failure.
const GRACE: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_and_external_runs_are_bounded_and_shutdown_records_them_all_in_its_grace() {
    let limit = LIMIT.to_string();
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let daemon = Daemon::start_in(
        &data,
        &["--max-queued-runs", &limit, "--max-external-runs", &limit],
    );
    let mut grpc = daemon.client().await.grpc();

    // External runs: LIMIT live, then refused; a finished one gives its place back.
    let mut external = Vec::new();
    for i in 0..LIMIT {
        external.push(external::log_run(&mut grpc, &format!("x{i}"), 2, 2).await);
    }
    let refused = grpc
        .create_run(external::create_request("one too many"))
        .await
        .expect_err("refused at the limit");
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    assert!(
        refused.message().contains("--max-external-runs 20")
            && refused.message().contains("FinishRun"),
        "{}",
        refused.message()
    );
    grpc.finish_run(FinishRunRequest {
        run: external.remove(0),
        status: RunStatus::Completed as i32,
        reason: String::new(),
    })
    .await
    .unwrap();
    external.push(external::log_run(&mut grpc, "in its place", 2, 2).await);

    // Queued runs: one trains (it never ends by itself), LIMIT wait, then refused — a run with
    // its twin needs two places.
    let training = start_run(&daemon, &["--epochs", "100000"]);
    while strata_e2e::show(&daemon, &training)["status"] != "running" {
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut queued = Vec::new();
    for _ in 0..LIMIT - 1 {
        queued.push(start_run(&daemon, &["--epochs", "3"]));
    }
    let out = daemon.strata(&[
        "start",
        "--dataset",
        "spirals",
        "--epochs",
        "3",
        "--baseline",
    ]);
    assert_ne!(out.code, 0, "{out:?}");
    assert!(out.stderr.contains("--max-queued-runs 20"), "{out:?}");
    queued.push(start_run(&daemon, &["--epochs", "3"]));
    let out = daemon.strata(&["start", "--dataset", "spirals", "--epochs", "3"]);
    assert_ne!(out.code, 0, "{out:?}");
    assert!(
        out.stderr.contains("20 run(s) are queued") && out.stderr.contains("--max-queued-runs"),
        "{out:?}"
    );
    let list = daemon
        .strata(&["list", "--status", "queued", "--json"])
        .json();
    assert_eq!(list["runs"].as_array().unwrap().len(), LIMIT);

    // Shutdown: everything recorded, within the grace.
    let data_dir = daemon.data_dir.clone();
    let status = daemon
        .stop_within(GRACE)
        .expect("stratad stopped within its grace");
    assert!(status.success());
    let daemon = Daemon::start_in(&data_dir, &[]);
    for id in queued.iter().chain(&external).chain([&training]) {
        let show = daemon.strata(&["show", id, "--json"]).json();
        assert_eq!(show["status"], "interrupted", "{id}: {show}");
        assert!(
            show["reason"].as_str().unwrap().contains("shut down"),
            "{id}: {show}"
        );
    }
}
