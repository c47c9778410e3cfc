//! The dataset part of a run's configuration: where the data comes from, how it is validated and
//! what the model learns from it. Parsing only: nothing here touches the file system (reading the
//! files is `train::data`'s job, when a run is started and when it trains).

use std::path::{Path, PathBuf};

use super::{finite_in, in_range};
use crate::error::{Result, StrataError};

pub const SYNTHETIC_DATASETS: &str = "spirals, moons, blobs, xor, regression";
pub const DATASETS: &str = "spirals, moons, blobs, xor, regression, csv:PATH, idx:DIR";
/// Longest label column name accepted.
const MAX_LABEL_CHARS: usize = 200;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyntheticKind {
    Spirals,
    Moons,
    Blobs,
    Xor,
    Regression,
}

impl SyntheticKind {
    fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "spirals" => SyntheticKind::Spirals,
            "moons" => SyntheticKind::Moons,
            "blobs" => SyntheticKind::Blobs,
            "xor" => SyntheticKind::Xor,
            "regression" => SyntheticKind::Regression,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            SyntheticKind::Spirals => "spirals",
            SyntheticKind::Moons => "moons",
            SyntheticKind::Blobs => "blobs",
            SyntheticKind::Xor => "xor",
            SyntheticKind::Regression => "regression",
        }
    }

    pub fn has_class_count(self) -> bool {
        matches!(self, SyntheticKind::Spirals | SyntheticKind::Blobs)
    }

    pub fn default_noise(self) -> f64 {
        match self {
            SyntheticKind::Spirals => 0.2,
            SyntheticKind::Moons => 0.1,
            SyntheticKind::Blobs => 1.0,
            SyntheticKind::Xor => 0.1,
            SyntheticKind::Regression => 0.1,
        }
    }

    fn task_kind(self) -> TaskKind {
        match self {
            SyntheticKind::Regression => TaskKind::Regression,
            _ => TaskKind::Classification,
        }
    }
}

/// What the model learns, as `--task` names it (the class count comes from the data).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TaskKind {
    Classification,
    Regression,
}

impl TaskKind {
    /// Parses `classification` or `regression`; empty means "detect from the data".
    pub fn parse(text: &str) -> Result<Option<Self>> {
        match text.trim().to_ascii_lowercase().as_str() {
            "" => Ok(None),
            "classification" => Ok(Some(TaskKind::Classification)),
            "regression" => Ok(Some(TaskKind::Regression)),
            other => Err(StrataError::invalid(
                "task",
                format!("'{other}' is not a task; allowed: classification, regression (or leave it out to detect it from the labels)"),
            )),
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            TaskKind::Classification => "classification",
            TaskKind::Regression => "regression",
        }
    }
}

/// What the model learns: a class out of `classes`, or one real number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Task {
    Classification { classes: i64 },
    Regression,
}

impl Task {
    pub fn outputs(self) -> i64 {
        match self {
            Task::Classification { classes } => classes,
            Task::Regression => 1,
        }
    }

    pub fn metric_name(self) -> &'static str {
        match self {
            Task::Classification { .. } => "accuracy",
            Task::Regression => "r2",
        }
    }

    pub fn kind(self) -> TaskKind {
        match self {
            Task::Classification { .. } => TaskKind::Classification,
            Task::Regression => TaskKind::Regression,
        }
    }
}

/// A synthetic set, generated deterministically from the run's seed.
#[derive(Clone, Debug, PartialEq)]
pub struct SyntheticSpec {
    pub kind: SyntheticKind,
    pub samples: u32,
    pub noise: f64,
    pub classes: u32,
}

impl SyntheticSpec {
    pub fn features(&self) -> i64 {
        match self.kind {
            SyntheticKind::Regression => 4,
            _ => 2,
        }
    }

    pub fn task(&self) -> Task {
        match self.kind {
            SyntheticKind::Regression => Task::Regression,
            SyntheticKind::Moons | SyntheticKind::Xor => Task::Classification { classes: 2 },
            SyntheticKind::Spirals | SyntheticKind::Blobs => Task::Classification {
                classes: i64::from(self.classes),
            },
        }
    }
}

/// Where the training data comes from.
#[derive(Clone, Debug, PartialEq)]
pub enum DataSource {
    Synthetic(SyntheticSpec),
    /// A CSV file of numeric feature columns and one label column (`None`: the last column).
    Csv {
        path: PathBuf,
        label: Option<String>,
    },
    /// MNIST-style IDX files in a folder (`train-images-idx3-ubyte`, `train-labels-idx1-ubyte`).
    Idx {
        dir: PathBuf,
    },
}

impl DataSource {
    /// As the config stores it: `spirals`, `csv:/data/iris.csv`, `idx:/data/mnist`.
    pub fn spec_text(&self) -> String {
        match self {
            DataSource::Synthetic(s) => s.kind.name().to_string(),
            DataSource::Csv { path, .. } => format!("csv:{}", path.display()),
            DataSource::Idx { dir } => format!("idx:{}", dir.display()),
        }
    }
}

/// Where the validation data comes from.
#[derive(Clone, Debug, PartialEq)]
pub enum Validation {
    /// A seeded split of this fraction of the training data.
    Split(f64),
    /// A separate CSV file with the training file's columns.
    CsvFile(PathBuf),
    /// An IDX folder's `t10k-*` files when it has them, else a split of this fraction.
    IdxTestFilesOrSplit(f64),
}

#[derive(Clone, Debug, PartialEq)]
pub struct DatasetSpec {
    pub source: DataSource,
    pub validation: Validation,
    /// `--task` as given; `None` detects it from the labels.
    pub task: Option<TaskKind>,
    /// Drop exact repeats of a row before the split (and validation-file rows that repeat a
    /// training row); files only.
    pub dedupe: bool,
}

/// The dataset fields of a `RunConfig`, as sent.
pub struct DatasetRequest<'a> {
    pub dataset: &'a str,
    pub samples: Option<u32>,
    pub noise: Option<f64>,
    pub classes: Option<u32>,
    pub val_fraction: Option<f64>,
    pub label: &'a str,
    pub val_dataset: &'a str,
    pub task: &'a str,
    pub dedupe: bool,
}

/// Limits and defaults the parser applies, from the spec module.
pub struct DatasetLimits {
    pub default_samples: u32,
    pub max_samples: u32,
    pub default_classes: u32,
    pub max_classes: u32,
    pub default_val_fraction: f64,
}

fn parse_val_fraction(value: f64) -> Result<f64> {
    finite_in(
        "val_fraction",
        value,
        0.01,
        0.9,
        "a fraction from 0.01 to 0.9",
    )
}

/// An absolute path after `kind:`. Files are read on the daemon's host, where a relative path
/// would mean the daemon's working directory — never what a remote user meant.
fn parse_path(field: &str, kind: &str, text: &str) -> Result<PathBuf> {
    let path = text.trim();
    if path.is_empty() {
        return Err(StrataError::invalid(
            field,
            format!("'{kind}:' needs a path, e.g. {kind}:/data/train.csv"),
        ));
    }
    if path.chars().any(char::is_control) {
        return Err(StrataError::invalid(
            field,
            "the path contains control characters",
        ));
    }
    if !Path::new(path).is_absolute() {
        return Err(StrataError::invalid(
            field,
            format!("'{kind}:{path}': the path must be absolute (the daemon reads it on its own host; the strata CLI makes relative paths absolute)"),
        ));
    }
    Ok(PathBuf::from(path))
}

fn not_a_dataset(text: &str) -> StrataError {
    StrataError::invalid(
        "dataset",
        format!("'{text}' is not a dataset; allowed: {DATASETS}"),
    )
}

/// A synthetic set's name, in any case.
fn parse_synthetic_kind(text: &str) -> Result<SyntheticKind> {
    SyntheticKind::parse(&text.to_ascii_lowercase()).ok_or_else(|| not_a_dataset(text))
}

/// `csv:PATH` or `idx:DIR` (`text` split at its first colon into `kind` and `rest`), which take
/// none of the synthetic sets' fields.
fn parse_file_source(
    text: &str,
    kind: &str,
    rest: &str,
    label: &str,
    request: &DatasetRequest<'_>,
) -> Result<DataSource> {
    let kind = kind.trim().to_ascii_lowercase();
    let source = match kind.as_str() {
        "csv" => DataSource::Csv {
            path: parse_path("dataset", "csv", rest)?,
            label: (!label.is_empty()).then(|| label.to_string()),
        },
        "idx" => DataSource::Idx {
            dir: parse_path("dataset", "idx", rest)?,
        },
        _ => return Err(not_a_dataset(text)),
    };
    for (field, given) in [
        ("samples", request.samples.is_some()),
        ("noise", request.noise.is_some()),
        ("classes", request.classes.is_some()),
    ] {
        if given {
            return Err(StrataError::invalid(
                field,
                format!("applies to the synthetic datasets ({SYNTHETIC_DATASETS}); {kind}: datasets use every sample of their files"),
            ));
        }
    }
    Ok(source)
}

/// A label column is named only for a CSV file, and briefly.
fn check_label(source: &DataSource, label: &str) -> Result<()> {
    if label.is_empty() {
        return Ok(());
    }
    if !matches!(source, DataSource::Csv { .. }) {
        return Err(StrataError::invalid(
            "label",
            "applies to csv:PATH datasets (the column holding the label)",
        ));
    }
    if label.chars().count() > MAX_LABEL_CHARS || label.chars().any(char::is_control) {
        return Err(StrataError::invalid(
            "label",
            format!("a column name of at most {MAX_LABEL_CHARS} printable characters, or a column index"),
        ));
    }
    Ok(())
}

/// A synthetic set fixes its task: a `task` given must be that one.
fn check_task(source: &DataSource, task: Option<TaskKind>) -> Result<()> {
    if let (DataSource::Synthetic(s), Some(task)) = (source, task) {
        if task != s.kind.task_kind() {
            return Err(StrataError::invalid(
                "task",
                format!(
                    "{} is a {} dataset; leave task out or pick a {} dataset",
                    s.kind.name(),
                    s.kind.task_kind().label(),
                    task.label()
                ),
            ));
        }
    }
    Ok(())
}

/// A split of the training data (an IDX folder's t10k files when it has them and no fraction is
/// given), or a CSV file of its own for a CSV dataset.
fn parse_validation(
    source: &DataSource,
    request: &DatasetRequest<'_>,
    limits: &DatasetLimits,
) -> Result<Validation> {
    let val_dataset = request.val_dataset.trim();
    if val_dataset.is_empty() {
        let fraction =
            parse_val_fraction(request.val_fraction.unwrap_or(limits.default_val_fraction))?;
        return Ok(match source {
            DataSource::Idx { .. } if request.val_fraction.is_none() => {
                Validation::IdxTestFilesOrSplit(fraction)
            }
            _ => Validation::Split(fraction),
        });
    }
    if !matches!(source, DataSource::Csv { .. }) {
        return Err(StrataError::invalid(
            "val_dataset",
            "applies to csv:PATH datasets (an idx:DIR dataset validates on DIR's t10k-* files when it has them)",
        ));
    }
    if request.val_fraction.is_some() {
        return Err(StrataError::invalid(
            "val_fraction",
            "validation comes from val_dataset, so there is nothing to split; give one of the two",
        ));
    }
    match val_dataset.split_once(':') {
        Some((kind, rest)) if kind.trim().eq_ignore_ascii_case("csv") => Ok(
            Validation::CsvFile(parse_path("val_dataset", "csv", rest)?),
        ),
        _ => Err(StrataError::invalid(
            "val_dataset",
            format!("'{val_dataset}' is not a validation file; allowed: csv:PATH (with the dataset's columns)"),
        )),
    }
}

impl DatasetSpec {
    /// Parses the dataset fields, checking them in this order (the first bad one is the error).
    pub fn parse(request: &DatasetRequest<'_>, limits: &DatasetLimits) -> Result<DatasetSpec> {
        let text = request.dataset.trim();
        if text.is_empty() {
            return Err(StrataError::invalid(
                "dataset",
                format!("required; allowed: {DATASETS}"),
            ));
        }
        let task = TaskKind::parse(request.task)?;
        let label = request.label.trim();
        let source = match text.split_once(':') {
            None => DataSource::Synthetic(Self::synthetic(
                parse_synthetic_kind(text)?,
                request,
                limits,
            )?),
            Some((kind, rest)) => parse_file_source(text, kind, rest, label, request)?,
        };
        check_label(&source, label)?;
        check_task(&source, task)?;
        if request.dedupe && matches!(source, DataSource::Synthetic(_)) {
            return Err(StrataError::invalid(
                "dedupe",
                "applies to csv:PATH and idx:DIR datasets (a synthetic set has no repeated rows to drop)",
            ));
        }
        let validation = parse_validation(&source, request, limits)?;
        if let (DataSource::Synthetic(s), Validation::Split(fraction)) = (&source, &validation) {
            if f64::from(s.samples) * fraction < 1.0 {
                return Err(StrataError::invalid(
                    "val_fraction",
                    "leaves no validation sample; raise samples or val_fraction",
                ));
            }
        }
        Ok(DatasetSpec {
            source,
            validation,
            task,
            dedupe: request.dedupe,
        })
    }

    fn synthetic(
        kind: SyntheticKind,
        request: &DatasetRequest<'_>,
        limits: &DatasetLimits,
    ) -> Result<SyntheticSpec> {
        if request.classes.is_some() && !kind.has_class_count() {
            return Err(StrataError::invalid(
                "classes",
                format!(
                    "{} has a fixed number of classes; classes applies to spirals and blobs",
                    kind.name()
                ),
            ));
        }
        Ok(SyntheticSpec {
            kind,
            samples: in_range(
                "samples",
                request.samples.unwrap_or(limits.default_samples),
                10,
                limits.max_samples,
            )?,
            noise: finite_in(
                "noise",
                request.noise.unwrap_or(kind.default_noise()),
                0.0,
                10.0,
                "0 to 10",
            )?,
            classes: in_range(
                "classes",
                request.classes.unwrap_or(limits.default_classes),
                2,
                limits.max_classes,
            )?,
        })
    }

    pub fn synthetic_spec(&self) -> Option<&SyntheticSpec> {
        match &self.source {
            DataSource::Synthetic(s) => Some(s),
            _ => None,
        }
    }

    /// The task as far as the config alone tells: given, or fixed by a synthetic set.
    pub fn known_task(&self) -> Option<TaskKind> {
        self.task
            .or_else(|| self.synthetic_spec().map(|s| s.kind.task_kind()))
    }

    /// The split fraction the config reports: set for a split, unset when validation is a file
    /// (an IDX folder's choice is only known once the folder is read).
    pub fn reported_val_fraction(&self) -> Option<f64> {
        match self.validation {
            Validation::Split(fraction) => Some(fraction),
            Validation::CsvFile(_) | Validation::IdxTestFilesOrSplit(_) => None,
        }
    }
}
