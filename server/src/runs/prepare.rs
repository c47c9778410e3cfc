//! A run's config checked against its real data and model: the spec, the resolved rate table,
//! the device, and for a fine-tune the checkpoint it starts from. A built-in model's parameters
//! are computed; a TorchScript module is loaded and run once in a worker, so user code never runs
//! in the daemon.

use std::{
    collections::HashSet,
    path::PathBuf,
    sync::{atomic::AtomicBool, Arc},
    time::Duration,
};

use strata_proto::worker::v1 as wire;

use super::{blocking, Runs};
use crate::{
    domain::{DataFacts, Leakage, ParamInit, ParameterRate, RunConfig, RunId, TaskFacts},
    error::{Result, StrataError},
    spec::{
        paths::{abandon_reads_when, RaiseOnDrop},
        rates::{ParamInfo, ResolvedParam},
        InitSource, ModelSpec, RunSpec, Task,
    },
    train::{self, checkpoint::file::CheckpointFile, data::csv::LabelChoice},
    workers::{Device, Event},
};

/// How long a worker may take to load a TorchScript module and run it once.
const DESCRIBE_TIMEOUT: Duration = Duration::from_secs(120);

/// A checkpoint a run starts from, and the parameters it provides (matched by name and shape).
#[derive(Clone, Debug)]
pub(super) struct InitFrom {
    pub path: PathBuf,
    pub loaded: HashSet<String>,
}

/// A validated run, ready to train.
#[derive(Clone)]
pub(super) struct Prepared {
    pub spec: RunSpec,
    pub resolved: Vec<ResolvedParam>,
    pub task: Task,
    /// A CSV's label column and why the task is what it is.
    pub label: Option<LabelChoice>,
    pub task_reason: String,
    /// What the leakage check found on the run's split (file datasets only).
    pub leakage: Option<Leakage>,
    /// Where a fine-tuning run's initial parameters come from.
    pub init: Option<InitFrom>,
    pub device: Device,
    /// Why the daemon's own workers cannot train it (a device it lacks), when only a remote
    /// worker can.
    pub remote_only: Option<String>,
}

impl Prepared {
    /// The resolved rate table, as recorded and reported.
    pub fn rate_table(&self) -> Vec<ParameterRate> {
        let loaded = |name: &str| {
            self.init
                .as_ref()
                .is_some_and(|init| init.loaded.contains(name))
        };
        self.resolved
            .iter()
            .map(|p| ParameterRate {
                name: p.info.name.clone(),
                group: p.info.group.clone(),
                shape: p.info.shape.clone(),
                lr: p.lr,
                frozen: p.frozen_until,
                init: if loaded(&p.info.name) {
                    ParamInit::Loaded
                } else {
                    ParamInit::Fresh
                },
            })
            .collect()
    }

    /// What the user should know before trusting the run: a continuous last column taken as a
    /// regression target because no label was named (what a forgotten `--label` looks like), and
    /// every finding of the leakage check.
    pub fn warnings(&self) -> Vec<String> {
        let mut warnings = Vec::new();
        if let Some(choice) = &self.label {
            if !choice.named && choice.detected && self.task == Task::Regression {
                warnings.push(format!(
                    "no label was named, so the label is the last column ({} of {}), and its values are continuous ({}), so this run is a regression on it; if that column is not what the model should predict, name the label column with --label (and add --task classification if it holds classes)",
                    choice.column,
                    choice.columns,
                    choice.reason.trim_start_matches("detected: ")
                ));
            }
        }
        if let Some(leakage) = &self.leakage {
            warnings.extend(
                leakage
                    .findings
                    .iter()
                    .map(|finding| format!("leakage check: {finding}")),
            );
        }
        warnings
    }

    /// What is known of the data before it is loaded for training (the rest is measured then).
    pub fn facts(&self) -> DataFacts {
        DataFacts {
            task: match self.task {
                Task::Classification { classes } => TaskFacts::Classification {
                    classes: u32::try_from(classes).unwrap_or(u32::MAX),
                },
                Task::Regression => TaskFacts::Regression {
                    target_variance: None,
                },
            },
            train_rows: 0,
            val_rows: 0,
            steps_per_epoch: 0,
            label: self
                .label
                .as_ref()
                .map_or(String::new(), LabelChoice::described),
            task_reason: self.task_reason.clone(),
            leakage: self.leakage.clone(),
        }
    }
}

impl Runs {
    /// Validates a config and resolves its rate table against the model it builds. With
    /// `init_from` in the config (and `locate_init`), finds the checkpoint to start from and which
    /// parameters it provides.
    pub(super) async fn prepare(&self, config: RunConfig, locate_init: bool) -> Result<Prepared> {
        let spec = RunSpec::try_from(config)?;
        // Confining resolves paths on the disk: off the async runtime.
        let roots = self.data_roots.clone();
        let spec = blocking(move || {
            let mut spec = spec;
            roots.confine(&mut spec)?;
            Ok(spec)
        })
        .await?;
        if spec.on_worker.is_some() && self.workers.hub().is_none() {
            return Err(StrataError::invalid(
                "on_worker",
                "this daemon takes no remote workers (stratad --worker-listen): its runs train on its own workers; leave --on-worker out",
            ));
        }
        let (device, remote_only) = match self.workers.devices().resolve(spec.device) {
            Ok(device) => (device, None),
            // A remote worker may have it: the run waits for one.
            Err(err) if self.workers.hub().is_some() => (Device::Cpu, Some(err.to_string())),
            Err(err) => return Err(err),
        };
        let source = match spec.init_from.clone() {
            Some(source) if locate_init => {
                let this = self.store.clone();
                let runs_dir = crate::integrity::runs_dir(&self.data_dir);
                Some(blocking(move || locate_init_source(&this, &runs_dir, &source)).await?)
            }
            _ => None,
        };
        // Reading a dataset holds it in memory: a few at a time, whatever the number of requests.
        let _loading = self
            .dataset_loads
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| StrataError::ShuttingDown)?;
        // If the client goes away, this future is dropped and the reading below stops.
        let abandoned = Arc::new(AtomicBool::new(false));
        let _raise_when_dropped = RaiseOnDrop(abandoned.clone());
        let (spec, shape) = blocking(move || {
            let _reads = abandon_reads_when(abandoned);
            let shape = train::probe_run_data(&spec)?;
            Ok((spec, shape))
        })
        .await?;
        let outputs = shape.task.outputs();
        let params = match spec.model.parameters(&shape.sample, outputs)? {
            Some(params) => params,
            None => {
                self.describe_module(&spec.model, &shape.sample, outputs)
                    .await?
            }
        };
        blocking(move || {
            let train::PreparedRun {
                mut spec,
                resolved,
                task,
                label,
                task_reason,
                leakage,
            } = train::resolve_run(spec, shape, &params)?;
            let init = match source {
                Some((run, epoch, path)) => {
                    let loaded = CheckpointFile::read(&path)
                        .map(|file| matching_parameters(&file, &resolved))
                        .map_err(|why| {
                            StrataError::invalid(
                                "init_from",
                                format!("the checkpoint {} is unusable: {why}", path.display()),
                            )
                        })?;
                    if loaded.is_empty() {
                        return Err(StrataError::invalid(
                            "init_from",
                            format!("no parameter of run {run} (epoch {epoch}) matches this model by name and shape"),
                        ));
                    }
                    spec.config.init_from = format!("{run}@{epoch}");
                    Some(InitFrom { path, loaded })
                }
                None => None,
            };
            Ok(Prepared {
                spec,
                resolved,
                task,
                label,
                task_reason,
                leakage,
                device,
                remote_only,
                init,
            })
        })
        .await
    }

    /// A TorchScript module's parameters, as a worker that loaded it and ran it once on zeros
    /// of the data's shape found them (or why it cannot train on such samples).
    async fn describe_module(
        &self,
        model: &ModelSpec,
        sample: &[i64],
        outputs: i64,
    ) -> Result<Vec<ParamInfo>> {
        let ModelSpec::TorchScript { path } = model else {
            return Err(StrataError::Internal(
                "only a TorchScript module is described by a worker".into(),
            ));
        };
        let job = wire::Job {
            kind: Some(wire::job::Kind::Describe(wire::DescribeJob {
                torchscript: path.display().to_string(),
                sample_shape: sample.to_vec(),
                outputs,
            })),
            ..Default::default()
        };
        let mut session = self
            .workers
            .launch(job, Device::Cpu, None, "describe a TorchScript module")
            .await
            .map_err(|why| {
                StrataError::Internal(format!(
                    "no worker could load the TorchScript module: {why}"
                ))
            })?;
        let described = tokio::time::timeout(DESCRIBE_TIMEOUT, async {
            let mut params = Vec::new();
            loop {
                match session.next().await {
                    Event::Message(wire::worker_message::Message::Described(described)) => {
                        params = described
                            .parameters
                            .into_iter()
                            .map(|p| ParamInfo::new(&p.name, p.shape))
                            .collect();
                    }
                    Event::Message(wire::worker_message::Message::Finished(finished)) => {
                        return match wire::OutcomeKind::try_from(finished.outcome) {
                            Ok(wire::OutcomeKind::Completed) => Ok(params),
                            _ => Err(StrataError::invalid(
                                if finished.field.is_empty() {
                                    "model"
                                } else {
                                    &finished.field
                                },
                                super::training::reason_for_clients(&finished.reason),
                            )),
                        };
                    }
                    Event::Message(_) => {}
                    Event::Ended(exit) => {
                        return Err(StrataError::invalid(
                            "model",
                            format!(
                                "{} (loading {})",
                                exit.describe("while it loaded and ran the TorchScript module"),
                                path.display()
                            ),
                        ))
                    }
                }
            }
        })
        .await;
        match described {
            Ok(described) => {
                let _ = session.ended().await;
                described
            }
            Err(_) => {
                session.abandon();
                Err(StrataError::invalid(
                    "model",
                    format!(
                        "the TorchScript module {} did not load and run on one batch within {} s",
                        path.display(),
                        DESCRIBE_TIMEOUT.as_secs()
                    ),
                ))
            }
        }
    }
}

/// The names of `resolved`'s parameters the checkpoint has with the same shape.
fn matching_parameters(file: &CheckpointFile, resolved: &[ResolvedParam]) -> HashSet<String> {
    let shapes: std::collections::HashMap<String, Vec<usize>> = file
        .tensors()
        .into_iter()
        .map(|(name, _, shape, _)| (name, shape))
        .collect();
    resolved
        .iter()
        .filter(|p| {
            let name = format!("{}{}", train::checkpoint::file::MODEL_PREFIX, p.info.name);
            shapes.get(&name).is_some_and(|shape| {
                shape.len() == p.info.shape.len()
                    && shape
                        .iter()
                        .zip(&p.info.shape)
                        .all(|(&a, &b)| a as i64 == b)
            })
        })
        .map(|p| p.info.name.clone())
        .collect()
}

/// The run, epoch and checkpoint file named by `--init-from` (blocking).
fn locate_init_source(
    store: &crate::store::Store,
    runs_dir: &std::path::Path,
    source: &InitSource,
) -> Result<(RunId, u32, PathBuf)> {
    let run = store.resolve(&source.run).map_err(|err| match err {
        StrataError::RunNotFound(_) | StrataError::AmbiguousRun { .. } => {
            StrataError::invalid("init_from", err.to_string())
        }
        other => other,
    })?;
    let dir = runs_dir.join(run.to_string());
    let available = train::checkpoint::epochs_in(&dir);
    let epoch = match (source.epoch, available.last()) {
        (Some(epoch), _) if available.contains(&epoch) => epoch,
        (None, Some(&last)) => last,
        (None, None) => {
            let state = match store.get_run(run)?.map(|r| r.status) {
                Some(status) if status.is_live() => format!(
                    "it is {} and has not finished an epoch yet; wait for it (`strata watch {run}` returns when it ends)",
                    status.label()
                ),
                Some(status) => format!(
                    "it ended {} before finishing an epoch, so there is nothing to start from",
                    status.label()
                ),
                None => "it has no record".to_string(),
            };
            return Err(StrataError::invalid(
                "init_from",
                format!("run {run} has no checkpoint: {state}"),
            ));
        }
        (wanted, _) => {
            let have = if available.is_empty() {
                "none".to_string()
            } else {
                available
                    .iter()
                    .map(|e| e.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let what = wanted.map_or("a checkpoint".to_string(), |e| {
                format!("a checkpoint of epoch {e}")
            });
            return Err(StrataError::invalid(
                "init_from",
                format!("run {run} has no {what}; it keeps epochs: {have} (stratad --keep-checkpoints sets how many)"),
            ));
        }
    };
    Ok((run, epoch, train::checkpoint::path_for(&dir, epoch)))
}
