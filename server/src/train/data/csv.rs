//! CSV files on the daemon's host: numeric feature columns and one label column.
//!
//! - Fields are separated by commas; a field may be wrapped in double quotes (`""` is a quote
//!   inside it); spaces around fields are ignored; blank lines are skipped; a UTF-8 byte-order mark
//!   is ignored.
//! - The first row is a header when any of its fields other than the label column's is not a
//!   number (or when the label is named and the first row holds that name).
//! - The label column is the last one, or `label`: a header name first, else an index counted
//!   from 1 (`-1` is the last column).
//! - Classification or regression: `task` when given; otherwise classification when any label is
//!   text, or when every label is a whole number and there are at most
//!   [`AUTO_CLASSIFICATION_MAX_CLASSES`] distinct ones; regression otherwise. Classes are the
//!   distinct labels in sorted order (numbers numerically, then text alphabetically).
//!
//! Every error names the file, the row (data rows counted from 1, and the file's line) and the
//! column (counted from 1). Errors never quote the file's contents (a cell, a header name) beyond
//! what the client itself sent (the label's name): the daemon may read files its clients could
//! not, and an error must not become a way to read them.

use std::{
    borrow::Cow,
    collections::HashMap,
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
};

use super::{Samples, MAX_CLASSES, MAX_DATASET_ROWS, MAX_DATASET_VALUES};
use crate::{
    error::{Result, StrataError},
    spec::{paths::open_regular, Task, TaskKind},
};

/// Bigger files are refused before they are read: datasets are held in memory.
pub const MAX_CSV_BYTES: u64 = 1 << 30;
/// Longest line read, and most fields a line may have: a line is split into fields only once it
/// is known to be within both.
pub const MAX_CSV_LINE_BYTES: u64 = 4 << 20;
pub const MAX_CSV_COLUMNS: usize = 100_000;
/// With no `task`, whole-number labels with at most this many distinct values are classes.
pub const AUTO_CLASSIFICATION_MAX_CLASSES: usize = 100;

/// A label as read, before the task is decided.
#[derive(Clone, Copy, Debug, PartialEq)]
enum RawLabel {
    Number(f64),
    /// Index into the file's distinct label texts.
    Text(u32),
}

/// One CSV file, read: features row by row, and raw labels.
pub struct CsvTable {
    path: PathBuf,
    /// The field the user named the file in: `dataset` or `val_dataset`.
    field: &'static str,
    /// Header names, or `None` when the first row is data.
    header: Option<Vec<String>>,
    /// The label's name as the client gave it, when it named a header column.
    label_named: Option<String>,
    columns: usize,
    label_column: usize,
    features: Vec<f32>,
    labels: Vec<RawLabel>,
    texts: Vec<String>,
}

impl CsvTable {
    pub fn rows(&self) -> usize {
        self.labels.len()
    }

    fn label_name(&self) -> String {
        column_name(
            self.label_named.as_deref(),
            self.label_column,
            self.label_column,
        )
    }
}

/// "column 3", and the label's name when the client gave it (`label_named`).
fn column_name(label_named: Option<&str>, label_column: usize, column: usize) -> String {
    match label_named {
        Some(name) if column == label_column => {
            format!("column {} '{}'", column + 1, name.escape_debug())
        }
        _ => format!("column {}", column + 1),
    }
}

fn is_number(text: &str) -> bool {
    text.parse::<f64>().is_ok()
}

/// Splits one line into fields (see the module's documentation for the rules).
fn split_fields(line: &str) -> std::result::Result<Vec<Cow<'_, str>>, &'static str> {
    let bytes = line.as_bytes();
    let len = bytes.len();
    let is_space = |b: u8| b == b' ' || b == b'\t';
    let mut fields = Vec::new();
    let mut i = 0;
    loop {
        while i < len && is_space(bytes[i]) {
            i += 1;
        }
        if i < len && bytes[i] == b'"' {
            i += 1;
            let mut value = String::new();
            let mut start = i;
            let mut closed = false;
            while i < len {
                if bytes[i] == b'"' {
                    value.push_str(&line[start..i]);
                    if i + 1 < len && bytes[i + 1] == b'"' {
                        value.push('"');
                        i += 2;
                        start = i;
                        continue;
                    }
                    i += 1;
                    closed = true;
                    break;
                }
                i += 1;
            }
            if !closed {
                return Err(
                    "a quoted field is not closed (fields spanning lines are not supported)",
                );
            }
            while i < len && is_space(bytes[i]) {
                i += 1;
            }
            fields.push(Cow::Owned(value.trim().to_string()));
            if i == len {
                break;
            }
            if bytes[i] != b',' {
                return Err("text follows a closing quote; quote the whole field");
            }
            i += 1;
        } else {
            let end = line[i..].find(',').map_or(len, |p| i + p);
            fields.push(Cow::Borrowed(line[i..end].trim()));
            if end == len {
                break;
            }
            i = end + 1;
        }
    }
    Ok(fields)
}

/// Finds the label column from the first row; says whether that row is a header.
fn resolve_label(
    path: &Path,
    first: &[Cow<'_, str>],
    label: Option<&str>,
) -> Result<(usize, bool)> {
    let columns = first.len();
    let header_if_label_is = |column: usize| {
        first
            .iter()
            .enumerate()
            .any(|(c, f)| c != column && !is_number(f))
    };
    let Some(label) = label else {
        return Ok((columns - 1, header_if_label_is(columns - 1)));
    };
    if let Some(column) = first.iter().position(|f| f == label) {
        return Ok((column, true));
    }
    if let Ok(index) = label.parse::<i64>() {
        let columns_i = columns as i64;
        let column = match index {
            1.. if index <= columns_i => index - 1,
            ..=-1 if -index <= columns_i => columns_i + index,
            0 => {
                return Err(StrataError::invalid(
                    "label",
                    "column indexes count from 1 (-1 is the last column)",
                ))
            }
            _ => {
                return Err(StrataError::invalid(
                    "label",
                    format!(
                        "column {index} is out of range: {} has {columns} columns",
                        path.display()
                    ),
                ))
            }
        } as usize;
        return Ok((column, header_if_label_is(column)));
    }
    let looks_like_header = first.iter().any(|f| !is_number(f));
    Err(StrataError::invalid(
        "label",
        if looks_like_header {
            format!(
                "no column named '{}' in the header row of {} ({columns} columns); name the label column exactly as in the header, or by its index from 1 to {columns}",
                label.escape_debug(),
                path.display(),
            )
        } else {
            format!(
                "no column named '{label}': {} has no header row (its first row is numbers); name the label column by its index from 1, e.g. --label {columns}",
                path.display()
            )
        },
    ))
}

/// Reads a whole CSV file. `field` is the config field that named it (`dataset`, `val_dataset`).
/// With `task` regression, every label must be a number.
pub fn read_csv(
    path: &Path,
    field: &'static str,
    label: Option<&str>,
    task: Option<TaskKind>,
) -> Result<CsvTable> {
    let invalid = |message: String| StrataError::invalid(field, message);
    let file = open_regular(path, MAX_CSV_BYTES).map_err(|e| {
        invalid(format!(
            "cannot read {}: {e} (datasets are held in memory)",
            path.display()
        ))
    })?;

    let mut reader = BufReader::new(file);
    let mut line = String::new();
    let mut line_number = 0usize;
    let mut table: Option<CsvTable> = None;
    let mut text_ids: HashMap<String, u32> = HashMap::new();
    loop {
        line.clear();
        // At most one line's worth (plus a byte, to see that it was longer): a file of one
        // gigantic line must not be read whole, nor split into a field per byte.
        let read = std::io::Read::take(&mut reader, MAX_CSV_LINE_BYTES + 1)
            .read_line(&mut line)
            .map_err(|e| {
                invalid(format!(
                    "{}: line {} cannot be read ({e}); CSV files must be UTF-8 text",
                    path.display(),
                    line_number + 1
                ))
            })?;
        if read as u64 > MAX_CSV_LINE_BYTES {
            return Err(invalid(format!(
                "{}: line {} is longer than {MAX_CSV_LINE_BYTES} bytes",
                path.display(),
                line_number + 1
            )));
        }
        let columns = line.bytes().filter(|&b| b == b',').count() + 1;
        if columns > MAX_CSV_COLUMNS {
            return Err(invalid(format!(
                "{}: line {} has {columns} fields or more; at most {MAX_CSV_COLUMNS} columns are read",
                path.display(),
                line_number + 1
            )));
        }
        if read == 0 {
            break;
        }
        line_number += 1;
        let mut text = line.trim_end_matches(['\n', '\r']);
        if line_number == 1 {
            text = text.trim_start_matches('\u{feff}');
        }
        if text.trim().is_empty() {
            continue;
        }
        let fields = split_fields(text)
            .map_err(|e| invalid(format!("{}: line {line_number}: {e}", path.display())))?;

        let Some(table) = table.as_mut() else {
            if fields.len() < 2 {
                return Err(invalid(format!(
                    "{} has {} column; a feature column and a label column are needed (fields are separated by commas)",
                    path.display(),
                    fields.len()
                )));
            }
            let (label_column, is_header) = resolve_label(path, &fields, label)?;
            let mut new_table = CsvTable {
                path: path.to_path_buf(),
                field,
                header: is_header.then(|| fields.iter().map(|f| f.to_string()).collect()),
                label_named: label
                    .filter(|l| is_header && fields.get(label_column).is_some_and(|f| f == l))
                    .map(str::to_string),
                columns: fields.len(),
                label_column,
                features: Vec::new(),
                labels: Vec::new(),
                texts: Vec::new(),
            };
            if !is_header {
                push_row(&mut new_table, &fields, line_number, task, &mut text_ids)?;
            }
            table = Some(new_table);
            continue;
        };
        push_row(table, &fields, line_number, task, &mut text_ids)?;
    }

    let Some(table) = table else {
        return Err(invalid(format!(
            "{} is empty; expected a header row and rows of numbers",
            path.display()
        )));
    };
    if table.rows() == 0 {
        return Err(invalid(format!(
            "{} has a header but no data rows",
            path.display()
        )));
    }
    Ok(table)
}

/// Parses one data row into the table.
fn push_row(
    table: &mut CsvTable,
    fields: &[Cow<'_, str>],
    line_number: usize,
    task: Option<TaskKind>,
    text_ids: &mut HashMap<String, u32>,
) -> Result<()> {
    let row = table.rows() + 1;
    let at = |column: usize| {
        format!(
            "{}: row {row} (line {line_number}), {}",
            table.path.display(),
            column_name(table.label_named.as_deref(), table.label_column, column)
        )
    };
    let invalid = |message: String| StrataError::invalid(table.field, message);
    if fields.len() != table.columns {
        return Err(invalid(format!(
            "{}: row {row} (line {line_number}) has {} columns, but the first row has {}",
            table.path.display(),
            fields.len(),
            table.columns
        )));
    }
    if row > MAX_DATASET_ROWS {
        return Err(invalid(format!(
            "{} has more than {MAX_DATASET_ROWS} rows; datasets are held in memory and at most {MAX_DATASET_ROWS} rows are read",
            table.path.display()
        )));
    }
    if table.features.len() + table.columns - 1 > MAX_DATASET_VALUES {
        return Err(invalid(format!(
            "{} has more than {MAX_DATASET_VALUES} feature values (rows × features); datasets are held in memory and at most that many are read",
            table.path.display()
        )));
    }
    for (column, value) in fields.iter().enumerate() {
        let value = value.as_ref();
        if value.is_empty() {
            return Err(invalid(format!(
                "{}: empty value (missing values are not supported: fill or drop them)",
                at(column)
            )));
        }
        let number = value.parse::<f64>();
        if let Ok(number) = number {
            if !number.is_finite() {
                return Err(invalid(format!(
                    "{}: the value is not a finite number",
                    at(column)
                )));
            }
        }
        if column != table.label_column {
            let number = number
                .map_err(|_| {
                    invalid(format!(
                        "{}: the value is not a number (feature columns must be numeric; is this the label column? name it with --label)",
                        at(column)
                    ))
                })?;
            table.features.push(number as f32);
            continue;
        }
        let label = match number {
            Ok(number) => RawLabel::Number(number),
            Err(_) if task == Some(TaskKind::Regression) => {
                return Err(invalid(format!(
                    "{}: the label is not a number, and the task is regression",
                    at(column)
                )))
            }
            Err(_) => {
                let next = text_ids.len() as u32;
                let id = *text_ids.entry(value.to_string()).or_insert_with(|| {
                    table.texts.push(value.to_string());
                    next
                });
                RawLabel::Text(id)
            }
        };
        table.labels.push(label);
    }
    Ok(())
}

/// The training file, and the validation file when there is one, as samples with targets.
pub struct Labelled {
    pub train: Samples,
    pub val: Option<Samples>,
    pub task: Task,
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
    let numbers = || {
        tables
            .iter()
            .flat_map(|t| t.labels.iter())
            .filter_map(|l| match l {
                RawLabel::Number(n) => Some(*n),
                RawLabel::Text(_) => None,
            })
    };
    let has_text = tables.iter().any(|t| !t.texts.is_empty());
    let kind = task.unwrap_or_else(|| {
        if has_text {
            return TaskKind::Classification;
        }
        let mut distinct: Vec<f64> = Vec::new();
        for n in numbers() {
            if n.fract() != 0.0 {
                return TaskKind::Regression;
            }
            if !distinct.contains(&n) {
                if distinct.len() == AUTO_CLASSIFICATION_MAX_CLASSES {
                    return TaskKind::Regression;
                }
                distinct.push(n);
            }
        }
        TaskKind::Classification
    });

    if kind == TaskKind::Regression {
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
        return Ok(Labelled {
            train: into_samples(train, targets),
            val,
            task: Task::Regression,
        });
    }

    let mut number_classes: Vec<f64> = numbers().collect();
    number_classes.sort_by(f64::total_cmp);
    number_classes.dedup();
    let mut text_classes: Vec<&str> = tables
        .iter()
        .flat_map(|t| t.texts.iter().map(String::as_str))
        .collect();
    text_classes.sort_unstable();
    text_classes.dedup();
    let classes = number_classes.len() + text_classes.len();
    let label_name = train.label_name();
    let invalid = |message: String| StrataError::invalid("dataset", message);
    if classes > MAX_CLASSES {
        return Err(invalid(format!(
            "{}: the label ({label_name}) has {classes} distinct values; at most {MAX_CLASSES} classes are allowed (for a numeric target, set task regression)",
            train.path.display()
        )));
    }
    if classes < 2 {
        return Err(invalid(format!(
            "{}: the label ({label_name}) has a single value, so there is nothing to classify; pick another label column",
            train.path.display()
        )));
    }
    let class_of = |t: &CsvTable, l: &RawLabel| -> f32 {
        let index = match l {
            RawLabel::Number(n) => number_classes
                .binary_search_by(|c| c.total_cmp(n))
                .unwrap_or(0),
            RawLabel::Text(id) => {
                let text = t.texts[*id as usize].as_str();
                number_classes.len() + text_classes.binary_search(&text).unwrap_or(0)
            }
        };
        index as f32
    };
    let targets = |t: &CsvTable| -> Vec<f32> { t.labels.iter().map(|l| class_of(t, l)).collect() };
    let train_targets = targets(&train);
    let val_targets = val.as_ref().map(targets);
    Ok(Labelled {
        train: into_samples(train, train_targets),
        val: val.zip(val_targets).map(|(v, t)| into_samples(v, t)),
        task: Task::Classification {
            classes: classes as i64,
        },
    })
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

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &tempfile::TempDir, name: &str, text: &str) -> PathBuf {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    fn read(text: &str, label: Option<&str>, task: Option<TaskKind>) -> Result<Labelled> {
        let dir = tempfile::tempdir().unwrap();
        let path = write(&dir, "data.csv", text);
        labelled(read_csv(&path, "dataset", label, task)?, None, task)
    }

    fn error(text: &str, label: Option<&str>, task: Option<TaskKind>) -> String {
        match read(text, label, task) {
            Ok(_) => panic!("{text:?} was accepted"),
            Err(err) => err.to_string(),
        }
    }

    #[test]
    fn header_text_labels_and_quotes() {
        let data = read(
            "\u{feff}a, b ,species\n1,2,setosa\n\n3,4,\"vir, ginica\"\r\n5,6,setosa\n",
            None,
            None,
        )
        .unwrap();
        assert_eq!(data.task, Task::Classification { classes: 2 });
        assert_eq!(data.train.features, vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        assert_eq!(data.train.targets, vec![0.0, 1.0, 0.0]);
        assert_eq!(data.train.sample_shape, vec![2]);
    }

    #[test]
    fn no_header_and_label_by_index_or_name() {
        // No header: every field of the first row is a number.
        let data = read("0,1.5,2\n1,2.5,3\n0,3.5,4\n", Some("1"), None).unwrap();
        assert_eq!(data.task, Task::Classification { classes: 2 });
        assert_eq!(data.train.features, vec![1.5, 2.0, 2.5, 3.0, 3.5, 4.0]);
        let data = read("y,x\n1.5,0.25\n2.5,0.5\n", Some("y"), None).unwrap();
        assert_eq!(
            data.task,
            Task::Regression,
            "fractional labels are a regression target"
        );
        assert_eq!(data.train.targets, vec![1.5, 2.5]);
        let data = read("x,y,z\n1,10,0\n2,20,1\n", Some("-2"), None).unwrap();
        assert_eq!(
            data.train.targets,
            vec![0.0, 1.0],
            "classes in sorted order"
        );
        assert_eq!(data.train.features, vec![1.0, 0.0, 2.0, 1.0]);
    }

    #[test]
    fn task_detection_and_override() {
        // Whole numbers are classes, in numeric order.
        let data = read("x,y\n1,-1\n2,3\n3,-1\n", None, None).unwrap();
        assert_eq!(data.task, Task::Classification { classes: 2 });
        assert_eq!(data.train.targets, vec![0.0, 1.0, 0.0]);
        let data = read("x,y\n1,-1\n2,3\n3,-1\n", None, Some(TaskKind::Regression)).unwrap();
        assert_eq!(data.task, Task::Regression);
        assert_eq!(data.train.targets, vec![-1.0, 3.0, -1.0]);
        // Many distinct whole numbers are a regression target.
        let many: String = std::iter::once("x,y\n".to_string())
            .chain((0..=AUTO_CLASSIFICATION_MAX_CLASSES).map(|i| format!("{i},{i}\n")))
            .collect();
        assert_eq!(read(&many, None, None).unwrap().task, Task::Regression);
        let err = error("x,y\n1,cat\n2,dog\n", None, Some(TaskKind::Regression));
        assert!(
            err.contains("row 1 (line 2), column 2: the label is not a number")
                && !err.contains("cat"),
            "names the place, never the cell: {err}"
        );
    }

    #[test]
    fn bad_value_names_row_and_column() {
        let err = error("a,b,y\n1,2,0\n3,abc,1\n", None, None);
        assert!(err.starts_with("dataset: "), "{err}");
        assert!(
            err.contains("row 2 (line 3), column 2: the value is not a number")
                && !err.contains("abc"),
            "names the place, never the cell: {err}"
        );
        let err = error("1,2,0\n3,,1\n", None, None);
        assert!(
            err.contains("row 2 (line 2), column 2: empty value"),
            "{err}"
        );
        let err = error("a,y\ninf,0\n", None, None);
        assert!(
            err.contains("row 1 (line 2), column 1: the value is not a finite number"),
            "{err}"
        );
        let err = error("a,y\n\"1,0\n", None, None);
        assert!(
            err.contains("line 2") && err.contains("not closed"),
            "{err}"
        );
    }

    /// A file of one gigantic line is refused before it is split (it once took ~47× its size).
    #[test]
    fn huge_lines_and_too_many_columns_are_refused_before_splitting() {
        let wide = format!("{}\n1\n", ",".repeat(MAX_CSV_COLUMNS));
        let err = error(&wide, None, None);
        assert!(err.contains("columns are read"), "{err}");
        let long = format!("a,{}\n", "1".repeat(MAX_CSV_LINE_BYTES as usize + 10));
        let err = error(&long, None, None);
        assert!(err.contains("longer than"), "{err}");
    }

    #[test]
    fn ragged_rows_are_named() {
        let err = error("a,b,y\n1,2,0\n1,2\n", None, None);
        assert!(
            err.contains("row 2 (line 3) has 2 columns, but the first row has 3"),
            "{err}"
        );
    }

    #[test]
    fn missing_label_and_empty_files() {
        let err = error("a,b,y\n1,2,0\n", Some("species"), None);
        assert!(
            err.starts_with("label: no column named 'species'")
                && err.contains("3 columns")
                && !err.contains("a, b"),
            "says how many columns, never their names: {err}"
        );
        let err = error("1,2,0\n", Some("species"), None);
        assert!(
            err.contains("no header row") && err.contains("--label 3"),
            "{err}"
        );
        let err = error("a,b,y\n1,2,0\n", Some("7"), None);
        assert!(err.starts_with("label: column 7 is out of range"), "{err}");
        assert!(error("a,y\n1,0\n", Some("0"), None).contains("count from 1"));
        let err = error("", None, None);
        assert!(err.contains("is empty"), "{err}");
        assert!(error("\n\n", None, None).contains("is empty"));
        let err = error("a,b,y\n", None, None);
        assert!(err.contains("has a header but no data rows"), "{err}");
        let err = error("y\n1\n2\n", None, None);
        assert!(err.contains("has 1 column"), "{err}");
        let err = error("a,y\n1,0\n2,0\n", None, None);
        assert!(err.contains("single value"), "{err}");
        let err = read_csv(Path::new("/nonexistent/x.csv"), "dataset", None, None)
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.starts_with("dataset: cannot read /nonexistent/x.csv"),
            "{err}"
        );
    }

    #[test]
    fn validation_file_shares_columns_and_classes() {
        let dir = tempfile::tempdir().unwrap();
        let train = write(&dir, "train.csv", "a,y\n1,cat\n2,dog\n");
        let val = write(&dir, "val.csv", "a,y\n3,emu\n4,cat\n");
        let data = labelled(
            read_csv(&train, "dataset", None, None).unwrap(),
            Some(read_csv(&val, "val_dataset", None, None).unwrap()),
            None,
        )
        .unwrap();
        assert_eq!(data.task, Task::Classification { classes: 3 });
        assert_eq!(data.val.unwrap().targets, vec![2.0, 0.0]);

        let other = write(&dir, "other.csv", "b,y\n3,cat\n");
        let err = labelled(
            read_csv(&train, "dataset", None, None).unwrap(),
            Some(read_csv(&other, "val_dataset", None, None).unwrap()),
            None,
        )
        .err()
        .unwrap()
        .to_string();
        assert!(
            err.starts_with("val_dataset: the header of") && err.contains("at column"),
            "{err}"
        );
        let wide = write(&dir, "wide.csv", "a,b,y\n3,4,cat\n");
        let err = labelled(
            read_csv(&train, "dataset", None, None).unwrap(),
            Some(read_csv(&wide, "val_dataset", None, None).unwrap()),
            None,
        )
        .err()
        .unwrap()
        .to_string();
        assert!(err.contains("has 3 columns"), "{err}");
    }
}
