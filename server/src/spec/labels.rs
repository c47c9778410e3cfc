//! A run's name and tags: free text the user picks, checked for length and printability.

use crate::error::{Result, StrataError};

pub const MAX_NAME_CHARS: usize = 200;
const MAX_TAGS: usize = 32;

/// Validates a run's name and tags.
pub fn validate_labels(name: &str, tags: &[String]) -> Result<()> {
    if name.chars().count() > MAX_NAME_CHARS || name.chars().any(char::is_control) {
        return Err(StrataError::invalid(
            "name",
            format!("at most {MAX_NAME_CHARS} printable characters"),
        ));
    }
    if tags.len() > MAX_TAGS {
        return Err(StrataError::invalid(
            "tags",
            format!("at most {MAX_TAGS} tags"),
        ));
    }
    for (i, tag) in tags.iter().enumerate() {
        if tag.is_empty()
            || tag.chars().count() > MAX_NAME_CHARS
            || tag.chars().any(|c| c.is_control() || c.is_whitespace())
        {
            return Err(StrataError::invalid(
                format!("tags[{i}]"),
                format!("'{tag}' must be 1 to {MAX_NAME_CHARS} characters without spaces"),
            ));
        }
    }
    Ok(())
}
