//! The CLI's `--json` output: protocol values as `serde_json::Value`s with stable field names.
//!
//! Scripts and tests rely on these names, so they are spelled out here field by field rather than
//! derived from the generated types (whose names could change with the proto). Non-finite floats
//! (a diverged run's NaN loss) become `null`, since JSON has no NaN.

use serde_json::{json, Map, Value};
use strata_client::model::FrozenUntil;
use strata_client::{epoch_gap, status_label};
use strata_proto::{
    watch_event, BatchProgress, CancelRunResponse, CompareRunsResponse, DeleteRunResponse,
    EpochRecord, GetRunResponse, GroupDiagnosis, GroupEpochStats, ListRunsResponse, ParameterRate,
    Run, RunAnalysis, RunComparison, RunConfig, ServerInfo, StartRunResponse, StatusChange,
    WatchEvent,
};

use crate::render::rates::rate_setup;

/// A float as JSON: a number when finite, `null` otherwise.
pub fn number(value: f64) -> Value {
    serde_json::Number::from_f64(value).map_or(Value::Null, Value::Number)
}

/// An optional float: `null` when unset or non-finite.
fn optional_number(value: Option<f64>) -> Value {
    value.map_or(Value::Null, number)
}

/// `strata start` → `{"run_id"}`.
pub fn start(response: &StartRunResponse) -> Value {
    json!({ "run_id": response.run_id })
}

/// `strata start --dry-run` → `{"parameters":[...], "config":{...}}`.
pub fn dry_run(response: &StartRunResponse) -> Value {
    json!({
        "parameters": parameters(&response.parameters),
        "config": response.config.as_ref().map_or(Value::Null, config),
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
        "init": parameter.init,
    })
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
    })
}

/// Per-group statistics of one epoch.
pub fn group(group: &GroupEpochStats) -> Value {
    json!({
        "name": group.name,
        "lr": number(group.lr),
        "grad_norm": number(group.grad_norm),
        "weight_norm": number(group.weight_norm),
        "update_ratio": number(group.update_ratio),
        "frozen": group.frozen,
    })
}

/// The fields of one epoch, as a map so that watch events can extend it.
fn epoch_fields(epoch: &EpochRecord) -> Map<String, Value> {
    let mut fields = Map::new();
    fields.insert("epoch".into(), epoch.epoch.into());
    fields.insert("train_loss".into(), number(epoch.train_loss));
    fields.insert("val_loss".into(), number(epoch.val_loss));
    fields.insert("gap".into(), number(epoch_gap(epoch)));
    fields.insert("val_accuracy".into(), number(epoch.val_accuracy));
    fields.insert("duration_ms".into(), number(epoch.duration_ms));
    fields.insert("samples_per_sec".into(), number(epoch.samples_per_sec));
    fields.insert(
        "groups".into(),
        Value::Array(epoch.groups.iter().map(group).collect()),
    );
    fields
}

/// One epoch: `{"epoch","train_loss","val_loss","gap","val_accuracy","duration_ms",
/// "samples_per_sec","groups":[...]}`, gap = val_loss − train_loss.
pub fn epoch(epoch: &EpochRecord) -> Value {
    Value::Object(epoch_fields(epoch))
}

/// One group's diagnosis: `{"name","diagnosis","update_ratio","advice"}`.
pub fn group_diagnosis(group: &GroupDiagnosis) -> Value {
    json!({
        "name": group.name,
        "diagnosis": group.diagnosis,
        "update_ratio": number(group.update_ratio),
        "advice": group.advice,
    })
}

/// The fields of the daemon's analysis, as a map so that `compare` can put them beside the run's.
fn analysis_fields(analysis: &RunAnalysis) -> Map<String, Value> {
    let value = json!({
        "verdict": analysis.verdict,
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
    });
    match value {
        Value::Object(fields) => fields,
        _ => Map::new(),
    }
}

/// The daemon's analysis of a run: `{"verdict","reason","best_epoch","best_val_loss",
/// "gap_at_best","gap_final","gap_trend","epochs_to_converge","final_train_loss",
/// "final_val_loss","epochs","groups":[{"name","diagnosis","update_ratio","advice"}]}`.
pub fn analysis(analysis: &RunAnalysis) -> Value {
    Value::Object(analysis_fields(analysis))
}

/// One run of `strata compare`: its id, name, rank, status and rate setup beside its analysis.
fn comparison(comparison: &RunComparison) -> Value {
    let default_run = Run::default();
    let run = comparison.run.as_ref().unwrap_or(&default_run);
    let mut fields = Map::new();
    fields.insert("id".into(), run.id.clone().into());
    fields.insert("name".into(), run.name.clone().into());
    fields.insert("rank".into(), comparison.rank.into());
    fields.insert(
        "status".into(),
        status_label(run.status).into_owned().into(),
    );
    fields.insert("rates".into(), rate_setup(run).into());
    fields.insert("epochs_done".into(), run.epochs_done.into());
    if let Some(analysis) = &comparison.analysis {
        fields.extend(analysis_fields(analysis));
    }
    Value::Object(fields)
}

/// `strata compare` → `{"runs":[{"id","name","rank","status","rates","epochs_done","verdict",
/// "reason","best_epoch","best_val_loss","gap_final",...}],"best_run","summary"}`, best first.
pub fn compare(response: &CompareRunsResponse) -> Value {
    json!({
        "runs": response.runs.iter().map(comparison).collect::<Vec<_>>(),
        "best_run": response.best_run,
        "summary": response.summary,
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
        "val_metric": run.val_metric,
        "device": run.device,
        "queue_position": run.queue_position,
        "resumes": run.resumes,
        "epochs": response.epochs.iter().map(epoch).collect::<Vec<_>>(),
        "analysis": response.analysis.as_ref().map_or(Value::Null, analysis),
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
        "epochs_done": run.epochs_done,
        "epochs": config.and_then(|c| c.epochs),
        "model": config.map_or("", |c| c.model.as_str()),
        "dataset": config.map_or("", |c| c.dataset.as_str()),
        "created_at_ms": run.created_at_ms,
        "started_at_ms": run.started_at_ms,
        "finished_at_ms": run.finished_at_ms,
        "queue_position": run.queue_position,
        "resumes": run.resumes,
    })
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

/// `strata info` → `{"version","devices","max_concurrent_runs","data_dir"}`.
pub fn server_info(info: &ServerInfo) -> Value {
    json!({
        "version": info.version,
        "devices": info.devices,
        "max_concurrent_runs": info.max_concurrent_runs,
        "data_dir": info.data_dir,
    })
}

/// `{"event":"progress","epoch","batch","batches","loss"}`.
fn progress(progress: &BatchProgress) -> Value {
    json!({
        "event": "progress",
        "epoch": progress.epoch,
        "batch": progress.batch,
        "batches": progress.batches,
        "loss": number(progress.loss),
    })
}

/// `{"event":"status","status","reason"}`.
fn status_change(change: &StatusChange) -> Value {
    json!({ "event": "status", "status": status_label(change.status), "reason": change.reason })
}

/// One watch event as an NDJSON line's object; `None` for an event with no payload (which a
/// newer daemon could send for an event kind this client does not know).
pub fn watch_event(event: &WatchEvent) -> Option<Value> {
    let value = match event.event.as_ref()? {
        watch_event::Event::Epoch(record) => {
            let mut fields = Map::new();
            fields.insert("event".into(), "epoch".into());
            fields.extend(epoch_fields(record));
            Value::Object(fields)
        }
        watch_event::Event::Progress(batch) => progress(batch),
        watch_event::Event::Status(change) => status_change(change),
        watch_event::Event::Notice(message) => json!({ "event": "notice", "message": message }),
    };
    Some(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use strata_proto::RunStatus;

    fn record(epoch: u32, train: f64, val: f64) -> EpochRecord {
        EpochRecord {
            epoch,
            train_loss: train,
            val_loss: val,
            val_accuracy: 0.75,
            duration_ms: 12.5,
            samples_per_sec: 6400.0,
            groups: vec![GroupEpochStats {
                name: "head".into(),
                lr: 1e-3,
                grad_norm: 0.5,
                weight_norm: 3.0,
                update_ratio: 1e-3,
                frozen: false,
            }],
        }
    }

    #[test]
    fn gap_is_val_minus_train() {
        let value = epoch(&record(1, 0.5, 0.75));
        assert_eq!(value["gap"], json!(0.25));
        let value = epoch(&record(2, 0.75, 0.5));
        assert_eq!(value["gap"], json!(-0.25));
    }

    #[test]
    fn non_finite_floats_are_null() {
        let value = epoch(&record(3, f64::NAN, f64::INFINITY));
        assert_eq!(value["train_loss"], Value::Null);
        assert_eq!(value["val_loss"], Value::Null);
        assert_eq!(value["gap"], Value::Null);
        assert_eq!(value["val_accuracy"], json!(0.75));
        assert_eq!(number(f64::NEG_INFINITY), Value::Null);
    }

    #[test]
    fn epoch_has_stable_field_names() {
        let value = epoch(&record(1, 0.5, 0.75));
        let keys: Vec<&str> = value
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        for key in [
            "epoch",
            "train_loss",
            "val_loss",
            "gap",
            "val_accuracy",
            "duration_ms",
            "samples_per_sec",
            "groups",
        ] {
            assert!(keys.contains(&key), "missing {key}");
        }
        let group = &value["groups"][0];
        for key in [
            "name",
            "lr",
            "grad_norm",
            "weight_norm",
            "update_ratio",
            "frozen",
        ] {
            assert!(group.get(key).is_some(), "missing group.{key}");
        }
    }

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
        assert_eq!(
            value.as_object().unwrap().len(),
            25,
            "every RunConfig field"
        );
    }

    #[test]
    fn show_reports_status_label_and_epochs() {
        let response = GetRunResponse {
            run: Some(Run {
                id: "0123456789abcdef".into(),
                status: RunStatus::Completed as i32,
                parameters: vec![ParameterRate {
                    name: "head.weight".into(),
                    group: "head".into(),
                    shape: vec![3, 64],
                    lr: 1e-3,
                    frozen_until: 0,
                    init: "fresh".into(),
                }],
                ..Run::default()
            }),
            epochs: vec![record(1, 1.0, 1.5)],
            analysis: Some(RunAnalysis {
                best_epoch: 1,
                gap_final: 0.5,
                verdict: "too-short".into(),
                reason: "only 1 epoch was trained".into(),
                groups: vec![GroupDiagnosis {
                    name: "head".into(),
                    diagnosis: "ok".into(),
                    update_ratio: 1e-3,
                    advice: "keep its rate".into(),
                }],
                ..RunAnalysis::default()
            }),
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
    fn compare_puts_analysis_beside_each_run_and_names_the_best() {
        let response = CompareRunsResponse {
            runs: vec![RunComparison {
                run: Some(Run {
                    id: "b".into(),
                    name: "layered".into(),
                    status: RunStatus::Completed as i32,
                    parameters: vec![ParameterRate {
                        name: "head.weight".into(),
                        group: "head".into(),
                        shape: vec![3, 8],
                        lr: 1e-2,
                        frozen_until: 0,
                        init: "fresh".into(),
                    }],
                    ..Run::default()
                }),
                analysis: Some(RunAnalysis {
                    verdict: "good".into(),
                    best_epoch: 7,
                    best_val_loss: 0.25,
                    gap_final: f64::NAN,
                    ..RunAnalysis::default()
                }),
                epochs: vec![],
                rank: 1,
            }],
            best_run: "b".into(),
            summary: "b is best".into(),
        };
        let value = compare(&response);
        let run = &value["runs"][0];
        assert_eq!(run["id"], "b");
        assert_eq!(run["rank"], 1);
        assert_eq!(run["verdict"], "good");
        assert_eq!(run["best_epoch"], 7);
        assert_eq!(run["best_val_loss"], json!(0.25));
        assert_eq!(run["gap_final"], Value::Null);
        assert_eq!(run["rates"], "head=1e-2");
        assert_eq!(value["best_run"], "b");
        assert_eq!(value["summary"], "b is best");
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

    #[test]
    fn watch_events_are_tagged() {
        let epoch_event = WatchEvent {
            event: Some(watch_event::Event::Epoch(record(4, 0.5, 0.5))),
        };
        let value = watch_event(&epoch_event).unwrap();
        assert_eq!(value["event"], "epoch");
        assert_eq!(value["epoch"], 4);
        assert_eq!(value["gap"], json!(0.0));

        let status = WatchEvent {
            event: Some(watch_event::Event::Status(StatusChange {
                status: RunStatus::Diverged as i32,
                reason: "loss is NaN".into(),
            })),
        };
        assert_eq!(
            watch_event(&status).unwrap(),
            json!({"event": "status", "status": "diverged", "reason": "loss is NaN"})
        );

        let progress = WatchEvent {
            event: Some(watch_event::Event::Progress(BatchProgress {
                epoch: 1,
                batch: 3,
                batches: 25,
                loss: f64::NAN,
            })),
        };
        assert_eq!(
            watch_event(&progress).unwrap(),
            json!({"event": "progress", "epoch": 1, "batch": 3, "batches": 25, "loss": null})
        );

        let notice = WatchEvent {
            event: Some(watch_event::Event::Notice("skipped".into())),
        };
        assert_eq!(
            watch_event(&notice).unwrap(),
            json!({"event": "notice", "message": "skipped"})
        );
        assert_eq!(watch_event(&WatchEvent { event: None }), None);
    }

    /// Random finite f64s of every magnitude (uniform over bit patterns, so subnormals, huge and
    /// tiny values all appear), plus values known to trip inexact parsers.
    fn awkward_floats(count: usize) -> Vec<f64> {
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = move || {
            // splitmix64: deterministic, no dependency.
            state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        };
        let mut values = vec![
            0.20529195992896954, // read back one unit off by serde_json's default parser
            0.2052919599289695,
            5e-324,                     // the smallest subnormal
            2.225_073_858_507_201e-308, // the largest subnormal
            f64::MIN_POSITIVE,
            f64::MAX,
            -f64::MAX,
            f64::EPSILON,
            -0.0,
            0.1,
            1e300 * 10.0,
            9007199254740993.0,
        ];
        while values.len() < count {
            let value = f64::from_bits(next());
            if value.is_finite() {
                values.push(value);
            }
            // Also values in the range losses live in.
            values.push(f64::from_bits(next() >> 12 | 0x3fe0_0000_0000_0000) - 0.5);
        }
        // Pairs: a train and a validation loss per epoch.
        values.truncate(count & !1);
        values
    }

    /// The JSON text `strata show --json` would print for epochs carrying these losses.
    fn printed_epochs(values: &[f64]) -> String {
        let epochs: Vec<Value> = values
            .chunks(2)
            .enumerate()
            .map(|(i, pair)| epoch(&record(i as u32 + 1, pair[0], pair[1])))
            .collect();
        Value::Array(epochs).to_string()
    }

    fn read_back(text: &str) -> Vec<f64> {
        let parsed: Value = serde_json::from_str(text).unwrap();
        parsed
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|e| {
                [
                    e["train_loss"].as_f64().unwrap(),
                    e["val_loss"].as_f64().unwrap(),
                ]
            })
            .collect()
    }

    #[test]
    fn printed_floats_read_back_exactly() {
        let values = awkward_floats(4000);
        let text = printed_epochs(&values);
        let back = read_back(&text);
        assert_eq!(back.len(), values.len());
        for (printed, read) in values.iter().zip(&back) {
            assert_eq!(
                printed.to_bits(),
                read.to_bits(),
                "{printed:e} read back as {read:e}"
            );
        }
    }

    /// Python's `json` (a correct parser other tools use) reads the same text to the same bits.
    #[test]
    fn printed_floats_read_back_exactly_in_python() {
        use std::io::Write;
        use std::process::{Command, Stdio};
        let values = awkward_floats(4000);
        let text = printed_epochs(&values);
        let script = "import json, struct, sys\n\
            for e in json.load(sys.stdin):\n\
            \x20   for k in ('train_loss', 'val_loss'):\n\
            \x20       print(struct.pack('>d', e[k]).hex())\n";
        let child = Command::new("python3")
            .args(["-c", script])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn();
        let Ok(mut child) = child else {
            eprintln!("skipped: python3 is not installed, so Python's json cannot be checked");
            return;
        };
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let bits: Vec<u64> = String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(|line| u64::from_str_radix(line, 16).unwrap())
            .collect();
        let expected: Vec<u64> = values
            .chunks(2)
            .flat_map(|pair| [pair[0].to_bits(), pair[1].to_bits()])
            .collect();
        assert_eq!(bits.len(), expected.len());
        for (got, want) in bits.iter().zip(&expected) {
            assert_eq!(
                got,
                want,
                "Python read {:e} as {:e}",
                f64::from_bits(*want),
                f64::from_bits(*got)
            );
        }
    }
}
