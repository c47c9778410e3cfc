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
//! at 8 or at 20 epochs gets the same diagnosis.
//!
//! Large updates alone do not make a rate too high: a head growing from its small initial weights
//! moves by more than their norm in its first epoch at any textbook rate. A group is `too-high`
//! when its updates are far outside the band ([`FAR_OUTSIDE_BAND`] × `update_ratio_high`), or when
//! they are above it (typically, or in a blow-up: an epoch moving it by more than its own norm)
//! *and* either the curves show the harm ([`super::harm`]) or its rate stands far above every other
//! group's ([`RATE_STANDS_OUT`] ×). When several groups are too high and one's rate stands that
//! far above the others', it alone is named: the rest were thrown about by it. A group is
//! `too-low` when it moves less than `update_ratio_low` per step and its rate is what holds it
//! back: lower than that of a group that moves well, or no group moves well, or its steps do not
//! follow its gradient (Adam's do not: its rate alone sets how far a step goes); or, inside the
//! band, when its rate is [`RATE_STANDS_OUT`]× below every other group's and its updates
//! [`UPDATES_STAND_OUT`]× below theirs. A group whose
//! SGD-like steps follow a small gradient, at the rate that moves another group well, is held
//! back by its gradient — vanishing, when it is far smaller than the other's (dead or saturated
//! units): `ok` for its rate, and its advice says so.

use super::curves::median;
use super::text::{rate, ratio, rounded_rate};
use super::thresholds::{Thresholds, BLOWUP_EPOCH_RATIO, UPDATE_RATIO_TARGET};

/// A group's typical update ratio is the median over this many of the first epochs it trained.
pub const DIAGNOSIS_WINDOW_EPOCHS: usize = 5;
/// Updates this many times `update_ratio_high` are too high whatever the curves show.
pub const FAR_OUTSIDE_BAND: f64 = 10.0;
/// A group whose rate is [`RATE_STANDS_OUT`] times below every other group's and whose updates
/// are this many times smaller than every other group's is `too-low` even inside the band (which
/// spans 300×): its rate, not its layer, sets it apart.
pub const UPDATES_STAND_OUT: f64 = 10.0;
/// A group whose update per step is at most this many times its rate × its gradient (relative to
/// its weights) moves as its gradient pushes it — plain SGD (× 1), or with momentum (up to × 10
/// at 0.9) — so a small gradient, not its rate, can keep it still. Adam's normalized steps read
/// far above this.
pub const FOLLOWS_GRADIENT_GAIN: f64 = 30.0;
/// A relative gradient this many times smaller than that of a group moving well is vanishing.
pub const VANISHING_GRADIENT: f64 = 30.0;
/// A group's rate this many times every other group's (or below all of them by this factor)
/// stands out. Discriminative fine-tuning sets a head 3–10× its body on purpose; 30× is beyond
/// what anyone chooses without meaning a group to be frozen or sped up on its own.
pub const RATE_STANDS_OUT: f64 = 30.0;

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
    /// Whether an epoch moved it by more than its own norm (above `update_ratio_high` per step).
    pub blew_up: bool,
    /// Median gradient norm over weight norm in the epochs judged (None when not recorded).
    pub relative_gradient: Option<f64>,
    /// The group's base rate from the run's rate table (its largest parameter's), else the rate
    /// it trained at; 0 if unknown.
    pub lr: f64,
    /// The rate it trained at over the epochs judged (its schedule's): what groups are compared
    /// by; 0 if unknown.
    pub trained_at: f64,
    /// What the advice compares it with: the other groups' rates where its own stands out, or
    /// the group that moves well at its rate (for vanishing gradients).
    pub context: Context,
    pub advice: String,
}

/// Why a group's diagnosis is what it is, beyond its own numbers.
#[derive(Clone, Debug, Default)]
pub enum Context {
    #[default]
    Own,
    /// Its rate stands far above (or below) the other groups': their rate.
    RateApart { others: f64 },
    /// Its updates are large because `group`'s rate, far above its own, threw the network about.
    ThrownBy { group: String },
    /// It hardly moves, at the rate that moves `other` well, because its gradient is small (its
    /// updates follow its gradient); `vanishing` when the gradient is [`VANISHING_GRADIENT`] times
    /// smaller than `other`'s, or zero.
    SmallGradient {
        other: String,
        other_typical: f64,
        other_relative_gradient: Option<f64>,
        vanishing: bool,
    },
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

/// The rate that would bring `typical` to the rule of thumb (rates scale update ratios about
/// linearly, for SGD and Adam alike).
fn suggested_rate(lr: f64, typical: f64) -> Option<f64> {
    (lr > 0.0 && typical > 0.0 && typical.is_finite()).then(|| lr * UPDATE_RATIO_TARGET / typical)
}

/// How to warm a rate up, in the run's terms (a flag for a run Strata trains).
fn warm_up(run: &RunRecord) -> &'static str {
    if run.is_external() {
        "warm it up over the first steps"
    } else {
        "warm it up (--schedule warmup:STEPS)"
    }
}

fn advice(j: &GroupJudgement, run: &RunRecord, thresholds: &Thresholds) -> String {
    let target = ratio(UPDATE_RATIO_TARGET);
    let from_to = |verb: &str| match suggested_rate(j.lr, j.typical) {
        Some(to) => format!(
            "{verb} its rate, e.g. from {} to {}",
            rate(j.lr),
            rounded_rate(to)
        ),
        None => format!("{verb} its rate"),
    };
    let warm = if super::advice::warms_up(run) {
        String::new()
    } else {
        format!(" or {}", warm_up(run))
    };
    match (j.diagnosis, &j.context) {
        (Diagnosis::Frozen, _) => "frozen in every epoch analysed: nothing to judge".into(),
        (Diagnosis::TooHigh, Context::RateApart { others }) => format!(
            "its rate, {}, is {}× the other groups' ({}), and it moved {} of its weight norm per step in epoch {}: bring its rate nearer theirs",
            rate(j.trained_at),
            rounded_rate(j.trained_at / others),
            rate(*others),
            ratio(j.peak),
            j.peak_epoch
        ),
        (Diagnosis::TooHigh, _) if j.typical > thresholds.update_ratio_high => format!(
            "moves {} of its weight norm per step (rule of thumb ~{target}): {}{warm}",
            ratio(j.typical),
            from_to("lower")
        ),
        (Diagnosis::TooHigh, _) => format!(
            "blew up: moved {} of its weight norm per step in epoch {} (rule of thumb ~{target}): lower its rate{}{warm}",
            ratio(j.peak),
            j.peak_epoch,
            if j.lr > 0.0 { format!(" from {}", rate(j.lr)) } else { String::new() },
        ),
        (Diagnosis::TooLow, Context::RateApart { others }) => format!(
            "moves only {} of its weight norm per step (rule of thumb ~{target}) at a rate {}× below the other groups' ({}): {}",
            ratio(j.typical),
            rounded_rate(others / j.trained_at),
            rate(*others),
            from_to("raise")
        ),
        (Diagnosis::TooLow, _) => format!(
            "moves only {} of its weight norm per step (rule of thumb ~{target}): {}",
            ratio(j.typical),
            from_to("raise")
        ),
        (
            Diagnosis::Ok,
            Context::SmallGradient {
                other,
                other_typical,
                other_relative_gradient,
                vanishing,
            },
        ) => {
            let gradients = match (j.relative_gradient, other_relative_gradient) {
                (Some(own), Some(theirs)) => format!(
                    " (gradient {} of its weight norm, {other}'s {})",
                    ratio(own),
                    ratio(*theirs)
                ),
                _ => String::new(),
            };
            let why = if *vanishing {
                "its gradients vanish — dead or saturated units (check the initialization and activations), not its rate"
            } else {
                "its smaller gradients, not its rate, hold it back"
            };
            format!(
                "moves only {} of its weight norm per step at a rate that moves {other} {}{gradients}: {why}",
                ratio(j.typical),
                ratio(*other_typical)
            )
        }
        (Diagnosis::Ok, Context::ThrownBy { group }) => format!(
            "moved {} of its weight norm per step in epoch {}, thrown about by {group}'s rate: keep its own",
            ratio(j.peak),
            j.peak_epoch
        ),
        (Diagnosis::Ok, _) if j.typical > thresholds.update_ratio_high || j.blew_up => format!(
            "moved up to {} of its weight norm per step (epoch {}), above the ~{target} rule of thumb, but the curves show no harm from it: keep its rate",
            ratio(j.peak),
            j.peak_epoch
        ),
        (Diagnosis::Ok, _) => format!(
            "moves {} of its weight norm per step early in training, within the {}–{} band around the ~{target} rule of thumb: keep its rate",
            ratio(j.typical),
            ratio(thresholds.update_ratio_low),
            ratio(thresholds.update_ratio_high)
        ),
    }
}

/// A group's numbers over the epochs it trained, before it is judged.
struct Measured {
    name: String,
    typical: f64,
    peak: f64,
    peak_epoch: u32,
    blew_up: bool,
    relative_gradient: Option<f64>,
    judged: usize,
    /// The base rate, as the rate table gives it (else the rate it trained at): what advice names.
    lr: f64,
    /// The rate it trained at over the epochs judged: what groups are compared by (0 unknown).
    trained_at: f64,
}

impl Measured {
    /// Whether its updates follow its gradient (an SGD-like step, at most
    /// [`FOLLOWS_GRADIENT_GAIN`] × rate × relative gradient), or there was no gradient at all: then
    /// a small gradient, not the rate, is what keeps it still.
    fn held_by_gradient(&self) -> bool {
        match self.relative_gradient {
            Some(0.0) => true,
            Some(g) if self.trained_at > 0.0 => {
                self.typical <= FOLLOWS_GRADIENT_GAIN * self.trained_at * g
            }
            _ => false,
        }
    }
}

fn measure(run: &RunRecord, epochs: &[EpochMetrics], name: &str, t: &Thresholds) -> Measured {
    // Per-step ratios of the epochs this group trained in; a non-finite one is a blow-up.
    let mut per_step = Vec::new();
    let mut relative = Vec::new();
    let mut rates = Vec::new();
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
        blew_up |= epoch_ratio > BLOWUP_EPOCH_RATIO && value > t.update_ratio_high;
        if per_step.len() < DIAGNOSIS_WINDOW_EPOCHS {
            per_step.push(value);
            if stats.weight_norm > 0.0 && stats.grad_norm.is_finite() {
                relative.push(stats.grad_norm / stats.weight_norm);
            }
            if stats.lr > 0.0 && stats.lr.is_finite() {
                rates.push(stats.lr);
            }
        }
    }
    // The rate it trained at in those epochs (its schedule's, 0 while frozen); the rate table's
    // when the epochs do not say. A group frozen at first is logged at rate 0 until it thaws.
    let trained_at = (!rates.is_empty()).then(|| median(&mut rates));
    let table = run.group_rate(name);
    Measured {
        name: name.to_string(),
        judged: per_step.len(),
        typical: median(&mut per_step),
        relative_gradient: (!relative.is_empty()).then(|| median(&mut relative)),
        peak,
        peak_epoch,
        blew_up,
        lr: if table > 0.0 {
            table
        } else {
            trained_at.unwrap_or(0.0)
        },
        trained_at: trained_at.unwrap_or(table),
    }
}

/// Judges every group the epochs mention, in the model's order; `harm`: whether the curves show
/// a rate too high. No epochs, no judgement.
pub fn judge_groups(
    run: &RunRecord,
    epochs: &[EpochMetrics],
    thresholds: &Thresholds,
    harm: bool,
) -> Vec<GroupJudgement> {
    let names = groups_in_order(epochs.iter().flat_map(|e| &e.groups), |g| &g.name);
    let measured: Vec<Measured> = names
        .iter()
        .map(|(name, _)| measure(run, epochs, name, thresholds))
        .collect();
    let mut judged: Vec<GroupJudgement> = measured
        .iter()
        .enumerate()
        .map(|(i, m)| judge(m, &measured, i, thresholds, harm))
        .collect();
    name_only_the_outlier(&mut judged);
    for j in &mut judged {
        j.advice = advice(j, run, thresholds);
    }
    judged
}

/// One group against the others (`all[me]` is itself).
fn judge(m: &Measured, all: &[Measured], me: usize, t: &Thresholds, harm: bool) -> GroupJudgement {
    let others = || {
        all.iter()
            .enumerate()
            .filter(move |(i, o)| *i != me && o.judged > 0)
            .map(|(_, o)| o)
    };
    // Rates are compared as the groups trained (a group frozen at first is logged at rate 0):
    // only groups whose rate is known count.
    let known = |o: &&Measured| o.trained_at > 0.0;
    let own = m.trained_at;
    let highest_other = others()
        .filter(known)
        .map(|o| o.trained_at)
        .fold(0.0, f64::max);
    let rate_apart_high =
        own > 0.0 && highest_other > 0.0 && own >= RATE_STANDS_OUT * highest_other;
    let moving_well = || others().filter(|o| o.typical >= t.update_ratio_low);
    let slowest_moving_well = moving_well()
        .filter(known)
        .map(|o| o.trained_at)
        .fold(f64::INFINITY, f64::min);
    let lowest_other = others()
        .filter(known)
        .map(|o| o.trained_at)
        .fold(f64::INFINITY, f64::min);
    let rate_apart_low =
        own > 0.0 && lowest_other.is_finite() && own * RATE_STANDS_OUT <= lowest_other;
    let least_other_typical = others().map(|o| o.typical).fold(f64::INFINITY, f64::min);
    let high = m.typical > t.update_ratio_high || m.blew_up;
    let mut context = Context::Own;
    let diagnosis = if m.judged == 0 {
        Diagnosis::Frozen
    } else if m.typical > FAR_OUTSIDE_BAND * t.update_ratio_high || (high && harm) {
        Diagnosis::TooHigh
    } else if high && rate_apart_high {
        context = Context::RateApart {
            others: highest_other,
        };
        Diagnosis::TooHigh
    } else if m.typical < t.update_ratio_low && (own < slowest_moving_well || !m.held_by_gradient())
        || rate_apart_low && m.typical * UPDATES_STAND_OUT < least_other_typical
    {
        if rate_apart_low {
            context = Context::RateApart {
                others: lowest_other,
            };
        }
        Diagnosis::TooLow
    } else {
        if m.typical < t.update_ratio_low {
            if let Some(other) = moving_well().max_by(|a, b| a.typical.total_cmp(&b.typical)) {
                let vanishing = match (m.relative_gradient, other.relative_gradient) {
                    (Some(0.0), _) => true,
                    (Some(own), Some(theirs)) => own * VANISHING_GRADIENT < theirs,
                    _ => false,
                };
                context = Context::SmallGradient {
                    other: other.name.clone(),
                    other_typical: other.typical,
                    other_relative_gradient: other.relative_gradient,
                    vanishing,
                };
            }
        }
        Diagnosis::Ok
    };
    GroupJudgement {
        name: m.name.clone(),
        diagnosis,
        typical: m.typical,
        peak: m.peak,
        peak_epoch: m.peak_epoch,
        blew_up: m.blew_up,
        relative_gradient: m.relative_gradient,
        lr: m.lr,
        trained_at: m.trained_at,
        context,
        advice: String::new(),
    }
}

/// When several groups are too high and some of them have a rate [`RATE_STANDS_OUT`] times every
/// other too-high group's, only those are: the others were thrown about by them.
fn name_only_the_outlier(judged: &mut [GroupJudgement]) {
    let high: Vec<(usize, f64)> = judged
        .iter()
        .enumerate()
        .filter(|(_, j)| j.diagnosis == Diagnosis::TooHigh)
        .map(|(i, j)| (i, j.trained_at))
        .collect();
    if high.len() < 2 {
        return;
    }
    let stands_out = |i: usize, lr: f64| {
        high.iter()
            .all(|&(k, other)| k == i || lr >= RATE_STANDS_OUT * other)
    };
    let outliers: Vec<usize> = high
        .iter()
        .filter(|&&(i, lr)| stands_out(i, lr))
        .map(|&(i, _)| i)
        .collect();
    if outliers.is_empty() {
        return;
    }
    let others_rate = high
        .iter()
        .filter(|(i, _)| !outliers.contains(i))
        .map(|&(_, lr)| lr)
        .fold(0.0, f64::max);
    let outlier = judged[outliers[0]].name.clone();
    for (i, _) in high {
        if outliers.contains(&i) {
            judged[i].context = Context::RateApart {
                others: others_rate,
            };
        } else {
            judged[i].diagnosis = Diagnosis::Ok;
            judged[i].context = Context::ThrownBy {
                group: outlier.clone(),
            };
        }
    }
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

    /// The one group's judgement, on curves that show no harm.
    fn judge(epochs: &[EpochMetrics]) -> GroupJudgement {
        judge_groups(&run(), epochs, &Thresholds::default(), false).remove(0)
    }

    /// The one group's judgement, on curves that show the harm of a rate too high.
    fn judge_harmed(epochs: &[EpochMetrics]) -> GroupJudgement {
        judge_groups(&run(), epochs, &Thresholds::default(), true).remove(0)
    }

    #[test]
    fn ratios_are_per_step_by_the_recorded_steps_per_epoch() {
        let mut twice = run();
        twice.facts.steps_per_epoch = 20;
        let j = judge_groups(
            &twice,
            &[epoch(1, 1e-2, false)],
            &Thresholds::default(),
            false,
        )
        .remove(0);
        assert!((j.typical - 5e-4).abs() < 1e-15, "{}", j.typical);
        // Unknown steps count as one.
        twice.facts.steps_per_epoch = 0;
        let j = judge_groups(
            &twice,
            &[epoch(1, 1e-2, false)],
            &Thresholds::default(),
            false,
        )
        .remove(0);
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

        let high = judge_harmed(&[epoch(1, 0.5, false), epoch(2, 0.3, false)]);
        assert_eq!(high.diagnosis, Diagnosis::TooHigh);
        assert!(high.advice.contains("lower its rate"), "{}", high.advice);
        // The same updates on curves that show no harm: large, said so, not blamed.
        let unharmed = judge(&[epoch(1, 0.5, false), epoch(2, 0.3, false)]);
        assert_eq!(unharmed.diagnosis, Diagnosis::Ok);
        assert!(unharmed.advice.contains("no harm"), "{}", unharmed.advice);
        // Far outside the band, harm or not.
        let far = judge(&[epoch(1, 5.0, false), epoch(2, 4.0, false)]);
        assert_eq!(far.diagnosis, Diagnosis::TooHigh);
    }

    #[test]
    fn a_blow_up_is_too_high_even_when_the_layer_died_afterwards() {
        let epochs = [
            epoch(1, 5.0, false),
            epoch(2, 1e-4, false),
            epoch(3, 1e-6, false),
            epoch(4, 1e-8, false),
        ];
        let j = judge_harmed(&epochs);
        assert_eq!(j.diagnosis, Diagnosis::TooHigh);
        assert_eq!(j.peak_epoch, 1);
        assert!(j.advice.contains("in epoch 1"), "{}", j.advice);
        let nan = judge(&[epoch(1, f64::NAN, false), epoch(2, 1e-2, false)]);
        assert_eq!(nan.diagnosis, Diagnosis::TooHigh);
        // A big first epoch that stays within the weights' own norm is a fast start, not a
        // blow-up (Adam's first steps move every weight by about the full rate).
        let fast_start = judge_harmed(&[
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
        assert!(judge_groups(&run(), &[], &Thresholds::default(), false).is_empty());
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

    /// Two groups: `layer0` and `head`, each with its own base rate, update ratio per epoch and
    /// gradient norm (weights of norm 1), over `epochs` epochs.
    fn two_groups(
        rates: (f64, f64),
        ratios: (f64, f64),
        gradients: (f64, f64),
        epochs: u32,
        harm: bool,
    ) -> Vec<GroupJudgement> {
        let mut record = run();
        record.parameters = vec![
            ParameterRate {
                name: "layer0.weight".into(),
                group: "layer0".into(),
                shape: vec![32, 2],
                lr: rates.0,
                frozen: FrozenUntil::Never,
                init: ParamInit::Fresh,
            },
            ParameterRate {
                name: "head.weight".into(),
                group: "head".into(),
                shape: vec![2, 32],
                lr: rates.1,
                frozen: FrozenUntil::Never,
                init: ParamInit::Fresh,
            },
        ];
        let group = |name: &str, update_ratio: f64, grad_norm: f64| GroupStats {
            name: name.into(),
            update_ratio,
            grad_norm,
            weight_norm: 1.0,
            ..Default::default()
        };
        let epochs: Vec<EpochMetrics> = (1..=epochs)
            .map(|e| EpochMetrics {
                epoch: e,
                groups: vec![
                    group("layer0", ratios.0, gradients.0),
                    group("head", ratios.1, gradients.1),
                ],
                ..Default::default()
            })
            .collect();
        judge_groups(&record, &epochs, &Thresholds::default(), harm)
    }

    /// A layer that hardly moves at the rate that moves the head well has vanishing gradients
    /// (dead units): its rate is not what holds it back, and its advice says so.
    #[test]
    fn too_low_only_where_the_rate_holds_the_group_back() {
        // Same rate, 2e-5 per step against the head's 2e-3, gradients 1,000× smaller.
        let dead = two_groups((0.05, 0.05), (2e-4, 2e-2), (1e-4, 0.1), 5, false);
        assert_eq!(dead[0].diagnosis, Diagnosis::Ok);
        assert!(
            dead[0].advice.contains("gradients vanish"),
            "{}",
            dead[0].advice
        );
        assert!(!dead[0].advice.contains("raise"), "{}", dead[0].advice);
        // A rate 10,000× below the head's: too low, and said against the head's rate.
        let starved = two_groups((1e-7, 1e-3), (2e-5, 2e-2), (0.5, 0.1), 5, false);
        assert_eq!(starved[0].diagnosis, Diagnosis::TooLow);
        assert!(
            starved[0].advice.contains("below the other groups'"),
            "{}",
            starved[0].advice
        );
        // Every group barely moving: the rate.
        let all = two_groups((1e-5, 1e-5), (2e-5, 3e-5), (0.5, 0.5), 5, false);
        assert_eq!(all[0].diagnosis, Diagnosis::TooLow);
        assert_eq!(all[1].diagnosis, Diagnosis::TooLow);
    }

    /// Large updates are `too-high` on smooth curves only when the group's rate stands far above
    /// the others'; where several blow up, the one whose rate stands out is named alone.
    #[test]
    fn too_high_needs_harm_or_a_rate_standing_apart() {
        // The head moves 1.5× its norm in each epoch at the body's rate: growth, not harm.
        let growth = two_groups((1e-3, 1e-3), (2e-2, 1.5), (0.1, 0.1), 3, false);
        assert_eq!(growth[1].diagnosis, Diagnosis::Ok);
        // The same at 100× the body's rate: too high, said against the body's rate.
        let apart = two_groups((1e-3, 0.1), (2e-2, 1.5), (0.1, 0.1), 3, false);
        assert_eq!(apart[1].diagnosis, Diagnosis::TooHigh);
        assert!(
            apart[1].advice.contains("100× the other groups'"),
            "{}",
            apart[1].advice
        );
        // Both blow up on curves that show harm, the head at 80× the body's rate: only the head.
        let thrown = two_groups((0.05, 4.0), (1.5, 1.5), (0.1, 0.1), 3, true);
        assert_eq!(thrown[1].diagnosis, Diagnosis::TooHigh);
        assert_eq!(thrown[0].diagnosis, Diagnosis::Ok);
        assert!(
            thrown[0].advice.contains("thrown about by head"),
            "{}",
            thrown[0].advice
        );
        // Both blow up at one rate on harmed curves: both too high.
        let both = two_groups((0.5, 0.5), (1.5, 1.5), (0.1, 0.1), 3, true);
        assert_eq!(both[0].diagnosis, Diagnosis::TooHigh);
        assert_eq!(both[1].diagnosis, Diagnosis::TooHigh);
    }

    /// Inside the band, a group 30× below every other group's rate whose updates are 10× smaller
    /// than theirs is too low.
    #[test]
    fn a_rate_far_below_the_rest_is_too_low_inside_the_band() {
        // layer0 at 5e-6 under a head at 1e-3 (200×): 1.2e-4 a step against 1.2e-2.
        let apart = two_groups((5e-6, 1e-3), (1.2e-3, 0.12), (0.5, 0.3), 5, false);
        assert_eq!(apart[0].diagnosis, Diagnosis::TooLow, "{}", apart[0].advice);
        assert!(
            apart[0].advice.contains("200× below"),
            "{}",
            apart[0].advice
        );
        // At 10× (a discriminative fine-tune): inside the band, ok.
        let fine_tune = two_groups((1e-4, 1e-3), (1.2e-3, 0.12), (0.5, 0.3), 5, false);
        assert_eq!(
            fine_tune[0].diagnosis,
            Diagnosis::Ok,
            "{}",
            fine_tune[0].advice
        );
    }

    /// A group frozen at first is logged at rate 0 (an external run's first epoch gives its rate
    /// table): it is compared by the rate it trained at once thawed, never by 0.
    #[test]
    fn a_group_frozen_at_first_is_compared_by_the_rate_it_thawed_to() {
        let mut record = run();
        record.parameters[0].lr = 0.0;
        record.parameters[1].lr = 0.0;
        let stats = |name: &str, lr: f64, update_ratio: f64, frozen: bool| GroupStats {
            name: name.into(),
            lr,
            update_ratio,
            grad_norm: 0.3,
            weight_norm: 1.0,
            frozen,
        };
        let epochs: Vec<EpochMetrics> = (1..=6)
            .map(|e| EpochMetrics {
                epoch: e,
                groups: vec![
                    stats("layer0", if e < 3 { 0.0 } else { 1e-2 }, 5e-3, e < 3),
                    stats("head", 5e-2, 2e-2, false),
                ],
                ..Default::default()
            })
            .collect();
        let judged = judge_groups(&record, &epochs, &Thresholds::default(), false);
        assert_eq!(judged[0].diagnosis, Diagnosis::Ok, "{}", judged[0].advice);
        assert_eq!(judged[0].trained_at, 1e-2);
        assert!(!judged[0].advice.contains("NaN"), "{}", judged[0].advice);
        assert!(!judged[0].advice.contains("inf"), "{}", judged[0].advice);
    }
}
