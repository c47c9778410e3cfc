//! `runs/ID/run.pb`: the copy of a run's record its folder is created with — the second witness
//! from which a repair rebuilds a run whose record the store lost (with the epoch log, a run
//! logged from outside; with its checkpoints, a trained one).
//!
//! The file is `SRUN`, a CRC32 of the record (4 bytes, little-endian), then the record
//! ([`super::record::StoredRun`]): a flipped byte is found by the check instead of being decoded
//! into a plausible record. Files written before the checksum hold the record alone (a protobuf
//! message never starts with `S`: that would be field 10 as a group, which no record has); they
//! are read as unverified.

use std::path::Path;

use crate::train::checkpoint::file::RUN_RECORD_FILE;

const MAGIC: &[u8; 4] = b"SRUN";

/// The file's bytes for a record's bytes.
pub fn encode(record: &[u8]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(record.len() + 8);
    bytes.extend_from_slice(MAGIC);
    bytes.extend_from_slice(&crc32fast::hash(record).to_le_bytes());
    bytes.extend_from_slice(record);
    bytes
}

/// What a run folder's `run.pb` holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunCopy {
    Missing,
    /// Unreadable, or its checksum does not match: why.
    Damaged(String),
    /// The record's bytes (not yet decoded).
    Intact(Vec<u8>),
}

impl RunCopy {
    pub fn intact(self) -> Option<Vec<u8>> {
        match self {
            RunCopy::Intact(bytes) => Some(bytes),
            _ => None,
        }
    }
}

/// Reads `dir/run.pb` and checks its checksum (when it has one).
pub fn read(dir: &Path) -> RunCopy {
    let bytes = match std::fs::read(dir.join(RUN_RECORD_FILE)) {
        Ok(bytes) => bytes,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return RunCopy::Missing,
        Err(err) => return RunCopy::Damaged(format!("cannot read it: {err}")),
    };
    decode(bytes)
}

fn decode(bytes: Vec<u8>) -> RunCopy {
    let Some(rest) = bytes.strip_prefix(MAGIC) else {
        if bytes.is_empty() {
            return RunCopy::Damaged("it is empty".into());
        }
        return RunCopy::Intact(bytes);
    };
    let Some((crc, record)) = rest.split_first_chunk::<4>() else {
        return RunCopy::Damaged(format!("it is truncated ({} bytes)", bytes.len()));
    };
    if crc32fast::hash(record) != u32::from_le_bytes(*crc) {
        return RunCopy::Damaged("its checksum does not match its contents".into());
    }
    RunCopy::Intact(record.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_copy_reads_back_and_a_flipped_or_cut_one_is_damaged() {
        let record = b"\x0a\x03abc".to_vec();
        let bytes = encode(&record);
        assert_eq!(decode(bytes.clone()), RunCopy::Intact(record.clone()));
        let mut flipped = bytes.clone();
        *flipped.last_mut().unwrap() ^= 1;
        assert!(matches!(decode(flipped), RunCopy::Damaged(_)));
        assert!(matches!(decode(bytes[..6].to_vec()), RunCopy::Damaged(_)));
        assert!(matches!(decode(Vec::new()), RunCopy::Damaged(_)));
        // A file written before the checksum: the record alone.
        assert_eq!(decode(record.clone()), RunCopy::Intact(record));
    }
}
