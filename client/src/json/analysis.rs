//! The daemon's analysis of a run, and `strata compare --json`.

use serde_json::{json, Map, Value};
use strata_client::{diagnosis_label, status_label, verdict_label};
use strata_proto::{
    CompareRunsResponse, GroupDiagnosis, Run, RunAnalysis, RunComparison, TwinComparison,
};

use crate::json::number::number;
use crate::render::rates::rate_setup;

/// One group's diagnosis: `{"name","diagnosis","update_ratio","advice"}`.
pub fn group_diagnosis(group: &GroupDiagnosis) -> Value {
    json!({
        "name": group.name,
        "diagnosis": diagnosis_label(group.diagnosis),
        "update_ratio": number(group.update_ratio),
        "advice": group.advice,
    })
}

/// The fields of the daemon's analysis, as a map so that `compare` can put them beside the run's.
fn analysis_fields(analysis: &RunAnalysis) -> Map<String, Value> {
    let value = json!({
        "verdict": verdict_label(analysis.verdict),
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
    fields.insert(
        "twin".into(),
        comparison.twin.as_ref().map_or(Value::Null, twin),
    );
    Value::Object(fields)
}

/// A run against its single-rate twin: `{"twin_run_id","twin_lr","run_best_val_loss",
/// "twin_best_val_loss","twin_best_epoch","run_reached_twin_best_at","best_ratio",
/// "run_gap_at_best","twin_gap_at_best","run_verdict","twin_verdict","outcome","summary"}`.
pub fn twin(c: &TwinComparison) -> Value {
    json!({
        "twin_run_id": c.twin_run_id,
        "twin_lr": number(c.twin_lr),
        "run_best_val_loss": number(c.run_best_val_loss),
        "twin_best_val_loss": number(c.twin_best_val_loss),
        "twin_best_epoch": c.twin_best_epoch,
        "run_reached_twin_best_at": c.run_reached_twin_best_at,
        "best_ratio": number(c.best_ratio),
        "run_gap_at_best": number(c.run_gap_at_best),
        "twin_gap_at_best": number(c.twin_gap_at_best),
        "run_verdict": verdict_label(c.run_verdict),
        "twin_verdict": verdict_label(c.twin_verdict),
        "outcome": c.outcome,
        "summary": c.summary,
    })
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::parameter;
    use strata_proto::RunStatus;

    #[test]
    fn compare_puts_analysis_beside_each_run_and_names_the_best() {
        let response = CompareRunsResponse {
            runs: vec![RunComparison {
                run: Some(Run {
                    id: "b".into(),
                    name: "layered".into(),
                    status: RunStatus::Completed as i32,
                    parameters: vec![parameter("head.weight", "head", vec![3, 8], 1e-2, 0)],
                    groups: crate::fixtures::groups(&[parameter(
                        "head.weight",
                        "head",
                        vec![3, 8],
                        1e-2,
                        0,
                    )]),
                    ..Run::default()
                }),
                analysis: Some(RunAnalysis {
                    verdict: strata_proto::Verdict::Good as i32,
                    best_epoch: 7,
                    best_val_loss: 0.25,
                    gap_final: f64::NAN,
                    ..RunAnalysis::default()
                }),
                epochs: vec![],
                rank: 1,
                twin: None,
                epochs_thinned: false,
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
}
