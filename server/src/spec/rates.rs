//! The layer-rate spec and its resolution into one learning rate per parameter.
//!
//! Precedence, lowest first:
//! 1. the base: `lr` for every group, or `lr_decay` (the last group gets `lr`, each group below
//!    the one above × decay), or `lr_slice LO:HI` (geometric from the first group to the last);
//! 2. `layer_lr` rules in the order given, each over parameter or group names: `=RATE` sets the
//!    rate, `=xFACTOR` multiplies the rate the parameter would otherwise get; later rules win;
//! 3. `freeze` rules: frozen parameters get no gradient and no update, for good or until an epoch.

use super::glob::Glob;
pub use crate::domain::FrozenUntil;
use crate::error::{Result, StrataError};

/// A parameter as the model names it.
#[derive(Clone, Debug, PartialEq)]
pub struct ParamInfo {
    pub name: String,
    /// The layer group: the name's prefix before the last `.`.
    pub group: String,
    pub shape: Vec<i64>,
}

impl ParamInfo {
    pub fn new(name: &str, shape: Vec<i64>) -> Self {
        let group = name
            .rsplit_once('.')
            .map_or(name, |(group, _)| group)
            .to_string();
        ParamInfo {
            name: name.to_string(),
            group,
            shape,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum RateChange {
    Set(f64),
    Scale(f64),
}

#[derive(Clone, Debug, PartialEq)]
pub struct LayerRateRule {
    pub pattern: Glob,
    pub change: RateChange,
}

/// How long a parameter stays frozen.
#[derive(Clone, Debug, PartialEq)]
pub struct FreezeRule {
    pub pattern: Glob,
    pub until: FrozenUntil,
}

#[derive(Clone, Debug, PartialEq)]
pub enum BaseRates {
    Uniform(f64),
    /// The last group gets `lr`, each one below the one above times `decay`.
    Decay {
        lr: f64,
        decay: f64,
    },
    /// Geometric from `first` (the first group) to `last` (the last group).
    Slice {
        first: f64,
        last: f64,
    },
}

#[derive(Clone, Debug, PartialEq)]
pub struct RateSpec {
    pub base: BaseRates,
    pub layer_lr: Vec<LayerRateRule>,
    pub freeze: Vec<FreezeRule>,
}

/// One parameter's resolved rate.
#[derive(Clone, Debug, PartialEq)]
pub struct ResolvedParam {
    pub info: ParamInfo,
    pub lr: f64,
    pub frozen_until: FrozenUntil,
}

pub fn parse_positive_rate(field: &str, text: &str) -> Result<f64> {
    let quoted = super::shown(text);
    match text.trim().parse::<f64>() {
        Ok(rate) if rate.is_finite() && rate > 0.0 => Ok(rate),
        Ok(_) => Err(StrataError::invalid(
            field,
            format!(
                "{quoted} must be a positive finite number (use freeze to stop a layer learning)"
            ),
        )),
        Err(_) => Err(StrataError::invalid(
            field,
            format!("{quoted} is not a number"),
        )),
    }
}

impl LayerRateRule {
    /// Parses `GLOB=RATE` or `GLOB=xFACTOR`.
    pub fn parse(field: &str, text: &str) -> Result<Self> {
        super::check_length(field, text, MAX_RULE_CHARS)?;
        let quoted = super::shown(text);
        let Some((pattern, value)) = text.split_once('=') else {
            return Err(StrataError::invalid(
                field,
                format!("{quoted} must be GLOB=RATE or GLOB=xFACTOR, e.g. 'layer0=1e-4' or 'layer*=x0.1'"),
            ));
        };
        let pattern = Glob::parse(pattern.trim()).map_err(|e| StrataError::invalid(field, e))?;
        let value = value.trim();
        let change = match value.strip_prefix(['x', '*']) {
            Some(factor) => RateChange::Scale(parse_positive_rate(field, factor)?),
            None => RateChange::Set(parse_positive_rate(field, value)?),
        };
        Ok(LayerRateRule { pattern, change })
    }
}

impl FreezeRule {
    /// Parses `GLOB` or `GLOB@EPOCH`.
    pub fn parse(field: &str, text: &str) -> Result<Self> {
        super::check_length(field, text, MAX_RULE_CHARS)?;
        let quoted = super::shown(text);
        let (pattern, until) = match text.split_once('@') {
            Some((pattern, epoch)) => {
                let epoch = epoch.trim().parse::<u32>().ok().filter(|&e| e >= 2).ok_or_else(|| {
                    StrataError::invalid(
                        field,
                        format!("{quoted}: the epoch after '@' must be a whole number ≥ 2 (epochs count from 1)"),
                    )
                })?;
                (pattern, FrozenUntil::Epoch(epoch))
            }
            None => (text, FrozenUntil::Forever),
        };
        let pattern = Glob::parse(pattern.trim()).map_err(|e| StrataError::invalid(field, e))?;
        Ok(FreezeRule { pattern, until })
    }
}

/// Longest rule accepted: a glob (at most [`super::glob::MAX_GLOB_TOKENS`] characters) and its
/// value.
const MAX_RULE_CHARS: usize = 256;

fn matches(pattern: &Glob, param: &ParamInfo) -> bool {
    pattern.matches(&param.name) || pattern.matches(&param.group)
}

/// The model's groups in order of first appearance.
pub fn group_names(params: &[ParamInfo]) -> Vec<String> {
    let mut groups: Vec<String> = Vec::new();
    for p in params {
        if groups.last() != Some(&p.group) && !groups.contains(&p.group) {
            groups.push(p.group.clone());
        }
    }
    groups
}

/// Gives every parameter exactly one rate and frozen state, or says which rule is wrong.
pub fn resolve_layer_rates(params: &[ParamInfo], spec: &RateSpec) -> Result<Vec<ResolvedParam>> {
    let groups = group_names(params);
    let last = groups.len().saturating_sub(1);
    let base_for_group = |index: usize| -> f64 {
        match spec.base {
            BaseRates::Uniform(lr) => lr,
            BaseRates::Decay { lr, decay } => lr * decay.powi((last - index) as i32),
            BaseRates::Slice { first, last: hi } if last > 0 => {
                first * (hi / first).powf(index as f64 / last as f64)
            }
            BaseRates::Slice { last: hi, .. } => hi,
        }
    };
    let mut resolved: Vec<ResolvedParam> = params
        .iter()
        .map(|info| {
            let index = groups.iter().position(|g| *g == info.group).unwrap_or(last);
            ResolvedParam {
                info: info.clone(),
                lr: base_for_group(index),
                frozen_until: FrozenUntil::Never,
            }
        })
        .collect();

    let known = || format!("this model has groups {}", groups.join(", "));
    for (i, rule) in spec.layer_lr.iter().enumerate() {
        let mut hit = false;
        for p in resolved
            .iter_mut()
            .filter(|p| matches(&rule.pattern, &p.info))
        {
            hit = true;
            p.lr = match rule.change {
                RateChange::Set(rate) => rate,
                RateChange::Scale(factor) => p.lr * factor,
            };
        }
        if !hit {
            return Err(StrataError::invalid(
                format!("layer_lr[{i}]"),
                format!(
                    "no parameter or group matches '{}'; {}",
                    rule.pattern.as_str(),
                    known()
                ),
            ));
        }
    }
    for (i, rule) in spec.freeze.iter().enumerate() {
        let mut hit = false;
        for p in resolved
            .iter_mut()
            .filter(|p| matches(&rule.pattern, &p.info))
        {
            hit = true;
            p.frozen_until = rule.until;
        }
        if !hit {
            return Err(StrataError::invalid(
                format!("freeze[{i}]"),
                format!(
                    "no parameter or group matches '{}'; {}",
                    rule.pattern.as_str(),
                    known()
                ),
            ));
        }
    }
    if let Some(p) = resolved.iter().find(|p| !p.lr.is_finite() || p.lr <= 0.0) {
        return Err(StrataError::invalid(
            "layer_lr",
            format!(
                "the rules give {} a rate of {}, which is not a positive finite number",
                p.info.name, p.lr
            ),
        ));
    }
    if !resolved.is_empty()
        && resolved
            .iter()
            .all(|p| p.frozen_until == FrozenUntil::Forever)
    {
        return Err(StrataError::invalid(
            "freeze",
            "every parameter would be frozen for good, so nothing would train; unfreeze at least one group (or use GLOB@EPOCH)",
        ));
    }
    Ok(resolved)
}

#[cfg(test)]
mod tests {
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
            msg.contains("layer_lr[0]")
                && msg.contains("nope")
                && msg.contains("layer0, layer1, head"),
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
}
