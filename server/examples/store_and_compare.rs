//! How fast epochs are ingested (durably, in batches of 100), how long reading them all back
//! takes, and how long analysing 100 runs of 1,000 epochs each takes (what `compare` does once
//! it has read them; `scripts/bench.sh` times `compare` itself, through a daemon).
//!
//! ```sh
//! cargo run --release -p strata-server --example store_and_compare
//! ```

#[path = "common/mod.rs"]
mod common;

use std::{sync::Arc, time::Instant};

use strata_server::{
    analysis::Thresholds,
    domain::{DataFacts, EpochMetrics, RunConfig, RunRecord, TaskFacts},
    store::Store,
};

const RUNS: usize = 100;
const EPOCHS: u32 = 1000;

/// A plausible curve: both losses fall, validation flattens and the gap opens.
fn record(run: usize, epoch: u32) -> EpochMetrics {
    let t = f64::from(epoch);
    let train = 1.0 / (1.0 + 0.01 * t * (1.0 + run as f64 / 50.0));
    common::epoch_record(epoch, train, train + 0.05 * (t / f64::from(EPOCHS)))
}

fn main() {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let store = Arc::new(Store::open(dir.path()).expect("a store"));
    let config = RunConfig {
        dataset: "moons".into(),
        samples: Some(1000),
        val_fraction: Some(0.2),
        batch_size: Some(32),
        epochs: Some(EPOCHS),
        ..Default::default()
    };
    let mut ids = Vec::with_capacity(RUNS);
    let started = Instant::now();
    for run in 0..RUNS {
        let id = store.next_run_id();
        let record_of_run = RunRecord {
            name: format!("run-{run}"),
            ..RunRecord::queued(
                id,
                config.clone(),
                Vec::new(),
                DataFacts {
                    train_rows: 800,
                    val_rows: 200,
                    steps_per_epoch: 25,
                    ..DataFacts::of_task(TaskFacts::Classification { classes: 2 })
                },
            )
        };
        store.put_run(&record_of_run).expect("a run");
        // In batches of 100 epochs, one sync each (`epoch_durability` measures one sync per epoch).
        let records: Vec<EpochMetrics> = (1..=EPOCHS).map(|epoch| record(run, epoch)).collect();
        for batch in records.chunks(100) {
            store.put_epochs(id, batch).expect("epochs");
        }
        ids.push(id.to_string());
    }
    let ingest = started.elapsed().as_secs_f64();
    let total = RUNS as f64 * f64::from(EPOCHS);
    println!(
        "ingest: {total:.0} epoch records in durable batches of 100: {ingest:.1} s ({:.0} epochs/s)",
        total / ingest
    );

    let started = Instant::now();
    for id in &ids {
        let epochs = store.epochs(id.parse().expect("an id"), 1).expect("epochs");
        assert_eq!(epochs.len(), EPOCHS as usize);
    }
    println!(
        "read back every epoch: {:.1} ms",
        started.elapsed().as_secs_f64() * 1e3
    );

    let thresholds = Thresholds::default();
    let runs: Vec<(RunRecord, Vec<EpochMetrics>)> = ids
        .iter()
        .map(|id| {
            let id = id.parse().expect("an id");
            let run = store.get_run(id).expect("a run").expect("stored");
            (run, store.epochs(id, 1).expect("epochs"))
        })
        .collect();
    let mut best = f64::INFINITY;
    for _ in 0..5 {
        let started = Instant::now();
        for (run, epochs) in &runs {
            let analysis = strata_server::analysis::analyse(run, epochs, &thresholds);
            std::hint::black_box(analysis);
        }
        best = best.min(started.elapsed().as_secs_f64());
    }
    println!(
        "analyse {RUNS} runs × {EPOCHS} epochs: {:.1} ms (best of 5)",
        best * 1e3
    );
}
