//! The data both sides of a training comparison learn from, generated deterministically: the
//! same rows as CSV for Strata (`--dataset csv:` with `--val-dataset csv:`, so the split is the
//! files', not a seeded one) and as raw little-endian arrays for the alternatives (features
//! `f32`, labels `i64`), which they load in milliseconds. The CSV holds each `f32` in its shortest
//! round-tripping form, so both sides start from the same numbers.

use std::{
    fmt::Write as _,
    io::Write as _,
    path::{Path, PathBuf},
};

use anyhow::Result;
use strata_rng::SplitMix64;

/// Rows of one part (training or validation) of a dataset.
struct Part {
    features: Vec<f32>,
    labels: Vec<i64>,
}

/// Where a part of a dataset is, in both forms.
#[derive(Clone, Debug)]
pub struct PartFiles {
    pub csv: PathBuf,
    /// `PREFIX.x.f32` and `PREFIX.y.i64`.
    pub raw_prefix: PathBuf,
    pub rows: usize,
}

/// A classification dataset on disk: training and validation parts.
#[derive(Clone, Debug)]
pub struct DataFiles {
    pub name: String,
    pub train: PartFiles,
    pub val: PartFiles,
    pub features: usize,
    pub classes: usize,
}

/// The shape of the 8×8 digit set: sklearn's `load_digits` (1,797 images, 64 pixels of 0–16,
/// ten classes), split 80/20.
pub const DIGITS_TRAIN_ROWS: usize = 1_437;
pub const DIGITS_VAL_ROWS: usize = 360;

/// 8×8 "digits": each class a template of lit pixels (a shared one with a fifth of its pixels
/// flipped, so classes look alike in places), each image a noisy copy, pixel values whole numbers
/// from 0 to 16 as in sklearn's digits. An MLP gets about 95% of the validation images right.
pub fn digits(dir: &Path) -> Result<DataFiles> {
    let mut templates = SplitMix64::new(5);
    let shared: Vec<bool> = (0..64).map(|_| templates.uniform() < 0.4).collect();
    let template: Vec<Vec<bool>> = (0..10)
        .map(|_| {
            shared
                .iter()
                .map(|&lit| lit ^ (templates.uniform() < 0.2))
                .collect()
        })
        .collect();
    let mut rng = SplitMix64::new(6);
    let mut part = |rows: usize| Part {
        labels: (0..rows).map(|i| (i % 10) as i64).collect(),
        features: (0..rows)
            .flat_map(|i| template[i % 10].clone())
            .map(|lit| {
                let base = if lit { 11.0 } else { 3.0 };
                (base + 6.0 * rng.normal()).clamp(0.0, 16.0).round() as f32
            })
            .collect(),
    };
    let (train, val) = (part(DIGITS_TRAIN_ROWS), part(DIGITS_VAL_ROWS));
    write(dir, "digits", 64, 10, &train, &val)
}

/// A 10-class tabular set of 64 features around a random centre per class with unit noise:
/// a good model gets most rows right, a uniform guess 10%.
pub fn tabular(dir: &Path, train_rows: usize, val_rows: usize) -> Result<DataFiles> {
    let mut centres = SplitMix64::new(7);
    let centre: Vec<Vec<f64>> = (0..10)
        .map(|_| (0..64).map(|_| 0.45 * centres.normal()).collect())
        .collect();
    let mut rng = SplitMix64::new(8);
    let mut part = |rows: usize| Part {
        labels: (0..rows).map(|i| (i % 10) as i64).collect(),
        features: (0..rows)
            .flat_map(|i| centre[i % 10].clone())
            .map(|c| (c + rng.normal()) as f32)
            .collect(),
    };
    let (train, val) = (part(train_rows), part(val_rows));
    write(
        dir,
        &format!("tabular{}k", train_rows / 1000),
        64,
        10,
        &train,
        &val,
    )
}

fn write(
    dir: &Path,
    name: &str,
    features: usize,
    classes: usize,
    train: &Part,
    val: &Part,
) -> Result<DataFiles> {
    std::fs::create_dir_all(dir)?;
    let dir = dir.canonicalize()?;
    let part_files = |part: &Part, which: &str| -> Result<PartFiles> {
        let csv = dir.join(format!("{name}-{which}.csv"));
        let raw_prefix = dir.join(format!("{name}-{which}"));
        write_csv(&csv, features, part)?;
        let x: Vec<u8> = part.features.iter().flat_map(|v| v.to_le_bytes()).collect();
        let y: Vec<u8> = part.labels.iter().flat_map(|v| v.to_le_bytes()).collect();
        std::fs::write(raw_prefix.with_extension("x.f32"), x)?;
        std::fs::write(raw_prefix.with_extension("y.i64"), y)?;
        Ok(PartFiles {
            csv,
            raw_prefix,
            rows: part.labels.len(),
        })
    };
    Ok(DataFiles {
        name: name.to_string(),
        train: part_files(train, "train")?,
        val: part_files(val, "val")?,
        features,
        classes,
    })
}

fn write_csv(path: &Path, features: usize, part: &Part) -> Result<()> {
    let mut text = (0..features).map(|i| format!("f{i},")).collect::<String>() + "class\n";
    for (row, label) in part.features.chunks(features).zip(&part.labels) {
        for value in row {
            // `{}` of an f32 is its shortest form that reads back as the same f32.
            let _ = write!(text, "{value},");
        }
        let _ = writeln!(text, "{label}");
    }
    std::fs::File::create(path)?.write_all(text.as_bytes())?;
    Ok(())
}

/// Reads a part's raw arrays back (for the hand-written tch loop).
pub fn read_raw(part: &PartFiles, features: usize) -> Result<(Vec<u8>, Vec<u8>)> {
    let x = std::fs::read(part.raw_prefix.with_extension("x.f32"))?;
    let y = std::fs::read(part.raw_prefix.with_extension("y.i64"))?;
    anyhow::ensure!(
        x.len() == part.rows * features * 4 && y.len() == part.rows * 8,
        "{} does not hold {} rows",
        part.raw_prefix.display(),
        part.rows
    );
    Ok((x, y))
}
