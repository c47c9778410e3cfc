//! A run of many epochs, logged from outside: what one request returns is bounded (GetRun, the
//! dashboard's run page and comparison carry at most the cap and say they were thinned), while
//! `strata export` still writes every epoch and `list` answers again and again.

use strata_e2e::{external, http, Daemon};
use strata_proto::{
    create_run_request::Task, epoch_record::ValMetric, CreateRunRequest, EpochRecord,
    GroupEpochStats, GroupRate, LogEpochsRequest,
};

/// Long enough to be thinned many times over, short enough to log in seconds.
const LOGGED_EPOCHS: u32 = 24_000;
/// GetRun's and the run page's cap (the daemon's `MAX_RETURNED_EPOCHS`).
const MAX_RETURNED_EPOCHS: usize = 2_000;
/// LogEpochs' largest batch.
const BATCH_EPOCHS: u32 = 1_000;
/// The epoch whose validation loss is lowest: a dip mid-run that an even spread would miss.
const BEST_EPOCH: u32 = 12_345;
const GROUPS: [&str; 3] = ["embed", "body", "head"];

fn create_request() -> CreateRunRequest {
    CreateRunRequest {
        name: "long".into(),
        dataset: "synthetic".into(),
        model: "mlp".into(),
        groups: external::groups(&GROUPS, 1e-3),
        task: Some(Task::Classes(10)),
        parameter_count: 100,
        train_rows: 640,
        val_rows: 160,
        steps_per_epoch: 20,
        ..Default::default()
    }
}

/// Epoch `n`: a validation loss that levels off at 1.0, with one dip at [`BEST_EPOCH`].
fn epoch(n: u32) -> EpochRecord {
    let train = 1.0 + 1.0 / f64::from(n);
    let val = if n == BEST_EPOCH { 0.5 } else { train + 0.1 };
    EpochRecord {
        epoch: n,
        train_loss: train,
        val_loss: val,
        val_metric: Some(ValMetric::ValAccuracy(0.5)),
        duration_ms: 1.0,
        samples_per_sec: 1000.0,
        groups: external::group_stats(&GROUPS, 1e-3, 1e-2),
        extra: Default::default(),
        no_validation: false,
    }
}

/// Epoch numbers of a JSON array of epochs.
fn numbers(epochs: &serde_json::Value) -> Vec<u64> {
    epochs
        .as_array()
        .expect("an array of epochs")
        .iter()
        .map(|e| e["epoch"].as_u64().expect("an epoch number"))
        .collect()
}

/// A thinned answer: within the cap, in order, with the first, the best and the last epoch.
fn assert_thinned(epochs: &[u64], what: &str) {
    assert!(
        epochs.len() <= MAX_RETURNED_EPOCHS,
        "{what}: {}",
        epochs.len()
    );
    assert!(epochs.len() > 100, "{what}: an even spread, not a handful");
    assert!(epochs.windows(2).all(|w| w[0] < w[1]), "{what}: in order");
    assert_eq!(epochs.first(), Some(&1), "{what}");
    assert_eq!(epochs.last(), Some(&u64::from(LOGGED_EPOCHS)), "{what}");
    assert!(epochs.contains(&u64::from(BEST_EPOCH)), "{what}: the best");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_run_is_answered_thinned_and_exported_whole() {
    let daemon = Daemon::start();
    let client = daemon.client().await;
    let mut grpc = client.grpc();
    let run = grpc
        .create_run(create_request())
        .await
        .unwrap()
        .into_inner()
        .run
        .unwrap();
    let id = run.id;
    for first in (1..=LOGGED_EPOCHS).step_by(BATCH_EPOCHS as usize) {
        let epochs = (first..first + BATCH_EPOCHS).map(epoch).collect();
        grpc.log_epochs(LogEpochsRequest {
            run: id.clone(),
            epochs,
        })
        .await
        .unwrap();
    }

    // GetRun: the run whole, thinned, and saying so; its analysis of every epoch.
    let detail = client.get_run(&id).await.unwrap();
    assert!(detail.epochs_thinned);
    let got: Vec<u64> = detail.epochs.iter().map(|e| u64::from(e.epoch)).collect();
    assert_thinned(&got, "GetRun");
    let analysis = detail.analysis.unwrap();
    assert_eq!(analysis.epochs, LOGGED_EPOCHS);
    assert_eq!(analysis.best_epoch, BEST_EPOCH);

    // `show --json` is GetRun's answer.
    let shown = daemon.strata(&["show", &id, "--json"]).json();
    assert_eq!(shown["epochs_thinned"], true);
    assert_thinned(&numbers(&shown["epochs"]), "show --json");

    let text = daemon.strata(&["show", &id]);
    assert!(
        text.stdout
            .contains(&format!("of {LOGGED_EPOCHS} shown, evenly spread")),
        "{}",
        text.stdout
    );

    // The dashboard's run page and comparison.
    let base = daemon.dashboard.clone().expect("the dashboard");
    let page = http::get(&base, &format!("/api/runs/{id}"), &[]);
    assert_eq!(page.status, 200, "{}", page.body);
    let page = page.json();
    assert_eq!(page["epochs_thinned"], true);
    assert_eq!(page["max_epochs"], MAX_RETURNED_EPOCHS);
    assert_thinned(&numbers(&page["epochs"]), "the run page");
    let refreshed = http::get(&base, &format!("/api/runs/{id}?epochs=false"), &[]).json();
    assert_eq!(refreshed["epochs_thinned"], true);
    assert!(refreshed.get("epochs").is_none());
    let compared = http::get(&base, &format!("/api/compare?runs={id}"), &[]).json();
    assert_eq!(compared["runs"][0]["epochs_thinned"], true);
    assert_thinned(&numbers(&compared["runs"][0]["epochs"]), "the comparison");

    // Export pages through GetRun: every epoch, each once, in order.
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("long.json");
    let exported = daemon.strata(&[
        "export",
        &id,
        "--format",
        "json",
        "-o",
        path.to_str().unwrap(),
    ]);
    assert_eq!(exported.code, 0, "{}", exported.stderr);
    let document: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(document["epochs_thinned"], false);
    let all = numbers(&document["epochs"]);
    assert_eq!(all, (1..=u64::from(LOGGED_EPOCHS)).collect::<Vec<_>>());

    // The list answers again and again (the cache's unit tests count what it serves).
    for _ in 0..2 {
        let listed = http::get(&base, "/api/runs?limit=1", &[]).json();
        assert_eq!(listed["runs"][0]["id"], id.as_str());
        assert_eq!(listed["runs"][0]["best_epoch"], BEST_EPOCH);
        let cli = daemon.strata(&["list", "--json"]).json();
        assert_eq!(cli["runs"][0]["id"], id.as_str(), "{cli}");
    }
}

/// The most groups a run may have, and an answer's cap on its epoch × group records (the
/// daemon's `MAX_RETURNED_GROUP_RECORDS`): such a run is answered with 390 epochs.
const MANY_GROUPS: usize = 256;
const MAX_RETURNED_GROUP_RECORDS: usize = 100_000;

fn wide_epoch(n: u32) -> EpochRecord {
    EpochRecord {
        groups: (0..MANY_GROUPS)
            .map(|g| GroupEpochStats {
                name: format!("g{g}"),
                lr: 1e-3,
                grad_norm: 0.5,
                weight_norm: 3.0,
                update_ratio: 1e-2,
                frozen: false,
            })
            .collect(),
        ..epoch(n)
    }
}

/// Issue 30, finding 4: on a run of the most groups, a re-sent epoch is compared alone, and every
/// answer (GetRun, a page of it, the run page, a comparison) carries a bounded number of epoch ×
/// group records — fewer epochs than a run of few groups — while export still writes them all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_of_many_groups_is_answered_within_a_bound_on_its_records() {
    const EPOCHS: u32 = 600;
    let cap = MAX_RETURNED_GROUP_RECORDS / MANY_GROUPS;
    let daemon = Daemon::start();
    let client = daemon.client().await;
    let mut grpc = client.grpc();
    let request = CreateRunRequest {
        groups: (0..MANY_GROUPS)
            .map(|g| GroupRate {
                name: format!("g{g}"),
                lr: 1e-3,
                frozen: None,
            })
            .collect(),
        ..create_request()
    };
    let id = external::create(&mut grpc, request).await;
    for first in (1..=EPOCHS).step_by(60) {
        let epochs = (first..first + 60).map(wide_epoch).collect();
        grpc.log_epochs(LogEpochsRequest {
            run: id.clone(),
            epochs,
        })
        .await
        .unwrap();
    }
    // Epoch 1 again: the same is accepted (nothing stored), a change is refused by name.
    let again = grpc
        .log_epochs(LogEpochsRequest {
            run: id.clone(),
            epochs: vec![wide_epoch(1)],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((again.stored, again.epochs_done), (0, EPOCHS));
    let mut changed = wide_epoch(1);
    changed.groups[200].grad_norm = 0.25;
    let refused = grpc
        .log_epochs(LogEpochsRequest {
            run: id.clone(),
            epochs: vec![changed],
        })
        .await
        .unwrap_err();
    assert!(
        refused.message().contains("groups[g200].grad_norm"),
        "{}",
        refused.message()
    );

    let detail = client.get_run(&id).await.unwrap();
    assert!(detail.epochs_thinned);
    assert!(detail.epochs.len() <= cap, "{}", detail.epochs.len());
    let base = daemon.dashboard.clone().expect("the dashboard");
    let page = http::get(&base, &format!("/api/runs/{id}"), &[]).json();
    assert_eq!(page["max_epochs"], cap);
    assert_eq!(page["epochs_thinned"], true);
    let shown = numbers(&page["epochs"]);
    assert!(shown.len() <= cap && shown.len() > 100, "{}", shown.len());
    assert_eq!(shown.last(), Some(&u64::from(EPOCHS)));
    let compared = http::get(&base, &format!("/api/compare?runs={id}"), &[]).json();
    assert!(numbers(&compared["runs"][0]["epochs"]).len() <= cap);

    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("wide.json");
    let exported = daemon.strata(&[
        "export",
        &id,
        "--format",
        "json",
        "-o",
        path.to_str().unwrap(),
    ]);
    assert_eq!(exported.code, 0, "{}", exported.stderr);
    let document: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(
        numbers(&document["epochs"]),
        (1..=u64::from(EPOCHS)).collect::<Vec<_>>()
    );
}
