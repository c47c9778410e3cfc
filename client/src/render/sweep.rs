//! `strata sweep` progress lines and summary, and `strata sweep show`'s ranking, effects and
//! recommendation, as text.

use crate::sweep::{report::shown, Progress, SweepReport, TrialEnd, TrialResult};

use crate::render::table::{Align, Table};

fn settings_text(values: &[(String, String)]) -> String {
    let parts: Vec<String> = values.iter().map(|(n, v)| format!("{n}={v}")).collect();
    parts.join(", ")
}

/// One line per start, end or lost daemon.
pub fn progress_line(event: &Progress) -> String {
    match event {
        Progress::DaemonDown { daemon, error } => {
            format!("daemon {daemon} is unreachable ({error}); its unplaced trials go elsewhere")
        }
        Progress::Started {
            trial,
            daemon,
            run_id,
            settings,
        } => format!(
            "trial {trial} started on {daemon} as run {run_id} ({})",
            settings_text(settings)
        ),
        Progress::Finished(result) => finished_line(result),
    }
}

fn finished_line(result: &TrialResult) -> String {
    let TrialResult {
        plan,
        run_id,
        epochs,
        last_val_loss,
        end,
        ..
    } = result;
    let run = run_id.as_deref().unwrap_or("-");
    let settings = settings_text(&plan.values);
    match end {
        TrialEnd::Completed => format!(
            "trial {} completed (run {run}, {settings}): {epochs} epoch(s), last validation loss {}",
            plan.trial,
            shown(*last_val_loss)
        ),
        TrialEnd::StoppedEarly(reason) => {
            format!("trial {} stopped early (run {run}): {reason}", plan.trial)
        }
        end => format!(
            "trial {} {} (run {run}): {}",
            plan.trial,
            end.label(),
            end.reason()
        ),
    }
}

/// The closing lines of a sweep: its counts, and where to look next.
pub fn sweep_summary(sweep_id: &str, results: &[TrialResult]) -> String {
    let mut counts: Vec<(&str, usize)> = Vec::new();
    for result in results {
        let label = result.end.label();
        match counts.iter_mut().find(|(l, _)| *l == label) {
            Some((_, n)) => *n += 1,
            None => counts.push((label, 1)),
        }
    }
    let counts: Vec<String> = counts.iter().map(|(l, n)| format!("{n} {l}")).collect();
    format!(
        "sweep {sweep_id}: {} trial(s): {}\nranked: strata sweep show {sweep_id}   trials: strata list --sweep {sweep_id}",
        results.len(),
        counts.join(", ")
    )
}

/// The ranking table, each swept setting's effect, and the recommendation.
pub fn sweep_report(report: &SweepReport) -> String {
    let mut sections = Vec::new();
    for unreachable in &report.unreachable {
        sections.push(format!(
            "daemon {} did not answer ({}); its trials are missing below",
            unreachable.daemon, unreachable.error
        ));
    }
    let mut table = Table::new(&[
        ("#", Align::Right),
        ("TRIAL", Align::Right),
        ("RUN", Align::Left),
        ("DAEMON", Align::Left),
        ("SETTINGS", Align::Left),
        ("BEST VAL", Align::Right),
        ("EPOCH", Align::Right),
        ("VERDICT", Align::Left),
        ("STATUS", Align::Left),
    ]);
    for t in &report.trials {
        let status = if t.stopped_early() {
            "stopped early".to_string()
        } else {
            t.status.label().to_string()
        };
        table.row(vec![
            t.rank.to_string(),
            t.trial.to_string(),
            t.run_id.clone(),
            t.daemon.clone(),
            t.settings_text(),
            shown(t.best_val_loss),
            t.best_epoch.to_string(),
            t.verdict.label().to_string(),
            status,
        ]);
    }
    sections.push(format!(
        "Sweep {}: {} trial(s)\n{}",
        report.sweep_id,
        report.trials.len(),
        table.render_plain()
    ));
    if !report.effects.is_empty() {
        let mut lines =
            vec!["Effects (best / median of the trials' best validation loss)".to_string()];
        for effect in &report.effects {
            let values: Vec<String> = effect
                .values
                .iter()
                .map(|v| {
                    format!(
                        "{} {} / {} ({} trial(s))",
                        v.value,
                        shown(v.best_val_loss),
                        shown(v.median_best_val_loss),
                        v.trials
                    )
                })
                .collect();
            lines.push(format!("  {}: {}", effect.setting, values.join(" | ")));
        }
        sections.push(lines.join("\n"));
    }
    if let Some(recommendation) = &report.recommendation {
        sections.push(format!("Recommendation  {}", recommendation.sentence));
    }
    sections.join("\n\n")
}
