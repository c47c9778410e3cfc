//! The training loop of one run, on its own thread.
//!
//! The hot loop stays on the tensor side: the epoch's loss is summed into a tensor, batch losses
//! and gradient norms are read back (a device sync) only on the sampled steps that feed live
//! progress, and nothing is stored or formatted per batch.

use std::{
    path::PathBuf,
    sync::{
        atomic::{AtomicU8, Ordering},
        Mutex,
    },
    time::Instant,
};

use tch::{Device, Kind, Reduction, TchError, Tensor};

use super::{
    checkpoint::{self, Checkpoint, RunRecords},
    data::{build_dataset, Dataset, SeededRng},
    model::Model,
    optim::{squared_norm, Optimizer},
    targets::TargetScaling,
};
use crate::{
    domain::{
        groups_in_order, largest_member, BatchProgress, DataFacts, EpochMetrics, GroupStats, RunId,
        RunRecord, TaskFacts,
    },
    error::StrataError,
    spec::{rates::ResolvedParam, RunSpec, Task},
    store::{epoch_log, record},
};

/// Where a run reports to while it trains. The run manager implements it: it stores what must
/// last (durably, before anyone is told) and passes it on to the run's watchers. The loop itself
/// knows neither the store nor the async runtime.
pub trait RunSink: Sync {
    /// The data is loaded: what it is. Called once per start, before the first epoch.
    fn data_loaded(&self, facts: &DataFacts) -> crate::error::Result<()>;
    /// An epoch finished and its checkpoint is on the disk: store it durably, then stream it.
    fn epoch_finished(&self, epoch: &EpochMetrics) -> crate::error::Result<()>;
    /// A sampled batch loss, for watchers only.
    fn progress(&self, progress: BatchProgress);
}

/// Validation runs in chunks of this many rows, so a large validation set never needs one huge
/// activation tensor.
const VALIDATION_CHUNK_ROWS: i64 = 8192;

/// libtorch's RNG is global: seeding and initialising a model must not interleave with another
/// run's, or seeded runs would not be reproducible.
static MODEL_INIT_LOCK: Mutex<()> = Mutex::new(());

/// What asked a run to stop early.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum StopRequest {
    None = 0,
    Cancel = 1,
    /// The daemon is shutting down.
    Interrupt = 2,
}

impl StopRequest {
    pub fn load(flag: &AtomicU8) -> StopRequest {
        match flag.load(Ordering::Acquire) {
            1 => StopRequest::Cancel,
            2 => StopRequest::Interrupt,
            _ => StopRequest::None,
        }
    }
}

/// How a run ended.
#[derive(Debug)]
pub enum Outcome {
    Completed,
    Stopped(StopRequest),
    Diverged(String),
    Failed(String),
}

enum Halt {
    Stopped(StopRequest),
    Diverged(String),
    Failed(String),
}

impl From<TchError> for Halt {
    fn from(err: TchError) -> Self {
        Halt::Failed(format!("libtorch: {err}"))
    }
}

impl From<StrataError> for Halt {
    fn from(err: StrataError) -> Self {
        Halt::Failed(err.to_string())
    }
}

/// Everything the loop needs from the daemon.
pub struct TrainJob<'a> {
    pub run_id: RunId,
    pub spec: &'a RunSpec,
    pub resolved: &'a [ResolvedParam],
    pub device: Device,
    /// The run's record as stored when it started (checkpoints carry it).
    pub record: RunRecord,
    /// The stored epochs the run goes on from (none for a new run).
    pub kept_epochs: Vec<EpochMetrics>,
    pub sink: &'a dyn RunSink,
    pub stop: &'a AtomicU8,
    pub checkpoint_dir: PathBuf,
    /// Checkpoints kept per run (the newest).
    pub keep_checkpoints: usize,
    /// Epochs already trained: 0 for a fresh run, else the epoch whose checkpoint to resume from.
    pub resume_after_epoch: u32,
    /// A fresh fine-tuning run starts from this checkpoint's matching parameters.
    pub init_from: Option<PathBuf>,
}

/// A checkpoint a run starts from, and the parameters it provides (matched by name and shape).
#[derive(Clone, Debug)]
pub struct InitFrom {
    pub path: PathBuf,
    pub loaded: std::collections::HashSet<String>,
}

/// Trains the run to its end. Never panics on libtorch errors: they fail the run.
pub fn train(job: &TrainJob<'_>) -> Outcome {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run_epochs(job))) {
        Ok(Ok(())) => Outcome::Completed,
        Ok(Err(Halt::Stopped(request))) => Outcome::Stopped(request),
        Ok(Err(Halt::Diverged(reason))) => Outcome::Diverged(reason),
        Ok(Err(Halt::Failed(reason))) => Outcome::Failed(reason),
        Err(panic) => {
            let what = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "unknown panic".into());
            Outcome::Failed(format!("training failed: {what}"))
        }
    }
}

/// A layer group's parameters, by index into the model's parameter list.
struct Group {
    name: String,
    members: Vec<usize>,
}

fn groups_of(resolved: &[ResolvedParam]) -> Vec<Group> {
    groups_in_order(resolved, |p| &p.info.group)
        .into_iter()
        .map(|(name, members)| Group { name, members })
        .collect()
}

fn loss_of(task: Task, output: &Tensor, target: &Tensor) -> Result<Tensor, TchError> {
    match task {
        Task::Classification { .. } => output.f_log_softmax(-1, Kind::Float)?.f_nll_loss(
            target,
            None::<Tensor>,
            Reduction::Mean,
            -100,
        ),
        Task::Regression => output.f_mse_loss(target, Reduction::Mean),
    }
}

/// Validation loss and accuracy (classification) or R² (regression), without gradients.
fn validate(model: &Model, data: &Dataset) -> Result<(f64, f64), TchError> {
    tch::no_grad(|| {
        let rows = data.val_x.size()[0];
        let mut loss_sum = 0.0;
        let mut correct = 0.0;
        let mut squared_error = 0.0;
        let mut start = 0;
        while start < rows {
            let len = VALIDATION_CHUNK_ROWS.min(rows - start);
            let x = data.val_x.f_narrow(0, start, len)?;
            let y = data.val_y.f_narrow(0, start, len)?;
            let output = model.forward(&x, false)?;
            loss_sum += loss_of(data.task, &output, &y)?.f_double_value(&[])? * len as f64;
            match data.task {
                Task::Classification { .. } => {
                    correct += output
                        .f_argmax(-1, false)?
                        .f_eq_tensor(&y)?
                        .f_sum(Kind::Double)?
                        .f_double_value(&[])?;
                }
                Task::Regression => {
                    squared_error += output
                        .f_sub(&y)?
                        .f_square()?
                        .f_sum(Kind::Double)?
                        .f_double_value(&[])?;
                }
            }
            start += len;
        }
        let metric = match data.task {
            Task::Classification { .. } => correct / rows as f64,
            Task::Regression => {
                let variance = data
                    .val_y
                    .f_sub(&data.val_y.f_mean(Kind::Float)?)?
                    .f_square()?
                    .f_sum(Kind::Double)?
                    .f_double_value(&[])?;
                if variance > 0.0 {
                    1.0 - squared_error / variance
                } else {
                    0.0
                }
            }
        };
        Ok((loss_sum / rows as f64, metric))
    })
}

fn check_stop(job: &TrainJob<'_>) -> Result<(), Halt> {
    match StopRequest::load(job.stop) {
        StopRequest::None => Ok(()),
        request => Err(Halt::Stopped(request)),
    }
}

/// Steps per epoch whose gradient norms are measured (each measurement syncs with the device).
const GRAD_NORM_SAMPLES_PER_EPOCH: u64 = 20;

/// How an epoch is cut into optimizer steps, and which steps are sampled: for live progress
/// (as many as the run asked for) and for gradient norms (a fixed number).
struct StepPlan {
    train_rows: i64,
    batch_size: i64,
    steps_per_epoch: u64,
    total_steps: u64,
    progress_events: u64,
}

impl StepPlan {
    fn new(spec: &RunSpec, train_rows: i64) -> Self {
        let batch_size = i64::from(spec.batch_size).min(train_rows).max(1);
        let steps_per_epoch = ((train_rows + batch_size - 1) / batch_size) as u64;
        StepPlan {
            train_rows,
            batch_size,
            steps_per_epoch,
            total_steps: steps_per_epoch * u64::from(spec.epochs),
            progress_events: u64::from(spec.progress_events_per_epoch),
        }
    }

    /// Whether step `batch` (from 0) is one of `count` steps spread evenly over the epoch, the
    /// last step always among them: exactly `count` of them (every step when there are fewer).
    fn is_sampled(&self, count: u64, batch: u64) -> bool {
        let steps = self.steps_per_epoch;
        count > 0 && ((batch + 1) * count / steps > batch * count / steps || count >= steps)
    }

    fn is_progress_step(&self, batch: u64) -> bool {
        self.is_sampled(self.progress_events, batch)
    }

    fn is_measured_step(&self, batch: u64) -> bool {
        self.is_sampled(GRAD_NORM_SAMPLES_PER_EPOCH, batch)
    }
}

/// The model, its optimizer and its data: what a run trains.
struct Trainer<'a> {
    job: &'a TrainJob<'a>,
    data: Dataset,
    model: Model,
    optimizer: Optimizer,
    groups: Vec<Group>,
    plan: StepPlan,
    /// Optimizer steps taken so far, over all epochs (drives the schedule).
    step: u64,
    /// The run's record and its epochs so far, written into every checkpoint.
    records: RunRecords,
    /// A regression's targets are trained standardized; this brings losses back to their units.
    targets: TargetScaling,
}

impl<'a> Trainer<'a> {
    fn new(job: &'a TrainJob<'a>) -> Result<Self, Halt> {
        let spec = job.spec;
        // A resumed run starts from its own last checkpoint, a fine-tuning run from its source's;
        // either way the checkpoint also gives the feature scaling the weights were trained on.
        let source = match (job.resume_after_epoch, &job.init_from) {
            (0, Some(path)) => Some(Checkpoint::read(path).map_err(Halt::Failed)?),
            (0, None) => None,
            (done, _) => Some(
                Checkpoint::read(&checkpoint::path_for(&job.checkpoint_dir, done))
                    .map_err(Halt::Failed)?,
            ),
        };
        let reuse = source.as_ref().and_then(Checkpoint::standardization);
        let mut data = build_dataset(&spec.dataset, spec.seed, job.device, reuse)?;
        // Facts in the targets' own units, before they are standardized.
        let plan = StepPlan::new(spec, data.train_len());
        let facts = data_facts(&data, &plan, &job.record.facts)?;
        let targets = match data.task {
            Task::Regression => {
                let scaling = match source.as_ref().and_then(Checkpoint::target_scaling) {
                    Some(kept) => kept,
                    None => TargetScaling::of(&data.train_y)?,
                };
                data.train_y = scaling.standardize(&data.train_y)?;
                data.val_y = scaling.standardize(&data.val_y)?;
                scaling
            }
            Task::Classification { .. } => TargetScaling::IDENTITY,
        };
        let model = {
            let _guard = MODEL_INIT_LOCK
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            tch::manual_seed(spec.seed as i64);
            Model::for_run(
                &spec.model,
                &data.sample_shape(),
                data.task.outputs(),
                job.resolved,
                job.device,
            )?
        };
        let named_rates = model
            .parameters()
            .iter()
            .zip(job.resolved)
            .map(|((name, tensor), resolved)| (name.clone(), tensor.shallow_clone(), resolved.lr))
            .collect();
        let mut optimizer = Optimizer::new(spec.optimizer, named_rates);
        match (&source, job.resume_after_epoch) {
            (Some(source), 0) => source.load_matching(model.parameters()),
            (Some(source), _) => source.restore(model.parameters(), &mut optimizer, job.device),
            (None, _) => Ok(()),
        }
        .map_err(Halt::Failed)?;
        let step = u64::from(job.resume_after_epoch) * plan.steps_per_epoch;
        job.sink.data_loaded(&facts)?;
        let records = run_records(job, facts)?;
        Ok(Trainer {
            targets,
            records,
            job,
            groups: groups_of(job.resolved),
            data,
            model,
            optimizer,
            plan,
            step,
        })
    }

    fn multiplier(&self) -> f64 {
        self.job.spec.schedule.multiplier(
            self.step,
            self.plan.total_steps,
            self.plan.steps_per_epoch,
        )
    }

    /// Trains one epoch and measures it. The record is not stored yet.
    fn epoch(&mut self, epoch: u32) -> Result<EpochMetrics, Halt> {
        let job = self.job;
        let spec = job.spec;
        let params = self.model.parameters();
        let started = Instant::now();
        let frozen: Vec<bool> = job
            .resolved
            .iter()
            .map(|p| p.frozen_until.is_frozen_in(epoch))
            .collect();
        for ((_, tensor), &is_frozen) in params.iter().zip(&frozen) {
            // No gradient for a frozen parameter: nothing to update, decay or accumulate.
            let _ = tensor.f_set_requires_grad(!is_frozen)?;
        }
        let at_start: Vec<Tensor> = params
            .iter()
            .map(|(_, t)| t.f_detach().map(|d| d.copy()))
            .collect::<Result<_, _>>()?;

        let plan = &self.plan;
        let shuffle = SeededRng::new(spec.seed ^ u64::from(epoch).wrapping_mul(0x9E37_79B9))
            .permutation(plan.train_rows as usize);
        let order = Tensor::f_from_slice(&shuffle)?.f_to_device(job.device)?;
        // Each batch's loss lands here on the device: no sync per step, and the first
        // non-finite batch can be named afterwards.
        let batch_losses =
            Tensor::f_zeros([plan.steps_per_epoch as i64], (Kind::Float, job.device))?;
        let mut grad_norm_sums = vec![0.0; self.groups.len()];
        let mut grad_norm_samples = 0u32;

        for batch in 0..plan.steps_per_epoch {
            check_stop(job)?;
            let start = batch as i64 * plan.batch_size;
            let len = plan.batch_size.min(plan.train_rows - start);
            let idx = order.f_narrow(0, start, len)?;
            let x = self.data.train_x.f_index_select(0, &idx)?;
            let y = self.data.train_y.f_index_select(0, &idx)?;
            self.optimizer.zero_grad();
            let loss = loss_of(self.data.task, &self.model.forward(&x, true)?, &y)?;
            loss.f_backward()?;
            if plan.is_measured_step(batch) {
                for (g, group) in self.groups.iter().enumerate() {
                    let grads: Vec<Tensor> = group
                        .members
                        .iter()
                        .map(|&i| params[i].1.grad())
                        .filter(|g| g.defined())
                        .collect();
                    grad_norm_sums[g] += squared_norm(grads.iter())?.sqrt();
                }
                grad_norm_samples += 1;
            }
            let multiplier = self.multiplier();
            self.optimizer.step(multiplier, &frozen)?;
            let detached = loss.f_detach()?;
            batch_losses
                .f_narrow(0, batch as i64, 1)?
                .f_copy_(&detached.f_reshape([1])?)?;
            if plan.is_progress_step(batch) {
                let value = detached.f_double_value(&[])? * self.targets.loss_factor();
                if !value.is_finite() {
                    return Err(Halt::Diverged(format!(
                        "the training loss became {value} at epoch {epoch}, batch {}",
                        batch + 1
                    )));
                }
                job.sink.progress(BatchProgress {
                    epoch,
                    batch: batch as u32 + 1,
                    batches: plan.steps_per_epoch as u32,
                    loss: value,
                });
            }
            self.step += 1;
        }

        let train_loss = self.mean_train_loss(&batch_losses)? * self.targets.loss_factor();
        if !train_loss.is_finite() {
            let bad = batch_losses.f_isfinite()?.f_logical_not()?.f_nonzero()?;
            let batch = if bad.size()[0] > 0 {
                bad.f_int64_value(&[0, 0])? + 1
            } else {
                0
            };
            return Err(Halt::Diverged(format!(
                "the training loss became non-finite at epoch {epoch}, batch {batch}"
            )));
        }
        let (val_loss, val_metric) = validate(&self.model, &self.data)?;
        let val_loss = val_loss * self.targets.loss_factor();
        let groups = self.group_stats(&frozen, &at_start, &grad_norm_sums, grad_norm_samples)?;
        let elapsed = started.elapsed().as_secs_f64();
        Ok(EpochMetrics {
            epoch,
            train_loss,
            val_loss,
            val_metric,
            duration_ms: elapsed * 1e3,
            samples_per_sec: if elapsed > 0.0 {
                plan.train_rows as f64 / elapsed
            } else {
                0.0
            },
            groups,
        })
    }

    /// Mean loss over the epoch's samples (the last batch may be smaller).
    fn mean_train_loss(&self, batch_losses: &Tensor) -> Result<f64, TchError> {
        let plan = &self.plan;
        let full = plan.batch_size as f64;
        let last_len =
            (plan.train_rows - (plan.steps_per_epoch as i64 - 1) * plan.batch_size) as f64;
        let total = batch_losses.f_sum(Kind::Double)?.f_double_value(&[])?;
        let last = batch_losses.f_double_value(&[plan.steps_per_epoch as i64 - 1])?;
        Ok(((total - last) * full + last * last_len) / plan.train_rows as f64)
    }

    fn group_stats(
        &self,
        frozen: &[bool],
        at_start: &[Tensor],
        grad_norm_sums: &[f64],
        grad_norm_samples: u32,
    ) -> Result<Vec<GroupStats>, TchError> {
        let params = self.model.parameters();
        let resolved = self.job.resolved;
        // The rate of the epoch's last step.
        let multiplier = self.job.spec.schedule.multiplier(
            self.step.saturating_sub(1),
            self.plan.total_steps,
            self.plan.steps_per_epoch,
        );
        let mut stats = Vec::with_capacity(self.groups.len());
        for (g, group) in self.groups.iter().enumerate() {
            let weights: Vec<&Tensor> = group.members.iter().map(|&i| &params[i].1).collect();
            let starts: Vec<&Tensor> = group.members.iter().map(|&i| &at_start[i]).collect();
            let deltas: Vec<Tensor> = group
                .members
                .iter()
                .map(|&i| params[i].1.f_detach()?.f_sub(&at_start[i]))
                .collect::<Result<_, _>>()?;
            let (weight_sq, start_sq, delta_sq) = (
                squared_norm(weights.into_iter())?,
                squared_norm(starts.into_iter())?,
                squared_norm(deltas.iter())?,
            );
            let all_frozen = group.members.iter().all(|&i| frozen[i]);
            // A group's rate is that of its largest parameter (its weight), as the table shows it.
            let main = largest_member(resolved, &group.members, |p| p.info.shape.iter().product());
            stats.push(GroupStats {
                name: group.name.clone(),
                lr: if all_frozen {
                    0.0
                } else {
                    resolved[main].lr * multiplier
                },
                grad_norm: if grad_norm_samples > 0 {
                    grad_norm_sums[g] / f64::from(grad_norm_samples)
                } else {
                    0.0
                },
                weight_norm: weight_sq.sqrt(),
                update_ratio: if start_sq > 0.0 {
                    (delta_sq / start_sq).sqrt()
                } else {
                    0.0
                },
                frozen: all_frozen,
            });
        }
        Ok(stats)
    }
}

/// What the run's data is, measured on the loaded data; how the label and the task were chosen
/// comes from `known` (recorded when the run was prepared).
fn data_facts(data: &Dataset, plan: &StepPlan, known: &DataFacts) -> Result<DataFacts, TchError> {
    let task = match data.task {
        Task::Classification { classes } => TaskFacts::Classification {
            classes: u32::try_from(classes).unwrap_or(u32::MAX),
        },
        Task::Regression => TaskFacts::Regression {
            target_variance: Some(target_variance(&data.val_y)?),
        },
    };
    Ok(DataFacts {
        task,
        train_rows: plan.train_rows as u64,
        val_rows: data.val_y.size()[0] as u64,
        steps_per_epoch: plan.steps_per_epoch,
        label: known.label.clone(),
        task_reason: known.task_reason.clone(),
    })
}

/// The population variance of the targets: the loss of always predicting their mean.
fn target_variance(targets: &Tensor) -> Result<f64, TchError> {
    let rows = targets.size()[0].max(1) as f64;
    let mean = targets.f_mean(Kind::Double)?;
    Ok(targets
        .f_to_kind(Kind::Double)?
        .f_sub(&mean)?
        .f_square()?
        .f_sum(Kind::Double)?
        .f_double_value(&[])?
        / rows)
}

/// The run's record (with the facts of its data) and the epochs it resumes after, encoded once;
/// each epoch appends its own.
fn run_records(job: &TrainJob<'_>, facts: DataFacts) -> Result<RunRecords, Halt> {
    let mut run = job.record.clone();
    run.facts = facts;
    let records = RunRecords {
        run: record::encode_run(&run),
        epochs: Vec::new(),
    };
    // The epoch log starts from exactly the epochs the run goes on from (none for a new run; a
    // resume from an older checkpoint drops the later ones), so it never mixes timelines.
    crate::durable::create_dir_all(&job.checkpoint_dir)
        .and_then(|()| epoch_log::rewrite(&job.checkpoint_dir, &job.kept_epochs))
        .map_err(|e| Halt::Failed(format!("cannot write the run's epoch log: {e}")))?;
    Ok(records)
}

fn run_epochs(job: &TrainJob<'_>) -> Result<(), Halt> {
    let mut trainer = Trainer::new(job)?;
    for epoch in job.resume_after_epoch + 1..=job.spec.epochs {
        check_stop(job)?;
        let metrics = trainer.epoch(epoch)?;
        trainer.records.epochs.clear();
        record::encode_epoch_delimited(&metrics, &mut trainer.records.epochs);
        // The checkpoint first, then the record: every stored epoch has a checkpoint to resume
        // from, and the newest checkpoint is at most one epoch ahead of the stored records (the
        // start-up check relies on it). Durable before streamed.
        checkpoint::write(
            &job.checkpoint_dir,
            &job.run_id.to_string(),
            epoch,
            trainer.model.parameters(),
            &trainer.optimizer,
            checkpoint::DataScaling {
                features: &trainer.data.standardization,
                targets: trainer.targets,
            },
            &trainer.records,
        )
        .map_err(Halt::Failed)?;
        epoch_log::append(&job.checkpoint_dir, &metrics)
            .map_err(|e| Halt::Failed(format!("cannot append to the run's epoch log: {e}")))?;
        job.sink.epoch_finished(&metrics)?;
        checkpoint::prune(&job.checkpoint_dir, job.keep_checkpoints);
        let val_loss = metrics.val_loss;
        if !val_loss.is_finite() {
            return Err(Halt::Diverged(format!(
                "the validation loss became {val_loss} at epoch {epoch}"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(steps_per_epoch: u64, progress_events: u64) -> StepPlan {
        StepPlan {
            train_rows: steps_per_epoch as i64,
            batch_size: 1,
            steps_per_epoch,
            total_steps: steps_per_epoch,
            progress_events,
        }
    }

    /// `--progress-events 5` over 28 steps gave 6 events, and 20 over 75 gave 23.
    #[test]
    fn progress_events_are_exactly_as_many_as_asked() {
        for steps in [1u64, 3, 7, 19, 20, 21, 28, 75, 150, 1000] {
            for asked in [0u64, 1, 5, 20, 1000] {
                let plan = plan(steps, asked);
                let sampled: Vec<u64> = (0..steps).filter(|&b| plan.is_progress_step(b)).collect();
                assert_eq!(
                    sampled.len() as u64,
                    asked.min(steps),
                    "{asked} of {steps} steps"
                );
                if asked > 0 {
                    assert_eq!(
                        sampled.last(),
                        Some(&(steps - 1)),
                        "the last step is reported"
                    );
                }
                let measured = (0..steps).filter(|&b| plan.is_measured_step(b)).count() as u64;
                assert_eq!(measured, GRAD_NORM_SAMPLES_PER_EPOCH.min(steps));
            }
        }
    }
}
