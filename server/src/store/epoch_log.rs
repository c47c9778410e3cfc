//! `runs/ID/epochs.pb`: every epoch record of a run, appended as the run trains — the second
//! witness from which `stratad check --repair` rebuilds a run's epochs when the store lost them.
//!
//! Why a log beside the checkpoints rather than all epochs inside each checkpoint: a checkpoint is
//! rewritten every epoch, so carrying every record in it would write O(N²) bytes over a run of N
//! epochs (at 10,000 epochs, 2 MB per checkpoint); the log writes each record once.
//!
//! Each entry is a 4-byte little-endian length, a 4-byte CRC32 of the payload, then the payload (a
//! an epoch in the store's record format, [`record::StoredEpoch`]). A crash mid-append leaves a torn last entry, and some file systems a
//! zero-filled tail after a power cut; reading stops at the first entry that is short, fails its
//! checksum, or is not the next epoch. A resume from an older checkpoint drops the epochs after it:
//! the log is then rewritten (to a temporary file, renamed) with the epochs kept, so it never
//! holds records of an abandoned timeline.

use std::{
    collections::BTreeMap,
    fs::OpenOptions,
    io::{self, Write},
    path::Path,
};

use super::record;
use crate::{domain::EpochMetrics, durable};

pub const EPOCH_LOG: &str = "epochs.pb";

/// Appends one record and makes it durable (the file's folder too, when the file is new).
pub fn append(dir: &Path, record: &EpochMetrics) -> io::Result<()> {
    let path = dir.join(EPOCH_LOG);
    let created = !path.exists();
    let mut file = OpenOptions::new().create(true).append(true).open(&path)?;
    file.write_all(&entry(record))?;
    file.sync_data()?;
    if created {
        durable::sync_dir(dir)?;
    }
    Ok(())
}

/// Replaces the log with exactly these records (e.g. the epochs a resume keeps).
pub fn rewrite(dir: &Path, records: &[EpochMetrics]) -> io::Result<()> {
    let bytes: Vec<u8> = records.iter().flat_map(entry).collect();
    durable::replace_file(dir, EPOCH_LOG, &bytes)
}

/// The records in the log by epoch, up to the first torn or damaged one; empty without a log.
pub fn read(dir: &Path) -> BTreeMap<u32, EpochMetrics> {
    let mut records = BTreeMap::new();
    let Ok(bytes) = std::fs::read(dir.join(EPOCH_LOG)) else {
        return records;
    };
    let mut rest = bytes.as_slice();
    let mut previous = 0u32;
    while let Some((record, after)) = next_entry(rest) {
        // Appends come in order from 1: anything else is where the real records end.
        if record.epoch != previous + 1 {
            break;
        }
        previous = record.epoch;
        records.insert(record.epoch, record);
        rest = after;
    }
    records
}

/// One entry: length, CRC32 of the payload, payload.
fn entry(record: &EpochMetrics) -> Vec<u8> {
    let payload = record::encode_epoch(record);
    let mut bytes = Vec::with_capacity(payload.len() + 8);
    bytes.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    bytes.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
    bytes.extend_from_slice(&payload);
    bytes
}

/// The record at the start of `bytes` and what follows it, if a whole, intact entry is there.
fn next_entry(bytes: &[u8]) -> Option<(EpochMetrics, &[u8])> {
    let length = u32::from_le_bytes(bytes.get(..4)?.try_into().ok()?) as usize;
    let crc = u32::from_le_bytes(bytes.get(4..8)?.try_into().ok()?);
    let payload = bytes.get(8..8usize.checked_add(length)?)?;
    if length == 0 || crc32fast::hash(payload) != crc {
        return None;
    }
    let record = record::decode_epoch(payload).ok()?;
    Some((record, &bytes[8 + length..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(epoch: u32) -> EpochMetrics {
        EpochMetrics {
            epoch,
            train_loss: f64::from(epoch),
            ..Default::default()
        }
    }

    #[test]
    fn appends_rewrites_and_stops_at_a_torn_record() {
        let dir = tempfile::tempdir().unwrap();
        assert!(read(dir.path()).is_empty());
        for epoch in 1..=4 {
            append(dir.path(), &record(epoch)).unwrap();
        }
        assert_eq!(
            read(dir.path()).keys().copied().collect::<Vec<_>>(),
            [1, 2, 3, 4]
        );

        rewrite(dir.path(), &[record(1), record(2)]).unwrap();
        append(dir.path(), &record(3)).unwrap();
        let log = read(dir.path());
        assert_eq!(log.keys().copied().collect::<Vec<_>>(), [1, 2, 3]);
        assert_eq!(log[&3].train_loss, 3.0);

        // A crash mid-append: half a record at the end is ignored.
        let path = dir.path().join(EPOCH_LOG);
        let mut bytes = std::fs::read(&path).unwrap();
        let torn = entry(&record(4));
        bytes.extend_from_slice(&torn[..torn.len() / 2]);
        std::fs::write(&path, bytes).unwrap();
        assert_eq!(
            read(dir.path()).keys().copied().collect::<Vec<_>>(),
            [1, 2, 3]
        );

        // A zero-filled tail (what some file systems leave after a power cut) is not epoch 0.
        let mut bytes = std::fs::read(&path).unwrap();
        bytes.extend_from_slice(&[0u8; 64]);
        std::fs::write(&path, bytes).unwrap();
        assert_eq!(
            read(dir.path()).keys().copied().collect::<Vec<_>>(),
            [1, 2, 3]
        );
    }
}
