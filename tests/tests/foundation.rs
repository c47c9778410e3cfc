//! The foundation end to end: a real daemon, the real CLI and client library, real training.

use serde_json::Value;
use strata_e2e::{close, group, start_run, watch_to_end, Daemon};
use strata_proto::{watch_event::Event, RunConfig, RunStatus, StartRunRequest};

fn epochs(show: &Value) -> &Vec<Value> {
    show["epochs"].as_array().expect("epochs array")
}

#[test]
fn a_full_run_starts_streams_and_shows_its_epochs() {
    let daemon = Daemon::start();
    let id = start_run(
        &daemon,
        &["--epochs", "3", "--lr", "1e-2", "--layer-lr", "layer0=1e-3"],
    );

    let (code, events) = watch_to_end(&daemon, &id);
    assert_eq!(
        code,
        0,
        "watch exits 0 when the run completes; log:\n{}",
        daemon.log()
    );
    let streamed: Vec<u64> = events
        .iter()
        .filter(|e| e["event"] == "epoch")
        .map(|e| e["epoch"].as_u64().unwrap())
        .collect();
    assert_eq!(streamed, vec![1, 2, 3], "each epoch exactly once, in order");
    let last = events.last().expect("events");
    assert_eq!(last["event"], "status");
    assert_eq!(last["status"], "completed");

    let show = daemon.strata(&["show", &id, "--json"]).json();
    assert_eq!(show["id"], id.as_str());
    assert_eq!(show["status"], "completed");
    assert_eq!(show["config"]["dataset"], "spirals");
    let stored = epochs(&show);
    assert_eq!(stored.len(), 3);
    for (i, epoch) in stored.iter().enumerate() {
        assert_eq!(epoch["epoch"].as_u64(), Some(i as u64 + 1));
        for field in ["train_loss", "val_loss", "val_accuracy"] {
            let value = epoch[field]
                .as_f64()
                .unwrap_or_else(|| panic!("{field} is not a finite number: {epoch}"));
            assert!(value.is_finite() && value >= 0.0, "{field} = {value}");
        }
        let gap = epoch["gap"].as_f64().unwrap();
        let expected = epoch["val_loss"].as_f64().unwrap() - epoch["train_loss"].as_f64().unwrap();
        assert!(close(gap, expected), "gap {gap} != val - train {expected}");
    }
    // The streamed epochs are the stored ones.
    let first_streamed = events.iter().find(|e| e["event"] == "epoch").unwrap();
    assert_eq!(first_streamed["train_loss"], stored[0]["train_loss"]);

    // The human view has the seed's table.
    let human = daemon.strata(&["show", &id]);
    assert_eq!(human.code, 0, "{human:?}");
    for header in ["Epoch", "Training Loss", "Validation Loss", "Gap"] {
        assert!(
            human.stdout.contains(header),
            "show lacks '{header}':\n{}",
            human.stdout
        );
    }
}

#[test]
fn per_group_rates_are_recorded_as_asked_and_frozen_weights_never_move() {
    let daemon = Daemon::start();
    // SGD with momentum and weight decay: both would move a frozen weight if it got a gradient.
    let id = start_run(
        &daemon,
        &[
            "--epochs",
            "2",
            "--optimizer",
            "sgd",
            "--momentum",
            "0.9",
            "--weight-decay",
            "0.01",
            "--lr",
            "5e-2",
            "--layer-lr",
            "layer1=2e-2",
            "--freeze",
            "layer0",
        ],
    );
    let (code, _) = watch_to_end(&daemon, &id);
    assert_eq!(code, 0, "log:\n{}", daemon.log());
    let show = daemon.strata(&["show", &id, "--json"]).json();

    let params = show["parameters"].as_array().expect("parameters");
    let rate_of = |name: &str| {
        params
            .iter()
            .find(|p| p["name"] == name)
            .unwrap_or_else(|| panic!("no {name}"))["lr"]
            .as_f64()
            .unwrap()
    };
    assert!(close(rate_of("layer1.weight"), 2e-2));
    assert!(close(rate_of("head.bias"), 5e-2));
    let frozen = params
        .iter()
        .find(|p| p["name"] == "layer0.weight")
        .unwrap();
    assert_eq!(frozen["frozen_until"], -1);

    let stored = epochs(&show);
    assert_eq!(stored.len(), 2);
    let mut layer0_norms = Vec::new();
    for epoch in stored {
        let layer0 = group(epoch, "layer0");
        assert_eq!(
            layer0["update_ratio"].as_f64(),
            Some(0.0),
            "a frozen weight moved: {layer0}"
        );
        assert_eq!(layer0["frozen"], true);
        layer0_norms.push(layer0["weight_norm"].as_f64().unwrap());
        assert!(close(group(epoch, "layer1")["lr"].as_f64().unwrap(), 2e-2));
        assert!(close(group(epoch, "head")["lr"].as_f64().unwrap(), 5e-2));
        assert!(group(epoch, "layer1")["update_ratio"].as_f64().unwrap() > 0.0);
        assert!(group(epoch, "head")["grad_norm"].as_f64().unwrap() > 0.0);
    }
    assert_eq!(
        layer0_norms[0], layer0_norms[1],
        "the frozen layer's weights changed between epochs"
    );
}

#[test]
fn runs_and_epochs_survive_a_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let daemon = Daemon::start_in(&data, &[]);
    let first = start_run(&daemon, &["--epochs", "2", "--name", "first"]);
    assert_eq!(watch_to_end(&daemon, &first).0, 0);
    let second = start_run(&daemon, &["--epochs", "1", "--tag", "restart"]);
    assert_eq!(watch_to_end(&daemon, &second).0, 0);
    let before = daemon.strata(&["show", &first, "--json"]).json();
    let status = daemon.stop();
    assert!(status.success(), "SIGTERM exits 0, got {status}");

    let daemon = Daemon::start_in(&data, &[]);
    let list = daemon.strata(&["list", "--json"]).json();
    let ids: Vec<&str> = list["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![second.as_str(), first.as_str()], "newest first");
    let after = daemon.strata(&["show", &first, "--json"]).json();
    assert_eq!(
        after["epochs"], before["epochs"],
        "epochs changed across a restart"
    );
    assert_eq!(after["name"], "first");
    // A unique prefix names a run: one digit more than it shares with the first run's id.
    let shared = first
        .bytes()
        .zip(second.bytes())
        .take_while(|(a, b)| a == b)
        .count();
    let by_prefix = daemon
        .strata(&["show", &second[..shared + 1], "--json"])
        .json();
    assert_eq!(by_prefix["id"], second.as_str());
    let tagged = daemon
        .strata(&["list", "--tag", "restart", "--json"])
        .json();
    assert_eq!(tagged["runs"].as_array().unwrap().len(), 1);
}

#[test]
fn bad_specs_are_rejected_naming_the_bad_part_and_nothing_is_stored() {
    let daemon = Daemon::start();
    let cases: &[(&[&str], &[&str])] = &[
        (
            &["--layer-lr", "nope=1e-3"],
            &["layer_lr", "nope", "layer0"],
        ),
        (&["--lr", "-1"], &["lr", "-1"]),
        (&["--freeze", "layer9"], &["freeze", "layer9"]),
        (&["--layer-lr", "layer0=abc"], &["layer_lr", "abc"]),
        (&["--schedule", "sometimes"], &["schedule", "sometimes"]),
    ];
    for (extra, mentions) in cases {
        let mut args = vec!["start"];
        args.extend_from_slice(strata_e2e::TINY_RUN);
        args.extend_from_slice(extra);
        let out = daemon.strata(&args);
        assert!(
            out.code == 2 || out.code == 1,
            "{extra:?} should fail: {out:?}"
        );
        assert_eq!(out.stderr.lines().count(), 1, "one line on stderr: {out:?}");
        for word in *mentions {
            assert!(
                out.stderr.contains(word),
                "{extra:?}: '{}' does not mention '{word}'",
                out.stderr
            );
        }
        assert!(!out.stderr.contains("panicked"), "{out:?}");
    }
    for (dataset, model, word) in [
        ("nope", "mlp:8", "dataset"),
        ("moons", "transformer", "model"),
    ] {
        let out = daemon.strata(&["start", "--dataset", dataset, "--model", model]);
        assert!(out.code == 2 || out.code == 1, "{out:?}");
        assert!(
            out.stderr.contains(word)
                && out
                    .stderr
                    .contains(if word == "dataset" { dataset } else { model }),
            "{out:?}"
        );
    }
    let list = daemon.strata(&["list", "--json"]).json();
    assert_eq!(
        list["runs"].as_array().unwrap().len(),
        0,
        "a rejected request stored a run"
    );
    let out = daemon.strata(&["show", "0123456789abcdef"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("no run"), "{out:?}");
}

#[tokio::test]
async fn watching_mid_run_and_from_an_epoch_loses_and_repeats_nothing() {
    let daemon = Daemon::start();
    let client = daemon.client().await;
    let config = RunConfig {
        dataset: "moons".into(),
        samples: Some(2000),
        model: "mlp:32,32".into(),
        epochs: Some(6),
        batch_size: Some(16),
        ..Default::default()
    };
    let started = client
        .start_run(StartRunRequest {
            config: Some(config),
            ..Default::default()
        })
        .await
        .expect("start");
    let id = started.run_id;

    // Several watchers subscribe at different moments while epochs are being committed.
    let mut watchers = Vec::new();
    for delay_ms in [0u64, 30, 120, 400] {
        let client = client.clone();
        let id = id.clone();
        watchers.push(tokio::spawn(async move {
            tokio::time::sleep(std::time::Duration::from_millis(delay_ms)).await;
            let mut stream = client.watch_run(&id, 0).await.expect("watch");
            let mut seen = Vec::new();
            let mut last_status = None;
            while let Some(event) = stream.message().await.expect("stream") {
                match event.event {
                    Some(Event::Epoch(e)) => seen.push(e.epoch),
                    Some(Event::Status(s)) => last_status = Some(s.status()),
                    _ => {}
                }
            }
            (seen, last_status)
        }));
    }
    for watcher in watchers {
        let (seen, status) = watcher.await.unwrap();
        assert_eq!(seen, vec![1, 2, 3, 4, 5, 6], "log:\n{}", daemon.log());
        assert_eq!(status, Some(RunStatus::Completed));
    }

    // A reconnecting client picks up from an epoch.
    let out = daemon.strata(&["watch", &id, "--from-epoch", "4", "--json"]);
    let resumed: Vec<u64> = out
        .json_lines()
        .iter()
        .filter(|e| e["event"] == "epoch")
        .map(|e| e["epoch"].as_u64().unwrap())
        .collect();
    assert_eq!(resumed, vec![4, 5, 6]);
}

async fn channel_for(daemon: &Daemon) -> tonic::transport::Channel {
    tonic::transport::Endpoint::from_shared(daemon.addr.clone())
        .unwrap()
        .connect()
        .await
        .unwrap()
}

#[tokio::test]
async fn health_and_reflection_serve_and_dry_run_stores_nothing() {
    let daemon = Daemon::start();
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel_for(&daemon).await);
    let reply = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: "strata.v1.Strata".into(),
        })
        .await
        .expect("health check")
        .into_inner();
    assert_eq!(
        reply.status(),
        tonic_health::pb::health_check_response::ServingStatus::Serving
    );

    // Reflection lets any gRPC tool discover the service.
    use tonic_reflection::pb::v1::{
        server_reflection_client::ServerReflectionClient,
        server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
        ServerReflectionRequest,
    };
    let mut reflection = ServerReflectionClient::new(channel_for(&daemon).await);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut responses = reflection
        .server_reflection_info(tokio_stream::iter(vec![request]))
        .await
        .expect("reflection")
        .into_inner();
    let reply = responses
        .message()
        .await
        .expect("a reflection reply")
        .expect("one message");
    let Some(MessageResponse::ListServicesResponse(list)) = reply.message_response else {
        panic!("unexpected reply {reply:?}")
    };
    let services: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    assert!(
        services.contains(&"strata.v1.Strata".to_string()),
        "{services:?}"
    );

    let mut args = vec![
        "start",
        "--dry-run",
        "--json",
        "--lr-decay",
        "0.5",
        "--lr",
        "1e-2",
        "--freeze",
        "layer0@2",
    ];
    args.extend_from_slice(strata_e2e::TINY_RUN);
    let table = daemon.strata(&args).json();
    let params = table["parameters"].as_array().unwrap();
    assert_eq!(params.len(), 6);
    let by_name = |n: &str| params.iter().find(|p| p["name"] == n).unwrap().clone();
    assert!(close(by_name("head.weight")["lr"].as_f64().unwrap(), 1e-2));
    assert!(close(
        by_name("layer1.weight")["lr"].as_f64().unwrap(),
        5e-3
    ));
    assert!(close(
        by_name("layer0.bias")["lr"].as_f64().unwrap(),
        2.5e-3
    ));
    assert_eq!(by_name("layer0.weight")["frozen_until"], 2);
    assert_eq!(
        by_name("layer0.weight")["shape"],
        serde_json::json!([16, 2])
    );
    let list = daemon.strata(&["list", "--json"]).json();
    assert_eq!(list["runs"].as_array().unwrap().len(), 0);
}
