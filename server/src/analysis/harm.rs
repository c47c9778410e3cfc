//! What a run's curves show of a rate too high: losses that jump up and fall back, a first epoch
//! far above an untrained model, a model thrown about above chance, one that learned and fell
//! back to it, a training loss that rises. The verdict says which; the group diagnoses flag a
//! group's large updates as `too-high` only when the curves show such harm (or the group's rate
//! stands far above the others').

use super::{
    curves::{lowest_near, Curves, SETTLED_BAND},
    verdicts::{BOUNCE_OF_PROGRESS, NOT_LEARNING_GAIN, TRAIN_FALL_AFTER_BEST},
    Thresholds,
};
use crate::domain::EpochMetrics;

/// A first epoch whose training loss averaged more than this many times the baseline: the first
/// steps threw the model far from where an untrained one starts.
pub const BLEW_UP_AT_ONCE_OF_BASELINE: f64 = 2.0;
/// A run that learned (a loss at least [`LEARNED_BELOW_BASELINE`] below the baseline) and ended
/// with both losses at or above this fraction of the baseline fell back to chance.
pub const FELL_BACK_OF_BASELINE: f64 = 0.97;
/// A loss this fraction below the baseline shows the model learned something (half the margin of
/// [`NOT_LEARNING_GAIN`]: a first epoch at 26% accuracy on ten classes, 6% below ln 10, had).
pub const LEARNED_BELOW_BASELINE: f64 = NOT_LEARNING_GAIN / 2.0;

/// One loss rising from one epoch to the next.
#[derive(Clone, Copy, Debug)]
pub(super) struct Rise {
    pub which: &'static str,
    pub from: f64,
    pub to: f64,
    /// The epoch (number) it rose in.
    pub epoch: u32,
    /// How large, on its curve's scale.
    pub size: f64,
}

/// The jumps of a run's losses (see the verdict rules in [`super::verdicts`]).
#[derive(Clone, Debug, Default)]
pub(super) struct Jumps {
    pub count: usize,
    /// Epoch-to-epoch steps.
    pub steps: usize,
    /// The largest rise in loss units of a training jump, or of a validation spike to more than
    /// twice its level.
    pub biggest: f64,
    /// The largest relative rise.
    pub largest: Option<Rise>,
    /// The epoch (number) of each jump, in order (the dashboard marks them).
    pub epochs: Vec<u32>,
}

/// Counts the jumps: a training loss rising by more than `unstable_jump` of the larger of its
/// previous and first value, or a validation loss rising that much *and* by
/// [`BOUNCE_OF_PROGRESS`] of the progress, then falling right after. A rise is judged against the
/// whole curve's scale and its progress: a converged curve's wobbles near zero are large relative
/// to themselves and small against what the run learned.
fn jumps(epochs: &[EpochMetrics], c: &Curves, t: &Thresholds) -> Jumps {
    let Some(first) = epochs.first() else {
        return Jumps::default();
    };
    // Against the larger magnitude, so a loss that goes below zero (an external run's own
    // objective) is judged on its size too.
    let rises =
        |first: f64, from: f64, to: f64| to - from > t.unstable_jump * from.abs().max(first.abs());
    let bounce_floor = BOUNCE_OF_PROGRESS * c.progress;
    let mut jumps = Jumps {
        steps: epochs.len() - 1,
        ..Jumps::default()
    };
    for i in 1..epochs.len() {
        let (before, now) = (&epochs[i - 1], &epochs[i]);
        let train_jump = rises(first.train_loss, before.train_loss, now.train_loss);
        let val_bounce = rises(first.val_loss, before.val_loss, now.val_loss)
            && now.val_loss - before.val_loss > bounce_floor
            && epochs
                .get(i + 1)
                .is_some_and(|next| next.val_loss < now.val_loss);
        if !(train_jump || val_bounce) {
            continue;
        }
        jumps.count += 1;
        jumps.epochs.push(now.epoch);
        if val_bounce && now.val_loss > 2.0 * before.val_loss {
            jumps.biggest = jumps.biggest.max(now.val_loss - before.val_loss);
        }
        if train_jump {
            jumps.biggest = jumps.biggest.max(now.train_loss - before.train_loss);
        }
        // The largest on each curve's own scale (a ratio, for losses above zero).
        for (jumped, which, from, to, scale) in [
            (
                train_jump,
                "training",
                before.train_loss,
                now.train_loss,
                c.train.scale,
            ),
            (
                val_bounce,
                "validation",
                before.val_loss,
                now.val_loss,
                c.val.scale,
            ),
        ] {
            let size = scale.to(to) - scale.to(from);
            let larger = jumps.largest.is_none_or(|l| size > l.size);
            if jumped && larger {
                jumps.largest = Some(Rise {
                    which,
                    from,
                    to,
                    epoch: now.epoch,
                    size,
                });
            }
        }
    }
    jumps
}

/// A classifier's first epoch's training loss, when it averaged more than
/// [`BLEW_UP_AT_ONCE_OF_BASELINE`] times the baseline. An untrained classifier starts near ln C;
/// an untrained regression starts wherever its targets' mean puts it (far above their variance
/// when they are not centred), so its first epoch says nothing of the rate.
fn blew_up_at_once(c: &Curves) -> Option<f64> {
    let baseline = c.baseline.as_ref().filter(|b| b.chance.is_some())?.loss;
    (c.first_train > BLEW_UP_AT_ONCE_OF_BASELINE * baseline).then_some(c.first_train)
}

/// Rises of a loss to above the baseline, by `unstable_jump` of the baseline: a model worse than
/// one that learned nothing is being thrown about. Their number and the largest.
fn above_chance(epochs: &[EpochMetrics], c: &Curves, t: &Thresholds) -> (usize, Option<Rise>) {
    let Some(baseline) = c.baseline.as_ref().map(|b| b.loss) else {
        return (0, None);
    };
    let (mut count, mut largest) = (0, None::<Rise>);
    for i in 1..epochs.len() {
        let (before, now) = (&epochs[i - 1], &epochs[i]);
        for (which, from, to) in [
            ("validation", before.val_loss, now.val_loss),
            ("training", before.train_loss, now.train_loss),
        ] {
            if to > baseline * (1.0 + t.unstable_jump) && to - from > t.unstable_jump * baseline {
                count += 1;
                if largest.is_none_or(|l| to - from > l.size) {
                    largest = Some(Rise {
                        which,
                        from,
                        to,
                        epoch: now.epoch,
                        size: to - from,
                    });
                }
            }
        }
    }
    (count, largest)
}

/// A run that learned (the first epoch, as an index, where a loss was [`LEARNED_BELOW_BASELINE`]
/// below the baseline, before the end window) and ended with both losses back at chance.
fn fell_back(epochs: &[EpochMetrics], c: &Curves) -> Option<usize> {
    let baseline = c.baseline.as_ref()?.loss;
    let end_window = c.val.end_window;
    if epochs.len() < 3 {
        return None;
    }
    let learned = epochs
        .iter()
        .position(|e| e.val_loss.min(e.train_loss) <= (1.0 - LEARNED_BELOW_BASELINE) * baseline)?;
    let train_end = c.train.end_level;
    let back = FELL_BACK_OF_BASELINE * baseline;
    (c.val.end_level >= back && train_end >= back && learned < epochs.len() - end_window)
        .then_some(learned)
}

/// A loss below this fraction of the baseline is as good as perfect (for 10 classes, 0.046: about
/// 99% of the probability on the right class): its relative wobbles — a training loss going from
/// 0.0008 to 0.004 — are not a rate throwing the model about.
pub const NEGLIGIBLE_OF_BASELINE: f64 = 0.02;

/// Whether `level` is above [`NEGLIGIBLE_OF_BASELINE`] of the baseline (or there is none).
fn not_negligible(c: &Curves, level: f64) -> bool {
    c.baseline
        .as_ref()
        .is_none_or(|b| level >= NEGLIGIBLE_OF_BASELINE * b.loss)
}

/// Validation bouncing by this fraction of its level from epoch to epoch (its noise) while
/// training has stopped falling: the optimizer is thrown about near its minimum.
pub const NOISY_BOUNCE: f64 = 0.15;

/// A validation curve whose noise is [`NOISY_BOUNCE`] of its level or more while training loss
/// stopped falling over the second half (its end level above (1 − `TRAIN_FALL_AFTER_BEST`) of
/// its level at mid-run): the noise as a fraction, and the mid-run index.
fn noisy_stall(c: &Curves) -> Option<(f64, usize)> {
    let noise = c.val.scale.as_fraction(c.val.noise);
    let mid = c.n / 2;
    let train_mid = c.train.scale.back(*c.train.levels.get(mid)?);
    let stalled = c.train.end_level > (1.0 - TRAIN_FALL_AFTER_BEST) * train_mid;
    (noise >= NOISY_BOUNCE && stalled && not_negligible(c, c.val.best_level))
        .then_some((noise, mid))
}

/// A sustained rise of the training loss, by `overfit_val_rise` and beyond its noise, while
/// validation ended away from its best too (a training loss that wobbles up under dropout while
/// validation keeps improving is no harm): the index of its lowest level.
fn training_rose(c: &Curves, t: &Thresholds) -> Option<usize> {
    c.train.sustained_rise(t.overfit_val_rise)?;
    c.val.sustained_rise(SETTLED_BAND)?;
    not_negligible(c, c.train.end_level).then_some(c.train.best_level_at?)
}

/// Everything the curves show of a rate too high, measured once: the verdict cites it, the group
/// diagnoses ask whether there is any.
#[derive(Clone, Debug)]
pub(super) struct Evidence {
    pub jumps: Jumps,
    pub blew_up_at_once: Option<f64>,
    /// Rises above the baseline: how many, and the largest.
    pub above_chance: (usize, Option<Rise>),
    pub fell_back: Option<usize>,
    pub training_rose: Option<usize>,
    pub both_rose: Option<usize>,
    pub noisy_stall: Option<(f64, usize)>,
}

impl Evidence {
    pub fn of(epochs: &[EpochMetrics], c: &Curves, t: &Thresholds) -> Evidence {
        Evidence {
            jumps: jumps(epochs, c, t),
            blew_up_at_once: blew_up_at_once(c),
            above_chance: above_chance(epochs, c, t),
            fell_back: fell_back(epochs, c),
            training_rose: training_rose(c, t),
            both_rose: both_rose(epochs, c, t),
            noisy_stall: noisy_stall(c),
        }
    }

    /// Whether the curves show any harm of a rate too high (for the group diagnoses).
    pub fn any(&self) -> bool {
        self.jumps.count >= 2
            || self.blew_up_at_once.is_some()
            || self.above_chance.0 >= 2
            || self.fell_back.is_some()
            || self.training_rose.is_some()
            || self.both_rose.is_some()
            || self.noisy_stall.is_some()
    }
}

/// Validation rose from its best level in a sustained way while training got no lower than it
/// was there: not overfitting (training would have kept falling) but a run losing its footing.
/// The index of the best level.
fn both_rose(epochs: &[EpochMetrics], c: &Curves, t: &Thresholds) -> Option<usize> {
    c.val.sustained_rise(t.overfit_val_rise)?;
    if c.still_improving() {
        return None;
    }
    let best = c.val.best_level_at?;
    let train_end = c.train.end_level;
    let at = lowest_near(epochs, best, |e| e.val_loss);
    (train_end >= epochs[at].train_loss && not_negligible(c, c.val.end_level)).then_some(best)
}
