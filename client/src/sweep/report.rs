//! `strata sweep show`: a sweep's trials gathered from every daemon, ranked by best validation
//! loss, the effect of each swept setting, and a recommendation in one sentence.
//!
//! The best validation loss, its epoch and the verdict of each trial are the daemon's analysis
//! (GetRun); nothing here re-derives them.

use strata_proto::{ListRunsRequest, Run, RunStatus, Verdict};

use super::stopping::median;
use strata_client::fleet::Daemon;
use strata_client::ClientError;

/// One trial as the daemons recorded it.
#[derive(Clone, Debug)]
pub struct RankedTrial {
    /// 1 for the lowest best validation loss; trials without one last.
    pub rank: u32,
    pub trial: u32,
    pub run_id: String,
    pub daemon: String,
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

impl RankedTrial {
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
/// validation losses.
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

/// What the best trial is compared with.
#[derive(Clone, Debug, PartialEq)]
pub enum Reference {
    /// The best trial with every group at one rate.
    Uniform {
        lr: f64,
        best_val_loss: f64,
        trial: u32,
    },
    /// The median of every trial's best validation loss.
    Median { best_val_loss: f64 },
}

/// The sweep's answer: its best trial against a reference, and the sentence that says it.
#[derive(Clone, Debug)]
pub struct Recommendation {
    pub trial: u32,
    pub run_id: String,
    pub reference: Option<Reference>,
    /// The reference's best validation loss over the best trial's (above 1: the best is lower).
    pub ratio: Option<f64>,
    pub sentence: String,
}

/// A daemon that did not answer: its trials are missing from the report.
#[derive(Clone, Debug)]
pub struct Unreachable {
    pub daemon: String,
    pub error: String,
}

#[derive(Clone, Debug)]
pub struct SweepReport {
    pub sweep_id: String,
    pub trials: Vec<RankedTrial>,
    pub effects: Vec<SettingEffect>,
    pub recommendation: Option<Recommendation>,
    pub unreachable: Vec<Unreachable>,
}

/// Gathers the sweep's trials from every daemon that answers, with each one's analysis, and
/// ranks them. A daemon that does not answer is listed, and the rest still answer.
pub async fn sweep_report(sweep_id: &str, daemons: &[Daemon]) -> SweepReport {
    let mut trials = Vec::new();
    let mut unreachable = Vec::new();
    for daemon in daemons {
        match trials_on(sweep_id, daemon).await {
            Ok(found) => trials.extend(found),
            Err(err) => unreachable.push(Unreachable {
                daemon: daemon.name.clone(),
                error: err.to_string(),
            }),
        }
    }
    rank(&mut trials);
    let effects = effects(&trials);
    let recommendation = recommend(&trials);
    SweepReport {
        sweep_id: sweep_id.to_string(),
        trials,
        effects,
        recommendation,
        unreachable,
    }
}

async fn trials_on(sweep_id: &str, daemon: &Daemon) -> Result<Vec<RankedTrial>, ClientError> {
    let listed = daemon
        .client
        .list_runs(ListRunsRequest {
            sweep: sweep_id.to_string(),
            ..ListRunsRequest::default()
        })
        .await?;
    let mut trials = Vec::new();
    for run in listed.runs {
        let detail = daemon.client.get_run(&run.id).await?;
        let analysis = detail.analysis.unwrap_or_default();
        let run = detail.run.unwrap_or(run);
        trials.push(RankedTrial {
            rank: 0,
            trial: run.sweep.as_ref().map_or(0, |s| s.trial),
            run_id: run.id.clone(),
            daemon: daemon.name.clone(),
            settings: run
                .sweep
                .as_ref()
                .map(|s| {
                    s.settings
                        .iter()
                        .map(|s| (s.name.clone(), s.value.clone()))
                        .collect()
                })
                .unwrap_or_default(),
            best_val_loss: if analysis.epochs == 0 {
                f64::NAN
            } else {
                analysis.best_val_loss
            },
            best_epoch: analysis.best_epoch,
            epochs: run.epochs_done,
            verdict: Verdict::try_from(analysis.verdict).unwrap_or(Verdict::Unspecified),
            status: RunStatus::try_from(run.status).unwrap_or(RunStatus::Unspecified),
            reason: run.reason.clone(),
            uniform_lr: uniform_lr(&run),
        });
    }
    Ok(trials)
}

/// The one rate of a run whose groups all train at it with nothing frozen.
fn uniform_lr(run: &Run) -> Option<f64> {
    let first = run.groups.first()?;
    run.groups
        .iter()
        .all(|g| g.lr == first.lr && g.frozen.is_none())
        .then_some(first.lr)
}

/// Best validation loss first (no loss last), then trial number.
fn rank(trials: &mut [RankedTrial]) {
    trials.sort_by(|a, b| {
        let key = |t: &RankedTrial| {
            if t.best_val_loss.is_finite() {
                t.best_val_loss
            } else {
                f64::INFINITY
            }
        };
        key(a).total_cmp(&key(b)).then(a.trial.cmp(&b.trial))
    });
    for (i, trial) in trials.iter_mut().enumerate() {
        trial.rank = i as u32 + 1;
    }
}

/// For each swept setting and each of its values: the best and median of its trials' best
/// validation losses (trials without one are left out of both).
fn effects(trials: &[RankedTrial]) -> Vec<SettingEffect> {
    let mut by_trial: Vec<&RankedTrial> = trials.iter().collect();
    by_trial.sort_by_key(|t| t.trial);
    let mut effects: Vec<SettingEffect> = Vec::new();
    let mut losses: Vec<Vec<Vec<f64>>> = Vec::new();
    for trial in by_trial {
        for (name, value) in &trial.settings {
            let s = match effects.iter().position(|e| &e.setting == name) {
                Some(s) => s,
                None => {
                    effects.push(SettingEffect {
                        setting: name.clone(),
                        values: Vec::new(),
                    });
                    losses.push(Vec::new());
                    effects.len() - 1
                }
            };
            let v = match effects[s].values.iter().position(|v| &v.value == value) {
                Some(v) => v,
                None => {
                    effects[s].values.push(ValueEffect {
                        value: value.clone(),
                        trials: 0,
                        best_val_loss: f64::NAN,
                        median_best_val_loss: f64::NAN,
                    });
                    losses[s].push(Vec::new());
                    effects[s].values.len() - 1
                }
            };
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

/// The best trial, said in one sentence with its numbers, against the best uniform-rate trial
/// (else the median of the trials).
fn recommend(ranked: &[RankedTrial]) -> Option<Recommendation> {
    let best = ranked.first().filter(|t| t.best_val_loss.is_finite())?;
    let uniform = ranked
        .iter()
        .filter(|t| t.trial != best.trial && t.best_val_loss.is_finite())
        .find_map(|t| {
            t.uniform_lr.map(|lr| Reference::Uniform {
                lr,
                best_val_loss: t.best_val_loss,
                trial: t.trial,
            })
        });
    let mut finite: Vec<f64> = ranked
        .iter()
        .map(|t| t.best_val_loss)
        .filter(|l| l.is_finite())
        .collect();
    let reference = uniform.or_else(|| {
        (finite.len() > 1).then(|| Reference::Median {
            best_val_loss: median(&mut finite),
        })
    });
    let settings = if best.settings.is_empty() {
        format!("trial {}", best.trial)
    } else {
        best.settings_text()
    };
    let mut sentence = format!(
        "{settings} (trial {}, run {}): best validation loss {} at epoch {}, verdict {}",
        best.trial,
        best.run_id,
        shown(best.best_val_loss),
        best.best_epoch,
        best.verdict.label()
    );
    if best.uniform_lr.is_some() {
        sentence.push_str(" — every group at one rate did best");
    }
    let ratio = reference.as_ref().map(|r| {
        let other = match r {
            Reference::Uniform { best_val_loss, .. } | Reference::Median { best_val_loss } => {
                *best_val_loss
            }
        };
        other / best.best_val_loss
    });
    if let (Some(reference), Some(ratio)) = (&reference, ratio) {
        let against = match reference {
            Reference::Uniform {
                lr,
                best_val_loss,
                trial,
            } => format!(
                "than uniform {} (trial {trial}: {})",
                shown_rate(*lr),
                shown(*best_val_loss)
            ),
            Reference::Median { best_val_loss } => {
                format!("than the median trial ({})", shown(*best_val_loss))
            }
        };
        sentence.push_str(&format!(", {}× lower {against}", shown_ratio(ratio)));
    }
    Some(Recommendation {
        trial: best.trial,
        run_id: best.run_id.clone(),
        reference,
        ratio,
        sentence,
    })
}

/// A loss to three significant digits (`0.0812`, `1.23`).
pub fn shown(loss: f64) -> String {
    if !loss.is_finite() {
        return "-".into();
    }
    let digits = (2 - loss.abs().max(1e-12).log10().floor() as i32).clamp(0, 12) as usize;
    format!("{loss:.digits$}")
}

fn shown_rate(lr: f64) -> String {
    format!("{lr:e}")
}

fn shown_ratio(ratio: f64) -> String {
    format!("{ratio:.1}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trial(n: u32, loss: f64, settings: &[(&str, &str)], uniform: Option<f64>) -> RankedTrial {
        RankedTrial {
            rank: 0,
            trial: n,
            run_id: format!("run{n}"),
            daemon: "d".into(),
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

    #[test]
    fn trials_rank_by_best_loss_and_the_best_is_compared_with_the_uniform_trial() {
        let mut trials = vec![
            trial(1, 0.17, &[("lr", "1e-2"), ("layer0", "x1")], Some(1e-2)),
            trial(2, 0.081, &[("lr", "1e-2"), ("layer0", "1e-3")], None),
            trial(3, f64::NAN, &[("lr", "1e-3"), ("layer0", "x1")], Some(1e-3)),
            trial(4, 0.3, &[("lr", "1e-3"), ("layer0", "1e-3")], None),
        ];
        rank(&mut trials);
        let order: Vec<u32> = trials.iter().map(|t| t.trial).collect();
        assert_eq!(order, [2, 1, 4, 3]);
        let recommendation = recommend(&trials).unwrap();
        assert_eq!(recommendation.trial, 2);
        assert!(
            recommendation.sentence.starts_with(
                "lr=1e-2, layer0=1e-3 (trial 2, run run2): best validation loss 0.0810 at epoch 5, verdict good, 2.1× lower than uniform 1e-2"
            ),
            "{}",
            recommendation.sentence
        );
        let effects = effects(&trials);
        assert_eq!(effects[0].setting, "lr");
        assert_eq!(effects[0].values[0].value, "1e-2");
        assert_eq!(effects[0].values[0].best_val_loss, 0.081);
        assert_eq!(effects[0].values[1].trials, 2);
        assert_eq!(effects[0].values[1].best_val_loss, 0.3, "NaN left out");
    }

    #[test]
    fn without_a_uniform_trial_the_best_is_compared_with_the_median() {
        let mut trials = vec![
            trial(1, 0.2, &[("lr", "1e-2")], None),
            trial(2, 0.1, &[("lr", "1e-3")], None),
            trial(3, 0.4, &[("lr", "1e-4")], None),
        ];
        rank(&mut trials);
        let recommendation = recommend(&trials).unwrap();
        assert_eq!(
            recommendation.reference,
            Some(Reference::Median { best_val_loss: 0.2 })
        );
        assert!(recommendation
            .sentence
            .ends_with("2.0× lower than the median trial (0.200)"));
        assert!(recommend(&[]).is_none());
    }
}
