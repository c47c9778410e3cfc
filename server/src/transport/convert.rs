//! Conversions between the wire protocol (`strata_proto`) and the domain. From the wire:
//! `TryFrom` that destructures every field (no `..`), so a new proto field does not build until
//! it is handled here. To the wire: `From` of domain values.

use strata_proto as proto;
use tonic::Status;

use crate::{
    analysis::{ComparedRun, Comparison, GroupDiagnosis, RunAnalysis, ThresholdOverrides},
    domain::{
        group_rates, DataFacts, Diagnosis, EpochMetrics, FrozenUntil, GroupRate, GroupStats,
        ParamInit, ParameterRate, RunConfig, RunEvent, RunState, RunStatus, TaskFacts, ValMetric,
        Verdict,
    },
    error::StrataError,
    runs::{ListFilter, RunDetail, StartRequest, Started},
};

pub fn status_to_proto(status: RunStatus) -> proto::RunStatus {
    match status {
        RunStatus::Queued => proto::RunStatus::Queued,
        RunStatus::Running => proto::RunStatus::Running,
        RunStatus::Completed => proto::RunStatus::Completed,
        RunStatus::Failed => proto::RunStatus::Failed,
        RunStatus::Cancelled => proto::RunStatus::Cancelled,
        RunStatus::Diverged => proto::RunStatus::Diverged,
        RunStatus::Interrupted => proto::RunStatus::Interrupted,
    }
}

/// A status filter: unspecified is none.
fn status_filter(code: i32) -> Result<Option<RunStatus>, StrataError> {
    let status = proto::RunStatus::try_from(code)
        .map_err(|_| StrataError::invalid("status", format!("{code} is not a run status")))?;
    Ok(match status {
        proto::RunStatus::Unspecified => None,
        proto::RunStatus::Queued => Some(RunStatus::Queued),
        proto::RunStatus::Running => Some(RunStatus::Running),
        proto::RunStatus::Completed => Some(RunStatus::Completed),
        proto::RunStatus::Failed => Some(RunStatus::Failed),
        proto::RunStatus::Cancelled => Some(RunStatus::Cancelled),
        proto::RunStatus::Diverged => Some(RunStatus::Diverged),
        proto::RunStatus::Interrupted => Some(RunStatus::Interrupted),
    })
}

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
fn verdict_filter(code: i32) -> Result<Option<Verdict>, StrataError> {
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

fn frozen_to_proto(frozen: FrozenUntil) -> Option<proto::Frozen> {
    let until = match frozen {
        FrozenUntil::Never => return None,
        FrozenUntil::Epoch(epoch) => proto::frozen::Until::Epoch(epoch),
        FrozenUntil::Forever => proto::frozen::Until::Forever(true),
    };
    Some(proto::Frozen { until: Some(until) })
}

fn metric_to_proto(metric: ValMetric) -> proto::ValMetric {
    match metric {
        ValMetric::Accuracy => proto::ValMetric::Accuracy,
        ValMetric::R2 => proto::ValMetric::R2,
    }
}

impl From<GroupRate> for proto::GroupRate {
    fn from(group: GroupRate) -> Self {
        let GroupRate { name, lr, frozen } = group;
        proto::GroupRate {
            name,
            lr,
            frozen: frozen_to_proto(frozen),
        }
    }
}

impl From<DataFacts> for proto::RunFacts {
    fn from(facts: DataFacts) -> Self {
        let DataFacts {
            task,
            train_rows,
            val_rows,
            steps_per_epoch,
            label,
            task_reason,
        } = facts;
        let (kind, classes, target_variance, chance_accuracy) = match task {
            TaskFacts::Classification { classes } => (
                proto::Task::Classification,
                classes,
                None,
                (classes > 0).then(|| 1.0 / f64::from(classes)),
            ),
            TaskFacts::Regression { target_variance } => {
                (proto::Task::Regression, 0, target_variance, None)
            }
        };
        proto::RunFacts {
            task: kind as i32,
            classes,
            target_variance,
            baseline_loss: task.baseline_loss(),
            chance_accuracy,
            train_rows,
            val_rows,
            steps_per_epoch,
            label,
            task_reason,
        }
    }
}

impl From<proto::RunConfig> for RunConfig {
    fn from(config: proto::RunConfig) -> Self {
        let proto::RunConfig {
            dataset,
            samples,
            noise,
            classes,
            val_fraction,
            model,
            optimizer,
            lr,
            momentum,
            weight_decay,
            layer_lr,
            freeze,
            lr_decay,
            lr_slice,
            schedule,
            epochs,
            batch_size,
            seed,
            device,
            progress_events_per_epoch,
            label,
            val_dataset,
            task,
            init_from,
            clip_grad_norm,
        } = config;
        RunConfig {
            dataset,
            samples,
            noise,
            classes,
            val_fraction,
            model,
            optimizer,
            lr,
            momentum,
            weight_decay,
            layer_lr,
            freeze,
            lr_decay,
            lr_slice,
            schedule,
            epochs,
            batch_size,
            seed,
            device,
            progress_events_per_epoch,
            label,
            val_dataset,
            task,
            init_from,
            clip_grad_norm,
        }
    }
}

impl From<RunConfig> for proto::RunConfig {
    fn from(config: RunConfig) -> Self {
        let RunConfig {
            dataset,
            samples,
            noise,
            classes,
            val_fraction,
            model,
            optimizer,
            lr,
            momentum,
            weight_decay,
            layer_lr,
            freeze,
            lr_decay,
            lr_slice,
            schedule,
            epochs,
            batch_size,
            seed,
            device,
            progress_events_per_epoch,
            label,
            val_dataset,
            task,
            init_from,
            clip_grad_norm,
        } = config;
        proto::RunConfig {
            dataset,
            samples,
            noise,
            classes,
            val_fraction,
            model,
            optimizer,
            lr,
            momentum,
            weight_decay,
            layer_lr,
            freeze,
            lr_decay,
            lr_slice,
            schedule,
            epochs,
            batch_size,
            seed,
            device,
            progress_events_per_epoch,
            label,
            val_dataset,
            task,
            init_from,
            clip_grad_norm,
        }
    }
}

impl TryFrom<proto::StartRunRequest> for StartRequest {
    type Error = StrataError;

    fn try_from(request: proto::StartRunRequest) -> Result<Self, StrataError> {
        let proto::StartRunRequest {
            config,
            name,
            tags,
            dry_run,
        } = request;
        let config = config.ok_or_else(|| StrataError::invalid("config", "required"))?;
        Ok(StartRequest {
            config: config.into(),
            name,
            tags,
            dry_run,
        })
    }
}

impl From<Started> for proto::StartRunResponse {
    fn from(started: Started) -> Self {
        let Started {
            id,
            parameters,
            config,
            facts,
            warnings,
        } = started;
        proto::StartRunResponse {
            run_id: id.map_or(String::new(), |id| id.to_string()),
            groups: group_rates(&parameters)
                .into_iter()
                .map(Into::into)
                .collect(),
            parameters: parameters.into_iter().map(Into::into).collect(),
            config: Some(config.into()),
            facts: Some(facts.into()),
            warnings,
        }
    }
}

impl From<ParameterRate> for proto::ParameterRate {
    fn from(p: ParameterRate) -> Self {
        let ParameterRate {
            name,
            group,
            shape,
            lr,
            frozen,
            init,
        } = p;
        proto::ParameterRate {
            name,
            group,
            shape,
            lr,
            frozen: frozen_to_proto(frozen),
            init: match init {
                ParamInit::Fresh => proto::ParameterInit::Fresh,
                ParamInit::Loaded => proto::ParameterInit::Loaded,
            } as i32,
        }
    }
}

impl From<RunState> for proto::Run {
    fn from(state: RunState) -> Self {
        let RunState {
            record,
            epochs_done,
            queue_position,
        } = state;
        let val_metric = metric_to_proto(record.facts.task.metric()) as i32;
        let groups = record.groups().into_iter().map(Into::into).collect();
        proto::Run {
            groups,
            facts: Some(record.facts.into()),
            id: record.id.to_string(),
            name: record.name,
            tags: record.tags,
            status: status_to_proto(record.status) as i32,
            reason: record.reason,
            config: Some(record.config.into()),
            parameters: record.parameters.into_iter().map(Into::into).collect(),
            created_at_ms: record.created_at_ms,
            started_at_ms: record.started_at_ms,
            finished_at_ms: record.finished_at_ms,
            epochs_done,
            val_metric,
            parameter_count: record.parameter_count,
            device: record.device,
            queue_position,
            resumes: record.resumes,
        }
    }
}

impl From<GroupStats> for proto::GroupEpochStats {
    fn from(g: GroupStats) -> Self {
        let GroupStats {
            name,
            lr,
            grad_norm,
            weight_norm,
            update_ratio,
            frozen,
        } = g;
        proto::GroupEpochStats {
            name,
            lr,
            grad_norm,
            weight_norm,
            update_ratio,
            frozen,
        }
    }
}

/// An epoch on the wire, its validation metric named as the run's task says.
pub fn epoch_to_proto(e: EpochMetrics, metric: ValMetric) -> proto::EpochRecord {
    let EpochMetrics {
        epoch,
        train_loss,
        val_loss,
        val_metric,
        duration_ms,
        samples_per_sec,
        groups,
    } = e;
    proto::EpochRecord {
        epoch,
        train_loss,
        val_loss,
        val_metric: Some(match metric {
            ValMetric::Accuracy => proto::epoch_record::ValMetric::ValAccuracy(val_metric),
            ValMetric::R2 => proto::epoch_record::ValMetric::ValR2(val_metric),
        }),
        duration_ms,
        samples_per_sec,
        groups: groups.into_iter().map(Into::into).collect(),
    }
}

fn epochs_to_proto(epochs: Vec<EpochMetrics>, metric: ValMetric) -> Vec<proto::EpochRecord> {
    epochs
        .into_iter()
        .map(|e| epoch_to_proto(e, metric))
        .collect()
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

impl From<RunDetail> for proto::GetRunResponse {
    fn from(detail: RunDetail) -> Self {
        let RunDetail {
            state,
            epochs,
            analysis,
        } = detail;
        let metric = state.record.facts.task.metric();
        proto::GetRunResponse {
            run: Some(state.into()),
            epochs: epochs_to_proto(epochs, metric),
            analysis: Some(analysis.into()),
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
                        rank,
                    } = compared;
                    let metric = run.record.facts.task.metric();
                    proto::RunComparison {
                        run: Some(run.into()),
                        analysis: Some(analysis.into()),
                        epochs: epochs_to_proto(epochs, metric),
                        rank,
                    }
                })
                .collect(),
            best_run: best_run.map_or(String::new(), |id| id.to_string()),
            summary,
        }
    }
}

/// An event of a run's stream; epochs carry the run's validation metric.
pub fn event_to_proto(event: RunEvent, metric: ValMetric) -> proto::WatchEvent {
    use proto::watch_event::Event;
    {
        let event = match event {
            RunEvent::Epoch(epoch) => Event::Epoch(epoch_to_proto(epoch, metric)),
            RunEvent::Progress(p) => Event::Progress(proto::BatchProgress {
                epoch: p.epoch,
                batch: p.batch,
                batches: p.batches,
                loss: p.loss,
            }),
            RunEvent::Status { status, reason } => Event::Status(proto::StatusChange {
                status: status_to_proto(status) as i32,
                reason,
            }),
            RunEvent::Notice(notice) => Event::Notice(notice),
        };
        proto::WatchEvent { event: Some(event) }
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

impl TryFrom<proto::ListRunsRequest> for ListFilter {
    type Error = StrataError;

    fn try_from(request: proto::ListRunsRequest) -> Result<Self, StrataError> {
        let proto::ListRunsRequest {
            status,
            tag,
            limit,
            verdict,
        } = request;
        Ok(ListFilter {
            status: status_filter(status)?,
            tag: (!tag.is_empty()).then_some(tag),
            verdict: verdict_filter(verdict)?,
            limit: (limit > 0).then_some(limit as usize),
        })
    }
}
