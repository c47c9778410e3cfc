//! The analysis's words: numbers as its sentences print them ([`crate::domain::numbers`]), and
//! what a run judged on its training loss alone rests on.

pub use crate::domain::numbers::*;

/// What a run judged on its training loss alone rests on: `no validation loss was logged — ...:
/// training loss 2.303 → 0.8123 (lowest 0.8001 at epoch 9)`. `epochs` has at least one.
pub fn training_alone(epochs: &[crate::domain::EpochMetrics]) -> String {
    let (first, last) = (&epochs[0], &epochs[epochs.len() - 1]);
    let lowest = epochs
        .iter()
        .filter(|e| e.train_loss.is_finite())
        .min_by(|a, b| a.train_loss.total_cmp(&b.train_loss));
    let lowest = match lowest {
        Some(e) if e.epoch != last.epoch => {
            format!(" (lowest {} at epoch {})", loss(e.train_loss), e.epoch)
        }
        _ => String::new(),
    };
    format!(
        "no validation loss was logged, so this judges the training loss alone, which cannot show overfitting (log a validation loss to see it): training loss {} at epoch {} → {} at epoch {}{lowest}",
        loss(first.train_loss),
        first.epoch,
        loss(last.train_loss),
        last.epoch
    )
}
