//! Validation rows that also appear among the training rows: exactly (every value as parsed), and
//! nearly (equal once standardized and rounded to a step of the training spread).

use std::collections::hash_map::Entry;

use super::super::rows::{by_hash, exact_key, same_values, ByHash, RowHasher, Rows};
use super::stats::TrainingStats;
use crate::spec::Task;

pub(super) struct Overlap {
    pub exact_rows: u64,
    pub near_rows: u64,
}

/// One pass over the validation rows fills a table of them, grouped by their rounded values (an
/// exact copy rounds alike, so exact copies are found inside those groups); one pass over the
/// training rows looks each up. Time grows with the rows of both, memory with the validation
/// rows (usually the smaller side).
pub(super) fn overlap(train: Rows<'_>, val: Rows<'_>, near: &NearScale) -> Overlap {
    let mut groups: ByHash<NearGroup> = by_hash(val.len());
    let mut filter = KeyFilter::new();
    // Validation rows that round like their group's first row without equalling it: few.
    let mut others: ByHash<ExactGroup> = by_hash(0);
    let (mut rounded, mut other) = (Vec::new(), Vec::new());
    let same = |a: Rows<'_>, a_row: usize, b: Rows<'_>, b_row: usize| {
        same_values(
            a.features(a_row),
            a.target(a_row),
            b.features(b_row),
            b.target(b_row),
        )
    };
    for row in val.indices() {
        near.round(val, row, &mut rounded);
        let key = NearScale::key(&rounded);
        filter.insert(key);
        let group = match groups.entry(key) {
            Entry::Vacant(entry) => {
                entry.insert(NearGroup::of(row));
                continue;
            }
            Entry::Occupied(entry) => entry.into_mut(),
        };
        let first = group.first as usize;
        if same(val, row, val, first) {
            group.rows += 1;
            group.copies_of_first += 1;
            continue;
        }
        near.round(val, first, &mut other);
        // Else a key shared by different values: the row is left out (a collision can hide a
        // match, never make one).
        if other == rounded {
            group.rows += 1;
            let key = exact_key(val.features(row), val.target(row));
            match others.entry(key) {
                Entry::Vacant(entry) => {
                    entry.insert(ExactGroup::of(row));
                }
                Entry::Occupied(mut entry) => {
                    let exact = entry.get_mut();
                    if same(val, row, val, exact.first as usize) {
                        exact.rows += 1;
                    }
                }
            }
        }
    }
    for row in train.indices() {
        near.round(train, row, &mut rounded);
        let key = NearScale::key(&rounded);
        if !filter.may_hold(key) {
            continue;
        }
        let Some(group) = groups.get_mut(&key) else {
            continue;
        };
        let first = group.first as usize;
        if !group.first_matched && same(train, row, val, first) {
            group.first_matched = true;
            group.near_matched = true;
        }
        if !group.near_matched {
            near.round(val, first, &mut other);
            group.near_matched = other == rounded;
        }
        if !others.is_empty() {
            let key = exact_key(train.features(row), train.target(row));
            if let Some(exact) = others.get_mut(&key) {
                exact.matched |= same(train, row, val, exact.first as usize);
            }
        }
    }
    let near_rows = groups.values().filter(|g| g.near_matched).map(|g| g.rows);
    let copies = groups
        .values()
        .filter(|g| g.first_matched)
        .map(|g| g.copies_of_first);
    let other_copies = others.values().filter(|e| e.matched).map(|e| e.rows);
    Overlap {
        exact_rows: copies.chain(other_copies).map(u64::from).sum(),
        near_rows: near_rows.map(u64::from).sum(),
    }
}

/// Validation rows that round alike. Row indices fit 32 bits (datasets hold at most
/// `MAX_DATASET_ROWS`): a smaller table is fewer cache misses per look-up.
struct NearGroup {
    /// The first validation row with the group's key: the one others are confirmed against.
    first: u32,
    rows: u32,
    /// Rows equal to `first` exactly, itself included.
    copies_of_first: u32,
    /// Whether a training row rounds like the group, and whether one equals `first` exactly.
    near_matched: bool,
    first_matched: bool,
}

impl NearGroup {
    fn of(row: usize) -> Self {
        NearGroup {
            first: row as u32,
            rows: 1,
            copies_of_first: 1,
            near_matched: false,
            first_matched: false,
        }
    }
}

/// Validation rows equal exactly, that round like their group's first row without equalling it.
struct ExactGroup {
    first: u32,
    rows: u32,
    matched: bool,
}

impl ExactGroup {
    fn of(row: usize) -> Self {
        ExactGroup {
            first: row as u32,
            rows: 1,
            matched: false,
        }
    }
}

/// A bit per key's top 21 bits: 256 KiB, so it stays in a core's cache while the table does
/// not. A training row whose bit is clear has no validation row with its key, and skips the
/// table (most rows, in most data).
struct KeyFilter(Vec<u64>);

const KEY_FILTER_BITS: u32 = 21;

impl KeyFilter {
    fn new() -> Self {
        KeyFilter(vec![0; 1 << (KEY_FILTER_BITS - 6)])
    }

    fn bit(key: u64) -> (usize, u64) {
        let bit = key >> (64 - KEY_FILTER_BITS);
        ((bit >> 6) as usize, 1 << (bit & 63))
    }

    fn insert(&mut self, key: u64) {
        let (word, mask) = Self::bit(key);
        self.0[word] |= mask;
    }

    fn may_hold(&self, key: u64) -> bool {
        let (word, mask) = Self::bit(key);
        self.0[word] & mask != 0
    }
}

/// How a row is standardized and rounded for the near-exact comparison: each feature with its
/// training centre and spread, a regression's target with the training targets' (a class stays
/// its class), every value rounded (half up) to a multiple of `tolerance_std` standard
/// deviations.
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

    /// Sample `row`'s rounded, standardized values into `out`: its features, then its target.
    fn round(&self, rows: Rows<'_>, row: usize, out: &mut Vec<i64>) {
        out.clear();
        out.extend(
            rows.features(row)
                .iter()
                .zip(self.centre.iter().zip(&self.per_step))
                .map(|(&x, (c, k))| round_half_up((f64::from(x) - c) * k)),
        );
        let target = f64::from(rows.target(row));
        out.push(match self.target {
            Some((c, k)) => round_half_up((target - c) * k),
            None => target as i64,
        });
    }

    /// Two rounded values a word: their low 32 bits (what the key loses, confirming a match on
    /// the whole values restores).
    fn key(rounded: &[i64]) -> u64 {
        let mut hasher = RowHasher::default();
        let mut pairs = rounded.chunks_exact(2);
        for pair in &mut pairs {
            hasher.add(u64::from(pair[0] as u32) << 32 | u64::from(pair[1] as u32));
        }
        if let [last] = pairs.remainder() {
            hasher.add(*last as u64);
        }
        hasher.finish()
    }
}

/// ⌊v + ½⌋ without a call into libm (`f64::round` is one on baseline x86-64): a million rows of
/// values each go through it. Saturates past ±2⁶³ steps, which only values absurdly far from the
/// training mean reach.
fn round_half_up(v: f64) -> i64 {
    let up = v + 0.5;
    let truncated = up as i64;
    truncated - i64::from((truncated as f64) > up)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::data::Samples;

    /// Training rows, then validation rows, of two features and a class.
    fn split_of(train: &[[f32; 3]], val: &[[f32; 3]]) -> (Samples, Vec<bool>) {
        let rows: Vec<&[f32; 3]> = train.iter().chain(val).collect();
        let samples = Samples {
            features: rows.iter().flat_map(|r| [r[0], r[1]]).collect(),
            targets: rows.iter().map(|r| r[2]).collect(),
            sample_shape: vec![2],
        };
        let in_val = (0..rows.len()).map(|i| i >= train.len()).collect();
        (samples, in_val)
    }

    #[test]
    fn exact_copies_are_told_apart_inside_a_near_group() {
        // Spread about 1 per feature: rows 1e-5 apart round alike at 1e-3.
        let train = [
            [0.0, 0.0, 0.0],
            [1.0, 1.0, 1.0],
            [2.0, 2.0, 0.0],
            [1.00001, 5.0, 1.0],
        ];
        let val = [
            [1.0, 1.0, 1.0],     // a copy of a training row...
            [1.0, 1.0, 1.0],     // ...twice
            [2.00001, 2.0, 0.0], // near a training row, not equal to it
            [2.0, 2.0, 0.0],     // equal to one, near the row before it (its group's first)
            [2.0, 2.0, 1.0],     // another class: neither
            [7.0, 7.0, 0.0],
        ];
        let (samples, in_val) = split_of(&train, &val);
        let (train_rows, val_rows) = Rows::split(&samples, &in_val);
        let stats = TrainingStats::of(train_rows, &samples.sample_shape);
        let scale = NearScale::new(&stats, Task::Classification { classes: 2 }, 1e-3);
        let found = overlap(train_rows, val_rows, &scale);
        assert_eq!((found.exact_rows, found.near_rows), (3, 4));
    }

    #[test]
    fn rounds_half_up_on_both_sides_of_zero() {
        let cases = [
            (0.4, 0),
            (0.5, 1),
            (-0.5, 0),
            (-0.6, -1),
            (2.5, 3),
            (-2.4, -2),
        ];
        for (v, rounded) in cases {
            assert_eq!(round_half_up(v), rounded, "{v}");
        }
    }
}
