//! Datasets: synthetic sets generated deterministically from the seed, split into training and
//! validation by a seeded shuffle, and standardized with the training statistics only.

use std::f64::consts::PI;

use tch::{Device, Kind, Tensor};

use crate::spec::{DatasetSpec, SyntheticKind, Task};

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

/// Training and validation tensors on the run's device. Features are `[n, features]` floats;
/// targets are class indices `[n]` (int64) or values `[n, 1]` (float).
pub struct Dataset {
    pub train_x: Tensor,
    pub train_y: Tensor,
    pub val_x: Tensor,
    pub val_y: Tensor,
    pub task: Task,
}

impl Dataset {
    pub fn train_len(&self) -> i64 {
        self.train_x.size()[0]
    }
}

/// Rows of features and a target per row.
struct Samples {
    features: Vec<f32>,
    targets: Vec<f32>,
    width: usize,
}

impl Samples {
    fn new(width: usize, capacity: usize) -> Self {
        Samples {
            features: Vec::with_capacity(width * capacity),
            targets: Vec::with_capacity(capacity),
            width,
        }
    }

    fn push(&mut self, row: &[f64], target: f64) {
        self.features.extend(row.iter().map(|&v| v as f32));
        self.targets.push(target as f32);
    }
}

fn generate(spec: &DatasetSpec, rng: &mut SeededRng) -> Samples {
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

/// Generates the dataset for `spec` from `seed`, splits it and moves it to `device`.
pub fn build_dataset(
    spec: &DatasetSpec,
    seed: u64,
    device: Device,
) -> Result<Dataset, tch::TchError> {
    let mut rng = SeededRng::new(seed);
    let samples = generate(spec, &mut rng);
    let n = samples.targets.len();
    let width = samples.width as i64;
    let features = Tensor::f_from_slice(&samples.features)?.f_reshape([n as i64, width])?;
    let targets = Tensor::f_from_slice(&samples.targets)?;
    let targets = match spec.task() {
        Task::Classification { .. } => targets.f_to_kind(Kind::Int64)?,
        Task::Regression => targets.f_reshape([n as i64, 1])?,
    };

    let order = Tensor::f_from_slice(&rng.permutation(n))?;
    let n_val = ((n as f64 * spec.val_fraction).round() as i64).clamp(1, n as i64 - 1);
    let val_idx = order.f_narrow(0, 0, n_val)?;
    let train_idx = order.f_narrow(0, n_val, n as i64 - n_val)?;
    let (train_x, val_x) = (
        features.f_index_select(0, &train_idx)?,
        features.f_index_select(0, &val_idx)?,
    );
    let (train_y, val_y) = (
        targets.f_index_select(0, &train_idx)?,
        targets.f_index_select(0, &val_idx)?,
    );

    // Standardize with training statistics only, so nothing about validation leaks into training.
    let mean = train_x.f_mean_dim(0, true, Kind::Float)?;
    let std = train_x.f_std_dim(0, true, true)?.f_clamp_min(1e-8)?;
    let standardize = |x: &Tensor| -> Result<Tensor, tch::TchError> { x.f_sub(&mean)?.f_div(&std) };
    Ok(Dataset {
        train_x: standardize(&train_x)?.f_to_device(device)?,
        train_y: train_y.f_to_device(device)?,
        val_x: standardize(&val_x)?.f_to_device(device)?,
        val_y: val_y.f_to_device(device)?,
        task: spec.task(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(kind: SyntheticKind) -> DatasetSpec {
        DatasetSpec {
            kind,
            samples: 200,
            noise: 0.1,
            classes: 3,
            val_fraction: 0.25,
        }
    }

    #[test]
    fn same_seed_same_data_and_standardized() {
        let a = build_dataset(&spec(SyntheticKind::Spirals), 7, Device::Cpu).unwrap();
        let b = build_dataset(&spec(SyntheticKind::Spirals), 7, Device::Cpu).unwrap();
        let c = build_dataset(&spec(SyntheticKind::Spirals), 8, Device::Cpu).unwrap();
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
        let d = build_dataset(&spec(SyntheticKind::Regression), 1, Device::Cpu).unwrap();
        assert_eq!(d.train_y.size(), vec![150, 1]);
        assert_eq!(d.train_x.size(), vec![150, 4]);
    }
}
