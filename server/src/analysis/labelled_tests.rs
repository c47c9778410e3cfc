//! The analysis of every labelled curve in `tests/curves/runs.json` (real PyTorch runs labelled
//! blind, twice, under `tests/curves/RUBRIC.md`), in process: the quick check while changing a
//! rule (`cargo test -p strata-server --lib labelled -- --nocapture` prints each run's verdict,
//! reason and flagged groups). `tests/tests/curves.rs` replays the same runs through a daemon's
//! external-run API, as a user's logger sends them, and holds the same goals.

use serde_json::Value;

use super::{analyse, Thresholds};
use crate::domain::{
    DataFacts, Diagnosis, EpochMetrics, FrozenUntil, GroupStats, ParamInit, ParameterRate, RunId,
    RunOrigin, RunRecord, RunStatus, TaskFacts,
};

fn num(v: &Value) -> f64 {
    v.as_f64().unwrap_or(f64::NAN)
}

fn record(run: &Value) -> (RunRecord, Vec<EpochMetrics>) {
    let task = if run["task"] == "classification" {
        TaskFacts::Classification {
            classes: run["classes"].as_u64().unwrap() as u32,
        }
    } else {
        TaskFacts::Regression {
            target_variance: run["target_variance"].as_f64(),
        }
    };
    let mut epochs = Vec::new();
    for e in run["epochs"].as_array().unwrap() {
        let m = EpochMetrics {
            epoch: e["epoch"].as_u64().unwrap() as u32,
            train_loss: num(&e["train_loss"]),
            val_loss: num(&e["val_loss"]),
            val_metric: num(&e["val_metric"]),
            duration_ms: 0.0,
            samples_per_sec: 0.0,
            groups: e["groups"]
                .as_array()
                .unwrap()
                .iter()
                .map(|g| GroupStats {
                    name: g["name"].as_str().unwrap().into(),
                    lr: num(&g["lr"]),
                    grad_norm: num(&g["grad_norm"]),
                    weight_norm: num(&g["weight_norm"]),
                    update_ratio: num(&g["update_ratio"]),
                    frozen: num(&g["lr"]) == 0.0,
                })
                .collect(),
            extra: Default::default(),
            no_validation: false,
        };
        let finite = m.train_loss.is_finite() && m.val_loss.is_finite();
        epochs.push(m);
        if !finite {
            break;
        }
    }
    let first = &run["epochs"][0]["groups"];
    let parameters = first
        .as_array()
        .unwrap()
        .iter()
        .map(|g| ParameterRate {
            name: g["name"].as_str().unwrap().into(),
            group: g["name"].as_str().unwrap().into(),
            shape: Vec::new(),
            lr: num(&g["lr"]),
            frozen: FrozenUntil::Never,
            init: ParamInit::Fresh,
        })
        .collect();
    let diverged = epochs
        .iter()
        .any(|e| !(e.train_loss.is_finite() && e.val_loss.is_finite()));
    let record = RunRecord {
        status: if diverged {
            RunStatus::Diverged
        } else {
            RunStatus::Completed
        },
        origin: RunOrigin::External {
            hyperparameters: Vec::new(),
            client_key: String::new(),
        },
        ..RunRecord::queued(
            RunId(1),
            Default::default(),
            parameters,
            DataFacts {
                train_rows: run["train_rows"].as_u64().unwrap_or(0),
                val_rows: run["val_rows"].as_u64().unwrap_or(0),
                steps_per_epoch: run["steps_per_epoch"].as_u64().unwrap_or(0),
                ..DataFacts::of_task(task)
            },
        )
    };
    (record, epochs)
}

#[test]
fn labelled_curves_agree_with_their_labellers() {
    // STRATA_CURVES=FILE scores another labelled set of the same format (without the goals).
    let path = std::env::var("STRATA_CURVES").unwrap_or_else(|_| {
        concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/curves/runs.json").to_string()
    });
    let runs: Vec<Value> = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let only = std::env::var("ONLY").ok();
    let (mut agree, mut total) = (0, 0);
    let (mut found, mut named, mut alarms, mut reasonable_groups) = (0, 0, 0, 0);
    for run in &runs {
        let id = run["id"].as_str().unwrap();
        if only
            .as_deref()
            .is_some_and(|o| !o.split(',').any(|x| x == id))
        {
            continue;
        }
        let (record, epochs) = record(run);
        let a = analyse(&record, &epochs, &Thresholds::default());
        let acceptable: Vec<&str> = run["labels"]["acceptable"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        let ok = acceptable.contains(&a.verdict.label());
        total += 1;
        agree += usize::from(ok);
        let groups: Vec<String> = a
            .groups
            .iter()
            .filter(|g| g.diagnosis != Diagnosis::Ok)
            .map(|g| format!("{}={}", g.name, g.diagnosis.label()))
            .collect();
        let mut group_note = String::new();
        if let Some(wrong) = run["wrong_group"].as_object() {
            named += 1;
            let want = wrong["direction"].as_str().unwrap();
            let hit = a
                .groups
                .iter()
                .any(|g| g.name == wrong["group"].as_str().unwrap() && g.diagnosis.label() == want);
            found += usize::from(hit);
            group_note = format!(
                " WANT {}={} {}",
                wrong["group"].as_str().unwrap(),
                want,
                if hit { "found" } else { "MISSED" }
            );
        }
        if run["all_groups_reasonable"] == true {
            for g in &a.groups {
                if matches!(g.diagnosis, Diagnosis::TooHigh | Diagnosis::TooLow) {
                    println!(
                        "ALARM {id} {} {}: {}",
                        g.name,
                        g.diagnosis.label(),
                        g.advice
                    );
                }
            }
            reasonable_groups += a.groups.len();
            alarms += a
                .groups
                .iter()
                .filter(|g| matches!(g.diagnosis, Diagnosis::TooHigh | Diagnosis::TooLow))
                .count();
        }
        println!(
            "{} {id} {:>12} {:?} groups[{}]{group_note}\n    {}",
            if ok { "  " } else { "XX" },
            a.verdict.label(),
            acceptable,
            groups.join(" "),
            a.reason
        );
    }
    println!(
        "agreement {agree}/{total}; wrong groups found {found}/{named}; false alarms {alarms}/{reasonable_groups}"
    );
    if only.is_none() && std::env::var_os("STRATA_CURVES").is_none() {
        // The goals: a verdict the labellers gave for ≥ 95% of runs, ≥ 90% of the groups
        // the configuration names found, ≤ 5% of the groups of textbook runs flagged.
        assert!(agree * 100 >= 95 * total, "agreement {agree}/{total}");
        assert!(found * 100 >= 90 * named, "groups found {found}/{named}");
        assert!(
            alarms * 100 <= 5 * reasonable_groups,
            "false alarms {alarms}/{reasonable_groups}"
        );
    }
}
