//! `init_from`: the run (and epoch) a fine-tuning run starts from.

use crate::error::{Result, StrataError};

/// `RUN` or `RUN@EPOCH`, as the user typed it (the run may be an id prefix).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InitSource {
    pub run: String,
    /// None: the run's last checkpoint.
    pub epoch: Option<u32>,
}

impl InitSource {
    pub fn parse(text: &str) -> Result<Option<Self>> {
        let text = text.trim();
        if text.is_empty() {
            return Ok(None);
        }
        let (run, epoch) = match text.split_once('@') {
            Some((run, epoch)) => {
                let epoch = epoch
                    .parse::<u32>()
                    .ok()
                    .filter(|&e| e >= 1)
                    .ok_or_else(|| {
                        StrataError::invalid(
                            "init_from",
                            format!("'{text}': the epoch after '@' must be a whole number ≥ 1"),
                        )
                    })?;
                (run, Some(epoch))
            }
            None => (text, None),
        };
        if run.is_empty() || run.len() > 16 || !run.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(StrataError::invalid(
                "init_from",
                format!(
                    "'{text}' must be RUN or RUN@EPOCH, RUN a run id or a unique prefix of one"
                ),
            ));
        }
        Ok(Some(InitSource {
            run: run.to_ascii_lowercase(),
            epoch,
        }))
    }
}
