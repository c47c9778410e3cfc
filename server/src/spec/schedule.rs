//! Learning-rate schedules: a per-step multiplier applied to every group's own base rate.

use std::f64::consts::PI;

/// fastai's one-cycle defaults.
const ONECYCLE_PCT_START: f64 = 0.25;
const ONECYCLE_DIV: f64 = 25.0;
const ONECYCLE_FINAL_DIV: f64 = 1e5;
/// ULMFiT's slanted triangular defaults.
const STLR_CUT_FRAC: f64 = 0.1;
const STLR_RATIO: f64 = 32.0;

/// Longest schedule text accepted (the longest real one is a few dozen characters).
const MAX_SCHEDULE_BYTES: usize = 200;

pub const SCHEDULE_FORMS: &str =
    "constant, step:EVERY_EPOCHS:GAMMA, cosine, onecycle, stlr, warmup:STEPS[+SCHEDULE]";

#[derive(Clone, Debug, PartialEq)]
pub enum Schedule {
    Constant,
    /// Multiply by `gamma` every `every_epochs` epochs.
    Step {
        every_epochs: u32,
        gamma: f64,
    },
    /// Cosine annealing from 1 to 0 over the run.
    Cosine,
    OneCycle,
    /// Slanted triangular: a short linear warm-up, then a long linear decay.
    Stlr,
    /// Linear warm-up over `steps` optimizer steps, times `then`.
    Warmup {
        steps: u64,
        then: Box<Schedule>,
    },
}

impl Schedule {
    pub fn parse(spec: &str) -> Result<Self, String> {
        let spec = spec.trim();
        if spec.len() > MAX_SCHEDULE_BYTES {
            return Err(format!(
                "{} is too long for a schedule (at most {MAX_SCHEDULE_BYTES} characters): use one of {SCHEDULE_FORMS}",
                super::shown(spec)
            ));
        }
        if let Some(rest) = spec.strip_prefix("warmup:") {
            let (steps, then) = match rest.split_once('+') {
                // Checked before parsing what follows: no recursion on user input.
                Some((_, then)) if then.trim_start().starts_with("warmup:") => {
                    return Err(format!("'{spec}': only one warmup is allowed"));
                }
                Some((_, then)) if then.trim().is_empty() => {
                    return Err(format!(
                        "'{spec}': name the schedule after the warm-up, e.g. warmup:100+cosine, or drop the '+'"
                    ));
                }
                Some((steps, then)) => (steps, Schedule::parse(then)?),
                None => (rest, Schedule::Constant),
            };
            let steps = steps
                .parse::<u64>()
                .ok()
                .filter(|&s| s > 0)
                .ok_or_else(|| {
                    format!(
                        "'{spec}': warmup takes a positive number of steps, e.g. warmup:100+cosine"
                    )
                })?;
            if matches!(then, Schedule::Warmup { .. }) {
                return Err(format!("'{spec}': only one warmup is allowed"));
            }
            return Ok(Schedule::Warmup {
                steps,
                then: Box::new(then),
            });
        }
        match spec.split(':').collect::<Vec<_>>().as_slice() {
            ["" | "constant"] => Ok(Schedule::Constant),
            ["cosine"] => Ok(Schedule::Cosine),
            ["onecycle"] => Ok(Schedule::OneCycle),
            ["stlr"] => Ok(Schedule::Stlr),
            ["step", every, gamma] => {
                let every_epochs =
                    every
                        .parse::<u32>()
                        .ok()
                        .filter(|&e| e > 0)
                        .ok_or_else(|| {
                            format!("'{spec}': EVERY must be a positive number of epochs")
                        })?;
                let gamma = gamma
                    .parse::<f64>()
                    .ok()
                    .filter(|g| g.is_finite() && *g > 0.0)
                    .ok_or_else(|| format!("'{spec}': GAMMA must be a positive finite number"))?;
                Ok(Schedule::Step {
                    every_epochs,
                    gamma,
                })
            }
            _ => Err(format!(
                "'{spec}' is not a schedule; allowed: {SCHEDULE_FORMS}"
            )),
        }
    }

    /// The multiplier at optimizer step `step` (0-based) of a run of `total_steps` steps with
    /// `steps_per_epoch` steps an epoch.
    pub fn multiplier(&self, step: u64, total_steps: u64, steps_per_epoch: u64) -> f64 {
        let total = total_steps.max(1) as f64;
        let t = step as f64;
        match self {
            Schedule::Constant => 1.0,
            Schedule::Step {
                every_epochs,
                gamma,
            } => {
                let epoch = step / steps_per_epoch.max(1);
                gamma.powi((epoch / u64::from(*every_epochs)) as i32)
            }
            Schedule::Cosine => 0.5 * (1.0 + (PI * t / total).cos()),
            Schedule::OneCycle => {
                let warm = (total * ONECYCLE_PCT_START).max(1.0);
                let start = 1.0 / ONECYCLE_DIV;
                let end = start / ONECYCLE_FINAL_DIV;
                if t < warm {
                    start + (1.0 - start) * (1.0 - (PI * t / warm).cos()) / 2.0
                } else {
                    let p = ((t - warm) / (total - warm).max(1.0)).min(1.0);
                    end + (1.0 - end) * (1.0 + (PI * p).cos()) / 2.0
                }
            }
            Schedule::Stlr => {
                let cut = (total * STLR_CUT_FRAC).floor().max(1.0);
                let p = if t < cut {
                    t / cut
                } else {
                    1.0 - (t - cut) / (cut * (1.0 / STLR_CUT_FRAC - 1.0))
                };
                (1.0 + p.max(0.0) * (STLR_RATIO - 1.0)) / STLR_RATIO
            }
            Schedule::Warmup { steps, then } => {
                let warm = ((step + 1) as f64 / *steps as f64).min(1.0);
                warm * then.multiplier(step, total_steps, steps_per_epoch)
            }
        }
    }

    pub fn is_constant(&self) -> bool {
        *self == Schedule::Constant
    }
}

#[cfg(test)]
mod tests {
    use super::Schedule;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    #[test]
    fn formulas_at_chosen_steps() {
        let cosine = Schedule::parse("cosine").unwrap();
        assert!(close(cosine.multiplier(0, 100, 10), 1.0));
        assert!(close(cosine.multiplier(50, 100, 10), 0.5));
        let step = Schedule::parse("step:2:0.5").unwrap();
        assert!(close(step.multiplier(19, 100, 10), 1.0));
        assert!(close(step.multiplier(20, 100, 10), 0.5));
        assert!(close(step.multiplier(45, 100, 10), 0.25));
        let one = Schedule::parse("onecycle").unwrap();
        assert!(close(one.multiplier(0, 100, 10), 1.0 / 25.0));
        assert!(close(one.multiplier(25, 100, 10), 1.0));
        assert!(one.multiplier(100, 100, 10) < 1e-6);
        let stlr = Schedule::parse("stlr").unwrap();
        assert!(close(stlr.multiplier(0, 100, 10), 1.0 / 32.0));
        assert!(close(stlr.multiplier(10, 100, 10), 1.0));
        let warm = Schedule::parse("warmup:10+cosine").unwrap();
        assert!(close(
            warm.multiplier(4, 100, 10),
            0.5 * cosine.multiplier(4, 100, 10)
        ));
    }

    #[test]
    fn rejects_bad_forms() {
        for bad in [
            "linear",
            "step:0:0.5",
            "step:2:-1",
            "warmup:x",
            "warmup:5+warmup:5",
            "warmup:10+",
            "warmup:10+ ",
            "step:2",
        ] {
            assert!(Schedule::parse(bad).is_err(), "{bad}");
        }
    }

    /// Nested warm-ups used to be parsed by recursion, one stack frame per `warmup:1+`.
    #[test]
    fn hostile_schedules_are_refused_without_recursion() {
        let deep = "warmup:1+".repeat(10_000) + "constant";
        let err = Schedule::parse(&deep).unwrap_err();
        assert!(err.len() < 300, "the error does not echo the input: {err}");
        let err = Schedule::parse(&"warmup:1+".repeat(20)).unwrap_err();
        assert!(err.contains("only one warmup"), "{err}");
    }
}
