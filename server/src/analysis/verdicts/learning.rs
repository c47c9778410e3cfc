//! Rules 1–4 of the verdict (see the list in [`super`]): whether the run learned at all, and
//! steadily: `diverged`, `too-short`, the runs that stayed near chance (`unstable`, `slow` or
//! `not-learning`), `unstable`.

use super::{Finding, BIG_JUMP_OF_PROGRESS, NOT_LEARNING_GAIN, STILL_IMPROVING_RELATIVE_GAIN};
use crate::{
    analysis::{
        advice::{best_metric, lower_rates_advice, names_with, slow_advice},
        curves::{lowest_near, Curves},
        groups::{Context, GroupJudgement},
        harm::{Evidence, Rise, LEARNED_BELOW_BASELINE},
        text::{loss, percent, ratio},
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

/// `12`, or `6e27` for a multiple too large to read as digits.
fn times(multiple: f64) -> String {
    if multiple < 1e4 {
        format!("{multiple:.0}")
    } else {
        crate::analysis::text::rounded_rate(multiple)
    }
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
    if c.final_train > limit {
        return finding(format!(
            "training loss ended at {}, {} times {what}",
            loss(c.final_train),
            times(c.final_train / start),
        ));
    }
    if c.final_val > limit && c.final_train >= start {
        return finding(format!(
            "validation loss ended at {}, {} times {what}, and training loss got no lower ({})",
            loss(c.final_val),
            times(c.final_val / start),
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

/// `training loss 0.4 → 1.2 at epoch 3`.
fn rise_text(rise: &Rise) -> String {
    format!(
        "{} loss {} → {} at epoch {}",
        rise.which,
        loss(rise.from),
        loss(rise.to),
        rise.epoch
    )
}

/// What shows that a run near chance was thrown about by a rate too high, not held back by one
/// too low: it learned and fell back, its first epoch blew up, or its losses bounced above
/// chance or jumped.
fn thrown_about(epochs: &[EpochMetrics], c: &Curves, evidence: &Evidence) -> Option<String> {
    if let Some(learned) = evidence.fell_back {
        let e = &epochs[learned];
        let (which, value) = if e.val_loss <= e.train_loss {
            ("validation", e.val_loss)
        } else {
            ("training", e.train_loss)
        };
        return Some(format!(
            "though it had learned at first ({which} loss {} at epoch {}) and fell back",
            loss(value),
            e.epoch
        ));
    }
    if let Some(first) = evidence.blew_up_at_once {
        return Some(format!(
            "after a first epoch whose training loss averaged {}, {} times the baseline",
            loss(first),
            times(first / c.baseline.as_ref()?.loss)
        ));
    }
    let (bounces, largest) = evidence.above_chance;
    if bounces >= 2 {
        return Some(format!(
            "and its losses rose above it {bounces} times (the largest: {})",
            rise_text(&largest?)
        ));
    }
    let jumps = &evidence.jumps;
    if jumps.count >= 2 {
        return Some(format!(
            "and its losses jumped up in {} of {} epoch-to-epoch steps (the largest: {})",
            jumps.count,
            jumps.steps,
            rise_text(&jumps.largest?)
        ));
    }
    None
}

/// A run whose best validation loss stayed near the baseline: thrown about by a rate too high
/// (`unstable`), still falling clearly (`slow`: a long way down is still a way down), or flat
/// there, or crawling (`not-learning`).
pub(super) fn near_chance(
    run: &RunRecord,
    epochs: &[EpochMetrics],
    c: &Curves,
    evidence: &Evidence,
    groups: &[GroupJudgement],
) -> Option<Finding> {
    let baseline = c.baseline.as_ref()?;
    let near = (1.0 - NOT_LEARNING_GAIN) * baseline.loss;
    // A model that fits its training data but not the validation data is learning (and
    // overfitting): only a run whose training loss stayed near chance too, or never came down
    // from where it started (the training targets' own spread may differ from validation's), is
    // judged here.
    let train_lowest = c
        .train
        .scale
        .back(c.train.levels.iter().copied().fold(f64::INFINITY, f64::min));
    let training_stuck =
        train_lowest > near || train_lowest > (1.0 - NOT_LEARNING_GAIN) * c.first_train;
    if c.best_val <= near || !training_stuck {
        return None;
    }
    let metric = best_metric(epochs, c).map_or(String::new(), |m| format!(" ({m})"));
    let near = format!(
        "the best validation loss, {}{metric}, is within {} of {}",
        loss(c.best_val),
        percent(NOT_LEARNING_GAIN),
        baseline.described
    );
    if let Some(thrown) = thrown_about(epochs, c, evidence) {
        return Some(Finding::new(
            Verdict::Unstable,
            format!("{near}, {thrown}"),
            Some(format!(
                "{}: a rate that high throws the weights about",
                lower_rates_advice(groups)
            )),
        ));
    }
    // Near chance the progress is tiny, so a crawl adds a large share of it: only a fall that
    // would take the loss itself down by a tenth in another third of the run, or one that is
    // speeding up (it has only just got going), is still learning.
    let clear_fall =
        c.falling_beyond_noise && c.recent_relative_gain > STILL_IMPROVING_RELATIVE_GAIN;
    // Come down by a twentieth of the baseline and still falling beyond its noise at the pace it
    // began with (no floor in sight): learning, slowly, however small each epoch's step is.
    let came_down = c.first_val - c.val.best_level >= LEARNED_BELOW_BASELINE * baseline.loss;
    let steady_descent = c.falling_beyond_noise && c.steady && came_down;
    if clear_fall || c.speeding_up || steady_descent {
        return Some(super::ending::still_falling_far_from_done(
            epochs, c, groups, baseline,
        ));
    }
    // It learned a little — came down by 5% of the baseline to below it — and stalled there
    // (a model that starts a little below the baseline and never moves learned nothing).
    if came_down && c.val.best_level <= (1.0 - LEARNED_BELOW_BASELINE) * baseline.loss {
        if let Some(stalled) = super::ending::plateaued(epochs, c, groups, clear_fall) {
            return Some(stalled);
        }
    }
    Some(Finding::new(
        Verdict::NotLearning,
        near,
        Some(not_learning_advice(run, groups)),
    ))
}

/// What to change when a run learned nothing: the groups whose rate holds them back, else the
/// groups whose gradients vanish, else the data and the model.
fn not_learning_advice(run: &RunRecord, groups: &[GroupJudgement]) -> String {
    let too_low = names_with(groups, Diagnosis::TooLow);
    let too_high = names_with(groups, Diagnosis::TooHigh);
    if !too_high.is_empty() {
        return format!(
            "{}: a rate that high can kill the units or throw the weights about",
            lower_rates_advice(groups)
        );
    }
    if !too_low.is_empty() {
        return slow_advice(groups);
    }
    let held: Vec<&GroupJudgement> = groups
        .iter()
        .filter(|g| matches!(g.context, Context::SmallGradient { .. }))
        .collect();
    if let Some(first) = held.first() {
        let vanishing = held.iter().all(|g| {
            matches!(
                g.context,
                Context::SmallGradient {
                    vanishing: true,
                    ..
                }
            )
        });
        let names: Vec<&str> = held.iter().map(|g| g.name.as_str()).collect();
        let (verb, why) = match (names.len(), vanishing) {
            (1, true) => ("hardly moves", "its gradients vanish — dead or saturated units (check the initialization and activations), not its rate"),
            (1, false) => ("hardly moves", "its small gradients, not its rate, hold it back"),
            (_, true) => ("hardly move", "their gradients vanish — dead or saturated units (check the initialization and activations), not the rates"),
            (_, false) => ("hardly move", "their small gradients, not the rates, hold them back"),
        };
        return format!(
            "{} {verb} ({} of the weight norm per step for {}) at rates that move other groups well: {why}",
            crate::analysis::advice::join_names(&names),
            ratio(first.typical),
            first.name
        );
    }
    let predicts = match run.facts.task {
        crate::domain::TaskFacts::Classification { .. } => "the class balance",
        crate::domain::TaskFacts::Regression { .. } => "the targets' mean",
    };
    format!(
        "it predicts no more than {predicts}: check that the labels belong to the features, and that the model can fit them"
    )
}

/// Losses that jump about, a run that learned and fell back to chance, or a training loss that
/// rises (alone, or with validation): signs of a rate too high.
pub(super) fn unstable(
    run: &RunRecord,
    epochs: &[EpochMetrics],
    c: &Curves,
    evidence: &Evidence,
    groups: &[GroupJudgement],
    t: &Thresholds,
) -> Option<Finding> {
    let advice = || {
        let lower = lower_rates_advice(groups);
        Some(match crate::analysis::advice::steadier_schedule(run) {
            Some(schedule) => format!("{lower}, {schedule}"),
            None => lower,
        })
    };
    let end_window = c.val.end_window;
    if evidence.fell_back.is_some() {
        let best = &epochs[c.best?];
        let baseline = c.baseline.as_ref()?;
        return Some(Finding::new(
            Verdict::Unstable,
            format!(
                "validation loss came down to {} at epoch {} and fell back to {}: a median of {} over the last {end_window} epochs (training loss {})",
                loss(best.val_loss),
                best.epoch,
                baseline.described,
                loss(c.val.end_level),
                loss(c.train.end_level),
            ),
            advice(),
        ));
    }
    let jumps = &evidence.jumps;
    let big = c.progress > 0.0 && jumps.biggest >= BIG_JUMP_OF_PROGRESS * c.progress;
    if jumps.count >= 2 && (jumps.count as f64 / jumps.steps as f64 >= t.unstable_fraction || big) {
        return Some(Finding::new(
            Verdict::Unstable,
            format!(
                "losses jumped up in {} of {} epoch-to-epoch steps (the largest: {})",
                jumps.count,
                jumps.steps,
                rise_text(&jumps.largest?)
            ),
            advice(),
        ));
    }
    if let Some((noise, mid)) = evidence.noisy_stall {
        return Some(Finding::new(
            Verdict::Unstable,
            format!(
                "validation loss bounces by about {} of its level from epoch to epoch while training loss stopped falling ({} at epoch {}, a median of {} over the last {end_window} epochs)",
                percent(noise),
                loss(epochs[mid].train_loss),
                epochs[mid].epoch,
                loss(c.train.end_level),
            ),
            advice(),
        ));
    }
    if let Some(lowest) = evidence.training_rose {
        let at = lowest_near(epochs, lowest, |e| e.train_loss);
        return Some(Finding::new(
            Verdict::Unstable,
            format!(
                "training loss rose from {} at epoch {} to a median of {} over the last {end_window} epochs",
                loss(epochs[at].train_loss),
                epochs[at].epoch,
                loss(c.train.end_level),
            ),
            advice(),
        ));
    }
    if let Some(best) = evidence.both_rose {
        let at = lowest_near(epochs, best, |e| e.val_loss);
        return Some(Finding::new(
            Verdict::Unstable,
            format!(
                "both losses rose after epoch {}: validation from {} to a median of {} over the last {end_window} epochs, training from {} to {}",
                epochs[at].epoch,
                loss(epochs[at].val_loss),
                loss(c.val.end_level),
                loss(epochs[at].train_loss),
                loss(c.train.end_level),
            ),
            advice(),
        ));
    }
    None
}
