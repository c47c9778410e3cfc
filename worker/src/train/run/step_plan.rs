//! How an epoch is cut into optimizer steps, and which of them are sampled.

use strata_server::spec::RunSpec;

/// Steps per epoch whose gradient norms are measured (each measurement syncs with the device).
pub(super) const GRAD_NORM_SAMPLES_PER_EPOCH: u64 = 20;

/// How an epoch is cut into optimizer steps, and which steps are sampled: for live progress
/// (as many as the run asked for) and for gradient norms (a fixed number).
pub(super) struct StepPlan {
    pub(super) train_rows: i64,
    pub(super) batch_size: i64,
    pub(super) steps_per_epoch: u64,
    pub(super) total_steps: u64,
    pub(super) progress_events: u64,
}

impl StepPlan {
    pub(super) fn new(spec: &RunSpec, train_rows: i64) -> Self {
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

    pub(super) fn is_progress_step(&self, batch: u64) -> bool {
        self.is_sampled(self.progress_events, batch)
    }

    pub(super) fn is_measured_step(&self, batch: u64) -> bool {
        self.is_sampled(GRAD_NORM_SAMPLES_PER_EPOCH, batch)
    }
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
