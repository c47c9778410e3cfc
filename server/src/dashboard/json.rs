//! What the browser reads: domain types as JSON, with the CLI's `--json` field names wherever a
//! value is the same one (`strata show --json`, `list --json`, `compare --json`), so a script
//! written against one reads the other.

use serde_json::{json, Map, Value};

use crate::{
    analysis::{Comparison, GroupDiagnosis, RunAnalysis, TwinComparison},
    domain::{
        EpochMetrics, FrozenUntil, GroupRate, RunConfig, RunEvent, RunOrigin, RunState, StepRecord,
        SweepTrial, TaskFacts, ValMetric,
    },
    runs::{RunDetail, RunSteps},
};

/// A float, `null` when not finite (JSON has no NaN).
pub fn number(value: f64) -> Value {
    serde_json::Number::from_f64(value).map_or(Value::Null, Value::Number)
}

fn frozen_until(frozen: FrozenUntil) -> i64 {
    match frozen {
        FrozenUntil::Never => 0,
        FrozenUntil::Epoch(epoch) => i64::from(epoch),
        FrozenUntil::Forever => -1,
    }
}

/// The epoch field that holds the validation metric: `val_accuracy` or `val_r2`.
fn metric_field(metric: ValMetric) -> &'static str {
    match metric {
        ValMetric::Accuracy => "val_accuracy",
        ValMetric::R2 => "val_r2",
    }
}

/// A row of the runs page: `strata list --json`'s fields, with the analysis's `verdict`,
/// `best_val_loss` and `best_epoch`, the rate table (`rates`) and an external run's
/// `hyperparameters`.
pub fn run_summary(state: &RunState, analysis: &RunAnalysis) -> Value {
    let run = &state.record;
    json!({
        "id": run.id.to_string(),
        "name": run.name,
        "status": run.status.label(),
        "reason": run.reason,
        "tags": run.tags,
        "external": run.is_external(),
        "epochs_done": state.epochs_done,
        "epochs": run.config.epochs,
        "model": run.config.model,
        "dataset": run.config.dataset,
        "created_at_ms": run.created_at_ms,
        "started_at_ms": run.started_at_ms,
        "finished_at_ms": run.finished_at_ms,
        "queue_position": state.queue_position,
        "waiting": state.waiting,
        "worker": state.worker,
        "resumes": run.resumes,
        "verdict": analysis.verdict.label(),
        "best_val_loss": number(analysis.best_val_loss),
        "best_epoch": analysis.best_epoch,
        "sweep": run.sweep.as_ref().map_or(Value::Null, sweep_trial),
        "rates": run.groups().iter().map(group_rate).collect::<Vec<_>>(),
        "hyperparameters": hyperparameters(&run.origin),
    })
}

/// A run's place in a sweep, as `strata show --json` has it:
/// `{"sweep_id","trial","settings":{NAME: VALUE}}`.
fn sweep_trial(trial: &SweepTrial) -> Value {
    let settings: Map<String, Value> = trial
        .settings
        .iter()
        .map(|(name, value)| (name.clone(), Value::from(value.as_str())))
        .collect();
    json!({ "sweep_id": trial.sweep_id, "trial": trial.trial, "settings": settings })
}

/// The run page: `strata show --json`'s run fields, its epochs (unless `with_epochs` is false:
/// the page refreshing its analysis has them from the stream) and its analysis.
pub fn run_detail(detail: &RunDetail, with_epochs: bool) -> Value {
    let run = &detail.state.record;
    let metric = run.facts.task.metric();
    let mut value = json!({
        "id": run.id.to_string(),
        "name": run.name,
        "tags": run.tags,
        "status": run.status.label(),
        "reason": run.reason,
        "config": config(&run.config),
        "parameter_count": run.parameter_count,
        "created_at_ms": run.created_at_ms,
        "started_at_ms": run.started_at_ms,
        "finished_at_ms": run.finished_at_ms,
        "epochs_done": detail.state.epochs_done,
        "val_metric": metric.label(),
        "groups": run.groups().iter().map(group_rate).collect::<Vec<_>>(),
        "task": task_label(run.facts.task),
        "baseline_loss": run.facts.task.baseline_loss().map_or(Value::Null, number),
        "steps_per_epoch": number(run.facts.steps()),
        "device": run.device,
        "queue_position": detail.state.queue_position,
        "worker_pid": detail.state.worker_pid,
        "waiting": detail.state.waiting,
        "worker": detail.state.worker,
        "worker_losses": detail.state.worker_losses,
        "resumes": run.resumes,
        "external": run.is_external(),
        "hyperparameters": hyperparameters(&run.origin),
        "sweep": run.sweep.as_ref().map_or(Value::Null, sweep_trial),
        "analysis": analysis(&detail.analysis),
        "epochs_thinned": detail.epochs_thinned,
        "max_epochs": crate::runs::returned_epochs(run.groups().len()),
    });
    if with_epochs {
        value["epochs"] = detail.epochs.iter().map(|e| epoch(e, metric)).collect();
    }
    value
}

/// An external run's hyperparameters as its client gave them, `{KEY: VALUE}` (`{}` for a run
/// trained here, whose config says it all).
fn hyperparameters(origin: &RunOrigin) -> Value {
    match origin {
        RunOrigin::Trained => json!({}),
        RunOrigin::External {
            hyperparameters, ..
        } => hyperparameters
            .iter()
            .map(|(key, value)| (key.clone(), Value::from(value.as_str())))
            .collect::<Map<String, Value>>()
            .into(),
    }
}

/// A run's step records for a chart, by column: `{"steps":[S...],"epochs":[E...],
/// "scalars":{NAME:[V or null...]},"thinned","stored"}` (null where a step lacks that scalar, or
/// its value is not finite).
pub fn run_steps(steps: &RunSteps) -> Value {
    let mut names: Vec<&str> = steps
        .steps
        .iter()
        .flat_map(|s| s.scalars.keys().map(String::as_str))
        .collect();
    names.sort_unstable();
    names.dedup();
    let scalars: Map<String, Value> = names
        .iter()
        .map(|name| {
            let column = steps
                .steps
                .iter()
                .map(|s: &StepRecord| s.scalars.get(*name).map_or(Value::Null, |v| number(*v)));
            (name.to_string(), column.collect())
        })
        .collect();
    json!({
        "steps": steps.steps.iter().map(|s| s.step).collect::<Vec<_>>(),
        "epochs": steps.steps.iter().map(|s| s.epoch).collect::<Vec<_>>(),
        "scalars": scalars,
        "thinned": steps.thinned,
        "stored": steps.stored,
    })
}

fn task_label(task: TaskFacts) -> &'static str {
    match task {
        TaskFacts::Classification { .. } => "classification",
        TaskFacts::Regression { .. } => "regression",
    }
}

/// The remote workers connected now (`GET /api/workers`): `{"takes_workers","workers":[…],
/// "heartbeat_timeout_s","worker_retries"}`.
pub fn workers(listed: Option<(Vec<crate::workers::remote::WorkerView>, u32, u32)>) -> Value {
    let Some((workers, heartbeat_timeout_s, worker_retries)) = listed else {
        return json!({ "takes_workers": false, "workers": [] });
    };
    let workers: Vec<Value> = workers
        .into_iter()
        .map(|w| {
            let (run_id, device) = w
                .training
                .map_or((String::new(), String::new()), |(run, device)| (run.to_string(), device));
            json!({
                "name": w.offer.name, "labels": w.offer.labels, "devices": w.offer.devices,
                "memory_bytes": w.offer.memory_bytes,
                "data_roots": w.offer.data_roots.iter().map(|r| r.display().to_string()).collect::<Vec<_>>(),
                "host": w.host, "pid": w.pid, "address": w.address, "version": w.version,
                "connected_at_ms": w.connected_at_ms, "last_heartbeat_ms": w.last_heard_ms,
                "run_id": run_id, "device": device, "runs_done": w.runs_done,
            })
        })
        .collect();
    json!({
        "takes_workers": true, "workers": workers,
        "heartbeat_timeout_s": heartbeat_timeout_s, "worker_retries": worker_retries,
    })
}

/// A layer group at its rate: `{"name","lr","frozen_until"}` (0 never, N until epoch N, -1 always).
fn group_rate(group: &GroupRate) -> Value {
    json!({ "name": group.name, "lr": number(group.lr), "frozen_until": frozen_until(group.frozen) })
}

/// The config with every default filled in, as `strata show --json` prints it.
fn config(config: &RunConfig) -> Value {
    let RunConfig {
        dataset,
        samples,
        noise,
        classes,
        val_fraction,
        model,
        optimizer,
        lr,
        momentum,
        weight_decay,
        layer_lr,
        freeze,
        lr_decay,
        lr_slice,
        schedule,
        epochs,
        batch_size,
        seed,
        device,
        progress_events_per_epoch,
        label,
        val_dataset,
        task,
        init_from,
        clip_grad_norm,
        dedupe,
        on_worker,
    } = config;
    let optional = |v: &Option<f64>| v.map_or(Value::Null, number);
    json!({
        "dataset": dataset, "samples": samples, "noise": optional(noise), "classes": classes,
        "val_fraction": optional(val_fraction), "model": model, "optimizer": optimizer,
        "lr": optional(lr), "momentum": optional(momentum),
        "weight_decay": optional(weight_decay), "layer_lr": layer_lr, "freeze": freeze,
        "lr_decay": optional(lr_decay), "lr_slice": lr_slice, "schedule": schedule,
        "epochs": epochs, "batch_size": batch_size, "seed": seed, "device": device,
        "progress_events_per_epoch": progress_events_per_epoch, "label": label,
        "val_dataset": val_dataset, "task": task, "init_from": init_from,
        "clip_grad_norm": optional(clip_grad_norm), "dedupe": dedupe, "on_worker": on_worker,
    })
}

/// One epoch: `{"epoch","train_loss","val_loss","gap","val_accuracy" or "val_r2","duration_ms",
/// "samples_per_sec","groups":[{"name","lr","grad_norm","weight_norm","update_ratio","frozen"}],
/// "extra":{NAME: VALUE},"no_validation"}` (validation figures null when not validated).
pub fn epoch(epoch: &EpochMetrics, metric: ValMetric) -> Value {
    let mut fields = Map::new();
    fields.insert("epoch".into(), epoch.epoch.into());
    fields.insert("train_loss".into(), number(epoch.train_loss));
    fields.insert("val_loss".into(), number(epoch.val_loss));
    fields.insert("gap".into(), number(epoch.val_loss - epoch.train_loss));
    fields.insert(metric_field(metric).into(), number(epoch.val_metric));
    fields.insert("duration_ms".into(), number(epoch.duration_ms));
    fields.insert("samples_per_sec".into(), number(epoch.samples_per_sec));
    let groups = epoch.groups.iter().map(|g| {
        json!({
            "name": g.name, "lr": number(g.lr), "grad_norm": number(g.grad_norm),
            "weight_norm": number(g.weight_norm), "update_ratio": number(g.update_ratio),
            "frozen": g.frozen,
        })
    });
    fields.insert("groups".into(), groups.collect());
    let extra: Map<String, Value> = epoch
        .extra
        .iter()
        .map(|(name, value)| (name.clone(), number(*value)))
        .collect();
    fields.insert("extra".into(), extra.into());
    fields.insert("no_validation".into(), epoch.no_validation.into());
    Value::Object(fields)
}

/// `{"verdict","reason","best_epoch","best_val_loss","gap_at_best","gap_final","gap_trend",
/// "epochs_to_converge","final_train_loss","final_val_loss","epochs","groups":[...],
/// "key_epochs":{"best","overfitting_from","bounces":[...]}}` (`best` 0 and `overfitting_from`
/// null when there is none).
pub fn analysis(analysis: &RunAnalysis) -> Value {
    json!({
        "verdict": analysis.verdict.label(),
        "reason": analysis.reason,
        "best_epoch": analysis.best_epoch,
        "best_val_loss": number(analysis.best_val_loss),
        "gap_at_best": number(analysis.gap_at_best),
        "gap_final": number(analysis.gap_final),
        "gap_trend": number(analysis.gap_trend),
        "epochs_to_converge": analysis.epochs_to_converge,
        "final_train_loss": number(analysis.final_train_loss),
        "final_val_loss": number(analysis.final_val_loss),
        "epochs": analysis.epochs,
        "groups": analysis.groups.iter().map(group_diagnosis).collect::<Vec<_>>(),
        "key_epochs": {
            "best": analysis.best_epoch,
            "overfitting_from": analysis.key_epochs.overfitting_from,
            "bounces": analysis.key_epochs.bounces,
        },
    })
}

fn group_diagnosis(group: &GroupDiagnosis) -> Value {
    json!({
        "name": group.name,
        "diagnosis": group.diagnosis.label(),
        "update_ratio": number(group.update_ratio),
        "advice": group.advice,
    })
}

/// `strata compare --json`'s `{"runs","best_run","summary"}`; each run with its epochs' losses
/// (for the overlaid curves) beside its analysis, its config and hyperparameters (for the page's
/// "what differs"), and its twin comparison when it has one.
pub fn comparison(comparison: &Comparison) -> Value {
    let runs = comparison.runs.iter().map(|compared| {
        let run = &compared.run.record;
        json!({
            "id": run.id.to_string(),
            "name": run.name,
            "rank": compared.rank,
            "status": run.status.label(),
            "epochs_done": compared.run.epochs_done,
            "model": run.config.model,
            "dataset": run.config.dataset,
            "rates": run.groups().iter().map(group_rate).collect::<Vec<_>>(),
            "external": run.is_external(),
            "tags": run.tags,
            "config": config(&run.config),
            "hyperparameters": hyperparameters(&run.origin),
            "analysis": analysis(&compared.analysis),
            "twin": compared.twin.as_ref().map_or(Value::Null, twin),
            "epochs_thinned": compared.epochs_thinned,
            "epochs": compared.epochs.iter().map(|e| json!({
                "epoch": e.epoch,
                "train_loss": number(e.train_loss),
                "val_loss": number(e.val_loss),
            })).collect::<Vec<_>>(),
        })
    });
    json!({
        "runs": runs.collect::<Vec<_>>(),
        "best_run": comparison.best_run.map(|id| id.to_string()),
        "summary": comparison.summary,
    })
}

/// A run against its single-rate twin, with `strata compare --json`'s field names.
fn twin(c: &TwinComparison) -> Value {
    let TwinComparison {
        twin,
        twin_lr,
        run_best_val_loss,
        twin_best_val_loss,
        twin_best_epoch,
        run_reached_twin_best_at,
        best_ratio,
        run_gap_at_best,
        twin_gap_at_best,
        run_verdict,
        twin_verdict,
        outcome,
        summary,
    } = c;
    json!({
        "twin_run_id": twin.to_string(),
        "twin_lr": number(*twin_lr),
        "run_best_val_loss": number(*run_best_val_loss),
        "twin_best_val_loss": number(*twin_best_val_loss),
        "twin_best_epoch": twin_best_epoch,
        "run_reached_twin_best_at": run_reached_twin_best_at,
        "best_ratio": number(*best_ratio),
        "run_gap_at_best": number(*run_gap_at_best),
        "twin_gap_at_best": number(*twin_gap_at_best),
        "run_verdict": run_verdict.label(),
        "twin_verdict": twin_verdict.label(),
        "outcome": outcome.label(),
        "summary": summary,
    })
}

/// A watch event as a server-sent event's name and data; epochs carry their number as the
/// event id, so a reconnecting page resumes after the last one it drew.
pub fn watch_event(event: &RunEvent, metric: ValMetric) -> (&'static str, Option<u32>, Value) {
    match event {
        RunEvent::Epoch(e) => ("epoch", Some(e.epoch), epoch(e, metric)),
        RunEvent::Progress(p) => (
            "progress",
            None,
            json!({ "epoch": p.epoch, "batch": p.batch, "batches": p.batches, "loss": number(p.loss) }),
        ),
        RunEvent::Status { status, reason } => (
            "status",
            None,
            json!({ "status": status.label(), "reason": reason }),
        ),
        RunEvent::Notice(message) => ("notice", None, json!({ "message": message })),
    }
}
