//! Facts about a run's data and task, recorded where they are known (when the run is prepared and
//! when its data is loaded) so the analysis never has to guess them from other numbers.

/// What the model predicts.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum TaskFacts {
    Classification {
        classes: u32,
    },
    Regression {
        /// Variance of the validation targets: the loss of always predicting their mean. `None`
        /// until the data is loaded (and for runs recorded before it was kept).
        target_variance: Option<f64>,
    },
}

/// The validation metric a run reports beside its loss.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ValMetric {
    Accuracy,
    R2,
}

impl ValMetric {
    pub fn label(self) -> &'static str {
        match self {
            ValMetric::Accuracy => "accuracy",
            ValMetric::R2 => "r2",
        }
    }
}

impl TaskFacts {
    pub fn metric(self) -> ValMetric {
        match self {
            TaskFacts::Classification { .. } => ValMetric::Accuracy,
            TaskFacts::Regression { .. } => ValMetric::R2,
        }
    }

    /// The loss of a model that has learned nothing: ln C for a C-class cross-entropy (a uniform
    /// guess), the targets' variance for a squared error (their mean). `None` when not known.
    pub fn baseline_loss(self) -> Option<f64> {
        match self {
            TaskFacts::Classification { classes } if classes >= 2 => Some(f64::from(classes).ln()),
            TaskFacts::Classification { .. } => None,
            TaskFacts::Regression { target_variance } => target_variance.filter(|v| *v > 0.0),
        }
    }
}

/// A run's data, measured.
#[derive(Clone, Debug, PartialEq)]
pub struct DataFacts {
    pub task: TaskFacts,
    /// Rows trained on per epoch and rows validated on; 0 when not known yet.
    pub train_rows: u64,
    pub val_rows: u64,
    /// Optimizer steps per epoch (training rows / batch size, rounded up); 0 when not known yet.
    pub steps_per_epoch: u64,
    /// A CSV's label column, by position: `column 9 of 9 (the last: no label was named)`; empty
    /// for other datasets.
    pub label: String,
    /// Why the task is what it is: `task regression as asked`, `detected: the labels include
    /// fractions`, `a synthetic classification set`.
    pub task_reason: String,
}

impl DataFacts {
    /// Only the task known: nothing measured yet.
    pub fn of_task(task: TaskFacts) -> DataFacts {
        DataFacts {
            task,
            train_rows: 0,
            val_rows: 0,
            steps_per_epoch: 0,
            label: String::new(),
            task_reason: String::new(),
        }
    }

    /// Steps per epoch, at least 1 (for dividing by).
    pub fn steps(&self) -> f64 {
        self.steps_per_epoch.max(1) as f64
    }
}
