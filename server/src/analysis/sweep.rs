//! A sweep's trials ranked by best validation loss, the effect of each swept setting, and a
//! recommendation in one sentence — the rules of `strata sweep show` (client/src/sweep/report.rs),
//! here for the dashboard's sweep page, over trials read from this daemon's store. The two say
//! the same sentence for the same trials; when sweeps become objects the daemon drives, the
//! CLI's copy should read this one.

use crate::domain::{RunId, RunStatus, Verdict};

/// One trial as the store has it, with the analysis of its run.
#[derive(Clone, Debug)]
pub struct TrialResult {
    /// 1 for the lowest best validation loss; trials without one last (set by [`report`]).
    pub rank: u32,
    pub trial: u32,
    pub run: RunId,
    /// Swept setting → value, in the sweep's order.
    pub settings: Vec<(String, String)>,
    /// NaN before the first epoch.
    pub best_val_loss: f64,
    pub best_epoch: u32,
    pub epochs: u32,
    pub verdict: Verdict,
    pub status: RunStatus,
    /// Why it ended as it did (a stopped trial's says so: "stopped early by sweep ...").
    pub reason: String,
    /// Every layer group trained at one rate with nothing frozen: that rate.
    pub uniform_lr: Option<f64>,
}

impl TrialResult {
    /// Stopped by its sweep's stopping rule.
    pub fn stopped_early(&self) -> bool {
        self.status == RunStatus::Cancelled && self.reason.starts_with("stopped early by sweep")
    }

    /// `lr=1e-2, layer0=1e-3`.
    pub fn settings_text(&self) -> String {
        let parts: Vec<String> = self
            .settings
            .iter()
            .map(|(name, value)| format!("{name}={value}"))
            .collect();
        parts.join(", ")
    }
}

/// What one value of a swept setting did: the best and the median of its trials' best
/// validation losses (trials without one left out of both; NaN when none has one).
#[derive(Clone, Debug, PartialEq)]
pub struct ValueEffect {
    pub value: String,
    pub trials: usize,
    pub best_val_loss: f64,
    pub median_best_val_loss: f64,
}

/// One swept setting's values, in the order trials first used them.
#[derive(Clone, Debug, PartialEq)]
pub struct SettingEffect {
    pub setting: String,
    pub values: Vec<ValueEffect>,
}

/// The sweep's best trial against a reference (the best uniform-rate trial, else the median
/// trial), said in one sentence with its numbers.
#[derive(Clone, Debug, PartialEq)]
pub struct Recommendation {
    pub trial: u32,
    pub run: RunId,
    /// The reference's best validation loss over the best trial's (above 1: the best is lower).
    pub ratio: Option<f64>,
    pub sentence: String,
}

#[derive(Clone, Debug)]
pub struct SweepReport {
    pub trials: Vec<TrialResult>,
    pub effects: Vec<SettingEffect>,
    pub recommendation: Option<Recommendation>,
}

/// Ranks the trials and says what each setting did and which trial to take.
pub fn report(mut trials: Vec<TrialResult>) -> SweepReport {
    rank(&mut trials);
    let effects = effects(&trials);
    let recommendation = recommend(&trials);
    SweepReport {
        trials,
        effects,
        recommendation,
    }
}

fn median(values: &mut [f64]) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    if values.len() % 2 == 1 {
        values[mid]
    } else {
        (values[mid - 1] + values[mid]) / 2.0
    }
}

/// Best validation loss first (no loss last), then trial number.
fn rank(trials: &mut [TrialResult]) {
    let key = |t: &TrialResult| {
        if t.best_val_loss.is_finite() {
            t.best_val_loss
        } else {
            f64::INFINITY
        }
    };
    trials.sort_by(|a, b| key(a).total_cmp(&key(b)).then(a.trial.cmp(&b.trial)));
    for (i, trial) in trials.iter_mut().enumerate() {
        trial.rank = i as u32 + 1;
    }
}

/// For each swept setting and each of its values: the best and median of its trials' best
/// validation losses.
fn effects(trials: &[TrialResult]) -> Vec<SettingEffect> {
    let mut by_trial: Vec<&TrialResult> = trials.iter().collect();
    by_trial.sort_by_key(|t| t.trial);
    let mut effects: Vec<SettingEffect> = Vec::new();
    let mut losses: Vec<Vec<Vec<f64>>> = Vec::new();
    for trial in by_trial {
        for (name, value) in &trial.settings {
            let s = effects
                .iter()
                .position(|e| &e.setting == name)
                .unwrap_or_else(|| {
                    effects.push(SettingEffect {
                        setting: name.clone(),
                        values: Vec::new(),
                    });
                    losses.push(Vec::new());
                    effects.len() - 1
                });
            let v = effects[s]
                .values
                .iter()
                .position(|v| &v.value == value)
                .unwrap_or_else(|| {
                    effects[s].values.push(ValueEffect {
                        value: value.clone(),
                        trials: 0,
                        best_val_loss: f64::NAN,
                        median_best_val_loss: f64::NAN,
                    });
                    losses[s].push(Vec::new());
                    effects[s].values.len() - 1
                });
            effects[s].values[v].trials += 1;
            if trial.best_val_loss.is_finite() {
                losses[s][v].push(trial.best_val_loss);
            }
        }
    }
    for (effect, losses) in effects.iter_mut().zip(&mut losses) {
        for (value, losses) in effect.values.iter_mut().zip(losses) {
            value.best_val_loss = losses.iter().copied().fold(f64::NAN, f64::min);
            value.median_best_val_loss = median(losses);
        }
    }
    effects
}

/// The best trial against the best uniform-rate trial (else the median of the trials).
fn recommend(ranked: &[TrialResult]) -> Option<Recommendation> {
    let best = ranked.first().filter(|t| t.best_val_loss.is_finite())?;
    let uniform = ranked
        .iter()
        .filter(|t| t.trial != best.trial && t.best_val_loss.is_finite())
        .find_map(|t| t.uniform_lr.map(|lr| (lr, t.best_val_loss, t.trial)));
    let mut finite: Vec<f64> = ranked
        .iter()
        .map(|t| t.best_val_loss)
        .filter(|l| l.is_finite())
        .collect();
    let settings = if best.settings.is_empty() {
        format!("trial {}", best.trial)
    } else {
        best.settings_text()
    };
    let mut sentence = format!(
        "{settings} (trial {}, run {}): best validation loss {} at epoch {}, verdict {}",
        best.trial,
        best.run,
        shown(best.best_val_loss),
        best.best_epoch,
        best.verdict.label()
    );
    if best.uniform_lr.is_some() {
        sentence.push_str(" — every group at one rate did best");
    }
    let (reference, against) = match uniform {
        Some((lr, loss, trial)) => (
            Some(loss),
            format!("than uniform {lr:e} (trial {trial}: {})", shown(loss)),
        ),
        None if finite.len() > 1 => {
            let loss = median(&mut finite);
            (
                Some(loss),
                format!("than the median trial ({})", shown(loss)),
            )
        }
        None => (None, String::new()),
    };
    let ratio = reference.map(|loss| loss / best.best_val_loss);
    if let Some(ratio) = ratio {
        sentence.push_str(&format!(", {ratio:.1}× lower {against}"));
    }
    Some(Recommendation {
        trial: best.trial,
        run: best.run,
        ratio,
        sentence,
    })
}

/// A loss to three significant digits (`0.0812`, `1.23`), as the CLI prints it.
fn shown(loss: f64) -> String {
    if !loss.is_finite() {
        return "-".into();
    }
    let digits = (2 - loss.abs().max(1e-12).log10().floor() as i32).clamp(0, 12) as usize;
    format!("{loss:.digits$}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trial(n: u32, loss: f64, settings: &[(&str, &str)], uniform: Option<f64>) -> TrialResult {
        TrialResult {
            rank: 0,
            trial: n,
            run: RunId(u64::from(n)),
            settings: settings
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect(),
            best_val_loss: loss,
            best_epoch: 5,
            epochs: 5,
            verdict: Verdict::Good,
            status: RunStatus::Completed,
            reason: String::new(),
            uniform_lr: uniform,
        }
    }

    /// The CLI's test of the same rules, with the same sentence.
    #[test]
    fn trials_rank_by_best_loss_and_the_best_is_compared_with_the_uniform_trial() {
        let report = report(vec![
            trial(1, 0.17, &[("lr", "1e-2"), ("layer0", "x1")], Some(1e-2)),
            trial(2, 0.081, &[("lr", "1e-2"), ("layer0", "1e-3")], None),
            trial(3, f64::NAN, &[("lr", "1e-3"), ("layer0", "x1")], Some(1e-3)),
            trial(4, 0.3, &[("lr", "1e-3"), ("layer0", "1e-3")], None),
        ]);
        let order: Vec<u32> = report.trials.iter().map(|t| t.trial).collect();
        assert_eq!(order, [2, 1, 4, 3]);
        let recommendation = report.recommendation.unwrap();
        assert_eq!(recommendation.trial, 2);
        let run = RunId(2);
        assert!(
            recommendation.sentence.starts_with(&format!(
                "lr=1e-2, layer0=1e-3 (trial 2, run {run}): best validation loss 0.0810 at epoch 5, verdict good, 2.1× lower than uniform 1e-2"
            )),
            "{}",
            recommendation.sentence
        );
        assert_eq!(report.effects[0].setting, "lr");
        assert_eq!(report.effects[0].values[0].value, "1e-2");
        assert_eq!(report.effects[0].values[0].best_val_loss, 0.081);
        assert_eq!(report.effects[0].values[1].trials, 2);
        assert_eq!(
            report.effects[0].values[1].best_val_loss, 0.3,
            "NaN left out"
        );
    }

    #[test]
    fn without_a_uniform_trial_the_best_is_compared_with_the_median() {
        let report = report(vec![
            trial(1, 0.2, &[("lr", "1e-2")], None),
            trial(2, 0.1, &[("lr", "1e-3")], None),
            trial(3, 0.4, &[("lr", "1e-4")], None),
        ]);
        let recommendation = report.recommendation.unwrap();
        assert_eq!(recommendation.ratio, Some(2.0));
        assert!(recommendation
            .sentence
            .ends_with("2.0× lower than the median trial (0.200)"));
        assert!(super::report(Vec::new()).recommendation.is_none());
    }
}
