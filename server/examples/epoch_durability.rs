//! What making an epoch durable costs: the time to store one epoch record as the training worker
//! does (sled insert, flush, then `fdatasync`/`fsync` of sled's files — `Store::put_epoch`), beside
//! sled's insert and flush alone (which only reach the kernel, see `durable.rs`).
//!
//! ```sh
//! cargo run --release -p strata-server --example epoch_durability [EPOCHS]
//! ```
//! Run it on the disk the daemon's data dir lives on: the figure is the disk's, not the code's.

#[path = "common/mod.rs"]
mod common;

use std::time::Instant;

use strata_server::domain::{DataFacts, RunConfig, RunRecord, TaskFacts};
use strata_server::store::Store;

fn record(epoch: u32) -> strata_server::domain::EpochMetrics {
    common::epoch_record(epoch, 1.0 / f64::from(epoch), 1.1 / f64::from(epoch))
}

/// Median and 99th percentile of `samples` (seconds), in milliseconds.
fn summary(mut samples: Vec<f64>) -> (f64, f64) {
    samples.sort_by(f64::total_cmp);
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize] * 1e3;
    (at(0.5), at(0.99))
}

fn main() {
    let epochs: u32 = std::env::args()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(2000);
    let here = std::env::current_dir().expect("the working directory");

    let dir = tempfile::tempdir_in(&here).expect("a temporary folder");
    let db = sled::Config::new()
        .path(dir.path().join("db"))
        .open()
        .expect("sled");
    let tree = db.open_tree("epochs").expect("a tree");
    let mut flush_only = Vec::new();
    for epoch in 1..=epochs {
        let started = Instant::now();
        tree.insert(
            epoch.to_be_bytes(),
            strata_server::store::record::encode_epoch(&record(epoch)),
        )
        .expect("insert");
        db.flush().expect("flush");
        flush_only.push(started.elapsed().as_secs_f64());
    }

    let dir = tempfile::tempdir_in(&here).expect("a temporary folder");
    let store = Store::open(dir.path()).expect("a store");
    let id = store.next_run_id();
    store
        .put_run(&RunRecord::queued(
            id,
            RunConfig::default(),
            Vec::new(),
            DataFacts::of_task(TaskFacts::Classification { classes: 3 }),
        ))
        .expect("a run");
    let mut durable = Vec::new();
    for epoch in 1..=epochs {
        let started = Instant::now();
        store.put_epoch(id, &record(epoch)).expect("an epoch");
        durable.push(started.elapsed().as_secs_f64());
    }

    let (flush_p50, flush_p99) = summary(flush_only);
    let (durable_p50, durable_p99) = summary(durable);
    println!(
        "{epochs} epochs stored one at a time, on the disk of {}",
        here.display()
    );
    println!("sled insert + flush (kernel only):  p50 {flush_p50:.3} ms  p99 {flush_p99:.3} ms");
    println!(
        "Store::put_epoch (on the disk):     p50 {durable_p50:.3} ms  p99 {durable_p99:.3} ms"
    );
    println!(
        "cost of durability per epoch:       p50 {:.3} ms",
        durable_p50 - flush_p50
    );
}
