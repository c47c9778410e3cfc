//! The thresholds of the analysis: every number that turns curves into a verdict, with its
//! default. The proto (`AnalysisThresholds`) and docs/src/analysis.md document the same defaults; a test
//! below keeps the proto's comments in step with these constants.

use crate::error::{Result, StrataError};

/// Fewer epochs than this: `too-short`.
pub const DEFAULT_MIN_EPOCHS: u32 = 3;
/// Convergence speed: epochs until validation loss first comes within this fraction of its best.
pub const DEFAULT_NEAR_BEST_FRACTION: f64 = 0.05;
/// `diverged` when the training loss ends this many times above where a fresh model starts (or
/// the validation loss does, while training is no better than that start).
pub const DEFAULT_DIVERGED_RATIO: f64 = 3.0;
/// `unstable` when at least this fraction of the epoch-to-epoch steps are jumps.
pub const DEFAULT_UNSTABLE_FRACTION: f64 = 0.2;
/// A jump: a loss rising by more than this fraction from one epoch to the next.
pub const DEFAULT_UNSTABLE_JUMP: f64 = 0.05;
/// `overfitting` when validation loss rose this fraction from its best level to its end level
/// (beyond its noise) while training loss kept falling; a training loss rising this much (with
/// validation off its best) is `unstable`.
pub const DEFAULT_OVERFIT_VAL_RISE: f64 = 0.1;
/// `overfitting` also when validation rose half of `overfit_val_rise` and the final gap is this
/// fraction of the final validation loss or more, wider than at the best.
pub const DEFAULT_OVERFIT_GAP: f64 = 0.5;
/// `slow` when validation loss improved less than this fraction from the first epoch to its best.
pub const DEFAULT_SLOW_IMPROVEMENT: f64 = 0.1;
/// Per group: a typical per-step update-to-weight ratio above this (or a blow-up) is `too-high`
/// where the curves show the harm or the group's rate stands far above the others'.
pub const DEFAULT_UPDATE_RATIO_HIGH: f64 = 3e-2;
/// Per group: a typical per-step update-to-weight ratio below this is `too-low` where the rate
/// is what holds the group back.
pub const DEFAULT_UPDATE_RATIO_LOW: f64 = 1e-4;

/// The rule of thumb the group thresholds sit around: a step moves a layer's weights by about a
/// thousandth of their norm. Also what the advice aims a group's rate at.
pub const UPDATE_RATIO_TARGET: f64 = 1e-3;
/// A blow-up: an epoch that moved a group's weights by more than this times their own norm (at a
/// per-step ratio above `update_ratio_high`). Such a group is `too-high` even when its typical
/// ratio is not, since a blown-up layer often dies and then hardly moves at all.
pub const BLOWUP_EPOCH_RATIO: f64 = 1.0;
/// A validation rise after the best epoch counts as overfitting only when it lasts this many
/// epochs; one bad epoch is noise.
pub const OVERFIT_MIN_EPOCHS_AFTER_BEST: usize = 2;

/// The thresholds one analysis runs with.
#[derive(Clone, Debug, PartialEq)]
pub struct Thresholds {
    pub min_epochs: u32,
    pub near_best_fraction: f64,
    pub diverged_ratio: f64,
    pub unstable_fraction: f64,
    pub unstable_jump: f64,
    pub overfit_val_rise: f64,
    pub overfit_gap: f64,
    pub slow_improvement: f64,
    pub update_ratio_high: f64,
    pub update_ratio_low: f64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            min_epochs: DEFAULT_MIN_EPOCHS,
            near_best_fraction: DEFAULT_NEAR_BEST_FRACTION,
            diverged_ratio: DEFAULT_DIVERGED_RATIO,
            unstable_fraction: DEFAULT_UNSTABLE_FRACTION,
            unstable_jump: DEFAULT_UNSTABLE_JUMP,
            overfit_val_rise: DEFAULT_OVERFIT_VAL_RISE,
            overfit_gap: DEFAULT_OVERFIT_GAP,
            slow_improvement: DEFAULT_SLOW_IMPROVEMENT,
            update_ratio_high: DEFAULT_UPDATE_RATIO_HIGH,
            update_ratio_low: DEFAULT_UPDATE_RATIO_LOW,
        }
    }
}

/// What an override of a real-valued threshold may be: finite, within `low..=high`.
struct Bounds {
    field: &'static str,
    default: f64,
    low: f64,
    high: f64,
}

impl Bounds {
    const fn new(field: &'static str, default: f64, low: f64, high: f64) -> Self {
        Bounds {
            field,
            default,
            low,
            high,
        }
    }

    /// The override, checked, else InvalidArgument naming the field; the default when unset.
    fn check(&self, value: Option<f64>) -> Result<f64> {
        let Bounds {
            field,
            default,
            low,
            high,
        } = *self;
        let Some(value) = value else {
            return Ok(default);
        };
        if !value.is_finite() || value < low || value > high {
            return Err(StrataError::invalid(
                format!("thresholds.{field}"),
                format!("{value} is not allowed; allowed: {low} to {high}"),
            ));
        }
        Ok(value)
    }
}

// The range an override of each real-valued threshold must lie in.
const NEAR_BEST_FRACTION: Bounds =
    Bounds::new("near_best_fraction", DEFAULT_NEAR_BEST_FRACTION, 0.0, 1.0);
const DIVERGED_RATIO: Bounds = Bounds::new("diverged_ratio", DEFAULT_DIVERGED_RATIO, 1.0, 1e12);
const UNSTABLE_FRACTION: Bounds =
    Bounds::new("unstable_fraction", DEFAULT_UNSTABLE_FRACTION, 0.0, 1.0);
const UNSTABLE_JUMP: Bounds = Bounds::new("unstable_jump", DEFAULT_UNSTABLE_JUMP, 0.0, 1e6);
const OVERFIT_VAL_RISE: Bounds =
    Bounds::new("overfit_val_rise", DEFAULT_OVERFIT_VAL_RISE, 0.0, 1e6);
const OVERFIT_GAP: Bounds = Bounds::new("overfit_gap", DEFAULT_OVERFIT_GAP, 0.0, 1e6);
const SLOW_IMPROVEMENT: Bounds =
    Bounds::new("slow_improvement", DEFAULT_SLOW_IMPROVEMENT, 0.0, 1.0);
const UPDATE_RATIO_HIGH: Bounds =
    Bounds::new("update_ratio_high", DEFAULT_UPDATE_RATIO_HIGH, 0.0, 1e6);
const UPDATE_RATIO_LOW: Bounds =
    Bounds::new("update_ratio_low", DEFAULT_UPDATE_RATIO_LOW, 0.0, 1e6);

/// `min_epochs`, checked: the analysis compares epochs with each other, so it needs two at least.
fn check_min_epochs(min_epochs: Option<u32>) -> Result<u32> {
    match min_epochs {
        None => Ok(DEFAULT_MIN_EPOCHS),
        Some(n) if (2..=1_000_000).contains(&n) => Ok(n),
        Some(n) => Err(StrataError::invalid(
            "thresholds.min_epochs",
            format!("{n} is not allowed; allowed: 2 to 1000000"),
        )),
    }
}

/// Thresholds a request asks for; `None` takes the default.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ThresholdOverrides {
    pub min_epochs: Option<u32>,
    pub near_best_fraction: Option<f64>,
    pub diverged_ratio: Option<f64>,
    pub unstable_fraction: Option<f64>,
    pub unstable_jump: Option<f64>,
    pub overfit_val_rise: Option<f64>,
    pub overfit_gap: Option<f64>,
    pub slow_improvement: Option<f64>,
    pub update_ratio_high: Option<f64>,
    pub update_ratio_low: Option<f64>,
}

impl TryFrom<ThresholdOverrides> for Thresholds {
    type Error = StrataError;

    /// Unset fields take the defaults; set ones are checked against their ranges.
    fn try_from(overrides: ThresholdOverrides) -> Result<Self> {
        let ThresholdOverrides {
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
        } = overrides;
        let thresholds = Thresholds {
            min_epochs: check_min_epochs(min_epochs)?,
            near_best_fraction: NEAR_BEST_FRACTION.check(near_best_fraction)?,
            diverged_ratio: DIVERGED_RATIO.check(diverged_ratio)?,
            unstable_fraction: UNSTABLE_FRACTION.check(unstable_fraction)?,
            unstable_jump: UNSTABLE_JUMP.check(unstable_jump)?,
            overfit_val_rise: OVERFIT_VAL_RISE.check(overfit_val_rise)?,
            overfit_gap: OVERFIT_GAP.check(overfit_gap)?,
            slow_improvement: SLOW_IMPROVEMENT.check(slow_improvement)?,
            update_ratio_high: UPDATE_RATIO_HIGH.check(update_ratio_high)?,
            update_ratio_low: UPDATE_RATIO_LOW.check(update_ratio_low)?,
        };
        if thresholds.update_ratio_low >= thresholds.update_ratio_high {
            return Err(StrataError::invalid(
                "thresholds.update_ratio_low",
                format!(
                    "{} must be below update_ratio_high ({})",
                    thresholds.update_ratio_low, thresholds.update_ratio_high
                ),
            ));
        }
        Ok(thresholds)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unset_fields_take_the_defaults_and_set_ones_win() {
        assert_eq!(
            Thresholds::try_from(ThresholdOverrides::default()).unwrap(),
            Thresholds::default()
        );
        let t = Thresholds::try_from(ThresholdOverrides {
            min_epochs: Some(5),
            overfit_gap: Some(0.25),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(t.min_epochs, 5);
        assert_eq!(t.overfit_gap, 0.25);
        assert_eq!(t.diverged_ratio, DEFAULT_DIVERGED_RATIO);
    }

    #[test]
    fn bad_overrides_name_the_field() {
        let cases = [
            ThresholdOverrides {
                min_epochs: Some(1),
                ..Default::default()
            },
            ThresholdOverrides {
                unstable_fraction: Some(f64::NAN),
                ..Default::default()
            },
            ThresholdOverrides {
                diverged_ratio: Some(0.5),
                ..Default::default()
            },
            ThresholdOverrides {
                update_ratio_low: Some(0.5),
                ..Default::default()
            },
        ];
        let fields = [
            "thresholds.min_epochs",
            "thresholds.unstable_fraction",
            "thresholds.diverged_ratio",
            "thresholds.update_ratio_low",
        ];
        for (case, field) in cases.into_iter().zip(fields) {
            let err = Thresholds::try_from(case).unwrap_err();
            assert!(err.to_string().starts_with(field), "{err}");
        }
    }

    /// The proto's comments are where clients read the defaults: they must match the constants.
    #[test]
    fn the_proto_documents_these_defaults() {
        let proto = include_str!("../../../proto/proto/strata.proto");
        let message = proto
            .split("message AnalysisThresholds {")
            .nth(1)
            .and_then(|rest| rest.split("\n}").next())
            .expect("AnalysisThresholds in strata.proto");
        let defaults = Thresholds::default();
        let expected: [(&str, f64); 10] = [
            ("min_epochs", f64::from(defaults.min_epochs)),
            ("near_best_fraction", defaults.near_best_fraction),
            ("diverged_ratio", defaults.diverged_ratio),
            ("unstable_fraction", defaults.unstable_fraction),
            ("unstable_jump", defaults.unstable_jump),
            ("overfit_val_rise", defaults.overfit_val_rise),
            ("overfit_gap", defaults.overfit_gap),
            ("slow_improvement", defaults.slow_improvement),
            ("update_ratio_high", defaults.update_ratio_high),
            ("update_ratio_low", defaults.update_ratio_low),
        ];
        // Each field's comment block (the lines above `optional ... name = N;`) says `(default X)`.
        let mut comment = String::new();
        let mut documented = Vec::new();
        for line in message.lines().map(str::trim) {
            if let Some(text) = line.strip_prefix("//") {
                comment.push_str(text);
                comment.push(' ');
            } else if let Some(decl) = line.strip_prefix("optional ") {
                let name = decl.split_whitespace().nth(1).unwrap_or("").to_string();
                let default = comment
                    .split("(default ")
                    .nth(1)
                    .and_then(|rest| rest.split([')', ',', ';']).next())
                    .and_then(|value| value.trim().parse::<f64>().ok());
                documented.push((name, default));
                comment.clear();
            }
        }
        for (name, value) in expected {
            let found = documented
                .iter()
                .find(|(n, _)| n == name)
                .unwrap_or_else(|| panic!("{name} is not in AnalysisThresholds"));
            assert_eq!(found.1, Some(value), "the proto's default for {name}");
        }
    }
}
