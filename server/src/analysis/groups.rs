//! Per layer group: is its learning rate too high, too low, or about right?
//!
//! The yardstick is the rule of thumb that one optimizer step should move a layer's weights by
//! about 1e-3 of their norm. The daemon records the update ratio over a whole epoch,
//! ‖w_end − w_start‖ / ‖w_start‖, so it is turned into a per-step figure by dividing by the
//! epoch's steps. That assumes the steps of an epoch add up in one direction; where they partly
//! cancel, the per-step figure comes out lower than each step's own move (by up to √steps). It
//! measures what actually stuck, and the thresholds (1e-4 and 3e-2 by default) sit around 1e-3 to
//! absorb the difference — wider on the high side, where early steps read near their full size.
//!
//! A group is judged on the first [`DIAGNOSIS_WINDOW_EPOCHS`] epochs it trained: early training
//! is where the rate matters most, and a converged model's steps shrink whatever the rate, so the
//! median over a whole run would tell every long run to raise its rates. The same run stopped
//! at 8 or at 20 epochs gets the same diagnosis. A blow-up counts in any epoch.

use super::text::{rate, ratio, rounded_rate};
use super::thresholds::{Thresholds, BLOWUP_EPOCH_RATIO, UPDATE_RATIO_TARGET};

/// A group's typical update ratio is the median over this many of the first epochs it trained.
pub const DIAGNOSIS_WINDOW_EPOCHS: usize = 5;
use super::GroupDiagnosis;
use crate::domain::{groups_in_order, Diagnosis, EpochMetrics, RunRecord};

/// One group's judgement, with what it was judged on.
#[derive(Clone, Debug)]
pub struct GroupJudgement {
    pub name: String,
    pub diagnosis: Diagnosis,
    /// Median per-step ratio over the epochs the group trained (0 when it never did).
    pub typical: f64,
    /// Largest per-step ratio, and its epoch.
    pub peak: f64,
    pub peak_epoch: u32,
    /// The group's base rate from the run's rate table (its largest parameter's), 0 if unknown.
    pub lr: f64,
    pub advice: String,
}

impl GroupJudgement {
    pub fn diagnosis(&self) -> GroupDiagnosis {
        GroupDiagnosis {
            name: self.name.clone(),
            diagnosis: self.diagnosis,
            update_ratio: self.typical,
            advice: self.advice.clone(),
        }
    }
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    match n {
        0 => 0.0,
        _ if n % 2 == 1 => values[n / 2],
        _ => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

/// The rate that would bring `typical` to the rule of thumb (rates scale update ratios about
/// linearly, for SGD and Adam alike).
fn suggested_rate(lr: f64, typical: f64) -> Option<f64> {
    (lr > 0.0 && typical > 0.0 && typical.is_finite()).then(|| lr * UPDATE_RATIO_TARGET / typical)
}

fn advice(j: &GroupJudgement, thresholds: &Thresholds) -> String {
    let target = ratio(UPDATE_RATIO_TARGET);
    let from_to = |verb: &str| match suggested_rate(j.lr, j.typical) {
        Some(to) => format!(
            "{verb} its rate, e.g. from {} to {}",
            rate(j.lr),
            rounded_rate(to)
        ),
        None => format!("{verb} its rate"),
    };
    match j.diagnosis {
        Diagnosis::Frozen => "frozen in every epoch analysed: nothing to judge".into(),
        Diagnosis::TooHigh if j.typical > thresholds.update_ratio_high => format!(
            "moves {} of its weight norm per step (rule of thumb ~{target}): {}",
            ratio(j.typical),
            from_to("lower")
        ),
        Diagnosis::TooHigh => format!(
            "blew up: moved {} of its weight norm per step in epoch {} (rule of thumb ~{target}): lower its rate{} or warm it up (--schedule warmup:STEPS)",
            ratio(j.peak),
            j.peak_epoch,
            if j.lr > 0.0 { format!(" from {}", rate(j.lr)) } else { String::new() },
        ),
        Diagnosis::TooLow => format!(
            "moves only {} of its weight norm per step (rule of thumb ~{target}): {}",
            ratio(j.typical),
            from_to("raise")
        ),
        Diagnosis::Ok => format!(
            "moves {} of its weight norm per step early in training, within the {}–{} band around the ~{target} rule of thumb: keep its rate",
            ratio(j.typical),
            ratio(thresholds.update_ratio_low),
            ratio(thresholds.update_ratio_high)
        ),
    }
}

/// Judges every group the epochs mention, in the model's order. No epochs, no judgement.
pub fn judge_groups(
    run: &RunRecord,
    epochs: &[EpochMetrics],
    thresholds: &Thresholds,
) -> Vec<GroupJudgement> {
    let names = groups_in_order(epochs.iter().flat_map(|e| &e.groups), |g| &g.name);
    names
        .into_iter()
        .map(|(name, _)| {
            let name = name.as_str();
            // Per-step ratios of the epochs this group trained in; a non-finite one is a blow-up.
            let mut per_step = Vec::new();
            let (mut peak, mut peak_epoch) = (0.0f64, 0);
            let mut blew_up = false;
            for record in epochs {
                let Some(stats) = record.groups.iter().find(|g| g.name == name) else {
                    continue;
                };
                if stats.frozen {
                    continue;
                }
                let epoch_ratio = if stats.update_ratio.is_nan() {
                    f64::INFINITY
                } else {
                    stats.update_ratio
                };
                let value = epoch_ratio / run.facts.steps();
                if value > peak || peak_epoch == 0 {
                    (peak, peak_epoch) = (value, record.epoch);
                }
                blew_up |= epoch_ratio > BLOWUP_EPOCH_RATIO && value > thresholds.update_ratio_high;
                if per_step.len() < DIAGNOSIS_WINDOW_EPOCHS {
                    per_step.push(value);
                }
            }
            let judged = per_step.len();
            let typical = median(&mut per_step);
            let diagnosis = if judged == 0 {
                Diagnosis::Frozen
            } else if typical > thresholds.update_ratio_high || blew_up {
                Diagnosis::TooHigh
            } else if typical < thresholds.update_ratio_low {
                Diagnosis::TooLow
            } else {
                Diagnosis::Ok
            };
            let mut judgement = GroupJudgement {
                name: name.to_string(),
                diagnosis,
                typical,
                peak,
                peak_epoch,
                lr: run.group_rate(name),
                advice: String::new(),
            };
            judgement.advice = advice(&judgement, thresholds);
            judgement
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{
        DataFacts, FrozenUntil, GroupStats, ParamInit, ParameterRate, RunId, TaskFacts,
    };

    /// 320 training rows in 10 steps of 32 per epoch.
    fn run() -> RunRecord {
        let param = |name: &str, shape: Vec<i64>, lr: f64| ParameterRate {
            name: name.into(),
            group: "layer0".into(),
            shape,
            lr,
            frozen: FrozenUntil::Never,
            init: ParamInit::Fresh,
        };
        RunRecord {
            parameters: vec![
                param("layer0.weight", vec![32, 2], 1e-3),
                param("layer0.bias", vec![32], 5e-3),
            ],
            facts: DataFacts {
                task: TaskFacts::Classification { classes: 2 },
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

    /// An epoch of 320 training rows (10 steps of 32) with one group.
    fn epoch(epoch: u32, update_ratio: f64, frozen: bool) -> EpochMetrics {
        EpochMetrics {
            epoch,
            samples_per_sec: 3200.0,
            duration_ms: 100.0,
            groups: vec![GroupStats {
                name: "layer0".into(),
                update_ratio,
                frozen,
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    fn judge(epochs: &[EpochMetrics]) -> GroupJudgement {
        judge_groups(&run(), epochs, &Thresholds::default()).remove(0)
    }

    #[test]
    fn ratios_are_per_step_by_the_recorded_steps_per_epoch() {
        let mut twice = run();
        twice.facts.steps_per_epoch = 20;
        let j = judge_groups(&twice, &[epoch(1, 1e-2, false)], &Thresholds::default()).remove(0);
        assert!((j.typical - 5e-4).abs() < 1e-15, "{}", j.typical);
        // Unknown steps count as one.
        twice.facts.steps_per_epoch = 0;
        let j = judge_groups(&twice, &[epoch(1, 1e-2, false)], &Thresholds::default()).remove(0);
        assert!((j.typical - 1e-2).abs() < 1e-15, "{}", j.typical);
    }

    #[test]
    fn ratios_are_judged_per_step_against_the_rule_of_thumb() {
        // 1e-2 per epoch over 10 steps: 1e-3 per step, the rule of thumb itself.
        let ok = judge(&[epoch(1, 1e-2, false), epoch(2, 1e-2, false)]);
        assert_eq!(ok.diagnosis, Diagnosis::Ok);
        assert!((ok.typical - 1e-3).abs() < 1e-12);
        assert!(ok.advice.contains("keep its rate"), "{}", ok.advice);

        let low = judge(&[epoch(1, 1e-6, false), epoch(2, 2e-6, false)]);
        assert_eq!(low.diagnosis, Diagnosis::TooLow);
        // The rate of the group's largest parameter (the weight), scaled to reach ~1e-3.
        assert_eq!(low.lr, 1e-3);
        assert!(
            low.advice.contains("raise its rate, e.g. from 1e-3 to 7"),
            "{}",
            low.advice
        );

        let high = judge(&[epoch(1, 0.5, false), epoch(2, 0.3, false)]);
        assert_eq!(high.diagnosis, Diagnosis::TooHigh);
        assert!(high.advice.contains("lower its rate"), "{}", high.advice);
    }

    #[test]
    fn a_blow_up_is_too_high_even_when_the_layer_died_afterwards() {
        let epochs = [
            epoch(1, 5.0, false),
            epoch(2, 1e-4, false),
            epoch(3, 1e-6, false),
            epoch(4, 1e-8, false),
        ];
        let j = judge(&epochs);
        assert_eq!(j.diagnosis, Diagnosis::TooHigh);
        assert_eq!(j.peak_epoch, 1);
        assert!(j.advice.contains("in epoch 1"), "{}", j.advice);
        let nan = judge(&[epoch(1, f64::NAN, false), epoch(2, 1e-2, false)]);
        assert_eq!(nan.diagnosis, Diagnosis::TooHigh);
        // A big first epoch that stays within the weights' own norm is a fast start, not a
        // blow-up (Adam's first steps move every weight by about the full rate).
        let fast_start = judge(&[
            epoch(1, 0.5, false),
            epoch(2, 1e-2, false),
            epoch(3, 1e-2, false),
        ]);
        assert_eq!(fast_start.diagnosis, Diagnosis::Ok);
    }

    #[test]
    fn frozen_epochs_are_left_out_and_always_frozen_is_frozen() {
        let j = judge(&[epoch(1, 0.0, true), epoch(2, 0.0, true)]);
        assert_eq!(j.diagnosis, Diagnosis::Frozen);
        // Frozen until epoch 3, then training at the rule of thumb: ok, not dragged down by zeros.
        let j = judge(&[
            epoch(1, 0.0, true),
            epoch(2, 0.0, true),
            epoch(3, 1e-2, false),
        ]);
        assert_eq!(j.diagnosis, Diagnosis::Ok);
        assert!(judge_groups(&run(), &[], &Thresholds::default()).is_empty());
    }

    /// Issue 10's case: as a model converges its steps shrink, so a median over the whole run
    /// told every long run to raise its rates. The first epochs decide: the same run stopped at
    /// 8 or at 20 epochs gets the same diagnosis.
    #[test]
    fn a_diagnosis_does_not_depend_on_how_long_the_run_went_on() {
        // 5e-3 per step at first, shrinking tenfold every 5 epochs as the run converges.
        let epochs: Vec<EpochMetrics> = (1..=20)
            .map(|e| epoch(e, 5e-2 * 10f64.powf(-f64::from(e - 1) / 5.0), false))
            .collect();
        let short = judge(&epochs[..8]);
        let long = judge(&epochs);
        assert_eq!(short.diagnosis, Diagnosis::Ok);
        assert_eq!(long.diagnosis, short.diagnosis);
        assert_eq!(long.typical, short.typical);
        // The whole run's median would have said too-low.
        assert!(long.typical > 1e-3, "{}", long.typical);
    }
}
