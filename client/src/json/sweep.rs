//! `strata sweep --json` (the sweep's end) and `strata sweep show --json` (its trials ranked).

use crate::sweep::{
    report::{Reference, SettingEffect},
    StoppingRule, SweepReport, TrialResult,
};
use serde_json::{json, Map, Value};

use crate::json::number::{number, optional_number};

fn settings(values: &[(String, String)]) -> Value {
    let map: Map<String, Value> = values
        .iter()
        .map(|(name, value)| (name.clone(), Value::String(value.clone())))
        .collect();
    Value::Object(map)
}

/// `strata sweep` → `{"sweep_id","trials":[...],"counts":{OUTCOME: N},"daemons_down":[...],
/// "stopping":{...}}`, trials in trial order.
pub fn sweep_end(
    sweep_id: &str,
    results: &[TrialResult],
    daemons_down: &[(String, String)],
    rule: &StoppingRule,
) -> Value {
    let mut counts = Map::new();
    for result in results {
        let count = counts
            .entry(result.end.label().to_string())
            .or_insert(json!(0));
        *count = json!(count.as_u64().unwrap_or(0) + 1);
    }
    json!({
        "sweep_id": sweep_id,
        "trials": results.iter().map(|r| json!({
            "trial": r.plan.trial,
            "settings": settings(&r.plan.values),
            "daemon": r.daemon,
            "run_id": r.run_id,
            "outcome": r.end.label(),
            "reason": r.end.reason(),
            "epochs": r.epochs,
            "last_val_loss": number(r.last_val_loss),
        })).collect::<Vec<_>>(),
        "counts": counts,
        "daemons_down": daemons_down.iter().map(|(daemon, error)| json!({
            "daemon": daemon, "error": error,
        })).collect::<Vec<_>>(),
        "stopping": {
            "median": rule.median,
            "min_finished_trials": rule.min_finished_trials,
            "warmup_epochs": rule.warmup_epochs,
        },
    })
}

/// `strata sweep show` → `{"sweep_id","trials":[ranked],"effects":[...],"recommendation",
/// "unreachable":[...]}`.
pub fn sweep_show(report: &SweepReport) -> Value {
    json!({
        "sweep_id": report.sweep_id,
        "trials": report.trials.iter().map(|t| json!({
            "rank": t.rank,
            "trial": t.trial,
            "run_id": t.run_id,
            "daemon": t.daemon,
            "settings": settings(&t.settings),
            "best_val_loss": number(t.best_val_loss),
            "best_epoch": t.best_epoch,
            "epochs": t.epochs,
            "verdict": t.verdict.label(),
            "status": t.status.label(),
            "stopped_early": t.stopped_early(),
            "reason": t.reason,
            "uniform_lr": optional_number(t.uniform_lr),
        })).collect::<Vec<_>>(),
        "effects": report.effects.iter().map(effect).collect::<Vec<_>>(),
        "recommendation": report.recommendation.as_ref().map_or(Value::Null, |r| json!({
            "trial": r.trial,
            "run_id": r.run_id,
            "sentence": r.sentence,
            "ratio": optional_number(r.ratio),
            "reference": match &r.reference {
                Some(Reference::Uniform { lr, best_val_loss, trial }) => json!({
                    "kind": "uniform", "lr": number(*lr),
                    "best_val_loss": number(*best_val_loss), "trial": trial,
                }),
                Some(Reference::Median { best_val_loss }) => json!({
                    "kind": "median", "best_val_loss": number(*best_val_loss),
                }),
                None => Value::Null,
            },
        })),
        "unreachable": report.unreachable.iter().map(|u| json!({
            "daemon": u.daemon, "error": u.error,
        })).collect::<Vec<_>>(),
    })
}

fn effect(effect: &SettingEffect) -> Value {
    json!({
        "setting": effect.setting,
        "values": effect.values.iter().map(|v| json!({
            "value": v.value,
            "trials": v.trials,
            "best_val_loss": number(v.best_val_loss),
            "median_best_val_loss": number(v.median_best_val_loss),
        })).collect::<Vec<_>>(),
    })
}
