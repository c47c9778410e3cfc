//! Datasets: synthetic sets generated deterministically from the seed, CSV files and MNIST-style
//! IDX folders on the daemon's host; split into training and validation by a seeded shuffle (or
//! validated on a separate file), and standardized with the training statistics only. A file
//! dataset is rid of repeated rows before the split when the run asks ([`dedupe`]), and checked
//! for leakage between its training and validation rows when the run is started ([`leakage`]).

pub mod csv;
mod dedupe;
pub mod idx;
pub mod leakage;
mod rng;
pub mod rows;
mod synthetic;

use tch::{Device, Kind, TchError, Tensor};

use crate::{
    domain::Leakage,
    error::{Result, StrataError},
    spec::{DataSource, DatasetSpec, Task, Validation},
};
use leakage::{check_leakage, Dropped, FeatureNames};
pub use rng::SeededRng;
use rows::Rows;
use synthetic::generate;

/// Datasets are held in memory: at most this many feature values (rows × features, or pixels),
/// about 400 MB as 32-bit floats.
pub const MAX_DATASET_VALUES: usize = 100_000_000;
pub const MAX_DATASET_ROWS: usize = 10_000_000;
/// Most classes a classification dataset may have.
pub const MAX_CLASSES: usize = 1000;
/// A feature whose training values spread less than this is left unscaled (only centred), so a
/// constant column cannot blow up validation values.
const MIN_FEATURE_STD: f64 = 1e-8;
/// Training and validation tensors on the run's device. Features are `[n, features]` floats, or
/// `[n, channels, height, width]` for images; targets are class indices `[n]` (int64) or values
/// `[n, 1]` (float).
pub struct Dataset {
    pub train_x: Tensor,
    pub train_y: Tensor,
    pub val_x: Tensor,
    pub val_y: Tensor,
    pub task: Task,
    /// What the features were standardized with (on the CPU), kept in checkpoints.
    pub standardization: Standardization,
}

/// Per-feature (tabular) or per-channel (images) mean and standard deviation.
pub struct Standardization {
    pub mean: Tensor,
    pub std: Tensor,
}

impl Dataset {
    pub fn train_len(&self) -> i64 {
        self.train_x.size()[0]
    }

    /// One sample's shape: `[features]` or `[channels, height, width]`.
    pub fn sample_shape(&self) -> Vec<i64> {
        self.train_x.size()[1..].to_vec()
    }
}

/// What a dataset looks like, known before anything trains.
#[derive(Clone, Debug, PartialEq)]
pub struct DataShape {
    /// One sample's shape: `[features]` or `[channels, height, width]`.
    pub sample: Vec<i64>,
    pub task: Task,
    /// The fraction split off for validation, or `None` when validation comes from a file.
    pub val_fraction: Option<f64>,
    /// A CSV's label column and why the task is what it is.
    pub label: Option<csv::LabelChoice>,
    /// What the leakage check found on the run's split; `None` for a synthetic set.
    pub leakage: Option<Leakage>,
}

/// Samples as read, before splitting: features row after row, and a target per row (a class
/// index or a value).
pub struct Samples {
    pub features: Vec<f32>,
    pub targets: Vec<f32>,
    pub sample_shape: Vec<i64>,
}

impl Samples {
    fn new(width: usize, capacity: usize) -> Self {
        Samples {
            features: Vec::with_capacity(width * capacity),
            targets: Vec::with_capacity(capacity),
            sample_shape: vec![width as i64],
        }
    }

    pub fn rows(&self) -> usize {
        self.targets.len()
    }

    /// Values per sample.
    pub fn width(&self) -> usize {
        self.sample_shape.iter().product::<i64>().max(0) as usize
    }

    fn push(&mut self, row: &[f64], target: f64) {
        self.features.extend(row.iter().map(|&v| v as f32));
        self.targets.push(target as f32);
    }
}

/// Where the validation samples come from, once the data is read.
enum HeldOut {
    /// A file of their own (a CSV validation file, an IDX folder's t10k files).
    Samples(Samples),
    /// A seeded split of this fraction of the training samples.
    Split(f64),
}

/// Everything read, before splitting.
struct Loaded {
    train: Samples,
    val: HeldOut,
    task: Task,
    /// A CSV's label column and task, as chosen.
    label: Option<csv::LabelChoice>,
    /// What `dedupe` dropped.
    dropped: Dropped,
}

impl Loaded {
    fn val_fraction(&self) -> Option<f64> {
        match self.val {
            HeldOut::Split(fraction) => Some(fraction),
            HeldOut::Samples(_) => None,
        }
    }

    /// Drops exact repeats of a row before the split, and validation rows that repeat a
    /// training row.
    fn dedupe(&mut self) -> Result<()> {
        self.dropped.repeats = dedupe::drop_repeats(&mut self.train);
        if let HeldOut::Samples(val) = &mut self.val {
            self.dropped.val_copies = dedupe::drop_copies_of(&self.train, val);
            if val.rows() == 0 {
                return Err(StrataError::invalid(
                    "val_dataset",
                    "every validation row repeats a training row, so dedupe leaves nothing to validate on",
                ));
            }
        }
        Ok(())
    }

    /// How the leakage check's findings name the features.
    fn feature_names(&self) -> FeatureNames {
        match &self.label {
            Some(choice) => FeatureNames::Csv {
                label_column: choice.column,
            },
            None => FeatureNames::Pixels,
        }
    }

    /// The leakage check, on the split `rng` makes (as [`build_dataset`] makes it).
    fn check_leakage(&self, rng: &mut SeededRng) -> Result<Leakage> {
        let train = &self.train;
        let check = |t: Rows<'_>, v: Rows<'_>| {
            check_leakage(
                t,
                v,
                &train.sample_shape,
                self.task,
                self.feature_names(),
                self.dropped,
            )
        };
        Ok(match &self.val {
            HeldOut::Samples(val) => check(Rows::all(train), Rows::all(val)),
            HeldOut::Split(fraction) => {
                let in_val = SplitOrder::new(train.rows(), *fraction, rng)?.val_mask();
                let (train_rows, val_rows) = Rows::split(train, &in_val);
                check(train_rows, val_rows)
            }
        })
    }
}

/// The validation samples once the split is drawn.
enum ValidationRows {
    File(Samples),
    Split(SplitOrder),
}

/// The seeded split: the first `n_val` samples of a shuffle validate, the rest train.
struct SplitOrder {
    order: Vec<i64>,
    n_val: usize,
}

impl SplitOrder {
    /// Draws from `rng` after the data is loaded, so a probe at start and the load for training
    /// (both from the run's seed) split alike.
    fn new(rows: usize, fraction: f64, rng: &mut SeededRng) -> Result<SplitOrder> {
        let n_val = validation_rows(rows, fraction)?;
        Ok(SplitOrder {
            order: rng.permutation(rows),
            n_val,
        })
    }

    fn val(&self) -> &[i64] {
        &self.order[..self.n_val]
    }

    fn train(&self) -> &[i64] {
        &self.order[self.n_val..]
    }

    /// Per sample: whether it validates.
    fn val_mask(&self) -> Vec<bool> {
        let mut in_val = vec![false; self.order.len()];
        for &row in self.val() {
            in_val[row as usize] = true;
        }
        in_val
    }
}

/// Generates or reads the whole dataset (and drops repeated rows when `dedupe` asks). A synthetic
/// set draws from `rng`.
fn load(spec: &DatasetSpec, rng: &mut SeededRng) -> Result<Loaded> {
    let mut loaded = read(spec, rng)?;
    if spec.dedupe {
        loaded.dedupe()?;
    }
    Ok(loaded)
}

fn read(spec: &DatasetSpec, rng: &mut SeededRng) -> Result<Loaded> {
    let not_a_file = || StrataError::invalid("val_dataset", "applies to csv:PATH datasets");
    match &spec.source {
        DataSource::Synthetic(synthetic) => {
            let Validation::Split(fraction) = spec.validation else {
                return Err(not_a_file());
            };
            Ok(Loaded {
                train: generate(synthetic, rng),
                val: HeldOut::Split(fraction),
                task: synthetic.task(),
                label: None,
                dropped: Dropped::default(),
            })
        }
        DataSource::Csv { path, label } => {
            let label = label.as_deref();
            let train = csv::read_csv(path, "dataset", label, spec.task)?;
            let val = match &spec.validation {
                Validation::CsvFile(val_path) => {
                    Some(csv::read_csv(val_path, "val_dataset", label, spec.task)?)
                }
                Validation::Split(_) | Validation::IdxTestFilesOrSplit(_) => None,
            };
            let labelled = csv::labelled(train, val, spec.task)?;
            let val = match (labelled.val, &spec.validation) {
                (Some(val), _) => HeldOut::Samples(val),
                (None, Validation::Split(f) | Validation::IdxTestFilesOrSplit(f)) => {
                    HeldOut::Split(*f)
                }
                (None, Validation::CsvFile(_)) => {
                    return Err(StrataError::Internal(
                        "the validation file's rows were lost".into(),
                    ))
                }
            };
            Ok(Loaded {
                train: labelled.train,
                val,
                task: labelled.task,
                label: Some(labelled.choice),
                dropped: Dropped::default(),
            })
        }
        DataSource::Idx { dir } => {
            let set = idx::read_idx(dir, spec.task)?;
            let val = match (set.test, &spec.validation) {
                (Some(test), Validation::IdxTestFilesOrSplit(_)) => HeldOut::Samples(test),
                (_, Validation::Split(f) | Validation::IdxTestFilesOrSplit(f)) => {
                    HeldOut::Split(*f)
                }
                (_, Validation::CsvFile(_)) => return Err(not_a_file()),
            };
            Ok(Loaded {
                train: set.train,
                val,
                task: set.task,
                label: None,
                dropped: Dropped::default(),
            })
        }
    }
}

/// Rows held out for validation out of `rows`, or an error when a split leaves either side empty.
fn validation_rows(rows: usize, fraction: f64) -> Result<usize> {
    if rows < 2 {
        return Err(StrataError::invalid(
            "dataset",
            format!("has {rows} sample; splitting off a validation set needs at least 2"),
        ));
    }
    Ok(((rows as f64 * fraction).round() as usize).clamp(1, rows - 1))
}

/// Reads what the dataset looks like, without keeping its values: at start time, so a bad file
/// is rejected before the run is stored. A file dataset is read whole (every value is checked) and
/// checked for leakage on the split the run's `seed` makes, the one it will train on.
pub fn probe_dataset(spec: &DatasetSpec, seed: u64) -> Result<DataShape> {
    if let DataSource::Synthetic(synthetic) = &spec.source {
        return Ok(DataShape {
            sample: vec![synthetic.features()],
            task: synthetic.task(),
            val_fraction: spec.reported_val_fraction(),
            label: None,
            leakage: None,
        });
    }
    let mut rng = SeededRng::new(seed);
    let loaded = load(spec, &mut rng)?;
    let leakage = loaded.check_leakage(&mut rng)?;
    Ok(DataShape {
        val_fraction: loaded.val_fraction(),
        sample: loaded.train.sample_shape,
        task: loaded.task,
        label: loaded.label,
        leakage: Some(leakage),
    })
}

fn tensors(samples: Samples, task: Task) -> Result<(Tensor, Tensor), TchError> {
    let n = samples.rows() as i64;
    let shape: Vec<i64> = std::iter::once(n).chain(samples.sample_shape).collect();
    let features = Tensor::f_from_slice(&samples.features)?.f_reshape(shape)?;
    drop(samples.features);
    let targets = Tensor::f_from_slice(&samples.targets)?;
    let targets = match task {
        Task::Classification { .. } => targets.f_to_kind(Kind::Int64)?,
        Task::Regression => targets.f_reshape([n, 1])?,
    };
    Ok((features, targets))
}

fn libtorch(err: TchError) -> StrataError {
    StrataError::Internal(format!("libtorch: {err}"))
}

/// Generates or reads the dataset for `spec`, splits it with `seed` and moves it to `device`.
///
/// Features are standardized with the training set's statistics, or with `reuse` when its shape
/// fits: a resumed run keeps its own, a fine-tuning run the pretrained run's, so the pretrained
/// layers see inputs on the scale they learned.
pub fn build_dataset(
    spec: &DatasetSpec,
    seed: u64,
    device: Device,
    reuse: Option<Standardization>,
) -> Result<Dataset> {
    let mut rng = SeededRng::new(seed);
    let loaded = load(spec, &mut rng)?;
    let task = loaded.task;
    let (train, val) = (loaded.train, loaded.val);
    let val = match val {
        HeldOut::Samples(val) => ValidationRows::File(val),
        HeldOut::Split(fraction) => {
            ValidationRows::Split(SplitOrder::new(train.rows(), fraction, &mut rng)?)
        }
    };
    let build = || -> Result<Dataset, TchError> {
        let (train_x, train_y, val_x, val_y) = match val {
            ValidationRows::File(val) => {
                let (train_x, train_y) = tensors(train, task)?;
                let (val_x, val_y) = tensors(val, task)?;
                (train_x, train_y, val_x, val_y)
            }
            ValidationRows::Split(split) => split_off_validation(train, task, &split)?,
        };
        let Standardization { mean, std } = standardization(&train_x, reuse)?;
        let standardize = |x: &Tensor| -> Result<Tensor, TchError> { x.f_sub(&mean)?.f_div(&std) };
        Ok(Dataset {
            train_x: standardize(&train_x)?.f_to_device(device)?,
            train_y: train_y.f_to_device(device)?,
            val_x: standardize(&val_x)?.f_to_device(device)?,
            val_y: val_y.f_to_device(device)?,
            task,
            standardization: Standardization { mean, std },
        })
    };
    build().map_err(libtorch)
}

/// Training features and targets, then validation ones, as `split` divides `samples`.
fn split_off_validation(
    samples: Samples,
    task: Task,
    split: &SplitOrder,
) -> Result<(Tensor, Tensor, Tensor, Tensor), TchError> {
    let (features, targets) = tensors(samples, task)?;
    let val_idx = Tensor::f_from_slice(split.val())?;
    let train_idx = Tensor::f_from_slice(split.train())?;
    Ok((
        features.f_index_select(0, &train_idx)?,
        targets.f_index_select(0, &train_idx)?,
        features.f_index_select(0, &val_idx)?,
        targets.f_index_select(0, &val_idx)?,
    ))
}

/// Statistics of the training features only, so nothing about validation leaks into training:
/// per feature for tabular data, per channel for images. `reuse` replaces them when its shape
/// fits.
fn standardization(
    train_x: &Tensor,
    reuse: Option<Standardization>,
) -> Result<Standardization, TchError> {
    let dims: Vec<i64> = match train_x.dim() {
        2 => vec![0],
        rank => std::iter::once(0).chain(2..rank as i64).collect(),
    };
    let mean = train_x.f_mean_dim(dims.as_slice(), true, Kind::Float)?;
    let std = train_x.f_std_dim(dims.as_slice(), true, true)?;
    let std = std.f_where_scalarother(&std.f_gt(MIN_FEATURE_STD)?, 1.0)?;
    Ok(match reuse {
        Some(stats) if stats.mean.size() == mean.size() && stats.std.size() == std.size() => {
            Standardization {
                mean: stats.mean.f_to_kind(Kind::Float)?,
                std: stats.std.f_to_kind(Kind::Float)?,
            }
        }
        _ => Standardization { mean, std },
    })
}

#[cfg(test)]
mod tests;
