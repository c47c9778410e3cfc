//! What a logger that survives real training relies on, through the generated client: a client
//! key that makes CreateRun retryable and continues an interrupted run, an empty LogEpochs as a
//! heartbeat, step records (stored, resent, bounded, thinned), and epochs without validation.

use std::time::Duration;

use strata_e2e::{external, show, Daemon};
use strata_proto::{
    create_run_request::Task, epoch_record::ValMetric, CreateRunRequest, EpochRecord,
    FinishRunRequest, GetRunStepsRequest, LogEpochsRequest, LogStepsRequest, RunStatus, StepRecord,
};
use tonic::Code;

fn create_request(name: &str, key: &str) -> CreateRunRequest {
    CreateRunRequest {
        name: name.into(),
        tags: vec![],
        hyperparameters: [("optimizer".to_string(), "adamw".to_string())].into(),
        dataset: "cifar-10".into(),
        model: "resnet18".into(),
        groups: external::groups(&["backbone", "head"], 1e-3),
        task: Some(Task::Classes(10)),
        parameter_count: 0,
        train_rows: 0,
        val_rows: 0,
        steps_per_epoch: 0,
        client_key: key.into(),
    }
}

fn epoch(n: u32) -> EpochRecord {
    let loss = 2.3 / f64::from(n).sqrt();
    EpochRecord {
        epoch: n,
        train_loss: loss,
        val_loss: loss * 1.05,
        val_metric: Some(ValMetric::ValAccuracy(0.1 + 0.08 * f64::from(n))),
        duration_ms: 10.0,
        samples_per_sec: 0.0,
        groups: external::group_stats(&["backbone", "head"], 1e-3, 2e-2),
        extra: Default::default(),
        no_validation: false,
    }
}

fn log(run: &str, epochs: Vec<EpochRecord>) -> LogEpochsRequest {
    LogEpochsRequest {
        run: run.into(),
        epochs,
    }
}

fn step(n: u64, scalars: &[(&str, f64)]) -> StepRecord {
    StepRecord {
        step: n,
        epoch: 1,
        scalars: scalars.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
    }
}

fn steps(run: &str, steps: Vec<StepRecord>) -> LogStepsRequest {
    LogStepsRequest {
        run: run.into(),
        steps,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_key_finds_its_run_again_and_continues_it_once_interrupted() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let daemon = Daemon::start_in(&data, &["--external-timeout", "1"]);
    let mut grpc = daemon.client().await.grpc();
    let key = "run-3f2a9c1e-7d4b";
    let first = grpc
        .create_run(create_request("keyed", key))
        .await
        .unwrap()
        .into_inner();
    assert!(!first.existing);
    assert_eq!(first.silence_timeout_ms, 1000);
    let id = first.run.unwrap().id;
    // A retry whose first answer was lost: the same run, nothing created.
    let again = grpc
        .create_run(create_request("keyed", key))
        .await
        .unwrap()
        .into_inner();
    assert!(again.existing);
    assert_eq!(again.run.as_ref().unwrap().id, id);
    assert_eq!(again.run.unwrap().client_key, key);
    grpc.log_epochs(log(&id, vec![epoch(1), epoch(2)]))
        .await
        .unwrap();

    // Another run's shape under the same key is refused, naming the key.
    let mut other = create_request("keyed", key);
    other.groups.pop();
    let err = grpc.create_run(other).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    assert!(err.message().contains("client_key") && err.message().contains("[backbone, head]"));
    for bad in ["has space", ".hidden", &"k".repeat(65)] {
        let err = grpc
            .create_run(create_request("keyed", bad))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{bad}: {err:?}");
        assert!(err.message().contains("client_key"), "{}", err.message());
    }

    // Silent past the timeout: interrupted; its client comes back and goes on from epoch 3.
    let (_, _) = strata_e2e::watch_to_end(&daemon, &id);
    assert_eq!(show(&daemon, &id)["status"], "interrupted");
    let back = grpc
        .create_run(create_request("keyed", key))
        .await
        .unwrap()
        .into_inner();
    assert!(back.existing);
    let run = back.run.unwrap();
    assert_eq!(
        (run.id.as_str(), run.status),
        (id.as_str(), RunStatus::Running as i32)
    );
    assert_eq!((run.epochs_done, run.resumes), (2, 1));
    grpc.log_epochs(log(&id, vec![epoch(2), epoch(3)]))
        .await
        .unwrap();

    // A daemon stopped and started again: interrupted, then continued by the same key.
    drop(grpc);
    let mut daemon = daemon;
    daemon.signal_and_wait("TERM");
    drop(daemon);
    let daemon = Daemon::start_in(&data, &["--external-timeout", "30"]);
    assert_eq!(show(&daemon, &id)["status"], "interrupted");
    let mut grpc = daemon.client().await.grpc();
    let back = grpc
        .create_run(create_request("keyed", key))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(back.run.as_ref().unwrap().status, RunStatus::Running as i32);
    grpc.log_epochs(log(&id, (1..=4).map(epoch).collect()))
        .await
        .unwrap();
    grpc.finish_run(FinishRunRequest {
        run: id.clone(),
        status: RunStatus::Completed as i32,
        reason: String::new(),
    })
    .await
    .unwrap();
    // A finished run is answered as it ended; a spool replayed again stores nothing new.
    let done = grpc
        .create_run(create_request("keyed", key))
        .await
        .unwrap()
        .into_inner();
    assert!(done.existing);
    assert_eq!(done.run.unwrap().status, RunStatus::Completed as i32);
    let shown = show(&daemon, &id);
    let epochs: Vec<u64> = shown["epochs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["epoch"].as_u64().unwrap())
        .collect();
    assert_eq!(epochs, [1, 2, 3, 4], "every epoch exactly once");
    assert_eq!(shown["client_key"], key);
    let listed = daemon.strata(&["list", "--json"]).json();
    assert_eq!(
        listed["runs"].as_array().unwrap().len(),
        1,
        "one run for one key"
    );

    // Deleted, the key is free again.
    assert_eq!(daemon.strata(&["delete", &id]).code, 0);
    let fresh = grpc
        .create_run(create_request("keyed", key))
        .await
        .unwrap()
        .into_inner();
    assert!(!fresh.existing);
    assert_ne!(fresh.run.unwrap().id, id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeats_and_steps_keep_a_run_with_long_epochs_alive() {
    let daemon = Daemon::start_in(
        &tempfile::tempdir().unwrap().keep().join("data"),
        &["--external-timeout", "3"],
    );
    let mut grpc = daemon.client().await.grpc();
    let id = external::create(&mut grpc, create_request("long epochs", "")).await;
    // Three times the timeout without an epoch: an empty batch (or a step) every 300 ms.
    for i in 0..30u64 {
        if i % 2 == 0 {
            let beat = grpc.log_epochs(log(&id, vec![])).await.unwrap();
            assert_eq!(beat.get_ref().stored, 0);
            assert_eq!(beat.get_ref().status, RunStatus::Running as i32);
        } else {
            grpc.log_steps(steps(&id, vec![step(i, &[("train_loss", 1.0)])]))
                .await
                .unwrap();
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert_eq!(show(&daemon, &id)["status"], "running");
    grpc.log_epochs(log(&id, vec![epoch(1)])).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn step_records_are_stored_once_bounded_and_thinned_for_display() {
    let daemon = Daemon::start();
    let mut grpc = daemon.client().await.grpc();
    let id = external::create(&mut grpc, create_request("steps", "")).await;
    let batch: Vec<StepRecord> = (1..=100)
        .map(|n| step(n * 10, &[("train_loss", 1.0 / n as f64), ("lr/head", 1e-3)]))
        .collect();
    let logged = grpc.log_steps(steps(&id, batch.clone())).await.unwrap();
    assert_eq!(
        (logged.get_ref().stored, logged.get_ref().last_step),
        (100, 1000)
    );
    // Sent again with more: only the new ones are stored.
    let mut more = batch[50..].to_vec();
    more.push(step(1010, &[("train_loss", 0.001)]));
    let logged = grpc.log_steps(steps(&id, more)).await.unwrap();
    assert_eq!(
        (logged.get_ref().stored, logged.get_ref().last_step),
        (1, 1010)
    );

    let all = grpc
        .get_run_steps(GetRunStepsRequest {
            run: id.clone(),
            max_points: 0,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (all.steps.len(), all.stored_steps, all.thinned),
        (101, 101, false)
    );
    assert_eq!(all.steps[0], batch[0]);
    assert_eq!(all.steps[100].scalars.len(), 1);
    let thinned = grpc
        .get_run_steps(GetRunStepsRequest {
            run: id.clone(),
            max_points: 11,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(thinned.thinned);
    let kept: Vec<u64> = thinned.steps.iter().map(|s| s.step).collect();
    assert_eq!(kept.len(), 11);
    assert_eq!(
        (kept[0], kept[10]),
        (10, 1010),
        "the first and the last kept"
    );

    // Refused, storing nothing: steps going back, a bad name, too many points asked.
    let err = grpc
        .log_steps(steps(&id, vec![step(2000, &[]), step(1999, &[])]))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("steps[1].step"), "{}", err.message());
    let err = grpc
        .log_steps(steps(&id, vec![step(2000, &[("train loss", 1.0)])]))
        .await
        .unwrap_err();
    assert!(
        err.message().contains("steps[0].scalars"),
        "{}",
        err.message()
    );
    let err = grpc
        .get_run_steps(GetRunStepsRequest {
            run: id.clone(),
            max_points: 1_000_000,
        })
        .await
        .unwrap_err();
    assert!(err.message().contains("max_points"), "{}", err.message());

    // The bound: a run holds at most 2,000,000 step scalars; past it RESOURCE_EXHAUSTED.
    let scalars: Vec<(String, f64)> = (0..8).map(|i| (format!("s{i}"), 0.5)).collect();
    let mut next = 2000u64;
    let err = loop {
        // 5,000 steps of 8 scalars: ~640 KB, under the daemon's 1 MiB a request.
        let batch: Vec<StepRecord> = (0..5_000)
            .map(|i| StepRecord {
                step: next + i,
                epoch: 2,
                scalars: scalars.iter().cloned().collect(),
            })
            .collect();
        next += 5_000;
        match grpc.log_steps(steps(&id, batch)).await {
            Ok(_) => assert!(next < 400_000, "the bound never came"),
            Err(err) => break err,
        }
    };
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    assert!(err.message().contains("2000000"), "{}", err.message());
    let stored = grpc
        .get_run_steps(GetRunStepsRequest {
            run: id.clone(),
            max_points: 100,
        })
        .await
        .unwrap()
        .into_inner();
    // 201 scalars first, then 40,000 a batch: the 50th batch would pass 2,000,000.
    assert_eq!(stored.stored_steps, 101 + 49 * 5_000);
    assert_eq!(stored.steps.len(), 100);

    // The dashboard draws them by column.
    let base = daemon.dashboard.clone().unwrap();
    let answer = strata_e2e::http::get(&base, &format!("/api/runs/{id}/steps?max_points=5"), &[]);
    let body = answer.json();
    assert_eq!(body["steps"].as_array().unwrap().len(), 5);
    assert_eq!(body["scalars"]["train_loss"].as_array().unwrap().len(), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn epochs_without_validation_are_stored_and_judged_on_what_they_have() {
    let daemon = Daemon::start();
    let mut grpc = daemon.client().await.grpc();
    let id = external::create(&mut grpc, create_request("no validation", "")).await;
    let unvalidated = |n: u32| EpochRecord {
        val_loss: 0.0,
        val_metric: None,
        no_validation: true,
        ..epoch(n)
    };
    grpc.log_epochs(log(&id, (1..=6).map(unvalidated).collect()))
        .await
        .unwrap();
    // Sent again, bit for bit: skipped.
    let again = grpc
        .log_epochs(log(&id, vec![unvalidated(6)]))
        .await
        .unwrap();
    assert_eq!(again.get_ref().stored, 0);
    // A metric on an epoch not validated contradicts it.
    let err = grpc
        .log_epochs(log(
            &id,
            vec![EpochRecord {
                val_metric: Some(ValMetric::ValAccuracy(0.5)),
                ..unvalidated(7)
            }],
        ))
        .await
        .unwrap_err();
    assert!(err.message().contains("no_validation"), "{}", err.message());
    // A validated loss without its metric is fine.
    grpc.log_epochs(log(
        &id,
        vec![EpochRecord {
            val_metric: None,
            ..epoch(7)
        }],
    ))
    .await
    .unwrap();
    let shown = show(&daemon, &id);
    let epochs = shown["epochs"].as_array().unwrap();
    assert_eq!(epochs[0]["no_validation"], true);
    assert!(epochs[0]["val_loss"].is_null(), "{}", epochs[0]);
    assert_eq!(epochs[6]["no_validation"], false);
    let reason = shown["analysis"]["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("judged on the 1 of 7 epochs that were validated"),
        "{reason}"
    );
    let text = daemon.strata(&["show", &id]);
    assert!(text.stdout.contains("—"), "{}", text.stdout);
}
