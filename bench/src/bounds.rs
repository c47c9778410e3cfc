//! The worst cases the README states for what the daemon holds (issue 30): the live state at its
//! default limits (1,000 queued runs and 1,000 live external runs) and how long SIGTERM takes
//! then; and the largest external run the daemon takes (256 groups × 9,765 epochs), where a
//! re-sent epoch and four run pages at once must stay bounded in time and memory.

use std::{
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use anyhow::{anyhow, Context, Result};
use serde_json::json;
use strata_proto::{
    create_run_request::Task, epoch_record::ValMetric, CreateRunRequest, EpochRecord,
    GroupEpochStats, GroupRate, LogEpochsRequest, RunConfig, StartRunRequest,
};

use crate::{
    daemon::{Binaries, Daemon, Options},
    report::{Goal, Row},
};

/// The daemon's default limits (`--max-queued-runs`, `--max-external-runs`).
const QUEUED_RUNS: usize = 1000;
const EXTERNAL_RUNS: usize = 1000;
/// Shutdown's grace, which every run must be recorded within.
const GRACE_S: f64 = 30.0;
/// The largest external run: the most groups, and the most epochs a run of that many holds.
const LARGEST_GROUPS: usize = 256;
const LARGEST_EPOCHS: u32 = 9_765;
/// Epochs per LogEpochs call for it: ~13 KB an epoch, under the 1 MiB request limit.
const LARGEST_BATCH: u32 = 70;
const PAGES_AT_ONCE: usize = 4;

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// Polls the daemon's resident memory while `work` runs; returns `work`'s result and the peak.
fn with_peak_rss<T>(daemon: &Daemon, work: impl FnOnce() -> T) -> (T, u64) {
    let peak = Arc::new(AtomicU64::new(daemon.rss_bytes().unwrap_or(0)));
    let done = Arc::new(AtomicBool::new(false));
    let pid = daemon.pid;
    let sampler = {
        let (peak, done) = (peak.clone(), done.clone());
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                if let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) {
                    let rss = status
                        .lines()
                        .find(|l| l.starts_with("VmRSS:"))
                        .and_then(|l| l.split_whitespace().nth(1))
                        .and_then(|kib| kib.parse::<u64>().ok())
                        .unwrap_or(0);
                    peak.fetch_max(rss * 1024, Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        })
    };
    let result = work();
    done.store(true, Ordering::Relaxed);
    let _ = sampler.join();
    (result, peak.load(Ordering::Relaxed))
}

fn external_request(name: String, groups: usize) -> CreateRunRequest {
    CreateRunRequest {
        name,
        dataset: "bench (synthetic)".into(),
        model: format!("{groups} groups"),
        groups: (0..groups)
            .map(|g| GroupRate {
                name: format!("layer{g}"),
                lr: 1e-3,
                frozen: None,
            })
            .collect(),
        task: Some(Task::Classes(10)),
        parameter_count: 1_000_000,
        train_rows: 50_000,
        val_rows: 10_000,
        steps_per_epoch: 400,
        ..Default::default()
    }
}

fn epoch(n: u32, groups: usize) -> EpochRecord {
    let t = f64::from(n);
    let loss = 2.3 / (1.0 + 0.01 * t);
    EpochRecord {
        epoch: n,
        train_loss: loss,
        val_loss: loss * 1.05,
        val_metric: Some(ValMetric::ValAccuracy(1.0 - loss / 2.5)),
        duration_ms: 1000.0,
        samples_per_sec: 50_000.0,
        groups: (0..groups)
            .map(|g| GroupEpochStats {
                name: format!("layer{g}"),
                lr: 1e-3,
                grad_norm: 0.1 / t.sqrt(),
                weight_norm: 5.0 + t * 1e-3,
                update_ratio: 0.05 / t,
                frozen: false,
            })
            .collect(),
        extra: Default::default(),
        no_validation: false,
    }
}

/// 1,000 queued runs behind one that trains, 1,000 live external runs: the memory they hold, and
/// how long SIGTERM takes to record them all.
pub fn live_state(
    runtime: &tokio::runtime::Runtime,
    binaries: &Binaries,
    work: &std::path::Path,
) -> Result<Vec<Row>> {
    let daemon = Daemon::start(binaries, &work.join("live-state"), &Options::default())?;
    let before = daemon.rss_bytes()?;
    runtime.block_on(async {
        let client = daemon.client().await?;
        let mut grpc = client.grpc();
        for i in 0..EXTERNAL_RUNS {
            grpc.create_run(external_request(format!("live-{i}"), 3))
                .await
                .map_err(|e| anyhow!("CreateRun {i}: {e}"))?;
        }
        // One run trains (long), the rest wait.
        for i in 0..=QUEUED_RUNS {
            let config = RunConfig {
                dataset: "spirals".into(),
                model: "mlp:16".into(),
                epochs: Some(if i == 0 { 1_000_000 } else { 3 }),
                ..Default::default()
            };
            client
                .start_run(StartRunRequest {
                    config: Some(config),
                    ..Default::default()
                })
                .await
                .map_err(|e| anyhow!("StartRun {i}: {e}"))?;
        }
        anyhow::Ok(())
    })?;
    let held = daemon.rss_bytes()?.saturating_sub(before);
    let started = Instant::now();
    daemon.stop()?;
    let stop_s = started.elapsed().as_secs_f64();
    Ok(vec![
        Row::alone(
            format!("{QUEUED_RUNS} queued + {EXTERNAL_RUNS} live external runs (the default limits): memory held"),
            format!("{:.0} MiB", mib(held)),
            mib(held),
            Goal::None,
            "MiB",
            json!({ "rss_added_bytes": held }),
        ),
        Row::alone(
            "SIGTERM at those limits → exit (every run recorded interrupted)",
            format!("{stop_s:.2} s"),
            stop_s,
            Goal::Below(GRACE_S),
            "s",
            json!({ "seconds": stop_s }),
        ),
    ])
}

/// The largest external run: a re-sent epoch, and four run pages at once.
pub fn largest_run(
    runtime: &tokio::runtime::Runtime,
    binaries: &Binaries,
    work: &std::path::Path,
) -> Result<Vec<Row>> {
    let daemon = Daemon::start(binaries, &work.join("largest"), &Options::default())?;
    let base = daemon
        .dashboard
        .clone()
        .context("stratad printed no dashboard address")?;
    let mut grpc = runtime.block_on(daemon.client())?.grpc();
    let run = runtime
        .block_on(grpc.create_run(external_request("largest".into(), LARGEST_GROUPS)))?
        .into_inner()
        .run
        .context("CreateRun answered no run")?
        .id;
    let mut from = 1;
    while from <= LARGEST_EPOCHS {
        let to = (from + LARGEST_BATCH - 1).min(LARGEST_EPOCHS);
        runtime.block_on(grpc.log_epochs(LogEpochsRequest {
            run: run.clone(),
            epochs: (from..=to).map(|n| epoch(n, LARGEST_GROUPS)).collect(),
        }))?;
        from = to + 1;
    }

    let before = daemon.rss_bytes()?;
    let started = Instant::now();
    let (resent, peak) = with_peak_rss(&daemon, || {
        runtime.block_on(grpc.log_epochs(LogEpochsRequest {
            run: run.clone(),
            epochs: vec![epoch(1, LARGEST_GROUPS)],
        }))
    });
    resent.map_err(|e| anyhow!("re-sending epoch 1: {e}"))?;
    let resend_ms = started.elapsed().as_secs_f64() * 1e3;
    let resend_peak = peak.saturating_sub(before);

    let before = daemon.rss_bytes()?;
    let started = Instant::now();
    let (statuses, peak) = with_peak_rss(&daemon, || {
        let pages: Vec<_> = (0..PAGES_AT_ONCE)
            .map(|_| {
                let (base, path) = (base.clone(), format!("/api/runs/{run}"));
                std::thread::spawn(move || strata_e2e::http::get(&base, &path, &[]).status)
            })
            .collect();
        pages
            .into_iter()
            .map(|page| page.join().unwrap_or(0))
            .collect::<Vec<u16>>()
    });
    if statuses.iter().any(|&status| status != 200) {
        return Err(anyhow!("a run page failed: {statuses:?}"));
    }
    let pages_s = started.elapsed().as_secs_f64();
    let pages_peak = peak.saturating_sub(before);
    std::thread::sleep(Duration::from_secs(1));
    let after = daemon.rss_bytes()?.saturating_sub(before);
    daemon.stop()?;
    let shape = format!("{LARGEST_GROUPS} groups × {LARGEST_EPOCHS} epochs");
    Ok(vec![
        Row::alone(
            format!("{shape}: epoch 1 re-sent (compared, not stored)"),
            format!("{resend_ms:.0} ms, +{:.0} MiB at peak", mib(resend_peak)),
            resend_ms,
            Goal::None,
            "ms",
            json!({ "ms": resend_ms, "peak_rss_added_bytes": resend_peak }),
        ),
        Row::alone(
            format!("{shape}: {PAGES_AT_ONCE} run pages at once"),
            format!(
                "{pages_s:.1} s, +{:.0} MiB at peak, +{:.0} MiB after",
                mib(pages_peak),
                mib(after)
            ),
            pages_s,
            Goal::None,
            "s",
            json!({ "seconds": pages_s, "peak_rss_added_bytes": pages_peak, "rss_added_after_bytes": after }),
        ),
    ])
}
