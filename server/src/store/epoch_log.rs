//! `runs/ID/epochs.pb`: every epoch record of a run — trained or logged from outside — appended
//! before the store gets it: the second copy from which `stratad check --repair` (and start-up,
//! for what a crash left) rebuilds a run's epochs when the store lost them, and against which the
//! check compares the store.
//!
//! Why a log beside the checkpoints rather than all epochs inside each checkpoint: a checkpoint is
//! rewritten every epoch, so carrying every record in it would write O(N²) bytes over a run of N
//! epochs (at 10,000 epochs, 2 MB per checkpoint); the log writes each record once.
//!
//! Each entry is a 4-byte little-endian length, a 4-byte CRC32 of the payload, then the payload
//! (an epoch in the store's record format, [`record::StoredEpoch`]). The length's top bit says
//! that more entries of the same *write* follow: an external run's batch is appended as one write
//! (one sync), and a crash can only leave the store behind the log by that last write — the check
//! tells that apart from a store that lost records ([`LogScan::last_write_from`]). A trained run
//! appends one epoch per write (the bit is never set), as every log written before the bit was.
//!
//! A crash mid-append leaves a torn last write, and some file systems a zero-filled tail after a
//! power cut; reading stops at the first entry that is short, fails its checksum, or is not the
//! next epoch, and drops a write whose last entry is missing (the store never got it: the log is
//! written first). A resume from an older checkpoint drops the epochs after it: the log is then
//! rewritten (to a temporary file, renamed) with the epochs kept, so it never holds records of an
//! abandoned timeline once the run trains again.

use std::{
    collections::BTreeMap,
    fs::{File, OpenOptions},
    io::{self, BufReader, BufWriter, Read, Write},
    path::Path,
};

use super::record;
use crate::{domain::EpochMetrics, durable};

pub const EPOCH_LOG: &str = "epochs.pb";
/// The length's top bit: more entries of this write follow.
const MORE_IN_WRITE: u32 = 1 << 31;
/// The largest entry a reader accepts: far above any honest record (256 groups and 64 extra
/// scalars encode to ~14 KB), so a damaged length cannot make it allocate gigabytes.
const MAX_ENTRY_BYTES: u32 = 16 << 20;

/// Appends one record (one write) and makes it durable.
pub fn append(dir: &Path, record: &EpochMetrics) -> io::Result<()> {
    append_all(dir, std::slice::from_ref(record))
}

/// Appends records as one write and makes them durable with one sync (the file's folder too,
/// when the file is new). Nothing is written for no records.
pub fn append_all(dir: &Path, records: &[EpochMetrics]) -> io::Result<()> {
    if records.is_empty() {
        return Ok(());
    }
    let path = dir.join(EPOCH_LOG);
    let created = !path.exists();
    let mut bytes = Vec::new();
    for (i, record) in records.iter().enumerate() {
        entry(record, i + 1 < records.len(), &mut bytes);
    }
    let mut file = OpenOptions::new().create(true).append(true).open(&path)?;
    file.write_all(&bytes)?;
    file.sync_data()?;
    if created {
        durable::sync_dir(dir)?;
    }
    Ok(())
}

/// Replaces the log with exactly these records (e.g. the epochs a resume keeps), each its own
/// write: all of them are stored already.
pub fn rewrite(dir: &Path, records: &[EpochMetrics]) -> io::Result<()> {
    let mut log = Rewrite::start(dir)?;
    for record in records {
        log.push(record)?;
    }
    log.commit()
}

/// A log being rewritten record by record into a temporary file, which replaces the log on
/// [`Rewrite::commit`] (a repair rewrites a long run's log from the store a page at a time).
pub struct Rewrite<'a> {
    dir: &'a Path,
    tmp: std::path::PathBuf,
    file: BufWriter<File>,
    buffer: Vec<u8>,
}

impl<'a> Rewrite<'a> {
    pub fn start(dir: &'a Path) -> io::Result<Self> {
        let tmp = dir.join(format!("{EPOCH_LOG}.tmp"));
        let file = BufWriter::new(File::create(&tmp)?);
        Ok(Rewrite {
            dir,
            tmp,
            file,
            buffer: Vec::new(),
        })
    }

    pub fn push(&mut self, record: &EpochMetrics) -> io::Result<()> {
        self.buffer.clear();
        entry(record, false, &mut self.buffer);
        self.file.write_all(&self.buffer)
    }

    /// Syncs the new log and renames it over the old one, durably.
    pub fn commit(self) -> io::Result<()> {
        let file = self.file.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        drop(file);
        std::fs::rename(&self.tmp, self.dir.join(EPOCH_LOG))?;
        durable::sync_dir(self.dir)
    }
}

/// The records in the log by epoch, up to the first torn or damaged write; empty without a log.
pub fn read(dir: &Path) -> BTreeMap<u32, EpochMetrics> {
    let mut records = BTreeMap::new();
    let _ = read_writes(dir, |payload| {
        let record = record::decode_epoch(payload).ok()?;
        let epoch = record.epoch;
        records.insert(epoch, record);
        Some(epoch)
    });
    records
}

/// What a log holds, without keeping its records: what the integrity check compares with the
/// store.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct LogScan {
    /// Whether the run's folder has a log at all.
    pub exists: bool,
    /// Each readable epoch, ascending from 1, and its digest ([`record::epoch_digest`]): what the
    /// store's record of it must match.
    pub entries: Vec<(u32, u32)>,
    /// The first epoch of the last whole write (0 when there is none): a crash between a write
    /// and the store can leave the store's records ending just before it.
    pub last_write_from: u32,
    /// Why reading stopped before the end of the file, when it did (a torn or damaged write).
    pub unread_tail: Option<String>,
}

impl LogScan {
    /// The last readable epoch, 0 when none.
    pub fn last(&self) -> u32 {
        self.entries.last().map_or(0, |(epoch, _)| *epoch)
    }
}

/// Reads the log's entries (checking each one's CRC) without keeping the records.
pub fn scan(dir: &Path) -> io::Result<LogScan> {
    let mut entries = Vec::new();
    let (exists, last_write_from, unread_tail) = read_writes(dir, |payload| {
        let record = record::decode_epoch(payload).ok()?;
        entries.push((record.epoch, record::epoch_digest(&record)));
        Some(record.epoch)
    })?;
    Ok(LogScan {
        exists,
        entries,
        last_write_from,
        unread_tail,
    })
}

/// Reads the log write by write, giving each whole write's entries (checksums verified) to `take`,
/// which returns the entry's epoch (`None`: unreadable, reading stops). Returns whether the log
/// exists, the first epoch of the last whole write, and why reading stopped early, if it did.
fn read_writes(
    dir: &Path,
    mut take: impl FnMut(&[u8]) -> Option<u32>,
) -> io::Result<(bool, u32, Option<String>)> {
    let file = match File::open(dir.join(EPOCH_LOG)) {
        Ok(file) => file,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok((false, 0, None)),
        Err(err) => return Err(err),
    };
    let size = file.metadata()?.len();
    let mut reader = BufReader::new(file);
    let mut offset = 0u64;
    let mut previous = 0u32;
    let mut last_write_from = 0u32;
    // The current write's entries, given to `take` only once the write is whole.
    let mut pending: Vec<Vec<u8>> = Vec::new();
    let mut write_start = 0u64;
    let stopped = loop {
        if offset == size {
            break (!pending.is_empty()).then(|| {
                format!("the last write ends inside its batch at byte {offset} (torn by a crash)")
            });
        }
        let mut header = [0u8; 8];
        if reader.read_exact(&mut header).is_err() {
            break Some(format!(
                "{} byte(s) at byte {write_start} are not a whole record",
                size - write_start
            ));
        }
        let length_word = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
        let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
        let (length, more) = (
            length_word & !MORE_IN_WRITE,
            length_word & MORE_IN_WRITE != 0,
        );
        if length == 0 || length > MAX_ENTRY_BYTES || offset + 8 + u64::from(length) > size {
            break Some(format!(
                "the record at byte {offset} has an impossible length ({length} bytes)"
            ));
        }
        let mut payload = vec![0u8; length as usize];
        if reader.read_exact(&mut payload).is_err() || crc32fast::hash(&payload) != crc {
            break Some(format!(
                "the record at byte {offset} does not match its checksum"
            ));
        }
        offset += 8 + u64::from(length);
        pending.push(payload);
        if more {
            continue;
        }
        // A whole write: its entries count, if each is the next epoch.
        let mut first = None;
        for payload in pending.drain(..) {
            match take(&payload) {
                // Appends come in order from 1: anything else is where the real records end.
                Some(epoch) if epoch == previous + 1 => {
                    first.get_or_insert(epoch);
                    previous = epoch;
                }
                _ => {
                    return Ok((
                        true,
                        last_write_from,
                        Some(format!(
                            "the record after epoch {previous} does not decode or is not epoch {}",
                            previous + 1
                        )),
                    ))
                }
            }
        }
        last_write_from = first.unwrap_or(last_write_from);
        write_start = offset;
    };
    Ok((true, last_write_from, stopped))
}

/// One entry (length with the more-follows bit, CRC32 of the payload, payload), appended to `out`.
fn entry(record: &EpochMetrics, more: bool, out: &mut Vec<u8>) {
    let payload = record::encode_epoch(record);
    let mut length = payload.len() as u32;
    if more {
        length |= MORE_IN_WRITE;
    }
    out.extend_from_slice(&length.to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
    out.extend_from_slice(&payload);
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

    fn epochs(dir: &Path) -> Vec<u32> {
        read(dir).keys().copied().collect()
    }

    fn one_entry(record: &EpochMetrics, more: bool) -> Vec<u8> {
        let mut bytes = Vec::new();
        entry(record, more, &mut bytes);
        bytes
    }

    #[test]
    fn appends_rewrites_and_stops_at_a_torn_record() {
        let dir = tempfile::tempdir().unwrap();
        assert!(read(dir.path()).is_empty());
        assert!(!scan(dir.path()).unwrap().exists);
        for epoch in 1..=4 {
            append(dir.path(), &record(epoch)).unwrap();
        }
        assert_eq!(epochs(dir.path()), [1, 2, 3, 4]);

        rewrite(dir.path(), &[record(1), record(2)]).unwrap();
        append(dir.path(), &record(3)).unwrap();
        let log = read(dir.path());
        assert_eq!(log.keys().copied().collect::<Vec<_>>(), [1, 2, 3]);
        assert_eq!(log[&3].train_loss, 3.0);

        // A crash mid-append: half a record at the end is ignored.
        let path = dir.path().join(EPOCH_LOG);
        let mut bytes = std::fs::read(&path).unwrap();
        let torn = one_entry(&record(4), false);
        bytes.extend_from_slice(&torn[..torn.len() / 2]);
        std::fs::write(&path, bytes).unwrap();
        assert_eq!(epochs(dir.path()), [1, 2, 3]);
        let scanned = scan(dir.path()).unwrap();
        assert_eq!(scanned.last(), 3);
        assert!(scanned.unread_tail.is_some());

        // A zero-filled tail (what some file systems leave after a power cut) is not epoch 0.
        let mut bytes = std::fs::read(&path).unwrap();
        bytes.extend_from_slice(&[0u8; 64]);
        std::fs::write(&path, bytes).unwrap();
        assert_eq!(epochs(dir.path()), [1, 2, 3]);
    }

    #[test]
    fn a_batch_is_one_write_and_a_torn_batch_counts_for_nothing() {
        let dir = tempfile::tempdir().unwrap();
        append_all(dir.path(), &[record(1), record(2)]).unwrap();
        append_all(dir.path(), &(3..=6).map(record).collect::<Vec<_>>()).unwrap();
        let scanned = scan(dir.path()).unwrap();
        assert_eq!(scanned.last(), 6);
        assert_eq!(scanned.last_write_from, 3, "the last write is 3..=6");
        assert_eq!(scanned.unread_tail, None);
        assert_eq!(scanned.entries[3], (4, record::epoch_digest(&record(4))));

        // A crash after two entries of the next batch: that batch is not in the log.
        let path = dir.path().join(EPOCH_LOG);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes.extend(one_entry(&record(7), true));
        bytes.extend(one_entry(&record(8), true));
        std::fs::write(&path, &bytes).unwrap();
        assert_eq!(epochs(dir.path()), [1, 2, 3, 4, 5, 6]);
        let scanned = scan(dir.path()).unwrap();
        assert_eq!((scanned.last(), scanned.last_write_from), (6, 3));
        assert!(scanned.unread_tail.unwrap().contains("torn"));

        // A flipped byte inside the first batch: the log ends before it.
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[12] ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        let scanned = scan(dir.path()).unwrap();
        assert_eq!(scanned.last(), 0);
        assert!(scanned.unread_tail.unwrap().contains("checksum"));
    }
}
