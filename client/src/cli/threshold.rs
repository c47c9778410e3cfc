//! `--threshold NAME=VALUE`: the analysis thresholds a request may override, by the names the
//! daemon and docs/src/analysis.md give them.

use strata_proto::AnalysisThresholds;

/// An analysis threshold a request may override.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Threshold {
    MinEpochs,
    NearBestFraction,
    DivergedRatio,
    UnstableFraction,
    UnstableJump,
    OverfitValRise,
    OverfitGap,
    SlowImprovement,
    UpdateRatioHigh,
    UpdateRatioLow,
}

/// Every threshold under the name users type (the `AnalysisThresholds` field's), in the order
/// error messages list them. The one table of names: parsing and messages read it.
const THRESHOLDS: [(&str, Threshold); 10] = [
    ("min_epochs", Threshold::MinEpochs),
    ("near_best_fraction", Threshold::NearBestFraction),
    ("diverged_ratio", Threshold::DivergedRatio),
    ("unstable_fraction", Threshold::UnstableFraction),
    ("unstable_jump", Threshold::UnstableJump),
    ("overfit_val_rise", Threshold::OverfitValRise),
    ("overfit_gap", Threshold::OverfitGap),
    ("slow_improvement", Threshold::SlowImprovement),
    ("update_ratio_high", Threshold::UpdateRatioHigh),
    ("update_ratio_low", Threshold::UpdateRatioLow),
];

impl Threshold {
    fn named(name: &str) -> Option<Threshold> {
        THRESHOLDS
            .iter()
            .find(|(known, _)| *known == name)
            .map(|(_, threshold)| *threshold)
    }

    /// Sets this threshold to `value` in `thresholds`.
    fn set(self, thresholds: &mut AnalysisThresholds, value: f64) {
        // Every field, without `..`: a threshold added to the proto stops the build here until
        // it has a variant (and a name in THRESHOLDS).
        let AnalysisThresholds {
            min_epochs,
            near_best_fraction,
            diverged_ratio,
            unstable_fraction,
            unstable_jump,
            overfit_val_rise,
            overfit_gap,
            slow_improvement,
            update_ratio_high,
            update_ratio_low,
        } = thresholds;
        match self {
            // parse_threshold admits only whole numbers in u32's range here.
            Threshold::MinEpochs => *min_epochs = Some(value as u32),
            Threshold::NearBestFraction => *near_best_fraction = Some(value),
            Threshold::DivergedRatio => *diverged_ratio = Some(value),
            Threshold::UnstableFraction => *unstable_fraction = Some(value),
            Threshold::UnstableJump => *unstable_jump = Some(value),
            Threshold::OverfitValRise => *overfit_val_rise = Some(value),
            Threshold::OverfitGap => *overfit_gap = Some(value),
            Threshold::SlowImprovement => *slow_improvement = Some(value),
            Threshold::UpdateRatioHigh => *update_ratio_high = Some(value),
            Threshold::UpdateRatioLow => *update_ratio_low = Some(value),
        }
    }
}

/// The names, comma-separated, for messages that list what is allowed.
fn names() -> String {
    THRESHOLDS.map(|(name, _)| name).join(", ")
}

/// One `--threshold NAME=VALUE`.
#[derive(Clone, Debug, PartialEq)]
pub struct ThresholdOverride {
    pub threshold: Threshold,
    pub value: f64,
}

pub fn parse_threshold(text: &str) -> Result<ThresholdOverride, String> {
    let (name, value) = text
        .split_once('=')
        .ok_or_else(|| format!("expected NAME=VALUE; names: {}", names()))?;
    let name = name.trim();
    let threshold = Threshold::named(name)
        .ok_or_else(|| format!("unknown threshold '{name}'; allowed: {}", names()))?;
    let value: f64 = value
        .trim()
        .parse()
        .map_err(|_| format!("'{value}' is not a number"))?;
    if threshold == Threshold::MinEpochs
        && (value.fract() != 0.0 || value < 0.0 || value > f64::from(u32::MAX))
    {
        return Err(format!("min_epochs must be a whole number, not {value}"));
    }
    Ok(ThresholdOverride { threshold, value })
}

/// The overrides as the request's thresholds; `None` when there are none (daemon defaults).
/// The daemon checks the values' ranges.
pub fn thresholds(overrides: &[ThresholdOverride]) -> Option<AnalysisThresholds> {
    if overrides.is_empty() {
        return None;
    }
    let mut thresholds = AnalysisThresholds::default();
    for ThresholdOverride { threshold, value } in overrides {
        threshold.set(&mut thresholds, *value);
    }
    Some(thresholds)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_field_of_the_request_has_a_name() {
        let overrides: Vec<ThresholdOverride> = THRESHOLDS
            .iter()
            .map(|(name, _)| parse_threshold(&format!("{name}=7")).unwrap())
            .collect();
        let t = thresholds(&overrides).unwrap();
        let every = Some(7.0);
        assert_eq!(
            t,
            AnalysisThresholds {
                min_epochs: Some(7),
                near_best_fraction: every,
                diverged_ratio: every,
                unstable_fraction: every,
                unstable_jump: every,
                overfit_val_rise: every,
                overfit_gap: every,
                slow_improvement: every,
                update_ratio_high: every,
                update_ratio_low: every,
            }
        );
    }

    #[test]
    fn unknown_names_are_listed_in_the_error() {
        let err = parse_threshold("nope=1").unwrap_err();
        assert!(
            err.starts_with("unknown threshold 'nope'; allowed: min_epochs, near_best_fraction, "),
            "{err}"
        );
        assert!(
            err.ends_with("update_ratio_high, update_ratio_low"),
            "{err}"
        );
    }
}
