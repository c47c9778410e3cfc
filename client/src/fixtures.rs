//! Values the unit tests build again and again.

use strata_proto::ParameterRate;

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
