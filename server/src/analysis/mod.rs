//! The analysis of training curves: gaps, the best epoch, convergence, a verdict with one plain
//! sentence saying why, and per layer group whether its rate looks too high or too low.
//!
//! Pure functions over a run and its stored epochs: the same answer for every client, testable
//! on hand-made curves. The verdict is the first of these that holds:
//!
//! 1. `diverged` — the run ended diverged, a loss is non-finite, or the training loss ended
//!    `diverged_ratio` times above where an untrained model starts (or the validation loss did,
//!    while training got no better than that start);
//! 2. `too-short` — fewer than `min_epochs` epochs;
//! 3. `unstable` — at least two jumps, and jumps in `unstable_fraction` of the epoch-to-epoch
//!    steps or more: a training loss rising by more than `unstable_jump` times the larger of its
//!    previous and its first value, or a validation loss rising that much and falling again right
//!    after (a bounce; a steady rise is overfitting);
//! 4. `overfitting` — validation loss ended `overfit_val_rise` above its best, at least
//!    [`OVERFIT_MIN_EPOCHS_AFTER_BEST`] epochs after it, while training loss kept falling (it
//!    averaged below its value at the best epoch) and the gap widened; or the final gap is `overfit_gap` of the final validation loss or more and it
//!    widened over the last third;
//! 5. `slow` — validation loss improved less than `slow_improvement` from the first epoch to its
//!    best, and either a group's rate is too low or the loss is still creeping down at the end;
//! 6. `good` — none of the above.

mod groups;
mod text;
mod thresholds;

use crate::domain::{
    Diagnosis, EpochMetrics, RunId, RunRecord, RunState, RunStatus, TaskFacts, Verdict,
};

use groups::{judge_groups, GroupJudgement};
use text::{gap, loss, percent, ratio};
pub use thresholds::*;

/// One layer group's diagnosis.
#[derive(Clone, Debug, PartialEq)]
pub struct GroupDiagnosis {
    pub name: String,
    pub diagnosis: Diagnosis,
    /// The per-step update-to-weight ratio it was judged on (see [`Thresholds::update_ratio_high`]);
    /// 0 when frozen throughout.
    pub update_ratio: f64,
    /// One plain sentence: what to change.
    pub advice: String,
}

/// The analysis of one run's curves. Losses are NaN where there is nothing to measure.
#[derive(Clone, Debug, PartialEq)]
pub struct RunAnalysis {
    /// Epoch with the lowest validation loss (0 when there are no epochs).
    pub best_epoch: u32,
    pub best_val_loss: f64,
    /// Validation minus training loss at the best epoch and at the last.
    pub gap_at_best: f64,
    pub gap_final: f64,
    /// Slope of the gap per epoch over the last third of the epochs.
    pub gap_trend: f64,
    /// The epoch in which validation loss first came within `near_best_fraction` of its best.
    pub epochs_to_converge: u32,
    pub final_train_loss: f64,
    pub final_val_loss: f64,
    pub verdict: Verdict,
    /// One plain sentence saying why, and what to change.
    pub reason: String,
    /// Per layer group, in the model's order.
    pub groups: Vec<GroupDiagnosis>,
    /// Epochs analysed.
    pub epochs: u32,
}

impl RunAnalysis {
    /// Whether the run has a finite best validation loss to rank by.
    pub fn has_best(&self) -> bool {
        self.best_epoch > 0 && self.best_val_loss.is_finite()
    }
}

/// One run of a comparison.
#[derive(Clone, Debug, PartialEq)]
pub struct ComparedRun {
    pub run: RunState,
    pub analysis: RunAnalysis,
    pub epochs: Vec<EpochMetrics>,
    /// 1 for the lowest best validation loss.
    pub rank: u32,
}

/// Several runs analysed and ranked by best validation loss, best first.
#[derive(Clone, Debug, PartialEq)]
pub struct Comparison {
    pub runs: Vec<ComparedRun>,
    /// The first run, when it has a finite validation loss.
    pub best_run: Option<RunId>,
    /// One or two plain sentences: which run is best and why.
    pub summary: String,
}

/// The numbers of a curve that the verdict and the answer use.
#[derive(Clone, Debug)]
struct Curves {
    /// Index of the epoch with the lowest finite validation loss.
    best: Option<usize>,
    best_val: f64,
    gap_at_best: f64,
    gap_final: f64,
    gap_trend: f64,
    epochs_to_converge: u32,
    final_train: f64,
    final_val: f64,
}

fn epoch_gap(record: &EpochMetrics) -> f64 {
    record.gap()
}

/// Epochs in the last third (at least two, when there are two).
fn last_third(n: usize) -> usize {
    n.div_ceil(3).max(2).min(n)
}

/// Least-squares slope of `(x, y)` points; 0 with fewer than two distinct x.
fn slope(points: &[(f64, f64)]) -> f64 {
    let n = points.len() as f64;
    if points.len() < 2 {
        return 0.0;
    }
    let mean_x = points.iter().map(|p| p.0).sum::<f64>() / n;
    let mean_y = points.iter().map(|p| p.1).sum::<f64>() / n;
    let (mut sxy, mut sxx) = (0.0, 0.0);
    for &(x, y) in points {
        sxy += (x - mean_x) * (y - mean_y);
        sxx += (x - mean_x) * (x - mean_x);
    }
    if sxx > 0.0 {
        sxy / sxx
    } else {
        0.0
    }
}

impl Curves {
    fn of(epochs: &[EpochMetrics], thresholds: &Thresholds) -> Curves {
        let n = epochs.len();
        let best = epochs
            .iter()
            .enumerate()
            .filter(|(_, e)| e.val_loss.is_finite())
            .min_by(|(_, a), (_, b)| a.val_loss.total_cmp(&b.val_loss))
            .map(|(i, _)| i);
        let best_val = best.map_or(f64::NAN, |i| epochs[i].val_loss);
        let trend_points: Vec<(f64, f64)> = epochs[n - last_third(n)..]
            .iter()
            .map(|e| (f64::from(e.epoch), epoch_gap(e)))
            .filter(|(_, g)| g.is_finite())
            .collect();
        let near_best = best_val + thresholds.near_best_fraction * best_val.abs();
        let last = epochs.last();
        Curves {
            best,
            best_val,
            gap_at_best: best.map_or(f64::NAN, |i| epoch_gap(&epochs[i])),
            gap_final: last.map_or(f64::NAN, epoch_gap),
            gap_trend: slope(&trend_points),
            epochs_to_converge: epochs
                .iter()
                .find(|e| e.val_loss <= near_best)
                .map_or(0, |e| e.epoch),
            final_train: last.map_or(f64::NAN, |e| e.train_loss),
            final_val: last.map_or(f64::NAN, |e| e.val_loss),
        }
    }
}

/// What the verdict rests on, before it becomes one sentence.
struct Finding {
    verdict: Verdict,
    facts: String,
    advice: Option<String>,
}

impl Finding {
    fn new(verdict: Verdict, facts: String, advice: Option<String>) -> Finding {
        Finding {
            verdict,
            facts,
            advice,
        }
    }

    /// `facts: verdict[ so far (epoch 4 of 10)][; advice]`.
    fn sentence(&self, run: &RunRecord, epochs: usize) -> String {
        let mut sentence = format!("{}: {}", self.facts, self.verdict.label());
        if run.status.is_live() {
            let total = run.config.epochs;
            sentence.push_str(&match total {
                Some(total) => format!(" so far (epoch {epochs} of {total})"),
                None => " so far".to_string(),
            });
        }
        if let Some(advice) = &self.advice {
            sentence.push_str("; ");
            sentence.push_str(advice);
        }
        sentence
    }
}

/// `a`, `a and b`, `a, b and c`.
fn join_names(names: &[&str]) -> String {
    match names {
        [] => String::new(),
        [one] => one.to_string(),
        [rest @ .., last] => format!("{} and {last}", rest.join(", ")),
    }
}

fn names_with(groups: &[GroupJudgement], diagnosis: Diagnosis) -> Vec<&str> {
    groups
        .iter()
        .filter(|g| g.diagnosis == diagnosis)
        .map(|g| g.name.as_str())
        .collect()
}

/// What to lower when losses blow up or bounce: the groups judged too high, else the group whose
/// weights moved most.
fn lower_rates_advice(groups: &[GroupJudgement]) -> String {
    let too_high = names_with(groups, Diagnosis::TooHigh);
    if !too_high.is_empty() {
        return format!("lower the rate of {} (too high)", join_names(&too_high));
    }
    let largest = groups
        .iter()
        .filter(|g| g.diagnosis != Diagnosis::Frozen)
        .max_by(|a, b| a.peak.total_cmp(&b.peak));
    match largest {
        Some(g) => format!(
            "lower the rates (the largest updates are {}'s, {} per step)",
            g.name,
            ratio(g.peak)
        ),
        None => "lower the learning rates".to_string(),
    }
}

/// Rates that look wrong even though the curves are not: `raise the rate of layer0 (too low)`.
fn rate_notes(groups: &[GroupJudgement]) -> Option<String> {
    let too_low = names_with(groups, Diagnosis::TooLow);
    let too_high = names_with(groups, Diagnosis::TooHigh);
    let mut notes = Vec::new();
    if !too_low.is_empty() {
        notes.push(format!(
            "raise the rate of {} (too low)",
            join_names(&too_low)
        ));
    }
    if !too_high.is_empty() {
        notes.push(format!(
            "lower the rate of {} (too high)",
            join_names(&too_high)
        ));
    }
    (!notes.is_empty()).then(|| notes.join(" and "))
}

fn with_notes(advice: String, groups: &[GroupJudgement]) -> String {
    match rate_notes(groups) {
        Some(notes) => format!("{advice}; {notes}"),
        None => advice,
    }
}

/// Where an untrained model's loss starts, and how to say so: the loss of guessing uniformly for
/// a classifier (ln of the class count), the loss of predicting the mean for a regression (the
/// targets' variance), as recorded in the run's facts; else the first epoch's validation loss.
fn starting_loss(run: &RunRecord, epochs: &[EpochMetrics]) -> Option<(f64, String)> {
    if let Some(start) = run.facts.task.baseline_loss() {
        let what = match run.facts.task {
            TaskFacts::Classification { classes } => {
                format!("an untrained {classes}-class classifier starts from")
            }
            TaskFacts::Regression { .. } => "predicting the mean scores".to_string(),
        };
        return Some((start, what));
    }
    let first = epochs.first()?.val_loss;
    (first.is_finite() && first > 0.0)
        .then(|| (first, "the first epoch's validation loss was".to_string()))
}

fn diverged(
    run: &RunRecord,
    epochs: &[EpochMetrics],
    c: &Curves,
    groups: &[GroupJudgement],
    t: &Thresholds,
) -> Option<Finding> {
    let finding = |facts: String| {
        Some(Finding::new(
            Verdict::Diverged,
            facts,
            Some(lower_rates_advice(groups)),
        ))
    };
    if run.status == RunStatus::Diverged {
        return finding(if run.reason.is_empty() {
            "the run diverged".to_string()
        } else {
            run.reason.clone()
        });
    }
    for e in epochs {
        for (which, value) in [("training", e.train_loss), ("validation", e.val_loss)] {
            if !value.is_finite() {
                return finding(format!(
                    "the {which} loss became {} at epoch {}",
                    loss(value),
                    e.epoch
                ));
            }
        }
    }
    let (start, what) = starting_loss(run, epochs)?;
    let limit = t.diverged_ratio * start;
    let times = |value: f64| format!("{:.0}", value / start);
    if c.final_train > limit {
        return finding(format!(
            "training loss ended at {}, {} times the {} {what}",
            loss(c.final_train),
            times(c.final_train),
            loss(start)
        ));
    }
    if c.final_val > limit && c.final_train >= start {
        return finding(format!(
            "validation loss ended at {}, {} times the {} {what}, and training loss got no lower ({})",
            loss(c.final_val),
            times(c.final_val),
            loss(start),
            loss(c.final_train)
        ));
    }
    None
}

fn unstable(epochs: &[EpochMetrics], groups: &[GroupJudgement], t: &Thresholds) -> Option<Finding> {
    let steps = epochs.len().checked_sub(1).filter(|s| *s > 0)?;
    // A rise counts on the scale of the whole curve: small wiggles of a loss near zero are large
    // relative to it, and are not what anyone calls a jump.
    let (first_train, first_val) = (epochs[0].train_loss, epochs[0].val_loss);
    let rises = |first: f64, from: f64, to: f64| to - from > t.unstable_jump * from.max(first);
    let mut jumps = 0;
    // The largest relative rise: (rise, which, from, to, epoch).
    let mut largest: Option<(f64, &str, f64, f64, u32)> = None;
    for i in 1..epochs.len() {
        let (before, now) = (&epochs[i - 1], &epochs[i]);
        let train_jump = rises(first_train, before.train_loss, now.train_loss);
        let val_bounce = rises(first_val, before.val_loss, now.val_loss)
            && epochs
                .get(i + 1)
                .is_some_and(|next| next.val_loss < now.val_loss);
        if !(train_jump || val_bounce) {
            continue;
        }
        jumps += 1;
        for (jumped, which, from, to) in [
            (train_jump, "training", before.train_loss, now.train_loss),
            (val_bounce, "validation", before.val_loss, now.val_loss),
        ] {
            let rise = to / from;
            if jumped && largest.is_none_or(|l| rise > l.0) {
                largest = Some((rise, which, from, to, now.epoch));
            }
        }
    }
    let fraction = jumps as f64 / steps as f64;
    if jumps < 2 || fraction < t.unstable_fraction {
        return None;
    }
    let (_, which, from, to, epoch) = largest?;
    Some(Finding::new(
        Verdict::Unstable,
        format!(
            "losses jumped up in {jumps} of {steps} epoch-to-epoch steps (the largest: {which} loss {} → {} at epoch {epoch})",
            loss(from),
            loss(to)
        ),
        Some(lower_rates_advice(groups)),
    ))
}

fn overfitting(
    epochs: &[EpochMetrics],
    c: &Curves,
    groups: &[GroupJudgement],
    t: &Thresholds,
) -> Option<Finding> {
    let n = epochs.len();
    let best = c.best?;
    let at_best = &epochs[best];
    // Training loss after the best epoch: it "kept falling" when it averaged below its value at
    // the best (a noisy plateau near zero still counts; a rising one does not).
    let after: Vec<f64> = epochs[best + 1..]
        .iter()
        .map(|e| e.train_loss)
        .filter(|l| l.is_finite())
        .collect();
    let mean_after = after.iter().sum::<f64>() / after.len().max(1) as f64;
    let lowest_after = after.iter().copied().fold(f64::INFINITY, f64::min);
    let rose_after_best = n - 1 - best >= OVERFIT_MIN_EPOCHS_AFTER_BEST
        && c.best_val > 0.0
        && c.final_val > c.best_val * (1.0 + t.overfit_val_rise)
        && !after.is_empty()
        && mean_after < at_best.train_loss
        && c.gap_final > c.gap_at_best;
    if rose_after_best {
        let train_fall = 1.0 - lowest_after / at_best.train_loss;
        let val_rise = c.final_val / c.best_val - 1.0;
        return Some(Finding::new(
            Verdict::Overfitting,
            format!(
                "training loss fell {} while validation loss rose {} after epoch {}",
                percent(train_fall),
                percent(val_rise),
                at_best.epoch
            ),
            Some(with_notes(
                format!(
                    "its best weights were at epoch {}: train about that long, or add data or regularization (weight decay)",
                    at_best.epoch
                ),
                groups,
            )),
        ));
    }
    let wide_gap = c.final_val > 0.0
        && c.gap_final >= t.overfit_gap * c.final_val
        && c.gap_trend > 0.0
        && n >= 2;
    if wide_gap {
        return Some(Finding::new(
            Verdict::Overfitting,
            format!(
                "training loss {} is far below validation loss {}: the gap ({}) is {} of it and widened by {} per epoch over the last {} epochs",
                loss(c.final_train),
                loss(c.final_val),
                gap(c.gap_final),
                percent(c.gap_final / c.final_val),
                loss(c.gap_trend),
                last_third(n)
            ),
            Some(with_notes(
                "train fewer epochs, or add data or regularization (weight decay)".to_string(),
                groups,
            )),
        ));
    }
    None
}

fn slow(
    epochs: &[EpochMetrics],
    c: &Curves,
    groups: &[GroupJudgement],
    t: &Thresholds,
) -> Option<Finding> {
    let n = epochs.len();
    let best = c.best?;
    let first = epochs[0].val_loss;
    if !(first.is_finite() && first > 0.0) {
        return None;
    }
    let improvement = (first - c.best_val) / first;
    let too_low = names_with(groups, Diagnosis::TooLow);
    let still_creeping = best >= n - last_third(n);
    if improvement >= t.slow_improvement || (too_low.is_empty() && !still_creeping) {
        return None;
    }
    let advice = if too_low.is_empty() {
        "raise the rates or train longer".to_string()
    } else {
        format!("raise the rate of {} (too low)", join_names(&too_low))
    };
    let amount = if improvement < 1e-4 {
        "less than 0.01%".to_string()
    } else {
        format!("only {}", percent(improvement))
    };
    Some(Finding::new(
        Verdict::Slow,
        format!(
            "validation loss improved {amount} in {n} epochs ({} → {})",
            loss(first),
            loss(c.best_val)
        ),
        Some(advice),
    ))
}

fn good(epochs: &[EpochMetrics], c: &Curves, groups: &[GroupJudgement], t: &Thresholds) -> Finding {
    let (first, last) = (&epochs[0], &epochs[epochs.len() - 1]);
    let Some(best) = c.best else {
        return Finding::new(Verdict::Good, "no finite validation loss".into(), None);
    };
    let val_fall = 1.0 - c.best_val / first.val_loss;
    let train_fall = 1.0 - c.final_train / first.train_loss;
    let train = if train_fall > 0.0 {
        format!("training loss fell {}", percent(train_fall))
    } else {
        "training loss did not fall".to_string()
    };
    let size = if c.gap_final <= 0.0 {
        "validation loss at or below training loss (gap "
    } else if c.gap_final < t.overfit_gap * c.final_val.abs() {
        "a small gap ("
    } else {
        "a large but steady gap ("
    };
    let facts = format!(
        "validation loss fell {} ({} → {} at epoch {}) and {train}, with {size}{})",
        percent(val_fall),
        loss(first.val_loss),
        loss(c.best_val),
        epochs[best].epoch,
        gap(c.gap_final)
    );
    let still_improving = epochs[best].epoch == last.epoch && epochs.len() > 1;
    let advice = still_improving.then(|| "still improving: more epochs may help".to_string());
    let advice = match (advice, rate_notes(groups)) {
        (Some(a), Some(notes)) => Some(format!("{a}; {notes}")),
        (a, notes) => a.or(notes),
    };
    Finding::new(Verdict::Good, facts, advice)
}

fn judge(
    run: &RunRecord,
    epochs: &[EpochMetrics],
    c: &Curves,
    groups: &[GroupJudgement],
    t: &Thresholds,
) -> Finding {
    if let Some(finding) = diverged(run, epochs, c, groups, t) {
        return finding;
    }
    let n = epochs.len();
    if n < t.min_epochs as usize {
        let (plural, trained) = match (n, run.status.is_terminal()) {
            (1, true) => ("", "was trained"),
            (_, true) => ("s", "were trained"),
            (1, false) => ("", "trained yet"),
            (_, false) => ("s", "trained yet"),
        };
        return Finding::new(
            Verdict::TooShort,
            format!(
                "only {n} epoch{plural} {trained}; the analysis needs at least {}",
                t.min_epochs
            ),
            None,
        );
    }
    unstable(epochs, groups, t)
        .or_else(|| overfitting(epochs, c, groups, t))
        .or_else(|| slow(epochs, c, groups, t))
        .unwrap_or_else(|| good(epochs, c, groups, t))
}

/// Analyses one run on the epochs it has (a run still training is analysed so far).
pub fn analyse(run: &RunRecord, epochs: &[EpochMetrics], thresholds: &Thresholds) -> RunAnalysis {
    let curves = Curves::of(epochs, thresholds);
    let groups = judge_groups(run, epochs, thresholds);
    let finding = judge(run, epochs, &curves, &groups, thresholds);
    RunAnalysis {
        best_epoch: curves.best.map_or(0, |i| epochs[i].epoch),
        best_val_loss: curves.best_val,
        gap_at_best: curves.gap_at_best,
        gap_final: curves.gap_final,
        gap_trend: curves.gap_trend,
        epochs_to_converge: curves.epochs_to_converge,
        final_train_loss: curves.final_train,
        final_val_loss: curves.final_val,
        verdict: finding.verdict,
        reason: finding.sentence(run, epochs.len()),
        groups: groups.iter().map(GroupJudgement::diagnosis).collect(),
        epochs: epochs.len() as u32,
    }
}

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
    let mut ranked: Vec<ComparedRun> = runs
        .into_iter()
        .map(|(run, epochs)| ComparedRun {
            analysis: analyse(&run.record, &epochs, thresholds),
            run,
            epochs,
            rank: 0,
        })
        .collect();
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

#[cfg(test)]
mod tests;
