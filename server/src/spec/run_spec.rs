//! A `RunConfig` parsed into a [`RunSpec`]: every field checked, and the config filled in with the
//! defaults the run uses.

use super::{
    dataset::{DatasetLimits, DatasetRequest},
    finite_in, in_range,
    limits::{
        check_field_lengths, MAX_BATCH_SIZE, MAX_CLASSES, MAX_EPOCHS,
        MAX_PROGRESS_EVENTS_PER_EPOCH, MAX_SAMPLES,
    },
    rates::{BaseRates, RateRequest, RateSpec},
    schedule::Schedule,
    shown_number, DatasetSpec, DeviceSpec, InitSource, ModelSpec, OptimizerKind, OptimizerSpec,
    RunSpec, Validation, DEFAULT_BATCH_SIZE, DEFAULT_CLASSES, DEFAULT_DEVICE, DEFAULT_EPOCHS,
    DEFAULT_LR, DEFAULT_MODEL, DEFAULT_OPTIMIZER, DEFAULT_PROGRESS_EVENTS_PER_EPOCH,
    DEFAULT_SAMPLES, DEFAULT_SCHEDULE, DEFAULT_SGD_MOMENTUM, DEFAULT_VAL_FRACTION,
};
use crate::{
    domain::RunConfig,
    error::{Result, StrataError},
};

/// The defaults and bounds a dataset's fields are parsed with.
const DATASET_LIMITS: DatasetLimits = DatasetLimits {
    default_samples: DEFAULT_SAMPLES,
    max_samples: MAX_SAMPLES,
    default_classes: DEFAULT_CLASSES,
    max_classes: MAX_CLASSES,
    default_val_fraction: DEFAULT_VAL_FRACTION,
};

/// A `RunConfig`'s fields, grouped where a part of the spec is parsed by its own module, and with
/// the texts trimmed and defaulted as the filled config reports them.
struct RunRequest<'a> {
    dataset: DatasetRequest<'a>,
    model: String,
    optimizer: String,
    momentum: Option<f64>,
    weight_decay: Option<f64>,
    clip_grad_norm: Option<f64>,
    rates: RateRequest<'a>,
    schedule: String,
    epochs: Option<u32>,
    batch_size: Option<u32>,
    seed: Option<u64>,
    device: String,
    progress_events_per_epoch: Option<u32>,
    init_from: &'a str,
    on_worker: String,
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
            layer_lr,
            freeze,
            lr_decay,
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
            dedupe,
            on_worker,
        } = config;
        let request = RunRequest {
            dataset: DatasetRequest {
                dataset: &dataset,
                samples,
                noise,
                classes,
                val_fraction,
                label: &label,
                val_dataset: &val_dataset,
                task: &task,
                dedupe,
            },
            model: trimmed_or(&model, DEFAULT_MODEL),
            optimizer: trimmed_or(&optimizer, DEFAULT_OPTIMIZER).to_ascii_lowercase(),
            momentum,
            weight_decay,
            clip_grad_norm,
            rates: RateRequest {
                lr,
                lr_decay,
                lr_slice: &lr_slice,
                layer_lr: &layer_lr,
                freeze: &freeze,
            },
            schedule: trimmed_or(&schedule, DEFAULT_SCHEDULE),
            epochs,
            batch_size,
            seed,
            device: trimmed_or(&device, DEFAULT_DEVICE).to_ascii_lowercase(),
            progress_events_per_epoch,
            init_from: &init_from,
            on_worker: on_worker.trim().to_string(),
        };
        let spec = request.parse()?;
        Ok(RunSpec {
            config: request.filled_config(&spec),
            ..spec
        })
    }
}

/// `text` trimmed, or `default` when it is empty.
fn trimmed_or(text: &str, default: &str) -> String {
    match text.trim() {
        "" => default.to_string(),
        text => text.to_string(),
    }
}

impl RunRequest<'_> {
    /// Checks the fields in this order (the first bad one is the error reported) into a spec whose
    /// `config` is left for [`RunRequest::filled_config`].
    fn parse(&self) -> Result<RunSpec> {
        let dataset = DatasetSpec::parse(&self.dataset, &DATASET_LIMITS)?;
        // The parameter count is checked once the dataset's shape is known (train::prepare_run).
        let model = ModelSpec::parse(&self.model)?;
        let weight_decay = finite_in(
            "weight_decay",
            self.weight_decay.unwrap_or(0.0),
            0.0,
            10.0,
            "0 to 10",
        )?;
        let kind = parse_optimizer_kind(&self.optimizer, self.momentum)?;
        let rates = RateSpec::parse(&self.rates)?;
        let schedule =
            Schedule::parse(&self.schedule).map_err(|e| StrataError::invalid("schedule", e))?;
        let clip_grad_norm = parse_clip_grad_norm(self.clip_grad_norm)?;
        Ok(RunSpec {
            config: RunConfig::default(),
            dataset,
            model,
            optimizer: OptimizerSpec {
                kind,
                weight_decay,
                clip_grad_norm,
            },
            rates,
            schedule,
            epochs: in_range(
                "epochs",
                self.epochs.unwrap_or(DEFAULT_EPOCHS),
                1,
                MAX_EPOCHS,
            )?,
            batch_size: in_range(
                "batch_size",
                self.batch_size.unwrap_or(DEFAULT_BATCH_SIZE),
                1,
                MAX_BATCH_SIZE,
            )?,
            seed: self.seed.unwrap_or(0),
            device: parse_device(&self.device)?,
            progress_events_per_epoch: in_range(
                "progress_events_per_epoch",
                self.progress_events_per_epoch
                    .unwrap_or(DEFAULT_PROGRESS_EVENTS_PER_EPOCH),
                0,
                MAX_PROGRESS_EVENTS_PER_EPOCH,
            )?,
            init_from: InitSource::parse(self.init_from)?,
            on_worker: match self.on_worker.as_str() {
                "" => None,
                label => {
                    super::validate_worker_label("on_worker", label)?;
                    Some(label.to_string())
                }
            },
        })
    }

    /// The config as stored and reported back: what was asked for, with every default `spec`
    /// filled in (and the synthetic-only fields only for a synthetic set).
    fn filled_config(self, spec: &RunSpec) -> RunConfig {
        let synthetic = spec.dataset.synthetic_spec();
        RunConfig {
            dataset: spec.dataset.source.spec_text(),
            samples: synthetic.map(|s| s.samples),
            noise: synthetic.map(|s| s.noise),
            classes: synthetic
                .filter(|s| s.kind.has_class_count())
                .map(|s| s.classes),
            val_fraction: spec.dataset.reported_val_fraction(),
            label: self.dataset.label.trim().to_string(),
            val_dataset: match &spec.dataset.validation {
                Validation::CsvFile(path) => format!("csv:{}", path.display()),
                Validation::Split(_) | Validation::IdxTestFilesOrSplit(_) => String::new(),
            },
            task: spec
                .dataset
                .known_task()
                .map_or(String::new(), |t| t.label().to_string()),
            model: self.model,
            optimizer: self.optimizer,
            lr: match spec.rates.base {
                BaseRates::Slice { .. } => None,
                BaseRates::Uniform(_) | BaseRates::Decay { .. } => {
                    Some(self.rates.lr.unwrap_or(DEFAULT_LR))
                }
            },
            momentum: match spec.optimizer.kind {
                OptimizerKind::Sgd { momentum } => Some(momentum),
                OptimizerKind::Adam | OptimizerKind::AdamW => None,
            },
            weight_decay: Some(spec.optimizer.weight_decay),
            layer_lr: self.rates.layer_lr.to_vec(),
            freeze: self.rates.freeze.to_vec(),
            lr_decay: self.rates.lr_decay,
            lr_slice: self.rates.lr_slice.trim().to_string(),
            schedule: self.schedule,
            epochs: Some(spec.epochs),
            batch_size: Some(spec.batch_size),
            seed: Some(spec.seed),
            device: self.device,
            progress_events_per_epoch: Some(spec.progress_events_per_epoch),
            init_from: self.init_from.to_string(),
            clip_grad_norm: self.clip_grad_norm,
            dedupe: spec.dataset.dedupe,
            on_worker: self.on_worker,
        }
    }
}

/// The optimizer named (lower-cased), with its momentum: sgd's alone takes one.
fn parse_optimizer_kind(optimizer: &str, momentum: Option<f64>) -> Result<OptimizerKind> {
    match optimizer {
        "sgd" => Ok(OptimizerKind::Sgd {
            momentum: finite_in(
                "momentum",
                momentum.unwrap_or(DEFAULT_SGD_MOMENTUM),
                0.0,
                0.999_999,
                "0 up to (not including) 1",
            )?,
        }),
        "adam" | "adamw" if momentum.is_some() => Err(StrataError::invalid(
            "momentum",
            "applies to sgd only (adam and adamw use their own betas)",
        )),
        "adam" => Ok(OptimizerKind::Adam),
        "adamw" => Ok(OptimizerKind::AdamW),
        other => Err(StrataError::invalid(
            "optimizer",
            format!("'{other}' is not an optimizer; allowed: sgd, adam, adamw"),
        )),
    }
}

fn parse_clip_grad_norm(norm: Option<f64>) -> Result<Option<f64>> {
    match norm {
        Some(norm) if !norm.is_finite() || norm <= 0.0 => Err(StrataError::invalid(
            "clip_grad_norm",
            format!(
                "{} must be a positive finite number, e.g. 1.0",
                shown_number(norm)
            ),
        )),
        other => Ok(other),
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
