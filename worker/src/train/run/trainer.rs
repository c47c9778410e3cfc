//! The model, its optimizer and its data, and how one epoch trains them and is measured.

use std::{sync::Mutex, time::Instant};

use tch::{Kind, TchError, Tensor};

use strata_server::{
    domain::{groups_in_order, largest_member, BatchProgress, EpochMetrics, GroupStats},
    spec::{rates::ResolvedParam, RunSpec, Task},
    train::data::SeededRng,
};

use super::{
    check_stop,
    measure::{loss_of, measure_data, validate},
    step_plan::StepPlan,
    Halt, TrainJob,
};
use crate::train::{
    checkpoint::{Checkpoint, RunRecords},
    dataset::{build_dataset, Dataset},
    model::Model,
    optim::{squared_norm, Optimizer},
    targets::TargetScaling,
};

/// libtorch's RNG is global: seeding and initialising a model must not interleave with another
/// run's, or seeded runs would not be reproducible.
static MODEL_INIT_LOCK: Mutex<()> = Mutex::new(());

/// The run's model for its data, freshly initialised from the run's seed (as PyTorch would with
/// `torch.manual_seed(seed)`), checked against the rate table it was resolved with.
pub(crate) fn seeded_model(
    spec: &RunSpec,
    data: &Dataset,
    resolved: &[ResolvedParam],
    device: tch::Device,
) -> strata_server::error::Result<Model> {
    let _guard = MODEL_INIT_LOCK
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    tch::manual_seed(spec.seed as i64);
    Model::for_run(
        &spec.model,
        &data.sample_shape(),
        data.task.outputs(),
        resolved,
        device,
    )
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

/// The model, its optimizer and its data: what a run trains.
pub(super) struct Trainer<'a> {
    job: &'a TrainJob<'a>,
    pub(super) data: Dataset,
    pub(super) model: Model,
    pub(super) optimizer: Optimizer,
    groups: Vec<Group>,
    plan: StepPlan,
    /// Optimizer steps taken so far, over all epochs (drives the schedule).
    step: u64,
    /// The run's record and its epochs so far, written into every checkpoint.
    pub(super) records: RunRecords,
    /// A regression's targets are trained standardized; this brings losses back to their units.
    pub(super) targets: TargetScaling,
}

impl<'a> Trainer<'a> {
    pub(super) fn new(job: &'a TrainJob<'a>) -> Result<Self, Halt> {
        let spec = job.spec;
        // A resumed run starts from its own last checkpoint, a fine-tuning run from its source's;
        // either way the checkpoint also gives the feature scaling the weights were trained on.
        let source = job.start_from.as_ref();
        if job.resume_after_epoch > 0 && source.is_none() {
            return Err(Halt::Failed(format!(
                "the run resumes after epoch {} but came without that epoch's checkpoint",
                job.resume_after_epoch
            )));
        }
        let reuse = source.and_then(Checkpoint::standardization);
        let mut data = build_dataset(&spec.dataset, spec.seed, job.device, reuse)?;
        // Facts in the targets' own units, before they are standardized.
        let plan = StepPlan::new(spec, data.train_len());
        let measured = measure_data(&data, &plan)?;
        let targets = match data.task {
            Task::Regression => {
                let kept = source.and_then(Checkpoint::target_scaling);
                let resuming = job.resume_after_epoch > 0;
                let scaling =
                    TargetScaling::choose(kept, resuming, || TargetScaling::of(&data.train_y))?;
                data.train_y = scaling.standardize(&data.train_y)?;
                data.val_y = scaling.standardize(&data.val_y)?;
                scaling
            }
            Task::Classification { .. } => TargetScaling::IDENTITY,
        };
        let model = seeded_model(spec, &data, job.resolved, job.device)?;
        let named_rates = model
            .parameters()
            .iter()
            .zip(job.resolved)
            .map(|((name, tensor), resolved)| (name.clone(), tensor.shallow_clone(), resolved.lr))
            .collect();
        let mut optimizer = Optimizer::new(spec.optimizer, named_rates);
        match (source, job.resume_after_epoch) {
            (Some(source), 0) => source.load_matching(model.parameters()),
            (Some(source), _) => source.restore(model.parameters(), &mut optimizer, job.device),
            (None, _) => Ok(()),
        }
        .map_err(Halt::Failed)?;
        let step = u64::from(job.resume_after_epoch) * plan.steps_per_epoch;
        let records = RunRecords {
            run: job.sink.data_loaded(&measured)?,
            epochs: Vec::new(),
        };
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
    pub(super) fn epoch(&mut self, epoch: u32) -> Result<EpochMetrics, Halt> {
        let started = Instant::now();
        let frozen = self.freeze_for(epoch)?;
        let at_start = self.weights_now()?;
        let steps = self.take_steps(epoch, &frozen)?;
        self.measure(epoch, started, &frozen, &at_start, &steps)
    }

    /// Which parameters are frozen in `epoch`; their gradients are switched off.
    fn freeze_for(&self, epoch: u32) -> Result<Vec<bool>, TchError> {
        let frozen: Vec<bool> = self
            .job
            .resolved
            .iter()
            .map(|p| p.frozen_until.is_frozen_in(epoch))
            .collect();
        for ((_, tensor), &is_frozen) in self.model.parameters().iter().zip(&frozen) {
            // No gradient for a frozen parameter: nothing to update, decay or accumulate.
            let _ = tensor.f_set_requires_grad(!is_frozen)?;
        }
        Ok(frozen)
    }

    /// A copy of every parameter as it is now, to measure the epoch's updates against.
    fn weights_now(&self) -> Result<Vec<Tensor>, TchError> {
        self.model
            .parameters()
            .iter()
            .map(|(_, t)| t.f_detach().map(|d| d.copy()))
            .collect()
    }

    /// The epoch's optimizer steps, over the training rows in the epoch's shuffled order.
    fn take_steps(&mut self, epoch: u32, frozen: &[bool]) -> Result<StepsTaken, Halt> {
        let job = self.job;
        let plan = &self.plan;
        let shuffle = SeededRng::seeded(job.spec.seed ^ u64::from(epoch).wrapping_mul(0x9E37_79B9))
            .permutation(plan.train_rows as usize);
        let order = Tensor::f_from_slice(&shuffle)?.f_to_device(job.device)?;
        let mut taken = StepsTaken {
            batch_losses: Tensor::f_zeros(
                [plan.steps_per_epoch as i64],
                (Kind::Float, job.device),
            )?,
            grad_norm_sums: vec![0.0; self.groups.len()],
            grad_norm_samples: 0,
        };

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
                self.add_grad_norms(&mut taken.grad_norm_sums)?;
                taken.grad_norm_samples += 1;
            }
            let multiplier = self.multiplier();
            self.optimizer.step(multiplier, frozen)?;
            let detached = loss.f_detach()?;
            taken
                .batch_losses
                .f_narrow(0, batch as i64, 1)?
                .f_copy_(&detached.f_reshape([1])?)?;
            if plan.is_progress_step(batch) {
                self.report_progress(epoch, batch, &detached)?;
            }
            self.step += 1;
        }
        Ok(taken)
    }

    /// Adds each group's gradient norm at this step to its sum (reading it syncs with the device).
    fn add_grad_norms(&self, sums: &mut [f64]) -> Result<(), TchError> {
        let params = self.model.parameters();
        for (g, group) in self.groups.iter().enumerate() {
            let grads: Vec<Tensor> = group
                .members
                .iter()
                .map(|&i| params[i].1.grad())
                .filter(|g| g.defined())
                .collect();
            sums[g] += squared_norm(grads.iter())?.sqrt();
        }
        Ok(())
    }

    /// Tells the watchers a sampled step's loss (reading it syncs with the device); a non-finite
    /// one ends the run.
    fn report_progress(&self, epoch: u32, batch: u64, loss: &Tensor) -> Result<(), Halt> {
        let value = loss.f_double_value(&[])? * self.targets.loss_factor();
        if !value.is_finite() {
            return Err(Halt::Diverged(format!(
                "the training loss became {value} at epoch {epoch}, batch {}",
                batch + 1
            )));
        }
        self.job.sink.progress(BatchProgress {
            epoch,
            batch: batch as u32 + 1,
            batches: self.plan.steps_per_epoch as u32,
            loss: value,
        });
        Ok(())
    }

    /// The epoch's measurements once its steps are taken: the training loss, the validation, the
    /// groups' statistics and the speed.
    fn measure(
        &self,
        epoch: u32,
        started: Instant,
        frozen: &[bool],
        at_start: &[Tensor],
        steps: &StepsTaken,
    ) -> Result<EpochMetrics, Halt> {
        let train_loss = self.train_loss(epoch, &steps.batch_losses)?;
        let (val_loss, val_metric) = validate(&self.model, &self.data)?;
        let val_loss = val_loss * self.targets.loss_factor();
        let groups = self.group_stats(
            frozen,
            at_start,
            &steps.grad_norm_sums,
            steps.grad_norm_samples,
        )?;
        let elapsed = started.elapsed().as_secs_f64();
        Ok(EpochMetrics {
            epoch,
            train_loss,
            val_loss,
            val_metric,
            duration_ms: elapsed * 1e3,
            samples_per_sec: if elapsed > 0.0 {
                self.plan.train_rows as f64 / elapsed
            } else {
                0.0
            },
            groups,
            // Named scalars are what an external run's client logs; training measures none.
            extra: Default::default(),
            // Every epoch trained here is validated.
            no_validation: false,
        })
    }

    /// The epoch's training loss in the targets' units; a non-finite one ends the run, naming the
    /// first batch whose loss was.
    fn train_loss(&self, epoch: u32, batch_losses: &Tensor) -> Result<f64, Halt> {
        let train_loss = self.mean_train_loss(batch_losses)? * self.targets.loss_factor();
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
        Ok(train_loss)
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

/// What an epoch's steps leave to be measured.
struct StepsTaken {
    /// Each batch's loss lands here on the device: no sync per step, and the first non-finite
    /// batch can be named afterwards.
    batch_losses: Tensor,
    /// Per group, the sum of its gradient norms over the measured steps.
    grad_norm_sums: Vec<f64>,
    grad_norm_samples: u32,
}
