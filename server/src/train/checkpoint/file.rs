//! The checkpoint file on the disk, below libtorch: a safetensors file whose `__metadata__` holds
//! a checksum, and whose tensors include what a run folder needs to stand alone.
//!
//! Why a checksum in the file's own metadata rather than a sidecar file: the checkpoint is
//! written to a temporary name and renamed into place, so the tensors and the checksum that covers
//! them appear together or not at all — a sidecar would need a second rename and could disagree
//! with its file after a crash between the two. Why CRC32: it is there to find accidental damage
//! (a torn or truncated write, a flipped bit, a file half-copied by hand) and it reads at memory
//! speed; a cryptographic hash would add nothing against someone who can write the file, since they
//! could rewrite an unkeyed checksum just as well.
//!
//! The checksum covers the metadata (but itself) and every tensor's name, dtype, shape and bytes,
//! taken in name order, so it does not depend on how safetensors lays the file out. Checkpoints
//! written before checksums existed have none: they still load, as *unverified*.
//!
//! Besides the model, optimizer and feature statistics, every checkpoint holds two byte tensors:
//! [`RUN_TENSOR`], the run's record (its config, rate table, name, tags: `StoredRun`, [`crate::store::record`]), and
//! [`EPOCHS_TENSOR`], the record of this checkpoint's own epoch (a length-delimited
//! `StoredEpoch`; a checkpoint is written before its epoch's record is stored, so this is what a
//! crash between the two leaves). The earlier records are in the run's epoch log
//! ([`crate::store::epoch_log`]); from its newest intact checkpoint and the log a run can be rebuilt —
//! record, epochs and all — when the store has lost it (`stratad check --repair`).

use std::{
    borrow::Cow,
    collections::BTreeMap,
    io,
    path::{Path, PathBuf},
};

use safetensors::tensor::{Dtype, Metadata, SafeTensors, TensorInfo, TensorView};

use crate::durable;

const PREFIX: &str = "epoch-";
const SUFFIX: &str = ".safetensors";
/// Where a checkpoint is written before it is renamed into place.
pub const TMP_FILE: &str = "checkpoint.tmp.safetensors";
/// The suffix of a checkpoint moved aside because it is damaged.
pub const DAMAGED_SUFFIX: &str = "damaged";
/// The suffix of a checkpoint moved aside because the store lost its epoch's record and it cannot
/// be restored: resuming from it would leave a gap in the epochs.
pub const UNRECORDED_SUFFIX: &str = "unrecorded";

/// A model parameter's tensor is named this and the parameter's own name (`model.head.weight`).
pub const MODEL_PREFIX: &str = "model.";

/// The run's record, protobuf-encoded, as a U8 tensor.
pub const RUN_TENSOR: &str = "strata.run";
/// The record of the checkpoint's epoch, length-delimited protobuf, as a U8 tensor (checkpoints
/// written earlier in this format's life held epochs 1..=N; readers take whatever is there).
pub const EPOCHS_TENSOR: &str = "strata.epochs";

const FORMAT_KEY: &str = "strata.format";
const FORMAT_VERSION: &str = "1";
const CHECKSUM_KEY: &str = "strata.crc32";
const RUN_ID_KEY: &str = "strata.run_id";
const EPOCH_KEY: &str = "strata.epoch";

pub fn path_for(dir: &Path, epoch: u32) -> PathBuf {
    dir.join(format!("{PREFIX}{epoch:06}{SUFFIX}"))
}

/// The epochs that have a checkpoint in `dir`, ascending. Files moved aside do not count.
pub fn epochs_in(dir: &Path) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut epochs: Vec<u32> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| epoch_of(&e.file_name().to_string_lossy()))
        .collect();
    epochs.sort_unstable();
    epochs
}

fn epoch_of(file_name: &str) -> Option<u32> {
    let digits = file_name.strip_prefix(PREFIX)?.strip_suffix(SUFFIX)?;
    digits
        .bytes()
        .all(|b| b.is_ascii_digit())
        .then(|| digits.parse().ok())
        .flatten()
}

/// The run's record as it was stored when the run was created (`StoredRun`, [`crate::store::record`]), in its folder.
pub const RUN_RECORD_FILE: &str = "run.pb";

/// Creates a run's folder holding its record, durably: the folder's name and `run.pb` survive a
/// power cut once this returns. Called right after the run's record is stored, so that every run
/// folder implies a run record (what the start-up check relies on), and a run that never trained
/// can still be rebuilt from its folder if the store loses it.
pub fn create_run_folder(dir: &Path, run_record: &[u8]) -> io::Result<()> {
    durable::create_dir_all(dir)?;
    durable::replace_file(
        dir,
        RUN_RECORD_FILE,
        &crate::store::run_copy::encode(run_record),
    )
}

/// The run record its folder was created with, if it has one that is intact (see
/// [`crate::store::run_copy`]).
pub fn read_run_record(dir: &Path) -> Option<Vec<u8>> {
    crate::store::run_copy::read(dir).intact()
}

/// Renames a checkpoint to `NAME.SUFFIX` (or `NAME.SUFFIX-2`, ... if that is taken) and syncs its
/// folder: moved aside, never deleted. Returns the new path.
pub fn set_aside(path: &Path, suffix: &str) -> io::Result<PathBuf> {
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "not a file"))?
        .to_string_lossy()
        .into_owned();
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut target = dir.join(format!("{name}.{suffix}"));
    let mut n = 2;
    while target.exists() {
        target = dir.join(format!("{name}.{suffix}-{n}"));
        n += 1;
    }
    std::fs::rename(path, &target)?;
    durable::sync_dir(dir)?;
    Ok(target)
}

/// One tensor as bytes, ready to be written.
pub struct TensorData<'a> {
    pub name: String,
    pub dtype: Dtype,
    pub shape: Vec<usize>,
    pub data: Cow<'a, [u8]>,
}

/// A checkpoint file's bytes: the tensors, with the run, the epoch and their checksum in its
/// metadata. What a worker sends the daemon, and what [`write`] puts on the disk.
pub fn encode(run_id: &str, epoch: u32, tensors: &[TensorData<'_>]) -> io::Result<Vec<u8>> {
    let mut metadata = BTreeMap::from([
        (FORMAT_KEY.to_string(), FORMAT_VERSION.to_string()),
        (RUN_ID_KEY.to_string(), run_id.to_string()),
        (EPOCH_KEY.to_string(), epoch.to_string()),
    ]);
    let mut sorted: Vec<(&str, Dtype, &[usize], &[u8])> = tensors
        .iter()
        .map(|t| {
            (
                t.name.as_str(),
                t.dtype,
                t.shape.as_slice(),
                t.data.as_ref(),
            )
        })
        .collect();
    sorted.sort_by(|a, b| a.0.cmp(b.0));
    let crc = checksum(&metadata, &sorted);
    metadata.insert(CHECKSUM_KEY.to_string(), format!("{crc:08x}"));
    let views = tensors
        .iter()
        .map(|t| {
            TensorView::new(t.dtype, t.shape.clone(), &t.data)
                .map(|view| (t.name.as_str(), view))
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, format!("{e:?}")))
        })
        .collect::<io::Result<Vec<_>>>()?;
    let metadata = Some(metadata.into_iter().collect());
    safetensors::tensor::serialize(views, &metadata).map_err(|e| match e {
        safetensors::SafeTensorError::IoError(io) => io,
        other => io::Error::other(format!("{other:?}")),
    })
}

/// Writes a checkpoint file (not synced: the caller syncs and renames it).
pub fn write(path: &Path, run_id: &str, epoch: u32, tensors: &[TensorData<'_>]) -> io::Result<()> {
    std::fs::write(path, encode(run_id, epoch, tensors)?)
}

/// The checksum as it is computed: every field length-prefixed, so that no two different
/// contents can be spelled the same.
struct ChecksumFeed(crc32fast::Hasher);

impl ChecksumFeed {
    fn field(&mut self, bytes: &[u8]) {
        self.0.update(&(bytes.len() as u64).to_le_bytes());
        self.0.update(bytes);
    }

    /// The metadata, but the checksum itself.
    fn metadata(&mut self, metadata: &BTreeMap<String, String>) {
        for (key, value) in metadata.iter().filter(|(k, _)| *k != CHECKSUM_KEY) {
            self.field(key.as_bytes());
            self.field(value.as_bytes());
        }
    }

    /// A tensor's name, dtype and shape; its data follows as one more field.
    fn tensor(&mut self, name: &str, dtype: Dtype, shape: &[usize]) {
        self.field(name.as_bytes());
        self.field(format!("{dtype:?}").as_bytes());
        let dims: Vec<u8> = shape
            .iter()
            .flat_map(|&d| (d as u64).to_le_bytes())
            .collect();
        self.field(&dims);
    }
}

/// CRC32 of the metadata (but the checksum itself) and of every tensor, in name order.
fn checksum(metadata: &BTreeMap<String, String>, sorted: &[(&str, Dtype, &[usize], &[u8])]) -> u32 {
    let mut feed = ChecksumFeed(crc32fast::Hasher::new());
    feed.metadata(metadata);
    for (name, dtype, shape, data) in sorted {
        feed.tensor(name, *dtype, shape);
        feed.field(data);
    }
    feed.0.finalize()
}

/// Largest header a checkpoint may have (its tensors' names, dtypes, shapes and offsets, and the
/// metadata): what [`verify_on_disk`] reads into memory.
const MAX_HEADER_BYTES: u64 = 16 << 20;

/// Verifies the checkpoint at `path` without reading it into memory: it parses, its checksum
/// matches its contents, and it says it is `run_id`'s `epoch`. The daemon checks every checkpoint
/// a worker sends this way before it renames it into place. The error fits after "the
/// checkpoint ... is unusable: ".
pub fn verify_on_disk(path: &Path, run_id: &str, epoch: u32) -> Result<(), String> {
    use std::os::unix::fs::FileExt;
    let file = std::fs::File::open(path).map_err(|e| format!("cannot read it: {e}"))?;
    let length = file
        .metadata()
        .map_err(|e| format!("cannot read it: {e}"))?
        .len();
    let read_at = |offset: u64, buffer: &mut [u8]| {
        file.read_exact_at(buffer, offset)
            .map_err(|e| format!("it is truncated ({length} bytes): {e}"))
    };
    let mut prefix = [0u8; 8];
    read_at(0, &mut prefix)?;
    let header_len = u64::from_le_bytes(prefix);
    if header_len > MAX_HEADER_BYTES || 8 + header_len > length {
        return Err(format!(
            "its header length {header_len} does not fit ({length} bytes)"
        ));
    }
    let mut header = vec![0u8; header_len as usize];
    read_at(8, &mut header)?;
    let metadata: Metadata =
        serde_json::from_slice(&header).map_err(|e| format!("its header is malformed: {e}"))?;
    let stored: BTreeMap<String, String> = metadata
        .metadata()
        .clone()
        .unwrap_or_default()
        .into_iter()
        .collect();
    let said = |key: &str| stored.get(key).map(String::as_str);
    if said(RUN_ID_KEY) != Some(run_id) || said(EPOCH_KEY) != Some(&epoch.to_string()) {
        return Err(format!(
            "it says it is run {:?}'s epoch {:?}, not run {run_id}'s epoch {epoch}",
            said(RUN_ID_KEY).unwrap_or("?"),
            said(EPOCH_KEY).unwrap_or("?")
        ));
    }
    let Some(expected) = stored.get(CHECKSUM_KEY) else {
        return Err("its checksum is missing from its metadata".into());
    };
    let data_start = 8 + header_len;
    let mut tensors: Vec<(String, &TensorInfo)> = metadata.tensors().into_iter().collect();
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    let data_len: usize = tensors
        .iter()
        .map(|(_, t)| t.data_offsets.1)
        .max()
        .unwrap_or(0);
    if data_start + data_len as u64 != length {
        return Err(format!(
            "it is truncated or malformed ({length} bytes, its header describes {})",
            data_start + data_len as u64
        ));
    }
    let mut feed = ChecksumFeed(crc32fast::Hasher::new());
    feed.metadata(&stored);
    let mut buffer = vec![0u8; 1 << 20];
    for (name, info) in &tensors {
        let (start, end) = info.data_offsets;
        let numel = info.shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d));
        if end < start || numel.and_then(|n| n.checked_mul(info.dtype.size())) != Some(end - start)
        {
            return Err(format!("its tensor {name} has inconsistent offsets"));
        }
        feed.tensor(name, info.dtype, &info.shape);
        feed.0.update(&((end - start) as u64).to_le_bytes());
        let mut at = start;
        while at < end {
            let take = (end - at).min(buffer.len());
            read_at(data_start + at as u64, &mut buffer[..take])?;
            feed.0.update(&buffer[..take]);
            at += take;
        }
    }
    let actual = format!("{:08x}", feed.0.finalize());
    if *expected != actual {
        return Err(format!(
            "its checksum does not match its contents (stored {expected}, computed {actual})"
        ));
    }
    Ok(())
}

/// Whether a checkpoint's contents were checked against a checksum.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Checksum {
    /// Its checksum matched.
    Verified,
    /// Written before checksums existed: it parses, but its bytes cannot be checked.
    Absent,
}

/// A checkpoint file read into memory, parsed and (when it has a checksum) verified.
pub struct CheckpointFile {
    bytes: Vec<u8>,
    data_start: usize,
    metadata: Metadata,
    pub checksum: Checksum,
}

impl CheckpointFile {
    /// Reads, parses and verifies a checkpoint. The error says what is wrong with it, in words
    /// that fit after "the checkpoint ... is unusable: ".
    pub fn read(path: &Path) -> Result<Self, String> {
        let bytes = std::fs::read(path).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => "it is missing".to_string(),
            _ => format!("cannot read it: {e}"),
        })?;
        Self::from_bytes(bytes)
    }

    /// Parses and verifies a checkpoint's bytes (as a worker receives the one it resumes from).
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Self, String> {
        let (header_len, metadata) = SafeTensors::read_metadata(&bytes).map_err(|e| {
            format!(
                "it is truncated or malformed ({} bytes; safetensors: {e:?})",
                bytes.len()
            )
        })?;
        let mut file = CheckpointFile {
            data_start: 8 + header_len,
            bytes,
            metadata,
            checksum: Checksum::Absent,
        };
        file.verify()?;
        Ok(file)
    }

    fn verify(&mut self) -> Result<(), String> {
        let stored: BTreeMap<String, String> = self
            .metadata
            .metadata()
            .clone()
            .unwrap_or_default()
            .into_iter()
            .collect();
        let Some(expected) = stored.get(CHECKSUM_KEY) else {
            // Only a checkpoint from before checksums (none of Strata's keys) loads unverified; one
            // of ours whose checksum key is gone (a flipped byte in its name) is damaged.
            if stored.contains_key(FORMAT_KEY) || stored.contains_key(RUN_ID_KEY) {
                return Err("its checksum is missing from its metadata".into());
            }
            return Ok(());
        };
        let mut tensors = self.tensors();
        tensors.sort_by(|a, b| a.0.cmp(&b.0));
        let sorted: Vec<(&str, Dtype, &[usize], &[u8])> = tensors
            .iter()
            .map(|(name, dtype, shape, data)| (name.as_str(), *dtype, shape.as_slice(), *data))
            .collect();
        let actual = format!("{:08x}", checksum(&stored, &sorted));
        if *expected != actual {
            return Err(format!(
                "its checksum does not match its contents (stored {expected}, computed {actual})"
            ));
        }
        self.checksum = Checksum::Verified;
        Ok(())
    }

    /// Every tensor: name, dtype, shape and bytes.
    pub fn tensors(&self) -> Vec<(String, Dtype, Vec<usize>, &[u8])> {
        let data = &self.bytes[self.data_start..];
        self.metadata
            .tensors()
            .into_iter()
            .map(|(name, info)| {
                let (start, end) = info.data_offsets;
                (name, info.dtype, info.shape.clone(), &data[start..end])
            })
            .collect()
    }

    /// The bytes of one tensor.
    pub fn tensor_bytes(&self, name: &str) -> Option<&[u8]> {
        let info = self.metadata.tensors().get(name).copied()?;
        let (start, end) = info.data_offsets;
        Some(&self.bytes[self.data_start..][start..end])
    }

    fn metadata_value(&self, key: &str) -> Option<&str> {
        self.metadata
            .metadata()
            .as_ref()
            .and_then(|m| m.get(key))
            .map(String::as_str)
    }

    /// Checks that the file says it is the checkpoint of `run_id`'s `epoch` (files written before
    /// checksums do not say, and pass).
    pub fn check_identity(&self, run_id: &str, epoch: u32) -> Result<(), String> {
        if let Some(id) = self.metadata_value(RUN_ID_KEY) {
            if id != run_id {
                return Err(format!("it belongs to run {id}"));
            }
        }
        if let Some(stored) = self.metadata_value(EPOCH_KEY) {
            if stored != epoch.to_string() {
                return Err(format!("it holds epoch {stored}"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tensors(weights: &[u8]) -> Vec<TensorData<'_>> {
        vec![
            TensorData {
                name: "model.head.weight".into(),
                dtype: Dtype::F32,
                shape: vec![2, 2],
                data: Cow::Borrowed(weights),
            },
            TensorData {
                name: RUN_TENSOR.into(),
                dtype: Dtype::U8,
                shape: vec![3],
                data: Cow::Borrowed(b"run"),
            },
        ]
    }

    #[test]
    fn a_checkpoint_reads_back_verified_and_any_damage_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = path_for(dir.path(), 7);
        let weights: Vec<u8> = (0..16).collect();
        write(&path, "01a2000000000000", 7, &tensors(&weights)).unwrap();
        let file = CheckpointFile::read(&path).unwrap();
        assert_eq!(file.checksum, Checksum::Verified);
        assert_eq!(file.tensor_bytes(RUN_TENSOR), Some(&b"run"[..]));
        assert_eq!(file.tensor_bytes("model.head.weight"), Some(&weights[..]));
        file.check_identity("01a2000000000000", 7).unwrap();
        assert!(file.check_identity("01a2000000000000", 8).is_err());
        assert!(file.check_identity("ffff000000000000", 7).is_err());

        let good = std::fs::read(&path).unwrap();
        // One byte of the weights: the data section ends the file, weights (F32) first, then the
        // 3 bytes of the U8 tensor.
        let mut flipped = good.clone();
        let at = flipped.len() - 3 - 8;
        flipped[at] ^= 0x10;
        std::fs::write(&path, &flipped).unwrap();
        let err = CheckpointFile::read(&path).err().unwrap();
        assert!(err.contains("checksum does not match"), "{err}");
        assert!(verify_on_disk(&path, "01a2000000000000", 7)
            .unwrap_err()
            .contains("checksum does not match"));
        std::fs::write(&path, &good).unwrap();
        verify_on_disk(&path, "01a2000000000000", 7).unwrap();
        assert!(verify_on_disk(&path, "01a2000000000000", 8)
            .unwrap_err()
            .contains("not run 01a2000000000000's epoch 8"));
        // Cut short.
        std::fs::write(&path, &good[..good.len() - 5]).unwrap();
        assert!(verify_on_disk(&path, "01a2000000000000", 7)
            .unwrap_err()
            .contains("truncated"));
        let err = CheckpointFile::read(&path).err().unwrap();
        assert!(err.contains("truncated"), "{err}");
        // Gone.
        std::fs::remove_file(&path).unwrap();
        assert!(CheckpointFile::read(&path)
            .err()
            .unwrap()
            .contains("missing"));
    }

    #[test]
    fn a_checkpoint_without_a_checksum_still_reads_as_unverified() {
        let dir = tempfile::tempdir().unwrap();
        let path = path_for(dir.path(), 1);
        let weights = [0u8; 16];
        let views = vec![(
            "model.head.weight",
            TensorView::new(Dtype::F32, vec![2, 2], &weights).unwrap(),
        )];
        // As tch's `write_safetensors` wrote checkpoints before checksums: no metadata.
        safetensors::tensor::serialize_to_file(views, &None, &path).unwrap();
        let file = CheckpointFile::read(&path).unwrap();
        assert_eq!(file.checksum, Checksum::Absent);
        file.check_identity("01a2000000000000", 1).unwrap();
    }

    #[test]
    fn set_aside_keeps_every_file_and_hides_it_from_the_checkpoint_list() {
        let dir = tempfile::tempdir().unwrap();
        for _ in 0..2 {
            let path = path_for(dir.path(), 3);
            std::fs::write(&path, b"x").unwrap();
            set_aside(&path, DAMAGED_SUFFIX).unwrap();
        }
        std::fs::write(path_for(dir.path(), 4), b"x").unwrap();
        std::fs::write(dir.path().join(TMP_FILE), b"x").unwrap();
        assert_eq!(epochs_in(dir.path()), vec![4]);
        let mut names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(
            names,
            vec![
                TMP_FILE.to_string(),
                "epoch-000003.safetensors.damaged".into(),
                "epoch-000003.safetensors.damaged-2".into(),
                "epoch-000004.safetensors".into(),
            ]
        );
    }
}
