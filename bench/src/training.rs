//! Training through the daemon against the same training written by hand: a PyTorch loop in
//! Python and a tch loop in Rust, on the same data, split, initial weights, optimizer, per-group
//! rates, batch size and epochs. Each repetition runs the three sides one after the other, in an
//! order that rotates, and each figure is the median of its repetitions.

use std::{
    io::{BufRead, BufReader, Write},
    path::Path,
    process::{Child, ChildStdin, ChildStdout, Command, Stdio},
    time::Instant,
};

use anyhow::{anyhow, bail, Context, Result};
use serde_json::{json, Value};
use strata_client::Client;
use strata_proto::{
    epoch_record, watch_event::Event, RunConfig, RunStatus, StartRunRequest, WatchEvent,
};

use crate::{
    daemon::{Binaries, Daemon, Options},
    data::DataFiles,
    report::{number, Goal, Row},
    stats::median,
    tch_loop,
};

/// One training setup, trained the same way by every side.
#[derive(Clone, Debug)]
pub struct Case {
    pub data: DataFiles,
    pub hidden: Vec<i64>,
    pub epochs: u32,
    pub batch_size: u32,
    /// Adam's rate for every group but the first layer's.
    pub lr: f64,
    /// The first layer's rate (the differential part).
    pub layer0_lr: f64,
    pub seed: u64,
    pub repetitions: usize,
}

impl Case {
    /// `digits 1,437×64, mlp:128,64, 20 epochs`
    pub fn describe(&self) -> String {
        format!(
            "{} {}×{}, {}, {} epochs",
            self.data.name,
            number(self.data.train.rows as f64),
            self.data.features,
            self.model(),
            self.epochs
        )
    }

    fn model(&self) -> String {
        let widths: Vec<String> = self.hidden.iter().map(i64::to_string).collect();
        format!("mlp:{}", widths.join(","))
    }
}

/// What one side's training took and how well it learned.
#[derive(Clone, Copy, Debug)]
pub struct Trained {
    pub seconds: f64,
    /// CPU time the side's process used meanwhile (every thread): steadier than wall time on a
    /// machine that other work shares.
    pub cpu_seconds: f64,
    pub val_loss: f64,
    pub val_accuracy: f64,
}

/// The sides of a comparison.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Side {
    Strata,
    PyTorch,
    Tch,
}

/// Trains `case` through the daemon: from sending StartRun to the arrival of the last epoch
/// (stored before it is streamed) at a watch client. Strata's side includes reading the CSV files
/// (twice: once to check the start, once to train) and, every epoch, a synced checkpoint, the epoch
/// log and the durable record.
pub async fn through_strata(daemon: &Daemon, client: &Client, case: &Case) -> Result<Trained> {
    let csv = |path: &Path| format!("csv:{}", path.display());
    let config = RunConfig {
        dataset: csv(&case.data.train.csv),
        val_dataset: csv(&case.data.val.csv),
        task: "classification".into(),
        model: case.model(),
        optimizer: "adam".into(),
        lr: Some(case.lr),
        layer_lr: vec![format!("layer0={}", case.layer0_lr)],
        epochs: Some(case.epochs),
        batch_size: Some(case.batch_size),
        seed: Some(case.seed),
        ..Default::default()
    };
    let cpu_started = daemon.cpu_seconds()?;
    let started = Instant::now();
    let run = client
        .start_run(StartRunRequest {
            config: Some(config),
            name: "bench".into(),
            tags: vec!["bench".into()],
            ..Default::default()
        })
        .await
        .map_err(|e| anyhow!("StartRun: {e}"))?
        .run_id;
    let stream = client
        .watch_run(&run, 0)
        .await
        .map_err(|e| anyhow!("WatchRun: {e}"))?;
    let seconds_and_figures = last_epoch(stream, case.epochs, started).await?;
    Ok(Trained {
        cpu_seconds: daemon.cpu_seconds()? - cpu_started,
        ..seconds_and_figures
    })
}

/// Reads a run's stream to its end: when its epoch `epochs` arrived (seconds after `started`),
/// and that epoch's validation figures.
async fn last_epoch(
    mut stream: tonic::Streaming<WatchEvent>,
    epochs: u32,
    started: Instant,
) -> Result<Trained> {
    let mut last = None;
    while let Some(event) = stream.message().await? {
        match event.event {
            Some(Event::Epoch(epoch)) if epoch.epoch == epochs => {
                let seconds = started.elapsed().as_secs_f64();
                let accuracy = match epoch.val_metric {
                    Some(epoch_record::ValMetric::ValAccuracy(a)) => a,
                    _ => f64::NAN,
                };
                last = Some(Trained {
                    seconds,
                    cpu_seconds: f64::NAN,
                    val_loss: epoch.val_loss,
                    val_accuracy: accuracy,
                });
            }
            Some(Event::Status(change)) => {
                let status = RunStatus::try_from(change.status).unwrap_or(RunStatus::Unspecified);
                if status.is_terminal() {
                    if status != RunStatus::Completed {
                        bail!("the run ended {}: {}", status.label(), change.reason);
                    }
                    break;
                }
            }
            _ => {}
        }
    }
    last.ok_or_else(|| anyhow!("the run's stream ended before epoch {epochs}"))
}

/// The Python worker (`bench/torch_loop.py`), started once and fed one job per line.
pub struct PyTorchWorker {
    child: Child,
    input: ChildStdin,
    output: BufReader<ChildStdout>,
    pub version: String,
}

impl PyTorchWorker {
    /// Starts the worker with `PYTHONPATH=REPO/.torch` (the project's PyTorch).
    pub fn start(repo: &Path, log: &Path) -> Result<PyTorchWorker> {
        let torch = repo.join(".torch");
        if !torch.join("torch").is_dir() {
            bail!(
                "{} holds no PyTorch (scripts/setup-libtorch.sh installs it)",
                torch.display()
            );
        }
        let mut child = Command::new(std::env::var_os("PYTHON").unwrap_or("python3".into()))
            .arg(repo.join("bench/torch_loop.py"))
            .env("PYTHONPATH", &torch)
            .env("CUDA_VISIBLE_DEVICES", "")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(log)?)
            .spawn()
            .context("cannot run python3")?;
        let input = child.stdin.take().expect("stdin is piped");
        let mut output = BufReader::new(child.stdout.take().expect("stdout is piped"));
        let mut line = String::new();
        output.read_line(&mut line)?;
        let ready: Value = serde_json::from_str(&line).map_err(|_| {
            anyhow!(
                "the PyTorch worker did not start: {}",
                std::fs::read_to_string(log).unwrap_or_default()
            )
        })?;
        let version = ready["ready"].as_str().unwrap_or("?").to_string();
        Ok(PyTorchWorker {
            child,
            input,
            output,
            version,
        })
    }

    pub fn train(&mut self, case: &Case, threads: usize) -> Result<Trained> {
        let data = &case.data;
        let job = json!({
            "threads": threads,
            "train_prefix": data.train.raw_prefix,
            "train_rows": data.train.rows,
            "val_prefix": data.val.raw_prefix,
            "val_rows": data.val.rows,
            "features": data.features,
            "classes": data.classes,
            "hidden": case.hidden,
            "epochs": case.epochs,
            "batch_size": case.batch_size,
            "lr": case.lr,
            "layer0_lr": case.layer0_lr,
            "seed": case.seed,
        });
        writeln!(self.input, "{job}")?;
        self.input.flush()?;
        let mut line = String::new();
        self.output.read_line(&mut line)?;
        let answer: Value = serde_json::from_str(&line)
            .map_err(|_| anyhow!("the PyTorch worker stopped answering"))?;
        if let Some(error) = answer["error"].as_str() {
            bail!("PyTorch: {error}");
        }
        let number = |key: &str| answer[key].as_f64().unwrap_or(f64::NAN);
        Ok(Trained {
            seconds: number("seconds"),
            cpu_seconds: number("cpu_seconds"),
            val_loss: number("val_loss"),
            val_accuracy: number("val_accuracy"),
        })
    }
}

impl Drop for PyTorchWorker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Every repetition of one side.
#[derive(Default)]
struct Runs(Vec<Trained>);

impl Runs {
    fn seconds(&self) -> f64 {
        median(&self.0.iter().map(|t| t.seconds).collect::<Vec<_>>())
    }

    fn cpu_seconds(&self) -> f64 {
        median(&self.0.iter().map(|t| t.cpu_seconds).collect::<Vec<_>>())
    }

    fn val_loss(&self) -> f64 {
        median(&self.0.iter().map(|t| t.val_loss).collect::<Vec<_>>())
    }

    fn text(&self) -> String {
        format!(
            "{:.3} s (cpu {:.3} s; val {:.4})",
            self.seconds(),
            self.cpu_seconds(),
            self.val_loss()
        )
    }

    fn json(&self) -> Value {
        json!({
            "median_seconds": self.seconds(),
            "median_cpu_seconds": self.cpu_seconds(),
            "median_val_loss": self.val_loss(),
            "seconds": self.0.iter().map(|t| t.seconds).collect::<Vec<_>>(),
            "cpu_seconds": self.0.iter().map(|t| t.cpu_seconds).collect::<Vec<_>>(),
            "val_loss": self.0.iter().map(|t| t.val_loss).collect::<Vec<_>>(),
            "val_accuracy": self.0.iter().map(|t| t.val_accuracy).collect::<Vec<_>>(),
        })
    }
}

/// Goals: Strata at most this fraction of PyTorch's time, and of the hand-written tch loop's.
const GOAL_VS_PYTORCH: f64 = 0.8;
const GOAL_VS_TCH: f64 = 1.03;

/// The training comparisons at each thread count: a daemon per thread count, alternating sides.
pub fn compare(
    runtime: &tokio::runtime::Runtime,
    binaries: &Binaries,
    work: &Path,
    repo: &Path,
    cases: &[Case],
    thread_counts: &[usize],
) -> Result<Vec<Row>> {
    let mut pytorch = PyTorchWorker::start(repo, &work.join("torch_loop.log"));
    let mut rows = Vec::new();
    for &threads in thread_counts {
        let daemon = Daemon::start(
            binaries,
            &work.join(format!("train-{threads}-threads")),
            &Options {
                threads: Some(threads),
                data_root: Some(cases[0].data.train.csv.parent().unwrap().to_path_buf()),
                ..Default::default()
            },
        )?;
        let client = runtime.block_on(daemon.client())?;
        // One untimed round first: the first run of each side pays for lazy initialisation.
        let warm_up = Case {
            epochs: 1,
            ..cases[0].clone()
        };
        runtime.block_on(async {
            let trained = through_strata(&daemon, &client, &warm_up).await;
            crate::daemon::settle_after_run().await;
            trained
        })?;
        tch_loop::train(&warm_up, threads)?;
        if let Ok(worker) = pytorch.as_mut() {
            worker.train(&warm_up, threads)?;
        }
        for case in cases {
            let (mut strata, mut torch, mut tch) =
                (Runs::default(), Runs::default(), Runs::default());
            let order = [Side::Strata, Side::PyTorch, Side::Tch];
            for repetition in 0..case.repetitions {
                for k in 0..order.len() {
                    match order[(repetition + k) % order.len()] {
                        Side::Strata => strata.0.push(runtime.block_on(async {
                            let trained = through_strata(&daemon, &client, case).await;
                            crate::daemon::settle_after_run().await;
                            trained
                        })?),
                        Side::PyTorch => {
                            if let Ok(worker) = pytorch.as_mut() {
                                torch.0.push(worker.train(case, threads)?);
                            }
                        }
                        Side::Tch => tch.0.push(tch_loop::train(case, threads)?),
                    }
                }
                eprintln!(
                    "  {} at {threads} thread(s), repetition {}/{}: Strata {:.3} s, PyTorch {}, tch {:.3} s",
                    case.describe(),
                    repetition + 1,
                    case.repetitions,
                    strata.0.last().map_or(f64::NAN, |t| t.seconds),
                    torch.0.last().map_or("—".into(), |t| format!("{:.3} s", t.seconds)),
                    tch.0.last().map_or(f64::NAN, |t| t.seconds),
                );
            }
            let figure = format!(
                "{}, {} thread{}",
                case.describe(),
                threads,
                if threads == 1 { "" } else { "s" }
            );
            let values = |alternative: &Runs| {
                json!({
                    "threads": threads,
                    "repetitions": case.repetitions,
                    "strata": strata.json(),
                    "alternative": alternative.json(),
                    "cpu_ratio": strata.cpu_seconds() / alternative.cpu_seconds(),
                })
            };
            match &pytorch {
                Ok(worker) => rows.push(Row::compared(
                    format!("{figure} — vs PyTorch {}", worker.version),
                    strata.text(),
                    format!("PyTorch {}", torch.text()),
                    strata.seconds() / torch.seconds(),
                    Goal::RatioAtMost(GOAL_VS_PYTORCH),
                    values(&torch),
                )),
                Err(why) => rows.push(Row::not_measured(
                    format!("{figure} — vs PyTorch"),
                    &format!("≤ {GOAL_VS_PYTORCH:.2}"),
                    why.to_string(),
                )),
            }
            rows.push(Row::compared(
                format!("{figure} — vs tch loop"),
                strata.text(),
                format!("tch {}", tch.text()),
                strata.seconds() / tch.seconds(),
                Goal::RatioAtMost(GOAL_VS_TCH),
                values(&tch),
            ));
        }
        daemon.stop()?;
    }
    Ok(rows)
}
