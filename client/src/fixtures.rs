//! Values the unit tests build again and again.

use strata_proto::{EpochRecord, GroupEpochStats, ParameterRate};

pub fn parameter(
    name: &str,
    group: &str,
    shape: Vec<i64>,
    lr: f64,
    frozen_until: i32,
) -> ParameterRate {
    ParameterRate {
        name: name.into(),
        group: group.into(),
        shape,
        lr,
        frozen_until,
        init: "fresh".into(),
    }
}

pub fn mlp(layer0_lr: f64, frozen_until: i32) -> Vec<ParameterRate> {
    vec![
        parameter(
            "layer0.weight",
            "layer0",
            vec![16, 2],
            layer0_lr,
            frozen_until,
        ),
        // A bias at another rate does not change the group's (the weight's) rate.
        parameter("layer0.bias", "layer0", vec![16], 5.0, 0),
        parameter("head.weight", "head", vec![3, 16], 1e-2, 0),
        parameter("head.bias", "head", vec![3], 1e-2, 0),
    ]
}

/// An epoch as the daemon reports it, with one layer group (`head`).
pub fn epoch_record(epoch: u32, train: f64, val: f64) -> EpochRecord {
    EpochRecord {
        epoch,
        train_loss: train,
        val_loss: val,
        val_accuracy: 0.75,
        duration_ms: 12.5,
        samples_per_sec: 6400.0,
        groups: vec![GroupEpochStats {
            name: "head".into(),
            lr: 1e-3,
            grad_norm: 0.5,
            weight_norm: 3.0,
            update_ratio: 1e-3,
            frozen: false,
        }],
    }
}
