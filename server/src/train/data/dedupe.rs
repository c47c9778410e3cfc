//! `dedupe`: exact repeats of a row (every feature and the label, as parsed) dropped before the
//! split, so no row can be both trained and validated on. One pass over the rows with a hash
//! table of those kept: time and memory grow with the rows.

use std::collections::hash_map::Entry;

use super::{
    rows::{by_hash, exact_key, same_values, Rows},
    Samples,
};

/// Drops every row that repeats an earlier one, keeping the first; returns how many went.
pub fn drop_repeats(samples: &mut Samples) -> u64 {
    let rows = Rows::all(samples);
    let mut first = by_hash::<usize>(rows.len());
    let keep: Vec<bool> = rows
        .indices()
        .map(|row| {
            let (features, target) = (rows.features(row), rows.target(row));
            match first.entry(exact_key(features, target)) {
                Entry::Vacant(entry) => {
                    entry.insert(row);
                    true
                }
                // A hash shared by different values keeps the row: only a true repeat goes.
                Entry::Occupied(entry) => {
                    let kept = *entry.get();
                    !same_values(rows.features(kept), rows.target(kept), features, target)
                }
            }
        })
        .collect();
    retain_rows(samples, &keep)
}

/// Drops the rows of `val` that repeat a row of `train`; returns how many went.
pub fn drop_copies_of(train: &Samples, val: &mut Samples) -> u64 {
    let train_rows = Rows::all(train);
    let mut in_train = by_hash::<usize>(train_rows.len());
    for row in train_rows.indices() {
        in_train
            .entry(exact_key(train_rows.features(row), train_rows.target(row)))
            .or_insert(row);
    }
    let val_rows = Rows::all(val);
    let keep: Vec<bool> = val_rows
        .indices()
        .map(|row| {
            let (features, target) = (val_rows.features(row), val_rows.target(row));
            !in_train
                .get(&exact_key(features, target))
                .is_some_and(|&t| {
                    same_values(
                        train_rows.features(t),
                        train_rows.target(t),
                        features,
                        target,
                    )
                })
        })
        .collect();
    retain_rows(val, &keep)
}

/// Keeps the rows marked in `keep`, in order; returns how many were dropped.
fn retain_rows(samples: &mut Samples, keep: &[bool]) -> u64 {
    let width = samples.width();
    let mut kept = 0;
    for (row, _) in keep.iter().enumerate().filter(|(_, &k)| k) {
        if row != kept {
            samples
                .features
                .copy_within(row * width..(row + 1) * width, kept * width);
            samples.targets[kept] = samples.targets[row];
        }
        kept += 1;
    }
    samples.features.truncate(kept * width);
    samples.targets.truncate(kept);
    (keep.len() - kept) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples(rows: &[[f32; 3]]) -> Samples {
        Samples {
            features: rows.iter().flat_map(|r| [r[0], r[1]]).collect(),
            targets: rows.iter().map(|r| r[2]).collect(),
            sample_shape: vec![2],
        }
    }

    #[test]
    fn repeats_go_and_first_occurrences_stay_in_order() {
        let mut set = samples(&[
            [1.0, 2.0, 0.0],
            [3.0, 4.0, 1.0],
            [1.0, 2.0, 0.0],
            [1.0, 2.0, 1.0],
            [-0.0, 5.0, 0.0],
            [0.0, 5.0, 0.0],
            [3.0, 4.0, 1.0],
        ]);
        assert_eq!(drop_repeats(&mut set), 3);
        assert_eq!(set.features, vec![1.0, 2.0, 3.0, 4.0, 1.0, 2.0, -0.0, 5.0]);
        assert_eq!(set.targets, vec![0.0, 1.0, 1.0, 0.0]);

        let mut val = samples(&[[3.0, 4.0, 1.0], [3.0, 4.0, 0.0], [9.0, 9.0, 1.0]]);
        assert_eq!(drop_copies_of(&set, &mut val), 1);
        assert_eq!(val.targets, vec![0.0, 1.0]);
    }
}
