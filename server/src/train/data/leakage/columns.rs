//! Feature columns that give the label away on their own (target leakage), on the training rows.

use super::super::rows::{by_hash, mix, Rows};
use super::{
    stats::TrainingStats, DETERMINING_ROWS_PER_VALUE, DETERMINING_VALUES_PER_CLASS,
    TARGET_CORRELATION_LEAK,
};
use crate::{domain::ColumnLeak, spec::Task};

/// Each leaky feature (0-based among the features) and how it leaks.
pub(super) fn leaky_columns(
    train: Rows<'_>,
    task: Task,
    stats: &TrainingStats,
) -> Vec<(usize, ColumnLeak)> {
    match task {
        Task::Classification { classes } => (0..train.width())
            .filter_map(|feature| {
                class_leak(train, feature, classes.max(0) as usize).map(|how| (feature, how))
            })
            .collect(),
        Task::Regression => target_leaks(train, stats),
    }
}

/// A classifier's feature that equals the class number on every row, or whose every value goes
/// with a single class while it has few values: at most [`DETERMINING_VALUES_PER_CLASS`] per
/// class, and one per [`DETERMINING_ROWS_PER_VALUE`] rows (so a column of all-different values,
/// each trivially with one class, does not count). The scan stops at the first value seen with
/// two classes, which is early for any ordinary feature.
fn class_leak(train: Rows<'_>, feature: usize, classes: usize) -> Option<ColumnLeak> {
    let most_values =
        (DETERMINING_VALUES_PER_CLASS * classes).min(train.len() / DETERMINING_ROWS_PER_VALUE);
    let mut class_of = by_hash::<f32>(most_values.min(4096) + 1);
    let mut determines = true;
    let mut equals = true;
    let mut first: Option<f32> = None;
    let mut varies = false;
    for row in train.indices() {
        let (x, class) = (train.features(row)[feature], train.target(row));
        equals &= x == class;
        varies |= first.is_some_and(|f| f != x);
        first.get_or_insert(x);
        if determines {
            // mix is a bijection: distinct values never share a key.
            let key = mix(u64::from(if x == 0.0 { 0 } else { x.to_bits() }));
            match class_of.get(&key) {
                Some(&seen) => determines = seen == class,
                None if class_of.len() < most_values => {
                    class_of.insert(key, class);
                }
                None => determines = false,
            }
        }
        if !determines && !equals {
            return None;
        }
    }
    if !varies {
        return None;
    }
    if equals {
        Some(ColumnLeak::EqualsLabel)
    } else {
        Some(ColumnLeak::DeterminesClass {
            values: class_of.len() as u32,
        })
    }
}

/// A regression's features equal to the target on every row, or correlated with it at least
/// [`TARGET_CORRELATION_LEAK`] in magnitude: one pass over the rows, about the training means.
fn target_leaks(train: Rows<'_>, stats: &TrainingStats) -> Vec<(usize, ColumnLeak)> {
    let width = train.width();
    let (mut products, mut squares) = (vec![0.0f64; width], vec![0.0f64; width]);
    let mut target_squares = 0.0;
    let mut equals = vec![true; width];
    for row in train.indices() {
        let y = train.target(row);
        let dy = f64::from(y) - stats.target_mean;
        target_squares += dy * dy;
        let sums = products.iter_mut().zip(squares.iter_mut()).zip(&mut equals);
        let values = train.features(row).iter().zip(&stats.feature_mean);
        for (((product, square), equal), (&x, mean)) in sums.zip(values) {
            let dx = f64::from(x) - mean;
            *product += dx * dy;
            *square += dx * dx;
            *equal &= x == y;
        }
    }
    if target_squares == 0.0 {
        return Vec::new();
    }
    (0..width)
        .filter_map(|feature| {
            if squares[feature] == 0.0 {
                return None;
            }
            if equals[feature] {
                return Some((feature, ColumnLeak::EqualsLabel));
            }
            let correlation = products[feature] / (squares[feature] * target_squares).sqrt();
            (correlation.abs() >= TARGET_CORRELATION_LEAK)
                .then_some((feature, ColumnLeak::Correlated { correlation }))
        })
        .collect()
}
