use super::*;

fn mlp_params() -> Vec<ParamInfo> {
    [
        "layer0.weight",
        "layer0.bias",
        "layer1.weight",
        "layer1.bias",
        "head.weight",
        "head.bias",
    ]
    .iter()
    .map(|n| ParamInfo::new(n, vec![2]))
    .collect()
}

fn spec(base: BaseRates, layer_lr: &[&str], freeze: &[&str]) -> RateSpec {
    RateSpec {
        base,
        layer_lr: layer_lr
            .iter()
            .map(|r| LayerRateRule::parse("layer_lr", r).unwrap())
            .collect(),
        freeze: freeze
            .iter()
            .map(|r| FreezeRule::parse("freeze", r).unwrap())
            .collect(),
    }
}

fn rates(resolved: &[ResolvedParam]) -> Vec<f64> {
    resolved.iter().map(|p| p.lr).collect()
}

#[test]
fn uniform_with_rules_later_wins() {
    let s = spec(
        BaseRates::Uniform(1e-2),
        &["layer0=1e-3", "*.bias=x0.5", "layer0.bias=7e-3"],
        &[],
    );
    let r = resolve_layer_rates(&mlp_params(), &s).unwrap();
    assert_eq!(rates(&r), vec![1e-3, 7e-3, 1e-2, 5e-3, 1e-2, 5e-3]);
}

#[test]
fn decay_and_slice() {
    let r = resolve_layer_rates(
        &mlp_params(),
        &spec(
            BaseRates::Decay {
                lr: 1.0,
                decay: 0.5,
            },
            &[],
            &[],
        ),
    )
    .unwrap();
    assert_eq!(rates(&r), vec![0.25, 0.25, 0.5, 0.5, 1.0, 1.0]);
    let r = resolve_layer_rates(
        &mlp_params(),
        &spec(
            BaseRates::Slice {
                first: 1e-4,
                last: 1e-2,
            },
            &[],
            &[],
        ),
    )
    .unwrap();
    assert!(
        (r[0].lr - 1e-4).abs() < 1e-12
            && (r[2].lr - 1e-3).abs() < 1e-12
            && (r[4].lr - 1e-2).abs() < 1e-12
    );
}

#[test]
fn freeze_rules() {
    let r = resolve_layer_rates(
        &mlp_params(),
        &spec(BaseRates::Uniform(1e-3), &[], &["layer0", "layer1@3"]),
    )
    .unwrap();
    assert_eq!(r[0].frozen_until, FrozenUntil::Forever);
    assert_eq!(r[2].frozen_until, FrozenUntil::Epoch(3));
    assert!(r[2].frozen_until.is_frozen_in(2) && !r[2].frozen_until.is_frozen_in(3));
    assert_eq!(r[4].frozen_until, FrozenUntil::Never);
}

#[test]
fn rejections_name_the_rule() {
    let err = resolve_layer_rates(
        &mlp_params(),
        &spec(BaseRates::Uniform(1e-3), &["nope=1e-3"], &[]),
    )
    .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("layer_lr[0]") && msg.contains("nope") && msg.contains("layer0, layer1, head"),
        "{msg}"
    );
    let err = resolve_layer_rates(&mlp_params(), &spec(BaseRates::Uniform(1e-3), &[], &["*"]))
        .unwrap_err();
    assert!(err.to_string().starts_with("freeze:"));
    assert!(LayerRateRule::parse("layer_lr[0]", "layer0=-1").is_err());
    assert!(LayerRateRule::parse("layer_lr[0]", "layer0=xNaN").is_err());
    assert!(LayerRateRule::parse("layer_lr[0]", "layer0").is_err());
    assert!(FreezeRule::parse("freeze[0]", "layer0@0").is_err());
}
