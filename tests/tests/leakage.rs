//! The leakage check end to end: CSV files with known duplicated rows, a copy of the label, and a
//! skewed validation file, started through the CLI against a real daemon. `start` prints each
//! finding as a warning, the facts carry the numbers, `show` lists them and the verdict's reason
//! cites them; `--dedupe` drops the repeats before the split. Columns are named by position,
//! never by their header.

use std::path::{Path, PathBuf};

use serde_json::Value;
use strata_e2e::{start_with_flags, watch_to_end, Daemon};
use strata_rng::SplitMix64;

const HEADER: &str = "alpha_secret,beta_secret,gamma_secret,label_secret";

/// Three random features and `class`.
fn row(rng: &mut SplitMix64, class: usize) -> String {
    format!(
        "{:.6},{:.6},{:.6},{class}",
        rng.uniform(),
        rng.uniform(),
        rng.uniform()
    )
}

/// `rows` distinct rows, alternately of class 0 and 1.
fn distinct_rows(rows: usize, seed: u64) -> Vec<String> {
    let mut rng = SplitMix64::new(seed);
    (0..rows).map(|i| row(&mut rng, i % 2)).collect()
}

/// A fraction as the daemon prints it: `16%`, `8.0%`.
fn percent(fraction: f64) -> String {
    if fraction * 100.0 >= 9.95 {
        format!("{:.0}%", fraction * 100.0)
    } else {
        format!("{:.1}%", fraction * 100.0)
    }
}

fn write_csv(dir: &Path, name: &str, rows: &[String]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, format!("{HEADER}\n{}\n", rows.join("\n"))).unwrap();
    path
}

/// 500 rows of which `copies` repeat another row (each a different one), shuffled.
fn csv_with_copies(dir: &Path, copies: usize) -> PathBuf {
    let mut rows = distinct_rows(500 - copies, 3);
    rows.extend_from_within(..copies);
    let mut rng = SplitMix64::new(4);
    for i in (1..rows.len()).rev() {
        rows.swap(i, (rng.uniform() * (i + 1) as f64) as usize);
    }
    write_csv(dir, &format!("copies-{copies}.csv"), &rows)
}

fn dataset(path: &Path) -> String {
    format!("csv:{}", path.display())
}

/// `strata start --dry-run --json` with these flags: the facts and warnings at start.
fn dry_run(daemon: &Daemon, flags: &[&str]) -> Value {
    let mut args = vec!["start", "--dry-run", "--json", "--model", "mlp:4"];
    args.extend_from_slice(flags);
    daemon.strata(&args).json()
}

fn warnings(started: &Value) -> Vec<String> {
    started["warnings"]
        .as_array()
        .expect("warnings")
        .iter()
        .map(|w| w.as_str().unwrap().to_string())
        .collect()
}

#[test]
fn duplicated_rows_are_reported_with_their_numbers_and_dedupe_drops_them() {
    let tmp = tempfile::tempdir().unwrap();
    let daemon = Daemon::start();

    // The seeded split of 500 rows validates on 100. With 0 copies nothing repeats. With 50, the
    // 100 rows in a pair are a fifth of the file, and a validation row's twin trains 4 times in
    // 5: about 16 of the validation rows repeat a training row. With 250 every row has a twin:
    // about 80. The split is the seed's (0), so the counts are fixed; the bands are ±2.5
    // standard deviations of a random split's count, and the unit tests check the exact count
    // on the split itself.
    for (copies, band) in [(0u64, 0..=0), (50, 8..=26), (250, 70..=90)] {
        let path = csv_with_copies(tmp.path(), copies as usize);
        let data = dataset(&path);
        let started = dry_run(&daemon, &["--dataset", &data]);
        let leakage = &started["facts"]["leakage"];
        assert_eq!(leakage["val_rows"], 100, "{leakage}");
        assert_eq!(leakage["train_rows"], 400, "{leakage}");
        let exact = leakage["exact_rows"].as_u64().unwrap();
        assert!(band.contains(&exact), "{copies} copies: {leakage}");
        assert_eq!(
            leakage["exact_fraction"].as_f64(),
            Some(exact as f64 / 100.0)
        );
        assert_eq!(leakage["near_rows"], exact, "no row is near another");
        let warned = warnings(&started);
        if copies == 0 {
            assert!(warned.is_empty(), "a clean file: {warned:?}");
            assert_eq!(leakage["findings"], serde_json::json!([]));
        } else {
            assert_eq!(
                warned,
                [format!(
                    "leakage check: {} of the validation rows ({exact} of 100) also appear among the training rows, every feature and the label (--dedupe drops exact copies)",
                    percent(exact as f64 / 100.0)
                )]
            );
        }

        let deduped = dry_run(&daemon, &["--dataset", &data, "--dedupe"]);
        let leakage = &deduped["facts"]["leakage"];
        assert_eq!(leakage["dropped_repeats"], copies, "{leakage}");
        assert_eq!(leakage["exact_rows"], 0, "{leakage}");
        assert_eq!(
            leakage["val_rows"].as_u64().unwrap() + leakage["train_rows"].as_u64().unwrap(),
            500 - copies
        );
        assert!(warnings(&deduped).is_empty(), "{deduped}");
        assert_eq!(deduped["config"]["dedupe"], true);
    }

    // A validation file with 0 %, 10 % and 50 % of its 100 rows copied from the training file:
    // exact numbers.
    let train_rows = distinct_rows(400, 5);
    let train = write_csv(tmp.path(), "train.csv", &train_rows);
    let fresh = distinct_rows(100, 6);
    for copied in [0usize, 10, 50] {
        let val_rows: Vec<String> = train_rows[..copied]
            .iter()
            .chain(&fresh[copied..])
            .cloned()
            .collect();
        let val = write_csv(tmp.path(), &format!("val-{copied}.csv"), &val_rows);
        let (data, val) = (dataset(&train), dataset(&val));
        let started = dry_run(&daemon, &["--dataset", &data, "--val-dataset", &val]);
        let leakage = &started["facts"]["leakage"];
        assert_eq!(leakage["exact_rows"], copied, "{leakage}");
        assert_eq!(
            leakage["exact_fraction"].as_f64(),
            Some(copied as f64 / 100.0)
        );
        let expected: Vec<String> = if copied == 0 {
            vec![]
        } else {
            vec![format!(
                "leakage check: {copied}% of the validation rows ({copied} of 100) also appear among the training rows, every feature and the label (--dedupe drops exact copies)"
            )]
        };
        assert_eq!(warnings(&started), expected);
        let deduped = dry_run(
            &daemon,
            &["--dataset", &data, "--val-dataset", &val, "--dedupe"],
        );
        let leakage = &deduped["facts"]["leakage"];
        assert_eq!(leakage["dropped_val_copies"], copied, "{leakage}");
        assert_eq!(leakage["val_rows"], 100 - copied, "{leakage}");
    }

    // A synthetic set is not checked, and dedupe is for files.
    let synthetic = dry_run(&daemon, &["--dataset", "moons"]);
    assert_eq!(synthetic["facts"]["leakage"], Value::Null);
    let refused = daemon.strata(&["start", "--dataset", "moons", "--dedupe"]);
    assert_eq!(refused.code, 2, "{refused:?}");
    assert!(refused.stderr.contains("dedupe"), "{refused:?}");
}

#[test]
fn a_copy_of_the_label_and_a_skewed_validation_file_are_warned_about_by_position() {
    let tmp = tempfile::tempdir().unwrap();
    let daemon = Daemon::start();
    let mut rng = SplitMix64::new(7);
    // The label (column 4) copied into column 2.
    let rows: Vec<String> = (0..300)
        .map(|i| {
            let class = i % 3;
            format!("{:.6},{class},{:.6},{class}", rng.uniform(), rng.uniform())
        })
        .collect();
    let mut rng = SplitMix64::new(9);
    let leaky = write_csv(tmp.path(), "leaky.csv", &rows);
    let out = daemon.strata(&[
        "start",
        "--dry-run",
        "--dataset",
        &dataset(&leaky),
        "--model",
        "mlp:4",
    ]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stderr
            .contains("warning: leakage check: column 2 equals the label on every training row"),
        "{out:?}"
    );
    assert!(
        !out.stderr.contains("secret"),
        "a header is file content: {out:?}"
    );

    // Training balanced over two classes; validation 90 % one class.
    let train = write_csv(tmp.path(), "balanced.csv", &distinct_rows(400, 8));
    let skewed: Vec<String> = (0..100)
        .map(|i| row(&mut rng, usize::from(i >= 90)))
        .collect();
    let skewed = write_csv(tmp.path(), "skewed.csv", &skewed);
    let started = dry_run(
        &daemon,
        &[
            "--dataset",
            &dataset(&train),
            "--val-dataset",
            &dataset(&skewed),
        ],
    );
    let distance = started["facts"]["leakage"]["class_balance_distance"]
        .as_f64()
        .unwrap();
    assert!((distance - 0.4).abs() < 1e-9, "{started}");
    assert_eq!(
        warnings(&started),
        ["leakage check: the validation set's class balance differs sharply from the training set's: total variation distance 0.40 (one class is 90% of the validation rows and 50% of the training rows)"]
    );
}

/// A run on a file with every row twice and the label in a feature column: `show` lists the
/// findings and the verdict's reason says validation may be optimistic, and why.
#[test]
fn show_and_the_verdict_cite_the_findings() {
    let tmp = tempfile::tempdir().unwrap();
    let daemon = Daemon::start();
    let mut rng = SplitMix64::new(11);
    let rows: Vec<String> = (0..100)
        .map(|i| {
            let class = i % 2;
            let (a, b, c) = (rng.uniform(), rng.uniform(), rng.uniform());
            format!("{a:.6},{class},{b:.6},{c:.6},{class}")
        })
        .flat_map(|row| [row.clone(), row])
        .collect();
    let path = tmp.path().join("twice.csv");
    std::fs::write(
        &path,
        format!(
            "a_secret,copy_secret,b_secret,c_secret,label_secret\n{}\n",
            rows.join("\n")
        ),
    )
    .unwrap();
    let id = start_with_flags(
        &daemon,
        &[
            "--dataset",
            &dataset(&path),
            "--model",
            "mlp:4",
            "--epochs",
            "1",
        ],
    );
    let (code, _) = watch_to_end(&daemon, &id);
    assert_eq!(code, 0, "{}", daemon.log());
    let shown = daemon.strata(&["show", &id, "--json"]).json();
    let leakage = &shown["facts"]["leakage"];
    let exact = leakage["exact_rows"].as_u64().unwrap();
    assert!(exact > 0, "{leakage}");
    assert_eq!(leakage["label_columns"][0]["name"], "column 2", "{leakage}");
    assert_eq!(leakage["label_columns"][0]["how"], "equals_label");
    let shown_percent = percent(exact as f64 / 40.0);
    let reason = shown["analysis"]["reason"].as_str().unwrap();
    assert!(
        reason.ends_with(&format!(
            "; validation may be optimistic: {shown_percent} of its rows also appear in training, and column 2 gives the label away"
        )),
        "{reason}"
    );
    let human = daemon.strata(&["show", &id]).stdout;
    assert!(
        human.contains(&format!(
            "Leakage    {shown_percent} of the validation rows ({exact} of 40) also appear"
        )) && human.contains("; column 2 equals the label on every training row"),
        "{human}"
    );
    assert!(!human.contains("secret"), "{human}");
}
