//! What one epoch of training measured.

use std::collections::BTreeMap;

/// Per layer group, over one epoch.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct GroupStats {
    pub name: String,
    /// Effective rate at the end of the epoch (base × schedule); 0 while frozen.
    pub lr: f64,
    /// Mean over the epoch's measured steps of the group's gradient L2 norm.
    pub grad_norm: f64,
    /// L2 norm of the group's parameters at the end of the epoch.
    pub weight_norm: f64,
    /// ‖w_end − w_start‖ / ‖w_start‖ over the epoch.
    pub update_ratio: f64,
    pub frozen: bool,
}

/// One epoch's record.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct EpochMetrics {
    /// From 1.
    pub epoch: u32,
    /// Mean training loss over the epoch's samples.
    pub train_loss: f64,
    /// Validation loss over the whole validation set.
    pub val_loss: f64,
    /// The validation metric of the run's task ([`super::ValMetric`]): accuracy or R².
    pub val_metric: f64,
    pub duration_ms: f64,
    pub samples_per_sec: f64,
    pub groups: Vec<GroupStats>,
    /// Any other named scalar an external run logs (`val_f1`, `lr_warmup`), by name; empty for a
    /// trained run.
    pub extra: BTreeMap<String, f64>,
    /// Not validated (an external run's loop validates less often, or not at all): `val_loss`
    /// and `val_metric` are NaN and mean nothing. A trained run validates every epoch.
    pub no_validation: bool,
}

impl EpochMetrics {
    /// Validation minus training loss.
    pub fn gap(&self) -> f64 {
        self.val_loss - self.train_loss
    }

    /// Whether a loss reports divergence: the training loss, or a validation loss that was
    /// measured, is not finite.
    pub fn diverged(&self) -> bool {
        !self.train_loss.is_finite() || (!self.no_validation && !self.val_loss.is_finite())
    }
}
