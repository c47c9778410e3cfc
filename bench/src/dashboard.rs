//! Epoch stored → point drawn in the dashboard: a run logged from this process (`LogEpochs`,
//! which answers once the epoch is durably stored) while headless Chromium shows its run page;
//! the page stamps `Date.now()` when uPlot draws each epoch. Both clocks are this host's wall
//! clock. Each epoch is logged alone, [`PACE`] apart, so each is drawn on its own.
//!
//! And the compare page at scale: 100 runs of 1,000 epochs each, from navigation to the chart
//! drawn.

use std::{
    panic::{catch_unwind, AssertUnwindSafe},
    path::Path,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use anyhow::{anyhow, bail, Context, Result};
use serde_json::json;
use strata_e2e::browser::Browser;
use strata_proto::{
    create_run_request::Task, epoch_record::ValMetric, CreateRunRequest, EpochRecord,
    GroupEpochStats, GroupRate, LogEpochsRequest,
};

use crate::{
    daemon::{Binaries, Daemon, Options},
    report::{number, Goal, Row},
    stats::percentile,
};

/// The README's goal for p99, in milliseconds.
const GOAL_P99_MS: f64 = 100.0;
/// Between two logged epochs.
const PACE: Duration = Duration::from_millis(20);
const PAGE_TIMEOUT: Duration = Duration::from_secs(120);
/// The compare page's scale: runs × epochs.
const COMPARED_RUNS: u32 = 100;
const COMPARED_EPOCHS: u32 = 1000;

fn now_ms() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

fn epoch(n: u32) -> EpochRecord {
    let loss = 1.0 / f64::from(n).sqrt();
    EpochRecord {
        epoch: n,
        train_loss: loss,
        val_loss: loss * 1.1,
        val_metric: Some(ValMetric::ValAccuracy(0.5)),
        duration_ms: 1.0,
        samples_per_sec: 1.0,
        groups: ["body", "head"]
            .into_iter()
            .map(|name| GroupEpochStats {
                name: name.into(),
                lr: 1e-3,
                grad_norm: 1.0,
                weight_norm: 1.0,
                update_ratio: 1e-3,
                frozen: false,
            })
            .collect(),
        extra: Default::default(),
        no_validation: false,
    }
}

fn create_request(name: &str) -> CreateRunRequest {
    CreateRunRequest {
        name: name.into(),
        tags: vec![],
        hyperparameters: Default::default(),
        dataset: "bench".into(),
        model: "bench".into(),
        groups: ["body", "head"]
            .into_iter()
            .map(|name| GroupRate {
                name: name.into(),
                lr: 1e-3,
                frozen: None,
            })
            .collect(),
        task: Some(Task::Classes(2)),
        parameter_count: 1,
        train_rows: 1,
        val_rows: 1,
        steps_per_epoch: 1,
        client_key: String::new(),
    }
}

/// p50 and p99 of stored → drawn over `epochs` epochs.
pub fn latency(
    runtime: &tokio::runtime::Runtime,
    binaries: &Binaries,
    work: &Path,
    epochs: u32,
) -> Result<Vec<Row>> {
    let Some(mut browser) = Browser::launch() else {
        bail!("chromium is not installed (scripts/setup-test-tools.sh installs Debian's package)");
    };
    let daemon = Daemon::start(binaries, &work.join("dashboard"), &Options::default())?;
    let base = daemon
        .dashboard
        .clone()
        .context("stratad printed no dashboard address")?;
    let mut grpc = runtime.block_on(daemon.client())?.grpc();
    let run = runtime
        .block_on(grpc.create_run(create_request("dashboard-latency")))?
        .into_inner()
        .run
        .context("CreateRun answered no run")?
        .id;
    // The browser helpers panic on a timeout (they serve tests): a failure here is an error.
    catch_unwind(AssertUnwindSafe(|| {
        browser.open(&format!("{base}/runs/{run}"));
        browser.wait_for(
            "window.strataChart && document.getElementById('live').textContent === 'live'",
            PAGE_TIMEOUT,
        );
    }))
    .map_err(|_| anyhow!("the run page did not open its event stream"))?;
    let (mut sent, mut stored) = (Vec::new(), Vec::new());
    for n in 1..=epochs {
        let before = now_ms();
        let request = LogEpochsRequest {
            run: run.clone(),
            epochs: vec![epoch(n)],
        };
        runtime.block_on(grpc.log_epochs(request))?;
        sent.push(before);
        stored.push(now_ms());
        std::thread::sleep(PACE);
    }
    let drawn = catch_unwind(AssertUnwindSafe(|| {
        browser.wait_for(
            &format!("window.strataChart.points() === {epochs}"),
            PAGE_TIMEOUT,
        );
        browser.eval("window.strataChart.drawnAt()")
    }))
    .map_err(|_| anyhow!("the page did not draw every epoch"))?;
    let drawn_at = |n: u32| drawn[n.to_string()].as_f64();
    let mut from_stored = Vec::new();
    let mut from_sent = Vec::new();
    for n in 1..=epochs {
        let at = drawn_at(n).with_context(|| format!("epoch {n} was never drawn"))?;
        let i = (n - 1) as usize;
        from_stored.push(at - stored[i]);
        from_sent.push(at - sent[i]);
    }
    let p = |samples: &[f64], q: f64| percentile(samples, q);
    let (p50, p99) = (p(&from_sent, 0.5), p(&from_sent, 0.99));
    let values = json!({
        "sent_to_drawn_ms": from_sent,
        "acknowledged_to_drawn_ms": from_stored,
    });
    let count = number(f64::from(epochs));
    Ok(vec![
        Row::alone(
            format!("epoch stored → point drawn in the browser, p50 ({count} epochs)"),
            format!("{p50:.1} ms"),
            p50,
            Goal::None,
            "",
            json!({ "p50_ms": p50, "acknowledged_p50_ms": p(&from_stored, 0.5) }),
        ),
        Row::alone(
            format!("epoch stored → point drawn in the browser, p99 ({count} epochs)"),
            format!("{p99:.1} ms"),
            p99,
            Goal::Below(GOAL_P99_MS),
            "ms",
            json!({ "p99_ms": p99, "acknowledged_p99_ms": p(&from_stored, 0.99), "samples": values }),
        ),
    ])
}

/// The compare page over [`COMPARED_RUNS`] runs of [`COMPARED_EPOCHS`] epochs: milliseconds from
/// navigation to its chart's first draw, the median of `repetitions` loads.
pub fn compare_page(
    runtime: &tokio::runtime::Runtime,
    binaries: &Binaries,
    work: &Path,
    repetitions: usize,
) -> Result<Row> {
    let Some(mut browser) = Browser::launch() else {
        bail!("chromium is not installed (scripts/setup-test-tools.sh installs Debian's package)");
    };
    let daemon = Daemon::start(
        binaries,
        &work.join("dashboard-compare"),
        &Options::default(),
    )?;
    let base = daemon
        .dashboard
        .clone()
        .context("stratad printed no dashboard address")?;
    let mut grpc = runtime.block_on(daemon.client())?.grpc();
    let mut ids = Vec::new();
    for r in 0..COMPARED_RUNS {
        let run = runtime
            .block_on(grpc.create_run(create_request(&format!("compared-{r}"))))?
            .into_inner()
            .run
            .context("CreateRun answered no run")?
            .id;
        let request = LogEpochsRequest {
            run: run.clone(),
            epochs: (1..=COMPARED_EPOCHS).map(epoch).collect(),
        };
        runtime.block_on(grpc.log_epochs(request))?;
        ids.push(run);
    }
    let url = format!("{base}/compare?runs={}", ids.join(","));
    let mut loads = Vec::new();
    for _ in 0..repetitions.max(1) {
        let drawn = catch_unwind(AssertUnwindSafe(|| {
            browser.open("about:blank");
            browser.open(&url);
            browser.wait_for(
                "window.strataCompare && window.strataCompare.drawnMs()",
                PAGE_TIMEOUT,
            )
        }))
        .map_err(|_| anyhow!("the compare page did not draw"))?;
        loads.push(drawn.as_f64().context("drawnMs is a number")?);
    }
    let median = crate::stats::median(&loads);
    Ok(Row::alone(
        format!(
            "compare page, {COMPARED_RUNS} runs × {} epochs: navigation → chart drawn (median of {})",
            number(f64::from(COMPARED_EPOCHS)),
            loads.len()
        ),
        format!("{median:.0} ms"),
        median,
        Goal::None,
        "",
        json!({ "milliseconds": loads }),
    ))
}
