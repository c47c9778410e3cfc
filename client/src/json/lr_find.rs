//! `strata lr-find --json`: the range test, every probed group's curve and suggestions, the
//! `--layer-lr` rules `--apply` uses, and the run it started.

use serde_json::{json, Value};
use strata_proto::{GroupProbe, LrFindPlan, RatePoint};

use crate::json::number::{number, optional_number};
use crate::json::run::{config, group_rate};
use crate::render::lr_find::{applied_rate, APPLIED_SUGGESTION};

/// `{"start_lr","end_lr","steps","config","groups":[{"name","lr","frozen_until"}],
/// "probes":[{"group","current_lr","steep","minimum_div10","valley","suggested_lr","diverged",
/// "points":[{"lr","loss","smoothed_loss"}]}],"skipped":[{"group","reason"}],"suggestion",
/// "layer_lr":[...],"start_command","run_id","warnings"}`.
pub fn lr_find(
    plan: &LrFindPlan,
    probes: &[GroupProbe],
    rules: &[String],
    start_command: &str,
    run_id: Option<&str>,
) -> Value {
    json!({
        "start_lr": number(plan.start_lr),
        "end_lr": number(plan.end_lr),
        "steps": plan.steps,
        "config": plan.config.as_ref().map_or(Value::Null, config),
        "groups": plan.groups.iter().map(group_rate).collect::<Vec<_>>(),
        "probes": probes.iter().map(probe).collect::<Vec<_>>(),
        "skipped": plan
            .skipped
            .iter()
            .map(|s| json!({"group": s.group, "reason": s.reason}))
            .collect::<Vec<_>>(),
        "suggestion": APPLIED_SUGGESTION,
        "layer_lr": rules,
        "start_command": start_command,
        "run_id": run_id,
        "warnings": plan.warnings,
    })
}

fn probe(probe: &GroupProbe) -> Value {
    json!({
        "group": probe.group,
        "current_lr": number(probe.current_lr),
        "steep": optional_number(probe.steep),
        "minimum_div10": optional_number(probe.minimum_div10),
        "valley": optional_number(probe.valley),
        "suggested_lr": optional_number(applied_rate(probe)),
        "diverged": probe.diverged,
        "points": probe.points.iter().map(point).collect::<Vec<_>>(),
    })
}

fn point(point: &RatePoint) -> Value {
    json!({
        "lr": number(point.lr),
        "loss": number(point.loss),
        "smoothed_loss": number(point.smoothed_loss),
    })
}
