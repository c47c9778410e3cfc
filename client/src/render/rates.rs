//! Learning rates: the per-group rate table of `strata show`, the per-parameter table of
//! `strata start --dry-run`, the rate spec as the user gave it, and the short rate setup of
//! `strata compare`.

use strata_client::labels::{init_label, parameter_groups, FrozenUntil, ParameterGroup};
use strata_proto::{GroupRate, ParameterRate, Run, RunConfig};

use crate::render::format::{plain_number, rate, shape};
use crate::render::table::{Align, Table};

/// A freeze state in the FROZEN column: `no`, `until epoch N` or `yes`.
fn frozen(parameter: &ParameterRate) -> String {
    frozen_cell(FrozenUntil::of(parameter))
}

fn frozen_cell(frozen: FrozenUntil) -> String {
    match frozen {
        FrozenUntil::Never => "no".into(),
        FrozenUntil::Epoch(epoch) => format!("until epoch {epoch}"),
        FrozenUntil::Forever => "yes".into(),
    }
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
pub fn rate_table(groups: &[GroupRate], parameters: &[ParameterRate]) -> String {
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
    for ParameterGroup {
        group,
        parameters: members,
    } in parameter_groups(groups, parameters)
    {
        let group = group.name.as_str();
        let Some(&first) = members.first() else {
            continue;
        };
        let uniform = members.iter().all(|p| {
            p.lr.to_bits() == first.lr.to_bits() && FrozenUntil::of(p) == FrozenUntil::of(first)
        });
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
                frozen(first),
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
                    frozen(parameter),
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
            frozen(parameter),
            init_label(parameter).to_string(),
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
    let groups = &run.groups;
    let frozen = |g: &GroupRate| FrozenUntil::from_wire(g.frozen.as_ref());
    let mut text = match groups.first() {
        None => "-".to_string(),
        Some(first)
            if groups.len() > 1
                && groups.iter().all(|g| {
                    g.lr.to_bits() == first.lr.to_bits() && frozen(g) == FrozenUntil::Never
                }) =>
        {
            format!("all={}", rate(first.lr))
        }
        Some(_) => groups
            .iter()
            .map(|g| {
                let (name, lr) = (&g.name, rate(g.lr));
                match frozen(g) {
                    FrozenUntil::Never => format!("{name}={lr}"),
                    FrozenUntil::Epoch(epoch) => format!("{name}={lr}@{epoch}"),
                    FrozenUntil::Forever => format!("{name}=frozen"),
                }
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
    use crate::fixtures::{groups, mlp, parameter};

    #[test]
    fn uniform_groups_collapse_to_one_line() {
        let parameters = [
            parameter("layer0.weight", "layer0", vec![64, 2], 1e-4, 3),
            parameter("layer0.bias", "layer0", vec![64, 2], 1e-4, 3),
            parameter("layer1.weight", "layer1", vec![64, 2], 1e-3, 0),
            parameter("layer1.bias", "layer1", vec![64, 2], 2e-3, 0),
            parameter("head.weight", "head", vec![64, 2], 1e-2, -1),
        ];
        let table = rate_table(&groups(&parameters), &parameters);
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
        assert!(rate_table(&groups(&parameters), &parameters).contains("6 parameters"));
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
        let run = |parameters: Vec<ParameterRate>, schedule: &str| Run {
            groups: groups(&parameters),
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
