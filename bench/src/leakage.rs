//! What the leakage check adds to loading a CSV as a run's start does (parsing and checking every
//! value, deciding the task and the classes), on files of a million rows (a tenth of them copies
//! of others): 16 features labelled with 10 classes, the same with a continuous target (a
//! regression, whose columns are all scanned for correlation), and 4 features with 10 classes (a
//! narrow file parses fastest, so the check is its largest share). Best of three each, in this
//! process; the check runs on the seeded 80/20 split.

use std::{path::Path, time::Instant};

use anyhow::{anyhow, Result};
use serde_json::json;
use strata_server::train::data::{
    csv::{labelled, read_csv},
    leakage::{check_leakage, Dropped, FeatureNames},
    rows::Rows,
    SeededRng,
};

use crate::report::{Goal, Row};

const COPIED_FRACTION: f64 = 0.1;
const VAL_FRACTION: f64 = 0.2;
const REPEATS: usize = 3;
/// What the documentation (docs/src/guide/data.md) states the check adds to a load at most.
const STATED_BOUND: f64 = 0.25;

/// `rows` rows: `features` normal features and a label, a tenth of them copies of others.
fn write_csv(path: &Path, rows: usize, features: usize, regression: bool) -> Result<()> {
    let mut rng = SeededRng::seeded(1);
    let mut lines: Vec<String> = Vec::with_capacity(rows);
    let distinct = (rows as f64 * (1.0 - COPIED_FRACTION)) as usize;
    for _ in 0..distinct {
        let values: Vec<f64> = (0..features).map(|_| rng.normal()).collect();
        let mut line: String = values.iter().map(|v| format!("{v:.5},")).collect();
        if regression {
            let target = values[0] - 0.5 * values[1] + 0.3 * rng.normal();
            line.push_str(&format!("{target:.5}"));
        } else {
            line.push_str(&rng.below(10).to_string());
        }
        lines.push(line);
    }
    while lines.len() < rows {
        let copy = lines[rng.below(distinct)].clone();
        lines.push(copy);
    }
    let header: String = (0..features).map(|i| format!("f{i},")).collect();
    std::fs::write(path, format!("{header}label\n{}\n", lines.join("\n")))?;
    Ok(())
}

fn best_of<T>(mut run: impl FnMut() -> Result<T>) -> Result<(f64, T)> {
    let mut best = f64::INFINITY;
    let mut last = None;
    for _ in 0..REPEATS {
        let start = Instant::now();
        let value = run()?;
        best = best.min(start.elapsed().as_secs_f64());
        last = Some(value);
    }
    Ok((best, last.expect("at least one repeat")))
}

fn one(path: &Path, rows: usize, features: usize, what: &str) -> Result<Row> {
    let (load_s, data) = best_of(|| {
        let table = read_csv(path, "dataset", None, None).map_err(|e| anyhow!("{e}"))?;
        labelled(table, None, None).map_err(|e| anyhow!("{e}"))
    })?;
    let samples = &data.train;
    let n_val = (samples.rows() as f64 * VAL_FRACTION).round() as usize;
    let mut in_val = vec![false; samples.rows()];
    for &row in &SeededRng::seeded(0).permutation(samples.rows())[..n_val] {
        in_val[row as usize] = true;
    }
    let (train, val) = Rows::split(samples, &in_val);
    let (check_s, leakage) = best_of(|| {
        Ok(check_leakage(
            train,
            val,
            &samples.sample_shape,
            data.task,
            FeatureNames::Csv {
                label_column: features + 1,
            },
            Dropped::default(),
        ))
    })?;
    let fraction = check_s / load_s;
    Ok(Row::alone(
        format!("leakage check, {rows} rows ({what})"),
        format!(
            "+{:.1}% of the load ({check_s:.3} s of {load_s:.2} s)",
            100.0 * fraction
        ),
        100.0 * fraction,
        Goal::Below(100.0 * STATED_BOUND),
        "%",
        json!({
            "rows": rows,
            "load_s": load_s,
            "check_s": check_s,
            "fraction": fraction,
            "exact_rows": leakage.exact_rows,
            "val_rows": leakage.val_rows,
            "findings": leakage.findings.len(),
        }),
    ))
}

pub fn measure(work: &Path, rows: usize) -> Result<Vec<Row>> {
    let path = work.join("leakage.csv");
    let cases = [
        ("16 features, 10 classes", 16, false),
        ("16 features, regression", 16, true),
        ("4 features, 10 classes", 4, false),
    ];
    let mut out = Vec::new();
    for (what, features, regression) in cases {
        write_csv(&path, rows, features, regression)?;
        out.push(one(&path, rows, features, what)?);
    }
    std::fs::remove_file(&path)?;
    Ok(out)
}
