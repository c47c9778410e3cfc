//! `strata lr-find` for people: a terminal chart per probed group (smoothed loss against
//! log10 of its rate), the table of suggestions, and the `strata start` line that uses them.

use strata_proto::{GroupProbe, LrFindPlan, RunConfig};

use crate::render::chart::{line_chart_over, Series};
use crate::render::format::{plain_number, rate};
use crate::render::table::{Align, Table};

/// Plot area of each group's terminal chart, in characters.
const CHART_WIDTH: usize = 60;
const CHART_HEIGHT: usize = 10;
/// fastai draws its curve without the last points, where the loss runs away
/// (`plot_lr_find(skip_end=5)`); so do the charts here.
pub const SKIPPED_LAST_POINTS: usize = 5;

/// The suggestion `--apply` uses: fastai's default (`lr_find(suggest_funcs=(valley,))`).
pub const APPLIED_SUGGESTION: &str = "valley";

/// The rate `--apply` gives a probed group, when its curve suggested one.
pub fn applied_rate(probe: &GroupProbe) -> Option<f64> {
    probe.valley
}

/// A probe's `(rate, smoothed loss)` points as fastai draws them.
pub fn drawn_points(probe: &GroupProbe) -> Vec<(f64, f64)> {
    let shown = probe.points.len().saturating_sub(SKIPPED_LAST_POINTS).max(
        // A curve cut that short is still worth seeing whole.
        probe.points.len().min(SKIPPED_LAST_POINTS + 1),
    );
    probe.points[..shown]
        .iter()
        .map(|p| (p.lr, p.smoothed_loss))
        .collect()
}

/// The smoothed loss of the point nearest to `lr` (for marking a suggestion on a curve).
pub fn loss_near(probe: &GroupProbe, lr: f64) -> Option<f64> {
    probe
        .points
        .iter()
        .min_by(|a, b| (a.lr - lr).abs().total_cmp(&(b.lr - lr).abs()))
        .map(|p| p.smoothed_loss)
}

/// The whole report: charts, table, skipped groups, and the start line.
pub fn report(plan: &LrFindPlan, probes: &[GroupProbe], start_command: &str) -> String {
    let mut sections: Vec<String> = probes.iter().map(group_chart).collect();
    sections.push(suggestion_table(plan, probes));
    let mut notes = Vec::new();
    for skipped in &plan.skipped {
        notes.push(format!("{}: skipped, {}", skipped.group, skipped.reason));
    }
    for probe in probes {
        if probe.valley.is_none() && probe.diverged {
            notes.push(format!(
                "{}: no suggestion — its loss ran away after {} steps, too soon to read; lower --start-lr",
                probe.group,
                probe.points.len()
            ));
        } else if probe.valley.is_none() {
            // fastai reads the curve without its first tenth and its last 5 points.
            notes.push(format!(
                "{}: no suggestion — {} steps leave too few points to read once the first tenth and the last 5 are set aside; raise --steps (100 is fastai's)",
                probe.group,
                probe.points.len()
            ));
        } else if probe.diverged {
            notes.push(format!(
                "{}: the sweep stopped at {} after {} of {} steps (smoothed loss above 4× its best)",
                probe.group,
                rate(probe.points.last().map_or(f64::NAN, |p| p.lr)),
                probe.points.len(),
                plan.steps
            ));
        }
    }
    notes.push(format!(
        "steep: where the loss falls fastest; min/10: a tenth of the rate of the lowest loss; {APPLIED_SUGGESTION}: two thirds down the longest descent (fastai's default, what --apply uses)"
    ));
    sections.push(notes.join("\n"));
    sections.push(format!("Start a run with these rates:\n  {start_command}"));
    sections.join("\n\n")
}

fn group_chart(probe: &GroupProbe) -> String {
    let log_points = |points: Vec<(f64, f64)>| -> Vec<(f64, f64)> {
        points
            .into_iter()
            .filter(|(lr, _)| *lr > 0.0)
            .map(|(lr, loss)| (lr.log10(), loss))
            .collect()
    };
    let curve = log_points(drawn_points(probe));
    // The suggestion first (the first series is drawn on top), as a dash one column or two wide
    // centred on it: a lone point is drawn only when it falls near a column's x.
    let mut series = Vec::new();
    if let (Some(lr), Some((first, _)), Some((last, _))) =
        (applied_rate(probe), curve.first(), curve.last())
    {
        if let Some(loss) = loss_near(probe, lr).filter(|_| lr > 0.0) {
            let half_column = (last - first).abs() / CHART_WIDTH as f64;
            let x = lr.log10();
            series.push(Series {
                label: format!("{APPLIED_SUGGESTION} {}", rate(lr)),
                points: vec![(x - half_column, loss), (x + half_column, loss)],
            });
        }
    }
    series.push(Series {
        label: "smoothed loss".into(),
        points: curve,
    });
    line_chart_over(
        "log10(lr)",
        &format!(
            "{}: smoothed loss against log10(learning rate)",
            probe.group
        ),
        &series,
        CHART_WIDTH,
        CHART_HEIGHT,
    )
}

/// One row per group of the model: its rate now and what each suggestion says.
fn suggestion_table(plan: &LrFindPlan, probes: &[GroupProbe]) -> String {
    let mut table = Table::new(&[
        ("group", Align::Left),
        ("current", Align::Right),
        ("steep", Align::Right),
        ("min/10", Align::Right),
        (APPLIED_SUGGESTION, Align::Right),
        ("--apply", Align::Right),
    ]);
    let shown = |value: Option<f64>| value.map_or("-".to_string(), rate);
    for group in &plan.groups {
        match probes.iter().find(|p| p.group == group.name) {
            Some(probe) => table.row(vec![
                group.name.clone(),
                rate(probe.current_lr),
                shown(probe.steep),
                shown(probe.minimum_div10),
                shown(probe.valley),
                shown(applied_rate(probe)),
            ]),
            None => {
                let why = if plan.skipped.iter().any(|s| s.group == group.name) {
                    "frozen"
                } else {
                    "not probed"
                };
                table.row(vec![
                    group.name.clone(),
                    rate(group.lr),
                    why.into(),
                    "-".into(),
                    "-".into(),
                    "keeps its rate".into(),
                ])
            }
        }
    }
    table.render_ruled()
}

/// `RATE` as a `--layer-lr` rule writes it: short, and exact enough (4 significant digits).
pub fn rule_rate(value: f64) -> String {
    format!("{value:.3e}")
        .parse::<f64>()
        .map_or_else(|_| plain_number(value), plain_number)
}

/// The `--layer-lr` rules `--apply` adds: each probed group with a suggestion at it.
pub fn applied_rules(probes: &[GroupProbe]) -> Vec<String> {
    probes
        .iter()
        .filter_map(|probe| {
            applied_rate(probe).map(|lr| format!("{}={}", probe.group, rule_rate(lr)))
        })
        .collect()
}

/// The `strata start` command line of `config`: one flag per set field, in the order `strata
/// start --help` lists them, each value quoted for a POSIX shell when it needs it.
pub fn start_command(config: &RunConfig) -> String {
    let RunConfig {
        dataset,
        samples,
        noise,
        classes,
        val_fraction,
        model,
        optimizer,
        lr,
        momentum,
        weight_decay,
        layer_lr,
        freeze,
        lr_decay,
        lr_slice,
        schedule,
        epochs,
        batch_size,
        seed,
        device,
        progress_events_per_epoch,
        label,
        val_dataset,
        task,
        init_from,
        clip_grad_norm,
        dedupe,
        on_worker,
    } = config;
    let mut words = vec!["strata".to_string(), "start".to_string()];
    let mut flag = |name: &str, value: Option<String>| {
        if let Some(value) = value.filter(|v| !v.is_empty()) {
            words.push(format!("--{name}"));
            words.push(shell_quoted(&value));
        }
    };
    let text = |value: &String| Some(value.clone());
    let number = |value: &Option<f64>| value.map(plain_number);
    flag("dataset", text(dataset));
    flag("label", text(label));
    flag("val-dataset", text(val_dataset));
    flag("task", text(task));
    flag("clip-grad-norm", number(clip_grad_norm));
    flag("init-from", text(init_from));
    flag("on-worker", text(on_worker));
    flag("samples", samples.map(|v| v.to_string()));
    flag("noise", number(noise));
    flag("classes", classes.map(|v| v.to_string()));
    flag("val-fraction", number(val_fraction));
    flag("model", text(model));
    flag("optimizer", text(optimizer));
    flag("lr", number(lr));
    flag("momentum", number(momentum));
    flag("weight-decay", number(weight_decay));
    for rule in layer_lr {
        flag("layer-lr", Some(rule.clone()));
    }
    for rule in freeze {
        flag("freeze", Some(rule.clone()));
    }
    flag("lr-decay", number(lr_decay));
    flag("lr-slice", text(lr_slice));
    flag("schedule", text(schedule));
    flag("epochs", epochs.map(|v| v.to_string()));
    flag("batch-size", batch_size.map(|v| v.to_string()));
    flag("seed", seed.map(|v| v.to_string()));
    flag("device", text(device));
    flag(
        "progress-events",
        progress_events_per_epoch.map(|v| v.to_string()),
    );
    if *dedupe {
        words.push("--dedupe".into());
    }
    words.join(" ")
}

/// `text` as one word of a POSIX shell: as it is when it is made only of safe characters, else
/// in single quotes (a quote inside written `'\''`).
fn shell_quoted(text: &str) -> String {
    let safe = |c: char| c.is_ascii_alphanumeric() || "_-+.,/:=@%".contains(c);
    if !text.is_empty() && text.chars().all(safe) {
        text.to_string()
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use strata_proto::RatePoint;

    #[test]
    fn the_start_line_has_every_set_flag_quoted_for_the_shell() {
        let config = RunConfig {
            dataset: "csv:/data/my file.csv".into(),
            lr: Some(1e-3),
            layer_lr: vec!["layer0=1e-4".into(), "head*=2.5e-2".into()],
            freeze: vec!["layer1@3".into()],
            epochs: Some(5),
            dedupe: true,
            ..RunConfig::default()
        };
        assert_eq!(
            start_command(&config),
            "strata start --dataset 'csv:/data/my file.csv' --lr 0.001 --layer-lr layer0=1e-4 \
             --layer-lr 'head*=2.5e-2' --freeze layer1@3 --epochs 5 --dedupe"
        );
        assert_eq!(shell_quoted("it's"), r"'it'\''s'");
    }

    #[test]
    fn applied_rules_round_to_four_digits_and_skip_groups_without_a_suggestion() {
        let probe = |group: &str, valley: Option<f64>| GroupProbe {
            group: group.into(),
            valley,
            ..GroupProbe::default()
        };
        let rules = applied_rules(&[
            probe("layer0", Some(1.2345678e-4)),
            probe("layer1", None),
            probe("head", Some(0.01)),
        ]);
        assert_eq!(rules, ["layer0=0.0001235", "head=0.01"]);
    }

    #[test]
    fn charts_leave_out_the_runaway_end_as_fastai_does() {
        let points: Vec<RatePoint> = (0..20)
            .map(|i| RatePoint {
                lr: 10f64.powi(i - 10),
                loss: 1.0,
                smoothed_loss: 1.0,
            })
            .collect();
        let probe = GroupProbe {
            points: points.clone(),
            ..GroupProbe::default()
        };
        assert_eq!(drawn_points(&probe).len(), 15);
        let short = GroupProbe {
            points: points[..4].to_vec(),
            ..GroupProbe::default()
        };
        assert_eq!(drawn_points(&short).len(), 4);
    }
}
