//! Learning rates: the per-group rate table of `strata show`, the per-parameter table of
//! `strata start --dry-run`, the rate spec as the user gave it, and the short rate setup of
//! `strata compare`.

use strata_proto::{ParameterRate, Run, RunConfig};

use crate::render::format::{plain_number, rate, shape};
use crate::render::table::{Align, Table};

/// A parameter's freeze state from `ParameterRate.frozen_until`.
pub fn frozen(frozen_until: i32) -> String {
    match frozen_until {
        0 => "no".into(),
        n if n < 0 => "yes".into(),
        n => format!("until epoch {n}"),
    }
}

/// Parameters by group, in the order the daemon lists them (the model's order).
fn by_group(parameters: &[ParameterRate]) -> Vec<(&str, Vec<&ParameterRate>)> {
    let mut groups: Vec<(&str, Vec<&ParameterRate>)> = Vec::new();
    for parameter in parameters {
        match groups.iter_mut().find(|(name, _)| *name == parameter.group) {
            Some((_, members)) => members.push(parameter),
            None => groups.push((&parameter.group, vec![parameter])),
        }
    }
    groups
}

/// A parameter's name without its group prefix (`layer0.weight` in `layer0` → `weight`).
fn short_name(parameter: &ParameterRate) -> &str {
    parameter
        .name
        .strip_prefix(parameter.group.as_str())
        .and_then(|rest| rest.strip_prefix('.'))
        .filter(|rest| !rest.is_empty())
        .unwrap_or(&parameter.name)
}

/// The per-group learning-rate table: one line per group when all its parameters share a rate
/// and freeze state (the usual case), else one line per parameter, so a rule that split a group
/// is visible.
pub fn rate_table(parameters: &[ParameterRate]) -> String {
    /// Beyond this many parameters, a uniform group names a count instead of every parameter.
    const MAX_LISTED: usize = 4;

    if parameters.is_empty() {
        return "no parameters resolved".into();
    }
    let mut table = Table::new(&[
        ("GROUP", Align::Left),
        ("PARAMETERS", Align::Left),
        ("LR", Align::Right),
        ("FROZEN", Align::Left),
    ]);
    for (group, members) in by_group(parameters) {
        let first = members[0];
        let uniform = members
            .iter()
            .all(|p| p.lr.to_bits() == first.lr.to_bits() && p.frozen_until == first.frozen_until);
        if uniform {
            let names = if members.len() > MAX_LISTED {
                format!("{} parameters", members.len())
            } else {
                members
                    .iter()
                    .map(|p| short_name(p))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            table.row(vec![
                group.to_string(),
                names,
                rate(first.lr),
                frozen(first.frozen_until),
            ]);
        } else {
            for (i, parameter) in members.iter().enumerate() {
                let group_cell = if i == 0 {
                    group.to_string()
                } else {
                    String::new()
                };
                table.row(vec![
                    group_cell,
                    short_name(parameter).to_string(),
                    rate(parameter.lr),
                    frozen(parameter.frozen_until),
                ]);
            }
        }
    }
    table.render_plain()
}

/// Every parameter with its resolved rate, for `strata start --dry-run`.
pub fn parameter_table(parameters: &[ParameterRate]) -> String {
    let mut table = Table::new(&[
        ("NAME", Align::Left),
        ("GROUP", Align::Left),
        ("SHAPE", Align::Left),
        ("LR", Align::Right),
        ("FROZEN", Align::Left),
        ("INIT", Align::Left),
    ]);
    for parameter in parameters {
        table.row(vec![
            parameter.name.clone(),
            parameter.group.clone(),
            shape(&parameter.shape),
            rate(parameter.lr),
            frozen(parameter.frozen_until),
            parameter.init.clone(),
        ]);
    }
    table.render_plain()
}

/// The learning-rate spec as the user gave it: base rate, rules, decay, slice, schedule.
pub fn rate_spec(config: &RunConfig) -> String {
    let mut parts = Vec::new();
    if let Some(lr) = config.lr {
        parts.push(format!("lr {}", rate(lr)));
    }
    if !config.layer_lr.is_empty() {
        parts.push(format!("layer-lr {}", config.layer_lr.join(" ")));
    }
    if !config.freeze.is_empty() {
        parts.push(format!("freeze {}", config.freeze.join(" ")));
    }
    if let Some(decay) = config.lr_decay {
        parts.push(format!("lr-decay {}", plain_number(decay)));
    }
    if !config.lr_slice.is_empty() {
        parts.push(format!("lr-slice {}", config.lr_slice));
    }
    if !config.schedule.is_empty() {
        parts.push(format!("schedule {}", config.schedule));
    }
    if parts.is_empty() {
        "-".into()
    } else {
        parts.join("; ")
    }
}

/// A run's layer-rate setup in short form, from its resolved rate table: `all=1e-2`, or
/// `layer0=1e-3@3 layer1=1e-2 head=1e-2` (`@N`: frozen until epoch N; `=frozen`: for good), and
/// the schedule when it is not constant.
pub fn rate_setup(run: &Run) -> String {
    // Per group, the rate of its largest parameter, as the daemon reports a group's rate.
    let mut groups: Vec<(&str, f64, i32, i64)> = Vec::new();
    for p in &run.parameters {
        let size: i64 = p.shape.iter().product();
        match groups.iter_mut().find(|g| g.0 == p.group) {
            Some(g) if size > g.3 => *g = (&p.group, p.lr, p.frozen_until, size),
            Some(_) => {}
            None => groups.push((&p.group, p.lr, p.frozen_until, size)),
        }
    }
    let mut text = match groups.first() {
        None => "-".to_string(),
        Some(first)
            if groups.len() > 1
                && groups
                    .iter()
                    .all(|g| g.1.to_bits() == first.1.to_bits() && g.2 == 0) =>
        {
            format!("all={}", rate(first.1))
        }
        Some(_) => groups
            .iter()
            .map(|(name, lr, frozen_until, _)| match frozen_until {
                0 => format!("{name}={}", rate(*lr)),
                n if *n < 0 => format!("{name}=frozen"),
                n => format!("{name}={}@{n}", rate(*lr)),
            })
            .collect::<Vec<_>>()
            .join(" "),
    };
    let schedule = run.config.as_ref().map_or("", |c| c.schedule.as_str());
    if !schedule.is_empty() && schedule != "constant" {
        text.push_str(&format!(" schedule={schedule}"));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{mlp, parameter};

    #[test]
    fn uniform_groups_collapse_to_one_line() {
        let parameters = [
            parameter("layer0.weight", "layer0", vec![64, 2], 1e-4, 3),
            parameter("layer0.bias", "layer0", vec![64, 2], 1e-4, 3),
            parameter("layer1.weight", "layer1", vec![64, 2], 1e-3, 0),
            parameter("layer1.bias", "layer1", vec![64, 2], 2e-3, 0),
            parameter("head.weight", "head", vec![64, 2], 1e-2, -1),
        ];
        let table = rate_table(&parameters);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 5, "{table}");
        assert_eq!(lines[0], "GROUP   PARAMETERS      LR  FROZEN");
        assert_eq!(lines[1], "layer0  weight, bias  1e-4  until epoch 3");
        assert_eq!(lines[2], "layer1  weight        1e-3  no");
        assert_eq!(lines[3], "        bias          2e-3  no");
        assert_eq!(lines[4], "head    weight        1e-2  yes");
    }

    #[test]
    fn large_uniform_groups_name_a_count() {
        let parameters: Vec<_> = (0..6)
            .map(|i| parameter(&format!("block.p{i}"), "block", vec![64, 2], 1e-3, 0))
            .collect();
        assert!(rate_table(&parameters).contains("6 parameters"));
    }

    #[test]
    fn dry_run_table_lists_every_parameter() {
        let table = parameter_table(&[parameter("layer0.weight", "layer0", vec![64, 2], 1e-4, 0)]);
        assert_eq!(
            table,
            "NAME           GROUP   SHAPE      LR  FROZEN  INIT\nlayer0.weight  layer0  [64, 2]  1e-4  no      fresh"
        );
    }

    #[test]
    fn rate_setup_is_short() {
        let run = |parameters, schedule: &str| Run {
            parameters,
            config: Some(RunConfig {
                schedule: schedule.into(),
                ..RunConfig::default()
            }),
            ..Run::default()
        };
        assert_eq!(rate_setup(&run(mlp(1e-2, 0), "constant")), "all=1e-2");
        assert_eq!(
            rate_setup(&run(mlp(1e-3, 0), "cosine")),
            "layer0=1e-3 head=1e-2 schedule=cosine"
        );
        assert_eq!(
            rate_setup(&run(mlp(1e-3, 3), "")),
            "layer0=1e-3@3 head=1e-2"
        );
        assert_eq!(
            rate_setup(&run(mlp(1e-3, -1), "")),
            "layer0=frozen head=1e-2"
        );
        assert_eq!(rate_setup(&Run::default()), "-");
    }
}
