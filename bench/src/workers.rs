//! What running each run in a worker process costs: the time `start` takes to answer (a built-in
//! model needs no worker; a TorchScript module is loaded by one), the time from `start` answered
//! to the first batch trained (a worker started, libtorch loaded, the data read), the worker's own
//! memory, and the per-epoch cost of the process boundary — the same loop trained in this process
//! with the daemon's former in-process durability (checkpoint written, synced and renamed, epoch
//! log, synced record), against the same run trained through the daemon and its worker (the
//! checkpoint sent in chunks, verified, synced and renamed by the daemon, the epoch acknowledged).

use std::{
    path::{Path, PathBuf},
    sync::Mutex,
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

/// The rows of the workers section.
pub fn measure(
    runtime: &tokio::runtime::Runtime,
    binaries: &Binaries,
    work: &Path,
    repo: &Path,
    cases: &[Case],
    repetitions: usize,
) -> Result<Vec<Row>> {
    let module = work.join("net.pt");
    let scripted = script_module(repo, &module, cases[0].data.features, cases[0].data.classes);
    let daemon = Daemon::start(
        binaries,
        &work.join("workers"),
        &Options {
            threads: Some(1),
            data_root: Some(work.to_path_buf()),
            allow_torchscript: true,
            ..Default::default()
        },
    )?;
    let mut rows = Vec::new();
    runtime.block_on(async {
        let client = daemon.client().await?;
        rows.extend(
            start_latency(
                &client,
                cases,
                &module,
                scripted.as_ref().err(),
                repetitions,
            )
            .await?,
        );
        rows.push(first_batch(&client, &cases[0], repetitions).await?);
        anyhow::Ok(())
    })?;
    for case in cases {
        rows.push(epoch_overhead(runtime, &daemon, case, work)?);
    }
    daemon.stop()?;
    Ok(rows)
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

/// StartRun's round trip, median of `repetitions`: a built-in model (checked in the daemon, no
/// worker) and a TorchScript module (loaded and run once by a worker), each a dry run so that
/// nothing trains meanwhile.
async fn start_latency(
    client: &Client,
    cases: &[Case],
    module: &Path,
    unscripted: Option<&anyhow::Error>,
    repetitions: usize,
) -> Result<Vec<Row>> {
    let time = |config: RunConfig| async move {
        let mut samples = Vec::new();
        for _ in 0..repetitions.max(3) {
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
        anyhow::Ok(samples)
    };
    let builtin = time(config(&cases[0], 1)).await?;
    let mut rows = vec![Row::alone(
        format!(
            "`start` answered, built-in model ({}), median",
            cases[0].describe()
        ),
        format!(
            "{:.1} ms (no worker: the daemon reads the data and computes the parameters)",
            median(&builtin)
        ),
        median(&builtin),
        Goal::None,
        "",
        json!({ "ms": builtin }),
    )];
    match unscripted {
        None => {
            let scripted = time(RunConfig {
                model: format!("torchscript:{}", module.display()),
                layer_lr: vec!["fc1=1e-4".into()],
                ..config(&cases[0], 1)
            })
            .await?;
            rows.push(Row::alone(
                "`start` answered, TorchScript module, median",
                format!(
                    "{:.1} ms (a worker started to load and run the module once)",
                    median(&scripted)
                ),
                median(&scripted),
                Goal::None,
                "",
                json!({ "ms": scripted }),
            ));
        }
        Some(why) => rows.push(Row::not_measured(
            "`start` answered, TorchScript module",
            "—",
            why.to_string(),
        )),
    }
    Ok(rows)
}

/// From StartRun answered to the first batch's progress at a watch client: a worker started,
/// libtorch loaded, connected, the CSVs read and checked, the model built, one batch trained. And
/// the worker's own memory (what it holds besides the shared libraries) while it trains.
async fn first_batch(client: &Client, case: &Case, repetitions: usize) -> Result<Row> {
    let mut samples = Vec::new();
    let mut worker_mib = Vec::new();
    for _ in 0..repetitions.max(3) {
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
            "`start` answered → first batch trained, at a watcher ({}), median",
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
                through.push(runtime.block_on(through_daemon(daemon, case, epochs))?);
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

/// The median epoch-to-epoch time of a run through the daemon, as a watcher sees epochs arrive.
async fn through_daemon(daemon: &Daemon, case: &Case, epochs: u32) -> Result<f64> {
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
    let mut arrivals = Vec::new();
    while let Some(event) = stream.message().await? {
        match event.event {
            Some(Event::Epoch(_)) => arrivals.push(Instant::now()),
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
    Ok(per_epoch_ms(&arrivals))
}

/// What the daemon did with each epoch when runs trained inside it: the checkpoint written to a
/// temporary name, synced, renamed, the folder synced; the epoch log appended; the record stored
/// and synced.
struct InProcessSink {
    id: RunId,
    store: Store,
    dir: PathBuf,
    arrivals: Mutex<Vec<Instant>>,
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
        let storage = strata_server::error::StrataError::Storage;
        let tmp = self.dir.join(checkpoint::file::TMP_FILE);
        let written = std::fs::write(&tmp, &bytes)
            .and_then(|()| durable::sync_file(&tmp))
            .and_then(|()| std::fs::rename(&tmp, checkpoint::path_for(&self.dir, epoch.epoch)))
            .and_then(|()| durable::sync_dir(&self.dir))
            .and_then(|()| epoch_log::append(&self.dir, epoch));
        written.map_err(|e| storage(e.to_string()))?;
        self.store.put_epoch(self.id, epoch)?;
        self.arrivals
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
        arrivals: Mutex::new(Vec::new()),
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
    let arrivals = sink
        .arrivals
        .into_inner()
        .unwrap_or_else(|p| p.into_inner());
    Ok(per_epoch_ms(&arrivals))
}
