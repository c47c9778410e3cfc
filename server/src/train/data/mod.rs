//! Datasets: synthetic sets generated deterministically from the seed, CSV files and MNIST-style
//! IDX folders on the host that reads them; split into training and validation by a seeded
//! shuffle (or validated on a separate file). A file dataset is rid of repeated rows before the
//! split when the run asks ([`dedupe`]), and checked for leakage between its training and
//! validation rows when the run is started ([`leakage`]).
//!
//! No libtorch here: the daemon reads a dataset to check it before a run is stored
//! ([`probe_dataset`]); the worker reads it again ([`load_split`]) and makes the split samples
//! tensors, standardized with the training statistics only (`strata_worker::train::dataset`).

pub mod csv;
mod dedupe;
pub mod idx;
pub mod leakage;
mod rng;
pub mod rows;
mod synthetic;

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
pub const MIN_FEATURE_STD: f64 = 1e-8;

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

    /// The samples at `rows`, in that order.
    fn gather(&self, rows: &[i64]) -> Samples {
        let width = self.width();
        let mut picked = Samples {
            features: Vec::with_capacity(width * rows.len()),
            targets: Vec::with_capacity(rows.len()),
            sample_shape: self.sample_shape.clone(),
        };
        for &row in rows {
            let row = row as usize;
            picked
                .features
                .extend_from_slice(&self.features[row * width..(row + 1) * width]);
            picked.targets.push(self.targets[row]);
        }
        picked
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
    let mut rng = SeededRng::seeded(seed);
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

/// A dataset's samples as a run trains on them: split as its seed splits them (or validated on
/// their own file), before they become tensors.
pub struct SplitSamples {
    pub train: Samples,
    pub val: Samples,
    pub task: Task,
}

/// Generates or reads the dataset for `spec` and splits it with `seed`: the same split
/// [`probe_dataset`] checked for leakage when the run was started (both draw from the seed in the
/// same order). The training rows come in the shuffle's order after the validation rows'.
pub fn load_split(spec: &DatasetSpec, seed: u64) -> Result<SplitSamples> {
    let mut rng = SeededRng::seeded(seed);
    let loaded = load(spec, &mut rng)?;
    let task = loaded.task;
    let (train, val) = match loaded.val {
        HeldOut::Samples(val) => (loaded.train, val),
        HeldOut::Split(fraction) => {
            let split = SplitOrder::new(loaded.train.rows(), fraction, &mut rng)?;
            let train = loaded.train.gather(split.train());
            let val = loaded.train.gather(split.val());
            (train, val)
        }
    };
    Ok(SplitSamples { train, val, task })
}

#[cfg(test)]
mod tests;
