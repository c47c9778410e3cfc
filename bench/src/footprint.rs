//! Footprint: the daemon's memory and CPU while idle, its memory with 4 runs training (each in a
//! worker of its own, not counted) and 100 watchers, and how long the CLI takes to start and
//! answer `strata list`.

use std::{path::Path, process::Command, time::Duration, time::Instant};

use anyhow::{anyhow, bail, Result};
use serde_json::json;
use strata_proto::{RunConfig, StartRunRequest};

use crate::{
    daemon::{Binaries, Daemon, Options},
    report::{Goal, Row},
    stats::median,
    training::Case,
};

const MIB: f64 = 1024.0 * 1024.0;
/// Goal (issue 23): an idle daemon, which links no libtorch, holds at most this.
const GOAL_IDLE_RSS_MIB: f64 = 50.0;
const TRAINING_RUNS: usize = 4;
const WATCHERS: usize = 100;

/// Idle: a fresh daemon with default flags, left alone for `idle_seconds` after a second to settle.
pub fn idle(binaries: &Binaries, work: &Path, idle_seconds: u64) -> Result<Vec<Row>> {
    let daemon = Daemon::start(binaries, &work.join("idle"), &Options::default())?;
    std::thread::sleep(Duration::from_secs(1));
    let cpu_before = daemon.cpu_seconds()?;
    std::thread::sleep(Duration::from_secs(idle_seconds));
    let cpu = daemon.cpu_seconds()? - cpu_before;
    let rss = daemon.rss_bytes()? as f64 / MIB;
    let anonymous = daemon.anonymous_rss_bytes()? as f64 / MIB;
    daemon.stop()?;
    Ok(vec![
        Row::alone(
            "idle daemon, resident memory",
            format!("{rss:.1} MiB ({anonymous:.1} MiB not file-backed)"),
            rss,
            Goal::Below(GOAL_IDLE_RSS_MIB),
            "MiB",
            json!({ "rss_mib": rss, "anonymous_rss_mib": anonymous }),
        ),
        Row::alone(
            format!("idle daemon, CPU time over {idle_seconds} s"),
            format!("{:.2} s ({:.2}%)", cpu, cpu / idle_seconds as f64 * 100.0),
            cpu,
            Goal::Zero,
            "s",
            json!({ "cpu_seconds": cpu, "window_seconds": idle_seconds }),
        ),
    ])
}

/// Under load: `--max-concurrent-runs 4`, four runs of `case` (a short version of it) training at
/// once, 100 watchers spread over them; the daemon's peak resident memory. Then the CLI's
/// `strata list` against it, timed from outside.
pub fn loaded(
    runtime: &tokio::runtime::Runtime,
    binaries: &Binaries,
    work: &Path,
    case: &Case,
    cli_repetitions: usize,
) -> Result<Vec<Row>> {
    let daemon = Daemon::start(
        binaries,
        &work.join("loaded"),
        &Options {
            max_concurrent_runs: Some(TRAINING_RUNS),
            data_root: case.data.train.csv.parent().map(Path::to_path_buf),
            ..Default::default()
        },
    )?;
    let epochs = 2;
    runtime.block_on(async {
        let client = daemon.client().await?;
        let csv = |path: &Path| format!("csv:{}", path.display());
        let mut runs = Vec::new();
        for _ in 0..TRAINING_RUNS {
            let config = RunConfig {
                dataset: csv(&case.data.train.csv),
                val_dataset: csv(&case.data.val.csv),
                model: format!(
                    "mlp:{}",
                    case.hidden
                        .iter()
                        .map(i64::to_string)
                        .collect::<Vec<_>>()
                        .join(",")
                ),
                epochs: Some(epochs),
                batch_size: Some(case.batch_size),
                ..Default::default()
            };
            let run = client
                .start_run(StartRunRequest {
                    config: Some(config),
                    ..Default::default()
                })
                .await
                .map_err(|e| anyhow!("StartRun: {e}"))?
                .run_id;
            runs.push(run);
        }
        let mut streams = Vec::new();
        for i in 0..WATCHERS {
            let watcher = daemon.client().await?;
            let mut stream = watcher
                .watch_run(&runs[i % runs.len()], 0)
                .await
                .map_err(|e| anyhow!("WatchRun: {e}"))?;
            streams.push(tokio::spawn(async move {
                let _keep = watcher;
                while let Ok(Some(_)) = stream.message().await {}
            }));
        }
        for stream in streams {
            stream.await?;
        }
        for run in &runs {
            let detail = client
                .get_run(run)
                .await
                .map_err(|e| anyhow!("GetRun: {e}"))?;
            let done = detail.run.map_or(0, |r| r.epochs_done);
            if done != epochs {
                bail!("run {run} stored {done} of {epochs} epochs");
            }
        }
        anyhow::Ok(())
    })?;
    let peak = daemon.peak_rss_bytes()? as f64 / MIB;

    let time_cli = |args: &[&str]| -> Result<Vec<f64>> {
        (0..cli_repetitions)
            .map(|_| {
                let started = Instant::now();
                let out = Command::new(&binaries.strata)
                    .args(["--addr", &daemon.addr])
                    .args(args)
                    .env_remove("STRATA_ADDR")
                    .env_remove("STRATA_TOKEN")
                    .output()?;
                let ms = started.elapsed().as_secs_f64() * 1e3;
                if !out.status.success() {
                    bail!(
                        "strata {}: {}",
                        args.join(" "),
                        String::from_utf8_lossy(&out.stderr)
                    );
                }
                Ok(ms)
            })
            .collect()
    };
    let list_ms = time_cli(&["list"])?;
    let version_ms = time_cli(&["--version"])?;
    daemon.stop()?;
    let (list_p50, version_p50) = (median(&list_ms), median(&version_ms));
    Ok(vec![
        Row::alone(
            format!(
                "daemon peak resident memory, {TRAINING_RUNS} runs training ({}, {}) + {WATCHERS} watchers",
                case.data.name,
                case.hidden.iter().map(i64::to_string).collect::<Vec<_>>().join(",")
            ),
            format!("{peak:.1} MiB"),
            peak,
            Goal::None,
            "",
            json!({ "peak_rss_mib": peak }),
        ),
        Row::alone(
            format!("CLI `strata list` ({TRAINING_RUNS} runs), start to exit, median"),
            format!("{list_p50:.1} ms (`--version` {version_p50:.1} ms)"),
            list_p50,
            Goal::None,
            "",
            json!({ "list_ms": list_ms, "version_ms": version_ms }),
        ),
    ])
}
