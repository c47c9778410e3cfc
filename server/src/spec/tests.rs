use super::*;

fn config(dataset: &str) -> RunConfig {
    RunConfig {
        dataset: dataset.into(),
        ..Default::default()
    }
}

#[test]
fn defaults_are_filled() {
    let spec = RunSpec::try_from(config("spirals")).unwrap();
    assert_eq!(spec.config.model, DEFAULT_MODEL);
    assert_eq!(spec.config.epochs, Some(DEFAULT_EPOCHS));
    assert_eq!(spec.config.lr, Some(DEFAULT_LR));
    assert_eq!(
        spec.dataset.synthetic_spec().unwrap().task(),
        Task::Classification { classes: 3 }
    );
    assert_eq!(spec.config.task, "classification");
    assert_eq!(spec.config.val_fraction, Some(DEFAULT_VAL_FRACTION));
}

#[test]
fn file_datasets_are_parsed_and_filled() {
    let spec = RunSpec::try_from(RunConfig {
        label: " species ".into(),
        ..config("CSV:/data/iris.csv")
    })
    .unwrap();
    assert_eq!(
        spec.dataset.source,
        DataSource::Csv {
            path: "/data/iris.csv".into(),
            label: Some("species".into())
        }
    );
    assert_eq!(spec.config.dataset, "csv:/data/iris.csv");
    assert_eq!(spec.config.label, "species");
    assert_eq!(spec.config.val_fraction, Some(DEFAULT_VAL_FRACTION));
    assert_eq!((spec.config.samples, spec.config.noise), (None, None));
    assert_eq!(spec.config.task, "", "detected once the file is read");

    let spec = RunSpec::try_from(RunConfig {
        val_dataset: "csv:/data/val.csv".into(),
        task: "Regression".into(),
        ..config("csv:/data/train.csv")
    })
    .unwrap();
    assert_eq!(
        spec.dataset.validation,
        Validation::CsvFile("/data/val.csv".into())
    );
    assert_eq!(spec.config.val_fraction, None);
    assert_eq!(spec.config.task, "regression");

    let mut spec = RunSpec::try_from(config("idx:/data/mnist")).unwrap();
    assert_eq!(
        spec.dataset.validation,
        Validation::IdxTestFilesOrSplit(DEFAULT_VAL_FRACTION)
    );
    assert_eq!(spec.config.val_fraction, None);
    spec.record_data(Task::Classification { classes: 10 }, Some(0.2));
    assert_eq!(spec.config.task, "classification");
    assert_eq!(spec.config.val_fraction, Some(0.2));
    let spec = RunSpec::try_from(RunConfig {
        val_fraction: Some(0.1),
        ..config("idx:/data/mnist")
    })
    .unwrap();
    assert_eq!(spec.dataset.validation, Validation::Split(0.1));
}

#[test]
fn dataset_errors_name_the_field() {
    let cases: Vec<(RunConfig, &str, &str)> = vec![
        (config("csv:data.csv"), "dataset", "absolute"),
        (config("csv:"), "dataset", "needs a path"),
        (config("parquet:/x"), "dataset", "csv:PATH"),
        (
            RunConfig {
                samples: Some(100),
                ..config("csv:/x.csv")
            },
            "samples",
            "synthetic",
        ),
        (
            RunConfig {
                label: "y".into(),
                ..config("moons")
            },
            "label",
            "csv",
        ),
        (
            RunConfig {
                val_dataset: "csv:/v.csv".into(),
                val_fraction: Some(0.2),
                ..config("csv:/x.csv")
            },
            "val_fraction",
            "val_dataset",
        ),
        (
            RunConfig {
                val_dataset: "csv:/v.csv".into(),
                ..config("idx:/mnist")
            },
            "val_dataset",
            "t10k",
        ),
        (
            RunConfig {
                val_dataset: "/v.csv".into(),
                ..config("csv:/x.csv")
            },
            "val_dataset",
            "csv:PATH",
        ),
        (
            RunConfig {
                task: "regression".into(),
                ..config("spirals")
            },
            "task",
            "classification dataset",
        ),
        (
            RunConfig {
                task: "ranking".into(),
                ..config("csv:/x.csv")
            },
            "task",
            "ranking",
        ),
        (
            RunConfig {
                model: "torchscript:net.pt".into(),
                ..config("moons")
            },
            "model",
            "absolute",
        ),
    ];
    for (config, field, mention) in cases {
        let err = RunSpec::try_from(config.clone()).unwrap_err().to_string();
        assert!(
            err.starts_with(&format!("{field}:")) && err.contains(mention),
            "{config:?} gave {err}"
        );
    }
}

#[test]
fn errors_name_the_field() {
    let cases: Vec<(RunConfig, &str)> = vec![
        (config("nope"), "dataset"),
        (
            RunConfig {
                model: "resnet".into(),
                ..config("moons")
            },
            "model",
        ),
        (
            RunConfig {
                model: "mlp:0".into(),
                ..config("moons")
            },
            "model",
        ),
        (
            RunConfig {
                lr: Some(-1.0),
                ..config("moons")
            },
            "lr",
        ),
        (
            RunConfig {
                lr: Some(f64::NAN),
                ..config("moons")
            },
            "lr",
        ),
        (
            RunConfig {
                classes: Some(4),
                ..config("moons")
            },
            "classes",
        ),
        (
            RunConfig {
                epochs: Some(0),
                ..config("moons")
            },
            "epochs",
        ),
        (
            RunConfig {
                lr_decay: Some(1.5),
                ..config("moons")
            },
            "lr_decay",
        ),
        (
            RunConfig {
                lr_slice: "1e-2:1e-4".into(),
                ..config("moons")
            },
            "lr_slice",
        ),
        (
            RunConfig {
                lr_slice: "1e-4:1e-2".into(),
                lr: Some(1e-3),
                ..config("moons")
            },
            "lr_slice",
        ),
        (
            RunConfig {
                layer_lr: vec!["layer[0=1".into()],
                ..config("moons")
            },
            "layer_lr[0]",
        ),
        (
            RunConfig {
                device: "tpu".into(),
                ..config("moons")
            },
            "device",
        ),
        (
            RunConfig {
                schedule: "linear".into(),
                ..config("moons")
            },
            "schedule",
        ),
        (
            RunConfig {
                optimizer: "lion".into(),
                ..config("moons")
            },
            "optimizer",
        ),
    ];
    for (config, field) in cases {
        let err = RunSpec::try_from(config.clone()).unwrap_err();
        assert!(
            err.to_string().starts_with(&format!("{field}:")),
            "{config:?} gave {err}"
        );
    }
}
