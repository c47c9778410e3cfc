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
fn same_seed_same_data_and_standardized() {
    let a = build_dataset(&spec(SyntheticKind::Spirals), 7, Device::Cpu, None).unwrap();
    let b = build_dataset(&spec(SyntheticKind::Spirals), 7, Device::Cpu, None).unwrap();
    let c = build_dataset(&spec(SyntheticKind::Spirals), 8, Device::Cpu, None).unwrap();
    assert!(a.train_x.equal(&b.train_x) && a.val_y.equal(&b.val_y));
    assert!(!a.train_x.equal(&c.train_x));
    assert_eq!(a.train_len(), 150);
    assert_eq!(a.val_x.size(), vec![50, 2]);
    let mean = a
        .train_x
        .mean_dim(0, false, Kind::Float)
        .abs()
        .max()
        .double_value(&[]);
    assert!(mean < 1e-5, "{mean}");
    assert_eq!(a.train_y.max().int64_value(&[]), 2);
}

#[test]
fn regression_targets_are_columns() {
    let d = build_dataset(&spec(SyntheticKind::Regression), 1, Device::Cpu, None).unwrap();
    assert_eq!(d.train_y.size(), vec![150, 1]);
    assert_eq!(d.train_x.size(), vec![150, 4]);
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
    let d = build_dataset(&spec, 0, Device::Cpu, None).unwrap();
    assert_eq!(d.train_len(), 20);
    assert_eq!(d.val_x.size(), vec![1, 2]);
    // The constant column is centred, not divided by a zero spread.
    assert_eq!(d.val_x.double_value(&[0, 1]), 1.0);

    let split = csv_spec(&train, Validation::Split(0.25));
    assert_eq!(probe_dataset(&split, 0).unwrap().val_fraction, Some(0.25));
    let d = build_dataset(&split, 0, Device::Cpu, None).unwrap();
    assert_eq!((d.train_len(), d.val_x.size()[0]), (15, 5));
}

#[test]
fn idx_images_are_standardized_per_channel_and_t10k_validates() {
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
    let d = build_dataset(&spec, 0, Device::Cpu, None).unwrap();
    assert_eq!(d.train_x.size(), vec![8, 1, 4, 4]);
    assert!(d.train_x.mean(Kind::Float).double_value(&[]).abs() < 1e-5);

    write(idx::TEST_IMAGES, &[2, 4, 4], &pixels[..32]);
    write(idx::TEST_LABELS, &[2], &[1, 2]);
    assert_eq!(probe_dataset(&spec, 0).unwrap().val_fraction, None);
    let d = build_dataset(&spec, 0, Device::Cpu, None).unwrap();
    assert_eq!(d.train_x.size(), vec![10, 1, 4, 4]);
    assert_eq!(d.val_x.size(), vec![2, 1, 4, 4]);
    assert_eq!(d.sample_shape(), vec![1, 4, 4]);
}
