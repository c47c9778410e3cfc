//! Values the unit tests build again and again.

use strata_proto::{
    epoch_record, frozen, EpochRecord, Frozen, GroupEpochStats, GroupRate, ParameterInit,
    ParameterRate,
};

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
        frozen: frozen(frozen_until),
        init: ParameterInit::Fresh as i32,
    }
}

/// The wire's freeze message from the old sentinel: 0 none, N until epoch N, -1 for good.
pub fn frozen(until: i32) -> Option<Frozen> {
    let until = match until {
        0 => return None,
        n if n > 0 => frozen::Until::Epoch(n as u32),
        _ => frozen::Until::Forever(true),
    };
    Some(Frozen { until: Some(until) })
}

/// The groups as the daemon reports them: in order of first appearance, each at its largest
/// parameter's rate and freezing.
pub fn groups(parameters: &[ParameterRate]) -> Vec<GroupRate> {
    let mut groups: Vec<(GroupRate, i64)> = Vec::new();
    for p in parameters {
        let size = p.shape.iter().product::<i64>();
        let rate = GroupRate {
            name: p.group.clone(),
            lr: p.lr,
            frozen: p.frozen,
        };
        match groups.iter_mut().find(|(g, _)| g.name == p.group) {
            Some((group, largest)) if size > *largest => (*group, *largest) = (rate, size),
            Some(_) => {}
            None => groups.push((rate, size)),
        }
    }
    groups.into_iter().map(|(g, _)| g).collect()
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
        val_metric: Some(epoch_record::ValMetric::ValAccuracy(0.75)),
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
        extra: Default::default(),
        no_validation: false,
    }
}
