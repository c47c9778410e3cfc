//! `strata-bench`: measures every performance claim of the README on this machine, side by side
//! with what a user would use instead, and says how each figure compares with its goal. Prints one
//! Markdown table and writes it as JSON. Run it through `scripts/bench.sh`, which builds
//! everything in release first.
//!
//! - training (`training.rs`): through the daemon vs a PyTorch loop in Python (`torch_loop.py`) and
//!   a hand-written tch loop (`tch_loop.rs`), a digit-sized and a larger case, at 1 thread and at
//!   all cores, alternating, medians;
//! - streaming (`streaming.rs`): epoch stored → `watch` client, p50 and p99 over 1,000 epochs;
//!   training with 100 watchers vs none;
//! - dashboard (`dashboard.rs`): epoch stored → point drawn in headless Chromium's run page, p50
//!   and p99; the compare page over 100 runs × 1,000 epochs, navigation → drawn;
//! - ingest (`ingest.rs`): points durably stored per second through `LogEpochs` from one gRPC
//!   client and from 8 at once, batches of 100 epochs; a batch's p50 and p99 latency;
//! - store (`store.rs`): the store's own batched write path, `compare` of 100 runs × 1,000
//!   epochs, `list` over 10,000 runs, bytes per stored epoch;
//! - workers (`workers.rs`): `start`'s answer with a built-in model and a TorchScript module,
//!   `start` → first batch (a worker started), the per-epoch cost of training in a worker against
//!   the same loop in-process;
//! - remote (`remote.rs`): epochs per second one daemon stores from 16 remote workers at once
//!   (against from 1), and the per-epoch time of a remote worker on loopback against a local one;
//! - footprint (`footprint.rs`): idle daemon memory and CPU, memory with 4 runs and 100 watchers,
//!   the CLI's `strata list`;
//! - bounds (`bounds.rs`): the live state at the default limits and SIGTERM then; the largest
//!   external run's re-sent epoch and four run pages at once (time and memory).

mod bounds;
mod daemon;
mod dashboard;
mod data;
mod footprint;
mod ingest;
mod leakage;
mod remote;
mod report;
mod stats;
mod store;
mod streaming;
mod tch_loop;
mod training;
mod workers;

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Parser;
use serde_json::json;

use daemon::Binaries;
use report::{Report, Row};
use training::Case;

#[derive(Parser, Debug)]
#[command(about = "Measures Strata's performance claims side by side with the alternatives")]
struct Args {
    /// Fewer repetitions and a smaller large case: a faster, rougher pass.
    #[arg(long)]
    quick: bool,
    /// Where to write the JSON (default: WORK_DIR/../bench.json).
    #[arg(long)]
    json: Option<PathBuf>,
    /// The repository (for `.torch/` and `bench/torch_loop.py`; default: the current folder).
    #[arg(long, default_value = ".")]
    repo: PathBuf,
    /// The folder holding `stratad` and `strata` (default: this program's own folder).
    #[arg(long)]
    bin_dir: Option<PathBuf>,
    /// Scratch space for data and data dirs, emptied first (default: BIN_DIR/bench-work). Its disk
    /// is the one whose syncs are measured.
    #[arg(long)]
    work_dir: Option<PathBuf>,
    /// A stratad that trains in-process (built from before runs moved to workers), to compare
    /// the per-epoch time of the process boundary against (the workers section).
    #[arg(long)]
    baseline_stratad: Option<PathBuf>,
    /// Only these sections (comma-separated: training, workers, remote, streaming, dashboard,
    /// ingest, store, leakage, footprint, bounds).
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
}

/// How much each section repeats, by mode.
struct Plan {
    small_repetitions: usize,
    large_repetitions: usize,
    large_train_rows: usize,
    watcher_repetitions: usize,
    query_repetitions: usize,
    /// Timed LogEpochs batches per client.
    ingest_batches: u32,
    idle_seconds: u64,
    cli_repetitions: usize,
    /// Epochs timed from stored to drawn in the browser.
    dashboard_epochs: u32,
    leakage_rows: usize,
}

impl Plan {
    fn new(quick: bool) -> Plan {
        if quick {
            Plan {
                small_repetitions: 3,
                large_repetitions: 3,
                large_train_rows: 20_000,
                watcher_repetitions: 3,
                query_repetitions: 5,
                ingest_batches: 30,
                idle_seconds: 2,
                cli_repetitions: 5,
                dashboard_epochs: 100,
                leakage_rows: 100_000,
            }
        } else {
            Plan {
                small_repetitions: 7,
                large_repetitions: 5,
                large_train_rows: 40_000,
                watcher_repetitions: 5,
                query_repetitions: 15,
                ingest_batches: 100,
                idle_seconds: 5,
                cli_repetitions: 15,
                dashboard_epochs: 300,
                leakage_rows: 1_000_000,
            }
        }
    }
}

fn main() -> Result<()> {
    let args = Args::parse();
    let load_before = load_average();
    let plan = Plan::new(args.quick);
    let bin_dir = match &args.bin_dir {
        Some(dir) => dir.clone(),
        None => std::env::current_exe()?
            .parent()
            .context("this program's folder")?
            .to_path_buf(),
    };
    let binaries = Binaries::in_dir(&bin_dir)?;
    let work = args
        .work_dir
        .clone()
        .unwrap_or_else(|| bin_dir.join("bench-work"));
    if work.exists() {
        std::fs::remove_dir_all(&work)
            .with_context(|| format!("cannot empty {}", work.display()))?;
    }
    std::fs::create_dir_all(&work)?;
    let work = work.canonicalize()?;
    let repo = args.repo.canonicalize()?;
    let wanted = |section: &str| args.only.is_empty() || args.only.iter().any(|s| s == section);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut thread_counts = vec![1];
    if cores > 1 {
        thread_counts.push(cores);
    }

    eprintln!(
        "strata-bench: writing the data sets into {}",
        work.display()
    );
    let data_dir = work.join("data");
    let digits = Case {
        data: data::digits(&data_dir)?,
        hidden: vec![128, 64],
        epochs: 20,
        batch_size: 32,
        lr: 1e-3,
        layer0_lr: 1e-4,
        seed: 1,
        repetitions: plan.small_repetitions,
    };
    let large = Case {
        data: data::tabular(&data_dir, plan.large_train_rows, plan.large_train_rows / 4)?,
        hidden: vec![256, 256],
        epochs: 5,
        repetitions: plan.large_repetitions,
        ..digits.clone()
    };

    let mut sections: Vec<(String, Vec<Row>)> = Vec::new();
    if wanted("training") {
        eprintln!("strata-bench: training (Strata, PyTorch, tch; alternating)");
        sections.push((
            "Training (start → last epoch stored; alternatives from raw arrays in memory)".into(),
            or_not_measured(
                "training",
                training::compare(
                    &runtime,
                    &binaries,
                    &work,
                    &repo,
                    &[digits.clone(), large.clone()],
                    &thread_counts,
                ),
            ),
        ));
    }
    if wanted("workers") {
        eprintln!(
            "strata-bench: workers (start, first batch, per-epoch cost of the process boundary)"
        );
        sections.push((
            "Workers (each run in a process of its own)".into(),
            or_not_measured(
                "workers",
                workers::measure(
                    &runtime,
                    &binaries,
                    &work,
                    &repo,
                    &[digits.clone(), large.clone()],
                    plan.small_repetitions,
                    args.baseline_stratad.as_deref(),
                ),
            ),
        ));
    }
    if wanted("remote") {
        eprintln!("strata-bench: remote workers (ingest from 16, per-epoch cost over loopback)");
        sections.push((
            "Remote workers (strata-worker serve over loopback)".into(),
            or_not_measured(
                "remote",
                remote::measure(&runtime, &binaries, &work, args.quick),
            ),
        ));
    }
    let mut epoch_log_bytes = None;
    if wanted("streaming") {
        eprintln!("strata-bench: streaming");
        let mut rows = or_not_measured(
            "stored → watch latency",
            streaming::latency(&runtime, &binaries, &work),
        );
        rows.extend(or_not_measured(
            "training with 100 watchers",
            streaming::watchers_slowdown(&runtime, &binaries, &work, plan.watcher_repetitions)
                .map(|row| vec![row]),
        ));
        epoch_log_bytes = store::epoch_log_bytes_per_epoch(&work.join("watchers"));
        sections.push(("Streaming".into(), rows));
    }
    if wanted("dashboard") {
        eprintln!("strata-bench: dashboard (headless Chromium)");
        let mut rows = or_not_measured(
            "stored → drawn",
            dashboard::latency(&runtime, &binaries, &work, plan.dashboard_epochs),
        );
        rows.extend(or_not_measured(
            "compare page at scale",
            dashboard::compare_page(&runtime, &binaries, &work, plan.query_repetitions)
                .map(|row| vec![row]),
        ));
        sections.push(("Dashboard".into(), rows));
    }
    if wanted("ingest") {
        eprintln!("strata-bench: ingest (LogEpochs over gRPC)");
        sections.push((
            "Ingest (external clients, LogEpochs over gRPC, durable)".into(),
            or_not_measured(
                "ingest",
                ingest::measure(&runtime, &binaries, &work, plan.ingest_batches),
            ),
        ));
    }
    if wanted("store") {
        eprintln!("strata-bench: store");
        sections.push((
            "Store".into(),
            or_not_measured(
                "store",
                store::measure(
                    &runtime,
                    &binaries,
                    &work,
                    plan.query_repetitions,
                    epoch_log_bytes,
                ),
            ),
        ));
    }
    if wanted("leakage") {
        eprintln!("strata-bench: leakage (what the check adds to loading a CSV)");
        sections.push((
            "Leakage check (its share of a CSV's load, in process)".into(),
            or_not_measured("leakage", leakage::measure(&work, plan.leakage_rows)),
        ));
    }
    if wanted("bounds") {
        eprintln!("strata-bench: bounds (live state at its limits, the largest external run)");
        let mut rows = or_not_measured(
            "live state at the limits",
            bounds::live_state(&runtime, &binaries, &work),
        );
        rows.extend(or_not_measured(
            "the largest external run",
            bounds::largest_run(&runtime, &binaries, &work),
        ));
        sections.push((
            "Bounds (worst cases docs/src/operations/bounds.md states)".into(),
            rows,
        ));
    }
    if wanted("footprint") {
        eprintln!("strata-bench: footprint");
        let mut rows = or_not_measured(
            "idle daemon",
            footprint::idle(&binaries, &work, plan.idle_seconds),
        );
        rows.extend(or_not_measured(
            "loaded daemon and CLI",
            footprint::loaded(&runtime, &binaries, &work, &large, plan.cli_repetitions),
        ));
        sections.push(("Footprint".into(), rows));
    }

    let report = Report {
        sections,
        notes: notes(cores),
    };
    let mut machine = machine(cores);
    let load_after = load_average();
    machine["load_average_before"] = json!(load_before);
    machine["load_average_after"] = json!(load_after);
    println!(
        "\n{}, {} cores · commit {} · load average {} before, {} after{}\n",
        machine["cpu"].as_str().unwrap_or("?"),
        cores,
        machine["commit"].as_str().unwrap_or("?"),
        load_before.as_deref().unwrap_or("?"),
        load_after.as_deref().unwrap_or("?"),
        if args.quick { " · --quick" } else { "" }
    );
    print!("{}", report.markdown());
    let (met, missed, unmeasured) = report.tally();
    println!("\ngoals: {met} met, {missed} missed, {unmeasured} not measured");
    let json_path = args
        .json
        .clone()
        .unwrap_or_else(|| work.parent().unwrap_or(&work).join("bench.json"));
    let document = report.json(json!({
        "command": std::env::args().collect::<Vec<_>>().join(" "),
        "quick": args.quick,
        "machine": machine,
        "thread_counts": thread_counts,
    }));
    if let Some(parent) = json_path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(&json_path, serde_json::to_string_pretty(&document)?)?;
    println!("written: {}", json_path.display());
    Ok(())
}

/// A section's rows, or one row saying it could not be measured and why: one failure does not
/// cost the other sections' figures.
fn or_not_measured(what: &str, rows: Result<Vec<Row>>) -> Vec<Row> {
    rows.unwrap_or_else(|err| {
        eprintln!("strata-bench: {what} not measured: {err:#}");
        vec![Row::not_measured(what, "—", format!("{err:#}"))]
    })
}

/// The 1-, 5- and 15-minute load averages: other work on the machine skews every figure.
fn load_average() -> Option<String> {
    let text = std::fs::read_to_string("/proc/loadavg").ok()?;
    Some(
        text.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" "),
    )
}

/// What a reader of the table needs to know about how its figures were made.
fn notes(cores: usize) -> Vec<String> {
    vec![
        format!("\"all cores\" is {cores} here: the thread counts are 1 and {cores} (libtorch's intra-op threads; OMP/MKL set to match)."),
        "Training: Strata's time runs from sending StartRun to the last epoch's arrival at a watch client, so it includes reading the CSV files (twice: checked at start, read to train) and, every epoch, a synced checkpoint, the epoch log and the durable record. PyTorch and tch are timed from loading the same rows as raw arrays to the last epoch's validation: they parse nothing and write nothing.".into(),
        "Same data and split (the same train and validation files), standardization, initial weights (nn.Linear's after manual_seed), Adam with layer0 at 1e-4 and the rest at 1e-3, batch 32, a fresh permutation per epoch (different shuffles, so the losses differ a little), validation after every epoch; each figure is the median of its repetitions, the sides alternating in a rotating order.".into(),
        "Streaming latency: stratad runs under strace (only fsync/fdatasync traced); an epoch is stored when the store's closing fsync returns; arrival is stamped by a gRPC watch client in this process. The watchers are 100 gRPC connections from this process, on the same machine as the daemon.".into(),
        "Dashboard: an external run logged from this process, one epoch every 20 ms, its run page open in headless Chromium (Debian's, --headless=new); from just before LogEpochs is sent (the epoch is stored after that, so this bounds stored → drawn from above) to the Date.now() of the uPlot draw that first shows the epoch, both on this host's wall clock (the page's clock has 1 ms steps).".into(),
        "Ingest: each client is its own gRPC connection logging batches of 100 epochs (3 groups, 2 extra scalars: 19 numbers, each a point) into its own external run, one batch at a time; throughput is every client's points over the wall time. LogEpochs answers only once the batch is synced to the disk, so every point counted was durably stored; a batch's checks (numbering, repeats against the stored epochs) are included.".into(),
        "Workers: `start` is timed as a dry run (the same checks as a start, nothing stored). First batch: from StartRun answered to the first progress event at a watch client (progress every batch): a worker process started, libtorch loaded, connected over the daemon's Unix socket, the CSVs read and checked, the model built, one batch trained. Per epoch: the median time between consecutive epochs' checkpoints on the disk (from the second epoch; every checkpoint kept, nobody watching), through the daemon and its worker, and in this process with the same loop (strata-worker's library) storing each epoch as the daemon did before runs moved to workers (checkpoint written, synced and renamed, folder synced, epoch log, synced record; no transfer, no verification); both at 1 thread, with live progress on (20 batches an epoch), alternating. A worker sends an epoch and trains on while the daemon stores it (at most one epoch in flight), so the daemon's syncs overlap training.".into(),
        "Store: its ingestion row is the daemon's own batched write path (Store::put_epochs, one sync per 100 epochs) called in-process, below the RPC; the same path fills the data dir that the daemon then serves for compare and list.".into(),
    ]
}

fn machine(cores: usize) -> serde_json::Value {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|line| line.starts_with("model name"))
                .and_then(|line| line.split_once(':'))
                .map(|(_, name)| name.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let commit = std::process::Command::new("git")
        .args(["describe", "--always", "--dirty"])
        .output()
        .ok()
        .filter(|out| out.status.success())
        .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown commit".into());
    let memory_gib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|line| line.starts_with("MemTotal:"))
                .and_then(|line| line.split_whitespace().nth(1))
                .and_then(|kib| kib.parse::<f64>().ok())
        })
        .map(|kib| kib / 1024.0 / 1024.0);
    json!({
        "cpu": cpu,
        "cores": cores,
        "memory_gib": memory_gib,
        "commit": commit,
        "os": std::env::consts::OS,
    })
}
