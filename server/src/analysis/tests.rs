//! The analysis on hand-made curves whose verdicts are known.

use super::*;
use crate::domain::Verdict;
use crate::domain::{
    DataFacts, FrozenUntil, GroupStats, ParamInit, ParameterRate, RunConfig, RunStatus, TaskFacts,
};

/// A finished 3-class run: 400 samples, 320 training rows in 10 batches of 32 per epoch.
fn run(status: RunStatus) -> RunRecord {
    let param = |name: &str, group: &str, shape: Vec<i64>| ParameterRate {
        name: name.into(),
        group: group.into(),
        shape,
        lr: 1e-2,
        frozen: FrozenUntil::Never,
        init: ParamInit::Fresh,
    };
    RunRecord {
        status,
        config: RunConfig {
            samples: Some(400),
            val_fraction: Some(0.2),
            batch_size: Some(32),
            epochs: Some(10),
            ..Default::default()
        },
        parameters: vec![
            param("layer0.weight", "layer0", vec![16, 2]),
            param("layer0.bias", "layer0", vec![16]),
            param("head.weight", "head", vec![3, 16]),
            param("head.bias", "head", vec![3]),
        ],
        facts: DataFacts {
            task: TaskFacts::Classification { classes: 3 },
            train_rows: 320,
            val_rows: 80,
            steps_per_epoch: 10,
            label: String::new(),
            task_reason: String::new(),
            leakage: None,
        },
        ..RunRecord::example(RunId(1))
    }
}

/// As a comparison takes it.
fn state(record: RunRecord) -> RunState {
    RunState {
        record,
        epochs_done: 0,
        queue_position: 0,
        worker_pid: 0,
    }
}

fn finished() -> RunRecord {
    run(RunStatus::Completed)
}

/// Epochs from (train, val) pairs; both groups move 1e-2 of their norm per epoch (1e-3 a step).
fn curve(losses: &[(f64, f64)]) -> Vec<EpochMetrics> {
    curve_with_ratios(losses, 1e-2, 1e-2)
}

fn curve_with_ratios(losses: &[(f64, f64)], layer0: f64, head: f64) -> Vec<EpochMetrics> {
    losses
        .iter()
        .enumerate()
        .map(|(i, &(train_loss, val_loss))| EpochMetrics {
            epoch: i as u32 + 1,
            train_loss,
            val_loss,
            val_metric: 0.5,
            duration_ms: 100.0,
            samples_per_sec: 3200.0,
            groups: vec![
                GroupStats {
                    name: "layer0".into(),
                    lr: 1e-2,
                    update_ratio: layer0,
                    ..Default::default()
                },
                GroupStats {
                    name: "head".into(),
                    lr: 1e-2,
                    update_ratio: head,
                    ..Default::default()
                },
            ],
            extra: Default::default(),
        })
        .collect()
}

fn analyse_default(run: &RunRecord, epochs: &[EpochMetrics]) -> RunAnalysis {
    analyse(run, epochs, &Thresholds::default())
}

/// Both losses falling steadily, validation a little above training.
fn steady(n: usize) -> Vec<(f64, f64)> {
    (0..n)
        .map(|i| {
            let train = 1.0 * 0.8f64.powi(i as i32);
            (train, train * 1.05 + 0.01)
        })
        .collect()
}

fn diagnosis_of(analysis: &RunAnalysis, group: &str) -> &'static str {
    analysis
        .groups
        .iter()
        .find(|g| g.name == group)
        .unwrap_or_else(|| panic!("no group {group}"))
        .diagnosis
        .label()
}

#[test]
fn steady_curves_are_good_with_exact_numbers() {
    let epochs = curve(&steady(10));
    let a = analyse_default(&finished(), &epochs);
    assert_eq!(a.verdict.label(), "good", "{}", a.reason);
    assert_eq!(a.best_epoch, 10);
    assert_eq!(a.epochs, 10);
    let last = &epochs[9];
    assert_eq!(a.best_val_loss, last.val_loss);
    assert_eq!(a.gap_final, last.val_loss - last.train_loss);
    assert_eq!(a.gap_at_best, a.gap_final);
    assert_eq!(a.final_train_loss, last.train_loss);
    assert_eq!(a.final_val_loss, last.val_loss);
    // The gap (0.05·train + 0.01) shrinks with the loss.
    assert!(a.gap_trend < 0.0, "{}", a.gap_trend);
    assert!(
        a.reason.starts_with("validation loss fell "),
        "{}",
        a.reason
    );
    assert!(a.reason.contains(": good; still improving"), "{}", a.reason);
    assert_eq!(diagnosis_of(&a, "layer0"), "ok");
    assert_eq!(diagnosis_of(&a, "head"), "ok");
    assert!((a.groups[0].update_ratio - 1e-3).abs() < 1e-12);
}

#[test]
fn convergence_counts_epochs_until_within_five_percent_of_best() {
    // Best 1.0 at epoch 6; 1.04 (epoch 4) is the first within 5% of it.
    let epochs = curve(&[
        (2.0, 2.0),
        (1.6, 1.5),
        (1.3, 1.2),
        (1.1, 1.04),
        (1.05, 1.02),
        (1.0, 1.0),
    ]);
    let a = analyse_default(&finished(), &epochs);
    assert_eq!(a.best_epoch, 6);
    assert_eq!(a.epochs_to_converge, 4);
    let tighter = Thresholds {
        near_best_fraction: 0.01,
        ..Thresholds::default()
    };
    assert_eq!(
        analyse(&finished(), &epochs, &tighter).epochs_to_converge,
        6
    );
}

#[test]
fn gap_trend_is_the_slope_over_the_last_third() {
    // Nine epochs: the last three gaps are 0.1, 0.2, 0.3 → +0.1 per epoch.
    let mut losses = steady(6);
    losses.extend([(0.2, 0.3), (0.15, 0.35), (0.1, 0.4)]);
    let a = analyse_default(&finished(), &curve(&losses));
    assert!((a.gap_trend - 0.1).abs() < 1e-9, "{}", a.gap_trend);
}

#[test]
fn validation_rising_while_training_falls_is_overfitting() {
    // Validation is best (0.4) at epoch 6 and ends 25% above it; training falls 80% after it.
    let losses = [
        (1.0, 1.0),
        (0.8, 0.8),
        (0.6, 0.6),
        (0.5, 0.5),
        (0.4, 0.45),
        (0.3, 0.4),
        (0.2, 0.42),
        (0.15, 0.45),
        (0.1, 0.47),
        (0.06, 0.5),
    ];
    let a = analyse_default(&finished(), &curve(&losses));
    assert_eq!(a.verdict.label(), "overfitting", "{}", a.reason);
    assert_eq!(a.best_epoch, 6);
    assert!(
        a.reason.starts_with(
            "training loss fell 80% while validation loss rose 25% after epoch 6: overfitting;"
        ),
        "{}",
        a.reason
    );
    assert!(a.reason.contains("epoch 6"), "{}", a.reason);
}

#[test]
fn a_wide_gap_is_overfitting_only_once_validation_stops_improving() {
    // Validation still falling every epoch while training races ahead: not overfitting (a run
    // whose best epoch is its last has nothing to stop early for).
    let losses: Vec<(f64, f64)> = (0..9)
        .map(|i| {
            let i = i as f64;
            (1.0 - 0.1 * i, 1.0 - 0.02 * i)
        })
        .collect();
    let a = analyse_default(&finished(), &curve(&losses));
    assert_ne!(a.verdict, Verdict::Overfitting, "{}", a.reason);
    assert_eq!(a.best_epoch, 9);
    // Validation stalled since epoch 5 (not rising 10%) while training keeps falling, the gap
    // wide and widening: overfitting.
    let stalled = [
        (1.0, 1.0),
        (0.7, 0.8),
        (0.5, 0.6),
        (0.35, 0.5),
        (0.25, 0.45),
        (0.18, 0.455),
        (0.13, 0.46),
        (0.1, 0.455),
        (0.08, 0.46),
        (0.06, 0.46),
    ];
    let a = analyse_default(&finished(), &curve(&stalled));
    assert_eq!(a.verdict, Verdict::Overfitting, "{}", a.reason);
    assert!(
        a.reason.starts_with(
            "validation loss has not improved since epoch 5 while training loss fell to 0.06000"
        ),
        "{}",
        a.reason
    );
    let lenient = Thresholds {
        overfit_gap: 2.0,
        ..Thresholds::default()
    };
    let a = analyse(&finished(), &curve(&stalled), &lenient);
    assert_ne!(a.verdict, Verdict::Overfitting, "{}", a.reason);
}

#[test]
fn a_noisy_training_plateau_with_validation_rising_is_still_overfitting() {
    // The demo's layer-rate run: training loss flat and noisy near 0.04 after epoch 9, ending a
    // little above its value there, while validation rose 41% from its best.
    let losses = [
        (0.789, 0.522),
        (0.412, 0.343),
        (0.255, 0.252),
        (0.170, 0.209),
        (0.117, 0.190),
        (0.095, 0.158),
        (0.070, 0.143),
        (0.052, 0.142),
        (0.050, 0.104),
        (0.035, 0.130),
        (0.039, 0.132),
        (0.041, 0.185),
        (0.055, 0.171),
        (0.041, 0.150),
        (0.053, 0.147),
    ];
    let a = analyse_default(&finished(), &curve(&losses));
    assert_eq!(a.verdict.label(), "overfitting", "{}", a.reason);
    assert!(
        a.reason
            .starts_with("training loss fell 30% while validation loss rose 41% after epoch 9"),
        "{}",
        a.reason
    );
}

#[test]
fn one_bad_epoch_after_the_best_is_not_overfitting() {
    let mut losses = steady(9);
    let (train, val) = losses[8];
    losses.push((train * 0.9, val * 1.5));
    let a = analyse_default(&finished(), &curve(&losses));
    assert_eq!(a.best_epoch, 9);
    assert_eq!(a.verdict.label(), "good", "{}", a.reason);
}

#[test]
fn bouncing_losses_are_unstable_and_name_the_group_to_slow_down() {
    let losses = [
        (1.0, 1.0),
        (0.7, 0.6),
        (0.8, 0.9),
        (0.5, 0.5),
        (0.7, 0.8),
        (0.4, 0.4),
        (0.6, 0.7),
        (0.35, 0.38),
    ];
    // The head moves 0.5 of its norm per epoch: 5e-2 a step, far over the rule of thumb.
    let epochs = curve_with_ratios(&losses, 1e-2, 0.5);
    let a = analyse_default(&finished(), &epochs);
    assert_eq!(a.verdict.label(), "unstable", "{}", a.reason);
    assert!(
        a.reason
            .contains("jumped up in 3 of 7 epoch-to-epoch steps"),
        "{}",
        a.reason
    );
    assert!(a.reason.contains("lower the rate of head"), "{}", a.reason);
    assert_eq!(diagnosis_of(&a, "head"), "too-high");
    assert_eq!(diagnosis_of(&a, "layer0"), "ok");
    // Demanding more jumps turns it off.
    let strict = Thresholds {
        unstable_fraction: 0.5,
        ..Thresholds::default()
    };
    assert_ne!(
        analyse(&finished(), &epochs, &strict).verdict.label(),
        "unstable"
    );
}

#[test]
fn wiggles_of_a_loss_near_zero_are_not_jumps() {
    // Validation bounces by 15–25% of itself late on, but by under 1% of where it started.
    let losses = [
        (1.0, 1.0),
        (0.5, 0.5),
        (0.2, 0.2),
        (0.08, 0.06),
        (0.06, 0.05),
        (0.05, 0.06),
        (0.045, 0.045),
        (0.04, 0.055),
        (0.038, 0.04),
        (0.036, 0.048),
        (0.034, 0.035),
    ];
    let a = analyse_default(&finished(), &curve(&losses));
    assert_eq!(a.verdict.label(), "good", "{}", a.reason);
    assert!(
        a.reason.contains("with a small gap (+0.001000)"),
        "{}",
        a.reason
    );
}

#[test]
fn non_finite_or_exploding_losses_are_diverged() {
    let mut losses = steady(4);
    losses.push((f64::NAN, f64::NAN));
    let a = analyse_default(&finished(), &curve(&losses));
    assert_eq!(a.verdict.label(), "diverged");
    assert!(
        a.reason
            .starts_with("the training loss became NaN at epoch 5: diverged"),
        "{}",
        a.reason
    );

    // Training ends far above ln 3 ≈ 1.1, where an untrained 3-class classifier starts.
    let exploded = [(4e17, 29.0), (26.5, 38.8), (31.1, 29.2), (45.8, 28.9)];
    let a = analyse_default(&finished(), &curve(&exploded));
    assert_eq!(a.verdict.label(), "diverged", "{}", a.reason);
    assert!(
        a.reason.contains("training loss ended at 45.80"),
        "{}",
        a.reason
    );
    assert!(
        a.reason
            .contains("times the 1.099 of a uniform guess over 3 classes"),
        "{}",
        a.reason
    );

    // A diverged run with no stored epoch gives the daemon's reason.
    let mut run = run(RunStatus::Diverged);
    run.reason = "the training loss became NaN at epoch 1, batch 3".into();
    let a = analyse_default(&run, &[]);
    assert_eq!(a.verdict.label(), "diverged");
    assert!(
        a.reason
            .starts_with("the training loss became NaN at epoch 1, batch 3: diverged; lower"),
        "{}",
        a.reason
    );
    assert_eq!(a.best_epoch, 0);
    assert!(a.groups.is_empty());
}

#[test]
fn a_flat_curve_at_the_baseline_is_not_learning_and_names_the_groups() {
    // A 3-class run whose validation loss never leaves ln 3 ≈ 1.099, its weights hardly moving.
    let losses: Vec<(f64, f64)> = (0..10)
        .map(|i| (1.098 - 1e-4 * i as f64, 1.104 - 1e-4 * i as f64))
        .collect();
    let epochs = curve_with_ratios(&losses, 1e-6, 3e-6);
    let a = analyse_default(&finished(), &epochs);
    assert_eq!(a.verdict, Verdict::NotLearning, "{}", a.reason);
    assert!(
        a.reason.starts_with(
            "the best validation loss, 1.103 (best accuracy 50%, chance 33%), is within 10% of the 1.099 of a uniform guess over 3 classes: not-learning"
        ),
        "{}",
        a.reason
    );
    assert!(
        a.reason
            .contains("raise the rate of layer0 and head (too low)"),
        "{}",
        a.reason
    );
    assert_eq!(diagnosis_of(&a, "layer0"), "too-low");
    let advice = &a.groups[0].advice;
    assert!(advice.contains("raise its rate"), "{advice}");
}

#[test]
fn learning_far_from_done_and_still_falling_is_slow() {
    // Down from ln 3 to 0.8 and still falling steadily at the end: slow, not good.
    let losses: Vec<(f64, f64)> = (0..10)
        .map(|i| (1.05 - 0.03 * i as f64, 1.06 - 0.03 * i as f64))
        .collect();
    let a = analyse_default(&finished(), &curve_with_ratios(&losses, 1e-3, 1e-3));
    assert_eq!(a.verdict, Verdict::Slow, "{}", a.reason);
    assert!(
        a.reason
            .starts_with("validation loss is still falling (1.060 → 0.7900 (best accuracy 50%, chance 33%)) but is still 72% of the 1.099"),
        "{}",
        a.reason
    );
}

#[test]
fn a_quickly_converged_run_is_plateaued_not_slow() {
    // Flat after the first epoch, far below the baseline: done early, with nothing wrong.
    let losses = [
        (0.30, 0.10),
        (0.09, 0.095),
        (0.09, 0.094),
        (0.088, 0.096),
        (0.087, 0.097),
        (0.087, 0.097),
    ];
    let a = analyse_default(&finished(), &curve(&losses));
    assert_eq!(a.verdict, Verdict::Plateaued, "{}", a.reason);
    assert!(
        a.reason.starts_with(
            "validation loss settled near its best (0.09400) by epoch 1 and stayed there for 5 epochs (ended at 0.09700): plateaued; the last 5 epochs added little: stop around epoch 1"
        ),
        "{}",
        a.reason
    );
}

#[test]
fn a_converged_curve_wobbling_around_its_best_is_plateaued_not_unstable() {
    // The mild plateau: converged by epoch 2, then validation wobbles ±10% around 0.16.
    let losses = [
        (0.9, 0.5),
        (0.2, 0.165),
        (0.15, 0.18),
        (0.14, 0.15),
        (0.13, 0.175),
        (0.13, 0.145),
        (0.12, 0.17),
        (0.12, 0.15),
        (0.115, 0.172),
        (0.11, 0.16),
    ];
    let a = analyse_default(&finished(), &curve(&losses));
    assert_eq!(a.verdict, Verdict::Plateaued, "{}", a.reason);
}

#[test]
fn too_few_epochs_are_too_short_and_running_runs_say_so_far() {
    let a = analyse_default(&finished(), &curve(&steady(2)));
    assert_eq!(a.verdict.label(), "too-short");
    assert_eq!(
        a.reason,
        "only 2 epochs were trained; the analysis needs at least 3: too-short"
    );
    let running = run(RunStatus::Running);
    let a = analyse_default(&running, &curve(&steady(1)));
    assert_eq!(
        a.reason,
        "only 1 epoch trained yet; the analysis needs at least 3: too-short so far (epoch 1 of 10)"
    );
    let a = analyse_default(&running, &curve(&steady(4)));
    assert_eq!(a.verdict.label(), "good");
    assert!(
        a.reason.contains("good so far (epoch 4 of 10)"),
        "{}",
        a.reason
    );
    let a = analyse_default(&run(RunStatus::Queued), &[]);
    assert_eq!((a.verdict.label(), a.best_epoch), ("too-short", 0));
    assert!(a.best_val_loss.is_nan());
}

#[test]
fn frozen_groups_are_frozen_and_good_runs_still_name_a_wrong_rate() {
    let mut epochs = curve_with_ratios(&steady(6), 1e-6, 1e-2);
    for e in &mut epochs[..3] {
        e.groups[0].frozen = true;
        e.groups[0].update_ratio = 0.0;
    }
    let a = analyse_default(&finished(), &epochs);
    assert_eq!(a.verdict.label(), "good", "{}", a.reason);
    assert_eq!(diagnosis_of(&a, "layer0"), "too-low");
    assert!(
        a.reason.contains("raise the rate of layer0 (too low)"),
        "{}",
        a.reason
    );
    for e in &mut epochs {
        e.groups[0].frozen = true;
    }
    let a = analyse_default(&finished(), &epochs);
    assert_eq!(diagnosis_of(&a, "layer0"), "frozen");
    assert!(!a.reason.contains("layer0"), "{}", a.reason);
}

fn named(id: &str, name: &str) -> RunState {
    state(RunRecord {
        id: id.parse().unwrap(),
        name: name.into(),
        ..finished()
    })
}

#[test]
fn compare_ranks_by_best_validation_loss_and_names_the_best() {
    let scaled = |factor: f64| -> Vec<(f64, f64)> {
        steady(6)
            .into_iter()
            .map(|(t, v)| (t * factor, v * factor))
            .collect()
    };
    let response = compare(
        vec![
            (named("000000000000000a", "worse"), curve(&scaled(2.0))),
            (named("000000000000000b", "empty"), vec![]),
            (named("000000000000000c", "better"), curve(&scaled(1.0))),
        ],
        &Thresholds::default(),
    );
    let order: Vec<(&str, u32)> = response
        .runs
        .iter()
        .map(|c| (c.run.record.name.as_str(), c.rank))
        .collect();
    assert_eq!(order, [("better", 1), ("worse", 2), ("empty", 3)]);
    assert_eq!(best(&response), "000000000000000c");
    assert!(
        response
            .summary
            .starts_with("000000000000000c (better) is best: its validation loss reached"),
        "{}",
        response.summary
    );
    assert!(
        response.summary.contains(
            "50% below the 0.7081 of the runner-up, 000000000000000a (worse); its verdict: good."
        ),
        "{}",
        response.summary
    );
    assert_eq!(
        response.runs[0].epochs.len(),
        6,
        "epochs travel along for plots"
    );
}

#[test]
fn compare_points_to_the_best_good_run_when_the_best_is_not_good() {
    let overfit = [(1.0, 1.0), (0.6, 0.5), (0.3, 0.3), (0.1, 0.4), (0.05, 0.5)];
    let response = compare(
        vec![
            (named("000000000000000a", "overfit"), curve(&overfit)),
            (named("000000000000000b", "steady"), curve(&steady(5))),
        ],
        &Thresholds::default(),
    );
    assert_eq!(best(&response), "000000000000000a");
    assert!(
        response
            .summary
            .contains("The best run judged good is 000000000000000b (steady)"),
        "{}",
        response.summary
    );
    let none = compare(
        vec![(named("000000000000000a", ""), vec![])],
        &Thresholds::default(),
    );
    assert_eq!(best(&none), "");
    assert!(none.summary.starts_with("No run"), "{}", none.summary);
}

#[test]
fn compare_warns_when_the_runs_trained_on_different_data() {
    let on = |id: &str, dataset: &str, samples: u32| {
        let mut run = named(id, "");
        run.record.config = RunConfig {
            dataset: dataset.into(),
            samples: Some(samples),
            ..Default::default()
        };
        run
    };
    let same = compare(
        vec![
            (on("000000000000000a", "spirals", 400), curve(&steady(5))),
            (on("000000000000000b", "spirals", 400), curve(&steady(5))),
        ],
        &Thresholds::default(),
    );
    assert!(!same.summary.contains("Careful"), "{}", same.summary);
    let different = compare(
        vec![
            (on("000000000000000a", "spirals", 400), curve(&steady(5))),
            (on("000000000000000b", "moons", 400), curve(&steady(5))),
        ],
        &Thresholds::default(),
    );
    assert!(
        different
            .summary
            .contains("Careful: these runs did not train on the same data (spirals, 400 samples; moons, 400 samples)"),
        "{}",
        different.summary
    );
}

fn best(comparison: &Comparison) -> String {
    comparison
        .best_run
        .map_or(String::new(), |id| id.to_string())
}
