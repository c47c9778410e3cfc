//! The analysis to the wire (verdicts, group diagnoses, comparisons), and the thresholds and
//! verdict filter a request carries from it.

use strata_proto as proto;
use tonic::Status;

use super::run::epochs_to_proto;
use crate::{
    analysis::{
        ComparedRun, Comparison, GroupDiagnosis, RunAnalysis, ThresholdOverrides, TwinComparison,
    },
    domain::{Diagnosis, Verdict},
    error::StrataError,
};

fn verdict_to_proto(verdict: Verdict) -> proto::Verdict {
    match verdict {
        Verdict::Good => proto::Verdict::Good,
        Verdict::Plateaued => proto::Verdict::Plateaued,
        Verdict::Overfitting => proto::Verdict::Overfitting,
        Verdict::Unstable => proto::Verdict::Unstable,
        Verdict::Slow => proto::Verdict::Slow,
        Verdict::NotLearning => proto::Verdict::NotLearning,
        Verdict::Diverged => proto::Verdict::Diverged,
        Verdict::TooShort => proto::Verdict::TooShort,
    }
}

/// A verdict filter: unspecified is none.
pub(super) fn verdict_filter(code: i32) -> Result<Option<Verdict>, StrataError> {
    let verdict = proto::Verdict::try_from(code).map_err(|_| {
        StrataError::invalid(
            "verdict",
            format!(
                "{code} is not a verdict; allowed: {}",
                Verdict::ALL.map(Verdict::label).join(", ")
            ),
        )
    })?;
    Ok(match verdict {
        proto::Verdict::Unspecified => None,
        proto::Verdict::Good => Some(Verdict::Good),
        proto::Verdict::Plateaued => Some(Verdict::Plateaued),
        proto::Verdict::Overfitting => Some(Verdict::Overfitting),
        proto::Verdict::Unstable => Some(Verdict::Unstable),
        proto::Verdict::Slow => Some(Verdict::Slow),
        proto::Verdict::NotLearning => Some(Verdict::NotLearning),
        proto::Verdict::Diverged => Some(Verdict::Diverged),
        proto::Verdict::TooShort => Some(Verdict::TooShort),
    })
}

fn diagnosis_to_proto(diagnosis: Diagnosis) -> proto::Diagnosis {
    match diagnosis {
        Diagnosis::Ok => proto::Diagnosis::Ok,
        Diagnosis::TooHigh => proto::Diagnosis::TooHigh,
        Diagnosis::TooLow => proto::Diagnosis::TooLow,
        Diagnosis::Frozen => proto::Diagnosis::Frozen,
    }
}

impl From<GroupDiagnosis> for proto::GroupDiagnosis {
    fn from(g: GroupDiagnosis) -> Self {
        let GroupDiagnosis {
            name,
            diagnosis,
            update_ratio,
            advice,
        } = g;
        proto::GroupDiagnosis {
            name,
            diagnosis: diagnosis_to_proto(diagnosis) as i32,
            update_ratio,
            advice,
        }
    }
}

impl From<RunAnalysis> for proto::RunAnalysis {
    fn from(a: RunAnalysis) -> Self {
        let RunAnalysis {
            best_epoch,
            best_val_loss,
            gap_at_best,
            gap_final,
            gap_trend,
            epochs_to_converge,
            final_train_loss,
            final_val_loss,
            verdict,
            reason,
            groups,
            epochs,
            // The dashboard's chart marks; the CLI says the same epochs in the verdict's sentence.
            key_epochs: _,
        } = a;
        proto::RunAnalysis {
            best_epoch,
            best_val_loss,
            gap_at_best,
            gap_final,
            gap_trend,
            epochs_to_converge,
            final_train_loss,
            final_val_loss,
            verdict: verdict_to_proto(verdict) as i32,
            reason,
            groups: groups.into_iter().map(Into::into).collect(),
            epochs,
        }
    }
}

impl From<TwinComparison> for proto::TwinComparison {
    fn from(c: TwinComparison) -> Self {
        let TwinComparison {
            twin,
            twin_lr,
            run_best_val_loss,
            twin_best_val_loss,
            twin_best_epoch,
            run_reached_twin_best_at,
            best_ratio,
            run_gap_at_best,
            twin_gap_at_best,
            run_verdict,
            twin_verdict,
            outcome,
            summary,
        } = c;
        proto::TwinComparison {
            twin_run_id: twin.to_string(),
            twin_lr,
            run_best_val_loss,
            twin_best_val_loss,
            twin_best_epoch,
            run_reached_twin_best_at: run_reached_twin_best_at.unwrap_or(0),
            best_ratio,
            run_gap_at_best,
            twin_gap_at_best,
            run_verdict: verdict_to_proto(run_verdict) as i32,
            twin_verdict: verdict_to_proto(twin_verdict) as i32,
            outcome: outcome.label().to_string(),
            summary,
        }
    }
}

impl From<Comparison> for proto::CompareRunsResponse {
    fn from(comparison: Comparison) -> Self {
        let Comparison {
            runs,
            best_run,
            summary,
        } = comparison;
        proto::CompareRunsResponse {
            runs: runs
                .into_iter()
                .map(|compared| {
                    let ComparedRun {
                        run,
                        analysis,
                        epochs,
                        epochs_thinned,
                        rank,
                        twin,
                    } = compared;
                    let metric = run.record.facts.task.metric();
                    proto::RunComparison {
                        run: Some(run.into()),
                        analysis: Some(analysis.into()),
                        epochs: epochs_to_proto(epochs, metric),
                        epochs_thinned,
                        rank,
                        twin: twin.map(Into::into),
                    }
                })
                .collect(),
            best_run: best_run.map_or(String::new(), |id| id.to_string()),
            summary,
        }
    }
}

impl From<proto::AnalysisThresholds> for ThresholdOverrides {
    fn from(t: proto::AnalysisThresholds) -> Self {
        let proto::AnalysisThresholds {
            min_epochs,
            near_best_fraction,
            diverged_ratio,
            unstable_fraction,
            unstable_jump,
            overfit_val_rise,
            overfit_gap,
            slow_improvement,
            update_ratio_high,
            update_ratio_low,
        } = t;
        ThresholdOverrides {
            min_epochs,
            near_best_fraction,
            diverged_ratio,
            unstable_fraction,
            unstable_jump,
            overfit_val_rise,
            overfit_gap,
            slow_improvement,
            update_ratio_high,
            update_ratio_low,
        }
    }
}

/// Thresholds a request carries (none: every default), checked.
pub fn thresholds(
    overrides: Option<proto::AnalysisThresholds>,
) -> Result<crate::analysis::Thresholds, Status> {
    let overrides = overrides.map(ThresholdOverrides::from).unwrap_or_default();
    Ok(crate::analysis::Thresholds::try_from(overrides)?)
}
