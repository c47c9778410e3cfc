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
    /// What the leakage check found when the run was prepared; `None` when the data was not
    /// checked (synthetic sets, runs recorded before the check).
    pub leakage: Option<Leakage>,
}

/// What the leakage check found in a CSV or IDX dataset, on the split the run trains on (see
/// [`crate::train::data::leakage`] for how each number is measured and the thresholds of its
/// findings).
#[derive(Clone, Debug, PartialEq)]
pub struct Leakage {
    /// Validation rows checked, and the training rows they were checked against.
    pub val_rows: u64,
    pub train_rows: u64,
    /// Validation rows equal to a training row, every feature and the label, as parsed.
    pub exact_rows: u64,
    /// Validation rows equal to a training row once both are standardized (with the training
    /// statistics) and rounded to `near_tolerance_std` standard deviations; exact copies included.
    pub near_rows: u64,
    pub near_tolerance_std: f64,
    /// Feature columns that give the label away, in the file's order.
    pub label_columns: Vec<LeakyColumn>,
    /// Classification: the total variation distance between the training and the validation
    /// class proportions (0: the same balance, 1: no class in common).
    pub class_balance_distance: Option<f64>,
    /// What `dedupe` dropped before the split: rows repeating an earlier row of the dataset, and
    /// rows of a validation file that repeat a training row.
    pub dropped_repeats: u64,
    pub dropped_val_copies: u64,
    /// One sentence per finding that makes validation untrustworthy; empty when none.
    pub findings: Vec<String>,
}

impl Leakage {
    pub fn exact_fraction(&self) -> f64 {
        fraction(self.exact_rows, self.val_rows)
    }

    pub fn near_fraction(&self) -> f64 {
        fraction(self.near_rows, self.val_rows)
    }
}

fn fraction(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

/// A feature column that gives the label away on its own.
#[derive(Clone, Debug, PartialEq)]
pub struct LeakyColumn {
    /// 1-based: the CSV file's column (the label's own column counted), or an image's value in
    /// channel, row, column order.
    pub position: u32,
    /// As the findings name it: `column 3`, `pixel 200`. Never a header: the daemon does not
    /// repeat a file's contents.
    pub name: String,
    pub how: ColumnLeak,
}

/// How a column gives the label away, measured on the training rows.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ColumnLeak {
    /// Equal to the label (a regression's target, a classifier's class number) on every row.
    EqualsLabel,
    /// Classification: each of its few distinct values goes with a single class.
    DeterminesClass { values: u32 },
    /// Regression: correlated with the target at least
    /// [`crate::train::data::leakage::TARGET_CORRELATION_LEAK`] in magnitude.
    Correlated { correlation: f64 },
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
            leakage: None,
        }
    }

    /// Steps per epoch, at least 1 (for dividing by).
    pub fn steps(&self) -> f64 {
        self.steps_per_epoch.max(1) as f64
    }
}
