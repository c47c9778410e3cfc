//! `strata export --format tensorboard` end to end: two tiny runs trained on a real daemon are
//! exported at once, and TensorBoard's own reader (`EventAccumulator`, which checks every
//! record's CRCs) reads back, for each run, every epoch's scalars as `strata show --json` has
//! them, to float32 precision.
//!
//! Offline: pip installs TensorBoard from `.python-wheels/`, which `scripts/setup-test-tools.sh`
//! fills; the test skips, saying why, when that or python3 is missing.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    process::Command,
};

use serde_json::Value;
use strata_e2e::{run_ok, show, start_run, watch_to_end, Daemon};

/// Reads every event file under each folder given and prints `{folder: {tag: [[step, value]]}}`.
const READ_SCALARS_PY: &str = r#"
import json, sys
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
out = {}
for folder in sys.argv[1:]:
    acc = EventAccumulator(folder)
    acc.Reload()
    out[folder] = {
        tag: [[e.step, e.value] for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]
    }
print(json.dumps(out))
"#;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Why the test cannot run here, if it cannot.
fn missing_tools(root: &Path) -> Option<String> {
    let python = Command::new("python3").arg("--version").output();
    if !python.is_ok_and(|out| out.status.success()) {
        return Some("python3 is not installed".into());
    }
    let has_tensorboard = std::fs::read_dir(root.join(".python-wheels")).is_ok_and(|entries| {
        entries
            .flatten()
            .any(|e| e.file_name().to_string_lossy().starts_with("tensorboard-"))
    });
    if !has_tensorboard {
        return Some(
            ".python-wheels/ has no tensorboard wheel; run scripts/setup-test-tools.sh".into(),
        );
    }
    None
}

/// The scalars a run's export must hold, from `show --json`: tag → [(step, value)].
fn expected_scalars(shown: &Value) -> BTreeMap<String, Vec<(i64, f64)>> {
    let mut scalars: BTreeMap<String, Vec<(i64, f64)>> = BTreeMap::new();
    let metric = format!("metric/val_{}", shown["val_metric"].as_str().unwrap());
    for epoch in shown["epochs"].as_array().unwrap() {
        let step = epoch["epoch"].as_i64().unwrap();
        let mut add = |tag: String, value: &Value| {
            let value = value.as_f64().unwrap_or_else(|| panic!("{tag}: {epoch}"));
            scalars.entry(tag).or_default().push((step, value));
        };
        add("loss/train".into(), &epoch["train_loss"]);
        add("loss/val".into(), &epoch["val_loss"]);
        add(metric.clone(), &epoch[&metric["metric/".len()..]]);
        for group in epoch["groups"].as_array().unwrap() {
            let name = group["name"].as_str().unwrap();
            for field in ["lr", "grad_norm", "weight_norm", "update_ratio"] {
                add(format!("{field}/{name}"), &group[field]);
            }
        }
    }
    scalars
}

#[test]
fn tensorboard_reads_back_every_scalar_of_every_exported_run() {
    let root = repo_root();
    if let Some(why) = missing_tools(&root) {
        println!("skipped: {why}");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let venv = tmp.path().join("venv");
    run_ok(
        Command::new("python3").args(["-m", "venv"]).arg(&venv),
        "python3 -m venv",
    );
    run_ok(
        Command::new(venv.join("bin/pip"))
            .args(["install", "-q", "--no-index", "--find-links"])
            .arg(root.join(".python-wheels"))
            .arg("tensorboard"),
        "pip install tensorboard",
    );

    let daemon = Daemon::start();
    let named = start_run(&daemon, &["--epochs", "3", "--name", "tb a/b"]);
    let unnamed = start_run(&daemon, &["--epochs", "2", "--freeze", "layer0"]);
    for id in [&named, &unnamed] {
        assert_eq!(watch_to_end(&daemon, id).0, 0, "run {id}");
    }
    let dir = tmp.path().join("tb");
    let export = |runs: &[&str]| {
        let mut args = vec!["export"];
        args.extend_from_slice(runs);
        args.extend(["--format", "tensorboard", "-o", dir.to_str().unwrap()]);
        let out = daemon.strata(&args);
        assert_eq!(out.code, 0, "{out:?}");
        out
    };
    // A prefix names a run as well as its id; exporting again replaces the earlier files.
    export(&[&named, &unnamed[..6]]);
    let out = export(&[&named, &unnamed]);
    assert!(out.stderr.contains("tensorboard --logdir"), "{out:?}");

    let folders = [
        (dir.join(format!("{named}-tb_a_b")), &named),
        (dir.join(&unnamed), &unnamed),
    ];
    for (folder, _) in &folders {
        let files: Vec<String> = std::fs::read_dir(folder)
            .unwrap_or_else(|e| panic!("{}: {e}", folder.display()))
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(files.len(), 1, "one event file per run: {files:?}");
        assert!(
            files[0].starts_with("events.out.tfevents.") && files[0].ends_with(".strata"),
            "{files:?}"
        );
    }

    let mut read = Command::new(venv.join("bin/python"));
    read.arg("-c").arg(READ_SCALARS_PY);
    for (folder, _) in &folders {
        read.arg(folder);
    }
    let stdout = run_ok(&mut read, "reading the event files with TensorBoard");
    let read: Value = serde_json::from_str(stdout.trim()).unwrap();

    for (folder, id) in &folders {
        let shown = show(&daemon, id);
        let expected = expected_scalars(&shown);
        let actual = &read[folder.to_str().unwrap()];
        let tags: Vec<&String> = actual.as_object().unwrap().keys().collect();
        assert_eq!(tags, expected.keys().collect::<Vec<_>>(), "run {id}");
        for (tag, points) in &expected {
            let got: Vec<(i64, f32)> = actual[tag]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| (p[0].as_i64().unwrap(), p[1].as_f64().unwrap() as f32))
                .collect();
            let want: Vec<(i64, f32)> = points.iter().map(|&(s, v)| (s, v as f32)).collect();
            assert_eq!(got, want, "run {id}, {tag}");
        }
    }
    // The frozen layer's points are there, at 0, not left out.
    let zeros = &read[folders[1].0.to_str().unwrap()]["update_ratio/layer0"];
    assert_eq!(zeros, &serde_json::json!([[1, 0.0], [2, 0.0]]), "{zeros}");
}
