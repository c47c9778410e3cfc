//! The labelled curves (`tests/curves/runs.json`: real PyTorch runs, each labelled blind by two
//! practitioners under `tests/curves/RUBRIC.md`), replayed through a daemon as a user's logger
//! would send them — `CreateRun` with the groups at their first epoch's rates, the task, rows and
//! steps per epoch; `LogEpochs` up to and including the first non-finite loss; `FinishRun`
//! completed unless the run diverged — and judged by what `GetRun` answers:
//! - the verdict is one a labeller gave for at least 95% of the runs;
//! - the group the configuration set far off its textbook rate (`wrong_group`) is found, in that
//!   direction, for at least 90% of the runs that have one;
//! - at most 5% of the groups of runs whose every group sits at a textbook rate are flagged.
//!
//! `cargo test -p strata-e2e --test e2e -- curves:: --nocapture` prints every run's verdict and reason;
//! the README's agreement table is this test's.

use std::collections::BTreeMap;

use serde_json::Value;
use strata_e2e::{repo_root, Daemon};
use strata_proto::{
    create_run_request::Task, epoch_record::ValMetric, CreateRunRequest, Diagnosis, EpochRecord,
    FinishRunRequest, GetRunRequest, GroupEpochStats, GroupRate, LogEpochsRequest, RunStatus,
    Verdict,
};

/// A JSON number, or NaN for `null` (a non-finite value in the table).
fn number(value: &Value) -> f64 {
    value.as_f64().unwrap_or(f64::NAN)
}

/// The requests a logger sends for one labelled run.
fn replay(run: &Value) -> (CreateRunRequest, Vec<EpochRecord>, bool) {
    let classification = run["task"] == "classification";
    let groups: Vec<String> = run["groups"]
        .as_array()
        .expect("groups")
        .iter()
        .map(|g| g.as_str().expect("group name").to_string())
        .collect();
    let first = &run["epochs"][0]["groups"];
    let create = CreateRunRequest {
        name: run["id"].as_str().expect("id").to_string(),
        tags: vec!["labelled".into()],
        hyperparameters: Default::default(),
        dataset: "a labelled curve".into(),
        model: "from the table".into(),
        groups: groups
            .iter()
            .enumerate()
            .map(|(i, name)| GroupRate {
                name: name.clone(),
                lr: first[i]["lr"].as_f64().unwrap_or(0.0),
                frozen: None,
            })
            .collect(),
        task: Some(if classification {
            Task::Classes(run["classes"].as_u64().expect("classes") as u32)
        } else {
            Task::TargetVariance(number(&run["target_variance"]))
        }),
        parameter_count: 0,
        train_rows: run["train_rows"].as_u64().unwrap_or(0),
        val_rows: run["val_rows"].as_u64().unwrap_or(0),
        steps_per_epoch: run["steps_per_epoch"].as_u64().unwrap_or(0),
        client_key: String::new(),
    };
    let mut epochs = Vec::new();
    let mut diverged = false;
    for e in run["epochs"].as_array().expect("epochs") {
        let metric = number(&e["val_metric"]);
        let record = EpochRecord {
            epoch: e["epoch"].as_u64().expect("epoch") as u32,
            train_loss: number(&e["train_loss"]),
            val_loss: number(&e["val_loss"]),
            val_metric: Some(if classification {
                ValMetric::ValAccuracy(metric)
            } else {
                ValMetric::ValR2(metric)
            }),
            duration_ms: 0.0,
            samples_per_sec: 0.0,
            groups: e["groups"]
                .as_array()
                .expect("groups")
                .iter()
                .map(|g| {
                    let lr = g["lr"].as_f64().unwrap_or(0.0);
                    GroupEpochStats {
                        name: g["name"].as_str().expect("name").to_string(),
                        lr,
                        grad_norm: number(&g["grad_norm"]),
                        weight_norm: number(&g["weight_norm"]),
                        update_ratio: number(&g["update_ratio"]),
                        // The table gives a frozen group's rate as 0.
                        frozen: lr == 0.0,
                    }
                })
                .collect(),
            extra: Default::default(),
            no_validation: false,
        };
        diverged = !(record.train_loss.is_finite() && record.val_loss.is_finite());
        epochs.push(record);
        if diverged {
            break;
        }
    }
    (create, epochs, diverged)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn labelled_curves_replayed_through_a_daemon_agree_with_their_labellers() {
    let path = repo_root().join("tests/curves/runs.json");
    let runs: Vec<Value> =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("tests/curves/runs.json"))
            .expect("runs.json parses");
    let daemon = Daemon::start();
    let mut grpc = daemon.client().await.grpc();
    let (mut agree, mut named, mut found, mut textbook_groups, mut false_alarms) = (0, 0, 0, 0, 0);
    let mut disagreements = Vec::new();
    let mut table: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for run in &runs {
        let id = run["id"].as_str().expect("id");
        let (create, epochs, diverged) = replay(run);
        let created = grpc
            .create_run(create)
            .await
            .unwrap_or_else(|e| panic!("{id}: CreateRun: {e}"))
            .into_inner();
        let run_id = created.run.expect("the new run").id;
        for batch in epochs.chunks(1000) {
            grpc.log_epochs(LogEpochsRequest {
                run: run_id.clone(),
                epochs: batch.to_vec(),
            })
            .await
            .unwrap_or_else(|e| panic!("{id}: LogEpochs: {e}"));
        }
        if !diverged {
            grpc.finish_run(FinishRunRequest {
                run: run_id.clone(),
                status: RunStatus::Completed as i32,
                reason: String::new(),
            })
            .await
            .unwrap_or_else(|e| panic!("{id}: FinishRun: {e}"));
        }
        let answer = grpc
            .get_run(GetRunRequest {
                run: run_id.clone(),
                ..Default::default()
            })
            .await
            .unwrap_or_else(|e| panic!("{id}: GetRun: {e}"))
            .into_inner();
        let analysis = answer.analysis.expect("an analysis");
        let verdict = analysis.verdict().label();
        let acceptable: Vec<&str> = run["labels"]["acceptable"]
            .as_array()
            .expect("acceptable")
            .iter()
            .map(|v| v.as_str().expect("label"))
            .collect();
        let ok = acceptable.contains(&verdict);
        agree += usize::from(ok);
        let first_choice = run["labels"]["first_choices"][0].as_str().unwrap_or("?");
        let row = table.entry(first_choice.to_string()).or_default();
        row.0 += usize::from(ok);
        row.1 += 1;
        if !ok {
            disagreements.push(format!("{id}: {verdict} (labels {acceptable:?})"));
        }
        let diagnosis_of = |group: &str| {
            analysis
                .groups
                .iter()
                .find(|g| g.name == group)
                .map(|g| g.diagnosis().label())
        };
        if let Some(wrong) = run["wrong_group"].as_object() {
            named += 1;
            let group = wrong["group"].as_str().expect("group");
            let direction = wrong["direction"].as_str().expect("direction");
            found += usize::from(diagnosis_of(group) == Some(direction));
        }
        if run["all_groups_reasonable"] == true {
            textbook_groups += analysis.groups.len();
            false_alarms += analysis
                .groups
                .iter()
                .filter(|g| matches!(g.diagnosis(), Diagnosis::TooHigh | Diagnosis::TooLow))
                .count();
        }
        println!(
            "{} {id} {verdict:>12} {acceptable:?}\n    {}",
            if ok { "  " } else { "XX" },
            analysis.reason
        );
    }
    println!("| labellers' first choice | runs | agreed |");
    for (label, (ok, n)) in &table {
        println!("| {label} | {n} | {ok} |");
    }
    println!(
        "agreement {agree}/{}; wrong groups found {found}/{named}; false alarms {false_alarms}/{textbook_groups}",
        runs.len()
    );
    assert!(
        agree * 100 >= 95 * runs.len(),
        "the verdict is one the labellers gave for {agree} of {} runs; disagreements: {disagreements:#?}",
        runs.len()
    );
    assert!(
        found * 100 >= 90 * named,
        "{found} of {named} wrongly-set groups found"
    );
    assert!(
        false_alarms * 100 <= 5 * textbook_groups,
        "{false_alarms} of {textbook_groups} groups at textbook rates flagged"
    );
    // Every run is listed once, and a replayed run reads back like any external run.
    let listed = daemon.strata(&["list", "--json", "--tag", "labelled"]);
    let listed = listed.json();
    assert_eq!(
        listed["runs"].as_array().map(Vec::len),
        Some(runs.len()),
        "{listed}"
    );
}

/// An external run is told the change to make in its own loop, not a CLI flag, and what it
/// logged of its schedule is heeded: a run that bounces under a logged cosine schedule is told to
/// lower its rate or warm it up — not to use cosine.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn external_runs_get_advice_in_their_own_terms() {
    let daemon = Daemon::start();
    let mut grpc = daemon.client().await.grpc();
    let bouncing = [
        (1.0, 1.0),
        (0.7, 0.6),
        (0.8, 0.9),
        (0.5, 0.5),
        (0.7, 0.8),
        (0.4, 0.4),
        (0.6, 0.7),
        (0.35, 0.38),
    ];
    for (hyperparameters, wanted, unwanted) in [
        (
            vec![],
            "or decay the rate over the run (e.g. a cosine schedule)",
            "--",
        ),
        (
            vec![("scheduler", "CosineAnnealingLR")],
            "or warm the rate up over the first steps",
            "cosine",
        ),
    ] {
        let created = grpc
            .create_run(CreateRunRequest {
                name: "bouncing".into(),
                tags: vec![],
                hyperparameters: hyperparameters
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                dataset: "three classes".into(),
                model: "mlp".into(),
                groups: vec![GroupRate {
                    name: "body".into(),
                    lr: 0.1,
                    frozen: None,
                }],
                task: Some(Task::Classes(3)),
                parameter_count: 0,
                train_rows: 320,
                val_rows: 80,
                steps_per_epoch: 10,
                client_key: String::new(),
            })
            .await
            .expect("CreateRun")
            .into_inner();
        let id = created.run.expect("run").id;
        let epochs = bouncing
            .iter()
            .enumerate()
            .map(|(i, &(train, val))| EpochRecord {
                epoch: i as u32 + 1,
                train_loss: train,
                val_loss: val,
                val_metric: Some(ValMetric::ValAccuracy(0.5)),
                duration_ms: 0.0,
                samples_per_sec: 0.0,
                groups: vec![GroupEpochStats {
                    name: "body".into(),
                    lr: 0.1,
                    grad_norm: 1.0,
                    weight_norm: 1.0,
                    update_ratio: 0.5,
                    frozen: false,
                }],
                extra: Default::default(),
                no_validation: false,
            })
            .collect();
        grpc.log_epochs(LogEpochsRequest {
            run: id.clone(),
            epochs,
        })
        .await
        .expect("LogEpochs");
        let analysis = grpc
            .get_run(GetRunRequest {
                run: id,
                ..Default::default()
            })
            .await
            .expect("GetRun")
            .into_inner()
            .analysis
            .expect("analysis");
        assert_eq!(analysis.verdict(), Verdict::Unstable, "{}", analysis.reason);
        assert!(analysis.reason.contains(wanted), "{}", analysis.reason);
        assert!(!analysis.reason.contains(unwanted), "{}", analysis.reason);
        for group in &analysis.groups {
            assert!(!group.advice.contains("--"), "{}", group.advice);
        }
    }
}
