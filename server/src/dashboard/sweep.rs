//! The sweep page's API: `GET /api/sweeps/ID` → the sweep's trials ranked, each setting's
//! effect and the recommendation ([`crate::analysis::sweep`]), built from the runs this store
//! holds. [`sweep_trials`] is the one place that knows where a sweep's trials come from (today:
//! the runs carrying its [`crate::domain::SweepTrial`]); when the daemon keeps sweeps as objects
//! of their own, it is the function to swap.

use std::sync::Arc;

use axum::{
    extract::{Path, State},
    http::StatusCode,
    response::Response,
};
use serde_json::{json, Map, Value};

use super::{
    api::{json_body, ApiError},
    json::number,
    Dashboard,
};
use crate::{
    analysis::sweep::{self, SweepReport, TrialResult},
    domain::{FrozenUntil, RunState},
    error::StrataError,
    runs::{ListFilter, Runs},
};

/// Trials one sweep page shows; a sweep with more says so (`more`).
pub const MAX_SWEEP_TRIALS: usize = 1000;
/// A sweep id: 1–64 characters of `[A-Za-z0-9_-]` (as the proto says).
const MAX_SWEEP_ID_CHARS: usize = 64;

/// A sweep's trials as the store has them, at most `limit` of them (and whether there were
/// more), with their runs for the page to show.
async fn sweep_trials(
    runs: &Arc<Runs>,
    sweep_id: &str,
    limit: usize,
) -> Result<(Vec<(TrialResult, RunState)>, bool), StrataError> {
    let mut listed = runs
        .list_analysed(ListFilter {
            sweep: Some(sweep_id.to_string()),
            limit: Some(limit + 1),
            ..ListFilter::default()
        })
        .await?;
    let more = listed.len() > limit;
    listed.truncate(limit);
    let trials = listed
        .into_iter()
        .filter_map(|(state, analysis)| {
            let run = &state.record;
            let membership = run.sweep.as_ref()?;
            let groups = run.groups();
            let uniform_lr = groups.first().and_then(|first| {
                groups
                    .iter()
                    .all(|g| g.lr == first.lr && g.frozen == FrozenUntil::Never)
                    .then_some(first.lr)
            });
            let trial = TrialResult {
                rank: 0,
                trial: membership.trial,
                run: run.id,
                settings: membership.settings.clone(),
                best_val_loss: if analysis.epochs == 0 {
                    f64::NAN
                } else {
                    analysis.best_val_loss
                },
                best_epoch: analysis.best_epoch,
                epochs: state.epochs_done,
                verdict: analysis.verdict,
                status: run.status,
                reason: run.reason.clone(),
                uniform_lr,
            };
            Some((trial, state))
        })
        .collect();
    Ok((trials, more))
}

fn sweep_id(id: &str) -> Result<&str, ApiError> {
    let fits = !id.is_empty()
        && id.len() <= MAX_SWEEP_ID_CHARS
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if fits {
        Ok(id)
    } else {
        Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!(
                "no sweep '{}': a sweep id is 1 to {MAX_SWEEP_ID_CHARS} letters, digits, '_' or '-'",
                id.chars().take(MAX_SWEEP_ID_CHARS).collect::<String>()
            ),
        ))
    }
}

/// `GET /api/sweeps/ID` → `{"sweep_id","settings":[NAME...],"trials":[...],"effects":[...],
/// "recommendation":{"trial","run_id","ratio","sentence"} or null,"running","more"}`; a sweep
/// with no trial in this store is a 404.
pub async fn sweep(
    State(dashboard): State<Dashboard>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = sweep_id(&id)?;
    let (trials, more) = sweep_trials(&dashboard.runs, id, MAX_SWEEP_TRIALS).await?;
    if trials.is_empty() {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no sweep '{id}' here: no run of this daemon is one of its trials (strata sweep show ID gathers every daemon's)"),
        ));
    }
    let states: Vec<RunState> = trials.iter().map(|(_, state)| state.clone()).collect();
    let report = sweep::report(trials.into_iter().map(|(trial, _)| trial).collect());
    Ok(json_body(&report_json(id, &report, &states, more)))
}

fn report_json(id: &str, report: &SweepReport, states: &[RunState], more: bool) -> Value {
    let mut settings: Vec<&str> = Vec::new();
    for trial in &report.trials {
        for (name, _) in &trial.settings {
            if !settings.contains(&name.as_str()) {
                settings.push(name);
            }
        }
    }
    let trials: Vec<Value> = report
        .trials
        .iter()
        .map(|t| {
            let state = states.iter().find(|s| s.record.id == t.run);
            let values: Map<String, Value> = t
                .settings
                .iter()
                .map(|(name, value)| (name.clone(), Value::from(value.as_str())))
                .collect();
            json!({
                "rank": t.rank,
                "trial": t.trial,
                "run_id": t.run.to_string(),
                "status": t.status.label(),
                "reason": t.reason,
                "stopped_early": t.stopped_early(),
                "verdict": t.verdict.label(),
                "best_val_loss": number(t.best_val_loss),
                "best_epoch": t.best_epoch,
                "epochs_done": t.epochs,
                "epochs": state.and_then(|s| s.record.config.epochs),
                "settings": values,
            })
        })
        .collect();
    let effects: Vec<Value> = report
        .effects
        .iter()
        .map(|e| {
            json!({
                "setting": e.setting,
                "values": e.values.iter().map(|v| json!({
                    "value": v.value,
                    "trials": v.trials,
                    "best_val_loss": number(v.best_val_loss),
                    "median_best_val_loss": number(v.median_best_val_loss),
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    let running = report
        .trials
        .iter()
        .filter(|t| !t.status.is_terminal())
        .count();
    json!({
        "sweep_id": id,
        "settings": settings,
        "trials": trials,
        "effects": effects,
        "recommendation": report.recommendation.as_ref().map_or(Value::Null, |r| json!({
            "trial": r.trial,
            "run_id": r.run.to_string(),
            "ratio": r.ratio.map_or(Value::Null, number),
            "sentence": r.sentence,
        })),
        "running": running,
        "more": more,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::response::IntoResponse;

    #[test]
    fn sweep_ids_are_checked_before_the_store_is_read() {
        assert!(sweep_id("k3f9-a_b").is_ok());
        for bad in ["", "../x", "a b", &"a".repeat(65)] {
            let refused = sweep_id(bad).err().unwrap().into_response();
            assert_eq!(refused.status(), StatusCode::NOT_FOUND);
        }
    }
}
