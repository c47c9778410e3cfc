//! Runs named by a prefix of their id: a short id's (found through the index of shown ids), or an
//! older run's hex digits (found among the run keys).

use super::Store;
use crate::{
    domain::{from_base32, RunId, SHORT_ID_CHARS, SHORT_ID_FLAG},
    error::{Result, StrataError},
};

/// Which kinds of run id a (lower-case) prefix can begin: a short id, an older hex id, or both.
struct IdPrefix {
    short: bool,
    hex: bool,
}

impl IdPrefix {
    fn of(prefix: &str) -> Result<Self> {
        if prefix.is_empty() {
            return Err(StrataError::invalid(
                "run",
                "a run id (or a unique prefix of one) is required",
            ));
        }
        let short = prefix.len() <= SHORT_ID_CHARS && from_base32(prefix).is_some();
        let hex =
            prefix.len() <= RunId::HEX_DIGITS && prefix.bytes().all(|b| b.is_ascii_hexdigit());
        if !short && !hex {
            return Err(StrataError::invalid(
                "run",
                format!(
                    "{} is not a run id: ids are 13 characters of 0-9 and a-z (no i, l, o, u), or 16 hex digits for older runs",
                    crate::spec::shown(prefix)
                ),
            ));
        }
        Ok(IdPrefix { short, hex })
    }
}

impl Store {
    /// Finds the one run whose id starts with `prefix` (case-insensitive): a short id's prefix,
    /// or an older id's hex digits.
    pub fn resolve(&self, prefix: &str) -> Result<RunId> {
        let prefix = prefix.trim().to_ascii_lowercase();
        let kinds = IdPrefix::of(&prefix)?;
        let _visible = self.readable()?;
        // A whole id names its run directly, index or not.
        if let Ok(id) = prefix.parse::<RunId>() {
            if self.runs.contains_key(id.key())? {
                return Ok(id);
            }
        }
        let mut found: Vec<RunId> = Vec::new();
        if kinds.short {
            found.extend(self.short_ids_starting(&prefix)?);
        }
        if kinds.hex && found.len() < 2 {
            found.extend(self.hex_ids_starting(&prefix)?);
        }
        match found[..] {
            [] => Err(StrataError::RunNotFound(prefix)),
            [only] => Ok(only),
            [first, second, ..] => Err(StrataError::AmbiguousRun {
                prefix,
                examples: format!("{first}, {second}, ..."),
            }),
        }
    }

    /// Up to two short ids that begin with `prefix`, from the index of shown ids.
    fn short_ids_starting(&self, prefix: &str) -> Result<Vec<RunId>> {
        let padded = |fill: char| {
            let text: String = prefix
                .chars()
                .chain(std::iter::repeat(fill))
                .take(SHORT_ID_CHARS)
                .collect();
            from_base32(&text)
        };
        let Some(low) = padded('0') else {
            return Ok(Vec::new());
        };
        let high = padded('z').unwrap_or(u64::MAX);
        first_two(
            self.shown_ids
                .range(low.to_be_bytes()..=high.to_be_bytes())
                .values(),
        )
    }

    /// Up to two older (hex) ids that begin with `prefix`, from the run keys.
    fn hex_ids_starting(&self, prefix: &str) -> Result<Vec<RunId>> {
        let low = u64::from_str_radix(&format!("{prefix:0<16}"), 16).unwrap_or(0);
        let high = u64::from_str_radix(&format!("{prefix:f<16}"), 16)
            .unwrap_or(u64::MAX)
            .min(SHORT_ID_FLAG - 1);
        if low > high {
            return Ok(Vec::new());
        }
        first_two(
            self.runs
                .range(low.to_be_bytes()..=high.to_be_bytes())
                .keys(),
        )
    }
}

/// The runs named by the first two of `keys` (two tell one run from several).
fn first_two(keys: impl Iterator<Item = sled::Result<sled::IVec>>) -> Result<Vec<RunId>> {
    keys.take(2).map(|key| RunId::from_key(&key?)).collect()
}
