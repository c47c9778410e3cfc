//! MNIST-style IDX files in a folder on the daemon's host.
//!
//! The folder holds `train-images-idx3-ubyte` and `train-labels-idx1-ubyte`, and optionally
//! `t10k-images-idx3-ubyte` and `t10k-labels-idx1-ubyte` (the validation set); each may instead be
//! gzip'd with a `.gz` suffix, as MNIST is distributed. Images are unsigned bytes (IDX type 0x08):
//! `[N, H, W]` becomes samples `[1, H, W]`, `[N, C, H, W]` samples `[C, H, W]`, and `[N, D]`
//! (already flat) samples `[D]`. Labels are `[N]` unsigned bytes: the class index (classes are
//! 0 to the largest label), or the target value when the task is regression.

use std::{
    io::{BufReader, Read},
    path::{Path, PathBuf},
};

use flate2::read::GzDecoder;

use super::{Samples, MAX_DATASET_ROWS, MAX_DATASET_VALUES};
use crate::{
    error::{Result, StrataError},
    spec::{paths::open_regular, Task, TaskKind},
};

pub const TRAIN_IMAGES: &str = "train-images-idx3-ubyte";
pub const TRAIN_LABELS: &str = "train-labels-idx1-ubyte";
pub const TEST_IMAGES: &str = "t10k-images-idx3-ubyte";
pub const TEST_LABELS: &str = "t10k-labels-idx1-ubyte";
/// IDX type code of unsigned bytes, MNIST's.
const UNSIGNED_BYTE: u8 = 0x08;

fn invalid(message: String) -> StrataError {
    StrataError::invalid("dataset", message)
}

/// The images and labels of one set (training or t10k).
struct Pair {
    images: PathBuf,
    labels: PathBuf,
}

/// `dir/name`, or `dir/name.gz`: whatever entry has that name, a symlink too, without following
/// it (opening refuses anything but a regular file, so a link, dangling or not, gets the same
/// answer and reveals nothing about where it points).
fn find(dir: &Path, name: &str) -> Option<PathBuf> {
    [dir.join(name), dir.join(format!("{name}.gz"))]
        .into_iter()
        .find(|p| p.symlink_metadata().is_ok())
}

/// The training pair, and the t10k pair when the folder has one.
fn locate(dir: &Path) -> Result<(Pair, Option<Pair>)> {
    if !dir.is_dir() {
        return Err(invalid(format!(
            "idx:{}: no such folder (it is read on the daemon's host)",
            dir.display()
        )));
    }
    let expected = format!("{TRAIN_IMAGES} and {TRAIN_LABELS} (optionally {TEST_IMAGES} and {TEST_LABELS}; any of them may end in .gz)");
    let train = match (find(dir, TRAIN_IMAGES), find(dir, TRAIN_LABELS)) {
        (Some(images), Some(labels)) => Pair { images, labels },
        (images, _) => {
            let missing = if images.is_none() {
                TRAIN_IMAGES
            } else {
                TRAIN_LABELS
            };
            return Err(invalid(format!(
                "idx:{} has no {missing}; an IDX folder holds {expected}",
                dir.display()
            )));
        }
    };
    let test = match (find(dir, TEST_IMAGES), find(dir, TEST_LABELS)) {
        (Some(images), Some(labels)) => Some(Pair { images, labels }),
        (None, None) => None,
        (images, _) => {
            let (has, missing) = if images.is_some() {
                (TEST_IMAGES, TEST_LABELS)
            } else {
                (TEST_LABELS, TEST_IMAGES)
            };
            return Err(invalid(format!(
                "idx:{} has {has} but no {missing}; add it, or remove both t10k files to validate on a split",
                dir.display()
            )));
        }
    };
    Ok((train, test))
}

fn is_gzip(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "gz")
}

/// Largest IDX file read (compressed or not): the most values a dataset may hold, one byte each,
/// and a header.
const MAX_IDX_FILE_BYTES: u64 = MAX_DATASET_VALUES as u64 + 1024;

fn open(path: &Path) -> Result<Box<dyn Read>> {
    let file = open_regular(path, MAX_IDX_FILE_BYTES)
        .map_err(|e| invalid(format!("cannot read {}: {e}", path.display())))?;
    Ok(if is_gzip(path) {
        Box::new(GzDecoder::new(BufReader::new(file)))
    } else {
        Box::new(BufReader::new(file))
    })
}

fn read_failed(path: &Path, e: std::io::Error) -> StrataError {
    if e.kind() == std::io::ErrorKind::UnexpectedEof {
        invalid(format!(
            "{} is truncated: it ends before the values its header promises",
            path.display()
        ))
    } else {
        invalid(format!("cannot read {}: {e}", path.display()))
    }
}

/// Reads the header: the array's dimensions.
fn read_header(path: &Path, reader: &mut dyn Read) -> Result<Vec<usize>> {
    let mut magic = [0u8; 4];
    reader
        .read_exact(&mut magic)
        .map_err(|e| read_failed(path, e))?;
    let [0, 0, kind, rank] = magic else {
        return Err(invalid(format!(
            "{} is not an IDX file (it does not start with two zero bytes){}",
            path.display(),
            if is_gzip(path) {
                ""
            } else {
                "; a gzip'd file needs the .gz suffix"
            }
        )));
    };
    if kind != UNSIGNED_BYTE {
        return Err(invalid(format!(
            "{} holds IDX type 0x{kind:02X}; only unsigned bytes (0x08, as in MNIST) are supported",
            path.display()
        )));
    }
    if !(1..=4).contains(&rank) {
        return Err(invalid(format!(
            "{} has {rank} dimensions; 1 to 4 are supported",
            path.display()
        )));
    }
    let mut dims = Vec::with_capacity(rank as usize);
    for _ in 0..rank {
        let mut size = [0u8; 4];
        reader
            .read_exact(&mut size)
            .map_err(|e| read_failed(path, e))?;
        dims.push(u32::from_be_bytes(size) as usize);
    }
    Ok(dims)
}

/// One set's dimensions, labels and pixels.
struct Part {
    /// One image's shape, as the model sees it.
    sample_shape: Vec<i64>,
    labels: Vec<u8>,
    pixels: Vec<u8>,
}

/// Reads every value after the header, and checks nothing follows them.
fn read_values(path: &Path, reader: &mut dyn Read, count: usize) -> Result<Vec<u8>> {
    let mut values = vec![0u8; count];
    reader
        .read_exact(&mut values)
        .map_err(|e| read_failed(path, e))?;
    let mut extra = [0u8; 1];
    if reader.read(&mut extra).map_err(|e| read_failed(path, e))? > 0 {
        return Err(invalid(format!(
            "{} has data past the {count} values its header promises",
            path.display()
        )));
    }
    Ok(values)
}

/// Reads one set: its labels, its images' header and pixels.
fn read_part(pair: &Pair) -> Result<Part> {
    let labels = read_labels(&pair.labels)?;
    let mut images_reader = open(&pair.images)?;
    let dims = read_header(&pair.images, &mut *images_reader)?;
    let (sample_shape, values) = image_shape(pair, &dims, labels.len())?;
    let pixels = read_values(&pair.images, &mut *images_reader, values)?;
    Ok(Part {
        sample_shape,
        labels,
        pixels,
    })
}

/// A labels file: one dimension, N unsigned bytes.
fn read_labels(path: &Path) -> Result<Vec<u8>> {
    let mut reader = open(path)?;
    let dims = read_header(path, &mut *reader)?;
    let &[count] = dims.as_slice() else {
        return Err(invalid(format!(
            "{} has dimensions {dims:?}; labels are one-dimensional [N]",
            path.display()
        )));
    };
    if count > MAX_DATASET_ROWS {
        return Err(invalid(format!(
            "{} claims {count} labels; at most {MAX_DATASET_ROWS} rows are read (datasets are held in memory)",
            path.display()
        )));
    }
    read_values(path, &mut *reader, count)
}

/// One image's shape as the model sees it, and the number of pixel values, from the images'
/// dimensions; they must hold one image per label (`count`), none empty, within the limits.
fn image_shape(pair: &Pair, dims: &[usize], count: usize) -> Result<(Vec<i64>, usize)> {
    let sample_shape: Vec<i64> = match dims {
        [_, d] => vec![*d as i64],
        [_, h, w] => vec![1, *h as i64, *w as i64],
        [_, c, h, w] => vec![*c as i64, *h as i64, *w as i64],
        _ => {
            return Err(invalid(format!(
                "{} has dimensions {dims:?}; images are [N, H, W], [N, C, H, W] or [N, D]",
                pair.images.display()
            )))
        }
    };
    if dims[0] != count {
        return Err(invalid(format!(
            "{} holds {} images but {} holds {count} labels",
            pair.images.display(),
            dims[0],
            pair.labels.display()
        )));
    }
    if dims.contains(&0) {
        return Err(invalid(format!(
            "{} holds no images (dimensions {dims:?})",
            pair.images.display()
        )));
    }
    let values = dims.iter().try_fold(1usize, |n, &d| n.checked_mul(d));
    match values {
        Some(values) if values <= MAX_DATASET_VALUES => Ok((sample_shape, values)),
        _ => Err(invalid(format!(
            "{} has dimensions {dims:?}: more than {MAX_DATASET_VALUES} values; datasets are held in memory and at most that many are read",
            pair.images.display()
        ))),
    }
}

/// An IDX folder, read.
pub struct IdxSet {
    pub train: Samples,
    /// The t10k set, when the folder has one.
    pub test: Option<Samples>,
    pub task: Task,
}

/// Reads the folder: labels and pixels, of the training set and of the t10k set when there is one.
pub fn read_idx(dir: &Path, task: Option<TaskKind>) -> Result<IdxSet> {
    let (train_pair, test_pair) = locate(dir)?;
    let train = read_part(&train_pair)?;
    let test = test_pair.map(|pair| read_part(&pair)).transpose()?;
    if let Some(test) = &test {
        if test.sample_shape != train.sample_shape {
            return Err(invalid(format!(
                "idx:{}: the t10k images have shape {:?}, the training images {:?}",
                dir.display(),
                test.sample_shape,
                train.sample_shape
            )));
        }
    }
    let task = match task.unwrap_or(TaskKind::Classification) {
        TaskKind::Regression => Task::Regression,
        TaskKind::Classification => {
            let largest = std::iter::once(&train)
                .chain(test.as_ref())
                .flat_map(|p| p.labels.iter().copied())
                .max()
                .unwrap_or(0);
            if largest == 0 {
                return Err(invalid(format!(
                    "idx:{}: every label is 0, so there is nothing to classify",
                    dir.display()
                )));
            }
            Task::Classification {
                classes: i64::from(largest) + 1,
            }
        }
    };
    let samples = |part: Part| Samples {
        features: part.pixels.into_iter().map(f32::from).collect(),
        targets: part.labels.into_iter().map(f32::from).collect(),
        sample_shape: part.sample_shape,
    };
    Ok(IdxSet {
        train: samples(train),
        test: test.map(samples),
        task,
    })
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    /// An IDX file of unsigned bytes.
    fn idx_bytes(dims: &[u32], values: &[u8]) -> Vec<u8> {
        let mut bytes = vec![0, 0, UNSIGNED_BYTE, dims.len() as u8];
        for d in dims {
            bytes.extend_from_slice(&d.to_be_bytes());
        }
        bytes.extend_from_slice(values);
        bytes
    }

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(bytes).unwrap();
        encoder.finish().unwrap()
    }

    fn folder(files: &[(&str, Vec<u8>)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (name, bytes) in files {
            std::fs::write(dir.path().join(name), bytes).unwrap();
        }
        dir
    }

    fn error(dir: &tempfile::TempDir) -> String {
        match read_idx(dir.path(), None) {
            Ok(_) => panic!("accepted"),
            Err(err) => err.to_string(),
        }
    }

    #[test]
    fn reads_images_labels_and_gzipped_t10k() {
        let pixels: Vec<u8> = (0..3 * 2 * 2).collect();
        let dir = folder(&[
            (TRAIN_IMAGES, idx_bytes(&[3, 2, 2], &pixels)),
            (TRAIN_LABELS, idx_bytes(&[3], &[0, 2, 1])),
            (
                "t10k-images-idx3-ubyte.gz",
                gzip(&idx_bytes(&[1, 2, 2], &[9, 9, 9, 9])),
            ),
            ("t10k-labels-idx1-ubyte.gz", gzip(&idx_bytes(&[1], &[3]))),
        ]);
        let set = read_idx(dir.path(), None).unwrap();
        assert_eq!(set.task, Task::Classification { classes: 4 });
        assert_eq!(set.train.sample_shape, vec![1, 2, 2]);
        assert_eq!(set.train.features.len(), 12);
        assert_eq!(set.train.features[5], 5.0);
        assert_eq!(set.train.targets, vec![0.0, 2.0, 1.0]);
        let test = set.test.unwrap();
        assert_eq!(test.features, vec![9.0; 4]);
        let regression = read_idx(dir.path(), Some(TaskKind::Regression)).unwrap();
        assert_eq!(regression.task, Task::Regression);
    }

    #[test]
    fn malformed_folders_are_named() {
        let empty = folder(&[]);
        assert!(error(&empty).contains("has no train-images-idx3-ubyte"));
        let truncated = folder(&[
            (TRAIN_IMAGES, idx_bytes(&[3, 2, 2], &[1, 2, 3])),
            (TRAIN_LABELS, idx_bytes(&[3], &[0, 1, 1])),
        ]);
        let err = error(&truncated);
        assert!(err.contains("is truncated"), "{err}");
        let mismatched = folder(&[
            (TRAIN_IMAGES, idx_bytes(&[2, 1, 1], &[1, 2])),
            (TRAIN_LABELS, idx_bytes(&[3], &[0, 1, 1])),
        ]);
        assert!(error(&mismatched).contains("holds 2 images but"));
        let not_idx = folder(&[
            (TRAIN_IMAGES, b"P5 28 28 255".to_vec()),
            (TRAIN_LABELS, idx_bytes(&[1], &[1])),
        ]);
        assert!(error(&not_idx).contains("is not an IDX file"));
        let floats = folder(&[
            (TRAIN_IMAGES, vec![0, 0, 0x0D, 1, 0, 0, 0, 0]),
            (TRAIN_LABELS, idx_bytes(&[0], &[])),
        ]);
        assert!(error(&floats).contains("type 0x0D"));
        let half_test = folder(&[
            (TRAIN_IMAGES, idx_bytes(&[1, 1, 1], &[1])),
            (TRAIN_LABELS, idx_bytes(&[1], &[1])),
            (TEST_LABELS, idx_bytes(&[1], &[1])),
        ]);
        assert!(error(&half_test).contains("but no t10k-images-idx3-ubyte"));
        let one_class = folder(&[
            (TRAIN_IMAGES, idx_bytes(&[2, 1, 1], &[1, 2])),
            (TRAIN_LABELS, idx_bytes(&[2], &[0, 0])),
        ]);
        assert!(error(&one_class).contains("every label is 0"));
    }
}
