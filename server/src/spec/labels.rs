//! A run's name, tags and the reasons clients give for its end: free text the user picks,
//! checked for length and printability — no control characters, and none of the characters that
//! change how the text around them is shown while being invisible themselves (bidirectional
//! overrides and marks, zero-width characters, line and paragraph separators), with which one
//! run's name could pass for another's in `strata list`.

use crate::error::{Result, StrataError};

pub const MAX_NAME_CHARS: usize = 200;
const MAX_TAGS: usize = 32;

/// A reason a client gives for a run's end (CancelRun's, FinishRun's) as it is stored: its
/// control characters (line breaks, terminal escapes) each made a space. It is shown in
/// terminals and pages, where they could forge lines or rewrite the screen; refusing them
/// instead would turn a logging script's multi-line error into a failure to finish its run.
pub fn printable_reason(reason: String) -> String {
    let unshown = |c: char| c.is_control() || invisible(c).is_some();
    if reason.chars().any(unshown) {
        reason
            .chars()
            .map(|c| if unshown(c) { ' ' } else { c })
            .collect()
    } else {
        reason
    }
}

/// The name of an invisible character that changes how the text around it is shown (see the
/// module's doc), if `c` is one.
pub fn invisible(c: char) -> Option<&'static str> {
    Some(match c {
        '\u{00AD}' => "SOFT HYPHEN",
        '\u{061C}' => "ARABIC LETTER MARK",
        '\u{180E}' => "MONGOLIAN VOWEL SEPARATOR",
        '\u{200B}' => "ZERO WIDTH SPACE",
        '\u{200C}' => "ZERO WIDTH NON-JOINER",
        '\u{200D}' => "ZERO WIDTH JOINER",
        '\u{200E}' => "LEFT-TO-RIGHT MARK",
        '\u{200F}' => "RIGHT-TO-LEFT MARK",
        '\u{2028}' => "LINE SEPARATOR",
        '\u{2029}' => "PARAGRAPH SEPARATOR",
        '\u{202A}' => "LEFT-TO-RIGHT EMBEDDING",
        '\u{202B}' => "RIGHT-TO-LEFT EMBEDDING",
        '\u{202C}' => "POP DIRECTIONAL FORMATTING",
        '\u{202D}' => "LEFT-TO-RIGHT OVERRIDE",
        '\u{202E}' => "RIGHT-TO-LEFT OVERRIDE",
        '\u{2060}' => "WORD JOINER",
        '\u{2061}'..='\u{2064}' => "INVISIBLE OPERATOR",
        '\u{2066}' => "LEFT-TO-RIGHT ISOLATE",
        '\u{2067}' => "RIGHT-TO-LEFT ISOLATE",
        '\u{2068}' => "FIRST STRONG ISOLATE",
        '\u{2069}' => "POP DIRECTIONAL ISOLATE",
        '\u{206A}'..='\u{206F}' => "DEPRECATED FORMAT CHARACTER",
        '\u{FEFF}' => "ZERO WIDTH NO-BREAK SPACE",
        '\u{FFF9}'..='\u{FFFB}' => "INTERLINEAR ANNOTATION CHARACTER",
        _ => return None,
    })
}

/// Refuses a text (`field`) holding a control character or an invisible one, naming its code
/// point: what every name a user picks is held to.
pub fn check_shown_text(field: &str, text: &str) -> Result<()> {
    for c in text.chars() {
        let name = match invisible(c) {
            Some(name) => name,
            None if c.is_control() => "a control character",
            None => continue,
        };
        return Err(StrataError::invalid(
            field,
            format!(
                "{} holds U+{:04X} ({name}), which is not shown but changes how the text around it is shown; use visible characters only",
                crate::spec::shown(text),
                u32::from(c)
            ),
        ));
    }
    Ok(())
}

/// Validates a run's name and tags.
pub fn validate_labels(name: &str, tags: &[String]) -> Result<()> {
    if name.chars().count() > MAX_NAME_CHARS {
        return Err(StrataError::invalid(
            "name",
            format!("at most {MAX_NAME_CHARS} printable characters"),
        ));
    }
    check_shown_text("name", name)?;
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
                format!(
                    "{} must be 1 to {MAX_NAME_CHARS} characters without spaces",
                    crate::spec::shown(tag)
                ),
            ));
        }
        check_shown_text(&format!("tags[{i}]"), tag)?;
    }
    Ok(())
}

const MAX_SWEEP_ID_CHARS: usize = 64;
const MAX_SWEEP_SETTINGS: usize = 64;
const MAX_SWEEP_SETTING_NAME_CHARS: usize = 64;
const MAX_SWEEP_SETTING_VALUE_CHARS: usize = 200;

/// Longest worker name or label.
pub const MAX_WORKER_LABEL_CHARS: usize = 64;

/// A remote worker's name or label, or the label a run asks for (`--on-worker`): 1 to 64 of
/// `A-Z a-z 0-9 . _ -`, so it reads the same in a log, a table and a shell.
pub fn validate_worker_label(field: &str, text: &str) -> Result<()> {
    let fits = !text.is_empty()
        && text.chars().count() <= MAX_WORKER_LABEL_CHARS
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if fits {
        Ok(())
    } else {
        Err(StrataError::invalid(
            field,
            format!(
                "{} must be 1 to {MAX_WORKER_LABEL_CHARS} characters of A-Z, a-z, 0-9, '.', '_' and '-'",
                crate::spec::shown(text)
            ),
        ))
    }
}

/// Validates a trial's sweep membership: an id of [A-Za-z0-9_-], a trial number from 1, and a
/// bounded list of printable settings.
pub fn validate_sweep_trial(trial: &crate::domain::SweepTrial) -> Result<()> {
    let id = &trial.sweep_id;
    if id.is_empty()
        || id.chars().count() > MAX_SWEEP_ID_CHARS
        || !id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(StrataError::invalid(
            "sweep.sweep_id",
            format!(
                "'{}' must be 1 to {MAX_SWEEP_ID_CHARS} characters of A-Z, a-z, 0-9, '-' and '_'",
                crate::spec::shown(id)
            ),
        ));
    }
    if trial.trial == 0 {
        return Err(StrataError::invalid(
            "sweep.trial",
            "trials are numbered from 1",
        ));
    }
    if trial.settings.len() > MAX_SWEEP_SETTINGS {
        return Err(StrataError::invalid(
            "sweep.settings",
            format!(
                "{} settings; at most {MAX_SWEEP_SETTINGS}",
                trial.settings.len()
            ),
        ));
    }
    for (i, (name, value)) in trial.settings.iter().enumerate() {
        let printable = |text: &str, max: usize| {
            !text.is_empty() && text.chars().count() <= max && !text.chars().any(char::is_control)
        };
        if !printable(name, MAX_SWEEP_SETTING_NAME_CHARS)
            || !printable(value, MAX_SWEEP_SETTING_VALUE_CHARS)
        {
            return Err(StrataError::invalid(
                format!("sweep.settings[{i}]"),
                format!(
                    "names are 1 to {MAX_SWEEP_SETTING_NAME_CHARS} printable characters, values 1 to {MAX_SWEEP_SETTING_VALUE_CHARS}"
                ),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::SweepTrial;

    #[test]
    fn a_sweep_trial_needs_a_plain_id_a_trial_number_and_bounded_settings() {
        let good = SweepTrial {
            sweep_id: "ab_12-cd".into(),
            trial: 1,
            settings: vec![("lr".into(), "1e-3".into())],
        };
        assert!(validate_sweep_trial(&good).is_ok());
        let bad = [
            SweepTrial {
                sweep_id: "a b".into(),
                ..good.clone()
            },
            SweepTrial {
                sweep_id: "x".repeat(65),
                ..good.clone()
            },
            SweepTrial {
                trial: 0,
                ..good.clone()
            },
            SweepTrial {
                settings: vec![("lr".into(), String::new())],
                ..good.clone()
            },
            SweepTrial {
                settings: vec![("a".into(), "b".into()); 65],
                ..good.clone()
            },
        ];
        for trial in bad {
            let err = validate_sweep_trial(&trial).unwrap_err().to_string();
            assert!(err.contains("sweep."), "{err}");
        }
    }
}
