//! When a sweep stops a trial early: it diverged, or it is clearly worse than the trials that
//! finished — the median stopping rule of Google Vizier, as Optuna's `MedianPruner` applies it.
//!
//! The rule, after epoch `e` of a trial (epochs from 1), once `e > warmup_epochs` and at least
//! `min_finished_trials` trials of the sweep have completed with an epoch `e`: stop the trial if
//! its best validation loss up to epoch `e` is above the median of those completed trials'
//! validation losses at epoch `e`. Optuna's defaults are kept: 5 finished trials
//! (`n_startup_trials=5`) and no warm-up (`n_warmup_steps=0`).
//!
//! A trial diverges when its validation loss rises to [`DIVERGED_RATIO`] times its first epoch's
//! (the daemon's analysis calls that `diverged` too); a non-finite loss the daemon ends itself.

/// Completed trials needed before the median rule stops anything (Optuna: `n_startup_trials`).
pub const DEFAULT_MIN_FINISHED_TRIALS: u32 = 5;
/// Epochs of a trial never judged by the median rule (Optuna: `n_warmup_steps`).
pub const DEFAULT_WARMUP_EPOCHS: u32 = 0;
/// A validation loss this many times the trial's first epoch's is divergence (the analysis'
/// default `diverged_ratio`).
pub const DIVERGED_RATIO: f64 = 3.0;

/// The stopping rule of a sweep.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StoppingRule {
    /// Whether the median rule applies (divergence always stops a trial).
    pub median: bool,
    pub min_finished_trials: u32,
    pub warmup_epochs: u32,
}

impl Default for StoppingRule {
    fn default() -> Self {
        StoppingRule {
            median: true,
            min_finished_trials: DEFAULT_MIN_FINISHED_TRIALS,
            warmup_epochs: DEFAULT_WARMUP_EPOCHS,
        }
    }
}

/// Why a trial should stop, with the numbers it was decided on.
#[derive(Clone, Debug, PartialEq)]
pub enum StopReason {
    Diverged {
        epoch: u32,
        val_loss: f64,
        first_val_loss: f64,
    },
    BelowMedian {
        epoch: u32,
        best_val_loss: f64,
        median: f64,
        finished_trials: usize,
    },
}

impl std::fmt::Display for StopReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            StopReason::Diverged {
                epoch,
                val_loss,
                first_val_loss,
            } => write!(
                f,
                "diverged: validation loss {} at epoch {epoch} is over {DIVERGED_RATIO}× its first epoch's {}",
                shown(val_loss),
                shown(first_val_loss)
            ),
            StopReason::BelowMedian {
                epoch,
                best_val_loss,
                median,
                finished_trials,
            } => write!(
                f,
                "best validation loss {} by epoch {epoch} is above the median {} of {finished_trials} finished trials at epoch {epoch}",
                shown(best_val_loss),
                shown(median)
            ),
        }
    }
}

/// A loss to three significant digits.
fn shown(value: f64) -> String {
    format!("{value:.3}")
}

impl StoppingRule {
    /// Judges a trial after the last epoch of `val_losses` (its validation loss per epoch, from
    /// epoch 1), against the validation losses of the completed trials.
    pub fn judge<'a>(
        &self,
        val_losses: &[f64],
        completed: impl IntoIterator<Item = &'a [f64]>,
    ) -> Option<StopReason> {
        let epoch = val_losses.len();
        let (&first, &last) = (val_losses.first()?, val_losses.last()?);
        if first.is_finite() && last.is_finite() && last > DIVERGED_RATIO * first {
            return Some(StopReason::Diverged {
                epoch: epoch as u32,
                val_loss: last,
                first_val_loss: first,
            });
        }
        if !self.median || epoch as u32 <= self.warmup_epochs {
            return None;
        }
        let mut at_epoch: Vec<f64> = completed
            .into_iter()
            .filter_map(|losses| losses.get(epoch - 1).copied())
            .filter(|loss| loss.is_finite())
            .collect();
        if at_epoch.is_empty() || at_epoch.len() < self.min_finished_trials as usize {
            return None;
        }
        let median = median(&mut at_epoch);
        let best = val_losses
            .iter()
            .copied()
            .filter(|loss| loss.is_finite())
            .fold(f64::INFINITY, f64::min);
        (best > median).then_some(StopReason::BelowMedian {
            epoch: epoch as u32,
            best_val_loss: best,
            median,
            finished_trials: at_epoch.len(),
        })
    }
}

/// The median of finite values (the mean of the middle two for an even count).
pub fn median(values: &mut [f64]) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    if values.len() % 2 == 1 {
        values[mid]
    } else {
        (values[mid - 1] + values[mid]) / 2.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_trial_above_the_median_of_enough_finished_trials_is_stopped() {
        let rule = StoppingRule {
            min_finished_trials: 3,
            ..StoppingRule::default()
        };
        let done: Vec<Vec<f64>> = vec![vec![0.5, 0.3], vec![0.6, 0.4], vec![0.7, 0.5]];
        let completed = || done.iter().map(Vec::as_slice);
        let stop = rule.judge(&[0.9, 0.8], completed()).unwrap();
        assert_eq!(
            stop,
            StopReason::BelowMedian {
                epoch: 2,
                best_val_loss: 0.8,
                median: 0.4,
                finished_trials: 3
            }
        );
        assert!(stop
            .to_string()
            .contains("above the median 0.400 of 3 finished trials at epoch 2"));
        assert_eq!(
            rule.judge(&[0.9, 0.35], completed()),
            None,
            "below the median"
        );
        assert_eq!(
            rule.judge(&[0.9, 0.8], done[..2].iter().map(Vec::as_slice)),
            None,
            "too few"
        );
        let warm = StoppingRule {
            warmup_epochs: 2,
            ..rule
        };
        assert_eq!(warm.judge(&[0.9, 0.8], completed()), None, "warming up");
        let off = StoppingRule {
            median: false,
            ..rule
        };
        assert_eq!(off.judge(&[0.9, 0.8], completed()), None);
    }

    #[test]
    fn a_loss_three_times_its_start_is_divergence_whatever_the_others_did() {
        let rule = StoppingRule::default();
        let stop = rule.judge(&[0.7, 2.5], std::iter::empty()).unwrap();
        assert!(matches!(stop, StopReason::Diverged { epoch: 2, .. }));
        assert_eq!(rule.judge(&[0.7, 2.0], std::iter::empty()), None);
        assert_eq!(median(&mut [3.0, 1.0, 2.0, 10.0]), 2.5);
    }
}
