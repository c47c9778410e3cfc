//! What remote workers cost: the epochs per second one daemon takes in from many remote workers
//! at once (runs of tiny epochs, so the daemon's side — each epoch's checkpoint received,
//! verified and synced, its record synced, its acknowledgement — is what is timed, not the
//! training), and the per-epoch time of a run trained by a remote worker over loopback against
//! the same run trained by the daemon's own (local) worker.

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{anyhow, bail, Result};
use serde_json::json;
use strata_client::Client;
use strata_proto::{watch_event::Event, RunConfig, RunStatus, StartRunRequest};

use crate::{
    daemon::{Binaries, Daemon, Options},
    report::{Goal, Row},
    stats::median,
};

const WORKER_TOKEN: &str = "bench-workers-token-0123456789";
/// Goal (issue 26): a remote worker on loopback costs at most 5 % per epoch over a local one.
const GOAL_REMOTE_OVERHEAD: f64 = 1.05;

/// `strata-worker serve` processes, killed when dropped.
struct Workers(Vec<Child>);

impl Drop for Workers {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn hub(binaries: &Binaries, work: &Path, name: &str) -> Result<(Daemon, PathBuf)> {
    let token = work.join(format!("{name}.worker-token"));
    std::fs::write(&token, WORKER_TOKEN)?;
    let daemon = Daemon::start(
        binaries,
        &work.join(name),
        &Options {
            threads: Some(1),
            max_concurrent_runs: Some(0),
            extra_args: vec![
                "--worker-listen".into(),
                "127.0.0.1:0".into(),
                "--worker-token-file".into(),
                token.display().to_string(),
            ],
            ..Default::default()
        },
    )?;
    Ok((daemon, token))
}

fn start_workers(binaries: &Binaries, daemon: &Daemon, token: &Path, n: usize) -> Result<Workers> {
    let program = binaries.stratad.with_file_name("strata-worker");
    let connect = daemon
        .workers
        .clone()
        .ok_or_else(|| anyhow!("the hub printed no workers' address"))?;
    let mut children = Vec::new();
    for i in 0..n {
        let mut command = Command::new(&program);
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("STRATA_") {
                command.env_remove(name);
            }
        }
        children.push(
            command
                .args(["--threads", "1", "serve", "--connect", &connect])
                .args(["--name", &format!("bench-{i}"), "--token-file"])
                .arg(token)
                .env("CUDA_VISIBLE_DEVICES", "")
                .env("OMP_NUM_THREADS", "1")
                .env("MKL_NUM_THREADS", "1")
                .env("RUST_LOG", "warn")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()?,
        );
    }
    Ok(Workers(children))
}

async fn wait_for_workers(client: &Client, n: usize) -> Result<()> {
    let started = Instant::now();
    loop {
        let listed = client
            .list_workers()
            .await
            .map_err(|e| anyhow!("ListWorkers: {e}"))?;
        if listed.workers.len() >= n {
            return Ok(());
        }
        if started.elapsed() > Duration::from_secs(120) {
            bail!("{} of {n} workers connected in 120 s", listed.workers.len());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn start(client: &Client, config: RunConfig) -> Result<String> {
    Ok(client
        .start_run(StartRunRequest {
            config: Some(config),
            ..Default::default()
        })
        .await
        .map_err(|e| anyhow!("StartRun: {e}"))?
        .run_id)
}

async fn wait_done(client: &Client, run: &str) -> Result<()> {
    loop {
        let got = client
            .get_run(run)
            .await
            .map_err(|e| anyhow!("GetRun: {e}"))?
            .run
            .ok_or_else(|| anyhow!("no run {run}"))?;
        match RunStatus::try_from(got.status) {
            Ok(RunStatus::Completed) => return Ok(()),
            Ok(RunStatus::Queued | RunStatus::Running) => {}
            _ => bail!("run {run} ended {}: {}", got.status, got.reason),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Tiny epochs: what is timed is the daemon taking each one in.
fn tiny(epochs: u32, seed: u64) -> RunConfig {
    RunConfig {
        dataset: "xor".into(),
        samples: Some(64),
        batch_size: Some(64),
        model: "mlp:4".into(),
        epochs: Some(epochs),
        seed: Some(seed),
        progress_events_per_epoch: Some(0),
        ..Default::default()
    }
}

/// Epochs per second a hub stores from `n` remote workers, each training one run of `epochs`
/// tiny epochs at once.
fn ingest(
    runtime: &tokio::runtime::Runtime,
    binaries: &Binaries,
    work: &Path,
    n: usize,
    epochs: u32,
) -> Result<f64> {
    let (daemon, token) = hub(binaries, work, &format!("remote-ingest-{n}"))?;
    let _workers = start_workers(binaries, &daemon, &token, n)?;
    runtime.block_on(async {
        let client = daemon.client().await?;
        wait_for_workers(&client, n).await?;
        let started = Instant::now();
        let mut runs = Vec::new();
        for i in 0..n {
            runs.push(start(&client, tiny(epochs, i as u64 + 1)).await?);
        }
        for run in &runs {
            wait_done(&client, run).await?;
        }
        Ok((n as f64 * f64::from(epochs)) / started.elapsed().as_secs_f64())
    })
}

/// The median time between a run's consecutive epochs at a watcher (from the second on), in ms.
async fn per_epoch_ms(client: &Client, config: RunConfig) -> Result<f64> {
    let run = start(client, config).await?;
    let mut stream = client
        .watch_run(&run, 0)
        .await
        .map_err(|e| anyhow!("WatchRun: {e}"))?;
    let mut arrivals = Vec::new();
    while let Some(event) = stream.message().await? {
        match event.event {
            Some(Event::Epoch(_)) => arrivals.push(Instant::now()),
            Some(Event::Status(change))
                if RunStatus::try_from(change.status).is_ok_and(|s| s.is_terminal()) =>
            {
                break
            }
            _ => {}
        }
    }
    let gaps: Vec<f64> = arrivals
        .windows(2)
        .map(|w| (w[1] - w[0]).as_secs_f64() * 1e3)
        .collect();
    if gaps.is_empty() {
        bail!("run {run} stored fewer than two epochs");
    }
    Ok(median(&gaps))
}

pub fn measure(
    runtime: &tokio::runtime::Runtime,
    binaries: &Binaries,
    work: &Path,
    quick: bool,
) -> Result<Vec<Row>> {
    let epochs = if quick { 50 } else { 200 };
    let one = ingest(runtime, binaries, work, 1, epochs)?;
    let sixteen = ingest(runtime, binaries, work, 16, epochs)?;
    let mut rows = vec![Row::compared(
        format!("epochs stored per second by one daemon from 16 remote workers at once (runs of {epochs} tiny epochs, a checkpoint each), against from 1"),
        format!("{sixteen:.0} epochs/s"),
        format!("{one:.0} epochs/s"),
        sixteen / one,
        Goal::None,
        json!({ "epochs_per_second_16": sixteen, "epochs_per_second_1": one, "epochs_per_run": epochs }),
    )];

    // The same run through the daemon's own worker and through one remote worker on loopback,
    // alternating.
    let config = RunConfig {
        dataset: "moons".into(),
        samples: Some(if quick { 4000 } else { 20_000 }),
        batch_size: Some(32),
        model: "mlp:64,64".into(),
        epochs: Some(8),
        seed: Some(3),
        ..Default::default()
    };
    let local = Daemon::start(
        binaries,
        &work.join("remote-vs-local-local"),
        &Options {
            threads: Some(1),
            ..Default::default()
        },
    )?;
    let (remote, token) = hub(binaries, work, "remote-vs-local-hub")?;
    let _worker = start_workers(binaries, &remote, &token, 1)?;
    let (mut local_ms, mut remote_ms) = (Vec::new(), Vec::new());
    runtime.block_on(async {
        let local_client = local.client().await?;
        let remote_client = remote.client().await?;
        wait_for_workers(&remote_client, 1).await?;
        for repetition in 0..if quick { 3 } else { 5 } {
            let mut order = [true, false];
            if repetition % 2 == 1 {
                order.reverse();
            }
            for is_remote in order {
                if is_remote {
                    remote_ms.push(per_epoch_ms(&remote_client, config.clone()).await?);
                } else {
                    local_ms.push(per_epoch_ms(&local_client, config.clone()).await?);
                    crate::daemon::settle_after_run().await;
                }
            }
        }
        anyhow::Ok(())
    })?;
    let (remote_median, local_median) = (median(&remote_ms), median(&local_ms));
    rows.push(Row::compared(
        "per-epoch time of a run trained by a remote worker on loopback, against the daemon's own worker (moons, mlp:64,64, 1 thread), median",
        format!("{remote_median:.1} ms"),
        format!("{local_median:.1} ms"),
        remote_median / local_median,
        Goal::RatioAtMost(GOAL_REMOTE_OVERHEAD),
        json!({ "remote_ms": remote_ms, "local_ms": local_ms }),
    ));
    Ok(rows)
}
