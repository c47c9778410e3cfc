//! The analysis of training curves: gaps, the best epoch, convergence, a verdict with one plain
//! sentence saying why, and per layer group whether its rate looks too high or too low.
//!
//! Pure functions over a run's record (with the facts recorded about its data: the task, the
//! class count or the targets' variance, the steps per epoch) and its stored epochs: the same
//! answer for every client, testable on hand-made curves. [`verdicts`] says which verdict holds
//! when; [`groups`] how each group's rate is judged; [`compare`] ranks several runs.

mod advice;
mod caveat;
mod compare;
mod curves;
mod groups;
mod harm;
pub mod sweep;
pub(crate) mod text;
mod thresholds;
mod twin;
mod verdicts;

pub use compare::{compare, rank};
use curves::Curves;
pub use groups::DIAGNOSIS_WINDOW_EPOCHS;
use groups::{judge_groups, GroupJudgement};
pub use thresholds::*;
pub use twin::{compare_with_twin, Side, TwinComparison, TwinOutcome, TWIN_SAME_WITHIN};
pub use verdicts::{
    BIG_JUMP_OF_PROGRESS, BOUNCE_OF_PROGRESS, NOT_LEARNING_GAIN, PLATEAU_MIN_EPOCHS, SLOW_LEARNED,
    SLOW_RECENT_GAIN, STILL_IMPROVING_GAIN, STILL_IMPROVING_RELATIVE_GAIN, TRAIN_FALL_AFTER_BEST,
};

use crate::domain::{Diagnosis, EpochMetrics, RunId, RunRecord, RunState, Verdict};

/// One layer group's diagnosis.
#[derive(Clone, Debug, PartialEq)]
pub struct GroupDiagnosis {
    pub name: String,
    pub diagnosis: Diagnosis,
    /// The per-step update-to-weight ratio it was judged on (see [`Thresholds::update_ratio_high`]);
    /// 0 when frozen throughout.
    pub update_ratio: f64,
    /// One plain sentence: what to change.
    pub advice: String,
}

/// The analysis of one run's curves. Losses are NaN where there is nothing to measure.
#[derive(Clone, Debug, PartialEq)]
pub struct RunAnalysis {
    /// Epoch with the lowest validation loss (0 when there are no epochs).
    pub best_epoch: u32,
    pub best_val_loss: f64,
    /// Validation minus training loss at the best epoch and at the last.
    pub gap_at_best: f64,
    pub gap_final: f64,
    /// Slope of the gap per epoch over the last third of the epochs.
    pub gap_trend: f64,
    /// The epoch in which validation loss first came within `near_best_fraction` of its best.
    pub epochs_to_converge: u32,
    pub final_train_loss: f64,
    pub final_val_loss: f64,
    pub verdict: Verdict,
    /// One plain sentence saying why, and what to change.
    pub reason: String,
    /// Per layer group, in the model's order.
    pub groups: Vec<GroupDiagnosis>,
    /// Epochs analysed.
    pub epochs: u32,
    /// Where the curves turned, for a chart to mark.
    pub key_epochs: KeyEpochs,
}

/// The epochs (numbers) where a run's curves turned, beside its best epoch: what a chart marks
/// so the verdict's sentence can be found on it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct KeyEpochs {
    /// A run judged `overfitting`: the first epoch after the best whose validation loss (its
    /// level: the median of it and its neighbours) left the band around the best for good.
    pub overfitting_from: Option<u32>,
    /// The epochs in which a loss jumped up and fell back (what an `unstable` verdict counts).
    pub bounces: Vec<u32>,
}

/// Bounces marked at most: a run thrown about every epoch is said by its verdict.
const MAX_MARKED_BOUNCES: usize = 20;

impl KeyEpochs {
    fn of(
        epochs: &[EpochMetrics],
        curves: &Curves,
        evidence: &harm::Evidence,
        verdict: Verdict,
    ) -> KeyEpochs {
        let overfitting_from = (verdict == Verdict::Overfitting)
            .then(|| curves.val.left_best_at())
            .flatten()
            .and_then(|i| epochs.get(i))
            .map(|e| e.epoch);
        let mut bounces = evidence.jumps.epochs.clone();
        bounces.truncate(MAX_MARKED_BOUNCES);
        KeyEpochs {
            overfitting_from,
            bounces,
        }
    }
}

impl RunAnalysis {
    /// Whether the run has a finite best validation loss to rank by.
    pub fn has_best(&self) -> bool {
        self.best_epoch > 0 && self.best_val_loss.is_finite()
    }
}

/// One run of a comparison.
#[derive(Clone, Debug, PartialEq)]
pub struct ComparedRun {
    pub run: RunState,
    pub analysis: RunAnalysis,
    /// Every epoch, or an even spread of them that keeps the first, the best and the last when
    /// the run is longer than one comparison may carry (`epochs_thinned`).
    pub epochs: Vec<EpochMetrics>,
    pub epochs_thinned: bool,
    /// 1 for the lowest best validation loss.
    pub rank: u32,
    /// Against its single-rate twin, when it has one (filled in by the run manager, which
    /// reads the twin).
    pub twin: Option<TwinComparison>,
}

/// Several runs analysed and ranked by best validation loss, best first.
#[derive(Clone, Debug, PartialEq)]
pub struct Comparison {
    pub runs: Vec<ComparedRun>,
    /// The first run, when it has a finite validation loss.
    pub best_run: Option<RunId>,
    /// One or two plain sentences: which run is best and why.
    pub summary: String,
}

/// Analyses one run on the epochs it has (a run still training is analysed so far). A run logged
/// from outside may skip validation in some epochs or all of them (`no_validation`): it is judged
/// on the epochs that were validated, or on its training loss alone when none was, and its
/// reason says so.
pub fn analyse(run: &RunRecord, epochs: &[EpochMetrics], thresholds: &Thresholds) -> RunAnalysis {
    let validated = epochs.iter().filter(|e| !e.no_validation).count();
    if validated == epochs.len() {
        return analyse_curves(run, epochs, thresholds, false);
    }
    if validated == 0 {
        return analyse_training_alone(run, epochs, thresholds);
    }
    let subset: Vec<EpochMetrics> = epochs
        .iter()
        .filter(|e| !e.no_validation)
        .cloned()
        .collect();
    let mut analysis = analyse_curves(run, &subset, thresholds, false);
    analysis.reason = format!(
        "judged on the {validated} of {} epochs that were validated: {}",
        epochs.len(),
        analysis.reason
    );
    analysis
}

/// A run that logged no validation loss, judged on its training curve: the verdicts that need
/// validation (overfitting) cannot hold, and every validation figure is NaN.
fn analyse_training_alone(
    run: &RunRecord,
    epochs: &[EpochMetrics],
    thresholds: &Thresholds,
) -> RunAnalysis {
    let as_validated: Vec<EpochMetrics> = epochs
        .iter()
        .map(|e| EpochMetrics {
            val_loss: e.train_loss,
            val_metric: f64::NAN,
            no_validation: false,
            ..e.clone()
        })
        .collect();
    RunAnalysis {
        best_epoch: 0,
        best_val_loss: f64::NAN,
        gap_at_best: f64::NAN,
        gap_final: f64::NAN,
        gap_trend: f64::NAN,
        epochs_to_converge: 0,
        final_val_loss: f64::NAN,
        ..analyse_curves(run, &as_validated, thresholds, true)
    }
}

/// The analysis of curves whose every epoch has a validation loss (for `training_alone`, the
/// training loss standing in for it: the verdict's facts then say so in their own words).
fn analyse_curves(
    run: &RunRecord,
    epochs: &[EpochMetrics],
    thresholds: &Thresholds,
    training_alone: bool,
) -> RunAnalysis {
    let curves = Curves::of(run, epochs, thresholds);
    let diverged = run.status == crate::domain::RunStatus::Diverged
        || epochs.iter().any(EpochMetrics::diverged);
    let evidence = harm::Evidence::of(epochs, &curves, thresholds);
    let groups = judge_groups(run, epochs, thresholds, diverged || evidence.any());
    let mut finding = verdicts::judge(run, epochs, &curves, &evidence, &groups, thresholds);
    if training_alone {
        finding.set_facts(text::training_alone(epochs));
    }
    RunAnalysis {
        key_epochs: KeyEpochs::of(epochs, &curves, &evidence, finding.verdict),
        best_epoch: curves.best.map_or(0, |i| epochs[i].epoch),
        best_val_loss: curves.best_val,
        gap_at_best: curves.gap_at_best,
        gap_final: curves.gap_final,
        gap_trend: curves.gap_trend,
        epochs_to_converge: curves.epochs_to_converge,
        final_train_loss: curves.final_train,
        final_val_loss: curves.final_val,
        verdict: finding.verdict,
        reason: caveat::with_caveat(finding.sentence(run, epochs.len()), &run.facts),
        groups: groups.iter().map(GroupJudgement::diagnosis).collect(),
        epochs: epochs.len() as u32,
    }
}

#[cfg(test)]
mod labelled_tests;
#[cfg(test)]
mod properties;
#[cfg(test)]
mod tests;
