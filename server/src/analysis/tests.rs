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
        waiting: String::new(),
        worker: String::new(),
        worker_losses: 0,
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
            no_validation: false,
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
    assert!(
        a.reason
            .contains(": good; still falling at the end: more epochs may help"),
        "{}",
        a.reason
    );
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
    // Its level at the end (the median of the last two epochs) against the best epoch's loss.
    assert!(
        a.reason.starts_with(
            "validation loss rose 21% from 0.4000 at epoch 6 to a median of 0.4850 over the last 2 epochs, while training loss fell from 0.3000 to a median of 0.08000: overfitting;"
        ),
        "{}",
        a.reason
    );
    assert!(
        a.reason.contains("its best weights were at epoch 6"),
        "{}",
        a.reason
    );
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
    // Validation stalled since epoch 5 while training keeps falling, the gap wide: a run that
    // converged, not one that overfits (validation never rose).
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
    assert_eq!(a.verdict, Verdict::Good, "{}", a.reason);
    // Rising 7% from its best — under `overfit_val_rise` — with the gap wide and widening:
    // overfitting, by the gap.
    let creeping = [
        (1.0, 1.0),
        (0.7, 0.8),
        (0.5, 0.6),
        (0.35, 0.5),
        (0.25, 0.45),
        (0.18, 0.455),
        (0.13, 0.465),
        (0.1, 0.47),
        (0.08, 0.48),
        (0.06, 0.482),
    ];
    let a = analyse_default(&finished(), &curve(&creeping));
    assert_eq!(a.verdict, Verdict::Overfitting, "{}", a.reason);
    assert!(
        a.reason
            .contains("far below it: the gap (+0.4110) is 85% of the validation loss"),
        "{}",
        a.reason
    );
    let lenient = Thresholds {
        overfit_gap: 2.0,
        ..Thresholds::default()
    };
    let a = analyse(&finished(), &curve(&creeping), &lenient);
    assert_ne!(a.verdict, Verdict::Overfitting, "{}", a.reason);
}

/// The demo's layer-rate run: validation touched 0.104 once (epoch 9), and its level around there
/// was 0.13; it ends at 0.15, bouncing 0.13–0.185 — a rise measured from one lucky epoch (41%) is
/// not the curve's, and its rise from its level (15%) is within its noise: not overfitting. What
/// it shows is validation bouncing by a sixth of its level while training stopped falling near
/// 0.05: the optimizer thrown about near its minimum.
#[test]
fn a_rise_from_one_lucky_epoch_within_the_noise_is_not_overfitting() {
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
    assert_eq!(a.verdict.label(), "unstable", "{}", a.reason);
    assert!(
        a.reason.starts_with(
            "validation loss bounces by about 17% of its level from epoch to epoch while training loss stopped falling (0.05200 at epoch 8, a median of 0.05300 over the last 3 epochs)"
        ),
        "{}",
        a.reason
    );
    // The same rise on a quiet curve is overfitting.
    let quiet: Vec<(f64, f64)> = (0..15)
        .map(|i| {
            let train = 0.8 * 0.75f64.powi(i);
            let val = if i < 8 {
                0.5 * 0.8f64.powi(i)
            } else {
                0.5 * 0.8f64.powi(7) * 1.04f64.powi(i - 7)
            };
            (train, val)
        })
        .collect();
    let a = analyse_default(&finished(), &curve(&quiet));
    assert_eq!(a.verdict.label(), "overfitting", "{}", a.reason);
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
    let a = analyse(&finished(), &epochs, &strict);
    assert!(!a.reason.contains("jumped up"), "{}", a.reason);
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
        a.reason.contains("with a small gap (+0.001000): good"),
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
fn a_steady_descent_still_near_chance_is_slow_not_not_learning() {
    // 12 epochs at a rate too low: validation loss comes down from 1.118 to 1.028, still within
    // 10% of ln 3, but by the same step every epoch (training likewise): it is learning, slowly.
    let losses: Vec<(f64, f64)> = (0..12)
        .map(|i| (1.116 - 0.0082 * i as f64, 1.118 - 0.0082 * i as f64))
        .collect();
    let a = analyse_default(&finished(), &curve_with_ratios(&losses, 1e-3, 1e-3));
    assert_eq!(a.verdict, Verdict::Slow, "{}", a.reason);
    // The same descent levelling off half-way (a floor in sight) is not: it stalled near chance.
    let levelling: Vec<(f64, f64)> = (0..12)
        .map(|i| {
            let fall = 0.09 * (1.0 - (-(i as f64) / 2.0).exp());
            (1.116 - fall, 1.118 - fall)
        })
        .collect();
    let a = analyse_default(&finished(), &curve_with_ratios(&levelling, 1e-3, 1e-3));
    assert_ne!(a.verdict, Verdict::Slow, "{}", a.reason);
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

/// Flat after the first epoch, far below the baseline: converged early, nothing wrong — `good`,
/// saying where it could have stopped (a stall short of a good fit is `plateaued`, below).
#[test]
fn a_quickly_converged_run_is_good_not_slow_or_plateaued() {
    let losses = [
        (0.30, 0.10),
        (0.09, 0.095),
        (0.09, 0.094),
        (0.088, 0.096),
        (0.087, 0.097),
        (0.087, 0.097),
    ];
    let a = analyse_default(&finished(), &curve(&losses));
    assert_eq!(a.verdict, Verdict::Good, "{}", a.reason);
    assert_eq!(
        a.reason,
        "validation loss fell 6.0% (0.1000 → 0.09400 at epoch 3) and has stayed between 0.09400 and 0.09700 since epoch 2: good; converged by epoch 2: it could have stopped there"
    );
}

/// The mild plateau: converged by epoch 2, then validation wobbles ±10% around 0.16 — at
/// a seventh of the baseline: converged, not unstable, not overfitting.
#[test]
fn a_converged_curve_wobbling_around_its_best_is_good_not_unstable() {
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
    assert_eq!(a.verdict, Verdict::Good, "{}", a.reason);
}

/// Flat for most of the run at four fifths of the baseline, training flat too: learning
/// stalled short of a good fit.
#[test]
fn a_stall_far_above_a_good_fit_is_plateaued() {
    let losses: Vec<(f64, f64)> = (0..20)
        .map(|i| {
            let level = if i < 4 { 1.0 - 0.06 * i as f64 } else { 0.82 };
            let wobble = if i % 2 == 0 { 0.004 } else { -0.004 };
            (level + 0.01 + wobble, level + wobble)
        })
        .collect();
    let a = analyse_default(&finished(), &curve(&losses));
    assert_eq!(a.verdict, Verdict::Plateaued, "{}", a.reason);
    assert!(
        a.reason.contains("since epoch 4, its best (0.8160) still 74% of the 1.099 of a uniform guess over 3 classes, and training loss stalled too"),
        "{}",
        a.reason
    );
    assert!(a.reason.contains("a larger model"), "{}", a.reason);
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
    // layer0 at 1e-7 under a head at 1e-2: it hardly moves, and its rate is why.
    let mut run = finished();
    for p in run.parameters.iter_mut().filter(|p| p.group == "layer0") {
        p.lr = 1e-7;
    }
    let mut epochs = curve_with_ratios(&steady(6), 1e-6, 1e-2);
    for e in &mut epochs[..3] {
        e.groups[0].frozen = true;
        e.groups[0].update_ratio = 0.0;
    }
    let a = analyse_default(&run, &epochs);
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
    let a = analyse_default(&run, &epochs);
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

// The failure cases of issue 22, each on a curve of its kind.

/// A 2-class run (ln 2 ≈ 0.693) of `epochs` (train, val) pairs, 25 steps an epoch, with its
/// groups moving at the rule of thumb.
fn binary(losses: &[(f64, f64)]) -> (RunRecord, Vec<EpochMetrics>) {
    let mut record = finished();
    record.facts.task = TaskFacts::Classification { classes: 2 };
    record.config.epochs = Some(losses.len() as u32);
    (record, curve(losses))
}

/// "validation loss settled near its best (0.0089) by epoch 5 and stayed there for 15 epochs
/// (ended at 0.1221)": it ended at 14× its best. The curve rose after epoch 5 while training
/// kept falling; no sentence may say it stayed.
#[test]
fn a_curve_that_ends_far_above_its_best_never_stayed_there() {
    let losses: Vec<(f64, f64)> = (1..=20)
        .map(|e| {
            let e = f64::from(e);
            let train = 0.6 * 0.7f64.powf(e);
            let val = if e <= 5.0 {
                0.6 * (0.0089f64 / 0.6).powf((e - 1.0) / 4.0)
            } else {
                0.0089 * 1.19f64.powf(e - 5.0)
            };
            (train, val)
        })
        .collect();
    let (record, epochs) = binary(&losses);
    let a = analyse_default(&record, &epochs);
    assert_eq!(a.verdict, Verdict::Overfitting, "{}", a.reason);
    assert!(!a.reason.contains("stayed"), "{}", a.reason);
    assert!(
        a.reason.contains("best weights were at epoch 5"),
        "{}",
        a.reason
    );
}

/// "settled … by epoch 7 … stop around epoch 7" where epoch 7's loss was 4× the best and still
/// falling: a curve that keeps falling on a log scale has not settled.
#[test]
fn a_curve_still_falling_on_a_log_scale_has_not_settled() {
    let losses: Vec<(f64, f64)> = (0..20)
        .map(|e| {
            let val = 0.5 * 0.83f64.powi(e);
            (val * 0.9, val)
        })
        .collect();
    let (record, epochs) = binary(&losses);
    let a = analyse_default(&record, &epochs);
    assert_eq!(a.verdict, Verdict::Good, "{}", a.reason);
    assert!(!a.reason.contains("settled"), "{}", a.reason);
    assert!(!a.reason.contains("stop around"), "{}", a.reason);
    assert!(
        a.reason
            .contains("still falling at the end: more epochs may help"),
        "{}",
        a.reason
    );
}

/// "a run whose validation loss fell 89% (160 → 17.4, still falling fast) called not-learning
/// with 'check that the labels belong to the features'": a regression whose targets' mean it
/// first had to learn, near its variance (18.3) at the end but still falling fast: slow.
#[test]
fn a_steep_fall_that_has_not_yet_passed_the_baseline_is_slow_not_not_learning() {
    let mut record = finished();
    record.facts.task = TaskFacts::Regression {
        target_variance: Some(18.3),
    };
    let losses: Vec<(f64, f64)> = (0..15)
        .map(|e| {
            let val = 160.0 * 0.853f64.powi(e);
            (val * 1.02, val)
        })
        .collect();
    let a = analyse_default(&record, &curve(&losses));
    assert_eq!(a.verdict, Verdict::Slow, "{}", a.reason);
    assert!(!a.reason.contains("labels"), "{}", a.reason);
    assert!(a.reason.contains("still falling (160.0 →"), "{}", a.reason);
}

/// "a run whose rate was far too high (loss jumps to chance after epoch 1 and stays; or bounces
/// between 0.69 and 1.6) is not-learning with 'raise the rates'".
#[test]
fn a_run_thrown_to_chance_by_its_rate_is_unstable_and_told_to_lower_it() {
    // Learned in epoch 1, then at chance (ln 2) for good.
    let mut jumped = vec![(0.45, 0.40)];
    jumped.extend((0..19).map(|e| (0.694 + 0.0005 * f64::from(e % 2), 0.6935)));
    // Bouncing between 0.69 and 1.6: worse than a uniform guess, again and again.
    let bounced: Vec<(f64, f64)> = (0..20)
        .map(|e| match e % 4 {
            0 => (0.70, 0.693),
            1 => (1.2, 1.6),
            2 => (0.80, 0.74),
            _ => (1.4, 1.1),
        })
        .collect();
    for losses in [jumped, bounced] {
        let (record, epochs) = binary(&losses);
        let a = analyse_default(&record, &epochs);
        assert_eq!(a.verdict, Verdict::Unstable, "{}", a.reason);
        assert!(a.reason.contains("lower the rate"), "{}", a.reason);
        assert!(!a.reason.contains("raise"), "{}", a.reason);
    }
}

/// "runs that reached 100% validation accuracy and a loss still edging down get an orange
/// plateaued with 'stop around epoch 7 or decay the rate'": converged is good.
#[test]
fn a_converged_run_still_edging_down_is_good() {
    let losses: Vec<(f64, f64)> = (0..30)
        .map(|e| {
            let val = 0.02 + 0.7 * 0.5f64.powi(e) - 0.0001 * f64::from(e);
            (val * 0.8, val)
        })
        .collect();
    let (record, mut epochs) = binary(&losses);
    for e in &mut epochs[6..] {
        e.val_metric = 1.0;
    }
    let a = analyse_default(&record, &epochs);
    assert_eq!(a.verdict, Verdict::Good, "{}", a.reason);
    assert!(!a.reason.contains("decay the rate"), "{}", a.reason);
}

/// "on runs where every group sits at a textbook rate (Adam 1e-2 on a small MLP, a cosine
/// schedule) and the curve is smooth, layer1/head are flagged too-high", and "layer1 at 1.37e-2
/// per step is too-high beside head at 1.31e-2 ok": on a smooth curve, large early steps (a head
/// growing from its small initial weights, Adam's first steps) are not blamed, and two groups
/// with the same numbers get the same diagnosis.
#[test]
fn textbook_rates_on_a_smooth_curve_are_not_flagged() {
    let mut epochs = curve(&steady(12));
    for (i, e) in epochs.iter_mut().enumerate() {
        // Epoch 1: both move more than their own norm (10 steps at 0.12–0.137); then 1e-2.
        let (layer0, head) = if i == 0 { (1.37, 1.31) } else { (0.1, 0.1) };
        e.groups[0].update_ratio = layer0;
        e.groups[1].update_ratio = head;
    }
    let a = analyse_default(&finished(), &epochs);
    assert_eq!(a.verdict, Verdict::Good, "{}", a.reason);
    assert_eq!(diagnosis_of(&a, "layer0"), "ok");
    assert_eq!(diagnosis_of(&a, "head"), "ok");
    assert!(
        a.groups[0].advice.contains("no harm"),
        "{}",
        a.groups[0].advice
    );
}

/// "External runs get CLI advice (--schedule cosine, --schedule warmup:STEPS) although the
/// user's own loop is what they would change — and one such run was told to use cosine while
/// already using it (the schedule was logged as a hyperparameter)."
#[test]
fn external_runs_get_advice_in_their_own_terms_and_their_schedule_is_heeded() {
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
    let epochs = curve_with_ratios(&losses, 1e-2, 0.5);
    let trained = analyse_default(&finished(), &epochs);
    assert!(
        trained.reason.contains("(--schedule cosine)"),
        "{}",
        trained.reason
    );
    let external = |hyperparameters: Vec<(&str, &str)>| {
        let mut record = finished();
        record.origin = crate::domain::RunOrigin::External {
            hyperparameters: hyperparameters
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            client_key: String::new(),
        };
        analyse_default(&record, &epochs)
    };
    let plain = external(vec![]);
    assert_eq!(plain.verdict, Verdict::Unstable, "{}", plain.reason);
    assert!(!plain.reason.contains("--"), "{}", plain.reason);
    assert!(
        plain.reason.contains("e.g. a cosine schedule"),
        "{}",
        plain.reason
    );
    for group in &plain.groups {
        assert!(!group.advice.contains("--"), "{}", group.advice);
    }
    // It logged its cosine schedule: no "use cosine"; it warms up? no: suggest a warm-up.
    let cosine = external(vec![("scheduler", "CosineAnnealingLR"), ("lr", "0.01")]);
    assert!(!cosine.reason.contains("cosine"), "{}", cosine.reason);
    assert!(
        cosine.reason.contains("warm the rate up"),
        "{}",
        cosine.reason
    );
    // Warm-up and cosine both logged: only "lower the rate" is left to say.
    let both = external(vec![("lr_schedule", "cosine"), ("warmup_steps", "500")]);
    assert!(!both.reason.contains("cosine"), "{}", both.reason);
    assert!(!both.reason.contains("warm"), "{}", both.reason);
    assert!(both.reason.contains("lower the rate"), "{}", both.reason);
    // A trained run on cosine is not told to use it either.
    let mut on_cosine = finished();
    on_cosine.config.schedule = "cosine".into();
    let a = analyse_default(&on_cosine, &epochs);
    assert!(!a.reason.contains("--schedule cosine"), "{}", a.reason);
}

/// A descent at an undiminished pace (a straight line on a log scale) with more than a quarter of
/// the baseline still to go: slow — the rate or the epochs, not the model, set where it ends.
#[test]
fn a_steady_descent_with_much_left_is_slow() {
    let losses: Vec<(f64, f64)> = (0..40)
        .map(|e| {
            let val = 0.72 * 0.98f64.powi(e);
            (val * 1.05, val)
        })
        .collect();
    let (record, epochs) = binary(&losses);
    let a = analyse_default(&record, &epochs);
    assert_eq!(a.verdict, Verdict::Slow, "{}", a.reason);
    assert!(
        a.reason.contains("raise the rates or train longer"),
        "{}",
        a.reason
    );
}

/// Far from a good fit (above half the baseline) and still creeping down beyond its noise, a
/// little each epoch: slow, not stalled; the same curve flat is plateaued.
#[test]
fn a_curve_far_from_a_good_fit_still_creeping_down_is_slow_not_plateaued() {
    let creeping: Vec<(f64, f64)> = (0..60)
        .map(|e| {
            let e = f64::from(e);
            let val = 0.62 + 0.3 * (-e / 4.0).exp() - 0.0004 * e;
            (val * 0.97, val)
        })
        .collect();
    let (record, epochs) = binary(&creeping);
    let a = analyse_default(&record, &epochs);
    assert_eq!(a.verdict, Verdict::Slow, "{}", a.reason);
    let flat: Vec<(f64, f64)> = (0..60)
        .map(|e| {
            let e = f64::from(e);
            let val = 0.62 + 0.3 * (-e / 4.0).exp();
            (val * 0.97, val)
        })
        .collect();
    let (record, epochs) = binary(&flat);
    let a = analyse_default(&record, &epochs);
    assert_eq!(a.verdict, Verdict::Plateaued, "{}", a.reason);
}

/// Near chance, a descent that speeds up has only just got going (slow); one that came down a
/// little and stalled is plateaued; one that never moved from where it started learned nothing.
#[test]
fn near_chance_a_speeding_fall_is_slow_a_small_stalled_gain_is_plateaued() {
    let ten_classes = |losses: &[(f64, f64)]| {
        let mut record = finished();
        record.facts.task = TaskFacts::Classification { classes: 10 };
        analyse_default(&record, &curve(losses))
    };
    let ln10 = 10f64.ln();
    // 2.299 → 2.094 over 25 epochs, the pace growing from 0.002 to 0.02 an epoch.
    let speeding: Vec<(f64, f64)> = (0..25)
        .map(|e| {
            let val = ln10 * (0.998 - 0.000_15 * f64::from(e * e));
            (val * 1.002, val)
        })
        .collect();
    let a = ten_classes(&speeding);
    assert_eq!(a.verdict, Verdict::Slow, "{}", a.reason);
    // Down 10% of the baseline to 6% below it, then flat.
    let stalled: Vec<(f64, f64)> = (0..40)
        .map(|e| {
            let val = ln10 * (0.94 + 0.1 * (-f64::from(e) / 3.0).exp());
            (val, val)
        })
        .collect();
    let a = ten_classes(&stalled);
    assert_eq!(a.verdict, Verdict::Plateaued, "{}", a.reason);
    // Flat from the first epoch at 6% below the baseline: nothing learned.
    let never: Vec<(f64, f64)> = (0..10).map(|_| (ln10 * 0.94, ln10 * 0.94)).collect();
    let a = ten_classes(&never);
    assert_eq!(a.verdict, Verdict::NotLearning, "{}", a.reason);
}

/// A curve that rose after its best and is falling again at the end (a spike it recovers from,
/// or a rate dropped by its schedule) has not risen in a sustained way: not overfitting.
#[test]
fn a_curve_falling_again_at_the_end_is_not_overfitting() {
    let mut losses: Vec<(f64, f64)> = (0..8)
        .map(|e| (0.5 * 0.6f64.powi(e), 0.5 * 0.7f64.powi(e)))
        .collect();
    let best = losses[7].1;
    // A jump to 1.6× the best, then a smooth decline that ends 25% above it.
    for e in 0..12 {
        let val = best * (1.6 - 0.03 * f64::from(e));
        losses.push((0.003 * 0.9f64.powi(e), val));
    }
    let (record, epochs) = binary(&losses);
    let a = analyse_default(&record, &epochs);
    assert_ne!(a.verdict, Verdict::Overfitting, "{}", a.reason);
}

/// Epochs as a loop that validates only when `validated(i)` logs them.
fn validated_only(
    epochs: Vec<EpochMetrics>,
    validated: impl Fn(usize) -> bool,
) -> Vec<EpochMetrics> {
    epochs
        .into_iter()
        .enumerate()
        .map(|(i, e)| {
            if validated(i) {
                e
            } else {
                EpochMetrics {
                    val_loss: f64::NAN,
                    val_metric: f64::NAN,
                    no_validation: true,
                    ..e
                }
            }
        })
        .collect()
}

#[test]
fn a_run_without_validation_is_judged_on_its_training_loss_and_says_so() {
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
    // The validation losses above overfit; without them nothing can say so.
    let epochs = validated_only(curve(&losses), |_| false);
    let a = analyse_default(&finished(), &epochs);
    assert_ne!(a.verdict.label(), "overfitting", "{}", a.reason);
    assert!(
        a.reason.starts_with("no validation loss was logged, so this judges the training loss alone, which cannot show overfitting"),
        "{}",
        a.reason
    );
    assert!(
        a.reason
            .contains("training loss 1.000 at epoch 1 → 0.06000 at epoch 10"),
        "{}",
        a.reason
    );
    assert!(
        !a.has_best(),
        "a run without validation has no best validation loss to rank by"
    );
    assert!(a.best_val_loss.is_nan() && a.gap_final.is_nan() && a.final_val_loss.is_nan());
    assert_eq!(a.final_train_loss, 0.06);
    assert_eq!(a.epochs, 10);

    // A training loss that becomes NaN still reports divergence.
    let mut diverging = epochs.clone();
    diverging[9].train_loss = f64::NAN;
    let a = analyse_default(&finished(), &diverging);
    assert_eq!(a.verdict.label(), "diverged", "{}", a.reason);
}

#[test]
fn a_run_validated_every_other_epoch_is_judged_on_those_epochs() {
    let losses = [
        (1.0, 1.0),
        (0.8, 0.8),
        (0.6, 0.6),
        (0.5, 0.5),
        (0.4, 0.45),
        (0.3, 0.4),
        (0.25, 0.41),
        (0.2, 0.42),
        (0.17, 0.44),
        (0.15, 0.45),
        (0.12, 0.46),
        (0.1, 0.47),
        (0.08, 0.49),
        (0.06, 0.5),
    ];
    let epochs = validated_only(curve(&losses), |i| i % 2 == 1);
    let a = analyse_default(&finished(), &epochs);
    assert!(
        a.reason
            .starts_with("judged on the 7 of 14 epochs that were validated: "),
        "{}",
        a.reason
    );
    assert_eq!(a.verdict.label(), "overfitting", "{}", a.reason);
    assert_eq!(a.best_epoch, 6);
    assert_eq!(a.epochs, 7);
}

/// The epochs a chart marks: where an overfitting run's validation loss left its best for good,
/// and where a loss bounced.
#[test]
fn key_epochs_mark_where_overfitting_began_and_the_bounces() {
    let mut overfit: Vec<(f64, f64)> = (0..6)
        .map(|e| (1.0 / f64::from(e + 1), 1.0 / f64::from(e + 1) + 0.05))
        .collect();
    overfit.extend((0..8).map(|e| (0.15 - 0.01 * f64::from(e), 0.25 + 0.05 * f64::from(e))));
    let a = analyse_default(&finished(), &curve(&overfit));
    assert_eq!(a.verdict, Verdict::Overfitting, "{}", a.reason);
    let from = a.key_epochs.overfitting_from.expect("where it began");
    assert!(from > a.best_epoch, "{from} after {}", a.best_epoch);
    assert!(from <= 10, "{from}");

    let losses = steady(20);
    let a = analyse_default(&finished(), &curve(&losses));
    assert_eq!(
        a.key_epochs,
        crate::analysis::KeyEpochs::default(),
        "{}",
        a.reason
    );

    let bounced: Vec<(f64, f64)> = (0..20)
        .map(|e| match e % 4 {
            0 => (0.70, 0.693),
            1 => (1.2, 1.6),
            2 => (0.80, 0.74),
            _ => (1.4, 1.1),
        })
        .collect();
    let a = analyse_default(&finished(), &curve(&bounced));
    assert!(a.key_epochs.bounces.len() >= 4, "{:?}", a.key_epochs);
    assert!(
        a.key_epochs.bounces.iter().all(|e| e % 2 == 0),
        "{:?}",
        a.key_epochs
    );
    assert_eq!(a.key_epochs.overfitting_from, None);
}
