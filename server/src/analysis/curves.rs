//! The numbers of a run's curves that the verdict rests on, measured once.
//!
//! Shapes are judged on a log scale (every loss positive, as cross-entropy and squared errors
//! are): a fall from 0.17 to 0.07 is as big a step as one from 1.7 to 0.7, and the verdict does not
//! change when every loss and the baseline are multiplied by the same factor. A loss that may be
//! zero or negative (an external run's own objective) is judged linearly instead, in units of its
//! largest magnitude. Each curve's **noise** is measured from the curve itself — the spread of its
//! epoch-to-epoch changes around their typical change (a median absolute deviation, so a few
//! spikes do not inflate it) — and a rise, a fall or a flat stretch only counts beyond that noise.

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

/// Least-squares slope of `(x, y)` points and its standard error; a slope of 0 with fewer than
/// two distinct x, and an infinite error with fewer than three points (nothing to judge it by).
pub(super) fn slope(points: &[(f64, f64)]) -> (f64, f64) {
    let n = points.len() as f64;
    if points.len() < 2 {
        return (0.0, f64::INFINITY);
    }
    let mean_x = points.iter().map(|p| p.0).sum::<f64>() / n;
    let mean_y = points.iter().map(|p| p.1).sum::<f64>() / n;
    let (mut sxy, mut sxx) = (0.0, 0.0);
    for &(x, y) in points {
        sxy += (x - mean_x) * (y - mean_y);
        sxx += (x - mean_x) * (x - mean_x);
    }
    if sxx <= 0.0 {
        return (0.0, f64::INFINITY);
    }
    let b = sxy / sxx;
    if points.len() < 3 {
        return (b, f64::INFINITY);
    }
    let residuals: f64 = points
        .iter()
        .map(|&(x, y)| (y - mean_y - b * (x - mean_x)).powi(2))
        .sum();
    (b, (residuals / (n - 2.0) / sxx).sqrt())
}

/// The median of `values` (0 for none); sorts them.
pub(super) fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    match n {
        0 => 0.0,
        _ if n % 2 == 1 => values[n / 2],
        _ => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

/// How a curve's shape is measured: the log of each loss, or (when a loss is zero or negative)
/// the loss in units of the largest magnitude. Either way, multiplying every loss by one factor
/// leaves every difference of scaled values as it was.
#[derive(Clone, Copy, Debug)]
pub(super) struct Scale {
    log: bool,
    unit: f64,
}

impl Scale {
    /// The scale for these values (non-finite ones are ignored).
    pub fn of(values: impl IntoIterator<Item = f64>) -> Scale {
        let (mut log, mut unit) = (true, 0.0f64);
        for v in values.into_iter().filter(|v| v.is_finite()) {
            log &= v > 0.0;
            unit = unit.max(v.abs());
        }
        Scale {
            log,
            unit: if unit > 0.0 { unit } else { 1.0 },
        }
    }

    pub fn to(self, loss: f64) -> f64 {
        if self.log {
            loss.ln()
        } else {
            loss / self.unit
        }
    }

    pub fn back(self, scaled: f64) -> f64 {
        if self.log {
            scaled.exp()
        } else {
            scaled * self.unit
        }
    }

    /// A relative change as a distance on this scale: `fraction` = 0.1 is ln 1.1 on a log scale,
    /// a tenth of the unit on a linear one.
    pub fn of_fraction(self, fraction: f64) -> f64 {
        if self.log {
            fraction.ln_1p()
        } else {
            fraction
        }
    }

    /// A distance on this scale as a relative change (the inverse of [`Scale::of_fraction`]).
    pub fn as_fraction(self, distance: f64) -> f64 {
        if self.log {
            distance.exp_m1()
        } else {
            distance
        }
    }
}

/// A trend or a rise counts only when it is this many times the curve's noise.
pub const NOISE_MARGIN: f64 = 2.0;
/// The noise of one epoch's value, from the second differences (each value against the line
/// through its neighbours, so neither a trend nor a slow bend counts as noise): their median
/// magnitude, as a standard deviation (× 1.4826) of one value (÷ √6). Fewer than
/// [`NOISE_MIN_BENDS`] of them say nothing: 0.
pub(super) fn noise(scaled: &[f64]) -> f64 {
    let mut bends: Vec<f64> = scaled
        .windows(3)
        .map(|w| (w[2] - 2.0 * w[1] + w[0]).abs())
        .collect();
    if bends.len() < NOISE_MIN_BENDS {
        return 0.0;
    }
    1.4826 * median(&mut bends) / 6f64.sqrt()
}

/// Second differences needed to say anything of a curve's noise (eight epochs).
pub const NOISE_MIN_BENDS: usize = 6;

/// The epochs a curve's noise is measured over: its second half, or its last eight when that is
/// more (fewer epochs than that say little of the noise).
fn noise_window(n: usize) -> usize {
    (n / 2).max(8).min(n)
}

/// Each value with its neighbours, the median of the three: the level a curve held around each
/// epoch, so one lucky or unlucky epoch is not mistaken for it.
pub(super) fn levels(scaled: &[f64]) -> Vec<f64> {
    let n = scaled.len();
    (0..n)
        .map(|i| {
            let mut window = [0.0; 3];
            let around = &scaled[i.saturating_sub(1)..(i + 2).min(n)];
            window[..around.len()].copy_from_slice(around);
            median(&mut window[..around.len()])
        })
        .collect()
}

/// The epochs whose median is a curve's level at its end: a tenth of the run, 3 to 10 epochs,
/// but no more than a quarter of it (a five-epoch run ends in its last epoch).
pub(super) fn end_window(n: usize) -> usize {
    (n / 10).clamp(3, 10).min(n / 4).max(1).min(n)
}

/// A band around the best level within which a curve counts as at its best: 5% of it, or twice
/// the curve's noise when that is wider.
pub const SETTLED_BAND: f64 = 0.05;

/// A curve of one loss, measured on its own scale.
#[derive(Clone, Debug)]
pub(super) struct Shape {
    pub scale: Scale,
    /// The losses on that scale (NaN where not finite).
    pub scaled: Vec<f64>,
    /// [`levels`] of `scaled`.
    pub levels: Vec<f64>,
    /// The noise of one epoch's value, over the second half of the run (on the scale).
    pub noise: f64,
    /// Index of the lowest level, and that level (as a loss).
    pub best_level_at: Option<usize>,
    pub best_level: f64,
    /// Epochs in the end window, and the median loss over them.
    pub end_window: usize,
    pub end_level: f64,
}

impl Shape {
    /// `extra` joins the values in choosing the scale (the baseline: one scale for both).
    pub fn of(losses: &[f64], extra: Option<f64>) -> Shape {
        let scale = Scale::of(losses.iter().copied().chain(extra));
        let scaled: Vec<f64> = losses
            .iter()
            .map(|&l| if l.is_finite() { scale.to(l) } else { f64::NAN })
            .collect();
        let finite = scaled.iter().all(|s| s.is_finite());
        let levels = if finite { levels(&scaled) } else { Vec::new() };
        let best_level_at = levels
            .iter()
            .enumerate()
            .min_by(|a, b| a.1.total_cmp(b.1))
            .map(|(i, _)| i);
        let end_window = end_window(scaled.len());
        Shape {
            // The second half's noise: where overfitting, plateaus and the end's pace are judged (a
            // short curve's whole length).
            noise: if finite {
                noise(&scaled[scaled.len() - noise_window(scaled.len())..])
            } else {
                0.0
            },
            best_level: best_level_at.map_or(f64::NAN, |i| scale.back(levels[i])),
            // The median of the losses themselves (for an even window, the mean of the middle two
            // losses), so a sentence's "a median of x over the last k epochs" is what anyone
            // computes from the table.
            end_level: if finite && end_window > 0 {
                median(&mut losses[losses.len() - end_window..].to_vec())
            } else {
                f64::NAN
            },
            best_level_at,
            end_window,
            scale,
            scaled,
            levels,
        }
    }

    /// Whether the curve rose from its best level to its end level by more than `fraction` of
    /// it and by more than its noise allows, with its best at least two epochs before the end:
    /// the rise, on the scale.
    pub fn sustained_rise(&self, fraction: f64) -> Option<f64> {
        let best = self.best_level_at?;
        if self.scaled.len() - 1 - best < 2 {
            return None;
        }
        let rise = self.scale.to(self.end_level) - self.scale.to(self.best_level);
        let needed = self
            .scale
            .of_fraction(fraction)
            .max(NOISE_MARGIN * self.noise);
        (rise > needed).then_some(rise)
    }

    /// The first epoch (index) after the best level from which the curve's level stays above
    /// the band around it ([`SETTLED_BAND`] or its noise) to the end: where a rise began.
    pub fn left_best_at(&self) -> Option<usize> {
        let best_at = self.best_level_at?;
        let best = self.scale.to(self.best_level);
        let band = self
            .scale
            .of_fraction(SETTLED_BAND)
            .max(NOISE_MARGIN * self.noise);
        let mut left = None;
        for (i, level) in self.levels.iter().enumerate().skip(best_at + 1).rev() {
            if *level <= best + band {
                break;
            }
            left = Some(i);
        }
        left
    }

    /// The first epoch (index) from which the curve's level stays within [`SETTLED_BAND`] (or its
    /// noise) of its best level to the end.
    pub fn settled_at(&self) -> Option<usize> {
        let best = self.scale.to(self.best_level);
        let band = self
            .scale
            .of_fraction(SETTLED_BAND)
            .max(NOISE_MARGIN * self.noise);
        let mut settled = None;
        for (i, level) in self.levels.iter().enumerate().rev() {
            if *level > best + band {
                break;
            }
            settled = Some(i);
        }
        settled
    }
}

/// Of the three epochs around index `at`, the one with the lowest `value`: the epoch a sentence
/// names for a level (whose median it is at most).
pub(super) fn lowest_near(
    epochs: &[EpochMetrics],
    at: usize,
    value: impl Fn(&EpochMetrics) -> f64,
) -> usize {
    (at.saturating_sub(1)..(at + 2).min(epochs.len()))
        .min_by(|&a, &b| value(&epochs[a]).total_cmp(&value(&epochs[b])))
        .unwrap_or(at)
}

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
    /// The validation curve's shape (on the scale of the losses and the baseline).
    pub val: Shape,
    /// The training curve's shape.
    pub train: Shape,
    /// At the pace of the last third (its least-squares slope), the fraction of the progress so
    /// far that another third of the run would add. Positive while the curve still falls.
    pub recent_gain: f64,
    /// The same pace on the curve's own scale: the fraction by which another third of the run
    /// would lower the validation loss.
    pub recent_relative_gain: f64,
    /// Whether the last third's fall is beyond the curve's noise: its slope at least
    /// [`NOISE_MARGIN`] standard errors below zero.
    pub falling_beyond_noise: bool,
    /// Whether validation loss fell at least as fast per epoch over the last third as over the
    /// whole run: a curve that has only just got going, rather than one slowing down.
    pub accelerating: bool,
    /// Whether it fell [`SPEEDING_UP`] times as fast per epoch over the last third as on average,
    /// beyond its noise: learning that has only just got going.
    pub speeding_up: bool,
    /// The first epoch's training loss.
    pub first_train: f64,
    /// Whether the last third falls, on the curve's own scale, at least [`STEADY_PACE`] as fast
    /// per epoch as the first third did: a descent that has not begun to level off.
    pub steady: bool,
}

/// A last third whose fitted line still falls by this fraction of the loss is creeping down, not
/// stalled.
pub const CREEP_OVER_STRETCH: f64 = 0.01;

/// A descent is steady while its last third falls at least this fraction as fast (on its own
/// scale) as its first third: no floor in sight yet.
pub const STEADY_PACE: f64 = 0.5;

/// The least-squares slope of `values` (on `scale`) over epochs `range`.
fn slope_on(values: &[f64], scale: Scale, range: std::ops::Range<usize>) -> (f64, f64) {
    let points: Vec<(f64, f64)> = range
        .filter(|&i| values[i].is_finite() && (!scale.log || values[i] > 0.0))
        .map(|i| (i as f64, scale.to(values[i])))
        .collect();
    slope(&points)
}

/// Still improving: another third of the run at the last third's pace would add this fraction of
/// the progress made so far...
pub const STILL_IMPROVING_GAIN: f64 = 0.05;
/// ...or lower the validation loss by this fraction of itself; in either case beyond the
/// curve's noise.
pub const STILL_IMPROVING_RELATIVE_GAIN: f64 = 0.1;

impl Curves {
    /// Whether validation loss is still coming down at the end, beyond its noise, at a pace worth
    /// training on for.
    pub fn still_improving(&self) -> bool {
        self.falling_beyond_noise
            && (self.recent_gain > STILL_IMPROVING_GAIN
                || self.recent_relative_gain > STILL_IMPROVING_RELATIVE_GAIN)
    }

    pub fn of(run: &RunRecord, epochs: &[EpochMetrics], thresholds: &Thresholds) -> Curves {
        let n = epochs.len();
        let best = best_epoch(epochs);
        let best_val = best.map_or(f64::NAN, |i| epochs[i].val_loss);
        let first_val = epochs.first().map_or(f64::NAN, |e| e.val_loss);
        let baseline = Baseline::of(run);
        let vals: Vec<f64> = epochs.iter().map(|e| e.val_loss).collect();
        let trains: Vec<f64> = epochs.iter().map(|e| e.train_loss).collect();
        let val = Shape::of(&vals, baseline.as_ref().map(|b| b.loss));
        let train = Shape::of(&trains, baseline.as_ref().map(|b| b.loss));
        let tail = &epochs[n - last_third(n)..];
        let start = baseline
            .as_ref()
            .map_or(first_val, |b| b.loss.max(first_val));
        let progress = (start - best_val).max(0.0);
        let linear = finite_points(tail, |e| e.val_loss);
        let scaled: Vec<(f64, f64)> = linear
            .iter()
            .filter(|(_, v)| !val.scale.log || *v > 0.0)
            .map(|&(x, v)| (x, val.scale.to(v)))
            .collect();
        let (scaled_slope, scaled_error) = slope(&scaled);
        let third = n as f64 / 3.0;
        let last = epochs.last();
        Curves {
            n,
            best,
            best_val,
            first_val,
            gap_at_best: best.map_or(f64::NAN, |i| epochs[i].gap()),
            gap_final: last.map_or(f64::NAN, EpochMetrics::gap),
            gap_trend: slope(&finite_points(tail, EpochMetrics::gap)).0,
            epochs_to_converge: epochs_to_converge(epochs, best_val, thresholds.near_best_fraction),
            final_train: last.map_or(f64::NAN, |e| e.train_loss),
            final_val: last.map_or(f64::NAN, |e| e.val_loss),
            baseline,
            progress,
            recent_gain: if progress > 0.0 {
                -slope(&linear).0 * third / progress
            } else {
                0.0
            },
            recent_relative_gain: -val.scale.as_fraction(scaled_slope * third),
            falling_beyond_noise: scaled_slope < 0.0
                && -scaled_slope >= NOISE_MARGIN * scaled_error.min(f64::MAX),
            accelerating: accelerating(epochs, &linear),
            speeding_up: scaled_slope < 0.0
                && -scaled_slope >= NOISE_MARGIN * scaled_error.min(f64::MAX)
                && pace_ratio(epochs, &linear).is_some_and(|r| r >= SPEEDING_UP),
            first_train: epochs.first().map_or(f64::NAN, |e| e.train_loss),
            steady: {
                let third = last_third(n);
                let first_pace = -slope_on(&vals, val.scale, 0..third).0;
                let last_pace = -slope_on(&vals, val.scale, n - third..n).0;
                first_pace > 0.0 && last_pace >= STEADY_PACE * first_pace
            },
            val,
            train,
        }
    }

    /// Whether validation loss still creeps down at the end: the last third's slope is downward
    /// beyond its noise ([`NOISE_MARGIN`] standard errors) and adds up to [`CREEP_OVER_STRETCH`]
    /// of the loss or more over that third — slower than [`Curves::still_improving`] asks, but
    /// not stalled.
    pub fn creeping(&self, epochs: &[EpochMetrics]) -> bool {
        let vals: Vec<f64> = epochs.iter().map(|e| e.val_loss).collect();
        let third = last_third(self.n);
        let (slope, error) = slope_on(&vals, self.val.scale, self.n - third..self.n);
        let fall = -self.val.scale.as_fraction(slope * third as f64);
        slope < 0.0 && -slope >= NOISE_MARGIN * error && fall >= CREEP_OVER_STRETCH
    }

    /// The range of validation losses from epoch index `from` to the end.
    pub fn val_range_from(&self, epochs: &[EpochMetrics], from: usize) -> (f64, f64) {
        epochs[from..]
            .iter()
            .map(|e| e.val_loss)
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
                (lo.min(v), hi.max(v))
            })
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

/// Whether validation loss fell over the last third (`val_points`) at least as fast per epoch as
/// over the whole run.
fn accelerating(epochs: &[EpochMetrics], val_points: &[(f64, f64)]) -> bool {
    pace_ratio(epochs, val_points).is_some_and(|r| r >= 1.0 - 1e-9)
}

/// The last third's pace of fall (`val_points`, per epoch) over the whole run's, when both fall
/// (a straight line's paces are equal but computed two ways: equal within rounding is equal).
fn pace_ratio(epochs: &[EpochMetrics], val_points: &[(f64, f64)]) -> Option<f64> {
    let n = epochs.len();
    let recent_pace = -slope(val_points).0;
    let average_pace = match (epochs.first(), epochs.last()) {
        (Some(first), Some(last)) if n > 1 => (first.val_loss - last.val_loss) / (n - 1) as f64,
        _ => 0.0,
    };
    (recent_pace > 0.0 && average_pace > 0.0).then(|| recent_pace / average_pace)
}

/// A fall at least this many times faster at the end than on average has only just got going.
pub const SPEEDING_UP: f64 = 1.5;
