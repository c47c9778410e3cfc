//! From a run's curves (and its groups' diagnoses) to one verdict, with the sentence that says
//! why and what to change. Shapes are judged on each curve's own scale and against its own noise
//! ([`super::curves`]); the verdict is the first of these that holds:
//!
//! 1. `diverged` — the run ended diverged, a loss is non-finite, or the training loss ended
//!    `diverged_ratio` times above where an untrained model starts (or the validation loss did,
//!    while training got no better than that start);
//! 2. `too-short` — fewer than `min_epochs` epochs;
//! 3. near chance — the best validation loss stayed within [`NOT_LEARNING_GAIN`] of the loss of a
//!    model that learned nothing (ln C for C classes, the targets' variance for a regression),
//!    and training got stuck too — its level stayed that near the baseline or within
//!    [`NOT_LEARNING_GAIN`] of its first epoch (a model that fits its training data is learning):
//!    `unstable` when the curves show it was thrown about by a rate too high (it learned and fell
//!    back, a classifier's first epoch's training loss was
//!    [`super::harm::BLEW_UP_AT_ONCE_OF_BASELINE`] times the baseline, its losses rose above the baseline twice or jumped twice), else `slow`
//!    when it is still falling beyond its noise at a pace that would lower it by
//!    [`STILL_IMPROVING_RELATIVE_GAIN`] in another third of the run (however far it has to go, a
//!    clear fall is not "no learning"; a crawl of a fraction of a percent is) or speeding up
//!    ([`super::curves::SPEEDING_UP`]: it has only just got going), `plateaued` when it came down
//!    by [`super::harm::LEARNED_BELOW_BASELINE`] of the baseline to below it and stalled there
//!    (rule 7's stall), else `not-learning`;
//! 4. `unstable` — a run that learned and fell back to chance (both losses ending at
//!    [`super::harm::FELL_BACK_OF_BASELINE`] of the baseline); or losses that jump: at least two
//!    jumps, in `unstable_fraction` of the epoch-to-epoch steps or more (or one of them undoing
//!    [`BIG_JUMP_OF_PROGRESS`] of the progress, in training, or in a validation spike to more
//!    than twice its level) — a training loss rising by more than `unstable_jump` of the larger
//!    of its previous and first value, or a validation loss rising that much *and* by
//!    [`BOUNCE_OF_PROGRESS`] of the progress, then falling right after; or a training loss that
//!    rose in a sustained way (its end level `overfit_val_rise` above its best level, beyond its
//!    noise); or both losses rising after validation's best; or validation bouncing by
//!    [`super::harm::NOISY_BOUNCE`] of its level from epoch to epoch (its noise) while training
//!    stopped falling over the second half;
//! 5. `overfitting` — validation rose from its best level to its end level by `overfit_val_rise`
//!    and beyond its noise (or by half that, with the gap `overfit_gap` of the validation loss and
//!    wider than at the best), its best at least two epochs before the end and not falling again
//!    at the end, while training loss kept falling (its end level [`TRAIN_FALL_AFTER_BEST`] below
//!    its loss at the best);
//! 6. `slow` — still improving at the end (the last third's slope beyond its noise, and another
//!    third of the run at that pace would add [`super::curves::STILL_IMPROVING_GAIN`] of the
//!    progress or lower the loss by [`super::curves::STILL_IMPROVING_RELATIVE_GAIN`] of itself)
//!    but far from done: the best validation loss still above [`SLOW_LEARNED`] of the baseline, or
//!    falling at least as fast per epoch at the end as on average with that pace adding
//!    [`SLOW_RECENT_GAIN`] of the progress (it has only just got going), or falling as steadily
//!    at the end as at the start ([`super::curves::STEADY_PACE`], on its own scale) with the best
//!    still above [`SLOW_STEADY_LEARNED`] of the baseline; or far from done (above
//!    [`SLOW_LEARNED`]) and still creeping down beyond its noise, however slowly
//!    ([`super::curves::CREEP_OVER_STRETCH`] over the last third): not stalled; without a
//!    baseline, improved less than `slow_improvement` from the first epoch with a group too low
//!    or the loss still creeping;
//! 7. `plateaued` — stalled short of a good fit: validation settled (its level within
//!    [`super::curves::SETTLED_BAND`] of its best, or its noise) for at least
//!    [`PLATEAU_MIN_EPOCHS`] epochs and a quarter of the run, no longer improving, its best level
//!    still above [`SLOW_LEARNED`] of the baseline, and training stalled too (it fell less than
//!    [`TRAIN_FALL_AFTER_BEST`] over that stretch);
//! 8. `good` — none of the above: it learned and ends near its best, converged (flat at a level
//!    well below the baseline: "converged by epoch k") or still improving.
//!
//! Every number a sentence cites is one of the run's own (an epoch's loss, a median of the last
//! epochs, a range), so each claim can be checked against the curve (the property tests do).

pub(super) mod ending;
mod learning;

use super::{curves::Curves, groups::GroupJudgement, harm::Evidence, Thresholds};
use crate::domain::{EpochMetrics, RunRecord, Verdict};
use ending::{good, overfitting, plateaued, slow};
use learning::{diverged, near_chance, too_short, unstable};

/// Near chance while the best validation loss is above (1 − this) × the baseline.
pub const NOT_LEARNING_GAIN: f64 = 0.1;
/// `slow` (while still improving), and `plateaued` (when flat), only while the best validation
/// loss is above this fraction of the baseline: below it, a run has learned most of what there is.
pub const SLOW_LEARNED: f64 = 0.5;
pub use super::curves::{STILL_IMPROVING_GAIN, STILL_IMPROVING_RELATIVE_GAIN};
/// `slow` also when the descent is steady ([`super::curves::STEADY_PACE`]) while the best
/// validation loss is above this fraction of the baseline: an undiminished fall with a good part
/// of the way still to go.
pub const SLOW_STEADY_LEARNED: f64 = SLOW_LEARNED / 2.0;
/// `slow` also when validation is falling at least as fast per epoch at the end as on average
/// (it has only just got going) and the pace at the end would, in another third of the run, add
/// this fraction of the progress made so far.
pub const SLOW_RECENT_GAIN: f64 = 0.25;
/// Training "kept falling" after the best epoch (and did not stall on a plateau) when its end
/// level is this fraction below its loss there.
pub const TRAIN_FALL_AFTER_BEST: f64 = 0.1;
/// A run with two jumps or more is `unstable` whatever their share of the steps when one of them
/// undid this fraction of the progress made.
pub const BIG_JUMP_OF_PROGRESS: f64 = 0.5;
/// A validation bounce must undo at least this fraction of the progress made to count as a jump.
pub const BOUNCE_OF_PROGRESS: f64 = 0.2;
/// `plateaued` and "converged" need the curve settled at least this many epochs before the end
/// (and a quarter of the run).
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

    /// Says what the verdict rests on in other words (the verdict and the advice stay).
    pub fn set_facts(&mut self, facts: String) {
        self.facts = facts;
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

/// The verdict: the first rule that holds, in the order of this module's list.
pub(super) fn judge(
    run: &RunRecord,
    epochs: &[EpochMetrics],
    c: &Curves,
    evidence: &Evidence,
    groups: &[GroupJudgement],
    t: &Thresholds,
) -> Finding {
    diverged(run, epochs, c, groups, t)
        .or_else(|| too_short(run, epochs.len(), t))
        .or_else(|| near_chance(run, epochs, c, evidence, groups))
        .or_else(|| unstable(run, epochs, c, evidence, groups, t))
        .or_else(|| overfitting(epochs, c, groups, t))
        .or_else(|| slow(epochs, c, groups, t))
        .or_else(|| plateaued(epochs, c, groups, c.still_improving()))
        .unwrap_or_else(|| good(epochs, c, groups, t))
}
