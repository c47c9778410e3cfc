//! A run's dataset as tensors on its device: read and split by the daemon's own readers
//! ([`strata_server::train::data::load_split`], the split its seed makes), then standardized with
//! the training statistics only — per feature for tabular data, per channel for images — or with
//! those a checkpoint kept.

use strata_server::{
    error::{Result, StrataError},
    spec::{DatasetSpec, Task},
    train::data::{load_split, Samples, MIN_FEATURE_STD},
};
use tch::{Device, Kind, TchError, Tensor};

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
    let split = load_split(spec, seed)?;
    let task = split.task;
    let build = || -> Result<Dataset, TchError> {
        let (train_x, train_y) = tensors(split.train, task)?;
        let (val_x, val_y) = tensors(split.val, task)?;
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
mod tests {
    use strata_server::spec::{DataSource, SyntheticKind, SyntheticSpec, Validation};

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
    fn a_constant_column_is_centred_not_divided_by_zero() {
        let dir = tempfile::tempdir().unwrap();
        let (train, val) = (dir.path().join("train.csv"), dir.path().join("val.csv"));
        let rows: String = (0..20).map(|i| format!("{i},5,{}\n", i % 2)).collect();
        std::fs::write(&train, format!("a,constant,y\n{rows}")).unwrap();
        std::fs::write(&val, "a,constant,y\n3,6,1\n").unwrap();
        let spec = DatasetSpec {
            source: DataSource::Csv {
                path: train,
                label: None,
            },
            validation: Validation::CsvFile(val),
            task: None,
            dedupe: false,
        };
        let d = build_dataset(&spec, 0, Device::Cpu, None).unwrap();
        assert_eq!(d.val_x.size(), vec![1, 2]);
        assert_eq!(d.val_x.double_value(&[0, 1]), 1.0);
    }
}
