//! Runs logged from outside: CreateRun, LogEpochs and FinishRun from the wire. Shapes only (a
//! oneof present, an enum known); the rules on values are the run manager's.

use strata_proto as proto;

use crate::{
    domain::{EpochMetrics, GroupStats, StepRecord, TaskFacts, ValMetric},
    error::StrataError,
    runs::{CreateExternal, ExternalEnd, Logged, LoggedEpoch, LoggedSteps, RunSteps},
};

use super::run::status_to_proto;

impl TryFrom<proto::CreateRunRequest> for CreateExternal {
    type Error = StrataError;

    fn try_from(request: proto::CreateRunRequest) -> Result<Self, StrataError> {
        let proto::CreateRunRequest {
            name,
            tags,
            hyperparameters,
            dataset,
            model,
            groups,
            task,
            parameter_count,
            train_rows,
            val_rows,
            steps_per_epoch,
            client_key,
        } = request;
        let task = match task {
            Some(proto::create_run_request::Task::Classes(classes)) => {
                TaskFacts::Classification { classes }
            }
            Some(proto::create_run_request::Task::TargetVariance(variance)) => {
                TaskFacts::Regression {
                    target_variance: Some(variance),
                }
            }
            None => return Err(StrataError::invalid(
                "task",
                "required: `classes` for a classification or `target_variance` for a regression",
            )),
        };
        let groups = groups
            .into_iter()
            .map(|group| {
                let proto::GroupRate {
                    name,
                    lr,
                    frozen: _, // An external run's rate table records no freezing.
                } = group;
                (name, lr)
            })
            .collect();
        Ok(CreateExternal {
            name,
            tags,
            hyperparameters: hyperparameters.into_iter().collect(),
            dataset,
            model,
            groups,
            task,
            parameter_count,
            train_rows,
            val_rows,
            steps_per_epoch,
            client_key,
        })
    }
}

impl TryFrom<proto::EpochRecord> for LoggedEpoch {
    type Error = StrataError;

    fn try_from(epoch: proto::EpochRecord) -> Result<Self, StrataError> {
        let proto::EpochRecord {
            epoch,
            train_loss,
            val_loss,
            val_metric,
            duration_ms,
            samples_per_sec,
            groups,
            extra,
            no_validation,
        } = epoch;
        // Not measured: NaN, as an epoch not validated has no validation loss.
        let (metric, val_metric) = match val_metric {
            Some(proto::epoch_record::ValMetric::ValAccuracy(v)) => (Some(ValMetric::Accuracy), v),
            Some(proto::epoch_record::ValMetric::ValR2(v)) => (Some(ValMetric::R2), v),
            None => (None, f64::NAN),
        };
        let val_loss = if no_validation { f64::NAN } else { val_loss };
        let groups = groups.into_iter().map(GroupStats::from).collect();
        Ok(LoggedEpoch {
            metrics: EpochMetrics {
                epoch,
                train_loss,
                val_loss,
                val_metric,
                duration_ms,
                samples_per_sec,
                groups,
                extra,
                no_validation,
            },
            metric,
        })
    }
}

/// FinishRun's status as an end an external run's client may choose.
pub fn external_end(code: i32) -> Result<ExternalEnd, StrataError> {
    match proto::RunStatus::try_from(code) {
        Ok(proto::RunStatus::Completed) => Ok(ExternalEnd::Completed),
        Ok(proto::RunStatus::Failed) => Ok(ExternalEnd::Failed),
        Ok(proto::RunStatus::Cancelled) => Ok(ExternalEnd::Cancelled),
        Ok(
            proto::RunStatus::Unspecified
            | proto::RunStatus::Queued
            | proto::RunStatus::Running
            | proto::RunStatus::Diverged
            | proto::RunStatus::Interrupted,
        )
        | Err(_) => Err(StrataError::invalid(
            "status",
            "a run logged from outside ends completed, failed or cancelled (a non-finite loss in LogEpochs marks it diverged)",
        )),
    }
}

impl From<Logged> for proto::LogEpochsResponse {
    fn from(logged: Logged) -> Self {
        let Logged {
            stored,
            epochs_done,
            status,
        } = logged;
        proto::LogEpochsResponse {
            stored,
            epochs_done,
            status: status_to_proto(status) as i32,
        }
    }
}

impl From<proto::StepRecord> for StepRecord {
    fn from(record: proto::StepRecord) -> Self {
        let proto::StepRecord {
            step,
            epoch,
            scalars,
        } = record;
        StepRecord {
            step,
            epoch,
            scalars: scalars.into_iter().collect(),
        }
    }
}

impl From<StepRecord> for proto::StepRecord {
    fn from(record: StepRecord) -> Self {
        let StepRecord {
            step,
            epoch,
            scalars,
        } = record;
        proto::StepRecord {
            step,
            epoch,
            scalars: scalars.into_iter().collect(),
        }
    }
}

impl From<LoggedSteps> for proto::LogStepsResponse {
    fn from(logged: LoggedSteps) -> Self {
        let LoggedSteps { stored, last_step } = logged;
        proto::LogStepsResponse { stored, last_step }
    }
}

impl From<RunSteps> for proto::GetRunStepsResponse {
    fn from(steps: RunSteps) -> Self {
        let RunSteps {
            steps,
            thinned,
            stored,
        } = steps;
        proto::GetRunStepsResponse {
            steps: steps.into_iter().map(Into::into).collect(),
            thinned,
            stored_steps: stored,
        }
    }
}
