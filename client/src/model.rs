//! What the client reads out of the daemon's values: the rules shared by every output (tables,
//! JSON, export), named once.

use std::borrow::Cow;

use strata_proto::{EpochRecord, RunStatus};

/// A run status as users see it (`completed`), or `unknown(N)` for a value this client does not
/// know (a newer daemon).
pub fn status_label(raw: i32) -> Cow<'static, str> {
    match RunStatus::try_from(raw) {
        Ok(status) => Cow::Borrowed(status.label()),
        Err(_) => Cow::Owned(format!("unknown({raw})")),
    }
}

/// The generalization gap of one epoch: validation loss minus training loss.
pub fn epoch_gap(epoch: &EpochRecord) -> f64 {
    epoch.val_loss - epoch.train_loss
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_labels() {
        assert_eq!(status_label(RunStatus::Completed as i32), "completed");
        assert_eq!(status_label(99), "unknown(99)");
    }
}
