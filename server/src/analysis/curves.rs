//! The numbers of a run's curves that the verdict rests on, measured once.

use super::{text::loss, Thresholds};
use crate::domain::{EpochMetrics, RunRecord, TaskFacts};

/// The loss of a model that has learned nothing, from the run's recorded facts.
#[derive(Clone, Debug)]
pub(super) struct Baseline {
    pub loss: f64,
    /// How a sentence names it: "the 2.303 of a uniform guess over 10 classes".
    pub described: String,
    /// A classifier's chance accuracy (1 / classes).
    pub chance: Option<f64>,
}

impl Baseline {
    pub fn of(run: &RunRecord) -> Option<Baseline> {
        let value = run.facts.task.baseline_loss()?;
        Some(match run.facts.task {
            TaskFacts::Classification { classes } => Baseline {
                loss: value,
                described: format!(
                    "the {} of a uniform guess over {classes} classes",
                    loss(value)
                ),
                chance: Some(1.0 / f64::from(classes)),
            },
            TaskFacts::Regression { .. } => Baseline {
                loss: value,
                described: format!(
                    "the {} of always predicting the mean (the targets' variance)",
                    loss(value)
                ),
                chance: None,
            },
        })
    }
}

/// Epochs in the last third (at least two, when there are two).
pub(super) fn last_third(n: usize) -> usize {
    n.div_ceil(3).max(2).min(n)
}

/// Least-squares slope of `(x, y)` points; 0 with fewer than two distinct x.
fn slope(points: &[(f64, f64)]) -> f64 {
    let n = points.len() as f64;
    if points.len() < 2 {
        return 0.0;
    }
    let mean_x = points.iter().map(|p| p.0).sum::<f64>() / n;
    let mean_y = points.iter().map(|p| p.1).sum::<f64>() / n;
    let (mut sxy, mut sxx) = (0.0, 0.0);
    for &(x, y) in points {
        sxy += (x - mean_x) * (y - mean_y);
        sxx += (x - mean_x) * (x - mean_x);
    }
    if sxx > 0.0 {
        sxy / sxx
    } else {
        0.0
    }
}

/// Within this fraction of the progress made, a validation loss counts as at its best: where a
/// curve has settled.
pub const SETTLED_FRACTION_OF_PROGRESS: f64 = 0.05;

#[derive(Clone, Debug)]
pub(super) struct Curves {
    pub n: usize,
    /// Index of the epoch with the lowest finite validation loss.
    pub best: Option<usize>,
    pub best_val: f64,
    pub first_val: f64,
    pub gap_at_best: f64,
    pub gap_final: f64,
    /// Slope of the gap per epoch over the last third.
    pub gap_trend: f64,
    /// The epoch in which validation loss first came within `near_best_fraction` of its best.
    pub epochs_to_converge: u32,
    pub final_train: f64,
    pub final_val: f64,
    pub baseline: Option<Baseline>,
    /// How far validation loss came down: from the baseline (the loss of a model that learned
    /// nothing, which a fine-tune started well below) or, without one, from the first epoch, to
    /// the best. Never negative.
    pub progress: f64,
    /// The first epoch whose validation loss came within [`SETTLED_FRACTION_OF_PROGRESS`] of the
    /// progress of the best: where the curve settled.
    pub settled_epoch: Option<u32>,
    /// The lowest 3-epoch average of validation loss (each epoch with its neighbours): the best
    /// level the curve held, rather than its luckiest epoch.
    pub smoothed_best: f64,
    /// The mean validation loss of the last three epochs: where the curve ended.
    pub end_level: f64,
    /// At the pace of the last third (its least-squares slope), the fraction of the progress so
    /// far that another third of the run would add. Positive while the curve still falls.
    pub recent_gain: f64,
    /// The same pace on a log scale: the fraction by which another third of the run would lower
    /// the validation loss (what matters for a loss nearing zero, where 0.17 → 0.07 is a big
    /// step that the progress, counted from the baseline, hardly sees).
    pub recent_relative_gain: f64,
    /// Whether validation loss fell at least as fast per epoch over the last third as over the
    /// whole run: a curve that has only just got going, rather than one slowing down.
    pub accelerating: bool,
    /// The lowest training loss, and the first epoch's.
    pub lowest_train: f64,
    pub first_train: f64,
}

/// Still improving: another third of the run at the last third's pace would add this fraction of
/// the progress made so far...
pub const STILL_IMPROVING_GAIN: f64 = 0.05;
/// ...or lower the validation loss by this fraction of itself, while it is above
/// [`NEGLIGIBLE_OF_BASELINE`] of the baseline.
pub const STILL_IMPROVING_RELATIVE_GAIN: f64 = 0.1;
/// A validation loss below this fraction of the baseline is as good as perfect (for 10 classes,
/// 0.046: about 99% of the probability on the right class): its relative wiggles are noise.
pub const NEGLIGIBLE_OF_BASELINE: f64 = 0.02;

impl Curves {
    /// Whether validation loss is still coming down at the end at a pace worth training on for.
    pub fn still_improving(&self) -> bool {
        let negligible = self
            .baseline
            .as_ref()
            .is_some_and(|b| self.best_val < NEGLIGIBLE_OF_BASELINE * b.loss);
        self.recent_gain > STILL_IMPROVING_GAIN
            || (!negligible && self.recent_relative_gain > STILL_IMPROVING_RELATIVE_GAIN)
    }

    pub fn of(run: &RunRecord, epochs: &[EpochMetrics], thresholds: &Thresholds) -> Curves {
        let n = epochs.len();
        let best = best_epoch(epochs);
        let best_val = best.map_or(f64::NAN, |i| epochs[i].val_loss);
        let first_val = epochs.first().map_or(f64::NAN, |e| e.val_loss);
        let tail = &epochs[n - last_third(n)..];
        let val_points = finite_points(tail, |e| e.val_loss);
        let baseline = Baseline::of(run);
        let start = baseline
            .as_ref()
            .map_or(first_val, |b| b.loss.max(first_val));
        let progress = (start - best_val).max(0.0);
        let vals: Vec<f64> = epochs.iter().map(|e| e.val_loss).collect();
        let last = epochs.last();
        Curves {
            smoothed_best: smoothed_best(&vals),
            end_level: end_level(&vals),
            n,
            best,
            best_val,
            first_val,
            gap_at_best: best.map_or(f64::NAN, |i| epochs[i].gap()),
            gap_final: last.map_or(f64::NAN, EpochMetrics::gap),
            gap_trend: slope(&finite_points(tail, EpochMetrics::gap)),
            epochs_to_converge: epochs_to_converge(epochs, best_val, thresholds.near_best_fraction),
            final_train: last.map_or(f64::NAN, |e| e.train_loss),
            final_val: last.map_or(f64::NAN, |e| e.val_loss),
            baseline,
            progress,
            settled_epoch: settled_epoch(epochs, best_val, progress),
            recent_gain: recent_gain(&val_points, n, progress),
            recent_relative_gain: recent_relative_gain(&val_points, n),
            accelerating: accelerating(epochs, &val_points),
            lowest_train: lowest_train(epochs),
            first_train: epochs.first().map_or(f64::NAN, |e| e.train_loss),
        }
    }
}

/// Index of the epoch with the lowest finite validation loss.
fn best_epoch(epochs: &[EpochMetrics]) -> Option<usize> {
    epochs
        .iter()
        .enumerate()
        .filter(|(_, e)| e.val_loss.is_finite())
        .min_by(|(_, a), (_, b)| a.val_loss.total_cmp(&b.val_loss))
        .map(|(i, _)| i)
}

/// `(epoch, value)` for the epochs whose value is finite: what a slope is fitted to.
fn finite_points(epochs: &[EpochMetrics], value: impl Fn(&EpochMetrics) -> f64) -> Vec<(f64, f64)> {
    epochs
        .iter()
        .map(|e| (f64::from(e.epoch), value(e)))
        .filter(|(_, v)| v.is_finite())
        .collect()
}

/// The first epoch whose validation loss came within `near_best_fraction` of the best (0 when
/// none did).
fn epochs_to_converge(epochs: &[EpochMetrics], best_val: f64, near_best_fraction: f64) -> u32 {
    let near_best = best_val + near_best_fraction * best_val.abs();
    epochs
        .iter()
        .find(|e| e.val_loss <= near_best)
        .map_or(0, |e| e.epoch)
}

/// The first epoch whose validation loss came within [`SETTLED_FRACTION_OF_PROGRESS`] of the
/// progress of the best.
fn settled_epoch(epochs: &[EpochMetrics], best_val: f64, progress: f64) -> Option<u32> {
    let settled_below = best_val + SETTLED_FRACTION_OF_PROGRESS * progress;
    epochs
        .iter()
        .position(|e| e.val_loss <= settled_below)
        .map(|i| epochs[i].epoch)
}

/// The fraction of `progress` that another third of the `n` epochs would add at the pace of
/// `val_points` (the last third's validation losses).
fn recent_gain(val_points: &[(f64, f64)], n: usize, progress: f64) -> f64 {
    if progress > 0.0 {
        -slope(val_points) * n as f64 / 3.0 / progress
    } else {
        0.0
    }
}

/// The fraction by which another third of the `n` epochs would lower the validation loss, at the
/// pace of `val_points` on a log scale.
fn recent_relative_gain(val_points: &[(f64, f64)], n: usize) -> f64 {
    let log_points: Vec<(f64, f64)> = val_points
        .iter()
        .filter(|(_, v)| *v > 0.0)
        .map(|&(x, v)| (x, v.ln()))
        .collect();
    1.0 - (slope(&log_points) * n as f64 / 3.0).exp()
}

/// Whether validation loss fell over the last third (`val_points`) at least as fast per epoch as
/// over the whole run.
fn accelerating(epochs: &[EpochMetrics], val_points: &[(f64, f64)]) -> bool {
    let n = epochs.len();
    let recent_pace = -slope(val_points);
    let average_pace = match (epochs.first(), epochs.last()) {
        (Some(first), Some(last)) if n > 1 => (first.val_loss - last.val_loss) / (n - 1) as f64,
        _ => 0.0,
    };
    recent_pace > 0.0 && recent_pace >= average_pace
}

/// The lowest finite training loss (infinite when there is none).
fn lowest_train(epochs: &[EpochMetrics]) -> f64 {
    epochs
        .iter()
        .map(|e| e.train_loss)
        .filter(|t| t.is_finite())
        .fold(f64::INFINITY, f64::min)
}

/// The lowest finite 3-epoch average of the validation losses `vals`, each with its neighbours.
fn smoothed_best(vals: &[f64]) -> f64 {
    let n = vals.len();
    (0..n)
        .map(|i| {
            let window = &vals[i.saturating_sub(1)..(i + 2).min(n)];
            window.iter().sum::<f64>() / window.len() as f64
        })
        .filter(|m| m.is_finite())
        .fold(f64::INFINITY, f64::min)
}

/// The mean of the last three validation losses `vals`.
fn end_level(vals: &[f64]) -> f64 {
    let tail3 = &vals[vals.len().saturating_sub(3)..];
    tail3.iter().sum::<f64>() / tail3.len().max(1) as f64
}
