//! Labels turned into targets: the task decided over both files (unless given), and for
//! classification the classes, numbered in sorted order.

use super::{CsvTable, RawLabel, AUTO_CLASSIFICATION_MAX_CLASSES};
use crate::{
    error::{Result, StrataError},
    spec::{Task, TaskKind},
    train::data::{Samples, MAX_CLASSES},
};

/// The training file, and the validation file when there is one, as samples with targets.
pub struct Labelled {
    pub train: Samples,
    pub val: Option<Samples>,
    pub task: Task,
    /// How the label column and the task were chosen.
    pub choice: LabelChoice,
}

/// How a CSV's label column and task were chosen, for the run's facts and its warnings. Columns
/// are named by position only: the daemon never repeats a file's contents, a header included.
#[derive(Clone, Debug, PartialEq)]
pub struct LabelChoice {
    /// 1-based, of `columns`.
    pub column: usize,
    pub columns: usize,
    /// Whether the client named the label (by header or index); else it is the last column.
    pub named: bool,
    /// Whether the task was detected from the labels (not given).
    pub detected: bool,
    /// Why the task is what it is.
    pub reason: String,
}

impl LabelChoice {
    /// `column 9 of 9 (the last: no label was named)`.
    pub fn described(&self) -> String {
        if self.named {
            format!("column {} of {}", self.column, self.columns)
        } else {
            format!(
                "column {} of {} (the last: no label was named)",
                self.column, self.columns
            )
        }
    }
}

/// Decides the task and the classes over both files, and turns labels into targets.
pub fn labelled(
    train: CsvTable,
    val: Option<CsvTable>,
    task: Option<TaskKind>,
) -> Result<Labelled> {
    if let Some(val) = &val {
        check_same_columns(&train, val)?;
    }
    let tables: Vec<&CsvTable> = std::iter::once(&train).chain(val.as_ref()).collect();
    let (kind, reason) = match task {
        Some(kind) => (kind, format!("task {} as asked", kind.label())),
        None => detect_task(&tables),
    };
    let choice = LabelChoice {
        column: train.label_column + 1,
        columns: train.columns,
        named: train.label_given,
        detected: task.is_none(),
        reason,
    };
    if kind == TaskKind::Regression {
        return Ok(regression_targets(train, val, choice));
    }
    let classes = Classes::of(&tables);
    let count = classes.count();
    let label_name = train.label_name();
    let invalid = |message: String| StrataError::invalid("dataset", message);
    if count > MAX_CLASSES {
        return Err(invalid(format!(
            "{}: the label ({label_name}) has {count} distinct values; at most {MAX_CLASSES} classes are allowed (for a numeric target, set task regression)",
            train.path.display()
        )));
    }
    if count < 2 {
        return Err(invalid(format!(
            "{}: the label ({label_name}) has a single value, so there is nothing to classify; pick another label column",
            train.path.display()
        )));
    }
    let targets =
        |t: &CsvTable| -> Vec<f32> { t.labels.iter().map(|l| classes.of_label(t, l)).collect() };
    let train_targets = targets(&train);
    let val_targets = val.as_ref().map(targets);
    Ok(Labelled {
        train: into_samples(train, train_targets),
        val: val.zip(val_targets).map(|(v, t)| into_samples(v, t)),
        task: Task::Classification {
            classes: count as i64,
        },
        choice,
    })
}

/// The labels that are numbers, in both files.
fn number_labels<'a>(tables: &'a [&'a CsvTable]) -> impl Iterator<Item = f64> + 'a {
    tables
        .iter()
        .flat_map(|t| t.labels.iter())
        .filter_map(|l| match l {
            RawLabel::Number(n) => Some(*n),
            RawLabel::Text(_) => None,
        })
}

/// Classification when any label is text, or when every label is a whole number and there are
/// few distinct ones; regression otherwise. With why, in a few words.
fn detect_task(tables: &[&CsvTable]) -> (TaskKind, String) {
    if tables.iter().any(|t| !t.texts.is_empty()) {
        return (
            TaskKind::Classification,
            "detected: the labels are text".into(),
        );
    }
    let mut distinct: Vec<f64> = Vec::new();
    for n in number_labels(tables) {
        if n.fract() != 0.0 {
            return (
                TaskKind::Regression,
                "detected: the labels include fractions".into(),
            );
        }
        if !distinct.contains(&n) {
            if distinct.len() == AUTO_CLASSIFICATION_MAX_CLASSES {
                return (
                    TaskKind::Regression,
                    format!(
                        "detected: more than {AUTO_CLASSIFICATION_MAX_CLASSES} distinct whole-number labels"
                    ),
                );
            }
            distinct.push(n);
        }
    }
    (
        TaskKind::Classification,
        format!("detected: {} distinct whole-number labels", distinct.len()),
    )
}

/// Every label as a regression target.
fn regression_targets(train: CsvTable, val: Option<CsvTable>, choice: LabelChoice) -> Labelled {
    let targets = |t: &CsvTable| -> Vec<f32> {
        t.labels
            .iter()
            .map(|l| match l {
                RawLabel::Number(n) => *n as f32,
                // read_csv rejects text labels when the task is regression, and detection
                // only picks regression when there are none.
                RawLabel::Text(_) => f32::NAN,
            })
            .collect()
    };
    let val = val.map(|v| {
        let targets = targets(&v);
        into_samples(v, targets)
    });
    let targets = targets(&train);
    Labelled {
        train: into_samples(train, targets),
        val,
        task: Task::Regression,
        choice,
    }
}

/// The classes over both files: the numbers in numeric order, then the texts in alphabetical
/// order.
struct Classes<'a> {
    numbers: Vec<f64>,
    texts: Vec<&'a str>,
}

impl<'a> Classes<'a> {
    fn of(tables: &[&'a CsvTable]) -> Self {
        let mut numbers: Vec<f64> = number_labels(tables).collect();
        numbers.sort_by(f64::total_cmp);
        numbers.dedup();
        let mut texts: Vec<&str> = tables
            .iter()
            .flat_map(|t| t.texts.iter().map(String::as_str))
            .collect();
        texts.sort_unstable();
        texts.dedup();
        Classes { numbers, texts }
    }

    fn count(&self) -> usize {
        self.numbers.len() + self.texts.len()
    }

    /// The class index of a label of `table`, as a target.
    fn of_label(&self, table: &CsvTable, label: &RawLabel) -> f32 {
        let index = match label {
            RawLabel::Number(n) => self
                .numbers
                .binary_search_by(|c| c.total_cmp(n))
                .unwrap_or(0),
            RawLabel::Text(id) => {
                let text = table.texts[*id as usize].as_str();
                self.numbers.len() + self.texts.binary_search(&text).unwrap_or(0)
            }
        };
        index as f32
    }
}

fn into_samples(table: CsvTable, targets: Vec<f32>) -> Samples {
    Samples {
        features: table.features,
        targets,
        sample_shape: vec![table.columns as i64 - 1],
    }
}

fn check_same_columns(train: &CsvTable, val: &CsvTable) -> Result<()> {
    let invalid = |message: String| StrataError::invalid("val_dataset", message);
    if val.columns != train.columns {
        return Err(invalid(format!(
            "{} has {} columns, but the dataset {} has {}; both need the same columns",
            val.path.display(),
            val.columns,
            train.path.display(),
            train.columns
        )));
    }
    if let (Some(a), Some(b)) = (&train.header, &val.header) {
        if let Some(column) = a.iter().zip(b).position(|(x, y)| x != y) {
            return Err(invalid(format!(
                "the header of {} differs from the dataset {}'s at column {}; both need the same columns",
                val.path.display(),
                train.path.display(),
                column + 1
            )));
        }
    }
    Ok(())
}
