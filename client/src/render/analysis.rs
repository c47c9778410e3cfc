//! The daemon's analysis, laid out for people: the section `strata show` ends with, and the
//! side-by-side table of `strata compare` with a terminal chart of the validation curves.
//!
//! The daemon decides every verdict and writes every sentence; this module only arranges them.

use strata_client::labels::in_first_appearance_order;
use strata_client::{diagnosis_label, status_label, verdict_label};
use strata_proto::{
    CompareRunsResponse, Diagnosis, GroupDiagnosis, Run, RunAnalysis, RunComparison,
};

use crate::render::chart::{line_chart, Series};
use crate::render::format::{
    epochs_done_of_total, metric, or_dash, run_label, signed_metric, update_ratio,
};
use crate::render::rates::rate_setup;
use crate::render::table::{Align, Table};

/// Plot area of the terminal chart, in characters.
const CHART_WIDTH: usize = 60;
const CHART_HEIGHT: usize = 12;

/// `ok (1.2e-3/step)`, or `frozen`.
fn diagnosis_cell(group: &GroupDiagnosis) -> String {
    let label = diagnosis_label(group.diagnosis);
    if group.diagnosis == Diagnosis::Frozen as i32 {
        return label.into_owned();
    }
    format!("{label} ({}/step)", update_ratio(group.update_ratio))
}

/// An epoch number, or `-` for none.
fn epoch_cell(epoch: u32) -> String {
    if epoch == 0 {
        "-".into()
    } else {
        epoch.to_string()
    }
}

/// The section `strata show` ends with: verdict and reason, best and final numbers, and the
/// per-group diagnoses with their advice.
pub fn show_section(analysis: &RunAnalysis) -> String {
    let mut lines = vec![
        format!("Verdict    {}", verdict_label(analysis.verdict)),
        format!("Why        {}", analysis.reason),
    ];
    if analysis.best_epoch > 0 {
        lines.push(format!(
            "Best       epoch {}: validation loss {}, gap {}",
            analysis.best_epoch,
            metric(analysis.best_val_loss),
            signed_metric(analysis.gap_at_best)
        ));
        lines.push(format!(
            "Final      training loss {}, validation loss {}, gap {} (trend {}/epoch over the last third)",
            metric(analysis.final_train_loss),
            metric(analysis.final_val_loss),
            signed_metric(analysis.gap_final),
            signed_metric(analysis.gap_trend)
        ));
        lines.push(format!(
            "Converged  epoch {} (the first near the best validation loss)",
            epoch_cell(analysis.epochs_to_converge)
        ));
    }
    let mut text = lines.join("\n");
    if !analysis.groups.is_empty() {
        let mut table = Table::new(&[
            ("GROUP", Align::Left),
            ("DIAGNOSIS", Align::Left),
            ("UPDATE/STEP", Align::Right),
            ("ADVICE", Align::Left),
        ]);
        for group in &analysis.groups {
            table.row(vec![
                group.name.clone(),
                diagnosis_label(group.diagnosis).into_owned(),
                update_ratio(group.update_ratio),
                group.advice.clone(),
            ]);
        }
        text.push_str("\n\n");
        text.push_str(&table.render_plain());
    }
    text
}

/// The validation curves of the compared runs, as chart series.
fn validation_series(runs: &[RunComparison]) -> Vec<Series> {
    runs.iter()
        .map(|c| Series {
            label: c.run.as_ref().map_or_else(String::new, run_label),
            points: c
                .epochs
                .iter()
                .map(|e| (f64::from(e.epoch), e.val_loss))
                .collect(),
        })
        .collect()
}

/// One run of `strata compare`, with defaults for whatever the daemon left out.
struct Compared<'a> {
    rank: u32,
    run: &'a Run,
    analysis: &'a RunAnalysis,
}

/// `strata compare`: the runs side by side (best first), each run's reason, the daemon's
/// summary, and a chart of the validation curves.
pub fn compare(response: &CompareRunsResponse) -> String {
    let default_run = Run::default();
    let default_analysis = RunAnalysis::default();
    let runs: Vec<Compared> = response
        .runs
        .iter()
        .map(|c| Compared {
            rank: c.rank,
            run: c.run.as_ref().unwrap_or(&default_run),
            analysis: c.analysis.as_ref().unwrap_or(&default_analysis),
        })
        .collect();
    let mut sections = vec![side_by_side(&runs)];
    let reasons: Vec<String> = runs
        .iter()
        .map(|c| format!("#{} {}: {}", c.rank, run_label(c.run), c.analysis.reason))
        .collect();
    sections.push(reasons.join("\n"));
    if !response.summary.is_empty() {
        sections.push(response.summary.clone());
    }
    let twins: Vec<String> = response
        .runs
        .iter()
        .filter_map(|c| {
            let run = c.run.as_ref()?;
            Some(format!("{}: {}", run_label(run), c.twin.as_ref()?.summary))
        })
        .collect();
    if !twins.is_empty() {
        sections.push(twins.join("\n"));
    }
    sections.push(line_chart(
        "Validation loss",
        &validation_series(&response.runs),
        CHART_WIDTH,
        CHART_HEIGHT,
    ));
    sections.join("\n\n")
}

/// The table of `strata compare`: a column per run headed by its rank, a row per fact, then a
/// row per layer group with each run's diagnosis of it.
fn side_by_side(runs: &[Compared]) -> String {
    let headers: Vec<String> = runs.iter().map(|c| format!("#{}", c.rank)).collect();
    let mut columns: Vec<(&str, Align)> = vec![("", Align::Left)];
    columns.extend(headers.iter().map(|h| (h.as_str(), Align::Left)));
    let mut table = Table::new(&columns);
    let mut row = |label: &str, cell: &dyn Fn(&Run, &RunAnalysis) -> String| {
        let mut cells = vec![label.to_string()];
        cells.extend(runs.iter().map(|c| cell(c.run, c.analysis)));
        table.row(cells);
    };
    row("run", &|run, _| run.id.clone());
    row("name", &|run, _| or_dash(&run.name));
    row("status", &|run, _| status_label(run.status).into_owned());
    row("rates", &|run, _| rate_setup(run));
    row("epochs", &|run, _| epochs_done_of_total(run));
    row("best epoch", &|_, a| epoch_cell(a.best_epoch));
    row("best val loss", &|_, a| metric(a.best_val_loss));
    row("final train", &|_, a| metric(a.final_train_loss));
    row("final val", &|_, a| metric(a.final_val_loss));
    row("gap at best", &|_, a| signed_metric(a.gap_at_best));
    row("gap at end", &|_, a| signed_metric(a.gap_final));
    row("converged at", &|_, a| epoch_cell(a.epochs_to_converge));
    row("verdict", &|_, a| verdict_label(a.verdict).into_owned());
    let groups = in_first_appearance_order(
        runs.iter()
            .flat_map(|c| c.analysis.groups.iter().map(|g| g.name.as_str())),
    );
    for name in groups {
        row(name, &|_, a| {
            a.groups
                .iter()
                .find(|g| g.name == name)
                .map_or("-".to_string(), diagnosis_cell)
        });
    }
    table.render_plain()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::mlp;
    use strata_proto::{EpochRecord, RunConfig, RunStatus};

    fn comparison(id: &str, name: &str, rank: u32, verdict: &str, vals: &[f64]) -> RunComparison {
        RunComparison {
            run: Some(Run {
                id: id.into(),
                name: name.into(),
                status: RunStatus::Completed as i32,
                parameters: mlp(1e-3, 0),
                groups: crate::fixtures::groups(&mlp(1e-3, 0)),
                epochs_done: vals.len() as u32,
                config: Some(RunConfig {
                    epochs: Some(vals.len() as u32),
                    ..RunConfig::default()
                }),
                ..Run::default()
            }),
            analysis: Some(RunAnalysis {
                verdict: strata_proto::Verdict::from_label(verdict).expect("a verdict") as i32,
                reason: format!("because: {verdict}"),
                best_epoch: 2,
                best_val_loss: 0.25,
                groups: vec![GroupDiagnosis {
                    name: "layer0".into(),
                    diagnosis: strata_proto::Diagnosis::TooLow as i32,
                    update_ratio: 3e-6,
                    advice: "raise it".into(),
                }],
                ..RunAnalysis::default()
            }),
            epochs: vals
                .iter()
                .enumerate()
                .map(|(i, v)| EpochRecord {
                    epoch: i as u32 + 1,
                    val_loss: *v,
                    ..EpochRecord::default()
                })
                .collect(),
            rank,
            twin: None,
            epochs_thinned: false,
        }
    }

    #[test]
    fn compare_lays_runs_side_by_side_with_reasons_summary_and_chart() {
        let response = CompareRunsResponse {
            runs: vec![
                comparison("00000000000000aa", "layered", 1, "good", &[1.0, 0.25, 0.3]),
                comparison("00000000000000bb", "", 2, "slow", &[1.0, 0.9, 0.8]),
            ],
            best_run: "00000000000000aa".into(),
            summary: "layered is best.".into(),
        };
        let text = compare(&response);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("    ") && lines[0].contains("#1") && lines[0].contains("#2"));
        let row = |label: &str| {
            *lines
                .iter()
                .find(|l| l.starts_with(label))
                .unwrap_or_else(|| panic!("no row {label}:\n{text}"))
        };
        assert!(
            row("run ").contains("00000000000000aa") && row("run ").contains("00000000000000bb")
        );
        assert!(row("verdict").contains("good") && row("verdict").contains("slow"));
        assert!(row("rates").contains("layer0=1e-3 head=1e-2"), "{text}");
        assert!(row("layer0").contains("too-low (3.0e-6/step)"), "{text}");
        assert!(row("best epoch").contains('2'));
        assert!(text.contains("#1 layered: because: good"), "{text}");
        assert!(text.contains("#2 00000000: because: slow"), "{text}");
        assert!(text.contains("layered is best."));
        assert!(text.contains("Validation loss"), "{text}");
        assert!(text.contains("* layered   o 00000000"), "{text}");
    }

    #[test]
    fn show_section_has_verdict_numbers_and_groups() {
        let analysis = RunAnalysis {
            verdict: strata_proto::Verdict::Overfitting as i32,
            reason:
                "training loss fell 80% while validation loss rose 25% after epoch 6: overfitting"
                    .into(),
            best_epoch: 6,
            best_val_loss: 0.4,
            gap_at_best: 0.1,
            gap_final: 0.44,
            final_train_loss: 0.06,
            final_val_loss: 0.5,
            epochs_to_converge: 5,
            groups: vec![GroupDiagnosis {
                name: "head".into(),
                diagnosis: strata_proto::Diagnosis::Ok as i32,
                update_ratio: 1.2e-3,
                advice: "keep its rate".into(),
            }],
            ..RunAnalysis::default()
        };
        let text = show_section(&analysis);
        assert!(text.starts_with("Verdict    overfitting\nWhy        training loss fell 80%"));
        assert!(
            text.contains("Best       epoch 6: validation loss 0.400000, gap +0.100000"),
            "{text}"
        );
        assert!(text.contains("gap +0.440000"), "{text}");
        assert!(text.contains("Converged  epoch 5"), "{text}");
        assert!(text.contains("head   ok"), "{text}");
        assert!(text.contains("1.2e-3  keep its rate"), "{text}");
    }
}
