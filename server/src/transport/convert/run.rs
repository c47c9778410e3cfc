//! A run and its epochs to the wire: its state, the facts of its data, its epochs with their
//! groups, the detail `get` answers; and the filter a list request carries.

use strata_proto as proto;

use super::analysis::verdict_filter;
use crate::{
    domain::{
        DataFacts, EpochMetrics, GroupStats, RunOrigin, RunState, RunStatus, SweepTrial, TaskFacts,
        ValMetric,
    },
    error::StrataError,
    runs::{ListFilter, RunDetail},
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

fn metric_to_proto(metric: ValMetric) -> proto::ValMetric {
    match metric {
        ValMetric::Accuracy => proto::ValMetric::Accuracy,
        ValMetric::R2 => proto::ValMetric::R2,
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
            leakage,
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
            leakage: leakage.map(Into::into),
        }
    }
}

impl From<RunState> for proto::Run {
    fn from(state: RunState) -> Self {
        let RunState {
            record,
            epochs_done,
            queue_position,
            worker_pid,
            waiting,
            worker,
            worker_losses,
        } = state;
        let val_metric = metric_to_proto(record.facts.task.metric()) as i32;
        let groups = record.groups().into_iter().map(Into::into).collect();
        let (external, hyperparameters, client_key) = match record.origin {
            RunOrigin::Trained => (false, Default::default(), String::new()),
            RunOrigin::External {
                hyperparameters,
                client_key,
            } => (true, hyperparameters.into_iter().collect(), client_key),
        };
        proto::Run {
            external,
            hyperparameters,
            client_key,
            groups,
            facts: Some(record.facts.into()),
            twin: record.twin.map_or(String::new(), |id| id.to_string()),
            twin_of: record.twin_of.map_or(String::new(), |id| id.to_string()),
            sweep: record.sweep.map(sweep_trial_to_proto),
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
            worker_pid,
            waiting,
            worker,
            worker_losses,
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

/// A group's epoch record as a client (or a worker) sends it: taken as it is (its checks are the
/// caller's: an external run's ranges, a worker's bounds).
impl From<proto::GroupEpochStats> for GroupStats {
    fn from(g: proto::GroupEpochStats) -> Self {
        let proto::GroupEpochStats {
            name,
            lr,
            grad_norm,
            weight_norm,
            update_ratio,
            frozen,
        } = g;
        GroupStats {
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
        extra,
        no_validation,
    } = e;
    proto::EpochRecord {
        epoch,
        train_loss,
        val_loss,
        val_metric: (!no_validation).then_some(match metric {
            ValMetric::Accuracy => proto::epoch_record::ValMetric::ValAccuracy(val_metric),
            ValMetric::R2 => proto::epoch_record::ValMetric::ValR2(val_metric),
        }),
        no_validation,
        duration_ms,
        samples_per_sec,
        groups: groups.into_iter().map(Into::into).collect(),
        extra,
    }
}

pub(super) fn epochs_to_proto(
    epochs: Vec<EpochMetrics>,
    metric: ValMetric,
) -> Vec<proto::EpochRecord> {
    epochs
        .into_iter()
        .map(|e| epoch_to_proto(e, metric))
        .collect()
}

impl From<RunDetail> for proto::GetRunResponse {
    fn from(detail: RunDetail) -> Self {
        let RunDetail {
            state,
            epochs,
            epochs_thinned,
            next_epoch,
            analysis,
            twin,
        } = detail;
        let metric = state.record.facts.task.metric();
        proto::GetRunResponse {
            run: Some(state.into()),
            epochs: epochs_to_proto(epochs, metric),
            analysis: Some(analysis.into()),
            twin: twin.map(Into::into),
            epochs_thinned,
            next_epoch,
        }
    }
}

impl TryFrom<proto::ListRunsRequest> for ListFilter {
    type Error = StrataError;

    fn try_from(request: proto::ListRunsRequest) -> Result<Self, StrataError> {
        let proto::ListRunsRequest {
            status,
            tag,
            limit,
            verdict,
            sweep,
        } = request;
        Ok(ListFilter {
            sweep: (!sweep.is_empty()).then_some(sweep),
            status: status_filter(status)?,
            tag: (!tag.is_empty()).then_some(tag),
            verdict: verdict_filter(verdict)?,
            limit: (limit > 0).then_some(limit as usize),
        })
    }
}

pub fn sweep_trial_to_proto(trial: SweepTrial) -> proto::SweepTrial {
    let SweepTrial {
        sweep_id,
        trial,
        settings,
    } = trial;
    proto::SweepTrial {
        sweep_id,
        trial,
        settings: settings
            .into_iter()
            .map(|(name, value)| proto::SweepSetting { name, value })
            .collect(),
    }
}

pub fn sweep_trial_from_proto(trial: proto::SweepTrial) -> SweepTrial {
    let proto::SweepTrial {
        sweep_id,
        trial,
        settings,
    } = trial;
    SweepTrial {
        sweep_id,
        trial,
        settings: settings
            .into_iter()
            .map(|proto::SweepSetting { name, value }| (name, value))
            .collect(),
    }
}
