//! Runs logged from outside (CreateRun, LogEpochs, FinishRun), driven through the generated
//! client: the logging rules, the silence timeout, and external runs in list, show, compare and
//! export like trained ones.

use strata_e2e::{
    external::{self, create_request, epoch},
    show, Daemon,
};
use strata_proto::{
    create_run_request::Task, epoch_record::ValMetric, CreateRunRequest, EpochRecord,
    FinishRunRequest, LogEpochsRequest, RunStatus,
};
use tonic::Code;

/// `epoch(n)` carrying these extra scalars.
fn with_extra(n: u32, extra: &[(&str, f64)]) -> EpochRecord {
    EpochRecord {
        extra: extra.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
        ..epoch(n)
    }
}

fn log(run: &str, epochs: Vec<EpochRecord>) -> LogEpochsRequest {
    LogEpochsRequest {
        run: run.into(),
        epochs,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logged_epochs_follow_the_rules_and_runs_show_like_trained_ones() {
    let daemon = Daemon::start();
    let mut grpc = daemon.client().await.grpc();
    let created = grpc
        .create_run(create_request("outside"))
        .await
        .unwrap()
        .into_inner()
        .run
        .unwrap();
    let id = created.id.clone();
    assert!(created.external);
    assert_eq!(created.status, RunStatus::Running as i32);

    // A batch of three, stored; the same batch again is accepted and stores nothing.
    let batch: Vec<_> = (1..=3).map(epoch).collect();
    let logged = grpc.log_epochs(log(&id, batch.clone())).await.unwrap();
    assert_eq!(
        (logged.get_ref().stored, logged.get_ref().epochs_done),
        (3, 3)
    );
    let again = grpc.log_epochs(log(&id, batch)).await.unwrap();
    assert_eq!(
        (again.get_ref().stored, again.get_ref().epochs_done),
        (0, 3)
    );
    // An overlap that repeats epoch 3 and adds 4.
    let overlap = grpc
        .log_epochs(log(&id, vec![epoch(3), epoch(4)]))
        .await
        .unwrap();
    assert_eq!(overlap.get_ref().stored, 1);

    // Refused, storing nothing: a changed epoch, a gap, going back, the wrong metric, a NaN
    // rate, a wrong group list; an unknown run.
    let mut changed = epoch(4);
    changed.groups[1].grad_norm = 0.75;
    let refusals: Vec<(Vec<EpochRecord>, Code, &str)> = vec![
        (
            vec![changed, epoch(5)],
            Code::FailedPrecondition,
            "epoch 4 is already stored with groups[head].grad_norm 0.5; this batch sends 0.75",
        ),
        (
            vec![epoch(6)],
            Code::FailedPrecondition,
            "the batch starts at epoch 6",
        ),
        (
            vec![epoch(5), epoch(7)],
            Code::FailedPrecondition,
            "epoch 7 follows epoch 5",
        ),
        (
            vec![epoch(5), epoch(4)],
            Code::FailedPrecondition,
            "epoch 4 follows epoch 5",
        ),
        (
            vec![EpochRecord {
                val_metric: Some(ValMetric::ValR2(0.5)),
                ..epoch(5)
            }],
            Code::InvalidArgument,
            "the run's metric is accuracy",
        ),
        (
            vec![{
                let mut e = epoch(5);
                e.groups[0].lr = f64::NAN;
                e
            }],
            Code::InvalidArgument,
            "groups[body].lr is NaN",
        ),
        (
            vec![{
                let mut e = epoch(5);
                e.groups.pop();
                e
            }],
            Code::InvalidArgument,
            "the run's groups are [body, head]",
        ),
    ];
    for (epochs, code, message) in refusals {
        let err = grpc.log_epochs(log(&id, epochs)).await.unwrap_err();
        assert_eq!(err.code(), code, "{err:?}");
        assert!(err.message().contains(message), "{}", err.message());
    }
    let err = grpc
        .log_epochs(log("0000000000000", vec![epoch(1)]))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err:?}");
    let shown = show(&daemon, &id);
    assert_eq!(shown["epochs"].as_array().unwrap().len(), 4, "{shown}");
    assert_eq!(shown["external"], true);
    assert_eq!(shown["hyperparameters"]["optimizer"], "sgd");

    // Resume and cancel are refused, saying why.
    for command in ["cancel", "resume"] {
        let out = daemon.strata(&[command, &id]);
        assert_ne!(out.code, 0, "{out:?}");
        assert!(
            out.stderr.contains("was logged from outside"),
            "{command}: {out:?}"
        );
    }

    // Finished: no more logging; the run shows with its verdict like a trained run.
    for n in 5..=8 {
        grpc.log_epochs(log(&id, vec![epoch(n)])).await.unwrap();
    }
    let finished = grpc
        .finish_run(FinishRunRequest {
            run: id.clone(),
            status: RunStatus::Completed as i32,
            reason: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .run
        .unwrap();
    assert_eq!(finished.status, RunStatus::Completed as i32);
    let err = grpc.log_epochs(log(&id, vec![epoch(9)])).await.unwrap_err();
    assert!(err.message().contains("is completed"), "{err:?}");
    let shown = show(&daemon, &id);
    assert_eq!(shown["status"], "completed");
    assert_eq!(shown["epochs"].as_array().unwrap().len(), 8);
    assert_eq!(
        shown["analysis"]["verdict"], "good",
        "{}",
        shown["analysis"]
    );
    let text = daemon.strata(&["show", &id]);
    assert!(
        text.stdout.contains("external (logged from outside"),
        "{text:?}"
    );
    assert!(text.stdout.contains("optimizer=sgd"), "{text:?}");

    // A NaN training loss reports divergence and ends the run.
    let other = external::create(&mut grpc, create_request("diverges")).await;
    let mut bad = epoch(2);
    bad.train_loss = f64::NAN;
    let logged = grpc
        .log_epochs(log(&other, vec![epoch(1), bad]))
        .await
        .unwrap();
    assert_eq!(logged.get_ref().status, RunStatus::Diverged as i32);
    assert_eq!(show(&daemon, &other)["status"], "diverged");

    // List, compare and export take external runs like trained ones.
    let list = daemon.strata(&["list", "--json"]);
    assert_eq!(list.code, 0, "{list:?}");
    assert!(list.stdout.contains(&id), "{list:?}");
    let compare = daemon.strata(&["compare", &id, &other, "--json"]);
    assert_eq!(compare.code, 0, "{compare:?}");
    assert_eq!(
        compare.json()["best_run"],
        id.as_str(),
        "{}",
        compare.stdout
    );
    let export = daemon.strata(&["export", &id]);
    assert_eq!(export.code, 0, "{export:?}");
    assert!(export.stdout.lines().count() >= 9, "{}", export.stdout);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extra_scalars_are_stored_shown_exported_and_held_to_the_rules() {
    let daemon = Daemon::start();
    let mut grpc = daemon.client().await.grpc();
    let id = external::create(&mut grpc, create_request("extras")).await;
    let first = with_extra(1, &[("val_f1", 0.5), ("lr/warmup", 0.1)]);
    let second = with_extra(2, &[("val_f1", 0.625)]);
    let logged = grpc
        .log_epochs(log(&id, vec![first.clone(), second.clone()]))
        .await
        .unwrap();
    assert_eq!(logged.get_ref().stored, 2);
    // Re-sent as they were: accepted, nothing new.
    let again = grpc
        .log_epochs(log(&id, vec![first.clone(), second.clone()]))
        .await
        .unwrap();
    assert_eq!(again.get_ref().stored, 0);

    // Refused, storing nothing (not even a batch's good epochs): a changed, a left-out and an
    // added extra on a stored epoch; a bad name, a NaN value, too many.
    let too_many: Vec<(String, f64)> = (0..65).map(|i| (format!("s{i}"), 1.0)).collect();
    let refusals: Vec<(Vec<EpochRecord>, Code, &str)> = vec![
        (
            vec![with_extra(1, &[("val_f1", 0.75), ("lr/warmup", 0.1)])],
            Code::FailedPrecondition,
            "epoch 1 is already stored with extra[val_f1] 0.5; this batch sends 0.75",
        ),
        (
            vec![epoch(2)],
            Code::FailedPrecondition,
            "epoch 2 is already stored with extra[val_f1] 0.625; this batch leaves it out",
        ),
        (
            vec![with_extra(2, &[("val_f1", 0.625), ("extra", 1.0)])],
            Code::FailedPrecondition,
            "epoch 2 is already stored without extra[extra]; this batch sends 1",
        ),
        (
            vec![epoch(3), with_extra(4, &[("val f1", 0.5)])],
            Code::InvalidArgument,
            "\"val f1\" holds ' '",
        ),
        (
            vec![with_extra(3, &[("val_f1", f64::NAN)])],
            Code::InvalidArgument,
            "extra[val_f1] is NaN",
        ),
        (
            vec![EpochRecord {
                extra: too_many.into_iter().collect(),
                ..epoch(3)
            }],
            Code::InvalidArgument,
            "65 extra scalars; at most 64",
        ),
    ];
    for (epochs, code, message) in refusals {
        let err = grpc.log_epochs(log(&id, epochs)).await.unwrap_err();
        assert_eq!(err.code(), code, "{err:?}");
        assert!(err.message().contains(message), "{}", err.message());
    }

    // Epoch 3 is new: the refused batches stored nothing.
    let third = grpc.log_epochs(log(&id, vec![epoch(3)])).await.unwrap();
    assert_eq!(third.get_ref().stored, 1);

    // Shown in name order; an epoch without extras shows `{}`.
    let shown = show(&daemon, &id);
    let epochs = shown["epochs"].as_array().unwrap();
    assert_eq!(epochs.len(), 3, "{shown}");
    assert_eq!(
        epochs[0]["extra"],
        serde_json::json!({"lr/warmup": 0.1, "val_f1": 0.5})
    );
    assert_eq!(epochs[1]["extra"], serde_json::json!({"val_f1": 0.625}));
    assert_eq!(epochs[2]["extra"], serde_json::json!({}));

    // CSV: one column per name over all epochs, in name order, empty where an epoch lacks it.
    let export = daemon.strata(&["export", &id]);
    assert_eq!(export.code, 0, "{export:?}");
    let lines: Vec<&str> = export.stdout.lines().collect();
    assert!(
        lines[0].ends_with(",extra_lr/warmup,extra_val_f1"),
        "{}",
        lines[0]
    );
    assert!(lines[1].ends_with(",0.1,0.5"), "{}", lines[1]);
    assert!(lines[2].ends_with(",,0.625"), "{}", lines[2]);
    assert!(lines[3].ends_with(",,"), "{}", lines[3]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_external_run_becomes_interrupted() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let daemon = Daemon::start_in(&data, &["--external-timeout", "2"]);
    let mut grpc = daemon.client().await.grpc();
    let id = external::create(&mut grpc, create_request("silent")).await;
    grpc.log_epochs(log(&id, vec![epoch(1)])).await.unwrap();
    // Watching it ends with the interruption, once the timeout passes.
    let (_, events) = strata_e2e::watch_to_end(&daemon, &id);
    assert!(!events.is_empty());
    let shown = show(&daemon, &id);
    assert_eq!(shown["status"], "interrupted", "{shown}");
    assert!(
        shown["reason"]
            .as_str()
            .unwrap()
            .contains("--external-timeout"),
        "{shown}"
    );
    assert_eq!(shown["epochs"].as_array().unwrap().len(), 1);

    // At a restart, a running external run becomes interrupted too.
    let id = external::create(&mut grpc, create_request("cut off")).await;
    drop(grpc);
    let mut daemon = daemon;
    daemon.signal_and_wait("KILL");
    drop(daemon);
    let daemon = Daemon::start_in(&data, &[]);
    let shown = show(&daemon, &id);
    assert_eq!(shown["status"], "interrupted", "{shown}");
    assert!(
        shown["reason"]
            .as_str()
            .unwrap()
            .contains("logged from outside"),
        "{shown}"
    );
}

/// Issue 30, finding 8: values out of their range are refused, naming the field and what is
/// allowed, numbers printed readably; names may not hide text.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_range_values_and_invisible_characters_are_refused_by_name() {
    let daemon = Daemon::start();
    let mut grpc = daemon.client().await.grpc();
    let id = external::create(&mut grpc, create_request("ranges")).await;
    for (accuracy, says) in [(1e308, "1e308"), (1.5, "1.5"), (-0.1, "-0.1")] {
        let mut e = epoch(1);
        e.val_metric = Some(ValMetric::ValAccuracy(accuracy));
        let err = grpc.log_epochs(log(&id, vec![e])).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument);
        assert!(
            err.message().starts_with("epochs[0].val_metric: ")
                && err.message().contains(says)
                && err.message().contains("from 0 to 1")
                && err.message().len() < 200,
            "{}",
            err.message()
        );
    }
    let regression = |variance: f64| CreateRunRequest {
        task: Some(Task::TargetVariance(variance)),
        ..create_request("regression")
    };
    let err = grpc.create_run(regression(1e-320)).await.unwrap_err();
    assert!(
        err.message().starts_with("target_variance: ") && err.message().contains("at least 1e-30"),
        "{}",
        err.message()
    );
    let r2_run = external::create(&mut grpc, regression(2.0)).await;
    let mut e = epoch(1);
    e.val_metric = Some(ValMetric::ValR2(1.5));
    let err = grpc.log_epochs(log(&r2_run, vec![e])).await.unwrap_err();
    assert!(err.message().contains("at most 1"), "{}", err.message());
    let mut e = epoch(1);
    e.val_metric = Some(ValMetric::ValR2(-3.0));
    grpc.log_epochs(log(&r2_run, vec![e])).await.unwrap();

    for (name, code) in [
        ("invoice\u{202E}fdp.exe", "U+202E"),
        ("run\u{200B}", "U+200B"),
        ("two\u{2028}lines", "U+2028"),
    ] {
        let err = grpc.create_run(create_request(name)).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument);
        assert!(
            err.message().starts_with("name: ") && err.message().contains(code),
            "{}",
            err.message()
        );
        let out = daemon.strata(&["start", "--dataset", "spirals", "--name", name, "--dry-run"]);
        assert_eq!(out.code, 2, "{out:?}");
        assert!(out.stderr.contains(code), "{out:?}");
    }
    let mut sneaky = create_request("plain");
    sneaky.groups[0].name = "bo\u{200D}dy".into();
    let err = grpc.create_run(sneaky).await.unwrap_err();
    assert!(
        err.message().starts_with("groups[0]: ") && err.message().contains("U+200D"),
        "{}",
        err.message()
    );
}
