//! Nothing lost, nothing crashes: kills, shutdowns, cancel, queue, resume, divergence, slow
//! watchers, hostile requests, auth and TLS — against a real daemon process.

use std::time::Duration;

use serde_json::Value;
use strata_client::Client;
use strata_e2e::{long_config, start_config, start_run, strata_with, watch_to_end, Daemon};
use strata_proto::{
    watch_event::Event, EpochRecord, ListRunsRequest, RunConfig, RunStatus, StartRunRequest,
};
use tonic::Code;

/// Streams `run` until `count` epochs arrived; returns them.
async fn first_epochs(client: &Client, run: &str, count: usize) -> Vec<EpochRecord> {
    let mut stream = client.watch_run(run, 0).await.expect("watch");
    let mut seen = Vec::new();
    while let Some(event) = stream.message().await.expect("stream") {
        if let Some(Event::Epoch(epoch)) = event.event {
            seen.push(epoch);
            if seen.len() == count {
                break;
            }
        }
    }
    assert_eq!(seen.len(), count, "the run ended before {count} epochs");
    seen
}

async fn status_of(client: &Client, run: &str) -> RunStatus {
    client
        .get_run(run)
        .await
        .expect("get")
        .run
        .expect("run")
        .status()
}

/// Polls until `run` has status `wanted`. The deadline (5 min) only turns a hang into a failure;
/// nothing here depends on how fast the machine is.
async fn wait_for_status(client: &Client, run: &str, wanted: RunStatus) {
    for _ in 0..6000 {
        if status_of(client, run).await == wanted {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("run {run} never became {}", wanted.label());
}

/// The checkpoint files in a run's folder (which also holds a copy of its record, `run.pb`).
fn checkpoints(daemon_data: &std::path::Path, run: &str) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(daemon_data.join("runs").join(run))
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|name| name.ends_with(".safetensors"))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

#[tokio::test]
async fn sigkill_mid_training_loses_no_seen_epoch_and_the_run_resumes_to_the_end() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let mut daemon = Daemon::start_in(&data, &[]);
    let client = daemon.client().await;
    // Far more epochs than it can train before the kill, however fast the machine.
    let id = start_config(&client, long_config(100_000)).await;
    let seen = first_epochs(&client, &id, 3).await;
    let status = daemon.signal_and_wait("KILL");
    assert!(!status.success());

    let daemon = Daemon::start_in(&data, &[]);
    let client = daemon.client().await;
    let after = client.get_run(&id).await.expect("the run survives");
    let run = after.run.unwrap();
    assert_eq!(
        run.status(),
        RunStatus::Interrupted,
        "reason: {}",
        run.reason
    );
    assert!(
        after.epochs.len() >= seen.len(),
        "stored {} < seen {}",
        after.epochs.len(),
        seen.len()
    );
    assert_eq!(
        &after.epochs[..seen.len()],
        &seen[..],
        "an epoch the client saw changed or vanished"
    );
    let done = after.epochs.len() as u32;

    // Resume to the end: three epochs more than it kept.
    let target = done + 3;
    let out = daemon.strata(&[
        "resume",
        &id,
        "--epochs",
        &target.to_string(),
        "--follow",
        "--json",
    ]);
    assert_eq!(out.code, 0, "{out:?}\n{}", daemon.log());
    let show = daemon.strata(&["show", &id, "--json"]).json();
    assert_eq!(show["status"], "completed");
    assert_eq!(show["resumes"], 1);
    let numbers: Vec<u64> = show["epochs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["epoch"].as_u64().unwrap())
        .collect();
    assert_eq!(
        numbers,
        (1..=u64::from(target)).collect::<Vec<u64>>(),
        "epochs continue the numbering"
    );
    // The curve continues where it left off: the first resumed epoch is not a restart from
    // scratch (a fresh model's first epoch loss is far higher than epoch `done`'s).
    let train = |e: u32| {
        show["epochs"][e as usize - 1]["train_loss"]
            .as_f64()
            .unwrap()
    };
    assert!(
        train(done + 1) < train(1) * 0.8,
        "epoch {} loss {} vs first {}",
        done + 1,
        train(done + 1),
        train(1)
    );
    assert_eq!(
        show["epochs"][0]["train_loss"].as_f64(),
        Some(seen[0].train_loss)
    );
}

#[tokio::test]
async fn sigterm_interrupts_checkpoints_and_exits_zero_then_resume_extends() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let daemon = Daemon::start_in(&data, &["--keep-checkpoints", "2"]);
    let client = daemon.client().await;
    let id = start_config(&client, long_config(100_000)).await;
    first_epochs(&client, &id, 3).await;
    let status = daemon.stop();
    assert!(status.success(), "SIGTERM exits 0, got {status}");

    let daemon = Daemon::start_in(&data, &[]);
    let client = daemon.client().await;
    let after = client.get_run(&id).await.unwrap();
    let run = after.run.unwrap();
    assert_eq!(run.status(), RunStatus::Interrupted);
    assert!(run.reason.contains("shut down"), "{}", run.reason);
    let done = after.epochs.len() as u32;
    let files = checkpoints(&data, &id);
    assert_eq!(files.len(), 2, "keep 2 checkpoints: {files:?}");
    assert!(
        files.last().unwrap().contains(&format!("{done:06}")),
        "{files:?} lacks epoch {done}"
    );

    // Resume to two more epochs than it has.
    let target = (done + 2).to_string();
    let out = daemon.strata(&["resume", &id, "--epochs", &target, "--follow", "--json"]);
    assert_eq!(out.code, 0, "{out:?}");
    let show = daemon.strata(&["show", &id, "--json"]).json();
    assert_eq!(show["epochs"].as_array().unwrap().len() as u32, done + 2);
    assert_eq!(show["status"], "completed");
    // A completed run resumes only to more epochs.
    let out = daemon.strata(&["resume", &id]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("completed"), "{out:?}");
}

#[tokio::test]
async fn queue_is_fifo_with_positions_and_cancel_keeps_epochs() {
    let tmp = tempfile::tempdir().unwrap();
    let daemon = Daemon::start_in(&tmp.path().join("data"), &["--max-concurrent-runs", "1"]);
    let client = daemon.client().await;
    let first = start_config(&client, long_config(100_000)).await;
    // The first run holds the one slot before the others are queued behind it.
    wait_for_status(&client, &first, RunStatus::Running).await;
    let second = start_config(
        &client,
        RunConfig {
            epochs: Some(2),
            samples: Some(300),
            ..long_config(2)
        },
    )
    .await;
    let third = start_config(
        &client,
        RunConfig {
            epochs: Some(2),
            samples: Some(300),
            ..long_config(2)
        },
    )
    .await;

    let list = daemon.strata(&["list", "--json"]).json();
    let position = |id: &str| -> u64 {
        let runs = list["runs"].as_array().unwrap();
        runs.iter().find(|r| r["id"] == id).unwrap()["queue_position"]
            .as_u64()
            .unwrap()
    };
    assert_eq!((position(&second), position(&third)), (1, 2), "{list}");
    let human = daemon.strata(&["list"]);
    assert!(human.stdout.contains("queued #2"), "{}", human.stdout);

    // Cancel the last queued run: it never trains.
    let out = daemon.strata(&["cancel", &third, "--json"]).json();
    assert_eq!(out["status"], "cancelled");
    // Cancel the running one after it stored an epoch: its epochs are kept.
    first_epochs(&client, &first, 1).await;
    let cancelled = client.cancel_run(&first).await.unwrap().run.unwrap();
    assert_eq!(cancelled.status(), RunStatus::Cancelled);
    assert!(cancelled.epochs_done >= 1);

    let (code, _) = watch_to_end(&daemon, &second);
    assert_eq!(code, 0);
    let mut runs = Vec::new();
    for id in [&first, &second, &third] {
        runs.push(client.get_run(id).await.unwrap().run.unwrap());
    }
    let (first_run, second_run, third_run) = (&runs[0], &runs[1], &runs[2]);
    assert!(
        second_run.started_at_ms >= first_run.finished_at_ms,
        "the second run started before the first ended"
    );
    assert_eq!(third_run.epochs_done, 0);
    assert_eq!(
        third_run.started_at_ms, 0,
        "a cancelled queued run never started"
    );
    // A finished run cannot be cancelled; watch of a cancelled run exits 3.
    let out = daemon.strata(&["cancel", &second]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("completed"), "{out:?}");
    assert_eq!(daemon.strata(&["watch", &first]).code, 3);
}

#[tokio::test]
async fn a_diverging_run_ends_diverged_naming_where_and_the_daemon_keeps_serving() {
    let daemon = Daemon::start();
    let client = daemon.client().await;
    let config = RunConfig {
        dataset: "regression".into(),
        samples: Some(400),
        model: "mlp:32".into(),
        optimizer: "sgd".into(),
        lr: Some(1e4),
        epochs: Some(5),
        ..Default::default()
    };
    let id = start_config(&client, config).await;
    let out = daemon.strata(&["watch", &id]);
    assert_eq!(out.code, 3, "a diverged run makes watch exit 3: {out:?}");
    let run = client.get_run(&id).await.unwrap().run.unwrap();
    assert_eq!(run.status(), RunStatus::Diverged);
    assert!(
        run.reason.contains("epoch") && run.reason.contains("batch"),
        "{}",
        run.reason
    );

    let healthy = start_run(&daemon, &["--epochs", "1"]);
    assert_eq!(watch_to_end(&daemon, &healthy).0, 0);
}

#[tokio::test]
async fn a_stalled_watcher_misses_no_epoch() {
    let daemon = Daemon::start();
    let client = daemon.client().await;
    let config = RunConfig {
        batch_size: Some(4),
        samples: Some(2000),
        epochs: Some(4),
        progress_events_per_epoch: Some(1000),
        ..long_config(4)
    };
    let id = start_config(&client, config).await;
    let mut stalled = client.watch_run(&id, 0).await.unwrap();
    // Many watchers at once, one of which reads nothing until the run is over.
    let mut others = Vec::new();
    for _ in 0..20 {
        let client = client.clone();
        let id = id.clone();
        others.push(tokio::spawn(async move {
            let mut stream = client.watch_run(&id, 0).await.unwrap();
            let mut epochs = Vec::new();
            while let Some(event) = stream.message().await.unwrap() {
                if let Some(Event::Epoch(e)) = event.event {
                    epochs.push(e.epoch);
                }
            }
            epochs
        }));
    }
    wait_for_status(&client, &id, RunStatus::Completed).await;
    let mut epochs = Vec::new();
    let mut notices = 0;
    let mut last = None;
    while let Some(event) = stalled.message().await.unwrap() {
        match event.event {
            Some(Event::Epoch(e)) => epochs.push(e.epoch),
            Some(Event::Notice(_)) => notices += 1,
            Some(Event::Status(s)) => last = Some(s.status()),
            _ => {}
        }
    }
    assert_eq!(
        epochs,
        vec![1, 2, 3, 4],
        "the stalled watcher lost or repeated epochs"
    );
    assert_eq!(last, Some(RunStatus::Completed));
    println!("stalled watcher was told it fell behind {notices} time(s)");
    for other in others {
        assert_eq!(other.await.unwrap(), vec![1, 2, 3, 4]);
    }
}

#[tokio::test]
async fn hostile_requests_get_clear_errors_and_store_nothing() {
    let daemon = Daemon::start();
    let client = daemon.client().await;
    let base = || RunConfig {
        dataset: "moons".into(),
        epochs: Some(1),
        ..Default::default()
    };
    let cases: Vec<(&str, StartRunRequest, &str)> = vec![
        ("no config", StartRunRequest::default(), "config"),
        (
            "empty dataset",
            StartRunRequest {
                config: Some(RunConfig {
                    dataset: String::new(),
                    ..base()
                }),
                ..Default::default()
            },
            "dataset",
        ),
        (
            "huge name",
            StartRunRequest {
                config: Some(base()),
                name: "n".repeat(10_000),
                ..Default::default()
            },
            "name",
        ),
        (
            "control chars in a tag",
            StartRunRequest {
                config: Some(base()),
                tags: vec!["a\nb".into()],
                ..Default::default()
            },
            "tags[0]",
        ),
        (
            "zero samples",
            StartRunRequest {
                config: Some(RunConfig {
                    samples: Some(0),
                    ..base()
                }),
                ..Default::default()
            },
            "samples",
        ),
        (
            "NaN noise",
            StartRunRequest {
                config: Some(RunConfig {
                    noise: Some(f64::NAN),
                    ..base()
                }),
                ..Default::default()
            },
            "noise",
        ),
        (
            "infinite lr",
            StartRunRequest {
                config: Some(RunConfig {
                    lr: Some(f64::INFINITY),
                    ..base()
                }),
                ..Default::default()
            },
            "lr",
        ),
        (
            "negative val fraction",
            StartRunRequest {
                config: Some(RunConfig {
                    val_fraction: Some(-1.0),
                    ..base()
                }),
                ..Default::default()
            },
            "val_fraction",
        ),
        (
            "zero batch",
            StartRunRequest {
                config: Some(RunConfig {
                    batch_size: Some(0),
                    ..base()
                }),
                ..Default::default()
            },
            "batch_size",
        ),
        (
            "absurd epochs",
            StartRunRequest {
                config: Some(RunConfig {
                    epochs: Some(u32::MAX),
                    ..base()
                }),
                ..Default::default()
            },
            "epochs",
        ),
        (
            "absurd width",
            StartRunRequest {
                config: Some(RunConfig {
                    model: "mlp:99999999".into(),
                    ..base()
                }),
                ..Default::default()
            },
            "model",
        ),
        (
            "absurd model",
            StartRunRequest {
                config: Some(RunConfig {
                    model: "mlp:60000,60000".into(),
                    ..base()
                }),
                ..Default::default()
            },
            "model",
        ),
        (
            "ten thousand rules",
            StartRunRequest {
                config: Some(RunConfig {
                    layer_lr: vec!["head=1e-3".into(); 10_000],
                    ..base()
                }),
                ..Default::default()
            },
            "layer_lr",
        ),
        (
            "absent cuda",
            StartRunRequest {
                config: Some(RunConfig {
                    device: "cuda:4096".into(),
                    ..base()
                }),
                ..Default::default()
            },
            "device",
        ),
    ];
    for (what, request, field) in cases {
        let err = client.start_run(request).await.expect_err(what);
        let status = err.status().expect("a status");
        assert_eq!(status.code(), Code::InvalidArgument, "{what}: {status:?}");
        assert!(
            status.message().starts_with(field),
            "{what}: '{}' does not name {field}",
            status.message()
        );
    }
    // Oversized messages are refused before they are decoded.
    let huge = StartRunRequest {
        config: Some(base()),
        name: "x".repeat(5 << 20),
        ..Default::default()
    };
    let err = client.start_run(huge).await.expect_err("a 5 MB request");
    assert!(
        matches!(err.code(), Code::OutOfRange | Code::ResourceExhausted),
        "{err:?}"
    );

    let grpc = client.grpc();
    let list = grpc
        .clone()
        .list_runs(ListRunsRequest {
            status: 99,
            ..Default::default()
        })
        .await;
    assert_eq!(list.unwrap_err().code(), Code::InvalidArgument);
    for (run, code) in [
        ("", Code::InvalidArgument),
        ("xyz!", Code::InvalidArgument),
        ("ffff", Code::NotFound),
        ("f".repeat(300).as_str(), Code::InvalidArgument),
    ] {
        assert_eq!(
            client.get_run(run).await.unwrap_err().code(),
            code,
            "get {run:?}"
        );
        assert_eq!(
            client.watch_run(run, u32::MAX).await.unwrap_err().code(),
            code,
            "watch {run:?}"
        );
        assert_eq!(
            client.cancel_run(run).await.unwrap_err().code(),
            code,
            "cancel {run:?}"
        );
        assert_eq!(
            client.resume_run(run, 0).await.unwrap_err().code(),
            code,
            "resume {run:?}"
        );
        assert_eq!(
            client.delete_run(run).await.unwrap_err().code(),
            code,
            "delete {run:?}"
        );
    }
    assert!(
        client
            .list_runs(ListRunsRequest::default())
            .await
            .unwrap()
            .runs
            .is_empty(),
        "a rejected request stored a run"
    );
    // Still serving.
    let ok = start_run(&daemon, &["--epochs", "1"]);
    assert_eq!(watch_to_end(&daemon, &ok).0, 0);
    let out = daemon.strata(&["delete", &ok, "--json"]).json();
    assert_eq!(out["deleted"], true);
    assert!(client
        .list_runs(ListRunsRequest::default())
        .await
        .unwrap()
        .runs
        .is_empty());
    assert!(
        !daemon.data_dir.join("runs").join(&ok).exists(),
        "checkpoints were not deleted"
    );
}

#[tokio::test]
async fn with_a_token_every_call_but_health_needs_it() {
    let tmp = tempfile::tempdir().unwrap();
    let daemon = Daemon::start_with(
        &tmp.path().join("data"),
        &[],
        &[("STRATA_TOKEN", "t0ps3cret")],
    );
    let out = daemon.strata(&["list"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("token"), "{out:?}");
    let out = strata_with(
        &daemon.addr,
        &["list", "--json"],
        &[("STRATA_TOKEN", "wrong")],
    );
    assert_eq!(out.code, 1, "{out:?}");
    let out = strata_with(
        &daemon.addr,
        &["list", "--json"],
        &[("STRATA_TOKEN", "t0ps3cret")],
    );
    let json: Value = out.json();
    assert!(json["runs"].is_array());
    assert!(!daemon.log().contains("t0ps3cret"), "the token was logged");

    let channel = tonic::transport::Endpoint::from_shared(daemon.addr.clone())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
    let reply = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: String::new(),
        })
        .await;
    assert!(reply.is_ok(), "health needs no token: {reply:?}");
}

#[tokio::test]
async fn tls_round_trip() {
    let tmp = tempfile::tempdir().unwrap();
    let cert =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    let (cert_path, key_path) = (tmp.path().join("cert.pem"), tmp.path().join("key.pem"));
    std::fs::write(&cert_path, cert.cert.pem()).unwrap();
    std::fs::write(&key_path, cert.signing_key.serialize_pem()).unwrap();
    let daemon = Daemon::start_in(
        &tmp.path().join("data"),
        &[
            "--tls-cert",
            cert_path.to_str().unwrap(),
            "--tls-key",
            key_path.to_str().unwrap(),
        ],
    );
    let https = daemon.addr.replace("http://", "https://");
    let out = strata_with(
        &https,
        &["info", "--json", "--tls-ca", cert_path.to_str().unwrap()],
        &[],
    );
    assert_eq!(out.json()["devices"][0], "cpu");
    let id = strata_with(
        &https,
        &[
            "start",
            "--dataset",
            "xor",
            "--epochs",
            "1",
            "--tls-ca",
            cert_path.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(id.code, 0, "{id:?}");
    // Plaintext against a TLS port fails cleanly.
    let out = daemon.strata(&["info"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert_eq!(out.stderr.lines().count(), 1, "{out:?}");
}

#[test]
fn a_second_daemon_on_the_same_data_dir_is_refused_clearly() {
    let daemon = Daemon::start();
    let mut second = std::process::Command::new(strata_e2e::bin("stratad"));
    strata_e2e::clear_strata_env(&mut second);
    let out = second
        .args(["--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&daemon.data_dir)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("another stratad is using the data dir"),
        "{stderr}"
    );
    // The first daemon is unharmed.
    assert_eq!(daemon.strata(&["list", "--json"]).code, 0);
}

/// Issue 30, finding 8: openssl's default self-signed certificate is a CA certificate, which the
/// CLI (rustls) does not accept as a server's; its one-line error gives the one command that makes
/// one it accepts (the README's TLS section starts with it).
#[tokio::test]
async fn a_ca_certificate_on_the_daemon_is_refused_with_the_command_that_makes_a_good_one() {
    let tmp = tempfile::tempdir().unwrap();
    let mut params =
        rcgen::CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    let (cert_path, key_path) = (tmp.path().join("cert.pem"), tmp.path().join("key.pem"));
    std::fs::write(&cert_path, cert.pem()).unwrap();
    std::fs::write(&key_path, key.serialize_pem()).unwrap();
    let daemon = Daemon::start_in(
        &tmp.path().join("data"),
        &[
            "--tls-cert",
            cert_path.to_str().unwrap(),
            "--tls-key",
            key_path.to_str().unwrap(),
        ],
    );
    assert!(daemon.log().contains("CA certificate"), "{}", daemon.log());
    let https = daemon.addr.replace("http://", "https://");
    let out = strata_with(
        &https,
        &["info", "--tls-ca", cert_path.to_str().unwrap()],
        &[],
    );
    assert_eq!(out.code, 1, "{out:?}");
    assert_eq!(out.stderr.lines().count(), 1, "{out:?}");
    assert!(
        out.stderr.contains("openssl req -x509")
            && out.stderr.contains("basicConstraints=critical,CA:FALSE"),
        "{out:?}"
    );
}
