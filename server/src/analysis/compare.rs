//! Several runs analysed side by side, ranked by best validation loss, with one or two sentences
//! saying which is best and why.

use super::{analyse, text::loss, text::percent, ComparedRun, Comparison, Thresholds};
use crate::domain::{EpochMetrics, RunRecord, RunState, Verdict};

/// `id (name)`, or the id alone.
fn run_label(run: &RunRecord) -> String {
    if run.name.is_empty() {
        run.id.to_string()
    } else {
        format!("{} ({})", run.id, run.name)
    }
}

fn best_val(comparison: &ComparedRun) -> f64 {
    if comparison.analysis.has_best() {
        comparison.analysis.best_val_loss
    } else {
        f64::INFINITY
    }
}

/// One or two sentences: which run is best and why.
fn summary(ranked: &[ComparedRun]) -> String {
    let with_best: Vec<&ComparedRun> = ranked.iter().filter(|c| c.analysis.has_best()).collect();
    let describe = |c: &ComparedRun| (run_label(&c.run.record), c.analysis.clone());
    let Some(first) = with_best.first() else {
        return "No run has a finite validation loss yet: nothing to rank.".to_string();
    };
    let (label, a) = describe(first);
    let mut text = match with_best.get(1) {
        None => format!(
            "{label} is the only run with a validation loss: {} at epoch {}; its verdict: {}.",
            loss(a.best_val_loss),
            a.best_epoch,
            a.verdict.label()
        ),
        Some(second) => {
            let (label2, a2) = describe(second);
            let lower = 1.0 - a.best_val_loss / a2.best_val_loss;
            format!(
                "{label} is best: its validation loss reached {} at epoch {}, {} below the {} of the runner-up, {label2}; its verdict: {}.",
                loss(a.best_val_loss),
                a.best_epoch,
                percent(lower),
                loss(a2.best_val_loss),
                a.verdict.label()
            )
        }
    };
    if a.verdict != Verdict::Good {
        if let Some(best_good) = with_best
            .iter()
            .find(|c| c.analysis.verdict == Verdict::Good)
        {
            let (label, a) = describe(best_good);
            text.push_str(&format!(
                " The best run judged good is {label} ({} at epoch {}).",
                loss(a.best_val_loss),
                a.best_epoch
            ));
        }
    }
    let mut datasets: Vec<String> = Vec::new();
    for compared in ranked {
        let data = data_description(&compared.run.record);
        if !datasets.contains(&data) {
            datasets.push(data);
        }
    }
    if datasets.len() > 1 {
        let shown: Vec<&str> = datasets.iter().take(3).map(String::as_str).collect();
        text.push_str(&format!(
            " Careful: these runs did not train on the same data ({}{}), so their validation losses are not directly comparable.",
            shown.join("; "),
            if datasets.len() > 3 { "; …" } else { "" }
        ));
    }
    text
}

/// What data a run trained and was validated on, as far as it decides the validation loss: the
/// dataset and its size and noise, the validation file or split, and the label.
fn data_description(run: &RunRecord) -> String {
    let config = &run.config;
    if config.dataset.is_empty() {
        return "unknown data".into();
    }
    let mut parts = vec![config.dataset.clone()];
    if let Some(samples) = config.samples {
        parts.push(format!("{samples} samples"));
    }
    if let Some(noise) = config.noise {
        parts.push(format!("noise {noise}"));
    }
    if let Some(classes) = config.classes {
        parts.push(format!("{classes} classes"));
    }
    if !config.val_dataset.is_empty() {
        parts.push(format!("validated on {}", config.val_dataset));
    } else if let Some(fraction) = config.val_fraction {
        parts.push(format!("{fraction} held out"));
    }
    if !config.label.is_empty() {
        parts.push(format!("label {}", config.label));
    }
    parts.join(", ")
}

/// Analyses several runs and ranks them by best validation loss, best first; runs without a
/// finite validation loss go last, in the order given.
pub fn compare(runs: Vec<(RunState, Vec<EpochMetrics>)>, thresholds: &Thresholds) -> Comparison {
    rank(
        runs.into_iter()
            .map(|(run, epochs)| ComparedRun {
                analysis: analyse(&run.record, &epochs, thresholds),
                run,
                epochs,
                epochs_thinned: false,
                rank: 0,
                twin: None,
            })
            .collect(),
    )
}

/// Ranks runs already analysed by best validation loss, best first; runs without a finite
/// validation loss go last, in the order given.
pub fn rank(mut ranked: Vec<ComparedRun>) -> Comparison {
    // A stable sort: ties keep the order the user gave.
    ranked.sort_by(|a, b| best_val(a).total_cmp(&best_val(b)));
    for (i, comparison) in ranked.iter_mut().enumerate() {
        comparison.rank = i as u32 + 1;
    }
    let best_run = ranked
        .first()
        .filter(|c| c.analysis.has_best())
        .map(|c| c.run.record.id);
    Comparison {
        summary: summary(&ranked),
        runs: ranked,
        best_run,
    }
}
