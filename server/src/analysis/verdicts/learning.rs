//! Rules 1–4 of the verdict (see the list in [`super`]): whether the run learned at all, and
//! steadily: `diverged`, `too-short`, `not-learning`, `unstable`.

use super::{Finding, BIG_JUMP_OF_PROGRESS, BOUNCE_OF_PROGRESS, NOT_LEARNING_GAIN};
use crate::{
    analysis::{
        advice::{best_metric, lower_rates_advice, names_with, rate_notes},
        curves::Curves,
        groups::GroupJudgement,
        text::{loss, percent},
        Thresholds,
    },
    domain::{Diagnosis, EpochMetrics, RunRecord, RunStatus, Verdict},
};

/// Where an untrained model's loss starts and how to name it: the run's baseline, else the first
/// epoch's validation loss.
fn starting_loss(c: &Curves) -> Option<(f64, String)> {
    if let Some(baseline) = &c.baseline {
        return Some((baseline.loss, baseline.described.clone()));
    }
    (c.first_val.is_finite() && c.first_val > 0.0).then(|| {
        (
            c.first_val,
            format!("the first epoch's validation loss, {}", loss(c.first_val)),
        )
    })
}

pub(super) fn diverged(
    run: &RunRecord,
    epochs: &[EpochMetrics],
    c: &Curves,
    groups: &[GroupJudgement],
    t: &Thresholds,
) -> Option<Finding> {
    let finding = |facts: String| {
        Some(Finding::new(
            Verdict::Diverged,
            facts,
            Some(lower_rates_advice(groups)),
        ))
    };
    if run.status == RunStatus::Diverged {
        return finding(if run.reason.is_empty() {
            "the run diverged".to_string()
        } else {
            run.reason.clone()
        });
    }
    for e in epochs {
        for (which, value) in [("training", e.train_loss), ("validation", e.val_loss)] {
            if !value.is_finite() {
                return finding(format!(
                    "the {which} loss became {} at epoch {}",
                    loss(value),
                    e.epoch
                ));
            }
        }
    }
    let (start, what) = starting_loss(c)?;
    let limit = t.diverged_ratio * start;
    let times = |value: f64| format!("{:.0}", value / start);
    if c.final_train > limit {
        return finding(format!(
            "training loss ended at {}, {} times {what}",
            loss(c.final_train),
            times(c.final_train),
        ));
    }
    if c.final_val > limit && c.final_train >= start {
        return finding(format!(
            "validation loss ended at {}, {} times {what}, and training loss got no lower ({})",
            loss(c.final_val),
            times(c.final_val),
            loss(c.final_train)
        ));
    }
    None
}

pub(super) fn too_short(run: &RunRecord, n: usize, t: &Thresholds) -> Option<Finding> {
    if n >= t.min_epochs as usize {
        return None;
    }
    let (plural, trained) = match (n, run.status.is_terminal()) {
        (1, true) => ("", "was trained"),
        (_, true) => ("s", "were trained"),
        (1, false) => ("", "trained yet"),
        (_, false) => ("s", "trained yet"),
    };
    Some(Finding::new(
        Verdict::TooShort,
        format!(
            "only {n} epoch{plural} {trained}; the analysis needs at least {}",
            t.min_epochs
        ),
        None,
    ))
}

pub(super) fn not_learning(
    epochs: &[EpochMetrics],
    c: &Curves,
    groups: &[GroupJudgement],
) -> Option<Finding> {
    let baseline = c.baseline.as_ref()?;
    let near = (1.0 - NOT_LEARNING_GAIN) * baseline.loss;
    let training_stuck =
        c.lowest_train > near || c.lowest_train > (1.0 - NOT_LEARNING_GAIN) * c.first_train;
    if !(c.best_val > near && training_stuck) {
        return None;
    }
    let metric = best_metric(epochs, c).map_or(String::new(), |m| format!(" ({m})"));
    let advice = if !names_with(groups, Diagnosis::TooHigh).is_empty() {
        format!(
            "{}: a rate that high can kill the units or throw the weights around",
            lower_rates_advice(groups)
        )
    } else if !names_with(groups, Diagnosis::TooLow).is_empty() {
        rate_notes(groups).unwrap_or_default()
    } else {
        "check that the labels belong to the features, or raise the rates".to_string()
    };
    Some(Finding::new(
        Verdict::NotLearning,
        format!(
            "the best validation loss, {}{metric}, is within {} of {}",
            loss(c.best_val),
            percent(NOT_LEARNING_GAIN),
            baseline.described
        ),
        Some(advice),
    ))
}

pub(super) fn unstable(
    epochs: &[EpochMetrics],
    c: &Curves,
    groups: &[GroupJudgement],
    t: &Thresholds,
) -> Option<Finding> {
    let steps = epochs.len().checked_sub(1).filter(|s| *s > 0)?;
    // A rise counts on the scale of the whole curve: small wiggles of a loss near zero are large
    // relative to it, and are not what anyone calls a jump. A validation bounce must also undo a
    // good part of the progress made: a settled curve's wobbles do not.
    let first_train = epochs[0].train_loss;
    let rises = |first: f64, from: f64, to: f64| to - from > t.unstable_jump * from.max(first);
    let bounce_floor = BOUNCE_OF_PROGRESS * c.progress;
    let mut jumps = 0;
    let mut biggest_rise = 0.0f64;
    // The largest relative rise: (rise, which, from, to, epoch).
    let mut largest: Option<(f64, &str, f64, f64, u32)> = None;
    for i in 1..epochs.len() {
        let (before, now) = (&epochs[i - 1], &epochs[i]);
        let train_jump = rises(first_train, before.train_loss, now.train_loss);
        let val_bounce = rises(c.first_val, before.val_loss, now.val_loss)
            && now.val_loss - before.val_loss > bounce_floor
            && epochs
                .get(i + 1)
                .is_some_and(|next| next.val_loss < now.val_loss);
        if !(train_jump || val_bounce) {
            continue;
        }
        jumps += 1;
        if val_bounce && now.val_loss > 2.0 * before.val_loss {
            biggest_rise = biggest_rise.max(now.val_loss - before.val_loss);
        }
        if train_jump {
            biggest_rise = biggest_rise.max(now.train_loss - before.train_loss);
        }
        for (jumped, which, from, to) in [
            (train_jump, "training", before.train_loss, now.train_loss),
            (val_bounce, "validation", before.val_loss, now.val_loss),
        ] {
            let rise = to / from;
            if jumped && largest.is_none_or(|l| rise > l.0) {
                largest = Some((rise, which, from, to, now.epoch));
            }
        }
    }
    let fraction = jumps as f64 / steps as f64;
    let big = c.progress > 0.0 && biggest_rise >= BIG_JUMP_OF_PROGRESS * c.progress;
    if jumps < 2 || (fraction < t.unstable_fraction && !big) {
        return None;
    }
    let (_, which, from, to, epoch) = largest?;
    Some(Finding::new(
        Verdict::Unstable,
        format!(
            "losses jumped up in {jumps} of {steps} epoch-to-epoch steps (the largest: {which} loss {} → {} at epoch {epoch})",
            loss(from),
            loss(to)
        ),
        Some(lower_rates_advice(groups)),
    ))
}
