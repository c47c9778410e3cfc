//! How far the validation set's class balance is from the training set's.

use super::super::rows::Rows;

pub(super) struct Balance {
    /// Total variation distance: half the sum of the differences between the class proportions.
    pub distance: f64,
    /// The class whose share differs most: its share of the validation rows and of the training
    /// rows.
    pub widest: (f64, f64),
}

pub(super) fn class_balance(train: Rows<'_>, val: Rows<'_>, classes: usize) -> Balance {
    let shares = |rows: Rows<'_>| -> Vec<f64> {
        let mut counts = vec![0u64; classes];
        for row in rows.indices() {
            if let Some(count) = counts.get_mut(rows.target(row) as usize) {
                *count += 1;
            }
        }
        let total = rows.len().max(1) as f64;
        counts.into_iter().map(|c| c as f64 / total).collect()
    };
    let (train_shares, val_shares) = (shares(train), shares(val));
    let mut distance = 0.0;
    let mut widest = (0.0f64, 0.0f64);
    for (&v, &t) in val_shares.iter().zip(&train_shares) {
        distance += (v - t).abs() / 2.0;
        if (v - t).abs() > (widest.0 - widest.1).abs() {
            widest = (v, t);
        }
    }
    Balance { distance, widest }
}
