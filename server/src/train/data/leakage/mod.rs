//! The leakage check, made on a CSV or IDX dataset when its run is prepared, on the split the run
//! trains on: the validation rows against the training rows.
//!
//! - **Overlap**: validation rows equal to a training row, every feature and the label as parsed
//!   (exact), and once both are standardized with the training statistics and every value is
//!   rounded to a multiple of [`NEAR_TOLERANCE_STD`] standard deviations (near-exact, the exact
//!   copies included). A finding from [`OVERLAP_FINDING_FRACTION`] of the validation rows.
//! - **Target leakage**, on the training rows: a feature equal to the label on every row; for a
//!   classifier, one whose every value goes with a single class while it has few values (see
//!   [`DETERMINING_VALUES_PER_CLASS`]); for a regression, one correlated with the target at least
//!   [`TARGET_CORRELATION_LEAK`] in magnitude. Every such column is a finding.
//! - **Class balance**: the total variation distance between the training and the validation
//!   class proportions; a finding from [`CLASS_BALANCE_DISTANCE`] (and, for a small validation
//!   set, from the distance chance alone could give it, [`chance_balance_distance`]).
//!
//! Rows are found through 64-bit hashes in hash tables, each match confirmed on the values: time
//! grows with rows × features, memory with the rows (the `check_leakage` example measures it on a
//! million rows). Columns are named by position (`column 3`, `pixel 200`), never by a header: the
//! daemon does not repeat a file's contents.

mod balance;
mod columns;
mod overlap;
mod stats;
#[cfg(test)]
mod tests;

use super::rows::Rows;
use crate::{
    domain::{numbers::percent, ColumnLeak, Leakage, LeakyColumn},
    spec::Task,
};
use balance::class_balance;
use columns::leaky_columns;
use overlap::{overlap, NearScale};
use stats::TrainingStats;

/// The rounding step of the near-exact comparison, in training standard deviations: far below
/// any difference that matters to a model, far above the rounding of a value printed to a few
/// digits in two files.
pub const NEAR_TOLERANCE_STD: f64 = 1e-3;
/// Overlap is a finding from this fraction of the validation rows: a handful of coincidental
/// repeats in discrete data moves a validation score by less.
pub const OVERLAP_FINDING_FRACTION: f64 = 0.01;
/// A classifier's column "determines" the class only with at most this many distinct values per
/// class...
pub const DETERMINING_VALUES_PER_CLASS: usize = 10;
/// ...and at most one distinct value per this many training rows (each value seen on ten rows on
/// average): an all-different continuous column maps each value to one class trivially.
pub const DETERMINING_ROWS_PER_VALUE: usize = 10;
/// A regression's column leaks the target from this correlation (in magnitude): a feature that
/// close to the target is the target, rescaled.
pub const TARGET_CORRELATION_LEAK: f64 = 0.999;
/// The class balances differ sharply from this total variation distance: a fifth of the
/// validation rows would have to change class to match the training balance. A small validation
/// set must also pass [`chance_balance_distance`].
pub const CLASS_BALANCE_DISTANCE: f64 = 0.2;

/// √((C − 1) / n): twice the most by which `n` validation rows drawn at random differ from the
/// training balance on average over `C` classes (½√((C − 1)/n) bounds the expected distance).
/// Below it, an imbalance may be the luck of a small draw, and is not a finding.
pub fn chance_balance_distance(classes: u64, val_rows: u64) -> f64 {
    (classes.saturating_sub(1) as f64 / val_rows.max(1) as f64).sqrt()
}

/// Whether a class balance distance is a finding: at least [`CLASS_BALANCE_DISTANCE`], and beyond
/// what chance gives a validation set of `val_rows` rows over `classes` classes.
pub fn balance_differs_sharply(distance: f64, classes: u64, val_rows: u64) -> bool {
    distance >= CLASS_BALANCE_DISTANCE.max(chance_balance_distance(classes, val_rows))
}

/// How findings name a feature.
#[derive(Clone, Copy, Debug)]
pub enum FeatureNames {
    /// A CSV file's column (1-based), the label's own column counted: this is the label's.
    Csv { label_column: usize },
    /// An image's values, 1-based in channel, row, column order.
    Pixels,
}

impl FeatureNames {
    /// The position and name of feature `feature` (0-based among the features).
    fn of(self, feature: usize) -> (u32, String) {
        match self {
            FeatureNames::Csv { label_column } => {
                let column = if feature + 1 < label_column {
                    feature + 1
                } else {
                    feature + 2
                };
                (column as u32, format!("column {column}"))
            }
            FeatureNames::Pixels => (feature as u32 + 1, format!("pixel {}", feature + 1)),
        }
    }
}

/// What `dedupe` dropped before the check.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Dropped {
    pub repeats: u64,
    pub val_copies: u64,
}

/// Checks the validation rows against the training rows (`sample_shape`: one sample's shape).
pub fn check_leakage(
    train: Rows<'_>,
    val: Rows<'_>,
    sample_shape: &[i64],
    task: Task,
    names: FeatureNames,
    dropped: Dropped,
) -> Leakage {
    let stats = TrainingStats::of(train, sample_shape);
    let overlap = overlap(
        train,
        val,
        &NearScale::new(&stats, task, NEAR_TOLERANCE_STD),
    );
    let label_columns = leaky_columns(train, task, &stats)
        .into_iter()
        .map(|(feature, how)| {
            let (position, name) = names.of(feature);
            LeakyColumn {
                position,
                name,
                how,
            }
        })
        .collect();
    let classes = match task {
        Task::Classification { classes } => Some(classes.max(0) as u64),
        Task::Regression => None,
    };
    let balance = classes.map(|classes| class_balance(train, val, classes as usize));
    let mut leakage = Leakage {
        val_rows: val.len() as u64,
        train_rows: train.len() as u64,
        exact_rows: overlap.exact_rows,
        near_rows: overlap.near_rows,
        near_tolerance_std: NEAR_TOLERANCE_STD,
        label_columns,
        class_balance_distance: balance.as_ref().map(|b| b.distance),
        dropped_repeats: dropped.repeats,
        dropped_val_copies: dropped.val_copies,
        findings: Vec::new(),
    };
    leakage.findings = overlap_finding(&leakage)
        .into_iter()
        .chain(leakage.label_columns.iter().map(column_finding))
        .chain(
            balance
                .filter(|b| {
                    balance_differs_sharply(b.distance, classes.unwrap_or(0), val.len() as u64)
                })
                .map(|b| {
                    format!(
                        "the validation set's class balance differs sharply from the training set's: total variation distance {:.2} (one class is {} of the validation rows and {} of the training rows)",
                        b.distance,
                        percent(b.widest.0),
                        percent(b.widest.1)
                    )
                }),
        )
        .collect();
    leakage
}

/// `14% of the validation rows (28 of 200) also appear among the training rows, ...`, when either
/// overlap reaches [`OVERLAP_FINDING_FRACTION`].
fn overlap_finding(leakage: &Leakage) -> Option<String> {
    let (exact, near) = (leakage.exact_fraction(), leakage.near_fraction());
    let nearly = format!(
        "equal once standardized and rounded to {} standard deviations",
        NEAR_TOLERANCE_STD
    );
    let rows = |count: u64| format!("{count} of {}", leakage.val_rows);
    let more_near = near >= OVERLAP_FINDING_FRACTION && leakage.near_rows > leakage.exact_rows;
    if exact >= OVERLAP_FINDING_FRACTION {
        let also_near = if more_near {
            format!(
                ", and {} ({}) nearly do: {nearly}",
                percent(near),
                leakage.near_rows
            )
        } else {
            String::new()
        };
        Some(format!(
            "{} of the validation rows ({}) also appear among the training rows, every feature and the label{also_near} (--dedupe drops exact copies)",
            percent(exact),
            rows(leakage.exact_rows)
        ))
    } else if more_near {
        Some(format!(
            "{} of the validation rows ({}) nearly appear among the training rows: {nearly}",
            percent(near),
            rows(leakage.near_rows)
        ))
    } else {
        None
    }
}

fn column_finding(column: &LeakyColumn) -> String {
    let name = &column.name;
    match column.how {
        ColumnLeak::EqualsLabel => format!("{name} equals the label on every training row"),
        ColumnLeak::DeterminesClass { values } => format!(
            "{name} gives the label away: each of its {values} values goes with a single class on every training row"
        ),
        ColumnLeak::Correlated { correlation } => format!(
            "{name} follows the target almost exactly: correlation {correlation:.4} over the training rows"
        ),
    }
}
