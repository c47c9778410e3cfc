//! The advice a verdict gives, in words: which groups' rates to raise or lower, and the best
//! validation metric a sentence quotes.

use super::{
    curves::Curves,
    groups::GroupJudgement,
    text::{percent, ratio},
};
use crate::domain::{Diagnosis, EpochMetrics, RunOrigin, RunRecord};

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

/// What to change when a run is still falling far from done: the groups whose rate holds them
/// back, else training longer (never "raise the rates" beside a group judged too high).
pub(super) fn slow_advice(groups: &[GroupJudgement]) -> String {
    let too_low = names_with(groups, Diagnosis::TooLow);
    if !too_low.is_empty() {
        return rate_notes(groups).unwrap_or_default();
    }
    match rate_notes(groups) {
        Some(notes) => format!("train longer; {notes}"),
        None => "raise the rates or train longer".to_string(),
    }
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

/// What a run's record says of its rate schedule, lower-cased: a trained run's `--schedule`
/// (`warmup:100+cosine`); for an external run, each logged hyperparameter that names a schedule
/// (`scheduler=cosineannealinglr`, `warmup_steps=500`): a key with `sched`, `warm`, `anneal` or
/// `cycle` in it, or a value naming a known schedule.
fn schedule_words(run: &RunRecord) -> Vec<String> {
    match &run.origin {
        RunOrigin::Trained => vec![run.config.schedule.to_lowercase()],
        RunOrigin::External {
            hyperparameters, ..
        } => hyperparameters
            .iter()
            .map(|(k, v)| (k.to_lowercase(), v.to_lowercase()))
            .filter(|(k, v)| {
                ["sched", "warm", "anneal", "cycle"]
                    .iter()
                    .any(|w| k.contains(w))
                    || ["cosine", "onecycle", "one_cycle", "warmup", "linear_decay"]
                        .iter()
                        .any(|w| v.contains(w))
            })
            .map(|(k, v)| format!("{k}={v}"))
            .collect(),
    }
}

/// A value that turns a setting off.
fn is_off(value: &str) -> bool {
    ["0", "0.0", "none", "false", "off", "no", ""].contains(&value.trim())
}

/// Whether the run's rate already warms up (a warm-up, one-cycle or slanted triangular
/// schedule, or an external run's `warm…` hyperparameter that is not off).
pub(super) fn warms_up(run: &RunRecord) -> bool {
    schedule_words(run).iter().any(|words| {
        let (key, value) = words.split_once('=').unwrap_or(("", words));
        ["onecycle", "one_cycle", "one-cycle", "stlr", "warmup:"]
            .iter()
            .any(|w| words.contains(w))
            || (key.contains("warm") && !is_off(value))
            || value.contains("warmup")
    })
}

/// Whether the run's rate already decays over the run (cosine, step, one-cycle, slanted
/// triangular; for an external run, a logged schedule that names one of those or a decay).
pub(super) fn decays(run: &RunRecord) -> bool {
    const DECAYING: [&str; 11] = [
        "cosine",
        "onecycle",
        "one_cycle",
        "one-cycle",
        "stlr",
        "step",
        "exponential",
        "linear",
        "poly",
        "plateau",
        "decay",
    ];
    schedule_words(run).iter().any(|words| {
        // A warm-up's own settings (`warmup_steps=500`) say nothing of a decay.
        let (key, value) = words.split_once('=').unwrap_or(("", words));
        let judged = if key.contains("warm") { "" } else { value };
        let named = if run.is_external() { judged } else { words };
        DECAYING.iter().any(|w| named.contains(w)) && !is_off(value)
    })
}

/// What to do about bouncing losses besides lowering the rates, in the run's terms: decay the
/// rate (when it does not already), else warm it up (when it does not already).
pub(super) fn steadier_schedule(run: &RunRecord) -> Option<String> {
    let external = run.is_external();
    if !decays(run) {
        Some(if external {
            "or decay the rate over the run (e.g. a cosine schedule)".into()
        } else {
            "or decay the rate over the run (--schedule cosine)".into()
        })
    } else if !warms_up(run) {
        Some(if external {
            "or warm the rate up over the first steps".into()
        } else {
            "or warm the rate up (--schedule warmup:STEPS+…)".into()
        })
    } else {
        None
    }
}
