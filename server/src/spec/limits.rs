//! How large a run's config may be, and the range checks every numeric field goes through.

use crate::{
    domain::RunConfig,
    error::{Result, StrataError},
};

pub(super) const MAX_SAMPLES: u32 = 10_000_000;
pub(super) const MAX_CLASSES: u32 = 1000;
pub(super) const MAX_EPOCHS: u32 = 1_000_000;
pub(super) const MAX_BATCH_SIZE: u32 = 1 << 20;
/// Most `layer_lr` rules, and most `freeze` rules.
pub(super) const MAX_RULES: usize = 256;
/// Keeps a request from asking the daemon to allocate an absurd model.
pub const MAX_PARAMETERS: i64 = 50_000_000;
pub(super) const MAX_PROGRESS_EVENTS_PER_EPOCH: u32 = 1000;
/// Longest path or model text accepted (Linux's PATH_MAX, and a prefix).
const MAX_PATH_FIELD_CHARS: usize = 4096 + 16;
/// Longest of the short text fields (optimizer, device, task, lr_slice, init_from).
const MAX_WORD_FIELD_CHARS: usize = 100;

/// `value` when it lies in `low..=high`, else an error naming the field and the range.
pub(crate) fn in_range<T: PartialOrd + std::fmt::Display + Copy>(
    field: &str,
    value: T,
    low: T,
    high: T,
) -> Result<T> {
    if value < low || value > high {
        return Err(StrataError::invalid(
            field,
            format!("{value} is out of range; allowed: {low} to {high}"),
        ));
    }
    Ok(value)
}

/// `value` when it is finite and in `low..=high`, else an error naming the field and saying what
/// is `allowed`.
pub(crate) fn finite_in(
    field: &str,
    value: f64,
    low: f64,
    high: f64,
    allowed: &str,
) -> Result<f64> {
    if !value.is_finite() || value < low || value > high {
        return Err(StrataError::invalid(
            field,
            format!(
                "{} is not allowed; allowed: {allowed}",
                super::shown_number(value)
            ),
        ));
    }
    Ok(value)
}

/// Refuses over-long text fields before any of them is parsed; the error gives the length, not
/// the text.
pub(super) fn check_field_lengths(config: &RunConfig) -> Result<()> {
    let fields: [(&str, &str, usize); 9] = [
        ("dataset", &config.dataset, MAX_PATH_FIELD_CHARS),
        ("val_dataset", &config.val_dataset, MAX_PATH_FIELD_CHARS),
        ("model", &config.model, MAX_PATH_FIELD_CHARS),
        ("optimizer", &config.optimizer, MAX_WORD_FIELD_CHARS),
        ("device", &config.device, MAX_WORD_FIELD_CHARS),
        ("task", &config.task, MAX_WORD_FIELD_CHARS),
        ("lr_slice", &config.lr_slice, MAX_WORD_FIELD_CHARS),
        ("init_from", &config.init_from, MAX_WORD_FIELD_CHARS),
        ("schedule", &config.schedule, MAX_WORD_FIELD_CHARS * 2),
    ];
    for (field, text, max) in fields {
        check_length(field, text, max)?;
    }
    Ok(())
}

/// Refuses `text` longer than `max` characters before any of it is parsed; the error gives its
/// length, never the text.
pub(crate) fn check_length(field: &str, text: &str, max: usize) -> Result<()> {
    let count = text.chars().count();
    if count > max {
        return Err(StrataError::invalid(
            field,
            format!("{count} characters; at most {max} are allowed"),
        ));
    }
    Ok(())
}
