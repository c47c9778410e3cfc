//! A comparison of runs kept on several daemons: each daemon analyses its own runs (verdicts,
//! twins, every per-run number: the one definition), and the answers are merged here into one
//! ranking by the rule the daemon ranks by.

use strata_proto::{CompareRunsResponse, RunComparison};

use crate::labels::verdict_label;

/// A run's best validation loss as the daemon ranks by it: runs without a finite one last.
fn best_val(comparison: &RunComparison) -> f64 {
    match &comparison.analysis {
        Some(a) if a.best_epoch > 0 && a.best_val_loss.is_finite() => a.best_val_loss,
        _ => f64::INFINITY,
    }
}

/// Merges the comparisons daemons made of their own runs (`(daemon name, answer)`, in the order
/// the user named the runs as far as each daemon kept it) into one: ranked by best validation
/// loss with a stable sort (ties keep the order given), a run named on two daemons' answers
/// once, `best_run` the first run when it has a finite validation loss. Returns the daemon of
/// each ranked run beside the merged answer.
///
/// One daemon's answer is returned as it is. For several, the summary names the best run and
/// the runner-up with the numbers the daemons computed, and warns when the runs' datasets
/// differ, as a daemon's summary does.
pub fn merge_comparisons(
    mut answers: Vec<(String, CompareRunsResponse)>,
) -> (CompareRunsResponse, Vec<String>) {
    if answers.len() == 1 {
        let (daemon, answer) = answers.remove(0);
        let daemons = vec![daemon; answer.runs.len()];
        return (answer, daemons);
    }
    let mut ranked: Vec<(String, RunComparison)> = Vec::new();
    for (daemon, answer) in answers {
        for comparison in answer.runs {
            let id = comparison.run.as_ref().map(|r| r.id.clone());
            if !ranked
                .iter()
                .any(|(_, seen)| seen.run.as_ref().map(|r| r.id.clone()) == id)
            {
                ranked.push((daemon.clone(), comparison));
            }
        }
    }
    ranked.sort_by(|(_, a), (_, b)| best_val(a).total_cmp(&best_val(b)));
    for (i, (_, comparison)) in ranked.iter_mut().enumerate() {
        comparison.rank = i as u32 + 1;
    }
    let best_run = ranked
        .first()
        .filter(|(_, c)| best_val(c).is_finite())
        .and_then(|(_, c)| c.run.as_ref().map(|r| r.id.clone()))
        .unwrap_or_default();
    let summary = summary(&ranked);
    let (daemons, runs) = ranked.into_iter().unzip();
    (
        CompareRunsResponse {
            runs,
            best_run,
            summary,
        },
        daemons,
    )
}

/// `id (name) on DAEMON`.
fn label(daemon: &str, comparison: &RunComparison) -> String {
    let run = comparison.run.clone().unwrap_or_default();
    if run.name.is_empty() {
        format!("{} on {daemon}", run.id)
    } else {
        format!("{} ({}) on {daemon}", run.id, run.name)
    }
}

/// Which run is best, by how much, and whether the runs are comparable at all.
fn summary(ranked: &[(String, RunComparison)]) -> String {
    let with_best: Vec<&(String, RunComparison)> = ranked
        .iter()
        .filter(|(_, c)| best_val(c).is_finite())
        .collect();
    let Some((daemon, first)) = with_best.first() else {
        return "No run has a finite validation loss yet: nothing to rank.".to_string();
    };
    let analysis = first.analysis.clone().unwrap_or_default();
    let verdict = verdict_label(analysis.verdict);
    let mut text = match with_best.get(1) {
        None => format!(
            "{} is the only run with a validation loss: {:.4} at epoch {}; its verdict: {verdict}.",
            label(daemon, first),
            analysis.best_val_loss,
            analysis.best_epoch
        ),
        Some((daemon2, second)) => {
            let runner_up = best_val(second);
            format!(
                "{} is best: its validation loss reached {:.4} at epoch {}, {:.1} % below the {:.4} of the runner-up, {}; its verdict: {verdict}.",
                label(daemon, first),
                analysis.best_val_loss,
                analysis.best_epoch,
                100.0 * (1.0 - analysis.best_val_loss / runner_up),
                runner_up,
                label(daemon2, second)
            )
        }
    };
    let mut datasets: Vec<&str> = ranked
        .iter()
        .filter_map(|(_, c)| c.run.as_ref()?.config.as_ref())
        .map(|config| config.dataset.as_str())
        .collect();
    datasets.sort_unstable();
    datasets.dedup();
    if datasets.len() > 1 {
        text.push_str(&format!(
            " Careful: these runs did not train on the same data ({}), so their validation losses are not directly comparable.",
            datasets.join("; ")
        ));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use strata_proto::{Run, RunAnalysis, RunConfig};

    fn compared(id: &str, best: f64, dataset: &str) -> RunComparison {
        RunComparison {
            run: Some(Run {
                id: id.into(),
                config: Some(RunConfig {
                    dataset: dataset.into(),
                    ..RunConfig::default()
                }),
                ..Run::default()
            }),
            analysis: Some(RunAnalysis {
                best_epoch: u32::from(best.is_finite()),
                best_val_loss: best,
                ..RunAnalysis::default()
            }),
            rank: 1,
            ..RunComparison::default()
        }
    }

    #[test]
    fn runs_of_several_daemons_rank_by_best_validation_loss() {
        let answer = |runs: Vec<RunComparison>| CompareRunsResponse {
            runs,
            ..CompareRunsResponse::default()
        };
        let (merged, daemons) = merge_comparisons(vec![
            (
                "a".into(),
                answer(vec![
                    compared("r1", 0.5, "moons"),
                    compared("r2", f64::NAN, "moons"),
                ]),
            ),
            ("b".into(), answer(vec![compared("r3", 0.2, "moons")])),
            ("c".into(), answer(vec![compared("r1", 0.5, "moons")])),
        ]);
        let order: Vec<(&str, u32)> = merged
            .runs
            .iter()
            .map(|c| (c.run.as_ref().unwrap().id.as_str(), c.rank))
            .collect();
        assert_eq!(order, [("r3", 1), ("r1", 2), ("r2", 3)]);
        assert_eq!(daemons, ["b", "a", "a"]);
        assert_eq!(merged.best_run, "r3");
        assert!(
            merged.summary.starts_with("r3 on b is best") && merged.summary.contains("r1 on a"),
            "{}",
            merged.summary
        );
        assert!(!merged.summary.contains("Careful"));
        let (mixed, _) = merge_comparisons(vec![
            ("a".into(), answer(vec![compared("r1", 0.5, "moons")])),
            ("b".into(), answer(vec![compared("r3", 0.2, "xor")])),
        ]);
        assert!(mixed.summary.contains("Careful"), "{}", mixed.summary);
    }
}
