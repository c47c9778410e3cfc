//! Rules 5–8 of the verdict (see the list in [`super`]): how the curves of a run that learned
//! ended: `overfitting`, `slow`, `plateaued`, else `good`.

use super::{
    Finding, OVERFIT_RISE_OF_PROGRESS, PLATEAU_MIN_EPOCHS, SLOW_LEARNED, SLOW_RECENT_GAIN,
    TRAIN_FALL_AFTER_BEST,
};
use crate::{
    analysis::{
        advice::{best_metric, join_names, names_with, rate_notes, with_notes},
        curves::{last_third, Curves},
        groups::GroupJudgement,
        text::{gap, loss, percent},
        Thresholds, OVERFIT_MIN_EPOCHS_AFTER_BEST,
    },
    domain::{Diagnosis, EpochMetrics, Verdict},
};

/// Validation has stopped improving while training keeps falling: rising from its best, or
/// stalled with a wide and widening gap.
pub(super) fn overfitting(
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

pub(super) fn slow(
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

pub(super) fn plateaued(c: &Curves, groups: &[GroupJudgement]) -> Option<Finding> {
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

pub(super) fn good(
    epochs: &[EpochMetrics],
    c: &Curves,
    groups: &[GroupJudgement],
    t: &Thresholds,
) -> Finding {
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
    // "More epochs may help" only while the best is at the end: a curve that turned up after its
    // best is not asking for more of the same.
    let best_at_end = best + 2 >= epochs.len();
    let advice = (c.still_improving() && best_at_end)
        .then(|| "still improving: more epochs may help".to_string());
    let advice = match (advice, rate_notes(groups)) {
        (Some(a), Some(notes)) => Some(format!("{a}; {notes}")),
        (a, notes) => a.or(notes),
    };
    Finding::new(Verdict::Good, facts, advice)
}
