//! What a sweep varies: its settings, each a list of values (a grid) or a range to sample (a
//! random search), and the trials made from them.
//!
//! A setting is named as the flag that sets it (`lr`, `lr-decay`, `batch-size`), a `--layer-lr`
//! rule by its glob (`layer0`), a `--freeze` rule as `freeze:GLOB`. Values are kept as the CLI
//! takes them, so a trial's settings read as the flags that would start it alone.

use strata_proto::RunConfig;

use strata_rng::SplitMix64;

/// Most trials one sweep may have: a grid larger than this is refused before anything starts.
pub const MAX_SWEEP_TRIALS: usize = 1000;

/// Which field of the run config a setting sets.
#[derive(Clone, Debug, PartialEq)]
pub enum Target {
    Lr,
    LrDecay,
    LrSlice,
    WeightDecay,
    Momentum,
    BatchSize,
    Seed,
    Optimizer,
    Schedule,
    /// A `--layer-lr GLOB=VALUE` rule, at its place among the rules.
    LayerLr {
        glob: String,
        rule: usize,
    },
    /// A `--freeze GLOB@EPOCH` rule, at its place among the rules.
    Freeze {
        glob: String,
        rule: usize,
    },
}

/// The values a setting takes.
#[derive(Clone, Debug, PartialEq)]
pub enum Values {
    /// Every one in a grid; one at random, each as likely, in a random search.
    List(Vec<String>),
    /// A random search draws log-uniformly between the bounds (`log:LO..HI`).
    LogUniform { lo: f64, hi: f64 },
    /// A random search draws uniformly between the bounds (`uniform:LO..HI`).
    Uniform { lo: f64, hi: f64 },
}

/// One setting of a sweep, as a flag gave it.
#[derive(Clone, Debug, PartialEq)]
pub struct Setting {
    /// As trials report it: `lr`, `layer0`, `freeze:layer0`.
    pub name: String,
    /// The flag it came from, for error messages: `--lr`, `--layer-lr`.
    pub flag: &'static str,
    pub target: Target,
    pub values: Values,
}

impl Setting {
    /// Swept (more than one value), as opposed to fixed for every trial.
    pub fn is_swept(&self) -> bool {
        !matches!(&self.values, Values::List(values) if values.len() == 1)
    }
}

/// A sweep's settings, in the order the flags were given (`--layer-lr` and `--freeze` rules in
/// their own order, so that later rules still win).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SweepSpace {
    pub settings: Vec<Setting>,
}

/// A bad sweep flag: the flag, and what is wrong and allowed. A usage error (exit 2).
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("{flag}: {message}")]
pub struct SpecError {
    pub flag: String,
    pub message: String,
}

fn spec_error(flag: &str, message: impl Into<String>) -> SpecError {
    SpecError {
        flag: flag.to_string(),
        message: message.into(),
    }
}

/// One trial: its number (from 1) and the value of every setting, in the space's order.
#[derive(Clone, Debug, PartialEq)]
pub struct TrialPlan {
    pub trial: u32,
    pub values: Vec<(String, String)>,
}

/// How a value of a setting must read: a number (ranges allowed) or text (lists only).
#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    /// A positive or non-negative real; `log:` and `uniform:` ranges allowed.
    Real,
    /// A whole number; lists only.
    Whole,
    /// A spec string the daemon parses (`cosine`, `1e-5:1e-3`); lists only.
    Text,
    /// A `--layer-lr` value: a rate (ranges allowed) or `xFACTOR`.
    RateOrFactor,
}

impl SweepSpace {
    /// Adds a plain flag's values: `1e-3,1e-2`, `log:1e-4..1e-1` or `uniform:0.5..0.9`.
    pub fn add(&mut self, flag: &'static str, target: Target, text: &str) -> Result<(), SpecError> {
        let kind = match target {
            Target::Lr | Target::LrDecay | Target::WeightDecay | Target::Momentum => Kind::Real,
            Target::BatchSize | Target::Seed => Kind::Whole,
            Target::LrSlice | Target::Optimizer | Target::Schedule => Kind::Text,
            Target::LayerLr { .. } => Kind::RateOrFactor,
            Target::Freeze { .. } => Kind::Whole,
        };
        let values = parse_values(flag, text, kind)?;
        let name = match &target {
            Target::LayerLr { glob, .. } => glob.clone(),
            Target::Freeze { glob, .. } => format!("freeze:{glob}"),
            _ => flag.trim_start_matches("--").to_string(),
        };
        if self.settings.iter().any(|s| s.name == name) {
            return Err(spec_error(
                flag,
                format!("'{name}' is given twice; give each setting once, with all its values"),
            ));
        }
        self.settings.push(Setting {
            name,
            flag,
            target,
            values,
        });
        Ok(())
    }

    /// Adds the `--layer-lr` rules: `GLOB=V1,V2,...` (or a range), each a setting of its own.
    pub fn add_layer_rules(&mut self, rules: &[String]) -> Result<(), SpecError> {
        for (rule, text) in rules.iter().enumerate() {
            let Some((glob, values)) = text.split_once('=') else {
                return Err(spec_error(
                    "--layer-lr",
                    format!("'{text}' has no '='; write GLOB=RATE[,RATE...], e.g. 'layer0=1e-4,1e-3', or GLOB=log:LO..HI"),
                ));
            };
            let glob = glob.trim().to_string();
            if glob.is_empty() {
                return Err(spec_error(
                    "--layer-lr",
                    format!("'{text}' names no layer before '='"),
                ));
            }
            self.add("--layer-lr", Target::LayerLr { glob, rule }, values)?;
        }
        Ok(())
    }

    /// Adds the `--freeze` rules: `GLOB` (for good), `GLOB@E` or `GLOB@E1,E2,...` (the epoch it
    /// trains from: swept).
    pub fn add_freeze_rules(&mut self, rules: &[String]) -> Result<(), SpecError> {
        for (rule, text) in rules.iter().enumerate() {
            let (glob, epochs) = match text.split_once('@') {
                Some((glob, epochs)) => (glob.trim(), Some(epochs)),
                None => (text.trim(), None),
            };
            if glob.is_empty() {
                return Err(spec_error("--freeze", format!("'{text}' names no layer")));
            }
            let target = Target::Freeze {
                glob: glob.to_string(),
                rule,
            };
            match epochs {
                Some(epochs) => self.add("--freeze", target, epochs)?,
                // Frozen for good: one value, not swept.
                None => self.settings.push(Setting {
                    name: format!("freeze:{glob}"),
                    flag: "--freeze",
                    target,
                    values: Values::List(vec!["forever".into()]),
                }),
            }
        }
        Ok(())
    }

    /// Whether a setting has a range, which only a random search can draw from.
    pub fn has_ranges(&self) -> bool {
        self.settings
            .iter()
            .any(|s| !matches!(s.values, Values::List(_)))
    }

    /// The settings that vary between trials.
    pub fn swept(&self) -> impl Iterator<Item = &Setting> {
        self.settings.iter().filter(|s| s.is_swept())
    }

    /// Every combination of the listed values, the last setting varying fastest. Refused with a
    /// range (a grid needs lists) or beyond [`MAX_SWEEP_TRIALS`].
    pub fn grid(&self) -> Result<Vec<TrialPlan>, SpecError> {
        let mut lists: Vec<(&Setting, &Vec<String>)> = Vec::new();
        for setting in &self.settings {
            match &setting.values {
                Values::List(values) => lists.push((setting, values)),
                _ => {
                    return Err(spec_error(
                        setting.flag,
                        format!(
                            "'{}' is a range; a range needs a random search: add --trials N",
                            setting.name
                        ),
                    ))
                }
            }
        }
        let size = lists
            .iter()
            .try_fold(1usize, |n, (_, values)| n.checked_mul(values.len()))
            .filter(|&n| n <= MAX_SWEEP_TRIALS);
        let Some(size) = size else {
            return Err(spec_error(
                "--lr/--layer-lr/...",
                format!("the grid has more than {MAX_SWEEP_TRIALS} trials; list fewer values, or sample with --trials N"),
            ));
        };
        Ok((0..size)
            .map(|index| {
                let mut rest = index;
                let mut values = vec![(String::new(), String::new()); lists.len()];
                for (slot, (setting, list)) in values.iter_mut().zip(&lists).rev() {
                    *slot = (setting.name.clone(), list[rest % list.len()].clone());
                    rest /= list.len();
                }
                TrialPlan {
                    trial: index as u32 + 1,
                    values,
                }
            })
            .collect())
    }

    /// `trials` random draws, the same for the same `seed`: ranges log-uniformly or uniformly,
    /// lists each value as likely.
    pub fn random(&self, trials: u32, seed: u64) -> Result<Vec<TrialPlan>, SpecError> {
        if trials == 0 || trials as usize > MAX_SWEEP_TRIALS {
            return Err(spec_error(
                "--trials",
                format!("{trials}; a random search has 1 to {MAX_SWEEP_TRIALS} trials"),
            ));
        }
        let mut rng = SplitMix64::new(seed);
        Ok((1..=trials)
            .map(|trial| TrialPlan {
                trial,
                values: self
                    .settings
                    .iter()
                    .map(|setting| (setting.name.clone(), draw(&setting.values, &mut rng)))
                    .collect(),
            })
            .collect())
    }

    /// The run config of a trial: `base` with every setting's value of the trial.
    pub fn config_of(&self, base: &RunConfig, plan: &TrialPlan) -> RunConfig {
        let mut config = base.clone();
        let mut layer_lr: Vec<(usize, String)> = Vec::new();
        let mut freeze: Vec<(usize, String)> = Vec::new();
        for (setting, (_, value)) in self.settings.iter().zip(&plan.values) {
            let real = || value.parse::<f64>().ok();
            match &setting.target {
                Target::Lr => config.lr = real(),
                Target::LrDecay => config.lr_decay = real(),
                Target::WeightDecay => config.weight_decay = real(),
                Target::Momentum => config.momentum = real(),
                Target::BatchSize => config.batch_size = value.parse().ok(),
                Target::Seed => config.seed = value.parse().ok(),
                Target::LrSlice => config.lr_slice = value.clone(),
                Target::Optimizer => config.optimizer = value.clone(),
                Target::Schedule => config.schedule = value.clone(),
                Target::LayerLr { glob, rule } => layer_lr.push((*rule, format!("{glob}={value}"))),
                Target::Freeze { glob, rule } => freeze.push((
                    *rule,
                    if value == "forever" {
                        glob.clone()
                    } else {
                        format!("{glob}@{value}")
                    },
                )),
            }
        }
        layer_lr.sort_by_key(|(rule, _)| *rule);
        freeze.sort_by_key(|(rule, _)| *rule);
        config.layer_lr = layer_lr.into_iter().map(|(_, rule)| rule).collect();
        config.freeze = freeze.into_iter().map(|(_, rule)| rule).collect();
        config
    }
}

/// One random value of a setting, written as the CLI takes it (four significant digits).
fn draw(values: &Values, rng: &mut SplitMix64) -> String {
    match values {
        Values::List(list) => list[rng.pick(list.len())].clone(),
        Values::LogUniform { lo, hi } => {
            let (lo, hi) = (lo.ln(), hi.ln());
            shown_drawn((lo + (hi - lo) * rng.uniform()).exp())
        }
        Values::Uniform { lo, hi } => shown_drawn(lo + (hi - lo) * rng.uniform()),
    }
}

/// A drawn number to four significant digits: `3.162e-3`, and exactly what the run is given.
fn shown_drawn(value: f64) -> String {
    format!("{value:.3e}")
}

/// A flag's values: a comma list, or (for numbers) one range.
fn parse_values(flag: &str, text: &str, kind: Kind) -> Result<Values, SpecError> {
    let text = text.trim();
    let ranged = matches!(kind, Kind::Real | Kind::RateOrFactor);
    for (prefix, log) in [("log:", true), ("uniform:", false)] {
        let Some(range) = text.strip_prefix(prefix) else {
            continue;
        };
        if !ranged {
            return Err(spec_error(
                flag,
                format!("'{text}': ranges are for rates, decay, momentum and weight decay; list this flag's values, e.g. 16,32,64"),
            ));
        }
        return parse_range(flag, range, log);
    }
    let values: Vec<String> = text.split(',').map(|v| v.trim().to_string()).collect();
    for value in &values {
        check_value(flag, value, kind)?;
    }
    let mut seen: Vec<&String> = Vec::new();
    for value in &values {
        if seen.contains(&value) {
            return Err(spec_error(flag, format!("'{value}' is listed twice")));
        }
        seen.push(value);
    }
    Ok(Values::List(values))
}

/// `LO..HI` of a `log:` or `uniform:` range: finite, LO < HI, and positive for `log:`.
fn parse_range(flag: &str, range: &str, log: bool) -> Result<Values, SpecError> {
    let kind = if log { "log" } else { "uniform" };
    let bounds = range.split_once("..").and_then(|(lo, hi)| {
        Some((
            lo.trim().parse::<f64>().ok()?,
            hi.trim().parse::<f64>().ok()?,
        ))
    });
    // HI − LO finite too: a draw is LO + (HI − LO)·u, and -1e308..1e308 would draw infinity.
    let Some((lo, hi)) = bounds
        .filter(|(lo, hi)| lo.is_finite() && hi.is_finite() && lo < hi && (hi - lo).is_finite())
    else {
        return Err(spec_error(
            flag,
            format!("'{kind}:{range}' is not a range; write {kind}:LO..HI with LO < HI, e.g. {kind}:1e-4..1e-1"),
        ));
    };
    if log && lo <= 0.0 {
        return Err(spec_error(
            flag,
            format!("'log:{range}': a log range needs LO > 0"),
        ));
    }
    Ok(if log {
        Values::LogUniform { lo, hi }
    } else {
        Values::Uniform { lo, hi }
    })
}

/// One listed value: empty never; a number where the setting is one. (The daemon judges the
/// rest — a negative rate, an unknown schedule — in the dry run of every trial.)
fn check_value(flag: &str, value: &str, kind: Kind) -> Result<(), SpecError> {
    if value.is_empty() {
        return Err(spec_error(
            flag,
            "an empty value; separate values with single commas, e.g. 1e-3,1e-2",
        ));
    }
    let ok = match kind {
        Kind::Real => value.parse::<f64>().is_ok_and(f64::is_finite),
        Kind::Whole => value.parse::<u64>().is_ok(),
        Kind::Text => true,
        Kind::RateOrFactor => value
            .strip_prefix('x')
            .unwrap_or(value)
            .parse::<f64>()
            .is_ok_and(f64::is_finite),
    };
    if ok {
        return Ok(());
    }
    let allowed = match kind {
        Kind::Real => "a number, e.g. 1e-3,1e-2, or a range log:LO..HI / uniform:LO..HI",
        Kind::Whole => "a whole number, e.g. 16,32",
        Kind::RateOrFactor => "a rate or xFACTOR, e.g. 1e-4,x0.1, or a range log:LO..HI",
        Kind::Text => "",
    };
    Err(spec_error(flag, format!("'{value}' is not {allowed}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn space() -> SweepSpace {
        let mut space = SweepSpace::default();
        space.add("--lr", Target::Lr, "1e-3,1e-2").unwrap();
        space
            .add_layer_rules(&["layer0=1e-4,1e-3,x1".into(), "head=x2".into()])
            .unwrap();
        space
    }

    #[test]
    fn a_grid_is_every_combination_with_the_last_setting_fastest() {
        let space = space();
        let grid = space.grid().unwrap();
        assert_eq!(grid.len(), 6);
        assert_eq!(grid[0].trial, 1);
        assert_eq!(
            grid[1].values,
            [
                ("lr".to_string(), "1e-3".to_string()),
                ("layer0".into(), "1e-3".into()),
                ("head".into(), "x2".into())
            ]
        );
        let names: Vec<&str> = space.swept().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["lr", "layer0"], "a single value is not swept");
        let config = space.config_of(&RunConfig::default(), &grid[5]);
        assert_eq!(config.lr, Some(1e-2));
        assert_eq!(config.layer_lr, ["layer0=x1", "head=x2"]);
    }

    #[test]
    fn a_random_search_is_seeded_and_draws_within_its_ranges() {
        let mut space = SweepSpace::default();
        space.add("--lr", Target::Lr, "log:1e-4..1e-1").unwrap();
        space
            .add("--batch-size", Target::BatchSize, "16,32")
            .unwrap();
        space.add_freeze_rules(&["layer0@1,3".into()]).unwrap();
        assert!(space.grid().unwrap_err().to_string().contains("--trials"));
        let a = space.random(20, 7).unwrap();
        assert_eq!(a, space.random(20, 7).unwrap());
        assert_ne!(a, space.random(20, 8).unwrap());
        for plan in &a {
            let lr: f64 = plan.values[0].1.parse().unwrap();
            assert!((1e-4..=1e-1).contains(&lr), "{lr}");
            assert!(["16", "32"].contains(&plan.values[1].1.as_str()));
            let config = space.config_of(&RunConfig::default(), plan);
            assert!(config.freeze[0].starts_with("layer0@"));
        }
        assert!(space.random(0, 1).is_err());
        assert!(space.random(1001, 1).is_err());
        // A range too wide to draw from (HI − LO overflows) is refused, naming the flag.
        let wide = SweepSpace::default()
            .add(
                "--weight-decay",
                Target::WeightDecay,
                "uniform:-1e308..1e308",
            )
            .unwrap_err();
        assert!(wide.to_string().contains("--weight-decay"), "{wide}");
    }

    #[test]
    fn bad_values_name_the_flag_and_what_is_allowed() {
        let mut space = SweepSpace::default();
        let err = space.add("--lr", Target::Lr, "1e-3,,1e-2").unwrap_err();
        assert_eq!(err.flag, "--lr");
        let err = space.add("--lr", Target::Lr, "fast").unwrap_err();
        assert!(err.to_string().contains("'fast' is not a number"), "{err}");
        let err = space.add("--lr", Target::Lr, "log:1e-1..1e-4").unwrap_err();
        assert!(err.to_string().contains("LO < HI"), "{err}");
        let err = space.add("--lr", Target::Lr, "log:0..1").unwrap_err();
        assert!(err.to_string().contains("LO > 0"), "{err}");
        let err = space
            .add("--batch-size", Target::BatchSize, "log:8..64")
            .unwrap_err();
        assert!(err.to_string().contains("list this flag's values"), "{err}");
        let err = space.add_layer_rules(&["layer0".into()]).unwrap_err();
        assert!(err.to_string().contains("GLOB=RATE"), "{err}");
        let err = space.add("--lr", Target::Lr, "1e-3,1e-3").unwrap_err();
        assert!(err.to_string().contains("twice"), "{err}");
        let mut big = SweepSpace::default();
        big.add(
            "--lr",
            Target::Lr,
            &(1..=40)
                .map(|i| format!("{i}e-4"))
                .collect::<Vec<_>>()
                .join(","),
        )
        .unwrap();
        big.add(
            "--seed",
            Target::Seed,
            &(0..30).map(|i| i.to_string()).collect::<Vec<_>>().join(","),
        )
        .unwrap();
        assert!(big
            .grid()
            .unwrap_err()
            .to_string()
            .contains("more than 1000"));
    }
}
