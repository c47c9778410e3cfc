//! The leakage check through `probe_dataset`, on files written here, against counts made
//! independently: validation rows found among the training rows by their text, on the split the
//! run's seed makes.

use std::{collections::HashSet, path::Path};

use crate::{
    domain::{ColumnLeak, Leakage},
    spec::{DataSource, DatasetSpec, Task, Validation},
    train::data::{load_split, probe_dataset, validation_rows, SeededRng},
};

const VAL_FRACTION: f64 = 0.2;

fn spec(path: &Path, validation: Validation, dedupe: bool) -> DatasetSpec {
    DatasetSpec {
        source: DataSource::Csv {
            path: path.to_path_buf(),
            label: None,
        },
        validation,
        task: None,
        dedupe,
    }
}

fn write_csv(path: &Path, rows: &[String]) {
    std::fs::write(path, format!("a,b,c,label\n{}\n", rows.join("\n"))).unwrap();
}

fn leakage_of(spec: &DatasetSpec, seed: u64) -> Leakage {
    probe_dataset(spec, seed)
        .unwrap()
        .leakage
        .expect("a file dataset is checked")
}

/// `rows` distinct rows of three features and a class, then `copies` more that repeat some of
/// them: rows `0, 3, 6, …` are copied, so the repeats are spread over the file.
fn rows_with_copies(rows: usize, copies: usize, seed: u64) -> Vec<String> {
    let mut rng = SeededRng::seeded(seed);
    let mut text: Vec<String> = (0..rows)
        .map(|i| {
            format!(
                "{:.6},{:.6},{:.6},{}",
                rng.normal(),
                rng.normal(),
                rng.normal(),
                i % 3
            )
        })
        .collect();
    for copy in 0..copies {
        text.push(text[(copy * 3) % rows].clone());
    }
    // Shuffled, so the file's end is not all repeats.
    let order = SeededRng::seeded(seed + 1).permutation(text.len());
    order
        .into_iter()
        .map(|i| text[i as usize].clone())
        .collect()
}

/// Validation rows (of the split `seed` makes) whose text is also a training row's.
fn overlap_by_text(rows: &[String], seed: u64) -> (u64, u64) {
    let n_val = validation_rows(rows.len(), VAL_FRACTION).unwrap();
    let order = SeededRng::seeded(seed).permutation(rows.len());
    let (val, train) = order.split_at(n_val);
    let train: HashSet<&String> = train.iter().map(|&i| &rows[i as usize]).collect();
    let found = val
        .iter()
        .filter(|&&i| train.contains(&rows[i as usize]))
        .count();
    (found as u64, n_val as u64)
}

#[test]
fn duplicated_rows_are_counted_on_the_runs_own_split() {
    let dir = tempfile::tempdir().unwrap();
    for (copies, seed) in [(0, 3), (50, 4), (250, 5)] {
        // 0 %, 10 % and 50 % of the file's 500 rows are copies of another row.
        let rows = rows_with_copies(500 - copies, copies, seed);
        let path = dir.path().join(format!("copies-{copies}.csv"));
        write_csv(&path, &rows);
        let spec = spec(&path, Validation::Split(VAL_FRACTION), false);
        let leakage = leakage_of(&spec, seed);
        let (expected, val_rows) = overlap_by_text(&rows, seed);
        assert_eq!((leakage.exact_rows, leakage.val_rows), (expected, val_rows));
        assert_eq!(leakage.train_rows, 500 - val_rows);
        assert_eq!(leakage.near_rows, expected, "no other row is near another");
        assert_eq!(leakage.findings.is_empty(), copies == 0, "{leakage:?}");
        if copies > 0 {
            assert!(expected > 0);
            let finding = &leakage.findings[0];
            assert!(
                finding.contains(&format!("({expected} of {val_rows}) also appear")),
                "{finding}"
            );
        }

        // The split trained on is the one checked: the same rows repeat across the training
        // and validation samples the worker makes tensors of.
        let data = load_split(&spec, seed).unwrap();
        let as_rows = |samples: &crate::train::data::Samples| -> Vec<(Vec<u32>, u32)> {
            samples
                .features
                .chunks(3)
                .map(|r| r.iter().map(|v| v.to_bits()).collect())
                .zip(samples.targets.iter().map(|t| t.to_bits()))
                .collect()
        };
        let trained: HashSet<(Vec<u32>, u32)> = as_rows(&data.train).into_iter().collect();
        let repeated = as_rows(&data.val)
            .into_iter()
            .filter(|row| trained.contains(row))
            .count();
        assert_eq!(repeated as u64, leakage.exact_rows);

        // --dedupe: the copies go before the split, and none is left to find.
        let deduped = leakage_of(
            &self::spec(&path, Validation::Split(VAL_FRACTION), true),
            seed,
        );
        assert_eq!(deduped.dropped_repeats, copies as u64);
        assert_eq!((deduped.exact_rows, deduped.near_rows), (0, 0));
        assert_eq!(deduped.val_rows + deduped.train_rows, (500 - copies) as u64);
        assert!(deduped.findings.is_empty(), "{:?}", deduped.findings);
    }
}

#[test]
fn near_copies_are_found_within_the_tolerance_and_exact_ones_named_apart() {
    let dir = tempfile::tempdir().unwrap();
    let (train_path, val_path) = (dir.path().join("train.csv"), dir.path().join("val.csv"));
    let mut rng = SeededRng::seeded(9);
    let train: Vec<[f64; 3]> = (0..400)
        .map(|_| [rng.normal(), rng.normal(), rng.normal()])
        .collect();
    let line = |r: &[f64; 3], label: usize| format!("{:.7},{:.7},{:.7},{label}", r[0], r[1], r[2]);
    write_csv(
        &train_path,
        &train
            .iter()
            .enumerate()
            .map(|(i, r)| line(r, i % 2))
            .collect::<Vec<_>>(),
    );
    // 100 validation rows: 10 exact copies, 20 copies moved by 2e-6 (a thousandth of the
    // tolerance), 20 moved by 0.05 standard deviations (50 steps of it), 50 new.
    let val: Vec<String> = (0..100)
        .map(|i| {
            let row = match i {
                0..10 => train[i],
                10..30 => train[i].map(|v| v + 2e-6),
                30..50 => train[i].map(|v| v + 0.05),
                _ => [rng.normal(), rng.normal(), rng.normal()],
            };
            line(&row, i % 2)
        })
        .collect();
    write_csv(&val_path, &val);
    let leakage = leakage_of(&spec(&train_path, Validation::CsvFile(val_path), false), 0);
    assert_eq!((leakage.val_rows, leakage.train_rows), (100, 400));
    assert_eq!(leakage.exact_rows, 10);
    // A value within the tolerance rounds alike unless it sits at a rounding boundary: 2e-6 in
    // 1e-3 is one chance in 500 per value, of 60 values.
    assert!((29..=30).contains(&leakage.near_rows), "{leakage:?}");
    assert_eq!(
        leakage.findings,
        [format!(
            "10% of the validation rows (10 of 100) also appear among the training rows, every feature and the label, and {}% ({}) nearly do: equal once standardized and rounded to 0.001 standard deviations (--dedupe drops exact copies)",
            leakage.near_rows, leakage.near_rows
        )]
    );
}

#[test]
fn a_copy_of_the_label_or_a_stand_in_for_it_is_named_by_position() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("leaky.csv");
    let mut rng = SeededRng::seeded(2);
    let mut text = String::from("noise,label_copy,label,class_code,unique\n");
    for i in 0..300 {
        let class = i % 3;
        text.push_str(&format!(
            "{:.5},{class},{class},{},{i}\n",
            rng.normal(),
            10 * class + 7,
        ));
    }
    std::fs::write(&path, text).unwrap();
    let mut spec = spec(&path, Validation::Split(VAL_FRACTION), false);
    spec.source = DataSource::Csv {
        path: path.clone(),
        label: Some("label".into()),
    };
    let leakage = leakage_of(&spec, 0);
    let columns: Vec<(u32, &str, ColumnLeak)> = leakage
        .label_columns
        .iter()
        .map(|c| (c.position, c.name.as_str(), c.how))
        .collect();
    // Columns count the label's own (3): the class code is column 4. The unique row number has
    // a value per row, each trivially with one class: not a leak.
    assert_eq!(
        columns,
        [
            (2, "column 2", ColumnLeak::EqualsLabel),
            (4, "column 4", ColumnLeak::DeterminesClass { values: 3 }),
        ]
    );
    assert_eq!(
        leakage.findings,
        [
            "column 2 equals the label on every training row",
            "column 4 gives the label away: each of its 3 values goes with a single class on every training row",
        ]
    );
}

#[test]
fn a_regression_feature_that_is_the_target_rescaled_leaks() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("regression.csv");
    let mut rng = SeededRng::seeded(4);
    let mut text = String::new();
    for _ in 0..200 {
        let (x, noise) = (rng.normal(), rng.normal());
        let y = 0.5 * x + 0.3 * noise;
        text.push_str(&format!("{x:.6},{:.6},{y:.6},{:.6}\n", 3.0 * y - 1.0, y));
    }
    std::fs::write(&path, text).unwrap();
    let leakage = leakage_of(&spec(&path, Validation::Split(VAL_FRACTION), false), 0);
    assert_eq!(leakage.class_balance_distance, None);
    let [rescaled, copy] = leakage.label_columns.as_slice() else {
        panic!("{leakage:?}")
    };
    assert_eq!(copy.how, ColumnLeak::EqualsLabel);
    assert_eq!(copy.position, 3);
    assert_eq!(rescaled.position, 2);
    let ColumnLeak::Correlated { correlation } = rescaled.how else {
        panic!("{rescaled:?}")
    };
    assert!(correlation > 0.999_99, "{correlation}");
    assert!(
        leakage.findings[0]
            .starts_with("column 2 follows the target almost exactly: correlation 1.0000"),
        "{:?}",
        leakage.findings
    );
}

#[test]
fn a_skewed_validation_file_is_reported_and_a_clean_one_is_not() {
    let dir = tempfile::tempdir().unwrap();
    let train = dir.path().join("train.csv");
    let mut rng = SeededRng::seeded(6);
    let mut row = |class: usize| {
        format!(
            "{:.6},{:.6},{:.6},{class}",
            rng.normal(),
            rng.normal(),
            rng.normal()
        )
    };
    write_csv(&train, &(0..400).map(|i| row(i % 2)).collect::<Vec<_>>());
    let skewed = dir.path().join("skewed.csv");
    write_csv(
        &skewed,
        &(0..100)
            .map(|i| row(usize::from(i >= 90)))
            .collect::<Vec<_>>(),
    );
    let balanced = dir.path().join("balanced.csv");
    write_csv(&balanced, &(0..100).map(|i| row(i % 2)).collect::<Vec<_>>());

    let leakage = leakage_of(&spec(&train, Validation::CsvFile(skewed), false), 0);
    let distance = leakage.class_balance_distance.unwrap();
    assert!((distance - 0.4).abs() < 1e-12, "{distance}");
    assert_eq!(
        leakage.findings,
        ["the validation set's class balance differs sharply from the training set's: total variation distance 0.40 (one class is 90% of the validation rows and 50% of the training rows)"]
    );

    let clean = leakage_of(&spec(&train, Validation::CsvFile(balanced), false), 0);
    assert_eq!(clean.class_balance_distance, Some(0.0));
    assert_eq!((clean.exact_rows, clean.near_rows), (0, 0));
    assert!(clean.label_columns.is_empty() && clean.findings.is_empty());
}

#[test]
fn idx_t10k_images_repeating_training_images_are_counted_and_deduped() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, dims: &[u32], values: &[u8]| {
        let mut bytes = vec![0, 0, 0x08, dims.len() as u8];
        for d in dims {
            bytes.extend_from_slice(&d.to_be_bytes());
        }
        bytes.extend_from_slice(values);
        std::fs::write(dir.path().join(name), bytes).unwrap();
    };
    let mut rng = SeededRng::seeded(8);
    let train: Vec<u8> = (0..100 * 16).map(|_| rng.below(256) as u8).collect();
    let labels: Vec<u8> = (0..100).map(|i| (i % 4) as u8).collect();
    write(super::super::idx::TRAIN_IMAGES, &[100, 4, 4], &train);
    write(super::super::idx::TRAIN_LABELS, &[100], &labels);
    // 20 test images: the first 5 are training images 0..5 with their labels.
    let mut test = train[..5 * 16].to_vec();
    test.extend((0..15 * 16).map(|_| rng.below(256) as u8));
    write(super::super::idx::TEST_IMAGES, &[20, 4, 4], &test);
    write(super::super::idx::TEST_LABELS, &[20], &labels[..20]);
    let mut spec = DatasetSpec {
        source: DataSource::Idx {
            dir: dir.path().to_path_buf(),
        },
        validation: Validation::IdxTestFilesOrSplit(VAL_FRACTION),
        task: None,
        dedupe: false,
    };
    let leakage = leakage_of(&spec, 0);
    assert_eq!((leakage.exact_rows, leakage.val_rows), (5, 20));
    assert_eq!(leakage.near_rows, 5);
    assert!(leakage.findings[0].starts_with("25% of the validation rows (5 of 20)"));

    spec.dedupe = true;
    let deduped = leakage_of(&spec, 0);
    assert_eq!(
        (deduped.dropped_repeats, deduped.dropped_val_copies),
        (0, 5)
    );
    assert_eq!((deduped.exact_rows, deduped.val_rows), (0, 15));
    assert_eq!(
        probe_dataset(&spec, 0).unwrap().task,
        Task::Classification { classes: 4 }
    );
}
