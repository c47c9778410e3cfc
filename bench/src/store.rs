//! The store: durable ingestion, `compare` of 100 runs × 1,000 epochs, `list` over 10,000 runs,
//! and the bytes each stored epoch takes on the disk.
//!
//! Ingestion here is the daemon's own write path (`Store::put_epochs`, one sync per batch, and
//! `Store::put_epoch`, one sync per epoch as training does), in this process, on the disk the data
//! dir is on: the ceiling under `LogEpochs` (`ingest.rs` measures it through gRPC, with the
//! goal). That is also how the data dir for `compare` and `list` is filled (training 10,000 runs
//! would take hours); the daemon then serves it and is timed from a gRPC client.

use std::{path::Path, time::Instant};

use anyhow::{anyhow, Result};
use serde_json::json;
use strata_proto::ListRunsRequest;
use strata_server::{
    domain::{DataFacts, EpochMetrics, GroupStats, RunConfig, RunRecord, RunStatus, TaskFacts},
    store::Store,
};

use crate::{
    daemon::{Binaries, Daemon, Options},
    report::{number, Goal, Row},
    stats::median,
};

/// Goals (design.md): `compare` of 100 runs × 1,000 epochs and `list` over 10,000 runs.
const COMPARED_RUNS: usize = 100;
const COMPARED_EPOCHS: u32 = 1_000;
const GOAL_COMPARE_MS: f64 = 50.0;
const LISTED_RUNS: usize = 10_000;
/// Epochs of every run that is listed but not compared.
const LISTED_RUN_EPOCHS: u32 = 10;
const GOAL_LIST_MS: f64 = 100.0;
const INGEST_BATCH_EPOCHS: usize = 100;
/// Epochs stored one at a time, as training stores them.
const SINGLE_EPOCHS: u32 = 500;
const GROUPS: [&str; 3] = ["layer0", "layer1", "head"];
/// The scalars in one epoch record (a "point" each in an MLflow-like logger): train loss,
/// validation loss, the metric, duration and samples/s, and per group rate, gradient norm, weight
/// norm and update ratio.
const VALUES_PER_EPOCH: usize = 5 + 4 * GROUPS.len();

/// A plausible epoch: both losses fall, validation flattens and the gap opens.
fn epoch(run: usize, epoch: u32, epochs: u32) -> EpochMetrics {
    let t = f64::from(epoch);
    let train_loss = 1.0 / (1.0 + 0.01 * t * (1.0 + run as f64 / 50.0));
    let val_loss = train_loss + 0.05 * (t / f64::from(epochs));
    EpochMetrics {
        epoch,
        train_loss,
        val_loss,
        val_metric: 1.0 - val_loss / 2.0,
        duration_ms: 10.0 + (run % 7) as f64,
        samples_per_sec: 80_000.0 + epoch as f64,
        groups: GROUPS
            .iter()
            .map(|name| GroupStats {
                name: name.to_string(),
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

fn completed_run(store: &Store, name: String, epochs: u32) -> RunRecord {
    let id = store.next_run_id();
    let config = RunConfig {
        dataset: "moons".into(),
        samples: Some(1000),
        val_fraction: Some(0.2),
        model: "mlp:64,64".into(),
        batch_size: Some(32),
        epochs: Some(epochs),
        ..Default::default()
    };
    let facts = DataFacts {
        train_rows: 800,
        val_rows: 200,
        steps_per_epoch: 25,
        ..DataFacts::of_task(TaskFacts::Classification { classes: 2 })
    };
    let queued = RunRecord::queued(id, config, Vec::new(), facts);
    RunRecord {
        name,
        tags: vec!["bench".into()],
        status: RunStatus::Completed,
        started_at_ms: queued.created_at_ms,
        finished_at_ms: queued.created_at_ms + 1,
        ..queued
    }
}

/// Allocated bytes of every file under `dir`.
fn disk_bytes(dir: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|entry| match entry.metadata() {
            Ok(meta) if meta.is_dir() => disk_bytes(&entry.path()),
            Ok(meta) => meta.blocks() * 512,
            Err(_) => 0,
        })
        .sum()
}

/// What filling the store measured.
struct Filled {
    compared: Vec<String>,
    ingest_seconds: f64,
    ingested_epochs: usize,
    store_bytes_per_epoch: f64,
    single_ms: Vec<f64>,
}

/// Fills a data dir: 100 runs of 1,000 epochs (timed: the batched ingestion), 9,900 more of 10,
/// and one run stored an epoch at a time (timed: training's write path).
fn fill(data_dir: &Path) -> Result<Filled> {
    let store = Store::open(data_dir)?;
    let db = data_dir.join("db");
    let mut compared = Vec::with_capacity(COMPARED_RUNS);
    let mut ingest_seconds = 0.0;
    let before = disk_bytes(&db);
    for run in 0..COMPARED_RUNS {
        let record = completed_run(&store, format!("long-{run}"), COMPARED_EPOCHS);
        store.put_run(&record)?;
        let records: Vec<EpochMetrics> = (1..=COMPARED_EPOCHS)
            .map(|e| epoch(run, e, COMPARED_EPOCHS))
            .collect();
        let started = Instant::now();
        for batch in records.chunks(INGEST_BATCH_EPOCHS) {
            store.put_epochs(record.id, batch)?;
        }
        ingest_seconds += started.elapsed().as_secs_f64();
        compared.push(record.id.to_string());
    }
    let ingested_epochs = COMPARED_RUNS * COMPARED_EPOCHS as usize;
    let store_bytes_per_epoch = (disk_bytes(&db) - before) as f64 / ingested_epochs as f64;

    let single = completed_run(&store, "one-at-a-time".into(), SINGLE_EPOCHS);
    store.put_run(&single)?;
    let mut single_ms = Vec::new();
    for e in 1..=SINGLE_EPOCHS {
        let record = epoch(0, e, SINGLE_EPOCHS);
        let started = Instant::now();
        store.put_epoch(single.id, &record)?;
        single_ms.push(started.elapsed().as_secs_f64() * 1e3);
    }

    for run in COMPARED_RUNS + 1..LISTED_RUNS {
        let record = completed_run(&store, format!("short-{run}"), LISTED_RUN_EPOCHS);
        store.put_run(&record)?;
        let records: Vec<EpochMetrics> = (1..=LISTED_RUN_EPOCHS)
            .map(|e| epoch(run, e, LISTED_RUN_EPOCHS))
            .collect();
        store.put_epochs(record.id, &records)?;
    }
    store.flush()?;
    Ok(Filled {
        compared,
        ingest_seconds,
        ingested_epochs,
        store_bytes_per_epoch,
        single_ms,
    })
}

/// The store's figures. `epoch_log_bytes` is what a trained run's epoch log takes per epoch
/// (measured by the streaming benchmark), when known.
pub fn measure(
    runtime: &tokio::runtime::Runtime,
    binaries: &Binaries,
    work: &Path,
    repetitions: usize,
    epoch_log_bytes: Option<f64>,
) -> Result<Vec<Row>> {
    let data_dir = work.join("store");
    eprintln!(
        "  filling a data dir with {} runs ({COMPARED_RUNS} of {COMPARED_EPOCHS} epochs)",
        number(LISTED_RUNS as f64)
    );
    let filled = fill(&data_dir)?;
    let epochs_per_s = filled.ingested_epochs as f64 / filled.ingest_seconds;
    let points_per_s = epochs_per_s * VALUES_PER_EPOCH as f64;
    let single_p50 = median(&filled.single_ms);

    let daemon = Daemon::start(binaries, &data_dir, &Options::default())?;
    let (compare_ms, compare_bytes, list_ms, listed) = runtime.block_on(async {
        let client = daemon.client().await?;
        let mut compare_ms = Vec::new();
        let mut compare_bytes = 0;
        let mut list_ms = Vec::new();
        let mut listed = 0;
        // One untimed call of each first (the daemon's caches, the connection).
        for repetition in 0..=repetitions {
            let started = Instant::now();
            let comparison = client
                .compare_runs(&filled.compared, None)
                .await
                .map_err(|e| anyhow!("CompareRuns: {e}"))?;
            let compared = started.elapsed().as_secs_f64() * 1e3;
            anyhow::ensure!(comparison.runs.len() == COMPARED_RUNS, "compare lost runs");
            compare_bytes = prost::Message::encoded_len(&comparison);
            let started = Instant::now();
            let list = client
                .list_runs(ListRunsRequest::default())
                .await
                .map_err(|e| anyhow!("ListRuns: {e}"))?;
            let listing = started.elapsed().as_secs_f64() * 1e3;
            listed = list.runs.len();
            if repetition > 0 {
                compare_ms.push(compared);
                list_ms.push(listing);
            }
        }
        anyhow::Ok((compare_ms, compare_bytes, list_ms, listed))
    })?;
    daemon.stop()?;
    let (compare_p50, list_p50) = (median(&compare_ms), median(&list_ms));

    let mut rows = vec![
        Row::alone(
            format!("durable store write, batches of {INGEST_BATCH_EPOCHS} epochs (Store::put_epochs in-process, below LogEpochs)"),
            format!(
                "{} points/s ({} epochs/s × {VALUES_PER_EPOCH} values)",
                number(points_per_s),
                number(epochs_per_s)
            ),
            points_per_s,
            Goal::None,
            "",
            json!({ "epochs_per_s": epochs_per_s, "points_per_s": points_per_s, "values_per_epoch": VALUES_PER_EPOCH, "epochs": filled.ingested_epochs, "seconds": filled.ingest_seconds }),
        ),
        Row::alone(
            "durable epoch write, one at a time (as training stores an epoch), p50",
            format!("{single_p50:.3} ms"),
            single_p50,
            Goal::None,
            "",
            json!({ "p50_ms": single_p50, "epochs": SINGLE_EPOCHS }),
        ),
        Row::alone(
            format!("`compare` {COMPARED_RUNS} runs × {} epochs (gRPC, median)", number(f64::from(COMPARED_EPOCHS))),
            format!(
                "{compare_p50:.1} ms (a {:.1} MB response: the epochs for plots, at most 20,000 in all)",
                compare_bytes as f64 / 1e6
            ),
            compare_p50,
            Goal::Below(GOAL_COMPARE_MS),
            "ms",
            json!({ "ms": compare_ms, "response_bytes": compare_bytes }),
        ),
        Row::alone(
            format!("`list` over {} runs (gRPC, all of them, median)", number(listed as f64)),
            format!("{list_p50:.1} ms"),
            list_p50,
            Goal::Below(GOAL_LIST_MS),
            "ms",
            json!({ "ms": list_ms, "runs": listed }),
        ),
    ];
    let log_text = epoch_log_bytes.map_or(String::new(), |b| format!(" + {b:.0} B epoch log"));
    let total = filled.store_bytes_per_epoch + epoch_log_bytes.unwrap_or(0.0);
    rows.push(Row::alone(
        "bytes on disk per stored epoch (3 layer groups; checkpoints apart)",
        format!("{total:.0} B ({:.0} B store{log_text})", filled.store_bytes_per_epoch),
        total,
        Goal::None,
        "",
        json!({ "store_bytes_per_epoch": filled.store_bytes_per_epoch, "epoch_log_bytes_per_epoch": epoch_log_bytes }),
    ));
    Ok(rows)
}

/// Bytes per entry of the epoch logs (`runs/ID/epochs.pb`) under a data dir, or `None` when it
/// holds none. An entry is a 4-byte length, a 4-byte CRC32, then the record.
pub fn epoch_log_bytes_per_epoch(data_dir: &Path) -> Option<f64> {
    let (mut bytes, mut entries) = (0usize, 0usize);
    for run in std::fs::read_dir(data_dir.join("runs")).ok()?.flatten() {
        let Ok(log) = std::fs::read(run.path().join("epochs.pb")) else {
            continue;
        };
        let mut at = 0;
        while let Some(length) = log.get(at..at + 4) {
            at += 8 + u32::from_le_bytes(length.try_into().ok()?) as usize;
            entries += 1;
        }
        bytes += log.len();
    }
    (entries > 0).then(|| bytes as f64 / entries as f64)
}
