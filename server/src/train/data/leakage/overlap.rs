//! Validation rows that also appear among the training rows: exactly (every value as parsed), and
//! nearly (equal once standardized and rounded to a step of the training spread).

use std::collections::hash_map::Entry;

use super::super::rows::{by_hash, exact_key, same_values, RowHasher, Rows};
use super::stats::TrainingStats;
use crate::spec::Task;

pub(super) struct Overlap {
    pub exact_rows: u64,
    pub near_rows: u64,
}

pub(super) fn overlap(train: Rows<'_>, val: Rows<'_>, near: &NearScale) -> Overlap {
    let exact_rows = matched_val_rows(
        train,
        val,
        |rows, r| exact_key(rows.features(r), rows.target(r)),
        |a, ra, b, rb| same_values(a.features(ra), a.target(ra), b.features(rb), b.target(rb)),
    );
    let near_rows = matched_val_rows(
        train,
        val,
        |rows, r| near.key(rows, r),
        |a, ra, b, rb| near.same(a, ra, b, rb),
    );
    Overlap {
        exact_rows,
        near_rows,
    }
}

/// Validation rows equal, by `key` and confirmed by `same`, to some training row. The table holds
/// the validation rows grouped by key (validation is usually the smaller side), and each training
/// row is looked up once: time grows with the rows of both, memory with the validation rows.
fn matched_val_rows(
    train: Rows<'_>,
    val: Rows<'_>,
    key: impl Fn(Rows<'_>, usize) -> u64,
    same: impl Fn(Rows<'_>, usize, Rows<'_>, usize) -> bool,
) -> u64 {
    struct Group {
        representative: usize,
        rows: u64,
        matched: bool,
    }
    let mut groups = by_hash::<Group>(val.len());
    for row in val.indices() {
        match groups.entry(key(val, row)) {
            Entry::Vacant(entry) => {
                entry.insert(Group {
                    representative: row,
                    rows: 1,
                    matched: false,
                });
            }
            // A key shared by different values leaves the row out: a collision can hide a match,
            // never make one.
            Entry::Occupied(mut entry) => {
                let group = entry.get_mut();
                if same(val, group.representative, val, row) {
                    group.rows += 1;
                }
            }
        }
    }
    for row in train.indices() {
        if let Some(group) = groups.get_mut(&key(train, row)) {
            if !group.matched && same(val, group.representative, train, row) {
                group.matched = true;
            }
        }
    }
    groups.values().filter(|g| g.matched).map(|g| g.rows).sum()
}

/// How a row is standardized and rounded for the near-exact comparison: each feature with its
/// training centre and spread, a regression's target with the training targets' (a class stays
/// its class), every value rounded to a multiple of `tolerance_std` standard deviations.
pub(super) struct NearScale {
    centre: Vec<f64>,
    /// 1 / (spread × tolerance): multiplying by it gives steps of the tolerance.
    per_step: Vec<f64>,
    /// A regression's target centre and per-step factor; `None` compares classes as they are.
    target: Option<(f64, f64)>,
}

impl NearScale {
    pub fn new(stats: &TrainingStats, task: Task, tolerance_std: f64) -> Self {
        NearScale {
            centre: stats.centre.clone(),
            per_step: stats
                .spread
                .iter()
                .map(|s| 1.0 / (s * tolerance_std))
                .collect(),
            target: match task {
                Task::Regression => Some((
                    stats.target_mean,
                    1.0 / (stats.target_spread * tolerance_std),
                )),
                Task::Classification { .. } => None,
            },
        }
    }

    /// The rounded, standardized values of sample `row`: its features, then its target.
    fn rounded<'a>(&'a self, rows: Rows<'a>, row: usize) -> impl Iterator<Item = i64> + 'a {
        let features = rows
            .features(row)
            .iter()
            .zip(self.centre.iter().zip(&self.per_step))
            .map(|(&x, (c, k))| ((f64::from(x) - c) * k).round() as i64);
        let target = f64::from(rows.target(row));
        let target = match self.target {
            Some((c, k)) => ((target - c) * k).round() as i64,
            None => target as i64,
        };
        features.chain(std::iter::once(target))
    }

    fn key(&self, rows: Rows<'_>, row: usize) -> u64 {
        let mut hasher = RowHasher::default();
        for value in self.rounded(rows, row) {
            hasher.add(value as u64);
        }
        hasher.finish()
    }

    fn same(&self, a: Rows<'_>, a_row: usize, b: Rows<'_>, b_row: usize) -> bool {
        self.rounded(a, a_row).eq(self.rounded(b, b_row))
    }
}
