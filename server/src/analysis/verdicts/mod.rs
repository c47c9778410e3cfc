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

mod ending;
mod learning;

use super::{curves::Curves, groups::GroupJudgement, Thresholds};
use crate::domain::{EpochMetrics, RunRecord, Verdict};
use ending::{good, overfitting, plateaued, slow};
use learning::{diverged, not_learning, too_short, unstable};

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
