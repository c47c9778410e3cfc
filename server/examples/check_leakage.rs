//! What the leakage check adds to loading a CSV of 1,000,000 rows.
//!
//! Writes files of a million rows (10 % of them copies of others): 16 features labelled with 10
//! classes, the same with a continuous target (a regression, whose columns are all scanned for
//! correlation), and 4 features with 10 classes (a narrow file parses fastest, so the check is
//! its largest share). For each it times, best of three, loading the file as a run's start does
//! (parsing and checking every value, deciding the task and the classes), then the leakage check
//! on the seeded 80/20 split, and prints the check's time as a fraction of the load's.
//!
//! ```sh
//! cargo run --release -p strata-server --example check_leakage
//! ```

use std::{path::Path, time::Instant};

use strata_server::train::data::{
    csv::{labelled, read_csv},
    leakage::{check_leakage, Dropped, FeatureNames},
    rows::Rows,
    SeededRng,
};

const ROWS: usize = 1_000_000;
const COPIED_FRACTION: f64 = 0.1;
const VAL_FRACTION: f64 = 0.2;
const REPEATS: usize = 3;
/// What README states the check adds to a load at most.
const STATED_BOUND: f64 = 0.25;

/// A million rows: `features` normal features and a label, a tenth of them copies of others.
fn write_csv(path: &Path, features: usize, regression: bool) {
    let mut rng = SeededRng::seeded(1);
    let mut rows: Vec<String> = Vec::with_capacity(ROWS);
    let distinct = (ROWS as f64 * (1.0 - COPIED_FRACTION)) as usize;
    for _ in 0..distinct {
        let values: Vec<f64> = (0..features).map(|_| rng.normal()).collect();
        let mut row: String = values.iter().map(|v| format!("{v:.5},")).collect();
        if regression {
            let target = values[0] - 0.5 * values[1] + 0.3 * rng.normal();
            row.push_str(&format!("{target:.5}"));
        } else {
            row.push_str(&rng.below(10).to_string());
        }
        rows.push(row);
    }
    while rows.len() < ROWS {
        let copy = rows[rng.below(distinct)].clone();
        rows.push(copy);
    }
    let header: String = (0..features).map(|i| format!("f{i},")).collect();
    std::fs::write(path, format!("{header}label\n{}\n", rows.join("\n"))).unwrap();
}

fn best_of<T>(mut run: impl FnMut() -> T) -> (f64, T) {
    let mut best = f64::INFINITY;
    let mut last = None;
    for _ in 0..REPEATS {
        let start = Instant::now();
        let value = run();
        best = best.min(start.elapsed().as_secs_f64());
        last = Some(value);
    }
    (best, last.expect("at least one repeat"))
}

fn measure(path: &Path, features: usize, what: &str) {
    let (load_s, data) = best_of(|| {
        let table = read_csv(path, "dataset", None, None).unwrap();
        labelled(table, None, None).unwrap()
    });
    let samples = &data.train;
    let n_val = (samples.rows() as f64 * VAL_FRACTION).round() as usize;
    let mut in_val = vec![false; samples.rows()];
    for &row in &SeededRng::seeded(0).permutation(samples.rows())[..n_val] {
        in_val[row as usize] = true;
    }
    let (train, val) = Rows::split(samples, &in_val);
    let (check_s, leakage) = best_of(|| {
        check_leakage(
            train,
            val,
            &samples.sample_shape,
            data.task,
            FeatureNames::Csv {
                label_column: features + 1,
            },
            Dropped::default(),
        )
    });
    let fraction = check_s / load_s;
    println!(
        "{what}: load {load_s:.2} s, check {check_s:.3} s: the check adds {:.1}% to the load{} ({} of {} validation rows repeat a training row; {} finding(s))",
        100.0 * fraction,
        if fraction > STATED_BOUND {
            format!(", above the {:.0}% README states", STATED_BOUND * 100.0)
        } else {
            String::new()
        },
        leakage.exact_rows,
        leakage.val_rows,
        leakage.findings.len()
    );
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    println!(
        "{ROWS} rows, {:.0}% of them copies, best of {REPEATS}",
        COPIED_FRACTION * 100.0
    );
    let cases = [
        ("16 features, 10 classes", 16, false),
        ("16 features, regression", 16, true),
        ("4 features, 10 classes", 4, false),
    ];
    for (name, features, regression) in cases {
        let path = dir.path().join("data.csv");
        write_csv(&path, features, regression);
        measure(&path, features, name);
    }
}
