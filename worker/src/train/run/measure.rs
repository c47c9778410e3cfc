//! What the loop measures besides training: the loss, validation, and the facts of the data.

use tch::{Kind, Reduction, TchError, Tensor};

use super::step_plan::StepPlan;
use strata_server::{domain::TaskFacts, spec::Task};

use super::MeasuredData;
use crate::train::{dataset::Dataset, model::Model};

/// Validation runs in chunks of this many rows, so a large validation set never needs one huge
/// activation tensor.
const VALIDATION_CHUNK_ROWS: i64 = 8192;

pub(crate) fn loss_of(task: Task, output: &Tensor, target: &Tensor) -> Result<Tensor, TchError> {
    match task {
        Task::Classification { .. } => output.f_log_softmax(-1, Kind::Float)?.f_nll_loss(
            target,
            None::<Tensor>,
            Reduction::Mean,
            -100,
        ),
        Task::Regression => output.f_mse_loss(target, Reduction::Mean),
    }
}

/// Validation loss and accuracy (classification) or R² (regression), without gradients.
pub(super) fn validate(model: &Model, data: &Dataset) -> Result<(f64, f64), TchError> {
    tch::no_grad(|| {
        let rows = data.val_x.size()[0];
        let mut loss_sum = 0.0;
        let mut correct = 0.0;
        let mut squared_error = 0.0;
        let mut start = 0;
        while start < rows {
            let len = VALIDATION_CHUNK_ROWS.min(rows - start);
            let x = data.val_x.f_narrow(0, start, len)?;
            let y = data.val_y.f_narrow(0, start, len)?;
            let output = model.forward(&x, false)?;
            loss_sum += loss_of(data.task, &output, &y)?.f_double_value(&[])? * len as f64;
            match data.task {
                Task::Classification { .. } => {
                    correct += output
                        .f_argmax(-1, false)?
                        .f_eq_tensor(&y)?
                        .f_sum(Kind::Double)?
                        .f_double_value(&[])?;
                }
                Task::Regression => {
                    squared_error += output
                        .f_sub(&y)?
                        .f_square()?
                        .f_sum(Kind::Double)?
                        .f_double_value(&[])?;
                }
            }
            start += len;
        }
        let metric = match data.task {
            Task::Classification { .. } => correct / rows as f64,
            Task::Regression => {
                let variance = data
                    .val_y
                    .f_sub(&data.val_y.f_mean(Kind::Float)?)?
                    .f_square()?
                    .f_sum(Kind::Double)?
                    .f_double_value(&[])?;
                if variance > 0.0 {
                    1.0 - squared_error / variance
                } else {
                    0.0
                }
            }
        };
        Ok((loss_sum / rows as f64, metric))
    })
}

/// What the run's data is, measured on the loaded data (how the label and the task were chosen,
/// and what the leakage check found, the daemon recorded when the run was prepared, on the same
/// split).
pub(super) fn measure_data(data: &Dataset, plan: &StepPlan) -> Result<MeasuredData, TchError> {
    let task = match data.task {
        Task::Classification { classes } => TaskFacts::Classification {
            classes: u32::try_from(classes).unwrap_or(u32::MAX),
        },
        Task::Regression => TaskFacts::Regression {
            target_variance: Some(target_variance(&data.val_y)?),
        },
    };
    Ok(MeasuredData {
        task,
        train_rows: plan.train_rows as u64,
        val_rows: data.val_y.size()[0] as u64,
        steps_per_epoch: plan.steps_per_epoch,
    })
}

/// The population variance of the targets: the loss of always predicting their mean.
fn target_variance(targets: &Tensor) -> Result<f64, TchError> {
    let rows = targets.size()[0].max(1) as f64;
    let mean = targets.f_mean(Kind::Double)?;
    Ok(targets
        .f_to_kind(Kind::Double)?
        .f_sub(&mean)?
        .f_square()?
        .f_sum(Kind::Double)?
        .f_double_value(&[])?
        / rows)
}
