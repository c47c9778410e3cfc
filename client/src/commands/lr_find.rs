//! `strata lr-find`: runs the daemon's per-group learning-rate range test, shows a progress bar
//! per group while it trains, then each group's curve, the table of suggested rates and the
//! `strata start` line that uses them (`--plot` draws the curves to a file); `--apply` starts
//! that run.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use strata_client::{Client, Fleet};
use strata_proto::{
    lr_find_event::Event, GroupProbe, LrFindPlan, LrFindProgress, LrFindRequest, RunConfig,
    StartRunRequest,
};

use crate::cli::LrFindArgs;
use crate::commands::start::place;
use crate::exit::{CliError, Exit};
use crate::json;
use crate::output::{note, Out};
use crate::render::format::{metric, rate};
use crate::render::lr_find::{
    applied_rate, applied_rules, drawn_points, loss_near, report, start_command, APPLIED_SUGGESTION,
};
use crate::render::rate_plot::{plot_rates, RateCurve};

pub async fn run(
    fleet: &Fleet,
    args: LrFindArgs,
    as_json: bool,
    out: &mut Out,
) -> Result<Exit, CliError> {
    // The probe and the run --apply starts go to one daemon: the one whose data it probed.
    let (_, client) = place(fleet, args.on.as_deref()).await?;
    let config = args.config.to_proto();
    let request = LrFindRequest {
        config: Some(config.clone()),
        start_lr: args.start_lr,
        end_lr: args.end_lr,
        steps: args.steps,
        groups: args.groups.clone(),
    };
    let mut progress = GroupProgress::new(!as_json);
    let (plan, probes) = receive(client, request, &mut progress).await?;
    drop(progress);
    if !as_json {
        for warning in &plan.warnings {
            note(&format!("warning: {warning}"));
        }
    }
    let rules = applied_rules(&probes);
    let start_config = RunConfig {
        layer_lr: config
            .layer_lr
            .iter()
            .cloned()
            .chain(rules.clone())
            .collect(),
        ..config
    };
    let command = start_command(&start_config);
    if let Some(path) = &args.plot {
        let curves: Vec<RateCurve> = probes.iter().map(curve).collect();
        plot_rates(path, "Learning-rate range test per group", &curves)
            .map_err(CliError::Failed)?;
        note(&format!("wrote {}", path.display()));
    }
    let run_id = if args.apply {
        Some(apply(client, start_config, args.name, &rules).await?)
    } else {
        None
    };
    if as_json {
        out.json(&json::lr_find(
            &plan,
            &probes,
            &rules,
            &command,
            run_id.as_deref(),
        ))?;
    } else {
        out.line(&report(&plan, &probes, &command))?;
        if let Some(id) = &run_id {
            out.line(&format!(
                "\nStarted run {id} with the {APPLIED_SUGGESTION} rates."
            ))?;
        }
    }
    Ok(Exit::Success)
}

/// Reads the daemon's stream to its end: the plan, then every probed group's result.
async fn receive(
    client: &Client,
    request: LrFindRequest,
    progress: &mut GroupProgress,
) -> Result<(LrFindPlan, Vec<GroupProbe>), CliError> {
    let mut stream = client.lr_find(request).await?;
    let mut plan: Option<LrFindPlan> = None;
    let mut probes = Vec::new();
    while let Some(event) = stream
        .message()
        .await
        .map_err(|status| CliError::Client(status.into()))?
    {
        match (event.event, &plan) {
            (Some(Event::Plan(received)), _) => {
                progress.planned(&received);
                plan = Some(received);
            }
            (Some(Event::Progress(step)), Some(plan)) => progress.update(plan, &step),
            (Some(Event::Probe(probe)), _) => {
                progress.finished(&probe);
                probes.push(probe);
            }
            _ => {}
        }
    }
    let plan = plan.ok_or_else(|| {
        CliError::Failed("stratad ended the range test without saying what it would probe".into())
    })?;
    if probes.len() < plan.probed.len() {
        return Err(CliError::Failed(format!(
            "the range test ended after {} of {} groups",
            probes.len(),
            plan.probed.len()
        )));
    }
    Ok((plan, probes))
}

/// Starts the run with the suggested rates; its id.
async fn apply(
    client: &Client,
    config: RunConfig,
    name: Option<String>,
    rules: &[String],
) -> Result<String, CliError> {
    if rules.is_empty() {
        return Err(CliError::Failed(
            "--apply: no group has a suggested rate, so there is no run to start (lower --start-lr and try again)".into(),
        ));
    }
    let response = client
        .start_run(StartRunRequest {
            config: Some(config),
            name: name.unwrap_or_default(),
            tags: Vec::new(),
            dry_run: false,
            baseline: None,
            sweep: None,
        })
        .await?;
    if response.run_id.is_empty() {
        return Err(CliError::Failed(
            "stratad accepted the run but returned no run id".into(),
        ));
    }
    Ok(response.run_id)
}

fn curve(probe: &GroupProbe) -> RateCurve {
    let suggested = applied_rate(probe).and_then(|lr| loss_near(probe, lr).map(|loss| (lr, loss)));
    RateCurve {
        label: match applied_rate(probe) {
            Some(lr) => format!("{} ({APPLIED_SUGGESTION} {})", probe.group, rate(lr)),
            None => probe.group.clone(),
        },
        points: drawn_points(probe),
        suggested,
    }
}

/// Progress on stderr: a bar per group on a terminal, else a line as each group finishes;
/// nothing with `--json`.
struct GroupProgress {
    enabled: bool,
    bar: Option<(u32, ProgressBar)>,
    terminal: bool,
    steps: u32,
    groups: usize,
    done: usize,
}

impl GroupProgress {
    fn new(enabled: bool) -> Self {
        GroupProgress {
            enabled,
            bar: None,
            terminal: std::io::stderr().is_terminal(),
            steps: 0,
            groups: 0,
            done: 0,
        }
    }

    fn planned(&mut self, plan: &LrFindPlan) {
        self.steps = plan.steps;
        self.groups = plan.probed.len();
        if self.enabled {
            note(&format!(
                "probing {} group(s), {} steps each, rates {} to {}",
                plan.probed.len(),
                plan.steps,
                rate(plan.start_lr),
                rate(plan.end_lr)
            ));
        }
    }

    fn update(&mut self, plan: &LrFindPlan, step: &LrFindProgress) {
        if !(self.enabled && self.terminal) {
            return;
        }
        let bar = match &self.bar {
            Some((index, bar)) if *index == step.group_index => bar.clone(),
            _ => {
                self.clear();
                let group = plan
                    .probed
                    .get(step.group_index as usize)
                    .map_or("?", String::as_str);
                let bar = new_bar(
                    self.steps,
                    &format!("{group} ({}/{})", step.group_index + 1, self.groups),
                );
                self.bar = Some((step.group_index, bar.clone()));
                bar
            }
        };
        bar.set_position(u64::from(step.step));
        if let Some(point) = &step.point {
            bar.set_message(format!(
                "lr {}  loss {}",
                rate(point.lr),
                metric(point.smoothed_loss)
            ));
        }
    }

    fn finished(&mut self, probe: &GroupProbe) {
        self.clear();
        self.done += 1;
        if self.enabled {
            let suggestion = applied_rate(probe).map_or("no suggestion".to_string(), |lr| {
                format!("{APPLIED_SUGGESTION} {}", rate(lr))
            });
            note(&format!(
                "probed {} ({}/{}): {} steps, {suggestion}",
                probe.group,
                self.done,
                self.groups,
                probe.points.len()
            ));
        }
    }

    fn clear(&mut self) {
        if let Some((_, bar)) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}

impl Drop for GroupProgress {
    fn drop(&mut self) {
        self.clear();
    }
}

fn new_bar(steps: u32, prefix: &str) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(u64::from(steps)), ProgressDrawTarget::stderr());
    // The template is a constant; should indicatif ever reject it, a plain bar will do.
    let style = ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len}  {msg}")
        .map(|style| style.progress_chars("=> "))
        .unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style);
    bar.set_prefix(prefix.to_string());
    bar
}
