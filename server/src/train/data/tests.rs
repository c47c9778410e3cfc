use super::*;
use crate::spec::{SyntheticKind, SyntheticSpec};

fn spec(kind: SyntheticKind) -> DatasetSpec {
    DatasetSpec {
        source: DataSource::Synthetic(SyntheticSpec {
            kind,
            samples: 200,
            noise: 0.1,
            classes: 3,
        }),
        validation: Validation::Split(0.25),
        task: None,
        dedupe: false,
    }
}

fn csv_spec(path: &std::path::Path, validation: Validation) -> DatasetSpec {
    DatasetSpec {
        source: DataSource::Csv {
            path: path.to_path_buf(),
            label: None,
        },
        validation,
        task: None,
        dedupe: false,
    }
}

#[test]
fn same_seed_same_split() {
    let a = load_split(&spec(SyntheticKind::Spirals), 7).unwrap();
    let b = load_split(&spec(SyntheticKind::Spirals), 7).unwrap();
    let c = load_split(&spec(SyntheticKind::Spirals), 8).unwrap();
    assert!(a.train.features == b.train.features && a.val.targets == b.val.targets);
    assert!(a.train.features != c.train.features);
    assert_eq!((a.train.rows(), a.val.rows()), (150, 50));
    assert_eq!(a.val.sample_shape, vec![2]);
    assert_eq!(a.val.features.len(), 100);
    let most = a.train.targets.iter().copied().fold(0f32, f32::max);
    assert_eq!(most, 2.0);
}

#[test]
fn a_split_keeps_each_row_with_its_target() {
    // The validation rows are the shuffle's first ones, the training rows the rest, each row
    // whole and with its own target.
    let spec = spec(SyntheticKind::Regression);
    let d = load_split(&spec, 1).unwrap();
    assert_eq!((d.train.rows(), d.val.rows()), (150, 50));
    assert_eq!(d.train.sample_shape, vec![4]);
    let mut rng = SeededRng::seeded(1);
    let all = load(&spec, &mut rng).unwrap().train;
    let order = SplitOrder::new(all.rows(), 0.25, &mut rng).unwrap();
    let row = order.train()[0] as usize;
    assert_eq!(d.train.features[..4], all.features[row * 4..row * 4 + 4]);
    assert_eq!(d.train.targets[0], all.targets[row]);
    let row = order.val()[49] as usize;
    assert_eq!(d.val.features[49 * 4..], all.features[row * 4..row * 4 + 4]);
}

#[test]
fn csv_with_a_validation_file_and_a_constant_column() {
    let dir = tempfile::tempdir().unwrap();
    let train = dir.path().join("train.csv");
    let val = dir.path().join("val.csv");
    let rows: String = (0..20).map(|i| format!("{i},5,{}\n", i % 2)).collect();
    std::fs::write(&train, format!("a,constant,y\n{rows}")).unwrap();
    std::fs::write(&val, "a,constant,y\n3,6,1\n").unwrap();
    let spec = csv_spec(&train, Validation::CsvFile(val.clone()));
    let mut shape = probe_dataset(&spec, 0).unwrap();
    let leakage = shape.leakage.take().expect("a file dataset is checked");
    assert_eq!((leakage.val_rows, leakage.train_rows), (1, 20));
    assert_eq!((leakage.exact_rows, leakage.near_rows), (0, 0));
    // One validation row is all one class: far from the training balance, but by chance.
    assert_eq!(leakage.class_balance_distance, Some(0.5));
    assert!(leakage.findings.is_empty(), "{:?}", leakage.findings);
    assert_eq!(
        shape,
        DataShape {
            sample: vec![2],
            task: Task::Classification { classes: 2 },
            val_fraction: None,
            label: Some(crate::train::data::csv::LabelChoice {
                column: 3,
                columns: 3,
                named: false,
                detected: true,
                reason: "detected: 2 distinct whole-number labels".into(),
            }),
            leakage: None,
        }
    );
    let d = load_split(&spec, 0).unwrap();
    assert_eq!(d.train.rows(), 20);
    assert_eq!(
        (d.val.features.clone(), d.val.targets.clone()),
        (vec![3.0, 6.0], vec![1.0])
    );

    let split = csv_spec(&train, Validation::Split(0.25));
    assert_eq!(probe_dataset(&split, 0).unwrap().val_fraction, Some(0.25));
    let d = load_split(&split, 0).unwrap();
    assert_eq!((d.train.rows(), d.val.rows()), (15, 5));
}

#[test]
fn idx_images_keep_their_shape_and_t10k_validates() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, dims: &[u32], values: &[u8]| {
        let mut bytes = vec![0, 0, 0x08, dims.len() as u8];
        for d in dims {
            bytes.extend_from_slice(&d.to_be_bytes());
        }
        bytes.extend_from_slice(values);
        std::fs::write(dir.path().join(name), bytes).unwrap();
    };
    let pixels: Vec<u8> = (0..10 * 4 * 4).map(|i| (i * 7 % 256) as u8).collect();
    write(idx::TRAIN_IMAGES, &[10, 4, 4], &pixels);
    write(idx::TRAIN_LABELS, &[10], &[0, 1, 2, 0, 1, 2, 0, 1, 2, 0]);
    let spec = DatasetSpec {
        source: DataSource::Idx {
            dir: dir.path().to_path_buf(),
        },
        validation: Validation::IdxTestFilesOrSplit(0.2),
        task: None,
        dedupe: false,
    };
    let shape = probe_dataset(&spec, 0).unwrap();
    assert_eq!(shape.sample, vec![1, 4, 4]);
    assert_eq!(shape.task, Task::Classification { classes: 3 });
    assert_eq!(shape.val_fraction, Some(0.2), "no t10k files: a split");
    let d = load_split(&spec, 0).unwrap();
    assert_eq!(
        (d.train.rows(), d.train.sample_shape.clone()),
        (8, vec![1, 4, 4])
    );

    write(idx::TEST_IMAGES, &[2, 4, 4], &pixels[..32]);
    write(idx::TEST_LABELS, &[2], &[1, 2]);
    assert_eq!(probe_dataset(&spec, 0).unwrap().val_fraction, None);
    let d = load_split(&spec, 0).unwrap();
    assert_eq!((d.train.rows(), d.val.rows()), (10, 2));
    assert_eq!(d.val.sample_shape, vec![1, 4, 4]);
}
