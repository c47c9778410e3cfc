//! Properties of the analysis over tens of thousands of generated curves: random walks, spikes,
//! NaN, flat lines, plateaus, overfitting and unstable shapes, exploding losses, at scales from
//! 1e-8 to 1e8 and lengths from 1 to 10,000 epochs. For each: no panic; no NaN or infinity in a
//! sentence except where it reports a non-finite loss; every claim a reason makes ("fell X%",
//! "has stayed between a and b since epoch k", "rose X% from a at epoch k to a median of b",
//! "still falling", "jumped up in N of M steps (the largest: …)", "within 10% of …") true of the
//! curve it was made from; advice never in the direction opposite to the evidence (no "raise"
//! for a group judged too high or a run that bounces, no "lower" for a group judged too low);
//! and the verdict unchanged when every loss and the baseline are multiplied by 1e-3 or 1e3.

use super::{analyse, curves::Scale, text::loss, RunAnalysis, Thresholds};
use crate::domain::{
    DataFacts, Diagnosis, EpochMetrics, FrozenUntil, GroupStats, ParamInit, ParameterRate, RunId,
    RunOrigin, RunRecord, RunStatus, TaskFacts, Verdict,
};
use crate::train::data::SeededRng;

/// Curves generated; each regression curve is also analysed at two other scales.
const CURVES: usize = 20_000;

/// A generated run: its record and epochs.
struct Generated {
    run: RunRecord,
    epochs: Vec<EpochMetrics>,
}

fn pick<'a, T>(rng: &mut SeededRng, items: &'a [T]) -> &'a T {
    &items[rng.below(items.len())]
}

/// Log-uniform in [low, high].
fn log_uniform(rng: &mut SeededRng, low: f64, high: f64) -> f64 {
    (low.ln() + rng.uniform() * (high.ln() - low.ln())).exp()
}

/// One validation curve of a random shape, around 1 (the baseline's order), `n` epochs long.
fn shape(rng: &mut SeededRng, n: usize) -> Vec<f64> {
    let kind = *pick(
        rng,
        &[
            "walk",
            "converge",
            "overfit",
            "flat",
            "spikes",
            "plateau",
            "linear",
            "oscillate",
            "explode",
            "chance",
            "fall-back",
        ],
    );
    let noise = *pick(rng, &[0.0, 0.001, 0.01, 0.05, 0.2]);
    let rate = log_uniform(rng, 0.005, 1.0);
    let floor = log_uniform(rng, 1e-4, 0.9);
    let turn = rng.below(n.max(1)) as f64;
    let mut level = 1.0f64;
    (0..n)
        .map(|i| {
            let t = i as f64;
            let clean = match kind {
                "walk" => {
                    level *= (0.05 * rng.normal() - 0.01).exp();
                    level
                }
                "converge" => floor + (1.0 - floor) * (-rate * t).exp(),
                "overfit" => {
                    let low = floor + (1.0 - floor) * (-rate * t.min(turn)).exp();
                    low * (1.0 + 0.02 * rate * (t - turn).max(0.0))
                }
                "flat" => 0.7,
                "spikes" => {
                    let base = floor + (1.0 - floor) * (-rate * t).exp();
                    if rng.uniform() < 0.1 {
                        base * log_uniform(rng, 1.5, 20.0)
                    } else {
                        base
                    }
                }
                "plateau" => 0.6 + 0.4 * (-rate * t).exp(),
                "linear" => (1.0 - 0.5 * t / n as f64).max(1e-3),
                "oscillate" => {
                    (floor + (1.0 - floor) * (-rate * t).exp()) * if i % 2 == 0 { 1.0 } else { 2.5 }
                }
                "explode" => (rate * t).min(600.0).exp(),
                "chance" => 1.0,
                _ => {
                    if t < turn {
                        0.3
                    } else {
                        1.0
                    }
                }
            };
            clean * (noise * rng.normal()).exp()
        })
        .collect()
}

fn generate(rng: &mut SeededRng) -> Generated {
    // Most runs are short; one in ten runs up to 10,000 epochs.
    let longest = if rng.uniform() < 0.1 { 10_000.0 } else { 300.0 };
    let n = log_uniform(rng, 1.0, longest).floor() as usize;
    let mut vals = shape(rng, n);
    // Training: below validation by a gap that may widen (overfitting), or above it (dropout).
    let gap_kind = rng.below(3);
    let mut trains: Vec<f64> = vals
        .iter()
        .enumerate()
        // (Factors off the analysis's own fractions, so no curve sits exactly on a threshold,
        // where rounding after scaling could tip it either way.)
        .map(|(i, v)| match gap_kind {
            0 => v * 0.87,
            1 => v * (-(i as f64) * 0.05).exp(),
            _ => v * 1.13,
        })
        .collect();
    // Now and then a non-finite loss, which ends the run there.
    if n > 0 && rng.uniform() < 0.05 {
        let at = rng.below(n);
        let value = *pick(rng, &[f64::NAN, f64::INFINITY]);
        if rng.uniform() < 0.5 {
            vals[at] = value;
        } else {
            trains[at] = value;
        }
        vals.truncate(at + 1);
        trains.truncate(at + 1);
    }
    // Now and then an objective that goes below zero (an external run's own loss).
    if rng.uniform() < 0.05 {
        let shift = rng.uniform();
        for v in vals.iter_mut().chain(trains.iter_mut()) {
            *v -= shift;
        }
    }
    let scale = 10f64.powf(rng.uniform() * 16.0 - 8.0);
    let regression = rng.uniform() < 0.5;
    let task = if regression {
        TaskFacts::Regression {
            target_variance: Some(scale),
        }
    } else {
        TaskFacts::Classification {
            classes: 2 + rng.below(99) as u32,
        }
    };
    let baseline = task.baseline_loss().unwrap_or(1.0);
    let groups: Vec<(String, f64)> = (0..1 + rng.below(3))
        .map(|g| (format!("group{g}"), log_uniform(rng, 1e-7, 1.0)))
        .collect();
    let steps = 1 + rng.below(200) as u64;
    let epochs = vals
        .iter()
        .zip(&trains)
        .enumerate()
        .map(|(i, (&v, &t))| EpochMetrics {
            epoch: i as u32 + 1,
            train_loss: t * baseline,
            val_loss: v * baseline,
            val_metric: rng.uniform(),
            duration_ms: 1.0,
            samples_per_sec: 1.0,
            groups: groups
                .iter()
                .map(|(name, lr)| GroupStats {
                    name: name.clone(),
                    lr: *lr,
                    grad_norm: *pick(rng, &[0.0, 1e-6, 0.1, 3.0]),
                    weight_norm: *pick(rng, &[0.0, 1.0, 50.0]),
                    update_ratio: if rng.uniform() < 0.01 {
                        f64::NAN
                    } else {
                        log_uniform(rng, 1e-9, 20.0)
                    },
                    frozen: rng.uniform() < 0.05,
                })
                .collect(),
            extra: Default::default(),
            no_validation: false,
        })
        .collect();
    let parameters = groups
        .iter()
        .map(|(name, lr)| ParameterRate {
            name: name.clone(),
            group: name.clone(),
            shape: Vec::new(),
            lr: *lr,
            frozen: FrozenUntil::Never,
            init: ParamInit::Fresh,
        })
        .collect();
    let mut run = RunRecord::queued(
        RunId(1),
        Default::default(),
        parameters,
        DataFacts {
            steps_per_epoch: steps,
            ..DataFacts::of_task(task)
        },
    );
    run.status = RunStatus::Completed;
    if rng.uniform() < 0.5 {
        run.origin = RunOrigin::External {
            hyperparameters: Vec::new(),
            client_key: String::new(),
        };
    }
    Generated { run, epochs }
}

/// The text between `start` and the next `end` after it.
fn between<'a>(text: &'a str, start: &str, end: &str) -> Option<&'a str> {
    let from = text.find(start)? + start.len();
    let rest = &text[from..];
    Some(&rest[..rest.find(end)?])
}

/// Every occurrence of the text between `start` and `end`.
fn all_between<'a>(text: &'a str, start: &str, end: &str) -> Vec<&'a str> {
    let mut found = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find(start) {
        rest = &rest[at + start.len()..];
        if let Some(stop) = rest.find(end) {
            found.push(&rest[..stop]);
        }
    }
    found
}

fn number(text: &str) -> f64 {
    text.trim()
        .parse()
        .unwrap_or_else(|_| panic!("not a number: {text:?}"))
}

fn median(values: &[f64]) -> f64 {
    super::curves::median(&mut values.to_vec())
}

/// `value` printed as the analysis prints losses is `printed`.
fn prints_as(value: f64, printed: &str) -> bool {
    loss(value) == printed.trim()
}

/// Whether `value` lies in [low, high] as printed to four significant digits.
fn within_printed(value: f64, low: f64, high: f64) -> bool {
    let slack = |x: f64| x.abs() * 1e-3;
    value >= low - slack(low) && value <= high + slack(high)
}

/// The epoch-indexed values of `which` ("training"/"validation") loss.
fn series(epochs: &[EpochMetrics], which: &str) -> Vec<f64> {
    epochs
        .iter()
        .map(|e| {
            if which == "training" {
                e.train_loss
            } else {
                e.val_loss
            }
        })
        .collect()
}

/// The slope of the last third of `values`, on the scale the analysis judges them on.
fn last_third_slope(values: &[f64]) -> f64 {
    let n = values.len();
    let tail = &values[n - super::curves::last_third(n)..];
    let scale = Scale::of(values.iter().copied());
    let points: Vec<(f64, f64)> = tail
        .iter()
        .enumerate()
        .map(|(i, v)| (i as f64, scale.to(*v)))
        .collect();
    super::curves::slope(&points).0
}

/// Checks every claim of `a.reason` against the curve; panics with the case when one is false.
/// Returns the kinds of claim it checked.
fn check_claims(g: &Generated, a: &RunAnalysis) -> Vec<&'static str> {
    let mut checked = Vec::new();
    let reason = &a.reason;
    let epochs = &g.epochs;
    let vals = series(epochs, "validation");
    let trains = series(epochs, "training");
    let fail = |what: &str| -> ! {
        panic!(
            "{what}\nreason: {reason}\nvals: {:?}\ntrains: {:?}",
            &vals[..vals.len().min(60)],
            &trains[..trains.len().min(60)]
        )
    };
    let at = |epoch: &str| -> usize {
        let k: usize = epoch.trim().parse().unwrap_or_else(|_| fail("epoch"));
        if k == 0 || k > epochs.len() {
            fail("epoch out of range");
        }
        k - 1
    };
    // No NaN or infinity, except where a loss became one.
    let cleaned = reason
        .replace("became NaN", "")
        .replace("became inf", "")
        .replace("became -inf", "");
    if cleaned.contains("NaN") || cleaned.contains("inf ") || cleaned.ends_with("inf") {
        fail("a non-finite number in the text");
    }
    for group in &a.groups {
        if group.advice.contains("NaN") {
            fail("NaN in a group's advice");
        }
    }
    if let Some(k) = between(reason, "loss became ", ":").and_then(|s| s.split(" at epoch ").nth(1))
    {
        let i = at(k);
        if vals[i].is_finite() && trains[i].is_finite() {
            fail("'became non-finite' at a finite epoch");
        }
        checked.push("became");
    }
    // "validation loss fell X (a → b at epoch k)".
    if let Some(inner) = between(reason, "validation loss fell ", ")") {
        let (_, numbers) = inner.split_once(" (").unwrap_or_else(|| fail("fell"));
        let (first, rest) = numbers.split_once(" → ").unwrap_or_else(|| fail("fell →"));
        let (best, k) = rest
            .split_once(" at epoch ")
            .unwrap_or_else(|| fail("fell at"));
        let i = at(k);
        let lowest = vals.iter().copied().fold(f64::INFINITY, f64::min);
        if !(prints_as(vals[0], first) && prints_as(vals[i], best) && vals[i] == lowest) {
            fail("'fell' does not match the first and best epochs");
        }
        checked.push("fell");
    }
    // "has stayed between a and b since epoch k".
    if let Some(inner) = between(reason, "has stayed between ", ":") {
        let (range, k) = inner
            .split_once(" since epoch ")
            .unwrap_or_else(|| fail("stayed"));
        let k = k.split(',').next().unwrap_or_default();
        let (low, high) = range
            .split_once(" and ")
            .unwrap_or_else(|| fail("stayed and"));
        let (low, high) = (number(low), number(high));
        if !vals[at(k)..].iter().all(|v| within_printed(*v, low, high)) {
            fail("'stayed between' is not true of every epoch since");
        }
        checked.push("stayed between");
        if let Some(converged) = between(reason, "converged by epoch ", ":") {
            if converged.trim() != k.trim() {
                fail("'converged by' names another epoch than 'since'");
            }
            // "It could have stopped there": that epoch's loss is near the curve's best level
            // (the lowest median of three), not a spike or a point still on the way down.
            let best_level = (0..vals.len())
                .map(|i| median(&vals[i.saturating_sub(1)..(i + 2).min(vals.len())]))
                .fold(f64::INFINITY, f64::min);
            let stopped = vals[at(k)];
            if vals.iter().all(|v| *v > 0.0) && stopped > best_level * 1.0501 {
                fail("'converged by epoch k' where epoch k is well above the best level");
            }
            checked.push("converged by");
        }
    }
    // "X loss rose … from a at epoch k to a median of b over the last w epochs".
    for (which, text) in [
        (
            "validation",
            between(reason, "validation loss rose ", " epochs"),
        ),
        (
            "training",
            between(reason, "training loss rose ", " epochs"),
        ),
    ] {
        let Some(text) = text else { continue };
        let values = series(epochs, which);
        let from = text
            .split("from ")
            .nth(1)
            .unwrap_or_else(|| fail("rose from"));
        let (a, rest) = from
            .split_once(" at epoch ")
            .unwrap_or_else(|| fail("rose at"));
        let (k, rest) = rest
            .split_once(" to a median of ")
            .unwrap_or_else(|| fail("rose to"));
        let (b, w) = rest
            .split_once(" over the last ")
            .unwrap_or_else(|| fail("rose over"));
        let w: usize = w.trim().parse().unwrap_or_else(|_| fail("window"));
        let end = median(&values[values.len() - w..]);
        let i = at(k);
        if !(prints_as(values[i], a) && prints_as(end, b) && end > values[i]) {
            fail("'rose … to a median of' is not true");
        }
        checked.push(if which == "training" {
            "training rose"
        } else {
            "validation rose"
        });
    }
    // "both losses rose after epoch k: validation from a to a median of b over the last w
    // epochs, training from c to d".
    if let Some(text) = between(reason, "both losses rose after epoch ", ":") {
        let i = at(text);
        let rest = between(reason, ": validation from ", ":").unwrap_or_else(|| fail("both"));
        let (a, rest) = rest
            .split_once(" to a median of ")
            .unwrap_or_else(|| fail("both to"));
        let (b, rest) = rest
            .split_once(" over the last ")
            .unwrap_or_else(|| fail("both over"));
        let (w, rest) = rest
            .split_once(" epochs, training from ")
            .unwrap_or_else(|| fail("w"));
        let (c, d) = rest
            .split_once(" to ")
            .unwrap_or_else(|| fail("both training"));
        let w: usize = w.parse().unwrap_or_else(|_| fail("w"));
        let (val_end, train_end) = (
            median(&vals[vals.len() - w..]),
            median(&trains[trains.len() - w..]),
        );
        if !(prints_as(vals[i], a)
            && prints_as(val_end, b)
            && prints_as(trains[i], c)
            && prints_as(train_end, d)
            && val_end > vals[i]
            && train_end >= trains[i])
        {
            fail("'both losses rose' is not true");
        }
        checked.push("both rose");
    }
    // "came down to a at epoch k and fell back to …: a median of b over the last w epochs
    // (training loss c)".
    if let Some(text) = between(reason, "validation loss came down to ", " and fell back") {
        let (a, k) = text
            .split_once(" at epoch ")
            .unwrap_or_else(|| fail("came down"));
        let rest = between(reason, ": a median of ", ")").unwrap_or_else(|| fail("fell back"));
        let (b, rest) = rest
            .split_once(" over the last ")
            .unwrap_or_else(|| fail("fb over"));
        let (w, c) = rest
            .split_once(" epochs (training loss ")
            .unwrap_or_else(|| fail("fb training"));
        let w: usize = w.parse().unwrap_or_else(|_| fail("w"));
        let i = at(k);
        let (val_end, train_end) = (
            median(&vals[vals.len() - w..]),
            median(&trains[trains.len() - w..]),
        );
        if !(prints_as(vals[i], a)
            && prints_as(val_end, b)
            && prints_as(train_end, c)
            && val_end > vals[i])
        {
            fail("'came down … and fell back' is not true");
        }
        checked.push("fell back");
    }
    // "though it had learned at first (X loss a at epoch k) and fell back".
    if let Some(text) = between(reason, "had learned at first (", ")") {
        let (which, rest) = text.split_once(" loss ").unwrap_or_else(|| fail("learned"));
        let (a, k) = rest
            .split_once(" at epoch ")
            .unwrap_or_else(|| fail("learned at"));
        if !prints_as(series(epochs, which)[at(k)], a) {
            fail("'had learned at first' cites another value");
        }
        checked.push("learned at first");
    }
    // "(the largest: X loss a → b at epoch k)".
    for text in all_between(reason, "(the largest: ", ")") {
        let (which, rest) = text.split_once(" loss ").unwrap_or_else(|| fail("largest"));
        let (a, rest) = rest.split_once(" → ").unwrap_or_else(|| fail("largest →"));
        let (b, k) = rest
            .split_once(" at epoch ")
            .unwrap_or_else(|| fail("largest at"));
        let i = at(k);
        let values = series(epochs, which);
        if i == 0 || !(prints_as(values[i - 1], a) && prints_as(values[i], b)) {
            fail("'the largest' rise cites other values");
        }
        if values[i] <= values[i - 1] {
            fail("'the largest' rise is not a rise");
        }
        checked.push("the largest");
    }
    // "jumped up in N of M epoch-to-epoch steps".
    if let Some(text) = between(reason, "jumped up in ", " epoch-to-epoch steps") {
        let (count, steps) = text.split_once(" of ").unwrap_or_else(|| fail("jumped"));
        let (count, steps): (usize, usize) = (number(count) as usize, number(steps) as usize);
        if steps != epochs.len() - 1 || count > steps || count < 2 {
            fail("'jumped up in N of M' has the wrong counts");
        }
        checked.push("jumped");
    }
    // "still falling": the last third's slope, on the curve's scale, is downward.
    if reason.contains("still falling") {
        if last_third_slope(&vals) >= 0.0 {
            fail("'still falling' on a curve whose last third does not fall");
        }
        checked.push("still falling");
    }
    // "is within 10% of the B of": the best validation loss is within 10% of the baseline.
    if reason.contains("is within 10% of the ") {
        let baseline = g.run.facts.task.baseline_loss().unwrap_or(f64::NAN);
        let best = vals.iter().copied().fold(f64::INFINITY, f64::min);
        if best <= 0.9 * baseline * (1.0 - 1e-9) {
            fail("'within 10% of the baseline' for a run that went lower");
        }
        checked.push("within 10%");
    }
    // "ended at x": the last epoch.
    if let Some(text) = between(reason, "training loss ended at ", ",") {
        if !prints_as(*trains.last().unwrap_or(&f64::NAN), text) {
            fail("'training loss ended at' is not the last epoch");
        }
        checked.push("ended at");
    }
    check_advice(a);
    checked
}

/// Advice never points against the evidence it cites.
fn check_advice(a: &RunAnalysis) {
    let reason = &a.reason;
    let named_in = |lead: &str| -> Vec<String> {
        all_between(reason, lead, " (too")
            .into_iter()
            .flat_map(|names| {
                names
                    .replace(" and ", ", ")
                    .split(", ")
                    .map(str::to_string)
                    .collect::<Vec<_>>()
            })
            .collect()
    };
    let with = |d: Diagnosis| -> Vec<&str> {
        a.groups
            .iter()
            .filter(|g| g.diagnosis == d)
            .map(|g| g.name.as_str())
            .collect()
    };
    for name in named_in("raise the rate of ") {
        if with(Diagnosis::TooHigh).contains(&name.as_str()) {
            panic!("advice raises the rate of {name}, judged too high: {reason}");
        }
    }
    for name in named_in("lower the rate of ") {
        if with(Diagnosis::TooLow).contains(&name.as_str()) {
            panic!("advice lowers the rate of {name}, judged too low: {reason}");
        }
    }
    let bounced = matches!(a.verdict, Verdict::Unstable | Verdict::Diverged);
    if bounced && reason.contains("raise") {
        panic!(
            "an {} run is told to raise a rate: {reason}",
            a.verdict.label()
        );
    }
    if !with(Diagnosis::TooHigh).is_empty()
        && (reason.contains("raise the rates") || reason.contains("a higher rate"))
    {
        panic!("advice to raise every rate beside a group judged too high: {reason}");
    }
    for group in &a.groups {
        let raises = group.advice.contains("raise its rate");
        let lowers = group.advice.contains("lower its rate");
        let wrong = match group.diagnosis {
            Diagnosis::TooHigh => raises,
            Diagnosis::TooLow => lowers,
            Diagnosis::Ok | Diagnosis::Frozen => raises || lowers,
        };
        if wrong {
            panic!(
                "{}'s advice against its diagnosis: {}",
                group.name, group.advice
            );
        }
    }
}

/// The same run with every loss and the baseline multiplied by `factor`.
fn scaled(g: &Generated, factor: f64) -> Generated {
    let mut run = g.run.clone();
    if let TaskFacts::Regression { target_variance } = &mut run.facts.task {
        *target_variance = target_variance.map(|v| v * factor);
    }
    let epochs = g
        .epochs
        .iter()
        .map(|e| EpochMetrics {
            train_loss: e.train_loss * factor,
            val_loss: e.val_loss * factor,
            ..e.clone()
        })
        .collect();
    Generated { run, epochs }
}

#[test]
fn every_claim_is_true_of_its_curve_and_the_verdict_does_not_depend_on_the_scale() {
    let mut rng = SeededRng::seeded(20_261_207);
    let thresholds = Thresholds::default();
    let mut verdicts = std::collections::BTreeMap::<&str, usize>::new();
    let mut claims = std::collections::BTreeMap::<&str, usize>::new();
    for _ in 0..CURVES {
        let g = generate(&mut rng);
        let a = analyse(&g.run, &g.epochs, &thresholds);
        *verdicts.entry(a.verdict.label()).or_default() += 1;
        for claim in check_claims(&g, &a) {
            *claims.entry(claim).or_default() += 1;
        }
        if matches!(g.run.facts.task, TaskFacts::Regression { .. }) {
            for factor in [1e-3, 1e3] {
                let other = scaled(&g, factor);
                let b = analyse(&other.run, &other.epochs, &thresholds);
                assert_eq!(
                    a.verdict, b.verdict,
                    "×{factor} changed the verdict:\n{}\n{}",
                    a.reason, b.reason
                );
                let diagnoses = |x: &RunAnalysis| -> Vec<Diagnosis> {
                    x.groups.iter().map(|g| g.diagnosis).collect()
                };
                assert_eq!(
                    diagnoses(&a),
                    diagnoses(&b),
                    "×{factor} changed a diagnosis"
                );
            }
        }
    }
    // The generator reaches every verdict (else the properties were not tried on it).
    for verdict in [
        "good",
        "plateaued",
        "overfitting",
        "unstable",
        "slow",
        "not-learning",
        "diverged",
        "too-short",
    ] {
        assert!(
            verdicts.get(verdict).is_some_and(|n| *n >= 20),
            "{verdict}: {verdicts:?}"
        );
    }
    // And every kind of claim was checked, many times.
    for claim in [
        "became",
        "fell",
        "stayed between",
        "converged by",
        "validation rose",
        "training rose",
        "both rose",
        "fell back",
        "learned at first",
        "the largest",
        "jumped",
        "still falling",
        "within 10%",
        "ended at",
    ] {
        assert!(
            claims.get(claim).is_some_and(|n| *n >= 20),
            "{claim}: {claims:?}"
        );
    }
}
