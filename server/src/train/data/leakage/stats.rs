//! The training statistics the near-exact comparison standardizes with, as training does: per
//! column for tabular data, per channel for images, the unbiased standard deviation, and a spread
//! below `MIN_FEATURE_STD` left at 1.

use super::super::{rows::Rows, MIN_FEATURE_STD};

pub(super) struct TrainingStats {
    /// Per feature: the mean of its own values (what a correlation is measured about).
    pub feature_mean: Vec<f64>,
    /// Per feature: the mean and standard deviation it is standardized with (its column's, or its
    /// channel's for images).
    pub centre: Vec<f64>,
    pub spread: Vec<f64>,
    pub target_mean: f64,
    pub target_spread: f64,
}

impl TrainingStats {
    /// Two passes over the training rows (means, then spreads about them), in f64.
    pub fn of(train: Rows<'_>, sample_shape: &[i64]) -> Self {
        let width = train.width();
        // Images are standardized per channel: a channel's values are consecutive.
        let group_size = match sample_shape {
            [_] | [] => 1,
            [_, rest @ ..] => rest.iter().product::<i64>().max(1) as usize,
        };
        let rows = train.len().max(1) as f64;
        let mut sums = vec![0.0f64; width];
        let mut target_sum = 0.0;
        for row in train.indices() {
            for (sum, &x) in sums.iter_mut().zip(train.features(row)) {
                *sum += f64::from(x);
            }
            target_sum += f64::from(train.target(row));
        }
        let feature_mean: Vec<f64> = sums.iter().map(|s| s / rows).collect();
        let per_group = |values: &[f64]| -> Vec<f64> {
            values
                .chunks(group_size)
                .flat_map(|group| {
                    let mean = group.iter().sum::<f64>() / group.len() as f64;
                    std::iter::repeat_n(mean, group.len())
                })
                .collect()
        };
        let centre = per_group(&feature_mean);
        let target_mean = target_sum / rows;
        let mut squares = vec![0.0f64; width];
        let mut target_squares = 0.0;
        for row in train.indices() {
            for ((square, &x), c) in squares.iter_mut().zip(train.features(row)).zip(&centre) {
                let d = f64::from(x) - c;
                *square += d * d;
            }
            let d = f64::from(train.target(row)) - target_mean;
            target_squares += d * d;
        }
        let values_per_group = train.len() * group_size;
        let spread = per_group(&squares)
            .into_iter()
            .map(|mean_square| unbiased_std(mean_square * group_size as f64, values_per_group))
            .collect();
        TrainingStats {
            feature_mean,
            centre,
            spread,
            target_mean,
            target_spread: unbiased_std(target_squares, train.len()),
        }
    }
}

/// From a sum of squared deviations over `count` values; 1 where it would be ~0 (as training
/// leaves a constant column unscaled).
fn unbiased_std(squares: f64, count: usize) -> f64 {
    let std = if count > 1 {
        (squares / (count - 1) as f64).sqrt()
    } else {
        0.0
    };
    if std > MIN_FEATURE_STD {
        std
    } else {
        1.0
    }
}
