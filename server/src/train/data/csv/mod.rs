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

mod fields;
mod header;
mod labels;

use std::{
    borrow::Cow,
    collections::HashMap,
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
};

use super::{MAX_DATASET_ROWS, MAX_DATASET_VALUES};
use crate::{
    error::{Result, StrataError},
    spec::{
        paths::{open_regular, LimitedRead},
        TaskKind,
    },
};
use fields::split_fields;
use header::resolve_label;
pub use labels::{labelled, LabelChoice, Labelled};

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
    /// Whether the client named the label column at all (by header or by index).
    label_given: bool,
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
    let mut lines = Lines {
        reader: BufReader::new(file),
        line: String::new(),
        line_number: 0,
        path,
        field,
    };
    let mut table: Option<CsvTable> = None;
    let mut text_ids: HashMap<String, u32> = HashMap::new();
    while let Some(line_number) = lines.advance()? {
        let fields = lines.fields()?;
        let Some(table) = table.as_mut() else {
            let (first, is_header) = CsvTable::of_first_row(path, field, &fields, label)?;
            let first = table.insert(first);
            if !is_header {
                push_row(first, &fields, line_number, task, &mut text_ids)?;
            }
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

/// A CSV file read line by line, each line bounded before it is split into fields.
struct Lines<'a> {
    reader: BufReader<LimitedRead>,
    line: String,
    line_number: usize,
    path: &'a Path,
    field: &'static str,
}

impl Lines<'_> {
    /// Reads the next line that is not blank; returns its number, or `None` at the end.
    fn advance(&mut self) -> Result<Option<usize>> {
        let invalid = |message: String| StrataError::invalid(self.field, message);
        let path = self.path.display();
        loop {
            self.line.clear();
            // At most one line's worth (plus a byte, to see that it was longer): a file of one
            // gigantic line must not be read whole, nor split into a field per byte.
            let read = std::io::Read::take(&mut self.reader, MAX_CSV_LINE_BYTES + 1)
                .read_line(&mut self.line)
                .map_err(|e| {
                    invalid(format!(
                        "{path}: line {} cannot be read ({e}); CSV files must be UTF-8 text",
                        self.line_number + 1
                    ))
                })?;
            if read as u64 > MAX_CSV_LINE_BYTES {
                return Err(invalid(format!(
                    "{path}: line {} is longer than {MAX_CSV_LINE_BYTES} bytes",
                    self.line_number + 1
                )));
            }
            let columns = self.line.bytes().filter(|&b| b == b',').count() + 1;
            if columns > MAX_CSV_COLUMNS {
                return Err(invalid(format!(
                    "{path}: line {} has {columns} fields or more; at most {MAX_CSV_COLUMNS} columns are read",
                    self.line_number + 1
                )));
            }
            if read == 0 {
                return Ok(None);
            }
            self.line_number += 1;
            if !self.text().trim().is_empty() {
                return Ok(Some(self.line_number));
            }
        }
    }

    /// The line read last, without its line ending (nor, on the first line, a byte-order mark).
    fn text(&self) -> &str {
        let text = self.line.trim_end_matches(['\n', '\r']);
        if self.line_number == 1 {
            text.trim_start_matches('\u{feff}')
        } else {
            text
        }
    }

    /// The line read last, split into fields.
    fn fields(&self) -> Result<Vec<Cow<'_, str>>> {
        split_fields(self.text()).map_err(|e| {
            StrataError::invalid(
                self.field,
                format!("{}: line {}: {e}", self.path.display(), self.line_number),
            )
        })
    }
}

impl CsvTable {
    /// An empty table for the file whose first row is `fields`; says whether that row is a header.
    fn of_first_row(
        path: &Path,
        field: &'static str,
        fields: &[Cow<'_, str>],
        label: Option<&str>,
    ) -> Result<(CsvTable, bool)> {
        if fields.len() < 2 {
            return Err(StrataError::invalid(
                field,
                format!(
                    "{} has {} column; a feature column and a label column are needed (fields are separated by commas)",
                    path.display(),
                    fields.len()
                ),
            ));
        }
        let (label_column, is_header) = resolve_label(path, fields, label)?;
        let table = CsvTable {
            path: path.to_path_buf(),
            field,
            header: is_header.then(|| fields.iter().map(|f| f.to_string()).collect()),
            label_named: label
                .filter(|l| is_header && fields.get(label_column).is_some_and(|f| f == l))
                .map(str::to_string),
            label_given: label.is_some(),
            columns: fields.len(),
            label_column,
            features: Vec::new(),
            labels: Vec::new(),
            texts: Vec::new(),
        };
        Ok((table, is_header))
    }

    fn invalid(&self, message: String) -> StrataError {
        StrataError::invalid(self.field, message)
    }

    /// Where a value is: the file, the row (and its line), the column.
    fn place(&self, row: usize, line_number: usize, column: usize) -> String {
        format!(
            "{}: row {row} (line {line_number}), {}",
            self.path.display(),
            column_name(self.label_named.as_deref(), self.label_column, column)
        )
    }

    /// Refuses row `row` when it has the wrong number of columns, or would take the table past
    /// the limits of a dataset held in memory.
    fn check_room_for(&self, row: usize, columns: usize, line_number: usize) -> Result<()> {
        if columns != self.columns {
            return Err(self.invalid(format!(
                "{}: row {row} (line {line_number}) has {columns} columns, but the first row has {}",
                self.path.display(),
                self.columns
            )));
        }
        if row > MAX_DATASET_ROWS {
            return Err(self.invalid(format!(
                "{} has more than {MAX_DATASET_ROWS} rows; datasets are held in memory and at most {MAX_DATASET_ROWS} rows are read",
                self.path.display()
            )));
        }
        if self.features.len() + self.columns - 1 > MAX_DATASET_VALUES {
            return Err(self.invalid(format!(
                "{} has more than {MAX_DATASET_VALUES} feature values (rows × features); datasets are held in memory and at most that many are read",
                self.path.display()
            )));
        }
        Ok(())
    }
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
    table.check_room_for(row, fields.len(), line_number)?;
    for (column, value) in fields.iter().enumerate() {
        let value = value.as_ref();
        let at = || table.place(row, line_number, column);
        if value.is_empty() {
            return Err(table.invalid(format!(
                "{}: empty value (missing values are not supported: fill or drop them)",
                at()
            )));
        }
        let number = value.parse::<f64>().ok();
        if number.is_some_and(|n| !n.is_finite()) {
            return Err(table.invalid(format!("{}: the value is not a finite number", at())));
        }
        if column != table.label_column {
            let Some(number) = number else {
                return Err(table.invalid(format!(
                    "{}: the value is not a number (feature columns must be numeric; is this the label column? name it with --label)",
                    at()
                )));
            };
            table.features.push(number as f32);
            continue;
        }
        let label = match number {
            Some(number) => RawLabel::Number(number),
            None if task == Some(TaskKind::Regression) => {
                return Err(table.invalid(format!(
                    "{}: the label is not a number, and the task is regression",
                    at()
                )))
            }
            None => {
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

#[cfg(test)]
mod tests;
