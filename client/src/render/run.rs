//! `strata show`: the run summary, its rates, its epochs and the daemon's analysis.

use strata_proto::{GetRunResponse, Leakage, Run, RunConfig, RunFacts, Task};

use crate::render::analysis::show_section;
use crate::render::epochs::epoch_table;
use crate::render::format::{
    duration, epochs_done_of_total, metric, or_dash, plain_number, status_with_reason, utc_time,
};
use crate::render::rates::{rate_spec, rate_table};
use crate::render::table::key_values;

/// `main  (a, b, c)` with only the details that are set; `main` alone when none are.
fn with_details(main: &str, details: Vec<String>) -> String {
    let main = or_dash(main);
    if details.is_empty() {
        main
    } else {
        format!("{main}  ({})", details.join(", "))
    }
}

/// The run summary at the top of `strata show`.
pub fn run_header(run: &Run) -> String {
    let default_config = RunConfig::default();
    let config = run.config.as_ref().unwrap_or(&default_config);

    let mut pairs: Vec<(&str, String)> = Vec::new();
    pairs.push((
        "Run",
        if run.name.is_empty() {
            run.id.clone()
        } else {
            format!("{}  {}", run.id, run.name)
        },
    ));
    if !run.tags.is_empty() {
        pairs.push(("Tags", run.tags.join(", ")));
    }
    if !run.twin.is_empty() {
        pairs.push(("Twin", format!("{} (every group at one rate)", run.twin)));
    }
    if !run.twin_of.is_empty() {
        pairs.push((
            "Twin of",
            format!("{} (this run is its single-rate twin)", run.twin_of),
        ));
    }
    if let Some(trial) = &run.sweep {
        let settings: Vec<String> = trial
            .settings
            .iter()
            .map(|s| format!("{}={}", s.name, s.value))
            .collect();
        pairs.push((
            "Sweep",
            format!(
                "{} trial {} ({})",
                trial.sweep_id,
                trial.trial,
                settings.join(", ")
            ),
        ));
    }
    if run.external {
        pairs.push((
            "Origin",
            "external (logged from outside; stratad did not train it)".to_string(),
        ));
    }
    pairs.push(("Status", status_with_reason(run.status, &run.reason)));
    pairs.push((
        "Dataset",
        with_details(&config.dataset, dataset_details(config)),
    ));
    if let Some(task) = run.facts.as_ref().and_then(task_line) {
        pairs.push(("Task", task));
    }
    if let Some(rows) = run.facts.as_ref().and_then(rows_line) {
        pairs.push(("Data", rows));
    }
    if let Some(leakage) = run.facts.as_ref().and_then(|f| f.leakage.as_ref()) {
        pairs.push(("Leakage", leakage_line(leakage)));
    }
    let model = if run.parameter_count > 0 {
        vec![format!("{} parameters", run.parameter_count)]
    } else {
        vec![]
    };
    pairs.push(("Model", with_details(&config.model, model)));
    if run.external {
        // Its optimizer, rates and schedule are whatever its client said they are.
        pairs.push(("Hyperparameters", hyperparameters_line(run)));
        pairs.push(("Epochs", epochs_done_of_total(run)));
        pairs.push(("Created", created(run)));
        return key_values(&pairs);
    }
    pairs.push((
        "Optimizer",
        with_details(&config.optimizer, optimizer_details(config)),
    ));
    pairs.push(("Rates", rate_spec(config)));
    if !config.init_from.is_empty() {
        pairs.push(("Init from", config.init_from.clone()));
    }
    let batch = config
        .batch_size
        .map(|b| format!("batch size {b}"))
        .into_iter()
        .collect();
    pairs.push(("Epochs", with_details(&epochs_done_of_total(run), batch)));
    pairs.push((
        "Seed",
        config.seed.map_or("-".to_string(), |s| s.to_string()),
    ));
    // The device the run trained on, once it has; until then the one it asked for.
    let device = if run.device.is_empty() {
        &config.device
    } else {
        &run.device
    };
    let device = if !run.worker.is_empty() {
        format!("{} (remote worker {})", or_dash(device), run.worker)
    } else if run.worker_pid > 0 {
        format!("{} (worker pid {})", or_dash(device), run.worker_pid)
    } else {
        or_dash(device)
    };
    pairs.push(("Device", device));
    if !config.on_worker.is_empty() {
        pairs.push(("On worker", config.on_worker.clone()));
    }
    if !run.waiting.is_empty() {
        pairs.push(("Waiting", run.waiting.clone()));
    }
    if run.worker_losses > 0 {
        pairs.push(("Workers lost", run.worker_losses.to_string()));
    }
    pairs.push(("Created", created(run)));
    key_values(&pairs)
}

/// An external run's hyperparameters, `key=value` sorted by key; `-` when none.
fn hyperparameters_line(run: &Run) -> String {
    let mut pairs: Vec<String> = run
        .hyperparameters
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    pairs.sort();
    or_dash(&pairs.join(", "))
}

/// What the run learns and what a model that learned nothing scores: `classification, 10 classes
/// (12 distinct integer labels), label column 9 of 9; a uniform guess scores 2.303 (chance
/// 10%)`.
pub fn task_line(facts: &RunFacts) -> Option<String> {
    let mut text = match Task::try_from(facts.task).ok()? {
        Task::Classification => format!("classification, {} classes", facts.classes),
        Task::Regression => "regression".to_string(),
        Task::Unspecified => return None,
    };
    if !facts.task_reason.is_empty() {
        text.push_str(&format!(" ({})", facts.task_reason));
    }
    if !facts.label.is_empty() {
        text.push_str(&format!(", label {}", facts.label));
    }
    match (Task::try_from(facts.task), facts.baseline_loss) {
        (Ok(Task::Classification), Some(baseline)) => text.push_str(&format!(
            "; a uniform guess scores {}{}",
            metric(baseline),
            facts
                .chance_accuracy
                .map_or(String::new(), |c| format!(" (chance {:.0}%)", c * 100.0))
        )),
        (Ok(Task::Regression), Some(baseline)) => text.push_str(&format!(
            "; predicting the mean scores {} (the targets' variance)",
            metric(baseline)
        )),
        _ => {}
    }
    Some(text)
}

/// `3200 training rows, 800 validation rows, 100 steps per epoch`, once the data was loaded.
fn rows_line(facts: &RunFacts) -> Option<String> {
    (facts.train_rows > 0).then(|| {
        format!(
            "{} training rows, {} validation rows, {} steps per epoch",
            facts.train_rows, facts.val_rows, facts.steps_per_epoch
        )
    })
}

/// What the leakage check found, each finding in full (`none found` when clean), and what
/// `--dedupe` dropped.
fn leakage_line(leakage: &Leakage) -> String {
    let mut parts = if leakage.findings.is_empty() {
        vec![format!(
            "none found ({} validation rows checked against {} training rows)",
            leakage.val_rows, leakage.train_rows
        )]
    } else {
        leakage.findings.clone()
    };
    let dropped: Vec<String> = [
        (leakage.dropped_repeats, "repeated rows before the split"),
        (
            leakage.dropped_val_copies,
            "validation rows that repeat a training row",
        ),
    ]
    .into_iter()
    .filter(|(count, _)| *count > 0)
    .map(|(count, what)| format!("{count} {what}"))
    .collect();
    if !dropped.is_empty() {
        parts.push(format!("--dedupe dropped {}", dropped.join(" and ")));
    }
    parts.join("; ")
}

/// The dataset's details that are set: samples, noise, classes, label, task, validation.
fn dataset_details(config: &RunConfig) -> Vec<String> {
    let mut details = Vec::new();
    if let Some(samples) = config.samples {
        details.push(format!("{samples} samples"));
    }
    if let Some(noise) = config.noise {
        details.push(format!("noise {}", plain_number(noise)));
    }
    if let Some(classes) = config.classes {
        details.push(format!("{classes} classes"));
    }
    if !config.label.is_empty() {
        details.push(format!("label {}", config.label));
    }
    if !config.task.is_empty() {
        details.push(config.task.clone());
    }
    if let Some(fraction) = config.val_fraction {
        details.push(format!("val fraction {}", plain_number(fraction)));
    }
    if !config.val_dataset.is_empty() {
        details.push(format!("validation {}", config.val_dataset));
    }
    if config.dedupe {
        details.push("dedupe".to_string());
    }
    details
}

/// The optimizer's details that are set: momentum, weight decay, gradient clipping.
fn optimizer_details(config: &RunConfig) -> Vec<String> {
    let mut details = Vec::new();
    if let Some(momentum) = config.momentum {
        details.push(format!("momentum {}", plain_number(momentum)));
    }
    if let Some(decay) = config.weight_decay {
        details.push(format!("weight decay {}", plain_number(decay)));
    }
    if let Some(norm) = config.clip_grad_norm {
        details.push(format!("gradient norm clipped to {}", plain_number(norm)));
    }
    details
}

/// `YYYY-MM-DD HH:MM:SS UTC`, and how long the run trained once it has finished.
fn created(run: &Run) -> String {
    let mut created = format!("{} UTC", utc_time(run.created_at_ms));
    if run.started_at_ms > 0 && run.finished_at_ms >= run.started_at_ms {
        created.push_str(&format!(
            "  (trained in {})",
            duration((run.finished_at_ms - run.started_at_ms) as f64)
        ));
    }
    created
}

/// `strata show`: the summary, the per-group rate table, the epoch table and the daemon's
/// analysis (verdict, reason, per-group diagnoses).
pub fn show(response: &GetRunResponse) -> String {
    let default_run = Run::default();
    let run = response.run.as_ref().unwrap_or(&default_run);
    let mut sections = vec![
        run_header(run),
        rate_table(&run.groups, &run.parameters),
        epoch_table(
            &response.epochs,
            strata_client::metric_label(run.val_metric),
        ),
    ];
    if response.epochs_thinned {
        sections.push(format!(
            "Epochs     {} of {} shown, evenly spread (the first, the best and the last among them); `strata export` writes them all",
            response.epochs.len(),
            run.epochs_done
        ));
    }
    if let Some(analysis) = &response.analysis {
        sections.push(show_section(analysis));
    }
    if let Some(twin) = &response.twin {
        sections.push(format!("Twin       {}", twin.summary));
    }
    sections.join("\n\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use strata_proto::RunStatus;

    #[test]
    fn the_leakage_line_lists_findings_or_says_none_were_found() {
        let clean = Leakage {
            val_rows: 200,
            train_rows: 800,
            ..Leakage::default()
        };
        assert_eq!(
            leakage_line(&clean),
            "none found (200 validation rows checked against 800 training rows)"
        );
        let deduped = Leakage {
            findings: vec!["column 3 equals the label on every training row".into()],
            dropped_repeats: 50,
            ..clean
        };
        assert_eq!(
            leakage_line(&deduped),
            "column 3 equals the label on every training row; --dedupe dropped 50 repeated rows before the split"
        );
    }

    #[test]
    fn header_names_status_reason_and_rate_spec() {
        let run = Run {
            id: "0123456789abcdef".into(),
            name: "baseline".into(),
            status: RunStatus::Diverged as i32,
            reason: "loss became NaN at epoch 2".into(),
            config: Some(RunConfig {
                dataset: "moons".into(),
                samples: Some(500),
                optimizer: "sgd".into(),
                momentum: Some(0.9),
                lr: Some(1e-2),
                layer_lr: vec!["layer0=1e-4".into()],
                schedule: "constant".into(),
                epochs: Some(5),
                seed: Some(7),
                ..RunConfig::default()
            }),
            epochs_done: 2,
            device: "cpu".into(),
            ..Run::default()
        };
        let header = run_header(&run);
        assert!(
            header.contains("Run        0123456789abcdef  baseline"),
            "{header}"
        );
        assert!(
            header.contains("Status     diverged: loss became NaN at epoch 2"),
            "{header}"
        );
        assert!(
            header.contains("Dataset    moons  (500 samples)"),
            "{header}"
        );
        assert!(
            header.contains("Optimizer  sgd  (momentum 0.9)"),
            "{header}"
        );
        assert!(
            header.contains("Rates      lr 1e-2; layer-lr layer0=1e-4; schedule constant"),
            "{header}"
        );
        assert!(header.contains("Epochs     2/5"), "{header}");
        assert!(header.contains("Seed       7"), "{header}");
        assert!(header.contains("Device     cpu"), "{header}");
    }

    #[test]
    fn header_shows_a_file_dataset_with_its_label_task_and_validation_file() {
        let run = Run {
            config: Some(RunConfig {
                dataset: "csv:/data/train.csv".into(),
                label: "species".into(),
                task: "classification".into(),
                val_dataset: "csv:/data/val.csv".into(),
                ..RunConfig::default()
            }),
            ..Run::default()
        };
        let header = run_header(&run);
        assert!(
            header.contains(
                "Dataset    csv:/data/train.csv  (label species, classification, validation csv:/data/val.csv)"
            ),
            "{header}"
        );
    }
}
