//! The first row of a CSV file: where the label column is, and whether the row is a header.

use std::{borrow::Cow, path::Path};

use super::is_number;
use crate::error::{Result, StrataError};

/// Finds the label column from the first row; says whether that row is a header.
pub(super) fn resolve_label(
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
