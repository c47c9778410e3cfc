//! The arithmetic of fastai's `lr_find`, which a probe follows step for step: the smoothed loss
//! (`AvgSmoothLoss`), the divergence stop (`LRFinder.after_batch` with `stop_div`), and the
//! suggestions (`steep`, `minimum`, `valley`) on the curve `Learner.lr_find` hands them.

use strata_server::domain::{RatePoint, Suggestions};

/// fastai's `AvgSmoothLoss(beta=0.98)`.
pub const SMOOTHING_BETA: f64 = 0.98;
/// fastai stops a sweep once the smoothed loss exceeds this many times its best.
pub const DIVERGENCE_FACTOR: f64 = 4.0;
/// fastai leaves this many points off the end of the curve before suggesting (they are where the
/// loss runs away) and draws the curve without them (`plot_lr_find(skip_end=5)`).
pub const SKIPPED_LAST_POINTS: usize = 5;

/// An exponential moving average of the loss with fastai's bias correction: after `n` losses it
/// is `avg_n / (1 − βⁿ)`, with `avg_n = β·avg_{n−1} + (1−β)·loss_n` and `avg_0 = 0`.
#[derive(Clone, Copy, Debug, Default)]
pub struct SmoothedLoss {
    average: f64,
    count: i32,
}

impl SmoothedLoss {
    /// Takes one step's loss and returns the smoothed value.
    pub fn push(&mut self, loss: f64) -> f64 {
        self.average = SMOOTHING_BETA * self.average + (1.0 - SMOOTHING_BETA) * loss;
        self.count = self.count.saturating_add(1);
        self.average / (1.0 - SMOOTHING_BETA.powi(self.count))
    }
}

/// Whether a sweep stops after a step: the smoothed loss above [`DIVERGENCE_FACTOR`] × the best
/// seen (fastai's `stop_div`), or no longer a number. Keeps `best` up to date.
pub fn diverged(smoothed: f64, best: &mut f64) -> bool {
    if smoothed < *best {
        *best = smoothed;
    }
    !smoothed.is_finite() || smoothed > DIVERGENCE_FACTOR * *best
}

/// The suggestions for a swept curve of `steps` planned steps: computed on the smoothed losses
/// of the points fastai keeps — the first `steps / 10` and the last [`SKIPPED_LAST_POINTS`]
/// left out, and everything from the first non-finite loss on.
pub fn suggestions(points: &[RatePoint], steps: u32) -> Suggestions {
    let first = steps as usize / 10;
    let end = points.len().saturating_sub(SKIPPED_LAST_POINTS);
    let kept = points.get(first..end).unwrap_or(&[]);
    let finite = kept
        .iter()
        .position(|p| !p.smoothed.is_finite() || !p.lr.is_finite() || p.lr <= 0.0)
        .unwrap_or(kept.len());
    let kept = &kept[..finite];
    if kept.len() < 2 {
        return Suggestions::default();
    }
    let lrs: Vec<f64> = kept.iter().map(|p| p.lr).collect();
    let losses: Vec<f64> = kept.iter().map(|p| p.smoothed).collect();
    Suggestions {
        steep: Some(lrs[steepest(&lrs, &losses)]),
        minimum_div10: Some(lrs[first_minimum(&losses)] / 10.0),
        valley: Some(lrs[valley(&losses)]),
    }
}

/// fastai's `steep`: the index of the left end of the segment where the loss falls fastest
/// against log(rate) (`argmin` of the slopes; the first, on ties).
fn steepest(lrs: &[f64], losses: &[f64]) -> usize {
    let mut best = (0, f64::INFINITY);
    for i in 0..lrs.len() - 1 {
        let slope = (losses[i + 1] - losses[i]) / (lrs[i + 1].ln() - lrs[i].ln());
        if slope < best.1 {
            best = (i, slope);
        }
    }
    best.0
}

/// fastai's `minimum` takes the rate of the lowest loss (`argmin`: the first, on ties).
fn first_minimum(losses: &[f64]) -> usize {
    let mut best = 0;
    for (i, &loss) in losses.iter().enumerate() {
        if loss < losses[best] {
            best = i;
        }
    }
    best
}

/// fastai's `valley` (ESRI's suggester, `lr_find`'s default): the longest strictly decreasing
/// subsequence of the losses — its length `lds[i]` ending at each point — and the point about
/// two thirds down it: `start + ⌊(end − start)/3⌋ + ⌊(end − start)/6⌋`. The loops are fastai's,
/// including where the longest run's end and start are updated (inside the inner loop, so the
/// start is `end − lds[end]` as it was then), so the index is the one fastai picks.
fn valley(losses: &[f64]) -> usize {
    let n = losses.len();
    let mut lds = vec![1usize; n];
    let (mut max_start, mut max_end) = (0i64, 0usize);
    for i in 1..n {
        for j in 0..i {
            if losses[i] < losses[j] && lds[i] < lds[j] + 1 {
                lds[i] = lds[j] + 1;
            }
            if lds[max_end] < lds[i] {
                max_end = i;
                max_start = max_end as i64 - lds[max_end] as i64;
            }
        }
    }
    // fastai's start can be −1 (a descent from the very first point), and a negative index
    // counts from the end in Python; so it does here.
    let sections = (max_end as i64 - max_start) as f64 / 3.0;
    let index = max_start + sections as i64 + (sections / 2.0) as i64;
    let n = n as i64;
    index.rem_euclid(n).min(n - 1) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A curve of `steps` points with rates from 1e-7 to 10 as a sweep takes them, and the
    /// given smoothed losses.
    fn curve(losses: &[f64]) -> Vec<RatePoint> {
        let test = strata_server::domain::LrFindRange {
            steps: losses.len() as u32,
            ..Default::default()
        };
        losses
            .iter()
            .enumerate()
            .map(|(i, &loss)| RatePoint {
                lr: test.rate_at(i as u32),
                loss,
                smoothed: loss,
            })
            .collect()
    }

    #[test]
    fn smoothing_is_a_bias_corrected_average() {
        let mut smoothed = SmoothedLoss::default();
        // Bias correction: a constant loss is its own average from the first step.
        for _ in 0..50 {
            assert!((smoothed.push(2.0) - 2.0).abs() < 1e-12);
        }
        // fastai's numbers: after losses 1 then 3, (0.98·0.02·1 + 0.02·3) / (1 − 0.98²).
        let mut smoothed = SmoothedLoss::default();
        assert!((smoothed.push(1.0) - 1.0).abs() < 1e-12);
        let expected = (0.98 * 0.02 + 0.02 * 3.0) / (1.0 - 0.98f64.powi(2));
        assert!((smoothed.push(3.0) - expected).abs() < 1e-12);
        // A single spike moves the average by a little, not to the spike.
        let mut smoothed = SmoothedLoss::default();
        for _ in 0..100 {
            smoothed.push(1.0);
        }
        let after_spike = smoothed.push(100.0);
        assert!(after_spike > 1.0 && after_spike < 4.0, "{after_spike}");
    }

    #[test]
    fn a_sweep_stops_above_four_times_the_best_smoothed_loss() {
        let mut best = f64::INFINITY;
        for loss in [1.0, 0.8, 0.5, 1.9, 2.0] {
            assert!(!diverged(loss, &mut best), "{loss}");
        }
        assert_eq!(best, 0.5);
        assert!(diverged(2.01, &mut best));
        assert!(diverged(f64::NAN, &mut best));
        assert!(diverged(f64::INFINITY, &mut best));
        assert_eq!(best, 0.5, "a diverged value never becomes the best");
    }

    #[test]
    fn steep_is_the_left_end_of_the_fastest_fall() {
        // Flat, then a fall that is steepest from index 6 to 7, a minimum, then a climb.
        let losses = [
            2.0, 2.0, 2.0, 2.0, 1.9, 1.7, 1.4, 0.6, 0.5, 0.45, 0.44, 0.6, 1.5, 3.0, 6.0, 9.0,
        ];
        let points = curve(&losses);
        // 16 planned steps: the first 1 and last 5 points are left out.
        let found = suggestions(&points, 16);
        assert_eq!(found.steep, Some(points[6].lr));
        // The minimum (index 10) divided by 10.
        assert_eq!(found.minimum_div10, Some(points[10].lr / 10.0));
    }

    #[test]
    fn the_minimum_ignores_the_points_fastai_leaves_out() {
        // The lowest loss is among the first steps/10 points and among the last five: both are
        // left out, so the minimum is the lowest of the rest (index 12, not 0 or 17).
        let mut losses = vec![0.1, 5.0, 5.0];
        losses.extend((0..10).map(|i| 4.0 - 0.3 * f64::from(i)));
        losses.extend([3.0, 3.5, 4.0, 4.5, 0.01, 6.0]);
        let points = curve(&losses);
        let found = suggestions(&points, 20);
        assert_eq!(found.minimum_div10, Some(points[12].lr / 10.0));
    }

    #[test]
    fn valley_is_two_thirds_down_the_longest_descent() {
        // A strict descent from 3.0 through indices 2..=14, then a climb: the longest descent
        // is 14 points long and ends at 14, so fastai's start is 14 − 14 = 0 and the index
        // 0 + ⌊14/3⌋ + ⌊14/6⌋ = 0 + 4 + 2 = 6.
        let mut losses = vec![3.0, 3.0];
        losses.extend((0..13).map(|i| 3.0 - 0.2 * f64::from(i + 1)));
        losses.extend([0.5, 0.6, 0.7]);
        assert_eq!(valley(&losses), 6);
        // A single point has nowhere to go.
        assert_eq!(valley(&[1.0]), 0);
        // A descent from the first point: fastai's start is −1, so 10 falling points (end 9)
        // give −1 + ⌊10/3⌋ + ⌊10/6⌋ = −1 + 3 + 1 = 3.
        let falling: Vec<f64> = (0..10).map(|i| 10.0 - f64::from(i)).collect();
        assert_eq!(valley(&falling), 3);
        // Two falling points: −1 + 0 + 0 = −1, which Python reads as the last point.
        assert_eq!(valley(&[2.0, 1.0]), 1);
        // Rising only: the longest descent is one point, the first.
        assert_eq!(valley(&[1.0, 2.0, 3.0]), 0);
    }

    #[test]
    fn too_short_or_non_finite_curves_suggest_nothing_past_the_first_nan() {
        // 100 planned steps that diverged at step 12: 10 left out at the start and 5 at the end
        // leave none.
        let points = curve(&[1.0; 12]);
        assert_eq!(suggestions(&points, 100), Suggestions::default());
        // A NaN cuts the curve there, as fastai's `nan_idxs` does.
        let mut losses = vec![3.0, 2.0, 1.0, 0.5, f64::NAN, 0.0];
        losses.extend([9.0; 5]);
        let points = curve(&losses);
        let found = suggestions(&points, 9);
        assert_eq!(found.minimum_div10, Some(points[3].lr / 10.0));
        assert_eq!(found.steep.map(|lr| lr < points[4].lr), Some(true));
    }
}
