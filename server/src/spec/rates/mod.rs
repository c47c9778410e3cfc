//! The layer-rate spec and its resolution into one learning rate per parameter.
//!
//! Precedence, lowest first:
//! 1. the base: `lr` for every group, or `lr_decay` (the last group gets `lr`, each group below
//!    the one above × decay), or `lr_slice LO:HI` (geometric from the first group to the last);
//! 2. `layer_lr` rules in the order given, each over parameter or group names: `=RATE` sets the
//!    rate, `=xFACTOR` multiplies the rate the parameter would otherwise get; later rules win;
//! 3. `freeze` rules: frozen parameters get no gradient and no update, for good or until an epoch.

use super::{glob::Glob, limits::MAX_RULES, shown_number, DEFAULT_LR};
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

/// The rate fields of a run's config, as sent.
pub struct RateRequest<'a> {
    /// `None`: [`DEFAULT_LR`].
    pub lr: Option<f64>,
    pub lr_decay: Option<f64>,
    pub lr_slice: &'a str,
    pub layer_lr: &'a [String],
    pub freeze: &'a [String],
}

impl RateSpec {
    /// Parses the base rates (`lr`, with `lr_decay` or `lr_slice`), then the `layer_lr` and
    /// `freeze` rules.
    pub fn parse(request: &RateRequest<'_>) -> Result<Self> {
        let base = parse_base_rates(request)?;
        for (field, rules) in [("layer_lr", request.layer_lr), ("freeze", request.freeze)] {
            if rules.len() > MAX_RULES {
                return Err(StrataError::invalid(
                    field,
                    format!("{} rules; at most {MAX_RULES} are allowed", rules.len()),
                ));
            }
        }
        Ok(RateSpec {
            base,
            layer_lr: parse_rules("layer_lr", request.layer_lr, LayerRateRule::parse)?,
            freeze: parse_rules("freeze", request.freeze, FreezeRule::parse)?,
        })
    }
}

fn parse_base_rates(request: &RateRequest<'_>) -> Result<BaseRates> {
    let lr = request.lr.unwrap_or(DEFAULT_LR);
    if !lr.is_finite() || lr <= 0.0 {
        return Err(StrataError::invalid(
            "lr",
            format!(
                "{} must be a positive finite number, e.g. 1e-3",
                shown_number(lr)
            ),
        ));
    }
    match (request.lr_decay, request.lr_slice.trim()) {
        (Some(_), slice) if !slice.is_empty() => Err(StrataError::invalid(
            "lr_decay",
            "lr_decay and lr_slice both set the base rates; choose one",
        )),
        (Some(decay), _) => parse_decay(lr, decay),
        (None, "") => Ok(BaseRates::Uniform(lr)),
        (None, slice) => parse_slice(slice, request.lr.is_some()),
    }
}

fn parse_decay(lr: f64, decay: f64) -> Result<BaseRates> {
    if !decay.is_finite() || decay <= 0.0 || decay > 1.0 {
        return Err(StrataError::invalid(
            "lr_decay",
            format!(
                "{} is not allowed; allowed: a factor in (0, 1], e.g. 0.65",
                shown_number(decay)
            ),
        ));
    }
    Ok(BaseRates::Decay { lr, decay })
}

/// `LO:HI`, which sets every group's base rate (so `lr` may not be given too).
fn parse_slice(slice: &str, lr_given: bool) -> Result<BaseRates> {
    if lr_given {
        return Err(StrataError::invalid(
            "lr_slice",
            "lr_slice sets every group's base rate, so it cannot be combined with lr; drop one",
        ));
    }
    let Some((lo, hi)) = slice.split_once(':') else {
        return Err(StrataError::invalid(
            "lr_slice",
            format!("'{slice}' must be LO:HI, e.g. 1e-5:1e-3"),
        ));
    };
    let (first, last) = (
        parse_positive_rate("lr_slice", lo)?,
        parse_positive_rate("lr_slice", hi)?,
    );
    if first > last {
        return Err(StrataError::invalid(
            "lr_slice",
            format!("'{slice}': LO must not be above HI (rates rise towards the head)"),
        ));
    }
    Ok(BaseRates::Slice { first, last })
}

/// Each of `rules` parsed, its errors naming it as `field[i]`.
fn parse_rules<T>(
    field: &str,
    rules: &[String],
    parse: impl Fn(&str, &str) -> Result<T>,
) -> Result<Vec<T>> {
    rules
        .iter()
        .enumerate()
        .map(|(i, rule)| parse(&format!("{field}[{i}]"), rule))
        .collect()
}

/// One parameter's resolved rate.
#[derive(Clone, Debug, PartialEq)]
pub struct ResolvedParam {
    pub info: ParamInfo,
    pub lr: f64,
    pub frozen_until: FrozenUntil,
}

fn parse_positive_rate(field: &str, text: &str) -> Result<f64> {
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
    let mut resolved = at_base_rates(params, &groups, &spec.base);
    for (i, rule) in spec.layer_lr.iter().enumerate() {
        let field = format!("layer_lr[{i}]");
        for p in matched(&mut resolved, &rule.pattern, field, &groups)? {
            p.lr = match rule.change {
                RateChange::Set(rate) => rate,
                RateChange::Scale(factor) => p.lr * factor,
            };
        }
    }
    for (i, rule) in spec.freeze.iter().enumerate() {
        for p in matched(
            &mut resolved,
            &rule.pattern,
            format!("freeze[{i}]"),
            &groups,
        )? {
            p.frozen_until = rule.until;
        }
    }
    check_resolved(&resolved)?;
    Ok(resolved)
}

/// Every parameter at its group's base rate, not frozen.
fn at_base_rates(params: &[ParamInfo], groups: &[String], base: &BaseRates) -> Vec<ResolvedParam> {
    let last = groups.len().saturating_sub(1);
    params
        .iter()
        .map(|info| {
            let index = groups.iter().position(|g| *g == info.group).unwrap_or(last);
            ResolvedParam {
                info: info.clone(),
                lr: base.group_rate(index, last),
                frozen_until: FrozenUntil::Never,
            }
        })
        .collect()
}

impl BaseRates {
    /// The base rate of group `index`, of groups `0..=last`.
    fn group_rate(&self, index: usize, last: usize) -> f64 {
        match *self {
            BaseRates::Uniform(lr) => lr,
            BaseRates::Decay { lr, decay } => lr * decay.powi((last - index) as i32),
            BaseRates::Slice { first, last: hi } if last > 0 => {
                first * (hi / first).powf(index as f64 / last as f64)
            }
            BaseRates::Slice { last: hi, .. } => hi,
        }
    }
}

/// The parameters a rule's `pattern` matches (by name or by group), or an error naming the rule
/// (`field`) and the model's groups when it matches none.
fn matched<'a>(
    resolved: &'a mut [ResolvedParam],
    pattern: &Glob,
    field: String,
    groups: &[String],
) -> Result<Vec<&'a mut ResolvedParam>> {
    let hits: Vec<&mut ResolvedParam> = resolved
        .iter_mut()
        .filter(|p| matches(pattern, &p.info))
        .collect();
    if hits.is_empty() {
        return Err(StrataError::invalid(
            field,
            format!(
                "no parameter or group matches '{}'; this model has groups {}",
                pattern.as_str(),
                groups.join(", ")
            ),
        ));
    }
    Ok(hits)
}

/// Refuses a table the rules made unusable: a rate that is not a positive finite number, or
/// every parameter frozen for good.
fn check_resolved(resolved: &[ResolvedParam]) -> Result<()> {
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
    Ok(())
}

#[cfg(test)]
mod tests;
