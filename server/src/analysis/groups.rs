//! Per layer group: is its learning rate too high, too low, or about right?
//!
//! The yardstick is the rule of thumb that one optimizer step should move a layer's weights by
//! about 1e-3 of their norm. The daemon records the update ratio over a whole epoch,
//! ‖w_end − w_start‖ / ‖w_start‖, so it is turned into a per-step figure by dividing by the
//! epoch's steps. That assumes the steps of an epoch add up in one direction; where they partly
//! cancel, the per-step figure comes out lower than each step's own move (by up to √steps). It
//! measures what actually stuck, and the thresholds sit a decade either side of 1e-3 to absorb
//! the difference.

use strata_proto::{Diagnosis, EpochRecord, GroupDiagnosis, Run};

use super::text::{rate, ratio, rounded_rate};
use super::thresholds::{Thresholds, BLOWUP_EPOCH_RATIO, UPDATE_RATIO_TARGET};

/// Default batch size, for a config stored without one (the daemon fills it in, so rarely).
const DEFAULT_BATCH_SIZE: u32 = 32;

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
    pub fn to_proto(&self) -> GroupDiagnosis {
        GroupDiagnosis {
            name: self.name.clone(),
            diagnosis: self.diagnosis.label().to_string(),
            update_ratio: self.typical,
            advice: self.advice.clone(),
        }
    }
}

/// Training rows of one epoch: from the record's throughput (exact for every dataset kind), or
/// from the config's sample count and validation split.
fn train_rows(run: &Run, record: &EpochRecord) -> Option<f64> {
    let from_record = record.samples_per_sec * record.duration_ms / 1000.0;
    if from_record.is_finite() && from_record >= 1.0 {
        return Some(from_record.round());
    }
    let config = run.config.as_ref()?;
    let samples = f64::from(config.samples?);
    let val = (samples * config.val_fraction?)
        .round()
        .clamp(1.0, (samples - 1.0).max(1.0));
    Some(samples - val).filter(|rows| *rows >= 1.0)
}

/// Optimizer steps in one epoch (1 when the run's size is unknown).
pub fn steps_per_epoch(run: &Run, record: &EpochRecord) -> f64 {
    let Some(rows) = train_rows(run, record) else {
        return 1.0;
    };
    let batch = run
        .config
        .as_ref()
        .and_then(|c| c.batch_size)
        .unwrap_or(DEFAULT_BATCH_SIZE)
        .max(1);
    (rows / f64::from(batch).min(rows)).ceil().max(1.0)
}

/// The group's base rate as the rate table shows it: its largest parameter's.
fn base_rate(run: &Run, group: &str) -> f64 {
    run.parameters
        .iter()
        .filter(|p| p.group == group)
        .max_by_key(|p| p.shape.iter().product::<i64>())
        .map_or(0.0, |p| p.lr)
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
            "moves {} of its weight norm per step, in range of the ~{target} rule of thumb: keep its rate",
            ratio(j.typical)
        ),
    }
}

/// Judges every group the epochs mention, in the model's order. No epochs, no judgement.
pub fn judge_groups(
    run: &Run,
    epochs: &[EpochRecord],
    thresholds: &Thresholds,
) -> Vec<GroupJudgement> {
    let mut names: Vec<&str> = Vec::new();
    for record in epochs {
        for group in &record.groups {
            if !names.contains(&group.name.as_str()) {
                names.push(&group.name);
            }
        }
    }
    names
        .into_iter()
        .map(|name| {
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
                let value = epoch_ratio / steps_per_epoch(run, record);
                if value > peak || peak_epoch == 0 {
                    (peak, peak_epoch) = (value, record.epoch);
                }
                blew_up |= epoch_ratio > BLOWUP_EPOCH_RATIO && value > thresholds.update_ratio_high;
                per_step.push(value);
            }
            let typical = median(&mut per_step);
            let diagnosis = if per_step.is_empty() {
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
                lr: base_rate(run, name),
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
    use strata_proto::{GroupEpochStats, ParameterRate, RunConfig};

    fn run() -> Run {
        Run {
            config: Some(RunConfig {
                samples: Some(400),
                val_fraction: Some(0.2),
                batch_size: Some(32),
                ..Default::default()
            }),
            parameters: vec![
                ParameterRate {
                    name: "layer0.weight".into(),
                    group: "layer0".into(),
                    shape: vec![32, 2],
                    lr: 1e-3,
                    ..Default::default()
                },
                ParameterRate {
                    name: "layer0.bias".into(),
                    group: "layer0".into(),
                    shape: vec![32],
                    lr: 5e-3,
                    ..Default::default()
                },
            ],
            ..Default::default()
        }
    }

    /// An epoch of 320 training rows (10 steps of 32) with one group.
    fn epoch(epoch: u32, update_ratio: f64, frozen: bool) -> EpochRecord {
        EpochRecord {
            epoch,
            samples_per_sec: 3200.0,
            duration_ms: 100.0,
            groups: vec![GroupEpochStats {
                name: "layer0".into(),
                update_ratio,
                frozen,
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    fn judge(epochs: &[EpochRecord]) -> GroupJudgement {
        judge_groups(&run(), epochs, &Thresholds::default()).remove(0)
    }

    #[test]
    fn steps_come_from_the_record_or_the_config() {
        assert_eq!(steps_per_epoch(&run(), &epoch(1, 0.0, false)), 10.0);
        let unknown_speed = EpochRecord::default();
        // 400 samples, 80 held out: 320 rows, 10 batches of 32.
        assert_eq!(steps_per_epoch(&run(), &unknown_speed), 10.0);
        let odd = EpochRecord {
            samples_per_sec: 330.000_000_1,
            duration_ms: 1000.0,
            ..Default::default()
        };
        assert_eq!(steps_per_epoch(&run(), &odd), 11.0, "330 rows: 11 batches");
        assert_eq!(steps_per_epoch(&Run::default(), &unknown_speed), 1.0);
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
}
