//! What running each run in a worker process costs: the time `start` takes to answer (a built-in
//! model needs no worker; a TorchScript module is loaded by one), the time from `start` answered
//! to the first batch trained (a worker started, libtorch loaded, the data read), the worker's own
//! memory, and the per-epoch cost of the process boundary — the same loop trained in this process
//! with the daemon's former in-process durability (checkpoint written, synced and renamed, epoch
//! log, synced record), against the same run trained through the daemon and its worker (the
//! checkpoint sent in chunks, verified, synced and renamed by the daemon, the epoch acknowledged).

use std::{
    path::{Path, PathBuf},
    time::Instant,
};

use anyhow::{anyhow, bail, Context, Result};
use serde_json::json;
use strata_client::Client;
use strata_proto::{watch_event::Event, RunConfig, StartRunRequest};
use strata_server::{
    domain::{BatchProgress, DataFacts, EpochMetrics, RunConfig as DomainConfig, RunId, RunRecord},
    durable,
    spec::RunSpec,
    store::{epoch_log, record, Store},
    train::{self, checkpoint},
};
use strata_worker::train::run::{MeasuredData, RunSink, TrainJob};

use crate::{
    daemon::{Binaries, Daemon, Options},
    report::{Goal, Row},
    stats::median,
    training::Case,
};

const MIB: f64 = 1024.0 * 1024.0;
/// Goal (issue 23): the process boundary costs at most 3 % per epoch.
const GOAL_EPOCH_OVERHEAD: f64 = 1.03;

/// How long a spare worker is given to be ready again between timed starts.
const SPARE_READY_SECONDS: u64 = 3;

/// The rows of the workers section: with every worker started for its job, then with the spare
/// worker the daemon keeps by default.
pub fn measure(
    runtime: &tokio::runtime::Runtime,
    binaries: &Binaries,
    work: &Path,
    repo: &Path,
    cases: &[Case],
    repetitions: usize,
    baseline: Option<&Path>,
) -> Result<Vec<Row>> {
    let module = work.join("net.pt");
    let scripted = script_module(repo, &module, cases[0].data.features, cases[0].data.classes);
    let mut rows = Vec::new();
    for spare in [false, true] {
        let daemon = Daemon::start(
            binaries,
            &work.join(if spare {
                "workers-spare"
            } else {
                "workers-cold"
            }),
            &Options {
                threads: Some(1),
                data_root: Some(work.to_path_buf()),
                allow_torchscript: true,
                no_spare_worker: !spare,
                ..Default::default()
            },
        )?;
        let how = if spare {
            "the spare worker"
        } else {
            "a worker started for it (--spare-worker off)"
        };
        runtime.block_on(async {
            let client = daemon.client().await?;
            if spare {
                // The spare is started after the daemon's first CPU job.
                first_batch(&client, &cases[0], 1, 0, how).await?;
            } else {
                rows.push(builtin_start(&client, &cases[0], repetitions).await?);
            }
            let pause = if spare { SPARE_READY_SECONDS } else { 0 };
            rows.push(match scripted.as_ref() {
                Ok(()) => {
                    torchscript_start(&client, &cases[0], &module, repetitions, pause, how).await?
                }
                Err(why) => Row::not_measured(
                    format!("`start` answered, TorchScript module, {how}"),
                    "—",
                    why.to_string(),
                ),
            });
            rows.push(first_batch(&client, &cases[0], repetitions, pause, how).await?);
            anyhow::Ok(())
        })?;
        if spare {
            for case in cases {
                rows.push(epoch_overhead(runtime, &daemon, case, work)?);
            }
        }
        daemon.stop()?;
    }
    if let Some(baseline) = baseline {
        for case in cases {
            rows.push(against_baseline(runtime, binaries, baseline, work, case)?);
        }
    }
    Ok(rows)
}

/// Per-epoch time of `case` through this daemon and its worker against through `baseline`, a
/// stratad that trains in-process (one built from before the worker split), each watched the
/// same way, alternating; and whether the two train alike, seed for seed (every epoch's
/// validation loss the same to the bit).
fn against_baseline(
    runtime: &tokio::runtime::Runtime,
    binaries: &Binaries,
    baseline: &Path,
    work: &Path,
    case: &Case,
) -> Result<Row> {
    let options = Options {
        threads: Some(1),
        data_root: Some(work.to_path_buf()),
        ..Default::default()
    };
    let old = Binaries {
        stratad: baseline.to_path_buf(),
        ..binaries.clone()
    };
    let daemon = Daemon::start(binaries, &work.join("versus-new"), &options)?;
    let in_process = Daemon::start(&old, &work.join("versus-old"), &options)?;
    let epochs = case.epochs.max(8);
    let (mut new_ms, mut old_ms, mut same) = (Vec::new(), Vec::new(), true);
    for repetition in 0..case.repetitions.max(3) {
        let (new, old) = runtime.block_on(async {
            if repetition % 2 == 0 {
                let new = watched_run(&daemon, case, epochs).await?;
                crate::daemon::settle_after_run().await;
                anyhow::Ok((new, watched_run(&in_process, case, epochs).await?))
            } else {
                let old = watched_run(&in_process, case, epochs).await?;
                let new = watched_run(&daemon, case, epochs).await?;
                crate::daemon::settle_after_run().await;
                anyhow::Ok((new, old))
            }
        })?;
        same &= new
            .1
            .iter()
            .map(|l| l.to_bits())
            .eq(old.1.iter().map(|l| l.to_bits()));
        new_ms.push(per_epoch_ms(&new.0));
        old_ms.push(per_epoch_ms(&old.0));
    }
    daemon.stop()?;
    in_process.stop()?;
    let (new, old) = (median(&new_ms), median(&old_ms));
    Ok(Row::compared(
        format!(
            "per epoch, through a worker vs the in-process stratad ({} {}×{}, {}, {epochs} epochs, 1 thread, watched)",
            case.data.name,
            crate::report::number(case.data.train.rows as f64),
            case.data.features,
            config(case, epochs).model
        ),
        format!(
            "{new:.1} ms ({} losses)",
            if same { "the same" } else { "different" }
        ),
        format!("in-process stratad {old:.1} ms"),
        new / old,
        Goal::RatioAtMost(GOAL_EPOCH_OVERHEAD),
        json!({ "through_worker_ms": new_ms, "in_process_stratad_ms": old_ms, "same_losses": same, "baseline": baseline.display().to_string() }),
    ))
}

/// A run of `case` as `start` takes it, for `epochs` epochs, with a progress event every batch.
fn config(case: &Case, epochs: u32) -> RunConfig {
    let csv = |path: &Path| format!("csv:{}", path.display());
    RunConfig {
        dataset: csv(&case.data.train.csv),
        val_dataset: csv(&case.data.val.csv),
        task: "classification".into(),
        model: format!(
            "mlp:{}",
            case.hidden
                .iter()
                .map(i64::to_string)
                .collect::<Vec<_>>()
                .join(",")
        ),
        optimizer: "adam".into(),
        lr: Some(case.lr),
        layer_lr: vec![format!("layer0={}", case.layer0_lr)],
        epochs: Some(epochs),
        batch_size: Some(case.batch_size),
        seed: Some(case.seed),
        ..Default::default()
    }
}

/// Scripts a two-layer module for the TorchScript start, with the project's PyTorch.
fn script_module(repo: &Path, path: &Path, inputs: usize, outputs: usize) -> Result<()> {
    let torch = repo.join(".torch");
    let program = format!(
        "import sys, torch\n\
         class Net(torch.nn.Module):\n\
         \x20   def __init__(self):\n\
         \x20       super().__init__()\n\
         \x20       self.fc1 = torch.nn.Linear({inputs}, 64)\n\
         \x20       self.fc2 = torch.nn.Linear(64, {outputs})\n\
         \x20   def forward(self, x):\n\
         \x20       return self.fc2(torch.relu(self.fc1(x)))\n\
         torch.jit.script(Net()).save(sys.argv[1])\n"
    );
    let script = path.with_extension("py");
    std::fs::write(&script, program)?;
    let out = std::process::Command::new(std::env::var_os("PYTHON").unwrap_or("python3".into()))
        .arg(&script)
        .arg(path)
        .env("PYTHONPATH", &torch)
        .output()
        .context("cannot run python3")?;
    if !out.status.success() {
        bail!(
            "scripting a module failed: {}",
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .last()
                .unwrap_or("")
        );
    }
    Ok(())
}

/// StartRun's round trip as a dry run (the same checks, nothing stored), median of
/// `repetitions`, each `pause` seconds after the last.
async fn dry_starts(
    client: &Client,
    config: RunConfig,
    repetitions: usize,
    pause: u64,
) -> Result<Vec<f64>> {
    let mut samples = Vec::new();
    for _ in 0..repetitions.max(3) {
        tokio::time::sleep(std::time::Duration::from_secs(pause)).await;
        let started = Instant::now();
        client
            .start_run(StartRunRequest {
                config: Some(config.clone()),
                dry_run: true,
                ..Default::default()
            })
            .await
            .map_err(|e| anyhow!("StartRun: {e}"))?;
        samples.push(started.elapsed().as_secs_f64() * 1e3);
    }
    Ok(samples)
}

/// `start` of a built-in model: the daemon reads the data and computes the model's parameters
/// itself, no worker.
async fn builtin_start(client: &Client, case: &Case, repetitions: usize) -> Result<Row> {
    let samples = dry_starts(client, config(case, 1), repetitions, 0).await?;
    Ok(Row::alone(
        format!(
            "`start` answered, built-in model ({}), median",
            case.describe()
        ),
        format!(
            "{:.1} ms (no worker: the daemon reads the data and computes the parameters)",
            median(&samples)
        ),
        median(&samples),
        Goal::None,
        "",
        json!({ "ms": samples }),
    ))
}

/// `start` of a TorchScript module: a worker loads it and runs it once.
async fn torchscript_start(
    client: &Client,
    case: &Case,
    module: &Path,
    repetitions: usize,
    pause: u64,
    how: &str,
) -> Result<Row> {
    let config = RunConfig {
        model: format!("torchscript:{}", module.display()),
        layer_lr: vec!["fc1=1e-4".into()],
        ..config(case, 1)
    };
    let samples = dry_starts(client, config, repetitions, pause).await?;
    Ok(Row::alone(
        format!("`start` answered, TorchScript module, {how}, median"),
        format!(
            "{:.1} ms (the module loaded and run once in a worker)",
            median(&samples)
        ),
        median(&samples),
        Goal::None,
        "",
        json!({ "ms": samples }),
    ))
}

/// From StartRun answered to the first batch's progress at a watch client: a worker started,
/// libtorch loaded, connected, the CSVs read and checked, the model built, one batch trained. And
/// the worker's own memory (what it holds besides the shared libraries) while it trains.
async fn first_batch(
    client: &Client,
    case: &Case,
    repetitions: usize,
    pause: u64,
    how: &str,
) -> Result<Row> {
    let mut samples = Vec::new();
    let mut worker_mib = Vec::new();
    for _ in 0..repetitions {
        tokio::time::sleep(std::time::Duration::from_secs(pause)).await;
        let config = RunConfig {
            progress_events_per_epoch: Some(1000),
            ..config(case, 2)
        };
        let run = client
            .start_run(StartRunRequest {
                config: Some(config),
                ..Default::default()
            })
            .await
            .map_err(|e| anyhow!("StartRun: {e}"))?
            .run_id;
        let started = Instant::now();
        let mut stream = client
            .watch_run(&run, 0)
            .await
            .map_err(|e| anyhow!("WatchRun: {e}"))?;
        let mut first = None;
        while let Some(event) = stream.message().await? {
            match event.event {
                Some(Event::Progress(_)) if first.is_none() => {
                    first = Some(started.elapsed().as_secs_f64() * 1e3);
                    let pid = client
                        .get_run(&run)
                        .await
                        .map_err(|e| anyhow!("GetRun: {e}"))?
                        .run
                        .map_or(0, |r| r.worker_pid);
                    if let Ok(kib) = status_kib(pid, "RssAnon:") {
                        worker_mib.push(kib as f64 * 1024.0 / MIB);
                    }
                }
                Some(Event::Status(change))
                    if strata_proto::RunStatus::try_from(change.status)
                        .is_ok_and(|s| s.is_terminal()) =>
                {
                    break
                }
                _ => {}
            }
        }
        samples.push(first.ok_or_else(|| anyhow!("run {run} reported no batch"))?);
    }
    Ok(Row::alone(
        format!(
            "`start` answered → first batch trained, at a watcher ({}), {how}, median",
            case.describe()
        ),
        format!(
            "{:.0} ms (the worker's own memory while training: {:.0} MiB)",
            median(&samples),
            median(&worker_mib)
        ),
        median(&samples),
        Goal::None,
        "",
        json!({ "ms": samples, "worker_anonymous_rss_mib": worker_mib }),
    ))
}

fn status_kib(pid: u32, field: &str) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix(field))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| anyhow!("no {field} in /proc/{pid}/status"))
}

/// The median time between consecutive epochs (from the second on), in ms.
fn per_epoch_ms(arrivals: &[Instant]) -> f64 {
    let gaps: Vec<f64> = arrivals
        .windows(2)
        .map(|w| (w[1] - w[0]).as_secs_f64() * 1e3)
        .collect();
    median(&gaps)
}

/// Per-epoch time of `case` through the daemon and its worker against the same loop in this
/// process, storing each epoch as the daemon did when it trained in-process.
fn epoch_overhead(
    runtime: &tokio::runtime::Runtime,
    daemon: &Daemon,
    case: &Case,
    work: &Path,
) -> Result<Row> {
    // Enough epochs for a steady median, whatever the case's own count.
    let epochs = case.epochs.max(8);
    let mut through = Vec::new();
    let mut in_process = Vec::new();
    for repetition in 0..case.repetitions.max(3) {
        let mut sides = [true, false];
        if repetition % 2 == 1 {
            sides.reverse();
        }
        for daemon_side in sides {
            if daemon_side {
                through.push(runtime.block_on(async {
                    let through = through_daemon(daemon, case, epochs).await;
                    crate::daemon::settle_after_run().await;
                    through
                })?);
            } else {
                let dir = work.join(format!("in-process-{repetition}"));
                in_process.push(train_in_process(case, epochs, &dir)?);
            }
        }
    }
    let (through_ms, in_process_ms) = (median(&through), median(&in_process));
    Ok(Row::compared(
        format!(
            "per epoch, through a worker vs in-process ({} {}×{}, {}, {epochs} epochs, 1 thread)",
            case.data.name,
            crate::report::number(case.data.train.rows as f64),
            case.data.features,
            config(case, epochs).model
        ),
        format!("{through_ms:.1} ms"),
        format!("in-process {in_process_ms:.1} ms"),
        through_ms / in_process_ms,
        Goal::RatioAtMost(GOAL_EPOCH_OVERHEAD),
        json!({ "through_worker_ms": through, "in_process_ms": in_process }),
    ))
}

/// A run of `case` through a daemon, watched: when each epoch arrived at the watch client, and
/// each epoch's validation loss.
pub async fn watched_run(
    daemon: &Daemon,
    case: &Case,
    epochs: u32,
) -> Result<(Vec<Instant>, Vec<f64>)> {
    let client = daemon.client().await?;
    let run = client
        .start_run(StartRunRequest {
            config: Some(config(case, epochs)),
            ..Default::default()
        })
        .await
        .map_err(|e| anyhow!("StartRun: {e}"))?
        .run_id;
    let mut stream = client
        .watch_run(&run, 0)
        .await
        .map_err(|e| anyhow!("WatchRun: {e}"))?;
    let (mut arrivals, mut losses) = (Vec::new(), Vec::new());
    while let Some(event) = stream.message().await? {
        match event.event {
            Some(Event::Epoch(epoch)) => {
                arrivals.push(Instant::now());
                losses.push(epoch.val_loss);
            }
            Some(Event::Status(change))
                if strata_proto::RunStatus::try_from(change.status)
                    .is_ok_and(|s| s.is_terminal()) =>
            {
                break
            }
            _ => {}
        }
    }
    if arrivals.len() != epochs as usize {
        bail!("run {run} streamed {} of {epochs} epochs", arrivals.len());
    }
    Ok((arrivals, losses))
}

/// The median epoch-to-epoch time of a run through the daemon, as a watcher sees epochs arrive.
async fn through_daemon(daemon: &Daemon, case: &Case, epochs: u32) -> Result<f64> {
    Ok(per_epoch_ms(&watched_run(daemon, case, epochs).await?.0))
}

/// What the daemon did with each epoch when runs trained inside it: the checkpoint written to a
/// temporary name, synced, renamed, the folder synced; the epoch log appended; the record stored
/// and synced.
struct InProcessSink {
    id: RunId,
    store: Store,
    dir: PathBuf,
    stored: std::sync::Mutex<Vec<Instant>>,
}

impl RunSink for InProcessSink {
    fn data_loaded(&self, data: &MeasuredData) -> strata_server::error::Result<Vec<u8>> {
        let record = self.store.update_run(self.id, |run| {
            run.facts = DataFacts {
                task: data.task,
                train_rows: data.train_rows,
                val_rows: data.val_rows,
                steps_per_epoch: data.steps_per_epoch,
                ..run.facts.clone()
            };
        })?;
        Ok(record::encode_run(&record))
    }

    fn epoch_finished(
        &self,
        epoch: &EpochMetrics,
        bytes: Vec<u8>,
    ) -> strata_server::error::Result<()> {
        let storage = strata_server::error::StrataError::storage;
        let tmp = self.dir.join(checkpoint::file::TMP_FILE);
        let written = std::fs::write(&tmp, &bytes)
            .and_then(|()| durable::sync_file(&tmp))
            .and_then(|()| std::fs::rename(&tmp, checkpoint::path_for(&self.dir, epoch.epoch)))
            .and_then(|()| durable::sync_dir(&self.dir))
            .and_then(|()| epoch_log::append(&self.dir, epoch));
        written.map_err(|e| storage(e.to_string()))?;
        self.store.put_epoch(self.id, epoch)?;
        self.stored
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(Instant::now());
        checkpoint::prune(&self.dir, 2);
        Ok(())
    }

    fn progress(&self, _: BatchProgress) {}
}

/// The median epoch-to-epoch time of the same run trained in this process, on a thread with one
/// libtorch thread (as the daemon's workers have with `--threads 1`).
fn train_in_process(case: &Case, epochs: u32, dir: &Path) -> Result<f64> {
    let config: DomainConfig = config(case, epochs).into();
    let spec = RunSpec::try_from(config)?;
    let shape = train::probe_run_data(&spec)?;
    let params = spec
        .model
        .parameters(&shape.sample, shape.task.outputs())?
        .context("a built-in model")?;
    let prepared = train::resolve_run(spec, shape, &params)?;
    let store = Store::open(&dir.join("data"))?;
    let id = store.next_run_id();
    let record = RunRecord::queued(
        id,
        prepared.spec.config.clone(),
        Vec::new(),
        DataFacts::of_task(strata_server::domain::TaskFacts::Classification { classes: 2 }),
    );
    store.put_run(&record)?;
    let run_dir = dir.join("runs").join(id.to_string());
    durable::create_dir_all(&run_dir)?;
    let sink = InProcessSink {
        id,
        store,
        dir: run_dir,
        stored: std::sync::Mutex::new(Vec::new()),
    };
    let outcome = std::thread::scope(|scope| {
        scope
            .spawn(|| {
                strata_worker::train::threads::set_tensor_threads_of_this_thread(1);
                let stop = std::sync::atomic::AtomicU8::new(0);
                strata_worker::train::run::train(&TrainJob {
                    run_id: id.to_string(),
                    spec: &prepared.spec,
                    resolved: &prepared.resolved,
                    device: tch::Device::Cpu,
                    sink: &sink,
                    stop: &stop,
                    resume_after_epoch: 0,
                    start_from: None,
                })
            })
            .join()
    })
    .map_err(|_| anyhow!("the in-process training panicked"))?;
    if outcome != strata_server::domain::Outcome::Completed {
        bail!("the in-process run ended {outcome:?}");
    }
    let stored = sink.stored.into_inner().unwrap_or_else(|p| p.into_inner());
    Ok(per_epoch_ms(&stored))
}
