//! Streaming: how long an epoch takes from being stored to reaching a `watch` client over gRPC,
//! and how much 100 watchers slow training down.
//!
//! "Stored" is seen from outside the daemon: it runs under `strace -f -e trace=fsync,fdatasync`
//! (seccomp-filtered, so only those calls stop it), and an epoch counts as stored when the sync
//! that ends `Store::put_epoch` returns — the `fsync` of the store's folder, the first one after
//! that epoch's `fdatasync` of the run's epoch log (`runs/ID/epochs.pb`, one per epoch). The
//! client stamps each epoch's arrival with the same clock (CLOCK_REALTIME). The tracer's stop
//! after each sync is inside the measured interval, so the figure errs high, not low.

use std::{
    collections::BTreeMap,
    path::Path,
    time::{Instant, SystemTime, UNIX_EPOCH},
};

use anyhow::{anyhow, bail, Context, Result};
use serde_json::json;
use strata_client::Client;
use strata_proto::{watch_event::Event, RunConfig, RunStatus, StartRunRequest};

use crate::{
    daemon::{Binaries, Daemon, Options},
    report::{number, Goal, Row},
    stats::{median, percentile},
};

/// Epochs measured at least (the goal's sample size); a few more are trained, since the first
/// ones may be stored before the watch is open.
const LATENCY_EPOCHS: u32 = 1_000;
const EXTRA_EPOCHS: u32 = 30;
/// Goal: the 99th percentile of stored → watch client.
const GOAL_P99_MS: f64 = 5.0;
/// Goal: training time with 100 watchers over training time without, at most this.
const WATCHERS: usize = 100;
const GOAL_WATCHED_RATIO: f64 = 1.02;

fn unix_seconds(time: SystemTime) -> f64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// A tiny run of many short epochs: one full batch each, so epochs follow each other quickly.
fn many_epochs() -> RunConfig {
    RunConfig {
        dataset: "moons".into(),
        samples: Some(500),
        model: "mlp:16".into(),
        epochs: Some(LATENCY_EPOCHS + EXTRA_EPOCHS),
        batch_size: Some(400),
        seed: Some(1),
        ..Default::default()
    }
}

/// p50 and p99 of stored → watch client, or why it could not be measured.
pub fn latency(
    runtime: &tokio::runtime::Runtime,
    binaries: &Binaries,
    work: &Path,
) -> Result<Vec<Row>> {
    let figure_p50 = "epoch stored → `watch` client, p50";
    let figure_p99 = "epoch stored → `watch` client, p99";
    let trace = work.join("latency.strace");
    let tracer_works = std::process::Command::new("strace")
        .args(["-f", "-qq", "-e", "trace=fsync", "true"])
        .output()
        .map(|out| out.status.success())
        .unwrap_or(false);
    if !tracer_works {
        let why = "needs strace (apt-get install strace) and permission to trace";
        return Ok(vec![
            Row::not_measured(figure_p50, "—", why),
            Row::not_measured(figure_p99, &format!("< {GOAL_P99_MS} ms"), why),
        ]);
    }
    let daemon = Daemon::start(
        binaries,
        &work.join("latency"),
        &Options {
            threads: Some(1),
            wrapper: [
                "strace",
                "-f",
                "-qq",
                "--seccomp-bpf",
                "-ttt",
                "-T",
                "-y",
                "-e",
                "trace=fsync,fdatasync",
                "-o",
            ]
            .iter()
            .map(Into::into)
            .chain(std::iter::once(trace.clone().into_os_string()))
            .collect(),
            ..Default::default()
        },
    )?;
    let store_dir = daemon.data_dir.join("db");
    let (watch_opened, arrivals) = runtime.block_on(async {
        let client = daemon.client().await?;
        let run = client
            .start_run(StartRunRequest {
                config: Some(many_epochs()),
                ..Default::default()
            })
            .await
            .map_err(|e| anyhow!("StartRun: {e}"))?
            .run_id;
        let mut stream = client
            .watch_run(&run, 0)
            .await
            .map_err(|e| anyhow!("WatchRun: {e}"))?;
        let opened = unix_seconds(SystemTime::now());
        let mut arrivals = BTreeMap::new();
        while let Some(event) = stream.message().await? {
            match event.event {
                Some(Event::Epoch(epoch)) => {
                    arrivals.insert(epoch.epoch, unix_seconds(SystemTime::now()));
                }
                Some(Event::Status(change))
                    if RunStatus::try_from(change.status).is_ok_and(RunStatus::is_terminal) =>
                {
                    break
                }
                _ => {}
            }
        }
        anyhow::Ok((opened, arrivals))
    })?;
    daemon.stop()?;
    let stored = stored_times(&std::fs::read_to_string(&trace)?, &store_dir)?;
    let mut latencies_ms = Vec::new();
    for (epoch, arrived) in &arrivals {
        let Some(&stored_at) = stored.get(*epoch as usize - 1) else {
            bail!("the trace shows no store sync for epoch {epoch}");
        };
        // Epochs stored before the watch was open arrive as history, not live.
        if stored_at > watch_opened {
            latencies_ms.push((arrived - stored_at) * 1e3);
        }
    }
    if latencies_ms.len() < LATENCY_EPOCHS as usize {
        bail!(
            "only {} epochs were stored after the watch opened",
            latencies_ms.len()
        );
    }
    let (p50, p99) = (median(&latencies_ms), percentile(&latencies_ms, 0.99));
    let values = json!({
        "epochs": latencies_ms.len(),
        "p50_ms": p50,
        "p99_ms": p99,
        "max_ms": percentile(&latencies_ms, 1.0),
    });
    Ok(vec![
        Row::alone(
            format!(
                "{figure_p50} ({} epochs)",
                number(latencies_ms.len() as f64)
            ),
            format!("{p50:.3} ms"),
            p50,
            Goal::None,
            "",
            values.clone(),
        ),
        Row::alone(
            format!(
                "{figure_p99} ({} epochs)",
                number(latencies_ms.len() as f64)
            ),
            format!("{p99:.3} ms"),
            p99,
            Goal::Below(GOAL_P99_MS),
            "ms",
            values,
        ),
    ])
}

/// When each epoch was stored (seconds since the Unix epoch), in order, from an strace log
/// (`-f -ttt -T -y`): the end of the first sync of the store's folder after each epoch-log sync.
fn stored_times(trace: &str, store_dir: &Path) -> Result<Vec<f64>> {
    let store_dir = format!("<{}>", store_dir.display());
    // A call split across threads: its start line names the file, its "resumed" line ends it.
    let mut pending: BTreeMap<&str, &str> = BTreeMap::new();
    let mut syncs: Vec<(f64, SyncOf)> = Vec::new();
    for line in trace.lines() {
        // `PID TIME CALL`; strace pads a short pid with spaces.
        let Some((pid, rest)) = line.trim_start().split_once(' ') else {
            continue;
        };
        let Some((time, call)) = rest.trim_start().split_once(' ') else {
            continue;
        };
        let Ok(time) = time.parse::<f64>() else {
            continue;
        };
        let (file, ended_at) = if call.ends_with("<unfinished ...>") {
            pending.insert(pid, call);
            continue;
        } else if call.starts_with("<...") {
            let Some(start) = pending.remove(pid) else {
                continue;
            };
            (start, time)
        } else {
            (call, time + duration_of(call))
        };
        let of = if file.contains("/epochs.pb>") {
            SyncOf::EpochLog
        } else if file.contains(&store_dir) && file.starts_with("fsync(") {
            SyncOf::StoreFolder
        } else {
            continue;
        };
        syncs.push((ended_at, of));
    }
    syncs.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut stored = Vec::new();
    let mut awaiting = false;
    for (ended_at, of) in syncs {
        match of {
            SyncOf::EpochLog => awaiting = true,
            SyncOf::StoreFolder if awaiting => {
                stored.push(ended_at);
                awaiting = false;
            }
            SyncOf::StoreFolder => {}
        }
    }
    Ok(stored)
}

#[derive(Clone, Copy, Debug)]
enum SyncOf {
    EpochLog,
    StoreFolder,
}

/// The `<0.000123>` at the end of a traced call (its duration), or 0.
fn duration_of(call: &str) -> f64 {
    call.rsplit_once('<')
        .and_then(|(_, rest)| rest.strip_suffix('>'))
        .and_then(|d| d.parse().ok())
        .unwrap_or(0.0)
}

/// A run of a few seconds' training, as the slowdown's yardstick.
fn watched_run() -> RunConfig {
    RunConfig {
        dataset: "moons".into(),
        samples: Some(20_000),
        model: "mlp:128,128".into(),
        epochs: Some(5),
        batch_size: Some(64),
        seed: Some(1),
        ..Default::default()
    }
}

/// Training time (the daemon's own record: started to finished) with 0 and with 100 watchers,
/// alternating; the watchers are separate connections in this process, on the same machine.
pub fn watchers_slowdown(
    runtime: &tokio::runtime::Runtime,
    binaries: &Binaries,
    work: &Path,
    repetitions: usize,
) -> Result<Row> {
    let daemon = Daemon::start(
        binaries,
        &work.join("watchers"),
        &Options {
            threads: Some(1),
            ..Default::default()
        },
    )?;
    let (mut alone, mut watched) = (Vec::new(), Vec::new());
    runtime.block_on(async {
        let client = daemon.client().await?;
        let mut watchers = Vec::with_capacity(WATCHERS);
        for _ in 0..WATCHERS {
            watchers.push(daemon.client().await?);
        }
        // Untimed: the first run pays for lazy initialisation.
        train_watched(&client, &[]).await?;
        for repetition in 0..repetitions * 2 {
            // Alternate which comes first in each pair.
            let with_watchers = (repetition % 2 == 1) ^ (repetition / 2 % 2 == 1);
            let seconds =
                train_watched(&client, if with_watchers { &watchers } else { &[] }).await?;
            if with_watchers {
                watched.push(seconds);
            } else {
                alone.push(seconds);
            }
        }
        anyhow::Ok(())
    })?;
    daemon.stop()?;
    let (alone_s, watched_s) = (median(&alone), median(&watched));
    Ok(Row::compared(
        format!(
            "training with {WATCHERS} watchers (moons 16k rows, mlp:128,128, 5 epochs, 1 thread)"
        ),
        format!("{watched_s:.3} s watched"),
        format!("{alone_s:.3} s unwatched"),
        watched_s / alone_s,
        Goal::RatioAtMost(GOAL_WATCHED_RATIO),
        json!({ "watched_seconds": watched, "unwatched_seconds": alone }),
    ))
}

/// Trains one run while `watchers` stream it, and returns its training time as the daemon
/// recorded it (started → finished).
async fn train_watched(client: &Client, watchers: &[Client]) -> Result<f64> {
    let run = client
        .start_run(StartRunRequest {
            config: Some(watched_run()),
            ..Default::default()
        })
        .await
        .map_err(|e| anyhow!("StartRun: {e}"))?
        .run_id;
    let mut streams = Vec::new();
    for watcher in watchers {
        let mut stream = watcher
            .watch_run(&run, 0)
            .await
            .map_err(|e| anyhow!("WatchRun: {e}"))?;
        streams.push(tokio::spawn(async move {
            while let Ok(Some(_)) = stream.message().await {}
        }));
    }
    let polled = Instant::now();
    let finished = loop {
        let detail = client
            .get_run(&run)
            .await
            .map_err(|e| anyhow!("GetRun: {e}"))?;
        let record = detail.run.context("GetRun returned no run")?;
        let status = RunStatus::try_from(record.status).unwrap_or(RunStatus::Unspecified);
        if status.is_terminal() {
            if status != RunStatus::Completed {
                bail!("the run ended {}: {}", status.label(), record.reason);
            }
            break record;
        }
        if polled.elapsed().as_secs() > 600 {
            bail!("the run did not finish within 10 minutes");
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    for stream in streams {
        let _ = stream.await;
    }
    Ok((finished.finished_at_ms - finished.started_at_ms) as f64 / 1e3)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_epoch_is_stored_when_the_store_folder_sync_after_its_log_sync_ends() {
        let trace = "\
8890  100.000000 fdatasync(11</d/db/db>) = 0 <0.000100>
8890  100.001000 fsync(12</d/db>) = 0 <0.000100>
8890  100.002000 fdatasync(15</d/runs/r/epochs.pb>) = 0 <0.000100>
8890  100.003000 fdatasync(11</d/db/db>) = 0 <0.000100>
8890  100.004000 fsync(12</d/db> <unfinished ...>
12001 100.004100 fsync(9</d/db/db>) = 0 <0.000010>
8890  100.004500 <... fsync resumed>) = 0 <0.000500>
12001 100.005000 fdatasync(15</d/runs/r/epochs.pb>) = 0 <0.000200>
12001 100.006000 fsync(12</d/db>) = 0 <0.000250>
";
        let stored = stored_times(trace, Path::new("/d/db")).unwrap();
        assert_eq!(stored.len(), 2);
        assert!((stored[0] - 100.0045).abs() < 1e-9, "{stored:?}");
        assert!((stored[1] - 100.00625).abs() < 1e-9, "{stored:?}");
    }
}
