//! From a run's curves (and its groups' diagnoses) to one verdict, with the sentence that says
//! why and what to change. The verdict is the first of these that holds:
//!
//! 1. `diverged` — the run ended diverged, a loss is non-finite, or the training loss ended
//!    `diverged_ratio` times above where an untrained model starts (or the validation loss did,
//!    while training got no better than that start);
//! 2. `too-short` — fewer than `min_epochs` epochs;
//! 3. `not-learning` — the best validation loss stayed within [`NOT_LEARNING_GAIN`] of the loss of
//!    a model that learned nothing (ln C for C classes, the targets' variance for a regression),
//!    as recorded in the run's facts, and so did training: its lowest loss within that of the
//!    baseline or of its first epoch (a model that fits its training data but not the validation
//!    data is learning, and overfitting);
//! 4. `unstable` — at least two jumps, in `unstable_fraction` of the epoch-to-epoch steps or more
//!    (or one of them undoing [`BIG_JUMP_OF_PROGRESS`] of the progress, in training, or in a
//!    validation spike to more than twice its level): a training loss rising
//!    by more than `unstable_jump` of the larger of its previous and first value, or a validation
//!    loss rising by that much *and* by [`BOUNCE_OF_PROGRESS`] of the progress the run has made,
//!    then falling right after (a converged curve's wobbles are small against its progress; a
//!    bounce that undoes a fifth of it is not);
//! 5. `overfitting` — validation loss has stopped improving (its best is at least
//!    `OVERFIT_MIN_EPOCHS_AFTER_BEST` epochs before the end) while training loss kept falling
//!    (averaging [`TRAIN_FALL_AFTER_BEST`] below its loss at the best epoch), and
//!    either it rose `overfit_val_rise` above its best — the last epoch above the best epoch, and
//!    the mean of the last three above the best 3-epoch average (a noisy curve's luckiest epoch is
//!    not its level), by [`OVERFIT_RISE_OF_PROGRESS`] of the progress at least (a loss near zero
//!    does not overfit by a rounding error) — or the gap is `overfit_gap` of the validation loss
//!    and wider than at the best epoch; in either case with validation above training at the end
//!    (a noisy plateau with training above validation is not overfitting);
//! 6. `slow` — still improving at the end (another third of the run at the last third's pace
//!    would add [`STILL_IMPROVING_GAIN`] of the progress, or lower the loss by
//!    [`STILL_IMPROVING_RELATIVE_GAIN`] of itself) but far from done: the best validation loss is
//!    still above [`SLOW_LEARNED`] of the baseline, or it is falling at least as fast per epoch
//!    at the end as on average and that pace would add [`SLOW_RECENT_GAIN`] of the progress (it
//!    has only just got going); without a baseline, improved less than
//!    `slow_improvement` from the first epoch with a group too low or the loss still creeping;
//! 7. `plateaued` — settled (within [`super::curves::SETTLED_FRACTION_OF_PROGRESS`] of the progress of its best)
//!    at least [`PLATEAU_MIN_EPOCHS`] epochs (and a quarter of the run) before the end, and no
//!    longer improving: the rest of the run was spent on a flat curve;
//! 8. `good` — none of the above: both curves came down and validation is still near its best.

use super::{
    curves::{last_third, Curves},
    groups::GroupJudgement,
    text::{gap, loss, percent, ratio},
    Thresholds, OVERFIT_MIN_EPOCHS_AFTER_BEST,
};
use crate::domain::{Diagnosis, EpochMetrics, RunRecord, RunStatus, Verdict};

/// `not-learning` while the best validation loss is above (1 − this) × the baseline.
pub const NOT_LEARNING_GAIN: f64 = 0.1;
/// `slow` (while still improving) as long as the best validation loss is above this fraction of
/// the baseline.
pub const SLOW_LEARNED: f64 = 0.5;
pub use super::curves::{STILL_IMPROVING_GAIN, STILL_IMPROVING_RELATIVE_GAIN};
/// `slow` also when validation is falling at least as fast per epoch at the end as on average
/// (it has only just got going) and the pace at the end would, in another third of the run, add
/// this fraction of the progress made so far.
pub const SLOW_RECENT_GAIN: f64 = 0.25;
/// Training "kept falling" after the best epoch when it averaged this fraction below its loss
/// there.
pub const TRAIN_FALL_AFTER_BEST: f64 = 0.1;
/// A run with two jumps or more is `unstable` whatever their share of the steps when one of them
/// undid this fraction of the progress made.
pub const BIG_JUMP_OF_PROGRESS: f64 = 0.5;
/// A validation bounce must undo at least this fraction of the progress made to count as a jump.
pub const BOUNCE_OF_PROGRESS: f64 = 0.2;
/// A rise of validation loss from its best counts as overfitting only when it is also this
/// fraction of the progress made (besides `overfit_val_rise` of the best).
pub const OVERFIT_RISE_OF_PROGRESS: f64 = 0.01;
/// `plateaued` needs the curve settled at least this many epochs before the end (and a quarter of
/// the run).
pub const PLATEAU_MIN_EPOCHS: usize = 3;

/// What the verdict rests on, before it becomes one sentence.
pub(super) struct Finding {
    pub verdict: Verdict,
    facts: String,
    advice: Option<String>,
}

impl Finding {
    fn new(verdict: Verdict, facts: String, advice: Option<String>) -> Finding {
        Finding {
            verdict,
            facts,
            advice,
        }
    }

    /// `facts: verdict[ so far (epoch 4 of 10)][; advice]`.
    pub fn sentence(&self, run: &RunRecord, epochs: usize) -> String {
        let mut sentence = format!("{}: {}", self.facts, self.verdict.label());
        if run.status.is_live() {
            sentence.push_str(&match run.config.epochs {
                Some(total) => format!(" so far (epoch {epochs} of {total})"),
                None => " so far".to_string(),
            });
        }
        if let Some(advice) = &self.advice {
            sentence.push_str("; ");
            sentence.push_str(advice);
        }
        sentence
    }
}

/// `a`, `a and b`, `a, b and c`.
fn join_names(names: &[&str]) -> String {
    match names {
        [] => String::new(),
        [one] => one.to_string(),
        [rest @ .., last] => format!("{} and {last}", rest.join(", ")),
    }
}

fn names_with(groups: &[GroupJudgement], diagnosis: Diagnosis) -> Vec<&str> {
    groups
        .iter()
        .filter(|g| g.diagnosis == diagnosis)
        .map(|g| g.name.as_str())
        .collect()
}

/// What to lower when losses blow up or bounce: the groups judged too high, else the group whose
/// weights moved most.
fn lower_rates_advice(groups: &[GroupJudgement]) -> String {
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
fn rate_notes(groups: &[GroupJudgement]) -> Option<String> {
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

fn with_notes(advice: String, groups: &[GroupJudgement]) -> String {
    match rate_notes(groups) {
        Some(notes) => format!("{advice}; {notes}"),
        None => advice,
    }
}

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

fn diverged(
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

fn too_short(run: &RunRecord, n: usize, t: &Thresholds) -> Option<Finding> {
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

/// The best validation metric, as a sentence part: `best accuracy 11.2% (chance 10%)`.
fn best_metric(epochs: &[EpochMetrics], c: &Curves) -> Option<String> {
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

fn not_learning(epochs: &[EpochMetrics], c: &Curves, groups: &[GroupJudgement]) -> Option<Finding> {
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

fn unstable(
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

/// Validation has stopped improving while training keeps falling: rising from its best, or
/// stalled with a wide and widening gap.
fn overfitting(
    epochs: &[EpochMetrics],
    c: &Curves,
    groups: &[GroupJudgement],
    t: &Thresholds,
) -> Option<Finding> {
    let best = c.best?;
    let at_best = &epochs[best];
    if c.n - 1 - best < OVERFIT_MIN_EPOCHS_AFTER_BEST || c.still_improving() {
        return None;
    }
    // Training loss after the best epoch "kept falling" when it averaged below its value at the
    // best (a noisy plateau near zero still counts; a rising one does not).
    let after: Vec<f64> = epochs[best + 1..]
        .iter()
        .map(|e| e.train_loss)
        .filter(|l| l.is_finite())
        .collect();
    let mean_after = after.iter().sum::<f64>() / after.len().max(1) as f64;
    if after.is_empty()
        || mean_after >= (1.0 - TRAIN_FALL_AFTER_BEST) * at_best.train_loss
        || c.gap_final <= c.gap_at_best
        || c.gap_final <= 0.0
    {
        return None;
    }
    let lowest_after = after.iter().copied().fold(f64::INFINITY, f64::min);
    // Judged on levels, not single epochs: the mean of the last three against the best 3-epoch
    // average, so a noisy curve's luckiest epoch does not make its wobbles look like a rise.
    let rose = c.best_val > 0.0
        && c.final_val > c.best_val * (1.0 + t.overfit_val_rise)
        && c.end_level > c.smoothed_best * (1.0 + t.overfit_val_rise)
        && c.end_level - c.smoothed_best > OVERFIT_RISE_OF_PROGRESS * c.progress;
    let advice = with_notes(
        format!(
            "its best weights were at epoch {}: train about that long, or add data or regularization (weight decay)",
            at_best.epoch
        ),
        groups,
    );
    if rose {
        return Some(Finding::new(
            Verdict::Overfitting,
            format!(
                "training loss fell {} while validation loss rose {} after epoch {}",
                percent(1.0 - lowest_after / at_best.train_loss),
                percent(c.final_val / c.best_val - 1.0),
                at_best.epoch
            ),
            Some(advice),
        ));
    }
    let wide_gap = c.final_val > 0.0 && c.gap_final >= t.overfit_gap * c.final_val;
    wide_gap.then(|| {
        Finding::new(
            Verdict::Overfitting,
            format!(
                "validation loss has not improved since epoch {} while training loss fell to {}, far below it: the gap ({}) is {} of the validation loss, up from {} at epoch {}",
                at_best.epoch,
                loss(c.final_train),
                gap(c.gap_final),
                percent(c.gap_final / c.final_val),
                gap(c.gap_at_best),
                at_best.epoch
            ),
            Some(advice),
        )
    })
}

fn slow(
    epochs: &[EpochMetrics],
    c: &Curves,
    groups: &[GroupJudgement],
    t: &Thresholds,
) -> Option<Finding> {
    let best = c.best?;
    let too_low = names_with(groups, Diagnosis::TooLow);
    let advice = if too_low.is_empty() {
        "raise the rates or train longer".to_string()
    } else {
        format!("raise the rate of {} (too low)", join_names(&too_low))
    };
    let still_improving = c.still_improving();
    if let Some(baseline) = &c.baseline {
        let far = c.best_val > SLOW_LEARNED * baseline.loss;
        let just_started = c.accelerating && c.recent_gain > SLOW_RECENT_GAIN;
        if !(still_improving && (far || just_started)) {
            return None;
        }
        let metric = best_metric(epochs, c).map_or(String::new(), |m| format!(" ({m})"));
        return Some(Finding::new(
            Verdict::Slow,
            format!(
                "validation loss is still falling ({} → {}{metric}) but is still {} of {}",
                loss(c.first_val),
                loss(c.best_val),
                percent(c.best_val / baseline.loss),
                baseline.described
            ),
            Some(advice),
        ));
    }
    // No baseline (a run recorded without its facts): judge by the improvement from epoch 1.
    let first = c.first_val;
    if !(first.is_finite() && first > 0.0) {
        return None;
    }
    let improvement = (first - c.best_val) / first;
    let still_creeping = best >= c.n - last_third(c.n);
    if improvement >= t.slow_improvement || (too_low.is_empty() && !still_creeping) {
        return None;
    }
    let amount = if improvement < 1e-4 {
        "less than 0.01%".to_string()
    } else {
        format!("only {}", percent(improvement))
    };
    Some(Finding::new(
        Verdict::Slow,
        format!(
            "validation loss improved {amount} in {} epochs ({} → {})",
            c.n,
            loss(first),
            loss(c.best_val)
        ),
        Some(advice),
    ))
}

fn plateaued(c: &Curves, groups: &[GroupJudgement]) -> Option<Finding> {
    let settled = c.settled_epoch? as usize;
    let flat_epochs = c.n.saturating_sub(settled);
    if flat_epochs < PLATEAU_MIN_EPOCHS.max(c.n.div_ceil(4)) || c.still_improving() {
        return None;
    }
    let advice = with_notes(
        format!(
            "the last {flat_epochs} epochs added little: stop around epoch {settled}, or decay the rate to go lower (--schedule cosine)"
        ),
        groups,
    );
    Some(Finding::new(
        Verdict::Plateaued,
        format!(
            "validation loss settled near its best ({}) by epoch {settled} and stayed there for {flat_epochs} epochs (ended at {})",
            loss(c.best_val),
            loss(c.final_val)
        ),
        Some(advice),
    ))
}

fn good(epochs: &[EpochMetrics], c: &Curves, groups: &[GroupJudgement], t: &Thresholds) -> Finding {
    let first = &epochs[0];
    let Some(best) = c.best else {
        return Finding::new(Verdict::Good, "no finite validation loss".into(), None);
    };
    let val_fall = 1.0 - c.best_val / first.val_loss;
    let train_fall = 1.0 - c.final_train / first.train_loss;
    let train = if train_fall > 0.0 {
        format!("training loss fell {}", percent(train_fall))
    } else {
        "training loss did not fall".to_string()
    };
    let size = if c.gap_final <= 0.0 {
        "validation loss at or below training loss (gap "
    } else if c.gap_final < t.overfit_gap * c.final_val.abs() {
        "a small gap ("
    } else {
        "a large but steady gap ("
    };
    let facts = format!(
        "validation loss fell {} ({} → {} at epoch {}) and {train}, with {size}{})",
        percent(val_fall),
        loss(first.val_loss),
        loss(c.best_val),
        epochs[best].epoch,
        gap(c.gap_final)
    );
    let advice = c
        .still_improving()
        .then(|| "still improving: more epochs may help".to_string());
    let advice = match (advice, rate_notes(groups)) {
        (Some(a), Some(notes)) => Some(format!("{a}; {notes}")),
        (a, notes) => a.or(notes),
    };
    Finding::new(Verdict::Good, facts, advice)
}

/// The verdict: the first rule that holds, in the order of this module's list.
pub(super) fn judge(
    run: &RunRecord,
    epochs: &[EpochMetrics],
    c: &Curves,
    groups: &[GroupJudgement],
    t: &Thresholds,
) -> Finding {
    diverged(run, epochs, c, groups, t)
        .or_else(|| too_short(run, epochs.len(), t))
        .or_else(|| not_learning(epochs, c, groups))
        .or_else(|| unstable(epochs, c, groups, t))
        .or_else(|| overfitting(epochs, c, groups, t))
        .or_else(|| slow(epochs, c, groups, t))
        .or_else(|| plateaued(c, groups))
        .unwrap_or_else(|| good(epochs, c, groups, t))
}
