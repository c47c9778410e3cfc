//! What the examples store: an epoch record shaped like a real one (three layer groups).

use strata_server::domain::{EpochMetrics, GroupStats};

/// An epoch with these losses and plausible other fields.
pub fn epoch_record(epoch: u32, train_loss: f64, val_loss: f64) -> EpochMetrics {
    EpochMetrics {
        epoch,
        train_loss,
        val_loss,
        val_metric: 1.0 - val_loss / 2.0,
        duration_ms: 10.0,
        samples_per_sec: 80_000.0,
        groups: ["layer0", "layer1", "head"]
            .iter()
            .map(|name| GroupStats {
                name: name.to_string(),
                lr: 1e-3,
                grad_norm: 0.1,
                weight_norm: 5.0,
                update_ratio: 0.05,
                frozen: false,
            })
            .collect(),
        extra: Default::default(),
        no_validation: false,
    }
}
