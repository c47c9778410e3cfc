//! Rules 5–8 of the verdict (see the list in [`super`]): how the curves of a run that learned
//! ended: `overfitting`, `slow`, `plateaued`, else `good`.

use super::{
    Finding, PLATEAU_MIN_EPOCHS, SLOW_LEARNED, SLOW_RECENT_GAIN, SLOW_STEADY_LEARNED,
    TRAIN_FALL_AFTER_BEST,
};
use crate::{
    analysis::{
        advice::{best_metric, join_names, names_with, rate_notes, slow_advice, with_notes},
        curves::{last_third, lowest_near, median, Baseline, Curves, SETTLED_BAND},
        groups::GroupJudgement,
        text::{gap, loss, percent},
        Thresholds,
    },
    domain::{Diagnosis, EpochMetrics, Verdict},
};

/// Validation has stopped improving while training keeps falling: it rose from its best level
/// by `overfit_val_rise` (beyond its noise), or by half that with a wide and widening gap.
pub(super) fn overfitting(
    epochs: &[EpochMetrics],
    c: &Curves,
    groups: &[GroupJudgement],
    t: &Thresholds,
) -> Option<Finding> {
    let level_at = c.val.best_level_at?;
    // A curve falling again at the end (recovering from a spike, or after the rate dropped) is
    // not rising in a sustained way, wherever it stands against its best.
    if c.n - 1 - level_at < 2 || c.still_improving() || c.falling_beyond_noise {
        return None;
    }
    let at = lowest_near(epochs, level_at, |e| e.val_loss);
    let at_best = &epochs[at];
    // Training "kept falling" when the median of its last epochs is well below its loss at the
    // best (a noisy plateau near zero still counts; a rising one does not).
    let after: Vec<f64> = epochs[level_at + 1..]
        .iter()
        .map(|e| e.train_loss)
        .filter(|l| l.is_finite())
        .collect();
    if after.is_empty() {
        return None;
    }
    let window = c.val.end_window.min(after.len());
    let train_end = median(&mut after[after.len() - window..].to_vec());
    if train_end >= (1.0 - TRAIN_FALL_AFTER_BEST) * epochs[level_at].train_loss {
        return None;
    }
    let end_window = c.val.end_window;
    let val_end = c.val.end_level;
    let rose = format!(
        "validation loss rose {} from {} at epoch {} to a median of {} over the last {end_window} epochs",
        percent(val_end / at_best.val_loss - 1.0),
        loss(at_best.val_loss),
        at_best.epoch,
        loss(val_end)
    );
    let advice = with_notes(
        format!(
            "its best weights were at epoch {}: stop there (early stopping), or add data or regularization (weight decay, dropout)",
            at_best.epoch
        ),
        groups,
    );
    if c.val.sustained_rise(t.overfit_val_rise).is_some() && c.final_val > c.val.best_level {
        return Some(Finding::new(
            Verdict::Overfitting,
            format!(
                "{rose}, while training loss fell from {} to a median of {}",
                loss(epochs[level_at].train_loss),
                loss(train_end)
            ),
            Some(advice),
        ));
    }
    let gap_end = val_end - train_end;
    let gap_at_best = c.val.best_level - epochs[level_at].train_loss;
    let wide = val_end > 0.0 && gap_end >= t.overfit_gap * val_end && gap_end > gap_at_best;
    (c.val.sustained_rise(t.overfit_val_rise / 2.0).is_some() && wide).then(|| {
        Finding::new(
            Verdict::Overfitting,
            format!(
                "{rose}, while training loss fell to a median of {}, far below it: the gap ({}) is {} of the validation loss",
                loss(train_end),
                gap(gap_end),
                percent(gap_end / val_end),
            ),
            Some(advice),
        )
    })
}

/// `slow`, said of a curve still falling with `baseline` far below: where it went and how much of
/// the baseline it still is.
pub(super) fn still_falling_far_from_done(
    epochs: &[EpochMetrics],
    c: &Curves,
    groups: &[GroupJudgement],
    baseline: &Baseline,
) -> Finding {
    let metric = best_metric(epochs, c).map_or(String::new(), |m| format!(" ({m})"));
    Finding::new(
        Verdict::Slow,
        format!(
            "validation loss is still falling ({} → {}{metric}) but is still {} of {}",
            loss(c.first_val),
            loss(c.best_val),
            percent(c.best_val / baseline.loss),
            baseline.described
        ),
        Some(slow_advice(groups)),
    )
}

pub(super) fn slow(
    epochs: &[EpochMetrics],
    c: &Curves,
    groups: &[GroupJudgement],
    t: &Thresholds,
) -> Option<Finding> {
    let best = c.best?;
    let still_improving = c.still_improving();
    if let Some(baseline) = &c.baseline {
        let far = c.best_val > SLOW_LEARNED * baseline.loss;
        let just_started = c.accelerating && c.recent_gain > SLOW_RECENT_GAIN;
        // Falling at an undiminished pace with a good part of the way still to go.
        let steady = c.steady && c.best_val > SLOW_STEADY_LEARNED * baseline.loss;
        // Far from done and still creeping down, however slowly, is slow too: not stalled.
        let creeping = far && c.creeping(epochs);
        if !(still_improving && (far || just_started || steady) || creeping) {
            return None;
        }
        return Some(still_falling_far_from_done(epochs, c, groups, baseline));
    }
    // No baseline (a run recorded without its facts): judge by the improvement from epoch 1.
    let first = c.first_val;
    if !(first.is_finite() && first > 0.0) {
        return None;
    }
    let improvement = (first - c.best_val) / first;
    let still_creeping = best >= c.n - last_third(c.n);
    let too_low = names_with(groups, Diagnosis::TooLow);
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
        Some(slow_advice(groups)),
    ))
}

/// Where validation loss settled to the end — its level entered the band of its noise — when it
/// did long enough to matter (at least [`PLATEAU_MIN_EPOCHS`] epochs and a quarter of the run)
/// and is no longer improving (`still_improving`, by the caller's measure): its index.
fn settled_for_long(c: &Curves, still_improving: bool) -> Option<usize> {
    let at = c.val.settled_at()?;
    let flat_epochs = c.n - at;
    (flat_epochs >= PLATEAU_MIN_EPOCHS.max(c.n.div_ceil(4)) && !still_improving).then_some(at)
}

/// The epoch a sentence names for a settled curve ("converged by epoch k", "could have stopped
/// there"): the first from `settled` whose level and own loss are both within [`SETTLED_BAND`] of
/// the best level — on a noisy curve, not an epoch still well above it, nor a spike — with
/// [`PLATEAU_MIN_EPOCHS`] epochs to go. Its index.
fn converged_at(c: &Curves, settled: usize) -> Option<usize> {
    let near_best = c.val.scale.to(c.val.best_level) + c.val.scale.of_fraction(SETTLED_BAND);
    (settled..c.n)
        .find(|&i| c.val.levels[i] <= near_best && c.val.scaled[i] <= near_best)
        .filter(|&i| c.n - i >= PLATEAU_MIN_EPOCHS)
}

/// `has stayed between 0.1 and 0.2 since epoch 7`.
fn stayed_between(epochs: &[EpochMetrics], c: &Curves, from: usize) -> String {
    let (low, high) = c.val_range_from(epochs, from);
    format!(
        "has stayed between {} and {} since epoch {}",
        loss(low),
        loss(high),
        epochs[from].epoch
    )
}

/// Learning stalled short of a good fit: validation (and training) flat for a long stretch with
/// the best validation loss still above [`SLOW_LEARNED`] of the baseline; `still_improving` by
/// the caller's measure (near chance the progress is too small to measure a pace against).
pub(super) fn plateaued(
    epochs: &[EpochMetrics],
    c: &Curves,
    groups: &[GroupJudgement],
    still_improving: bool,
) -> Option<Finding> {
    let baseline = c.baseline.as_ref()?;
    if c.val.best_level <= SLOW_LEARNED * baseline.loss {
        return None;
    }
    let settled = settled_for_long(c, still_improving)?;
    if c.creeping(epochs) {
        return None;
    }
    let at = converged_at(c, settled).unwrap_or(settled);
    let train_end = c.train.end_level;
    if train_end <= (1.0 - TRAIN_FALL_AFTER_BEST) * epochs[at].train_loss {
        return None;
    }
    let too_high = names_with(groups, Diagnosis::TooHigh);
    let too_low = names_with(groups, Diagnosis::TooLow);
    let advice = if !too_high.is_empty() {
        format!(
            "lower the rate of {} (too high): a rate that high can stall learning",
            join_names(&too_high)
        )
    } else if !too_low.is_empty() {
        format!("raise the rate of {} (too low)", join_names(&too_low))
    } else {
        "it stopped well short of a good fit: a larger model, a higher rate or less regularization (weight decay) may go further".to_string()
    };
    Some(Finding::new(
        Verdict::Plateaued,
        format!(
            "validation loss {}, its best ({}) still {} of {}, and training loss stalled too ({} at epoch {}, a median of {} over the last {} epochs)",
            stayed_between(epochs, c, at),
            loss(c.best_val),
            percent(c.best_val / baseline.loss),
            baseline.described,
            loss(epochs[at].train_loss),
            epochs[at].epoch,
            loss(train_end),
            c.val.end_window
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
    let fell = if best == 0 {
        format!(
            "validation loss was lowest in the first epoch ({})",
            loss(c.best_val)
        )
    } else {
        format!(
            "validation loss fell {} ({} → {} at epoch {})",
            percent(1.0 - c.best_val / first.val_loss),
            loss(first.val_loss),
            loss(c.best_val),
            epochs[best].epoch
        )
    };
    if let Some(at) =
        settled_for_long(c, c.still_improving()).and_then(|settled| converged_at(c, settled))
    {
        let advice = format!(
            "converged by epoch {}: it could have stopped there",
            epochs[at].epoch
        );
        return Finding::new(
            Verdict::Good,
            format!("{fell} and {}", stayed_between(epochs, c, at)),
            Some(with_notes(advice, groups)),
        );
    }
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
    let facts = format!("{fell} and {train}, with {size}{})", gap(c.gap_final));
    // "More epochs may help" only while the best is at the end: a curve that turned up after its
    // best is not asking for more of the same.
    let best_at_end = best + 2 >= epochs.len();
    let advice = (c.still_improving() && best_at_end)
        .then(|| "still falling at the end: more epochs may help".to_string());
    let advice = match (advice, rate_notes(groups)) {
        (Some(a), Some(notes)) => Some(format!("{a}; {notes}")),
        (a, notes) => a.or(notes),
    };
    Finding::new(Verdict::Good, facts, advice)
}
