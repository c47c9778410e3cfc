//! Ingestion from external clients over gRPC: `LogEpochs` batches of 100 epochs into external
//! runs, from one client and from 8 at once (8 runs, 8 connections), counting every logged
//! number as a point; and the latency of one batch.
//!
//! A batch is acknowledged only once it is on the disk (LogEpochs stores it with one sync before
//! it answers), so every point counted here was durably stored when its answer arrived.

use std::{path::Path, time::Instant};

use anyhow::{anyhow, Result};
use serde_json::json;
use strata_client::StrataGrpc;
use strata_proto::{
    create_run_request::Task, epoch_record::ValMetric, CreateRunRequest, EpochRecord,
    GroupEpochStats, GroupRate, LogEpochsRequest,
};

use crate::{
    daemon::{Binaries, Daemon, Options},
    report::{number, Goal, Row},
    stats::percentile,
};

/// Epochs per LogEpochs call.
const BATCH_EPOCHS: u32 = 100;
const GROUPS: [&str; 3] = ["layer0", "layer1", "head"];
const EXTRA: [&str; 2] = ["val_f1", "lr_warmup"];
/// The numbers in one logged epoch: train loss, validation loss, accuracy, duration and
/// samples/s; per group rate, gradient norm, weight norm and update ratio; the extra scalars.
const POINTS_PER_EPOCH: usize = 5 + 4 * GROUPS.len() + EXTRA.len();
const CONCURRENT_CLIENTS: usize = 8;
const GOAL_POINTS_PER_S: f64 = 300_000.0;

fn create_request(name: String) -> CreateRunRequest {
    CreateRunRequest {
        name,
        tags: vec!["bench".into()],
        dataset: "bench (synthetic)".into(),
        model: "three groups".into(),
        groups: GROUPS
            .iter()
            .map(|name| GroupRate {
                name: name.to_string(),
                lr: 1e-3,
                frozen: None,
            })
            .collect(),
        task: Some(Task::Classes(10)),
        parameter_count: 100_000,
        train_rows: 50_000,
        val_rows: 10_000,
        steps_per_epoch: 400,
        ..Default::default()
    }
}

/// A plausible epoch: losses fall, norms drift.
fn epoch(n: u32) -> EpochRecord {
    let t = f64::from(n);
    let loss = 2.3 / (1.0 + 0.01 * t);
    EpochRecord {
        epoch: n,
        train_loss: loss,
        val_loss: loss * 1.05,
        val_metric: Some(ValMetric::ValAccuracy(1.0 - loss / 2.5)),
        duration_ms: 1000.0 + t,
        samples_per_sec: 50_000.0 - t,
        groups: GROUPS
            .iter()
            .map(|name| GroupEpochStats {
                name: name.to_string(),
                lr: 1e-3,
                grad_norm: 0.1 / t.sqrt(),
                weight_norm: 5.0 + t * 1e-3,
                update_ratio: 0.05 / t,
                frozen: false,
            })
            .collect(),
        extra: EXTRA
            .iter()
            .map(|name| (name.to_string(), 0.5 + 1e-6 * t))
            .collect(),
        no_validation: false,
    }
}

/// One client's run: `batches` LogEpochs calls in a row (after one untimed), each timed.
async fn log_run(mut grpc: StrataGrpc, name: String, batches: u32) -> Result<Vec<f64>> {
    let run = grpc
        .create_run(create_request(name))
        .await
        .map_err(|e| anyhow!("CreateRun: {}", e.message()))?
        .into_inner()
        .run
        .ok_or_else(|| anyhow!("CreateRun answered no run"))?
        .id;
    let mut latencies_ms = Vec::with_capacity(batches as usize);
    for batch in 0..=batches {
        let first = batch * BATCH_EPOCHS + 1;
        let request = LogEpochsRequest {
            run: run.clone(),
            epochs: (first..first + BATCH_EPOCHS).map(epoch).collect(),
        };
        let started = Instant::now();
        let logged = grpc
            .log_epochs(request)
            .await
            .map_err(|e| anyhow!("LogEpochs: {}", e.message()))?
            .into_inner();
        let elapsed = started.elapsed().as_secs_f64() * 1e3;
        anyhow::ensure!(
            logged.stored == BATCH_EPOCHS,
            "a batch was not stored whole"
        );
        // The first batch warms the connection and the run up.
        if batch > 0 {
            latencies_ms.push(elapsed);
        }
    }
    Ok(latencies_ms)
}

/// What `clients` clients, each logging `batches` batches to its own run at once, measured.
struct Ingested {
    points_per_s: f64,
    seconds: f64,
    latencies_ms: Vec<f64>,
}

async fn ingest(daemon: &Daemon, clients: usize, batches: u32) -> Result<Ingested> {
    let mut connections = Vec::with_capacity(clients);
    for _ in 0..clients {
        connections.push(daemon.client().await?.grpc());
    }
    // Every client's untimed first batch is in the wall time too: a small cost in the
    // throughput's disfavour.
    let started = Instant::now();
    let tasks: Vec<_> = connections
        .into_iter()
        .enumerate()
        .map(|(i, grpc)| tokio::spawn(log_run(grpc, format!("ingest-{clients}-{i}"), batches)))
        .collect();
    let mut latencies_ms = Vec::new();
    for task in tasks {
        latencies_ms.extend(task.await??);
    }
    let seconds = started.elapsed().as_secs_f64();
    let epochs = clients as f64 * f64::from((batches + 1) * BATCH_EPOCHS);
    Ok(Ingested {
        points_per_s: epochs * POINTS_PER_EPOCH as f64 / seconds,
        seconds,
        latencies_ms,
    })
}

/// The ingestion figures: one client, 8 clients, and the latency of one batch. `batches` is how
/// many batches each client sends (after its untimed first).
pub fn measure(
    runtime: &tokio::runtime::Runtime,
    binaries: &Binaries,
    work: &Path,
    batches: u32,
) -> Result<Vec<Row>> {
    let daemon = Daemon::start(binaries, &work.join("ingest"), &Options::default())?;
    let (one, many) = runtime.block_on(async {
        let one = ingest(&daemon, 1, batches).await?;
        let many = ingest(&daemon, CONCURRENT_CLIENTS, batches).await?;
        anyhow::Ok((one, many))
    })?;
    daemon.stop()?;
    let batch_points = BATCH_EPOCHS as usize * POINTS_PER_EPOCH;
    let durable = "each acknowledged batch is on the disk: LogEpochs syncs it before it answers";
    let throughput = |clients: usize, got: &Ingested| {
        let figure = if clients == 1 {
            format!(
                "LogEpochs ingest, 1 client, batches of {BATCH_EPOCHS} epochs (each synced before its answer)"
            )
        } else {
            format!("LogEpochs ingest, {clients} clients at once ({clients} external runs, {clients} connections)")
        };
        Row::alone(
            figure,
            format!(
                "{} points/s ({} epochs/s × {POINTS_PER_EPOCH} values)",
                number(got.points_per_s),
                number(got.points_per_s / POINTS_PER_EPOCH as f64)
            ),
            got.points_per_s,
            Goal::AtLeast(GOAL_POINTS_PER_S),
            "points/s",
            json!({
                "clients": clients,
                "points_per_s": got.points_per_s,
                "points_per_epoch": POINTS_PER_EPOCH,
                "epochs_per_batch": BATCH_EPOCHS,
                "timed_batches_per_client": batches,
                "seconds": got.seconds,
                "durable": durable,
            }),
        )
    };
    let latency = |clients: usize, got: &Ingested| {
        let (p50, p99) = (
            percentile(&got.latencies_ms, 0.5),
            percentile(&got.latencies_ms, 0.99),
        );
        Row::alone(
            format!(
                "LogEpochs latency of one batch ({BATCH_EPOCHS} epochs, {} points), {clients} client{}, p50 / p99",
                number(batch_points as f64),
                if clients == 1 { "" } else { "s" }
            ),
            format!("{p50:.2} ms / {p99:.2} ms"),
            p50,
            Goal::None,
            "",
            json!({ "clients": clients, "p50_ms": p50, "p99_ms": p99, "batches": got.latencies_ms.len() }),
        )
    };
    Ok(vec![
        throughput(1, &one),
        throughput(CONCURRENT_CLIENTS, &many),
        latency(1, &one),
        latency(CONCURRENT_CLIENTS, &many),
    ])
}
