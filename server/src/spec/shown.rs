//! How user input and numbers appear in error messages.

/// A number as an error message prints it: plainly in the usual range, in scientific notation
/// beyond it (Rust's `{}` writes 1e308 as 309 digits).
pub fn shown_number(value: f64) -> String {
    let magnitude = value.abs();
    if !value.is_finite() || value == 0.0 || (1e-4..1e7).contains(&magnitude) {
        format!("{value}")
    } else {
        format!("{value:e}")
    }
}

/// Longest user input quoted whole in an error message.
const MAX_QUOTED_CHARS: usize = 64;

/// User input as an error message quotes it: whole (escaped) when short; else its start and its
/// length, so an error never carries a huge or hostile input back to the client or the log.
pub fn shown(text: &str) -> String {
    let count = text.chars().count();
    if count <= MAX_QUOTED_CHARS {
        format!("'{}'", text.escape_debug())
    } else {
        let start: String = text.chars().take(MAX_QUOTED_CHARS / 2).collect();
        format!("'{}…' ({count} characters)", start.escape_debug())
    }
}
