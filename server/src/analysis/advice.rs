//! The advice a verdict gives, in words: which groups' rates to raise or lower, and the best
//! validation metric a sentence quotes.

use super::{
    curves::Curves,
    groups::GroupJudgement,
    text::{percent, ratio},
};
use crate::domain::{Diagnosis, EpochMetrics};

/// `a`, `a and b`, `a, b and c`.
pub(super) fn join_names(names: &[&str]) -> String {
    match names {
        [] => String::new(),
        [one] => one.to_string(),
        [rest @ .., last] => format!("{} and {last}", rest.join(", ")),
    }
}

pub(super) fn names_with(groups: &[GroupJudgement], diagnosis: Diagnosis) -> Vec<&str> {
    groups
        .iter()
        .filter(|g| g.diagnosis == diagnosis)
        .map(|g| g.name.as_str())
        .collect()
}

/// What to lower when losses blow up or bounce: the groups judged too high, else the group whose
/// weights moved most.
pub(super) fn lower_rates_advice(groups: &[GroupJudgement]) -> String {
    let too_high = names_with(groups, Diagnosis::TooHigh);
    if !too_high.is_empty() {
        return format!("lower the rate of {} (too high)", join_names(&too_high));
    }
    let largest = groups
        .iter()
        .filter(|g| g.diagnosis != Diagnosis::Frozen)
        .max_by(|a, b| a.peak.total_cmp(&b.peak));
    match largest {
        Some(g) => format!(
            "lower the rates (the largest updates are {}'s, {} per step)",
            g.name,
            ratio(g.peak)
        ),
        None => "lower the learning rates".to_string(),
    }
}

/// Rates that look wrong: `raise the rate of layer0 (too low)`.
pub(super) fn rate_notes(groups: &[GroupJudgement]) -> Option<String> {
    let too_low = names_with(groups, Diagnosis::TooLow);
    let too_high = names_with(groups, Diagnosis::TooHigh);
    let mut notes = Vec::new();
    if !too_low.is_empty() {
        notes.push(format!(
            "raise the rate of {} (too low)",
            join_names(&too_low)
        ));
    }
    if !too_high.is_empty() {
        notes.push(format!(
            "lower the rate of {} (too high)",
            join_names(&too_high)
        ));
    }
    (!notes.is_empty()).then(|| notes.join(" and "))
}

pub(super) fn with_notes(advice: String, groups: &[GroupJudgement]) -> String {
    match rate_notes(groups) {
        Some(notes) => format!("{advice}; {notes}"),
        None => advice,
    }
}

/// The best validation metric, as a sentence part: `best accuracy 11.2% (chance 10%)`.
pub(super) fn best_metric(epochs: &[EpochMetrics], c: &Curves) -> Option<String> {
    let chance = c.baseline.as_ref()?.chance;
    let best = epochs
        .iter()
        .map(|e| e.val_metric)
        .filter(|m| m.is_finite())
        .fold(f64::NEG_INFINITY, f64::max);
    if !best.is_finite() {
        return None;
    }
    Some(match chance {
        Some(chance) => format!(
            "best accuracy {}, chance {}",
            percent(best),
            percent(chance)
        ),
        None => format!("best R² {best:.3}"),
    })
}
