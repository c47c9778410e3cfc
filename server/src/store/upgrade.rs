//! Bringing a store written by an older `stratad` up to this one's record format.
//!
//! Format 1 (the wire protocol's messages, stored as they were sent) kept no facts about a run's
//! data: the analysis guessed them from other numbers. Upgrading to format 2 estimates them once,
//! from what format 1 did keep, and writes them into each run's record:
//! - the task from the stored metric name (`accuracy` or `r2`);
//! - the class count from the output layer's bias (the last one-dimensional parameter; exact for
//!   every built-in model), else the config's class count;
//! - the regression targets' variance from a stored epoch's validation loss and R² (R² = 1 − MSE /
//!   variance);
//! - the training rows from an epoch's throughput × duration (exact up to rounding), else from the
//!   config's sample count and split; steps per epoch from those and the batch size.
//!
//! Records are decode-compatible across the two formats, so a store whose upgrade was cut short
//! reads fine and is upgraded again on the next start; the format number is written last.

use super::record::StoredRun;
use crate::domain::{DataFacts, EpochMetrics, TaskFacts};

/// The facts of a format-1 run, estimated from its record and its stored epochs.
pub fn legacy_facts(run: &StoredRun, epochs: &[EpochMetrics]) -> DataFacts {
    let config = run.config.clone().unwrap_or_default();
    let task = if run.val_metric == "r2" || config.task == "regression" {
        TaskFacts::Regression {
            target_variance: epochs
                .iter()
                .rev()
                .filter(|e| {
                    e.val_loss.is_finite() && e.val_metric.is_finite() && e.val_metric < 1.0
                })
                .map(|e| e.val_loss / (1.0 - e.val_metric))
                .find(|v| v.is_finite() && *v > 0.0),
        }
    } else {
        let from_head = run
            .parameters
            .iter()
            .rev()
            .find(|p| p.shape.len() == 1)
            .and_then(|p| u32::try_from(p.shape[0]).ok())
            .filter(|&c| c >= 2);
        TaskFacts::Classification {
            classes: from_head.or(config.classes).unwrap_or(2),
        }
    };
    let samples = config.samples.map(f64::from);
    let val_rows = match (samples, config.val_fraction) {
        (Some(samples), Some(fraction)) => (samples * fraction).round().max(0.0),
        _ => 0.0,
    };
    let train_rows = epochs
        .iter()
        .map(|e| (e.samples_per_sec * e.duration_ms / 1000.0).round())
        .find(|rows| rows.is_finite() && *rows >= 1.0)
        .or_else(|| samples.map(|s| (s - val_rows).max(0.0)))
        .unwrap_or(0.0) as u64;
    let batch = u64::from(
        config
            .batch_size
            .unwrap_or(crate::spec::DEFAULT_BATCH_SIZE)
            .max(1),
    );
    DataFacts {
        task,
        train_rows,
        val_rows: val_rows as u64,
        steps_per_epoch: train_rows.div_ceil(batch.min(train_rows.max(1))),
        label: String::new(),
        task_reason: "recorded before stratad kept it".to_string(),
        leakage: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::record::{StoredConfig, StoredParameter};

    fn run(metric: &str, parameters: &[&[i64]]) -> StoredRun {
        StoredRun {
            val_metric: metric.into(),
            config: Some(StoredConfig {
                samples: Some(1000),
                val_fraction: Some(0.2),
                batch_size: Some(64),
                classes: Some(3),
                ..Default::default()
            }),
            parameters: parameters
                .iter()
                .map(|shape| StoredParameter {
                    shape: shape.to_vec(),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn classes_come_from_the_head_and_rows_from_the_throughput() {
        let epochs = [EpochMetrics {
            epoch: 1,
            samples_per_sec: 3200.0,
            duration_ms: 250.0,
            ..Default::default()
        }];
        let facts = legacy_facts(
            &run("accuracy", &[&[64, 2], &[64], &[10, 64], &[10]]),
            &epochs,
        );
        assert_eq!(facts.task, TaskFacts::Classification { classes: 10 });
        assert_eq!((facts.train_rows, facts.val_rows), (800, 200));
        assert_eq!(facts.steps_per_epoch, 13);
        // Without epochs: the config's split.
        let facts = legacy_facts(&run("accuracy", &[]), &[]);
        assert_eq!(facts.task, TaskFacts::Classification { classes: 3 });
        assert_eq!((facts.train_rows, facts.steps_per_epoch), (800, 13));
    }

    #[test]
    fn a_regression_variance_comes_from_loss_and_r2() {
        let epochs = [EpochMetrics {
            epoch: 1,
            val_loss: 0.5,
            val_metric: 0.75,
            ..Default::default()
        }];
        let facts = legacy_facts(&run("r2", &[&[1, 4], &[1]]), &epochs);
        assert_eq!(
            facts.task,
            TaskFacts::Regression {
                target_variance: Some(2.0)
            }
        );
    }
}
