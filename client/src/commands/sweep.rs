//! `strata sweep`: expands the flags into trials, validates every one with the daemon's dry run,
//! then drives them over every daemon named by `--addr` (see `crate::sweep`), printing a
//! line per trial started and ended. `strata sweep show ID`: the trials ranked, from every daemon
//! that answers.

use crate::sweep::{self, driver::start_request, SweepSpace, Trial, TrialEnd, TrialPlan};
use strata_client::fleet::Daemon;
use strata_client::{Client, Fleet};

use crate::cli::{SweepArgs, SweepCommand, SweepShowArgs, SweepStartArgs};
use crate::exit::{CliError, Exit};
use crate::json;
use crate::output::{note, Out};
use crate::render::sweep::{progress_line, sweep_report, sweep_summary};

pub async fn run(
    fleet: &Fleet,
    args: SweepArgs,
    as_json: bool,
    out: &mut Out,
) -> Result<Exit, CliError> {
    match args.show {
        Some(SweepCommand::Show(show)) => show_sweep(fleet, show, as_json, out).await,
        None => start_sweep(fleet, args.start, as_json, out).await,
    }
}

/// The trials of the flags: the grid, or `--trials` random draws. Each trial's plan keeps only
/// the swept settings (what its run records); its config has every setting.
fn plan_trials(args: &SweepStartArgs) -> Result<Vec<Trial>, CliError> {
    let usage = |err: sweep::SpecError| CliError::Usage(err.to_string());
    let space: SweepSpace = args.swept.space().map_err(usage)?;
    let plans = match args.trials {
        Some(trials) => space.random(trials, args.sweep_seed),
        None => space.grid(),
    }
    .map_err(usage)?;
    let Some(fixed) = &args.fixed else {
        return Err(CliError::Usage(
            "--dataset is required: a sweep trains one dataset with every setting".into(),
        ));
    };
    let base = fixed.to_proto();
    let swept: Vec<&str> = space.swept().map(|s| s.name.as_str()).collect();
    Ok(plans
        .into_iter()
        .map(|plan| Trial {
            config: space.config_of(&base, &plan),
            plan: TrialPlan {
                trial: plan.trial,
                values: plan
                    .values
                    .into_iter()
                    .filter(|(name, _)| swept.contains(&name.as_str()))
                    .collect(),
            },
        })
        .collect())
}

/// The daemons that answer, each with its training slots, and those that do not (named, with
/// why): the fleet's, less any that fails to say how many slots it has.
async fn reachable_daemons(
    fleet: &Fleet,
) -> Result<(Vec<(Daemon, u32)>, Vec<(String, String)>), CliError> {
    let infos = fleet.server_infos().await?;
    let daemons = infos
        .into_iter()
        .map(|(daemon, info)| (daemon.clone(), info.max_concurrent_runs))
        .collect();
    Ok((daemons, unreachable_of(fleet)))
}

/// The daemons set aside as unreachable, named, with why.
fn unreachable_of(fleet: &Fleet) -> Vec<(String, String)> {
    fleet
        .unreachable()
        .into_iter()
        .map(|u| (u.name, u.reason))
        .collect()
}

/// Every trial through the daemon's dry run, before any starts: a spec the daemon refuses
/// starts nothing, and is a usage error naming the trial.
async fn validate_trials(
    sweep_id: &str,
    client: &Client,
    trials: &[Trial],
) -> Result<(), CliError> {
    for trial in trials {
        if let Err(err) = client.start_run(start_request(sweep_id, trial, true)).await {
            let values: Vec<String> = trial
                .plan
                .values
                .iter()
                .map(|(n, v)| format!("{n}={v}"))
                .collect();
            let message = format!("trial {} ({}): {err}", trial.plan.trial, values.join(", "));
            return Err(match err.code() {
                tonic::Code::InvalidArgument => CliError::Usage(message),
                _ => CliError::Failed(message),
            });
        }
    }
    Ok(())
}

async fn start_sweep(
    fleet: &Fleet,
    args: SweepStartArgs,
    as_json: bool,
    out: &mut Out,
) -> Result<Exit, CliError> {
    let trials = plan_trials(&args)?;
    let rule = args.stopping_rule();
    let (daemons, down) = reachable_daemons(fleet).await?;
    for (daemon, error) in &down {
        note(&format!(
            "daemon {daemon} is unreachable ({error}); the sweep goes on without it"
        ));
    }
    let Some((first, _)) = daemons.first() else {
        let errors: Vec<String> = down.iter().map(|(d, e)| format!("{d}: {e}")).collect();
        return Err(CliError::Failed(format!(
            "no daemon answered; nothing started ({})",
            errors.join("; ")
        )));
    };
    let sweep_id = sweep::new_sweep_id();
    validate_trials(&sweep_id, &first.client, &trials).await?;
    let slots: u32 = daemons.iter().map(|(_, slots)| slots).sum();
    let header = format!(
        "sweep {sweep_id}: {} trial(s) on {} daemon(s) with {slots} slot(s)",
        trials.len(),
        daemons.len()
    );
    let mut say = |line: String| {
        // With --json, stdout is the final summary alone.
        if as_json {
            note(&line);
        } else {
            let _ = out.line(&line);
        }
    };
    say(header);
    let driving = sweep::drive(&sweep_id, daemons, trials, rule, |event| {
        say(progress_line(&event))
    });
    let results = tokio::select! {
        results = driving => results,
        signal = tokio::signal::ctrl_c() => {
            if signal.is_ok() {
                note(&format!(
                    "stopped driving sweep {sweep_id}: its trials keep running on their daemons (none is stopped early now); see them with `strata list --sweep {sweep_id}` and `strata sweep show {sweep_id}`"
                ));
            }
            return Err(CliError::CtrlC);
        }
    };
    let mut down = down;
    for result in &results {
        if let (TrialEnd::Lost(_), Some(daemon)) = (&result.end, &result.daemon) {
            if !down.iter().any(|(d, _)| d == daemon) {
                down.push((daemon.clone(), "went away during the sweep".into()));
            }
        }
    }
    if as_json {
        out.json(&json::sweep_end(&sweep_id, &results, &down, &rule))?;
    } else {
        out.line(&sweep_summary(&sweep_id, &results))?;
    }
    let unfinished = results.iter().filter(|r| r.end.is_unfinished()).count();
    if unfinished > 0 {
        return Err(CliError::Failed(format!(
            "{unfinished} trial(s) of sweep {sweep_id} did not finish (interrupted or not started); resume interrupted ones with `strata resume RUN` once their daemon is back"
        )));
    }
    Ok(Exit::Success)
}

async fn show_sweep(
    fleet: &Fleet,
    args: SweepShowArgs,
    as_json: bool,
    out: &mut Out,
) -> Result<Exit, CliError> {
    let mut report = sweep::sweep_report(&args.sweep, fleet.daemons()).await;
    report.unreachable.extend(
        unreachable_of(fleet)
            .into_iter()
            .map(|(daemon, error)| sweep::report::Unreachable { daemon, error }),
    );
    if report.trials.is_empty() {
        let missing = if report.unreachable.is_empty() {
            String::new()
        } else {
            format!(" ({} daemon(s) did not answer)", report.unreachable.len())
        };
        return Err(CliError::Failed(format!(
            "no trials of sweep '{}' on the daemons that answered{missing}",
            args.sweep
        )));
    }
    if as_json {
        out.json(&json::sweep_show(&report))?;
    } else {
        out.line(&sweep_report(&report))?;
    }
    Ok(Exit::Success)
}
