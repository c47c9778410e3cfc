//! A run's configuration, validated: every field of the protocol's `RunConfig` parsed into a typed
//! spec, with defaults filled in and every bad value named.

pub mod glob;
pub mod rates;
pub mod schedule;

use strata_proto::RunConfig;

use crate::error::{Result, StrataError};
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
const MAX_HIDDEN_LAYERS: usize = 64;
const MAX_LAYER_WIDTH: i64 = 1 << 16;
const MAX_RULES: usize = 256;
/// Keeps a request from asking the daemon to allocate an absurd model.
const MAX_PARAMETERS: i64 = 50_000_000;
const MAX_PROGRESS_EVENTS_PER_EPOCH: u32 = 1000;
const MAX_NAME_CHARS: usize = 200;
const MAX_TAGS: usize = 32;

pub const DATASETS: &str = "spirals, moons, blobs, xor, regression";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyntheticKind {
    Spirals,
    Moons,
    Blobs,
    Xor,
    Regression,
}

impl SyntheticKind {
    fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "spirals" => SyntheticKind::Spirals,
            "moons" => SyntheticKind::Moons,
            "blobs" => SyntheticKind::Blobs,
            "xor" => SyntheticKind::Xor,
            "regression" => SyntheticKind::Regression,
            _ => return None,
        })
    }

    fn has_class_count(self) -> bool {
        matches!(self, SyntheticKind::Spirals | SyntheticKind::Blobs)
    }

    fn default_noise(self) -> f64 {
        match self {
            SyntheticKind::Spirals => 0.2,
            SyntheticKind::Moons => 0.1,
            SyntheticKind::Blobs => 1.0,
            SyntheticKind::Xor => 0.1,
            SyntheticKind::Regression => 0.1,
        }
    }
}

/// What the model learns: a class out of `classes`, or one real number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Task {
    Classification { classes: i64 },
    Regression,
}

impl Task {
    pub fn outputs(self) -> i64 {
        match self {
            Task::Classification { classes } => classes,
            Task::Regression => 1,
        }
    }

    pub fn metric_name(self) -> &'static str {
        match self {
            Task::Classification { .. } => "accuracy",
            Task::Regression => "r2",
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct DatasetSpec {
    pub kind: SyntheticKind,
    pub samples: u32,
    pub noise: f64,
    pub classes: u32,
    pub val_fraction: f64,
}

impl DatasetSpec {
    pub fn features(&self) -> i64 {
        match self.kind {
            SyntheticKind::Regression => 4,
            _ => 2,
        }
    }

    pub fn task(&self) -> Task {
        match self.kind {
            SyntheticKind::Regression => Task::Regression,
            SyntheticKind::Moons | SyntheticKind::Xor => Task::Classification { classes: 2 },
            SyntheticKind::Spirals | SyntheticKind::Blobs => Task::Classification {
                classes: i64::from(self.classes),
            },
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum ModelSpec {
    /// Fully connected layers `layer0..layerN-1` of these widths (ReLU between), then `head`.
    Mlp { hidden: Vec<i64> },
}

impl ModelSpec {
    /// Trainable scalars of this model for the given input and output widths.
    pub fn parameter_count(&self, inputs: i64, outputs: i64) -> i64 {
        let ModelSpec::Mlp { hidden } = self;
        let mut count = 0i64;
        let mut width = inputs;
        for &next in hidden.iter().chain(std::iter::once(&outputs)) {
            count = count.saturating_add(width.saturating_mul(next).saturating_add(next));
            width = next;
        }
        count
    }
}

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
}

fn in_range<T: PartialOrd + std::fmt::Display + Copy>(
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

fn finite_in(field: &str, value: f64, low: f64, high: f64, allowed: &str) -> Result<f64> {
    if !value.is_finite() || value < low || value > high {
        return Err(StrataError::invalid(
            field,
            format!("{value} is not allowed; allowed: {allowed}"),
        ));
    }
    Ok(value)
}

fn parse_model(text: &str) -> Result<ModelSpec> {
    let field = "model";
    let Some(widths) = text.strip_prefix("mlp:") else {
        return Err(StrataError::invalid(
            field,
            format!("'{text}' is not a model; allowed: mlp:H1,H2,... (hidden layer widths, e.g. mlp:64,64)"),
        ));
    };
    let hidden = widths
        .split(',')
        .map(|w| {
            w.trim()
                .parse::<i64>()
                .ok()
                .filter(|&w| (1..=MAX_LAYER_WIDTH).contains(&w))
                .ok_or_else(|| {
                    StrataError::invalid(
                        field,
                        format!("'{text}': hidden width '{w}' must be a whole number from 1 to {MAX_LAYER_WIDTH}"),
                    )
                })
        })
        .collect::<Result<Vec<_>>>()?;
    if hidden.len() > MAX_HIDDEN_LAYERS {
        return Err(StrataError::invalid(
            field,
            format!("at most {MAX_HIDDEN_LAYERS} hidden layers"),
        ));
    }
    Ok(ModelSpec::Mlp { hidden })
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
            format!("{lr} must be a positive finite number, e.g. 1e-3"),
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
                    format!("{decay} is not allowed; allowed: a factor in (0, 1], e.g. 0.65"),
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
    if config.layer_lr.len() > MAX_RULES || config.freeze.len() > MAX_RULES {
        return Err(StrataError::invalid(
            "layer_lr",
            format!("at most {MAX_RULES} rules"),
        ));
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

impl TryFrom<RunConfig> for RunSpec {
    type Error = StrataError;

    fn try_from(config: RunConfig) -> Result<Self> {
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
        } = config.clone();

        let dataset = dataset.trim().to_ascii_lowercase();
        if dataset.is_empty() {
            return Err(StrataError::invalid(
                "dataset",
                format!("required; allowed: {DATASETS}"),
            ));
        }
        let kind = SyntheticKind::parse(&dataset).ok_or_else(|| {
            StrataError::invalid(
                "dataset",
                format!("'{dataset}' is not a dataset; allowed: {DATASETS}"),
            )
        })?;
        if classes.is_some() && !kind.has_class_count() {
            return Err(StrataError::invalid(
                "classes",
                format!(
                    "{dataset} has a fixed number of classes; classes applies to spirals and blobs"
                ),
            ));
        }
        let dataset_spec = DatasetSpec {
            kind,
            samples: in_range(
                "samples",
                samples.unwrap_or(DEFAULT_SAMPLES),
                10,
                MAX_SAMPLES,
            )?,
            noise: finite_in(
                "noise",
                noise.unwrap_or(kind.default_noise()),
                0.0,
                10.0,
                "0 to 10",
            )?,
            classes: in_range(
                "classes",
                classes.unwrap_or(DEFAULT_CLASSES),
                2,
                MAX_CLASSES,
            )?,
            val_fraction: finite_in(
                "val_fraction",
                val_fraction.unwrap_or(DEFAULT_VAL_FRACTION),
                0.01,
                0.9,
                "a fraction from 0.01 to 0.9",
            )?,
        };
        if (dataset_spec.samples as f64 * dataset_spec.val_fraction) < 1.0 {
            return Err(StrataError::invalid(
                "val_fraction",
                "leaves no validation sample; raise samples or val_fraction",
            ));
        }

        let model = if model.trim().is_empty() {
            DEFAULT_MODEL.to_string()
        } else {
            model.trim().to_string()
        };
        let model_spec = parse_model(&model)?;
        let parameter_count =
            model_spec.parameter_count(dataset_spec.features(), dataset_spec.task().outputs());
        if parameter_count > MAX_PARAMETERS {
            return Err(StrataError::invalid(
                "model",
                format!("'{model}' has {parameter_count} parameters; at most {MAX_PARAMETERS} are allowed"),
            ));
        }

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
            optimizer: OptimizerSpec { kind, weight_decay },
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
            config: RunConfig::default(),
        };
        let filled = RunConfig {
            dataset,
            samples: Some(spec.dataset.samples),
            noise: Some(spec.dataset.noise),
            classes: spec
                .dataset
                .kind
                .has_class_count()
                .then_some(spec.dataset.classes),
            val_fraction: Some(spec.dataset.val_fraction),
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
        assert_eq!(spec.dataset.task(), Task::Classification { classes: 3 });
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
