//! A run and the commands' answers about runs: `start`, `start --dry-run`, `show`, `list`,
//! `cancel`, `resume`, `delete`.

use serde_json::{json, Value};
use strata_client::labels::{init_label, FrozenUntil};
use strata_client::{metric_label, status_label};
use strata_proto::{
    leaky_column, CancelRunResponse, DeleteRunResponse, GetRunResponse, GroupRate, Leakage,
    LeakyColumn, ListRunsResponse, ParameterRate, Run, RunConfig, RunFacts, StartRunResponse,
    SweepTrial, Task,
};

use crate::json::analysis::analysis;
use crate::json::epoch::epoch;
use crate::json::number::{number, optional_number};

/// `strata start` → `{"run_id"}`.
pub fn start(response: &StartRunResponse) -> Value {
    json!({
        "run_id": response.run_id,
        "twin_run_id": response.twin_run_id,
        "warnings": response.warnings,
    })
}

/// `strata start --dry-run` → `{"parameters":[...], "groups":[...], "config":{...},
/// "facts":{...}, "warnings":[...]}`.
pub fn dry_run(response: &StartRunResponse) -> Value {
    json!({
        "parameters": parameters(&response.parameters),
        "groups": response.groups.iter().map(group_rate).collect::<Vec<_>>(),
        "config": response.config.as_ref().map_or(Value::Null, config),
        "facts": response.facts.as_ref().map_or(Value::Null, facts),
        "warnings": response.warnings,
    })
}

/// One resolved parameter: `{"name","group","shape","lr","frozen_until","init"}`.
pub fn parameter(parameter: &ParameterRate) -> Value {
    json!({
        "name": parameter.name,
        "group": parameter.group,
        "shape": parameter.shape,
        "lr": number(parameter.lr),
        "frozen_until": FrozenUntil::of(parameter).as_number(),
        "init": init_label(parameter),
    })
}

/// A layer group at its rate: `{"name","lr","frozen_until"}` (as the daemon reports it).
pub fn group_rate(group: &GroupRate) -> Value {
    json!({
        "name": group.name,
        "lr": number(group.lr),
        "frozen_until": FrozenUntil::from_wire(group.frozen.as_ref()).as_number(),
    })
}

/// What the data is: `{"task","classes","target_variance","baseline_loss","chance_accuracy",
/// "train_rows","val_rows","steps_per_epoch","label","task_reason","leakage"}` (`leakage` null
/// when the data was not checked).
pub fn facts(facts: &RunFacts) -> Value {
    let task = match Task::try_from(facts.task) {
        Ok(Task::Classification) => "classification",
        Ok(Task::Regression) => "regression",
        _ => "unknown",
    };
    json!({
        "task": task,
        "classes": facts.classes,
        "target_variance": optional_number(facts.target_variance),
        "baseline_loss": optional_number(facts.baseline_loss),
        "chance_accuracy": optional_number(facts.chance_accuracy),
        "train_rows": facts.train_rows,
        "val_rows": facts.val_rows,
        "steps_per_epoch": facts.steps_per_epoch,
        "label": facts.label,
        "task_reason": facts.task_reason,
        "leakage": facts.leakage.as_ref().map_or(Value::Null, leakage),
    })
}

/// What the leakage check found: every `Leakage` field under its proto name; each column as
/// `{"position","name","how"}` with `how` one of `equals_label`, `determines_class` (with
/// `"values"`), `correlated` (with `"correlation"`).
pub fn leakage(leakage: &Leakage) -> Value {
    json!({
        "val_rows": leakage.val_rows,
        "train_rows": leakage.train_rows,
        "exact_rows": leakage.exact_rows,
        "exact_fraction": number(leakage.exact_fraction),
        "near_rows": leakage.near_rows,
        "near_fraction": number(leakage.near_fraction),
        "near_tolerance_std": number(leakage.near_tolerance_std),
        "label_columns": leakage.label_columns.iter().map(leaky_column).collect::<Vec<_>>(),
        "class_balance_distance": optional_number(leakage.class_balance_distance),
        "dropped_repeats": leakage.dropped_repeats,
        "dropped_val_copies": leakage.dropped_val_copies,
        "findings": leakage.findings,
    })
}

fn leaky_column(column: &LeakyColumn) -> Value {
    let (position, name) = (column.position, &column.name);
    match &column.how {
        Some(leaky_column::How::EqualsLabel(_)) => {
            json!({ "position": position, "name": name, "how": "equals_label" })
        }
        Some(leaky_column::How::DeterminesClassValues(values)) => json!({
            "position": position, "name": name, "how": "determines_class", "values": values,
        }),
        Some(leaky_column::How::Correlation(r)) => json!({
            "position": position, "name": name, "how": "correlated", "correlation": number(*r),
        }),
        None => json!({ "position": position, "name": name, "how": null }),
    }
}

fn parameters(parameters: &[ParameterRate]) -> Value {
    Value::Array(parameters.iter().map(parameter).collect())
}

/// Every `RunConfig` field under its proto (snake_case) name; unset optionals are `null`.
pub fn config(config: &RunConfig) -> Value {
    json!({
        "dataset": config.dataset,
        "samples": config.samples,
        "noise": optional_number(config.noise),
        "classes": config.classes,
        "val_fraction": optional_number(config.val_fraction),
        "model": config.model,
        "optimizer": config.optimizer,
        "lr": optional_number(config.lr),
        "momentum": optional_number(config.momentum),
        "weight_decay": optional_number(config.weight_decay),
        "layer_lr": config.layer_lr,
        "freeze": config.freeze,
        "lr_decay": optional_number(config.lr_decay),
        "lr_slice": config.lr_slice,
        "schedule": config.schedule,
        "epochs": config.epochs,
        "batch_size": config.batch_size,
        "seed": config.seed,
        "device": config.device,
        "progress_events_per_epoch": config.progress_events_per_epoch,
        "label": config.label,
        "val_dataset": config.val_dataset,
        "task": config.task,
        "init_from": config.init_from,
        "clip_grad_norm": config.clip_grad_norm,
        "dedupe": config.dedupe,
        "on_worker": config.on_worker,
    })
}

/// `strata show` → the run with its config, rate table, every epoch and the analysis.
pub fn show(response: &GetRunResponse) -> Value {
    let default_run = Run::default();
    let run = response.run.as_ref().unwrap_or(&default_run);
    json!({
        "id": run.id,
        "name": run.name,
        "tags": run.tags,
        "status": status_label(run.status),
        "reason": run.reason,
        "config": config(run.config.as_ref().unwrap_or(&RunConfig::default())),
        "parameters": parameters(&run.parameters),
        "parameter_count": run.parameter_count,
        "created_at_ms": run.created_at_ms,
        "started_at_ms": run.started_at_ms,
        "finished_at_ms": run.finished_at_ms,
        "epochs_done": run.epochs_done,
        "val_metric": metric_label(run.val_metric),
        "groups": run.groups.iter().map(group_rate).collect::<Vec<_>>(),
        "facts": run.facts.as_ref().map_or(Value::Null, facts),
        "device": run.device,
        "queue_position": run.queue_position,
        "worker_pid": run.worker_pid,
        "waiting": run.waiting,
        "worker": run.worker,
        "worker_losses": run.worker_losses,
        "resumes": run.resumes,
        "twin_run_id": run.twin,
        "twin_of": run.twin_of,
        "external": run.external,
        "hyperparameters": run.hyperparameters,
        "client_key": run.client_key,
        "sweep": run.sweep.as_ref().map_or(Value::Null, sweep_trial),
        "epochs": response.epochs.iter().map(epoch).collect::<Vec<_>>(),
        "epochs_thinned": response.epochs_thinned,
        "analysis": response.analysis.as_ref().map_or(Value::Null, analysis),
        "twin": response.twin.as_ref().map_or(Value::Null, crate::json::analysis::twin),
    })
}

/// One line of `strata list`.
pub fn run_summary(run: &Run) -> Value {
    let config = run.config.as_ref();
    json!({
        "id": run.id,
        "name": run.name,
        "status": status_label(run.status),
        "reason": run.reason,
        "tags": run.tags,
        "external": run.external,
        "epochs_done": run.epochs_done,
        "epochs": config.and_then(|c| c.epochs),
        "model": config.map_or("", |c| c.model.as_str()),
        "dataset": config.map_or("", |c| c.dataset.as_str()),
        "created_at_ms": run.created_at_ms,
        "started_at_ms": run.started_at_ms,
        "finished_at_ms": run.finished_at_ms,
        "queue_position": run.queue_position,
        "waiting": run.waiting,
        "worker": run.worker,
        "resumes": run.resumes,
        "sweep": run.sweep.as_ref().map_or(Value::Null, sweep_trial),
    })
}

/// A run's place in a sweep: `{"sweep_id","trial","settings":{NAME: VALUE}}` (settings in the
/// sweep's order).
pub fn sweep_trial(trial: &SweepTrial) -> Value {
    let settings: serde_json::Map<String, Value> = trial
        .settings
        .iter()
        .map(|s| (s.name.clone(), Value::String(s.value.clone())))
        .collect();
    json!({ "sweep_id": trial.sweep_id, "trial": trial.trial, "settings": settings })
}

/// `strata list` → `{"runs":[...]}`, in the server's order (newest first).
pub fn list(response: &ListRunsResponse) -> Value {
    json!({ "runs": response.runs.iter().map(run_summary).collect::<Vec<_>>() })
}

/// `strata cancel` → `{"id","status"}`; `requested` stands in for the id if the server sent no run.
pub fn cancel(response: &CancelRunResponse, requested: &str) -> Value {
    match &response.run {
        Some(run) => json!({ "id": run.id, "status": status_label(run.status) }),
        None => json!({ "id": requested, "status": Value::Null }),
    }
}

/// `strata resume` → `{"run_id","status":"queued","reason"}`.
pub fn resume(run_id: &str, reason: &str) -> Value {
    json!({ "run_id": run_id, "status": "queued", "reason": reason })
}

/// `strata delete` → `{"run_id","deleted":true}`.
pub fn delete(response: &DeleteRunResponse) -> Value {
    json!({ "run_id": response.run_id, "deleted": true })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{epoch_record, parameter};
    use serde_json::json;
    use strata_proto::{GroupDiagnosis, RunAnalysis, RunStatus};

    #[test]
    fn config_unset_optionals_are_null() {
        let value = config(&RunConfig {
            dataset: "spirals".into(),
            model: "mlp:64,64".into(),
            lr: Some(1e-3),
            layer_lr: vec!["layer0=1e-4".into()],
            ..RunConfig::default()
        });
        assert_eq!(value["dataset"], "spirals");
        assert_eq!(value["lr"], json!(1e-3));
        assert_eq!(value["samples"], Value::Null);
        assert_eq!(value["epochs"], Value::Null);
        assert_eq!(value["layer_lr"], json!(["layer0=1e-4"]));
        assert_eq!(value["dedupe"], false);
        assert_eq!(value["on_worker"], "");
        assert_eq!(
            value.as_object().unwrap().len(),
            27,
            "every RunConfig field"
        );
    }

    #[test]
    fn leakage_names_how_each_column_leaks() {
        let value = leakage(&Leakage {
            val_rows: 200,
            exact_rows: 28,
            exact_fraction: 0.14,
            label_columns: vec![
                LeakyColumn {
                    position: 3,
                    name: "column 3".into(),
                    how: Some(leaky_column::How::EqualsLabel(true)),
                },
                LeakyColumn {
                    position: 5,
                    name: "column 5".into(),
                    how: Some(leaky_column::How::DeterminesClassValues(4)),
                },
            ],
            class_balance_distance: None,
            findings: vec!["column 3 equals the label on every training row".into()],
            ..Leakage::default()
        });
        assert_eq!(value["exact_rows"], 28);
        assert_eq!(value["exact_fraction"], json!(0.14));
        assert_eq!(value["class_balance_distance"], Value::Null);
        assert_eq!(
            value["label_columns"],
            json!([
                {"position": 3, "name": "column 3", "how": "equals_label"},
                {"position": 5, "name": "column 5", "how": "determines_class", "values": 4},
            ])
        );
        assert_eq!(value.as_object().unwrap().len(), 12, "every Leakage field");
    }

    #[test]
    fn show_reports_status_label_and_epochs() {
        let response = GetRunResponse {
            run: Some(Run {
                id: "0123456789abcdef".into(),
                status: RunStatus::Completed as i32,
                parameters: vec![parameter("head.weight", "head", vec![3, 64], 1e-3, 0)],
                ..Run::default()
            }),
            epochs: vec![epoch_record(1, 1.0, 1.5)],
            analysis: Some(RunAnalysis {
                best_epoch: 1,
                gap_final: 0.5,
                verdict: strata_proto::Verdict::TooShort as i32,
                reason: "only 1 epoch was trained".into(),
                groups: vec![GroupDiagnosis {
                    name: "head".into(),
                    diagnosis: strata_proto::Diagnosis::Ok as i32,
                    update_ratio: 1e-3,
                    advice: "keep its rate".into(),
                }],
                ..RunAnalysis::default()
            }),
            twin: None,
            epochs_thinned: false,
            next_epoch: 0,
        };
        let value = show(&response);
        assert_eq!(value["analysis"]["verdict"], "too-short");
        assert_eq!(value["analysis"]["best_epoch"], 1);
        assert_eq!(value["analysis"]["gap_final"], json!(0.5));
        assert_eq!(value["analysis"]["reason"], "only 1 epoch was trained");
        assert_eq!(
            value["analysis"]["groups"][0],
            json!({"name": "head", "diagnosis": "ok", "update_ratio": 1e-3, "advice": "keep its rate"})
        );
        assert_eq!(value["id"], "0123456789abcdef");
        assert_eq!(value["status"], "completed");
        assert_eq!(value["config"]["dataset"], "");
        assert_eq!(value["parameters"][0]["shape"], json!([3, 64]));
        assert_eq!(value["epochs"][0]["gap"], json!(0.5));
    }

    #[test]
    fn list_entries_carry_config_epochs() {
        let response = ListRunsResponse {
            runs: vec![Run {
                id: "a".into(),
                status: RunStatus::Running as i32,
                epochs_done: 2,
                config: Some(RunConfig {
                    epochs: Some(10),
                    model: "mlp:8".into(),
                    ..RunConfig::default()
                }),
                ..Run::default()
            }],
        };
        let value = list(&response);
        assert_eq!(value["runs"][0]["status"], "running");
        assert_eq!(value["runs"][0]["epochs"], 10);
        assert_eq!(value["runs"][0]["epochs_done"], 2);
        assert_eq!(value["runs"][0]["model"], "mlp:8");
    }
}
