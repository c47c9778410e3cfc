//! Datasets: synthetic sets generated deterministically from the seed, CSV files and MNIST-style
//! IDX folders on the daemon's host; split into training and validation by a seeded shuffle (or
//! validated on a separate file), and standardized with the training statistics only.

pub mod csv;
pub mod idx;

use std::f64::consts::PI;

use tch::{Device, Kind, TchError, Tensor};

use crate::{
    error::{Result, StrataError},
    spec::{DataSource, DatasetSpec, SyntheticKind, SyntheticSpec, Task, Validation},
};

/// Datasets are held in memory: at most this many feature values (rows × features, or pixels),
/// about 400 MB as 32-bit floats.
pub const MAX_DATASET_VALUES: usize = 100_000_000;
pub const MAX_DATASET_ROWS: usize = 10_000_000;
/// Most classes a classification dataset may have.
pub const MAX_CLASSES: usize = 1000;
/// A feature whose training values spread less than this is left unscaled (only centred), so a
/// constant column cannot blow up validation values.
const MIN_FEATURE_STD: f64 = 1e-8;

/// A small, fast, seedable generator (SplitMix64): data generation and shuffling must give the
/// same result for the same seed on every machine, independent of libtorch's global RNG.
#[derive(Clone, Debug)]
pub struct SeededRng(u64);

impl SeededRng {
    pub fn new(seed: u64) -> Self {
        SeededRng(seed ^ 0x5DEE_CE66_D1CE_4E5B)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Standard normal (Box–Muller).
    pub fn normal(&mut self) -> f64 {
        let u1 = self.uniform().max(f64::MIN_POSITIVE);
        let u2 = self.uniform();
        (-2.0 * u1.ln()).sqrt() * (2.0 * PI * u2).cos()
    }

    /// Uniform in 0..n.
    pub fn below(&mut self, n: usize) -> usize {
        (self.uniform() * n as f64) as usize % n.max(1)
    }

    /// A random permutation of 0..n (Fisher–Yates).
    pub fn permutation(&mut self, n: usize) -> Vec<i64> {
        let mut order: Vec<i64> = (0..n as i64).collect();
        for i in (1..n).rev() {
            order.swap(i, self.below(i + 1));
        }
        order
    }
}

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

    fn rows(&self) -> usize {
        self.targets.len()
    }

    fn push(&mut self, row: &[f64], target: f64) {
        self.features.extend(row.iter().map(|&v| v as f32));
        self.targets.push(target as f32);
    }
}

fn generate(spec: &SyntheticSpec, rng: &mut SeededRng) -> Samples {
    let n = spec.samples as usize;
    let noise = spec.noise;
    let mut samples = Samples::new(spec.features() as usize, n);
    match spec.kind {
        SyntheticKind::Spirals => {
            // CS231n's spirals: each class an arm of about two thirds of a turn, with angular noise.
            let classes = spec.classes as usize;
            for i in 0..n {
                let class = i % classes;
                let radius = rng.uniform();
                let angle =
                    4.0 * radius + 2.0 * PI * class as f64 / classes as f64 + noise * rng.normal();
                samples.push(&[radius * angle.sin(), radius * angle.cos()], class as f64);
            }
        }
        SyntheticKind::Moons => {
            for i in 0..n {
                let class = i % 2;
                let t = PI * rng.uniform();
                let (x, y) = if class == 0 {
                    (t.cos(), t.sin())
                } else {
                    (1.0 - t.cos(), 0.5 - t.sin())
                };
                samples.push(
                    &[x + noise * rng.normal(), y + noise * rng.normal()],
                    class as f64,
                );
            }
        }
        SyntheticKind::Blobs => {
            let classes = spec.classes as usize;
            let centers: Vec<(f64, f64)> = (0..classes)
                .map(|_| (rng.uniform() * 10.0 - 5.0, rng.uniform() * 10.0 - 5.0))
                .collect();
            for i in 0..n {
                let class = i % classes;
                let (cx, cy) = centers[class];
                samples.push(
                    &[cx + noise * rng.normal(), cy + noise * rng.normal()],
                    class as f64,
                );
            }
        }
        SyntheticKind::Xor => {
            for _ in 0..n {
                let (x, y) = (rng.uniform() * 2.0 - 1.0, rng.uniform() * 2.0 - 1.0);
                let class = if (x > 0.0) == (y > 0.0) { 0.0 } else { 1.0 };
                samples.push(&[x + noise * rng.normal(), y + noise * rng.normal()], class);
            }
        }
        SyntheticKind::Regression => {
            for _ in 0..n {
                let row: Vec<f64> = (0..4).map(|_| rng.uniform() * 4.0 - 2.0).collect();
                let target = (1.5 * row[0]).sin() + 0.5 * row[1] * row[2] - 0.3 * row[3]
                    + noise * rng.normal();
                samples.push(&row, target);
            }
        }
    }
    samples
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
}

impl Loaded {
    fn val_fraction(&self) -> Option<f64> {
        match self.val {
            HeldOut::Split(fraction) => Some(fraction),
            HeldOut::Samples(_) => None,
        }
    }
}

/// Generates or reads the whole dataset. A synthetic set draws from `rng`.
fn load(spec: &DatasetSpec, rng: &mut SeededRng) -> Result<Loaded> {
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
            })
        }
        DataSource::Idx { dir } => {
            let set = idx::read_idx(dir, spec.task, true)?;
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
/// is rejected before the run is stored. A CSV file is parsed whole (every value is checked); an
/// IDX folder's headers and labels are read, not its pixels.
pub fn probe_dataset(spec: &DatasetSpec) -> Result<DataShape> {
    let loaded = match &spec.source {
        DataSource::Synthetic(synthetic) => {
            return Ok(DataShape {
                sample: vec![synthetic.features()],
                task: synthetic.task(),
                val_fraction: spec.reported_val_fraction(),
            })
        }
        DataSource::Csv { .. } => load(spec, &mut SeededRng::new(0))?,
        DataSource::Idx { dir } => {
            let set = idx::read_idx(dir, spec.task, false)?;
            let use_test =
                set.test.is_some() && matches!(spec.validation, Validation::IdxTestFilesOrSplit(_));
            let val_fraction = match spec.validation {
                Validation::Split(f) | Validation::IdxTestFilesOrSplit(f) if !use_test => Some(f),
                _ => None,
            };
            if let Some(fraction) = val_fraction {
                validation_rows(set.train.rows(), fraction)?;
            }
            return Ok(DataShape {
                sample: set.train.sample_shape,
                task: set.task,
                val_fraction,
            });
        }
    };
    let val_fraction = loaded.val_fraction();
    if let Some(fraction) = val_fraction {
        validation_rows(loaded.train.rows(), fraction)?;
    }
    Ok(DataShape {
        sample: loaded.train.sample_shape,
        task: loaded.task,
        val_fraction,
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
    let n_val = match &loaded.val {
        HeldOut::Split(fraction) => validation_rows(loaded.train.rows(), *fraction)?,
        HeldOut::Samples(_) => 0,
    };
    let (train, val) = (loaded.train, loaded.val);
    let build = || -> Result<Dataset, TchError> {
        let (train_x, train_y, val_x, val_y) = match val {
            HeldOut::Samples(val) => {
                let (train_x, train_y) = tensors(train, task)?;
                let (val_x, val_y) = tensors(val, task)?;
                (train_x, train_y, val_x, val_y)
            }
            HeldOut::Split(_) => {
                let n = train.rows();
                let (features, targets) = tensors(train, task)?;
                let order = Tensor::f_from_slice(&rng.permutation(n))?;
                let n_val = n_val as i64;
                let val_idx = order.f_narrow(0, 0, n_val)?;
                let train_idx = order.f_narrow(0, n_val, n as i64 - n_val)?;
                (
                    features.f_index_select(0, &train_idx)?,
                    targets.f_index_select(0, &train_idx)?,
                    features.f_index_select(0, &val_idx)?,
                    targets.f_index_select(0, &val_idx)?,
                )
            }
        };

        // Standardize with training statistics only, so nothing about validation leaks into
        // training: per feature for tabular data, per channel for images.
        let dims: Vec<i64> = match train_x.dim() {
            2 => vec![0],
            rank => std::iter::once(0).chain(2..rank as i64).collect(),
        };
        let mean = train_x.f_mean_dim(dims.as_slice(), true, Kind::Float)?;
        let std = train_x.f_std_dim(dims.as_slice(), true, true)?;
        let std = std.f_where_scalarother(&std.f_gt(MIN_FEATURE_STD)?, 1.0)?;
        let (mean, std) = match reuse {
            Some(stats) if stats.mean.size() == mean.size() && stats.std.size() == std.size() => (
                stats.mean.f_to_kind(Kind::Float)?,
                stats.std.f_to_kind(Kind::Float)?,
            ),
            _ => (mean, std),
        };
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

#[cfg(test)]
mod tests {
    use super::*;

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
        let shape = probe_dataset(&spec).unwrap();
        assert_eq!(
            shape,
            DataShape {
                sample: vec![2],
                task: Task::Classification { classes: 2 },
                val_fraction: None
            }
        );
        let d = build_dataset(&spec, 0, Device::Cpu, None).unwrap();
        assert_eq!(d.train_len(), 20);
        assert_eq!(d.val_x.size(), vec![1, 2]);
        // The constant column is centred, not divided by a zero spread.
        assert_eq!(d.val_x.double_value(&[0, 1]), 1.0);

        let split = csv_spec(&train, Validation::Split(0.25));
        assert_eq!(probe_dataset(&split).unwrap().val_fraction, Some(0.25));
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
        };
        let shape = probe_dataset(&spec).unwrap();
        assert_eq!(shape.sample, vec![1, 4, 4]);
        assert_eq!(shape.task, Task::Classification { classes: 3 });
        assert_eq!(shape.val_fraction, Some(0.2), "no t10k files: a split");
        let d = build_dataset(&spec, 0, Device::Cpu, None).unwrap();
        assert_eq!(d.train_x.size(), vec![8, 1, 4, 4]);
        assert!(d.train_x.mean(Kind::Float).double_value(&[]).abs() < 1e-5);

        write(idx::TEST_IMAGES, &[2, 4, 4], &pixels[..32]);
        write(idx::TEST_LABELS, &[2], &[1, 2]);
        assert_eq!(probe_dataset(&spec).unwrap().val_fraction, None);
        let d = build_dataset(&spec, 0, Device::Cpu, None).unwrap();
        assert_eq!(d.train_x.size(), vec![10, 1, 4, 4]);
        assert_eq!(d.val_x.size(), vec![2, 1, 4, 4]);
        assert_eq!(d.sample_shape(), vec![1, 4, 4]);
    }
}
