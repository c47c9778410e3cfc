//! The learning-rate range test per layer group (`strata lr-find`): for each group in the
//! model's order, from the same initial weights and a fresh optimizer, train `steps` steps on the
//! same batches while that group's rate grows exponentially and every other group trains at the
//! rate the spec gives it; record each step's loss, stop when it runs away, and suggest rates from
//! the curve ([`suggest`]). Nothing is stored: the weights are put back before the next group.
//!
//! The run's schedule is not applied (the sweep is the schedule), nor are epochs counted: freezing
//! is taken as it is in the first epoch, except that the probed group always trains.

pub mod suggest;

use strata_server::{
    domain::{groups_in_order, largest_member, GroupProbe, LrFindProgress, LrFindRange, RatePoint},
    spec::{rates::ResolvedParam, RunSpec, Task},
    train::data::SeededRng,
};
use tch::{Device, Kind, TchError, Tensor};

use super::{
    checkpoint::Checkpoint,
    dataset::{build_dataset, Dataset},
    model::Model,
    optim::Optimizer,
    run::{loss_of, seeded_model},
    targets::TargetScaling,
};
use suggest::{diverged, suggestions, SmoothedLoss};

/// Steps of each group reported live (spread evenly; the last always among them).
const PROGRESS_EVENTS_PER_GROUP: u32 = 50;

/// Everything a probe needs, and where it reports.
pub struct LrFindJob<'a> {
    pub spec: &'a RunSpec,
    pub resolved: &'a [ResolvedParam],
    pub device: Device,
    /// A fine-tune's source checkpoint (its matching parameters and its feature scaling).
    pub init_from: Option<&'a Checkpoint>,
    pub range: LrFindRange,
    /// The groups to probe, in the model's order.
    pub groups: &'a [String],
    /// Asked before every step: stop now (the client went away, or the daemon is stopping).
    pub stop: &'a dyn Fn() -> bool,
    pub progress: &'a dyn Fn(LrFindProgress),
    /// Each group's probe, as soon as it is done.
    pub probed: &'a dyn Fn(GroupProbe),
}

/// Why a probe ended before every group was probed.
#[derive(Debug)]
pub enum LrFindHalt {
    Stopped,
    Failed(String),
}

impl From<TchError> for LrFindHalt {
    fn from(err: TchError) -> Self {
        LrFindHalt::Failed(format!("libtorch: {err}"))
    }
}

impl From<strata_server::error::StrataError> for LrFindHalt {
    fn from(err: strata_server::error::StrataError) -> Self {
        LrFindHalt::Failed(err.to_string())
    }
}

/// Probes every group of the job in turn (blocking). Never panics on libtorch errors.
pub fn lr_find(job: &LrFindJob<'_>) -> Result<(), LrFindHalt> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| probe_all(job))) {
        Ok(result) => result,
        Err(panic) => {
            let what = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "unknown panic".into());
            Err(LrFindHalt::Failed(format!("a panic: {what}")))
        }
    }
}

fn probe_all(job: &LrFindJob<'_>) -> Result<(), LrFindHalt> {
    let mut bench = Bench::new(job)?;
    let groups = groups_in_order(job.resolved, |p| &p.info.group);
    for (index, name) in job.groups.iter().enumerate() {
        let Some((_, members)) = groups.iter().find(|(group, _)| group == name) else {
            return Err(LrFindHalt::Failed(format!("the model has no group {name}")));
        };
        let probe = bench.probe(index as u32, name, members)?;
        (job.probed)(probe);
    }
    Ok(())
}

/// The model, its data and its initial weights: what every group's sweep starts from.
struct Bench<'a> {
    job: &'a LrFindJob<'a>,
    data: Dataset,
    model: Model,
    initial: Vec<Tensor>,
    targets: TargetScaling,
}

impl<'a> Bench<'a> {
    /// Loads the data and builds the model as a run of this spec starts (a fine-tune from its
    /// source's weights and scaling).
    fn new(job: &'a LrFindJob<'a>) -> Result<Self, LrFindHalt> {
        let spec = job.spec;
        let source = job.init_from;
        let reuse = source.and_then(Checkpoint::standardization);
        let mut data = build_dataset(&spec.dataset, spec.seed, job.device, reuse)?;
        let targets = match data.task {
            Task::Regression => {
                let kept = source.and_then(Checkpoint::target_scaling);
                let scaling =
                    TargetScaling::choose(kept, false, || TargetScaling::of(&data.train_y))?;
                data.train_y = scaling.standardize(&data.train_y)?;
                scaling
            }
            Task::Classification { .. } => TargetScaling::IDENTITY,
        };
        let model = seeded_model(spec, &data, job.resolved, job.device)?;
        if let Some(source) = source {
            source
                .load_matching(model.parameters())
                .map_err(LrFindHalt::Failed)?;
        }
        let initial = model
            .parameters()
            .iter()
            .map(|(_, t)| t.f_detach().map(|d| d.copy()))
            .collect::<Result<_, _>>()?;
        Ok(Bench {
            job,
            data,
            model,
            initial,
            targets,
        })
    }

    /// Sweeps one group's rate from the initial weights and a fresh optimizer.
    fn probe(
        &mut self,
        group_index: u32,
        name: &str,
        members: &[usize],
    ) -> Result<GroupProbe, LrFindHalt> {
        let job = self.job;
        let range = job.range;
        self.restore_initial_weights()?;
        let frozen = self.freeze_all_but(members)?;
        let rates = self
            .model
            .parameters()
            .iter()
            .zip(job.resolved)
            .enumerate()
            .map(|(i, ((name, tensor), p))| {
                let lr = if members.contains(&i) {
                    range.start_lr
                } else {
                    p.lr
                };
                (name.clone(), tensor.shallow_clone(), lr)
            })
            .collect();
        let mut optimizer = Optimizer::new(job.spec.optimizer, rates);
        let mut batches = Batches::new(job.spec, self.data.train_len());
        let mut smoothed = SmoothedLoss::default();
        let mut best = f64::INFINITY;
        let mut points = Vec::with_capacity(range.steps as usize);
        let mut stopped_early = false;
        for step in 0..range.steps {
            if (job.stop)() {
                return Err(LrFindHalt::Stopped);
            }
            let lr = range.rate_at(step);
            for &member in members {
                optimizer.set_rate(member, lr);
            }
            let loss = self.train_step(&mut optimizer, &mut batches, &frozen)?;
            let point = RatePoint {
                lr,
                loss,
                smoothed: smoothed.push(loss),
            };
            points.push(point);
            let runaway = diverged(point.smoothed, &mut best);
            let last = runaway || step + 1 == range.steps;
            if last || is_progress_step(step, range.steps) {
                (job.progress)(LrFindProgress {
                    group_index,
                    step: step + 1,
                    point,
                });
            }
            if runaway {
                stopped_early = step + 1 < range.steps;
                break;
            }
        }
        let main = largest_member(job.resolved, members, |p| p.info.shape.iter().product());
        Ok(GroupProbe {
            group: name.to_string(),
            current_lr: job.resolved[main].lr,
            suggestions: suggestions(&points, range.steps),
            points,
            diverged: stopped_early,
        })
    }

    fn restore_initial_weights(&mut self) -> Result<(), TchError> {
        tch::no_grad(|| {
            for ((_, tensor), initial) in self.model.parameters().iter().zip(&self.initial) {
                tensor.shallow_clone().f_copy_(initial)?;
            }
            Ok(())
        })
    }

    /// Every parameter frozen in the first epoch stays frozen, except the probed group's.
    fn freeze_all_but(&self, members: &[usize]) -> Result<Vec<bool>, TchError> {
        let frozen: Vec<bool> = self
            .job
            .resolved
            .iter()
            .enumerate()
            .map(|(i, p)| !members.contains(&i) && p.frozen_until.is_frozen_in(1))
            .collect();
        for ((_, tensor), &is_frozen) in self.model.parameters().iter().zip(&frozen) {
            let _ = tensor.f_set_requires_grad(!is_frozen)?;
        }
        Ok(frozen)
    }

    /// One optimizer step on the next batch; its loss in the targets' units (a device sync).
    fn train_step(
        &self,
        optimizer: &mut Optimizer,
        batches: &mut Batches,
        frozen: &[bool],
    ) -> Result<f64, LrFindHalt> {
        let idx = batches.next(self.job.device)?;
        let x = self.data.train_x.f_index_select(0, &idx)?;
        let y = self.data.train_y.f_index_select(0, &idx)?;
        optimizer.zero_grad();
        let loss = loss_of(self.data.task, &self.model.forward(&x, true)?, &y)?;
        loss.f_backward()?;
        optimizer.step(1.0, frozen)?;
        Ok(loss.f_double_value(&[])? * self.targets.loss_factor())
    }
}

/// Whether step `step` (from 0) of `steps` is one of the [`PROGRESS_EVENTS_PER_GROUP`] reported.
fn is_progress_step(step: u32, steps: u32) -> bool {
    let every = steps.div_ceil(PROGRESS_EVENTS_PER_GROUP).max(1);
    (step + 1).is_multiple_of(every)
}

/// The training rows batch by batch, in each epoch's shuffled order as a run of this seed takes
/// them, going on into the next epoch when one runs out (a sweep may be longer than an epoch).
struct Batches {
    seed: u64,
    rows: i64,
    batch_size: i64,
    epoch: u32,
    order: Option<Vec<i64>>,
    next_row: i64,
}

impl Batches {
    fn new(spec: &RunSpec, rows: i64) -> Self {
        Batches {
            seed: spec.seed,
            rows,
            batch_size: i64::from(spec.batch_size).min(rows).max(1),
            epoch: 0,
            order: None,
            next_row: rows,
        }
    }

    /// The row indices of the next batch, on `device`.
    fn next(&mut self, device: Device) -> Result<Tensor, TchError> {
        if self.next_row >= self.rows || self.order.is_none() {
            self.epoch += 1;
            // The same shuffle as the run's epoch of this number (see the training loop).
            let seed = self.seed ^ u64::from(self.epoch).wrapping_mul(0x9E37_79B9);
            self.order = Some(SeededRng::seeded(seed).permutation(self.rows as usize));
            self.next_row = 0;
        }
        let order = self.order.as_deref().unwrap_or(&[]);
        let start = self.next_row as usize;
        let end = (self.next_row + self.batch_size).min(self.rows) as usize;
        self.next_row = end as i64;
        Tensor::f_from_slice(&order[start..end])?
            .f_to_kind(Kind::Int64)?
            .f_to_device(device)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_is_reported_about_fifty_times_per_group() {
        for steps in [6u32, 50, 100, 101, 1000] {
            let reported = (0..steps).filter(|&s| is_progress_step(s, steps)).count() as u32;
            assert!(reported <= PROGRESS_EVENTS_PER_GROUP, "{steps}: {reported}");
            assert!(
                reported >= steps.min(PROGRESS_EVENTS_PER_GROUP) / 2,
                "{steps}"
            );
        }
    }

    #[test]
    fn the_sweep_follows_fastais_exponential_schedule() {
        let range = LrFindRange::default();
        assert_eq!(range.rate_at(0), 1e-7);
        // SchedExp(1e-7, 10)(i/100): one decade every 12.5 steps, 10 not reached.
        assert!((range.rate_at(50) / 1e-3 - 1.0).abs() < 1e-9);
        assert!(range.rate_at(99) < 10.0 && range.rate_at(99) > 8.0);
    }
}
