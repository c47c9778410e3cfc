//! A run's configuration, validated: every field of the protocol's `RunConfig` parsed into a typed
//! spec, with defaults filled in and every bad value named.

pub mod dataset;
pub mod glob;
pub mod model;
pub mod paths;
pub mod rates;
pub mod schedule;

use crate::domain::RunConfig;

use crate::error::{Result, StrataError};
pub use dataset::{
    DataSource, DatasetSpec, SyntheticKind, SyntheticSpec, Task, TaskKind, Validation, DATASETS,
};
use dataset::{DatasetLimits, DatasetRequest};
pub use model::ModelSpec;
use rates::{parse_positive_rate, BaseRates, FreezeRule, LayerRateRule, RateSpec};
use schedule::Schedule;

pub const DEFAULT_SAMPLES: u32 = 1000;
pub const DEFAULT_CLASSES: u32 = 3;
pub const DEFAULT_VAL_FRACTION: f64 = 0.2;
pub const DEFAULT_MODEL: &str = "mlp:64,64";
pub const DEFAULT_OPTIMIZER: &str = "adam";
pub const DEFAULT_LR: f64 = 1e-3;
pub const DEFAULT_SGD_MOMENTUM: f64 = 0.9;
pub const DEFAULT_EPOCHS: u32 = 10;
pub const DEFAULT_BATCH_SIZE: u32 = 32;
pub const DEFAULT_PROGRESS_EVENTS_PER_EPOCH: u32 = 20;

const MAX_SAMPLES: u32 = 10_000_000;
const MAX_CLASSES: u32 = 1000;
const MAX_EPOCHS: u32 = 1_000_000;
const MAX_BATCH_SIZE: u32 = 1 << 20;
const MAX_RULES: usize = 256;
/// Keeps a request from asking the daemon to allocate an absurd model.
pub const MAX_PARAMETERS: i64 = 50_000_000;
const MAX_PROGRESS_EVENTS_PER_EPOCH: u32 = 1000;
const MAX_NAME_CHARS: usize = 200;
const MAX_TAGS: usize = 32;

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum OptimizerKind {
    Sgd { momentum: f64 },
    Adam,
    AdamW,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct OptimizerSpec {
    pub kind: OptimizerKind,
    pub weight_decay: f64,
    /// Largest total gradient L2 norm per step; larger gradients are scaled down to it.
    pub clip_grad_norm: Option<f64>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceSpec {
    Cpu,
    Cuda(usize),
    /// The first GPU if there is one, else the CPU.
    Auto,
}

/// A validated run configuration. `config` is the request's config with every default filled in,
/// as stored and reported back.
#[derive(Clone, Debug)]
pub struct RunSpec {
    pub config: RunConfig,
    pub dataset: DatasetSpec,
    pub model: ModelSpec,
    pub optimizer: OptimizerSpec,
    pub rates: RateSpec,
    pub schedule: Schedule,
    pub epochs: u32,
    pub batch_size: u32,
    pub seed: u64,
    pub device: DeviceSpec,
    pub progress_events_per_epoch: u32,
    /// Start from another run's checkpoint (fine-tuning).
    pub init_from: Option<InitSource>,
}

/// `RUN` or `RUN@EPOCH`, as the user typed it (the run may be an id prefix).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InitSource {
    pub run: String,
    /// None: the run's last checkpoint.
    pub epoch: Option<u32>,
}

impl InitSource {
    pub fn parse(text: &str) -> Result<Option<Self>> {
        let text = text.trim();
        if text.is_empty() {
            return Ok(None);
        }
        let (run, epoch) = match text.split_once('@') {
            Some((run, epoch)) => {
                let epoch = epoch
                    .parse::<u32>()
                    .ok()
                    .filter(|&e| e >= 1)
                    .ok_or_else(|| {
                        StrataError::invalid(
                            "init_from",
                            format!("'{text}': the epoch after '@' must be a whole number ≥ 1"),
                        )
                    })?;
                (run, Some(epoch))
            }
            None => (text, None),
        };
        if run.is_empty() || run.len() > 16 || !run.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(StrataError::invalid(
                "init_from",
                format!(
                    "'{text}' must be RUN or RUN@EPOCH, RUN a run id or a unique prefix of one"
                ),
            ));
        }
        Ok(Some(InitSource {
            run: run.to_ascii_lowercase(),
            epoch,
        }))
    }
}

pub(crate) fn in_range<T: PartialOrd + std::fmt::Display + Copy>(
    field: &str,
    value: T,
    low: T,
    high: T,
) -> Result<T> {
    if value < low || value > high {
        return Err(StrataError::invalid(
            field,
            format!("{value} is out of range; allowed: {low} to {high}"),
        ));
    }
    Ok(value)
}

pub(crate) fn finite_in(
    field: &str,
    value: f64,
    low: f64,
    high: f64,
    allowed: &str,
) -> Result<f64> {
    if !value.is_finite() || value < low || value > high {
        return Err(StrataError::invalid(
            field,
            format!("{} is not allowed; allowed: {allowed}", shown_number(value)),
        ));
    }
    Ok(value)
}

/// A number as an error message prints it: plainly in the usual range, in scientific notation
/// beyond it (Rust's `{}` writes 1e308 as 309 digits).
pub fn shown_number(value: f64) -> String {
    let magnitude = value.abs();
    if !value.is_finite() || value == 0.0 || (1e-4..1e7).contains(&magnitude) {
        format!("{value}")
    } else {
        format!("{value:e}")
    }
}

/// Longest user input quoted whole in an error message.
const MAX_QUOTED_CHARS: usize = 64;

/// User input as an error message quotes it: whole (escaped) when short; else its start and its
/// length, so an error never carries a huge or hostile input back to the client or the log.
pub fn shown(text: &str) -> String {
    let count = text.chars().count();
    if count <= MAX_QUOTED_CHARS {
        format!("'{}'", text.escape_debug())
    } else {
        let start: String = text.chars().take(MAX_QUOTED_CHARS / 2).collect();
        format!("'{}…' ({count} characters)", start.escape_debug())
    }
}

fn parse_device(text: &str) -> Result<DeviceSpec> {
    match text {
        "cpu" => Ok(DeviceSpec::Cpu),
        "auto" => Ok(DeviceSpec::Auto),
        "cuda" => Ok(DeviceSpec::Cuda(0)),
        other => other
            .strip_prefix("cuda:")
            .and_then(|n| n.parse::<usize>().ok())
            .map(DeviceSpec::Cuda)
            .ok_or_else(|| {
                StrataError::invalid(
                    "device",
                    format!("'{text}' is not a device; allowed: cpu, cuda, cuda:N, auto"),
                )
            }),
    }
}

fn parse_rates(config: &RunConfig, lr_given: bool) -> Result<RateSpec> {
    let lr = config.lr.unwrap_or(DEFAULT_LR);
    if !lr.is_finite() || lr <= 0.0 {
        return Err(StrataError::invalid(
            "lr",
            format!(
                "{} must be a positive finite number, e.g. 1e-3",
                shown_number(lr)
            ),
        ));
    }
    let base = match (config.lr_decay, config.lr_slice.trim()) {
        (Some(_), slice) if !slice.is_empty() => {
            return Err(StrataError::invalid(
                "lr_decay",
                "lr_decay and lr_slice both set the base rates; choose one",
            ))
        }
        (Some(decay), _) => {
            if !decay.is_finite() || decay <= 0.0 || decay > 1.0 {
                return Err(StrataError::invalid(
                    "lr_decay",
                    format!(
                        "{} is not allowed; allowed: a factor in (0, 1], e.g. 0.65",
                        shown_number(decay)
                    ),
                ));
            }
            BaseRates::Decay { lr, decay }
        }
        (None, "") => BaseRates::Uniform(lr),
        (None, slice) => {
            if lr_given {
                return Err(StrataError::invalid(
                    "lr_slice",
                    "lr_slice sets every group's base rate, so it cannot be combined with lr; drop one",
                ));
            }
            let Some((lo, hi)) = slice.split_once(':') else {
                return Err(StrataError::invalid(
                    "lr_slice",
                    format!("'{slice}' must be LO:HI, e.g. 1e-5:1e-3"),
                ));
            };
            let (first, last) = (
                parse_positive_rate("lr_slice", lo)?,
                parse_positive_rate("lr_slice", hi)?,
            );
            if first > last {
                return Err(StrataError::invalid(
                    "lr_slice",
                    format!("'{slice}': LO must not be above HI (rates rise towards the head)"),
                ));
            }
            BaseRates::Slice { first, last }
        }
    };
    for (field, rules) in [("layer_lr", &config.layer_lr), ("freeze", &config.freeze)] {
        if rules.len() > MAX_RULES {
            return Err(StrataError::invalid(
                field,
                format!("{} rules; at most {MAX_RULES} are allowed", rules.len()),
            ));
        }
    }
    let layer_lr = config
        .layer_lr
        .iter()
        .enumerate()
        .map(|(i, rule)| LayerRateRule::parse(&format!("layer_lr[{i}]"), rule))
        .collect::<Result<_>>()?;
    let freeze = config
        .freeze
        .iter()
        .enumerate()
        .map(|(i, rule)| FreezeRule::parse(&format!("freeze[{i}]"), rule))
        .collect::<Result<_>>()?;
    Ok(RateSpec {
        base,
        layer_lr,
        freeze,
    })
}

/// Longest path or model text accepted (Linux's PATH_MAX, and a prefix).
const MAX_PATH_FIELD_CHARS: usize = 4096 + 16;
/// Longest of the short text fields (optimizer, device, task, lr_slice, init_from).
const MAX_WORD_FIELD_CHARS: usize = 100;

/// Refuses over-long text fields before any of them is parsed; the error gives the length, not
/// the text.
fn check_field_lengths(config: &RunConfig) -> Result<()> {
    let fields: [(&str, &str, usize); 9] = [
        ("dataset", &config.dataset, MAX_PATH_FIELD_CHARS),
        ("val_dataset", &config.val_dataset, MAX_PATH_FIELD_CHARS),
        ("model", &config.model, MAX_PATH_FIELD_CHARS),
        ("optimizer", &config.optimizer, MAX_WORD_FIELD_CHARS),
        ("device", &config.device, MAX_WORD_FIELD_CHARS),
        ("task", &config.task, MAX_WORD_FIELD_CHARS),
        ("lr_slice", &config.lr_slice, MAX_WORD_FIELD_CHARS),
        ("init_from", &config.init_from, MAX_WORD_FIELD_CHARS),
        ("schedule", &config.schedule, MAX_WORD_FIELD_CHARS * 2),
    ];
    for (field, text, max) in fields {
        check_length(field, text, max)?;
    }
    Ok(())
}

/// Refuses `text` longer than `max` characters before any of it is parsed; the error gives its
/// length, never the text.
pub(crate) fn check_length(field: &str, text: &str, max: usize) -> Result<()> {
    let count = text.chars().count();
    if count > max {
        return Err(StrataError::invalid(
            field,
            format!("{count} characters; at most {max} are allowed"),
        ));
    }
    Ok(())
}

impl TryFrom<RunConfig> for RunSpec {
    type Error = StrataError;

    fn try_from(config: RunConfig) -> Result<Self> {
        check_field_lengths(&config)?;
        let RunConfig {
            dataset,
            samples,
            noise,
            classes,
            val_fraction,
            model,
            optimizer,
            lr,
            momentum,
            weight_decay,
            layer_lr: _,
            freeze: _,
            lr_decay: _,
            lr_slice,
            schedule,
            epochs,
            batch_size,
            seed,
            device,
            progress_events_per_epoch,
            label,
            val_dataset,
            task,
            init_from,
            clip_grad_norm,
        } = config.clone();

        let dataset_spec = DatasetSpec::parse(
            &DatasetRequest {
                dataset: &dataset,
                samples,
                noise,
                classes,
                val_fraction,
                label: &label,
                val_dataset: &val_dataset,
                task: &task,
            },
            &DatasetLimits {
                default_samples: DEFAULT_SAMPLES,
                max_samples: MAX_SAMPLES,
                default_classes: DEFAULT_CLASSES,
                max_classes: MAX_CLASSES,
                default_val_fraction: DEFAULT_VAL_FRACTION,
            },
        )?;

        let model = if model.trim().is_empty() {
            DEFAULT_MODEL.to_string()
        } else {
            model.trim().to_string()
        };
        // The parameter count is checked once the dataset's shape is known (train::prepare_run).
        let model_spec = ModelSpec::parse(&model)?;

        let optimizer = if optimizer.trim().is_empty() {
            DEFAULT_OPTIMIZER.to_string()
        } else {
            optimizer.trim().to_ascii_lowercase()
        };
        let weight_decay = finite_in(
            "weight_decay",
            weight_decay.unwrap_or(0.0),
            0.0,
            10.0,
            "0 to 10",
        )?;
        let kind = match optimizer.as_str() {
            "sgd" => OptimizerKind::Sgd {
                momentum: finite_in(
                    "momentum",
                    momentum.unwrap_or(DEFAULT_SGD_MOMENTUM),
                    0.0,
                    0.999_999,
                    "0 up to (not including) 1",
                )?,
            },
            "adam" | "adamw" if momentum.is_some() => {
                return Err(StrataError::invalid(
                    "momentum",
                    "applies to sgd only (adam and adamw use their own betas)",
                ))
            }
            "adam" => OptimizerKind::Adam,
            "adamw" => OptimizerKind::AdamW,
            other => {
                return Err(StrataError::invalid(
                    "optimizer",
                    format!("'{other}' is not an optimizer; allowed: sgd, adam, adamw"),
                ))
            }
        };

        let rates = parse_rates(&config, lr.is_some())?;
        let schedule_text = if schedule.trim().is_empty() {
            "constant".to_string()
        } else {
            schedule.trim().to_string()
        };
        let schedule =
            Schedule::parse(&schedule_text).map_err(|e| StrataError::invalid("schedule", e))?;
        let device_text = if device.trim().is_empty() {
            "cpu".to_string()
        } else {
            device.trim().to_ascii_lowercase()
        };

        let spec = RunSpec {
            dataset: dataset_spec,
            model: model_spec,
            optimizer: OptimizerSpec {
                kind,
                weight_decay,
                clip_grad_norm: match clip_grad_norm {
                    Some(norm) if !norm.is_finite() || norm <= 0.0 => {
                        return Err(StrataError::invalid(
                            "clip_grad_norm",
                            format!(
                                "{} must be a positive finite number, e.g. 1.0",
                                shown_number(norm)
                            ),
                        ))
                    }
                    other => other,
                },
            },
            rates,
            schedule,
            epochs: in_range("epochs", epochs.unwrap_or(DEFAULT_EPOCHS), 1, MAX_EPOCHS)?,
            batch_size: in_range(
                "batch_size",
                batch_size.unwrap_or(DEFAULT_BATCH_SIZE),
                1,
                MAX_BATCH_SIZE,
            )?,
            seed: seed.unwrap_or(0),
            device: parse_device(&device_text)?,
            progress_events_per_epoch: in_range(
                "progress_events_per_epoch",
                progress_events_per_epoch.unwrap_or(DEFAULT_PROGRESS_EVENTS_PER_EPOCH),
                0,
                MAX_PROGRESS_EVENTS_PER_EPOCH,
            )?,
            init_from: InitSource::parse(&init_from)?,
            config: RunConfig::default(),
        };
        let synthetic = spec.dataset.synthetic_spec();
        let filled = RunConfig {
            dataset: spec.dataset.source.spec_text(),
            samples: synthetic.map(|s| s.samples),
            noise: synthetic.map(|s| s.noise),
            classes: synthetic
                .filter(|s| s.kind.has_class_count())
                .map(|s| s.classes),
            val_fraction: spec.dataset.reported_val_fraction(),
            label: label.trim().to_string(),
            val_dataset: match &spec.dataset.validation {
                Validation::CsvFile(path) => format!("csv:{}", path.display()),
                _ => String::new(),
            },
            task: spec
                .dataset
                .known_task()
                .map_or(String::new(), |t| t.label().to_string()),
            model,
            optimizer,
            lr: match spec.rates.base {
                BaseRates::Slice { .. } => None,
                _ => Some(config.lr.unwrap_or(DEFAULT_LR)),
            },
            momentum: match kind {
                OptimizerKind::Sgd { momentum } => Some(momentum),
                _ => None,
            },
            weight_decay: Some(weight_decay),
            lr_slice: lr_slice.trim().to_string(),
            schedule: schedule_text,
            epochs: Some(spec.epochs),
            batch_size: Some(spec.batch_size),
            seed: Some(spec.seed),
            device: device_text,
            progress_events_per_epoch: Some(spec.progress_events_per_epoch),
            ..config
        };
        Ok(RunSpec {
            config: filled,
            ..spec
        })
    }
}

impl RunSpec {
    /// Records what reading the dataset found: the task (detected or confirmed) and the split
    /// fraction actually used (`None` when validation comes from a file), so the stored config
    /// says how the run was really set up.
    pub fn record_data(&mut self, task: Task, val_fraction: Option<f64>) {
        self.dataset.task = Some(task.kind());
        self.config.task = task.kind().label().to_string();
        self.config.val_fraction = val_fraction;
    }
}

/// Validates a run's name and tags.
pub fn validate_labels(name: &str, tags: &[String]) -> Result<()> {
    if name.chars().count() > MAX_NAME_CHARS || name.chars().any(char::is_control) {
        return Err(StrataError::invalid(
            "name",
            format!("at most {MAX_NAME_CHARS} printable characters"),
        ));
    }
    if tags.len() > MAX_TAGS {
        return Err(StrataError::invalid(
            "tags",
            format!("at most {MAX_TAGS} tags"),
        ));
    }
    for (i, tag) in tags.iter().enumerate() {
        if tag.is_empty()
            || tag.chars().count() > MAX_NAME_CHARS
            || tag.chars().any(|c| c.is_control() || c.is_whitespace())
        {
            return Err(StrataError::invalid(
                format!("tags[{i}]"),
                format!("'{tag}' must be 1 to {MAX_NAME_CHARS} characters without spaces"),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
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
}
