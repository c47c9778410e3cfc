//! Step records of runs logged from outside: LogSteps appends a batch to the run's step log
//! ([`crate::store::step_log`], in its folder), GetRunSteps reads them back thinned for a chart.
//!
//! A step record keeps the run alive like an epoch does. Steps only increase: a step at or below
//! the last one stored is a resend (a client retrying, `strata sync` replaying a spool) and is
//! skipped, so a batch may be sent any number of times.

use std::sync::Arc;

use tokio::time::Instant;

use super::{blocking, external::check_extra_name, Runs};
use crate::{
    domain::StepRecord,
    error::{Result, StrataError},
    store::step_log,
};

/// Steps one LogSteps call may carry.
pub const MAX_STEPS_PER_BATCH: usize = 10_000;
/// Named scalars one step may carry.
pub const MAX_STEP_SCALARS: usize = 32;
/// Step scalars one run may hold (1,000,000 steps of 2 scalars; ~20 MB in its step log): a chart
/// reads them all, so this bounds what one GetRunSteps reads.
pub const MAX_RUN_STEP_VALUES: u64 = 2_000_000;
/// Steps a GetRunSteps answers with by default, and at most.
pub const DEFAULT_STEP_POINTS: u32 = 2_000;
pub const MAX_STEP_POINTS: u32 = 20_000;

/// What a live run's step log holds so far.
#[derive(Clone, Copy, Debug)]
pub(super) struct StepsSoFar {
    last_step: Option<u64>,
    values: u64,
}

/// What a LogSteps call did.
#[derive(Clone, Copy, Debug)]
pub struct LoggedSteps {
    /// New steps stored (resends of stored steps are not counted).
    pub stored: u32,
    /// The run's last stored step (0 with none).
    pub last_step: u64,
}

/// A run's steps for a chart.
#[derive(Clone, Debug, Default)]
pub struct RunSteps {
    pub steps: Vec<StepRecord>,
    /// `steps` is an even spread of the stored steps, not all of them.
    pub thinned: bool,
    pub stored: u64,
}

impl Runs {
    /// Stores a batch of an external run's step records durably (one sync), skipping resends;
    /// see the proto's LogSteps for the rules. A refused batch stores nothing.
    pub async fn log_steps(
        self: &Arc<Self>,
        run: &str,
        steps: Vec<StepRecord>,
    ) -> Result<LoggedSteps> {
        check_steps(&steps)?;
        let id = self.resolve(run).await?;
        let log = self.live_external(id, run, "log steps to").await?;
        let mut log = log.lock().await;
        if log.ended {
            return Err(self.not_running(id, run, "log steps to").await);
        }
        let folder = self.checkpoint_dir(id);
        let so_far = match log.steps {
            Some(so_far) => so_far,
            None => {
                let folder = folder.clone();
                let summary = blocking(move || {
                    step_log::prepare_append(&folder).map_err(|e| cannot(&folder, "read", e))
                })
                .await?;
                StepsSoFar {
                    last_step: summary.last_step,
                    values: summary.values,
                }
            }
        };
        log.steps = Some(so_far);
        log.last_heard = Instant::now();
        let new: Vec<StepRecord> = steps
            .into_iter()
            .filter(|s| so_far.last_step.is_none_or(|last| s.step > last))
            .collect();
        let values: u64 = new.iter().map(|s| s.scalars.len() as u64).sum();
        if so_far.values + values > MAX_RUN_STEP_VALUES {
            return Err(StrataError::AtLimit(format!(
                "run {id} holds {} step scalars; this batch's {values} more would pass the {MAX_RUN_STEP_VALUES} a run may hold: log every Nth step, or fewer scalars a step",
                so_far.values
            )));
        }
        let Some(last) = new.last().map(|s| s.step) else {
            return Ok(LoggedSteps {
                stored: 0,
                last_step: so_far.last_step.unwrap_or(0),
            });
        };
        let stored = new.len() as u32;
        blocking(move || {
            step_log::append(&folder, &new).map_err(|e| cannot(&folder, "append to", e))
        })
        .await?;
        log.steps = Some(StepsSoFar {
            last_step: Some(last),
            values: so_far.values + values,
        });
        Ok(LoggedSteps {
            stored,
            last_step: last,
        })
    }

    /// A run's step records for a chart: all of them up to `max_points` (0: the default), else an
    /// even spread keeping the first and the last. A run without any has none.
    pub async fn run_steps(self: &Arc<Self>, run: &str, max_points: u32) -> Result<RunSteps> {
        let max_points = match max_points {
            0 => DEFAULT_STEP_POINTS,
            n if n > MAX_STEP_POINTS => {
                return Err(StrataError::invalid(
                    "max_points",
                    format!("{n}; at most {MAX_STEP_POINTS} (0: {DEFAULT_STEP_POINTS})"),
                ))
            }
            n => n,
        };
        let id = self.resolve(run).await?;
        let folder = self.checkpoint_dir(id);
        let (steps, stored) = blocking(move || {
            step_log::read_spread(&folder, max_points as usize)
                .map_err(|e| cannot(&folder, "read", e))
        })
        .await?;
        Ok(RunSteps {
            thinned: (steps.len() as u64) < stored,
            steps,
            stored,
        })
    }
}

fn cannot(folder: &std::path::Path, what: &str, err: std::io::Error) -> StrataError {
    StrataError::storage_from(
        format!("cannot {what} the run's step log in {}", folder.display()),
        err,
    )
}

/// A batch's shape: its size, steps increasing, each step's scalars few and well named.
fn check_steps(steps: &[StepRecord]) -> Result<()> {
    if steps.len() > MAX_STEPS_PER_BATCH {
        return Err(StrataError::invalid(
            "steps",
            format!(
                "{} steps in one batch; at most {MAX_STEPS_PER_BATCH} (send the rest in another call)",
                steps.len()
            ),
        ));
    }
    for (i, pair) in steps.windows(2).enumerate() {
        if pair[1].step <= pair[0].step {
            return Err(StrataError::invalid(
                format!("steps[{}].step", i + 1),
                format!(
                    "step {} follows step {}; steps increase strictly",
                    pair[1].step, pair[0].step
                ),
            ));
        }
    }
    for (i, record) in steps.iter().enumerate() {
        let at = format!("steps[{i}].scalars");
        if record.scalars.len() > MAX_STEP_SCALARS {
            return Err(StrataError::invalid(
                at,
                format!(
                    "step {} has {} scalars; at most {MAX_STEP_SCALARS}",
                    record.step,
                    record.scalars.len()
                ),
            ));
        }
        for name in record.scalars.keys() {
            check_extra_name(name).map_err(|why| {
                StrataError::invalid(&at, format!("step {}: the name {why}", record.step))
            })?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(n: u64) -> StepRecord {
        StepRecord {
            step: n,
            epoch: 1,
            scalars: [("loss".to_string(), 1.0)].into(),
        }
    }

    #[test]
    fn a_batch_increases_and_names_its_scalars_plainly() {
        assert!(check_steps(&[step(1), step(2), step(10)]).is_ok());
        let err = check_steps(&[step(2), step(2)]).unwrap_err().to_string();
        assert!(
            err.contains("steps[1].step") && err.contains("increase strictly"),
            "{err}"
        );
        let mut bad = step(3);
        bad.scalars.insert("train loss".into(), 1.0);
        let err = check_steps(&[bad]).unwrap_err().to_string();
        assert!(
            err.contains("steps[0].scalars") && err.contains("holds ' '"),
            "{err}"
        );
        let mut many = step(4);
        for i in 0..MAX_STEP_SCALARS {
            many.scalars.insert(format!("s{i}"), 0.0);
        }
        assert!(check_steps(&[many])
            .unwrap_err()
            .to_string()
            .contains("at most 32"));
    }
}
