//! `strata watch` survives a dropped connection (issue 30, finding 7): paused past the daemon's
//! keepalive, behind a proxy that restarts, or on a network that fails, the watcher opens the
//! stream again from the next epoch and shows every epoch once, in order, to the run's end.
//!
//! The drop is made deterministic by a TCP proxy between the CLI and the daemon that closes every
//! connection it carries when told to.

use std::{
    io::{BufRead, BufReader},
    process::{Command, Stdio},
    sync::{mpsc, Arc, Mutex},
    time::Duration,
};

use serde_json::Value;
use strata_e2e::{bin, clear_strata_env, external, Daemon};
use strata_proto::{FinishRunRequest, LogEpochsRequest, RunStatus};
use tokio::{net::TcpListener, task::JoinHandle};

/// A proxy to `upstream` on 127.0.0.1:0; `cut` closes every connection it carries (new ones are
/// carried as before).
struct Proxy {
    addr: String,
    carried: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl Proxy {
    async fn start(upstream: String) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = format!("http://{}", listener.local_addr().unwrap());
        let carried: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let accepted = carried.clone();
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let upstream = upstream.clone();
                let pipe = tokio::spawn(async move {
                    let Ok(mut daemon) = tokio::net::TcpStream::connect(upstream).await else {
                        return;
                    };
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut daemon).await;
                });
                accepted.lock().unwrap().push(pipe);
            }
        });
        Proxy { addr, carried }
    }

    fn cut(&self) -> usize {
        let pipes: Vec<_> = self.carried.lock().unwrap().drain(..).collect();
        let cut = pipes.iter().filter(|pipe| !pipe.is_finished()).count();
        pipes.iter().for_each(JoinHandle::abort);
        cut
    }
}

/// The epoch numbers and the last status in a watcher's NDJSON events.
fn epochs_and_end(events: &[Value]) -> (Vec<u64>, Option<String>) {
    let epochs = events
        .iter()
        .filter(|e| e["event"] == "epoch")
        .map(|e| e["epoch"].as_u64().unwrap())
        .collect();
    let end = events
        .iter()
        .rev()
        .find(|e| e["event"] == "status")
        .map(|e| e["status"].as_str().unwrap().to_string());
    (epochs, end)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_reconnects_after_a_dropped_connection_with_no_gap_or_duplicate() {
    let daemon = Daemon::start();
    let mut grpc = daemon.client().await.grpc();
    let run = external::log_run(&mut grpc, "watched", 5, 5).await;
    let proxy = Proxy::start(daemon.addr.trim_start_matches("http://").to_string()).await;

    let mut command = Command::new(bin("strata"));
    clear_strata_env(&mut command);
    let mut watcher = command
        .args(["--addr", &proxy.addr, "watch", &run, "--json"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (lines_tx, lines) = mpsc::channel::<Value>();
    let stdout = watcher.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = lines_tx.send(serde_json::from_str(&line).expect("NDJSON"));
        }
    });
    let mut events = Vec::new();
    let wait_for_epoch = |n: u64, events: &mut Vec<Value>| loop {
        let event = lines
            .recv_timeout(Duration::from_secs(60))
            .expect("the watcher goes on");
        let done = event["event"] == "epoch" && event["epoch"] == n;
        events.push(event);
        if done {
            return;
        }
    };
    wait_for_epoch(5, &mut events);

    // The connection drops twice: between epochs, and with epochs logged while it is down.
    for (cut, from) in [(1, 6), (2, 9)] {
        assert!(
            proxy.cut() >= 1,
            "cut {cut}: the watcher's connection was carried"
        );
        grpc.log_epochs(LogEpochsRequest {
            run: run.clone(),
            epochs: (from..from + 3).map(external::epoch).collect(),
        })
        .await
        .unwrap();
        wait_for_epoch(u64::from(from) + 2, &mut events);
    }
    grpc.finish_run(FinishRunRequest {
        run: run.clone(),
        status: RunStatus::Completed as i32,
        reason: String::new(),
    })
    .await
    .unwrap();
    let status = watcher.wait().unwrap();
    reader.join().unwrap();
    events.extend(lines.try_iter());
    let stderr = std::io::read_to_string(watcher.stderr.take().unwrap()).unwrap();
    assert_eq!(status.code(), Some(0), "{stderr}");
    let (epochs, end) = epochs_and_end(&events);
    assert_eq!(epochs, (1..=11).collect::<Vec<u64>>(), "{events:?}");
    assert_eq!(end.as_deref(), Some("completed"));
    let reconnected = events
        .iter()
        .filter(|e| {
            e["event"] == "notice" && e["message"].as_str().unwrap().contains("reconnected")
        })
        .count();
    assert_eq!(reconnected, 2, "{events:?}");
    assert!(stderr.contains("dropped"), "{stderr}");
}
