//! Real data and more models, end to end: CSV and IDX files written by the tests, an `mlp` with
//! options, the `cnn`, and a TorchScript module made by PyTorch itself, trained by a real daemon.

use std::{
    io::Write,
    path::{Path, PathBuf},
};

use serde_json::Value;
use strata_e2e::{close, group, start_with_flags, watch_to_end, Daemon};
use strata_rng::SplitMix64;

const SPECIES: [&str; 3] = ["setosa", "versicolor", "virginica"];

/// 300 rows: three features and a text class in the middle column `species`, separable by
/// the first two features.
fn classification_csv(dir: &Path) -> PathBuf {
    let mut rng = SplitMix64::new(1);
    let mut text = String::from("x1,x2,species,x3\n");
    for i in 0..300 {
        let class = i % 3;
        let angle = class as f64 * 2.1;
        let (x1, x2) = (
            angle.cos() + 0.3 * rng.signed(),
            angle.sin() + 0.3 * rng.signed(),
        );
        text.push_str(&format!(
            "{x1:.4},{x2:.4},{},{:.4}\n",
            SPECIES[class],
            rng.signed()
        ));
    }
    let path = dir.join("species.csv");
    std::fs::write(&path, text).unwrap();
    path
}

/// Rows of `y,a,b,c` with y = 2a − b + noise, no header.
fn regression_csv(dir: &Path, name: &str, rows: usize, seed: u64) -> PathBuf {
    let mut rng = SplitMix64::new(seed);
    let mut text = String::new();
    for _ in 0..rows {
        let (a, b, c) = (rng.signed(), rng.signed(), rng.signed());
        let y = 2.0 * a - b + 0.05 * rng.signed();
        text.push_str(&format!("{y:.5},{a:.5},{b:.5},{c:.5}\n"));
    }
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn dry_run(daemon: &Daemon, args: &[&str]) -> Value {
    let mut all = vec!["start", "--dry-run", "--json"];
    all.extend_from_slice(args);
    daemon.strata(&all).json()
}

/// Trains the run to its end and returns `show --json`, asserting it completed with finite
/// losses in every epoch.
fn completed(daemon: &Daemon, id: &str, epochs: usize) -> Value {
    let (code, events) = watch_to_end(daemon, id);
    assert_eq!(
        code,
        0,
        "the run did not complete: {:?}; log:\n{}",
        events.last(),
        daemon.log()
    );
    let show = daemon.strata(&["show", id, "--json"]).json();
    assert_eq!(show["status"], "completed", "{show}");
    let stored = show["epochs"].as_array().expect("epochs");
    assert_eq!(stored.len(), epochs, "{show}");
    // The validation metric is named for what it is: accuracy, or R² for a regression.
    let metric = match show["val_metric"].as_str() {
        Some("r2") => "val_r2",
        _ => "val_accuracy",
    };
    for epoch in stored {
        for field in ["train_loss", "val_loss", metric] {
            let value = epoch[field]
                .as_f64()
                .unwrap_or_else(|| panic!("{field} is not a finite number: {epoch}"));
            assert!(value.is_finite(), "{field} = {value}");
        }
    }
    show
}

fn parameter<'a>(table: &'a Value, name: &str) -> &'a Value {
    table["parameters"]
        .as_array()
        .and_then(|ps| ps.iter().find(|p| p["name"] == name))
        .unwrap_or_else(|| panic!("no parameter {name} in {table}"))
}

fn names(table: &Value) -> Vec<String> {
    table["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn csv_classification_and_regression_train() {
    let tmp = tempfile::tempdir().unwrap();
    let daemon = Daemon::start();

    // Classification: text labels in a named column, a seeded split.
    let species = classification_csv(tmp.path());
    let dataset = format!("csv:{}", species.display());
    let common = [
        "--dataset",
        dataset.as_str(),
        "--label",
        "species",
        "--model",
        "mlp:16",
        "--epochs",
        "3",
        "--lr",
        "1e-2",
    ];
    let table = dry_run(&daemon, &common);
    assert_eq!(
        parameter(&table, "layer0.weight")["shape"],
        serde_json::json!([16, 3]),
        "three feature columns: {table}"
    );
    assert_eq!(
        parameter(&table, "head.weight")["shape"],
        serde_json::json!([3, 16]),
        "three classes: {table}"
    );
    assert_eq!(table["config"]["task"], "classification");
    let id = start_with_flags(&daemon, &common);
    let show = completed(&daemon, &id, 3);
    assert_eq!(show["config"]["label"], "species");
    assert_eq!(show["config"]["val_fraction"], 0.2);
    assert_eq!(show["val_metric"], "accuracy");
    let accuracy = show["epochs"][2]["val_accuracy"].as_f64().unwrap();
    println!("validation accuracy after 3 epochs: {accuracy}");
    assert!(
        accuracy > 0.6,
        "separable classes should be learned: {accuracy}"
    );

    // Regression: no header, the label by index, a separate validation file.
    let train = regression_csv(tmp.path(), "train.csv", 240, 2);
    let val = regression_csv(tmp.path(), "val.csv", 60, 3);
    let (dataset, val_dataset) = (
        format!("csv:{}", train.display()),
        format!("csv:{}", val.display()),
    );
    let id = start_with_flags(
        &daemon,
        &[
            "--dataset",
            &dataset,
            "--val-dataset",
            &val_dataset,
            "--label",
            "1",
            "--model",
            "mlp:16",
            "--epochs",
            "2",
        ],
    );
    let show = completed(&daemon, &id, 2);
    assert_eq!(show["config"]["task"], "regression", "fractional labels");
    assert_eq!(show["config"]["val_fraction"], Value::Null);
    assert_eq!(show["config"]["val_dataset"], val_dataset.as_str());
    assert_eq!(show["val_metric"], "r2");
    assert_eq!(
        parameter(&show, "head.weight")["shape"],
        serde_json::json!([1, 16])
    );
}

#[test]
fn malformed_csv_files_are_rejected_naming_the_problem_and_nothing_is_stored() {
    let tmp = tempfile::tempdir().unwrap();
    let daemon = Daemon::start();
    let write = |name: &str, text: &str| {
        let path = tmp.path().join(name);
        std::fs::write(&path, text).unwrap();
        format!("csv:{}", path.display())
    };
    let mut rows = String::from("a,b,y\n");
    for i in 0..10 {
        let b = if i == 6 {
            "abc".to_string()
        } else {
            i.to_string()
        };
        rows.push_str(&format!("{i},{b},{}\n", i % 2));
    }
    let bad_value = write("bad.csv", &rows);
    let ragged = write("ragged.csv", "a,b,y\n1,2,0\n3,4\n");
    let empty = write("empty.csv", "");
    let good = write("good.csv", "a,b,y\n1,2,0\n3,4,1\n5,6,0\n");
    let missing = format!("csv:{}", tmp.path().join("missing.csv").display());

    let cases: Vec<(Vec<&str>, Vec<&str>)> = vec![
        (
            vec!["--dataset", &bad_value],
            vec![
                "dataset",
                "bad.csv",
                "row 7 (line 8)",
                "column 2:",
                "not a number",
            ],
        ),
        (
            vec!["--dataset", &ragged],
            vec!["dataset", "row 2 (line 3) has 2 columns"],
        ),
        (vec!["--dataset", &empty], vec!["dataset", "is empty"]),
        (vec!["--dataset", &missing], vec!["dataset", "cannot read"]),
        (
            vec!["--dataset", &good, "--label", "species"],
            vec!["label", "no column named 'species'", "3 columns"],
        ),
        (
            vec!["--dataset", &good, "--val-dataset", &ragged],
            vec!["val_dataset", "ragged.csv", "row 2"],
        ),
        (
            vec!["--dataset", &good, "--model", "cnn"],
            vec!["model", "cnn needs image-shaped samples"],
        ),
    ];
    for (args, mentions) in cases {
        let mut all = vec!["start"];
        all.extend_from_slice(&args);
        let out = daemon.strata(&all);
        assert_eq!(out.code, 2, "{args:?} should be rejected: {out:?}");
        assert_eq!(out.stderr.lines().count(), 1, "one line on stderr: {out:?}");
        for word in mentions {
            assert!(
                out.stderr.contains(word),
                "{args:?}: '{}' does not mention '{word}'",
                out.stderr.trim()
            );
        }
        // Errors name places in a file, never its contents (a cell, the header's names).
        for content in ["abc", "a, b"] {
            assert!(
                !out.stderr.contains(content),
                "{args:?}: the error quotes the file: {}",
                out.stderr.trim()
            );
        }
    }
    let list = daemon.strata(&["list", "--json"]).json();
    assert_eq!(list["runs"].as_array().unwrap().len(), 0, "{list}");
}

/// An IDX file of unsigned bytes.
fn idx_bytes(dims: &[u32], values: &[u8]) -> Vec<u8> {
    let mut bytes = vec![0, 0, 0x08, dims.len() as u8];
    for d in dims {
        bytes.extend_from_slice(&d.to_be_bytes());
    }
    bytes.extend_from_slice(values);
    bytes
}

/// `count` 8×8 images: class 0 bright on the left, class 1 bright on the right, class 2 at the
/// top; with noise.
fn images(count: usize, seed: u64) -> (Vec<u8>, Vec<u8>) {
    let mut rng = SplitMix64::new(seed);
    let (mut pixels, mut labels) = (Vec::new(), Vec::new());
    for i in 0..count {
        let class = (i % 3) as u8;
        for row in 0..8 {
            for col in 0..8 {
                let lit = match class {
                    0 => col < 4,
                    1 => col >= 4,
                    _ => row < 4,
                };
                let base = if lit { 180.0 } else { 30.0 };
                pixels.push((base + 60.0 * rng.signed()).clamp(0.0, 255.0) as u8);
            }
        }
        labels.push(class);
    }
    (pixels, labels)
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

#[test]
fn idx_images_train_with_the_cnn() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("digits");
    std::fs::create_dir(&dir).unwrap();
    let (pixels, labels) = images(240, 4);
    std::fs::write(
        dir.join("train-images-idx3-ubyte"),
        idx_bytes(&[240, 8, 8], &pixels),
    )
    .unwrap();
    std::fs::write(
        dir.join("train-labels-idx1-ubyte"),
        idx_bytes(&[240], &labels),
    )
    .unwrap();
    // The validation set gzip'd, as MNIST is distributed.
    let (pixels, labels) = images(60, 5);
    std::fs::write(
        dir.join("t10k-images-idx3-ubyte.gz"),
        gzip(&idx_bytes(&[60, 8, 8], &pixels)),
    )
    .unwrap();
    std::fs::write(
        dir.join("t10k-labels-idx1-ubyte.gz"),
        gzip(&idx_bytes(&[60], &labels)),
    )
    .unwrap();

    let daemon = Daemon::start();
    let dataset = format!("idx:{}", dir.display());
    let args = [
        "--dataset",
        dataset.as_str(),
        "--model",
        "cnn:4,8",
        "--epochs",
        "2",
        "--lr",
        "1e-2",
        "--layer-lr",
        "conv0=1e-3",
    ];
    let table = dry_run(&daemon, &args);
    assert_eq!(
        names(&table),
        [
            "conv0.weight",
            "conv0.bias",
            "conv1.weight",
            "conv1.bias",
            "head.weight",
            "head.bias"
        ]
    );
    assert_eq!(
        parameter(&table, "conv0.weight")["shape"],
        serde_json::json!([4, 1, 3, 3])
    );
    // 8×8 pooled twice: 8 channels of 2×2 for 3 classes.
    assert_eq!(
        parameter(&table, "head.weight")["shape"],
        serde_json::json!([3, 32])
    );
    assert_eq!(
        table["config"]["val_fraction"],
        Value::Null,
        "t10k validates"
    );

    let id = start_with_flags(&daemon, &args);
    let show = completed(&daemon, &id, 2);
    for epoch in show["epochs"].as_array().unwrap() {
        assert!(close(group(epoch, "conv0")["lr"].as_f64().unwrap(), 1e-3));
        assert!(close(group(epoch, "conv1")["lr"].as_f64().unwrap(), 1e-2));
        assert!(group(epoch, "head")["update_ratio"].as_f64().unwrap() > 0.0);
    }
}

#[test]
fn mlp_with_tanh_and_dropout_trains() {
    let daemon = Daemon::start();
    let args = [
        "--dataset",
        "spirals",
        "--samples",
        "240",
        "--model",
        "mlp:16,16:act=tanh:dropout=0.2",
        "--epochs",
        "2",
    ];
    let id = start_with_flags(&daemon, &args);
    let show = completed(&daemon, &id, 2);
    assert_eq!(show["config"]["model"], "mlp:16,16:act=tanh:dropout=0.2");
    assert_eq!(
        names(&show)[..2],
        ["layer0.weight".to_string(), "layer0.bias".to_string()]
    );
    let out = daemon.strata(&[
        "start",
        "--dataset",
        "spirals",
        "--model",
        "mlp:16:act=swoosh",
    ]);
    assert_eq!(out.code, 2, "{out:?}");
    assert!(
        out.stderr.contains("model")
            && out.stderr.contains("swoosh")
            && out.stderr.contains("tanh"),
        "{out:?}"
    );
}

/// Scripts a two-layer module (`fc1`, `fc2`, with dropout between) with PyTorch into `path`, or
/// says why it cannot.
fn script_module(path: &Path, inputs: usize, outputs: usize) -> Result<(), String> {
    strata_e2e::script_torch_module(
        path,
        &format!(
            r#"class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = torch.nn.Linear({inputs}, 16)
        self.drop = torch.nn.Dropout(0.1)
        self.fc2 = torch.nn.Linear(16, {outputs})
    def forward(self, x):
        return self.fc2(self.drop(torch.relu(self.fc1(x))))"#
        ),
    )
}

#[test]
fn a_torchscript_module_trains_under_its_own_names_with_per_group_rates() {
    let tmp = tempfile::tempdir().unwrap();
    let module = tmp.path().join("net.pt");
    if let Err(why) = script_module(&module, 3, 3) {
        println!(
            "SKIPPED a_torchscript_module_trains_under_its_own_names_with_per_group_rates: {why}"
        );
        return;
    }
    let species = classification_csv(tmp.path());
    let (dataset, model) = (
        format!("csv:{}", species.display()),
        format!("torchscript:{}", module.display()),
    );
    let dry = [
        "start",
        "--dry-run",
        "--dataset",
        &dataset,
        "--label",
        "species",
        "--model",
        &model,
    ];
    // A module is code: refused unless the operator allows it.
    let out = Daemon::start().strata(&dry);
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains("--allow-torchscript"), "{out:?}");
    let daemon = Daemon::start_in(&tmp.path().join("data"), &["--allow-torchscript"]);
    let args = [
        "--dataset",
        dataset.as_str(),
        "--label",
        "species",
        "--model",
        model.as_str(),
        "--epochs",
        "2",
        "--lr",
        "1e-2",
        "--layer-lr",
        "fc1=1e-3",
    ];
    let table = dry_run(&daemon, &args);
    assert_eq!(
        names(&table),
        ["fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"]
    );
    assert_eq!(parameter(&table, "fc1.bias")["group"], "fc1");
    assert!(close(
        parameter(&table, "fc1.weight")["lr"].as_f64().unwrap(),
        1e-3
    ));
    assert!(close(
        parameter(&table, "fc2.weight")["lr"].as_f64().unwrap(),
        1e-2
    ));
    let human = daemon.strata(&dry);
    assert_eq!(human.code, 0, "{human:?}");
    assert!(
        human.stdout.contains("fc1.weight") && human.stdout.contains("fc2.bias"),
        "{}",
        human.stdout
    );

    let id = start_with_flags(&daemon, &args);
    let show = completed(&daemon, &id, 2);
    assert_eq!(show["parameter_count"], 3 * 16 + 16 + 16 * 3 + 3);
    for epoch in show["epochs"].as_array().unwrap() {
        let (fc1, fc2) = (group(epoch, "fc1"), group(epoch, "fc2"));
        assert!(close(fc1["lr"].as_f64().unwrap(), 1e-3), "{fc1}");
        assert!(close(fc2["lr"].as_f64().unwrap(), 1e-2), "{fc2}");
        assert!(fc1["update_ratio"].as_f64().unwrap() > 0.0, "{fc1}");
        assert!(fc2["grad_norm"].as_f64().unwrap() > 0.0, "{fc2}");
    }

    // A module whose output does not fit the dataset is rejected before anything trains.
    let regression = regression_csv(tmp.path(), "regression.csv", 50, 6);
    let out = daemon.strata(&[
        "start",
        "--dataset",
        &format!("csv:{}", regression.display()),
        "--label",
        "1",
        "--model",
        &model,
    ]);
    assert_eq!(out.code, 2, "{out:?}");
    assert!(
        out.stderr.contains("model") && out.stderr.contains("needs [2, 1]"),
        "{out:?}"
    );
}

/// A CSV whose last column is continuous, started without `--label` (what a forgotten label
/// looks like): the run says it chose regression on that column and why, as a warning at start
/// and in its facts; naming the label column silences the warning, and a run says how its task
/// was chosen in every case. Columns are named by position, never by their header.
#[test]
fn a_continuous_last_column_taken_without_a_label_is_named_in_a_warning() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("readings.csv");
    let mut text = String::from("pressure,humidity,secret_column_name\n");
    for i in 0..60 {
        let x = f64::from(i) / 60.0;
        // The label is no function of the features: one would be reported as target leakage.
        let shuffled = f64::from(i * 37 % 60) / 60.0;
        text.push_str(&format!(
            "{x:.3},{:.3},{:.5}\n",
            1.0 - x,
            0.001 * shuffled + 0.0005
        ));
    }
    std::fs::write(&path, text).unwrap();
    let daemon = Daemon::start();
    let dataset = format!("csv:{}", path.display());
    let base = [
        "--dataset",
        dataset.as_str(),
        "--model",
        "mlp:4",
        "--epochs",
        "1",
    ];

    let mut args = vec!["start"];
    args.extend(base);
    let out = daemon.strata(&args);
    assert_eq!(out.code, 0, "{out:?}");
    let id = out.stdout.trim().to_string();
    assert_eq!(id.len(), 13, "stdout holds the id alone: {out:?}");
    assert!(
        out.stderr
            .contains("warning: no label was named, so the label is the last column (3 of 3)")
            && out
                .stderr
                .contains("continuous (the labels include fractions)")
            && out.stderr.contains("--label"),
        "{out:?}"
    );
    assert!(
        !out.stderr.contains("secret_column_name"),
        "a header is file content: {out:?}"
    );
    let shown = completed(&daemon, &id, 1);
    let facts = &shown["facts"];
    assert_eq!(facts["task"], "regression", "{facts}");
    assert_eq!(
        facts["label"],
        "column 3 of 3 (the last: no label was named)"
    );
    assert_eq!(
        facts["task_reason"],
        "detected: the labels include fractions"
    );
    assert!(facts["target_variance"].as_f64().unwrap() > 0.0, "{facts}");
    assert_eq!(facts["baseline_loss"], facts["target_variance"]);
    let human = daemon.strata(&["show", &id]);
    assert!(
        human.stdout.contains(
            "Task       regression (detected: the labels include fractions), label column 3 of 3 (the last: no label was named); predicting the mean scores"
        ),
        "{}",
        human.stdout
    );

    // Named (here by index): no warning; the facts say it was named and the task detected.
    let mut args = vec!["start", "--json", "--label", "3"];
    args.extend(base);
    let out = daemon.strata(&args);
    assert_eq!(out.code, 0, "{out:?}");
    let started = out.json();
    assert_eq!(started["warnings"], serde_json::json!([]), "{started}");
    let shown = completed(&daemon, started["run_id"].as_str().unwrap(), 1);
    assert_eq!(shown["facts"]["label"], "column 3 of 3");
    // A dry run says the same, and a synthetic set says what it is.
    let dry = daemon
        .strata(&["start", "--dry-run", "--json", "--dataset", "moons"])
        .json();
    assert_eq!(
        dry["facts"]["task_reason"],
        "a synthetic classification set"
    );
    assert_eq!(dry["facts"]["label"], "");
    assert_eq!(dry["groups"][0]["name"], "layer0", "{dry}");
}
