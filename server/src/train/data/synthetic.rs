//! The synthetic datasets, generated deterministically from the run's seed.

use std::f64::consts::PI;

use super::{Samples, SeededRng};
use crate::spec::{SyntheticKind, SyntheticSpec};

/// `spec.samples` samples of the synthetic set, drawn from `rng`.
pub(super) fn generate(spec: &SyntheticSpec, rng: &mut SeededRng) -> Samples {
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
