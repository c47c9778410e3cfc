//! `runs/ID/steps.pb`: the step records of a run logged from outside (LogSteps) — per-step
//! training scalars at a global step, drawn under the epoch curves.
//!
//! Kept in the run's folder only, not in sled: they are many (up to
//! [`MAX_RUN_STEP_VALUES`](crate::runs::MAX_RUN_STEP_VALUES) scalars a run), only ever appended
//! and read whole for a chart, and never analysed — an append-only file costs one sequential
//! write and one sync per batch, and a store that is damaged or rebuilt from the run folders
//! keeps them as they are. One copy: a damaged entry hides the steps written after it (the
//! epochs, the verdict and everything else of the run are unaffected), and the next append moves
//! the damaged file aside (`steps-UNIX_MS.pb.damaged`, which `stratad check` lists among the files
//! set aside) rather than writing past it.
//!
//! Each entry is one batch: a 4-byte little-endian length, a 4-byte CRC32 of the payload, then the
//! payload, a [`record::StoredStepChunk`] (the batch's steps by column). A crash mid-append leaves
//! a torn last entry, which reading ignores and the next append cuts off.

use std::{
    fs::{File, OpenOptions},
    io::{self, BufReader, Read, Write},
    path::Path,
};

use prost::Message;

use super::record::{StoredStepChunk, StoredStepColumn};
use crate::{domain::StepRecord, durable};

pub const STEP_LOG: &str = "steps.pb";
/// Where a step log that could not be read to its end is moved before the next append:
/// `steps-UNIX_MS.pb.damaged` (`stratad check` lists it among the files set aside).
fn damaged_name() -> String {
    format!("steps-{}.pb.damaged", crate::store::now_ms())
}
/// The largest entry a reader accepts: a batch of 10,000 steps of 32 scalars encodes to ~3 MB.
const MAX_ENTRY_BYTES: u32 = 64 << 20;

/// What a step log holds, without keeping its records.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StepLogSummary {
    pub steps: u64,
    /// Scalars over every step: what the run's bound counts.
    pub values: u64,
    pub last_step: Option<u64>,
    /// Bytes of whole, readable entries from the start.
    good_bytes: u64,
    /// Why reading stopped before the end of the file, and whether only a last write was torn.
    pub unread_tail: Option<(String, Tail)>,
}

/// What follows a step log's readable entries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tail {
    /// Part of one last entry: a write a crash cut short, never acknowledged.
    Torn,
    /// A whole entry that fails its checksum or does not decode: damage.
    Damaged,
}

/// Appends a batch of step records (in increasing step order) as one entry and makes it durable
/// (the folder too, when the file is new). Nothing is written for no records.
pub fn append(dir: &Path, records: &[StepRecord]) -> io::Result<()> {
    if records.is_empty() {
        return Ok(());
    }
    let payload = chunk_of(records).encode_to_vec();
    let mut bytes = Vec::with_capacity(payload.len() + 8);
    bytes.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    bytes.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
    bytes.extend_from_slice(&payload);
    let path = dir.join(STEP_LOG);
    let created = !path.exists();
    let mut file = OpenOptions::new().create(true).append(true).open(&path)?;
    file.write_all(&bytes)?;
    file.sync_data()?;
    if created {
        durable::sync_dir(dir)?;
    }
    Ok(())
}

/// Reads the log's summary and readies it for appending: a torn last entry is cut off; a log
/// with damage inside is moved aside to [`DAMAGED_STEP_LOG`] (its readable steps are then no
/// longer shown), so that what is appended next is readable.
pub fn prepare_append(dir: &Path) -> io::Result<StepLogSummary> {
    let summary = summarize(dir)?;
    match &summary.unread_tail {
        None => Ok(summary),
        Some((_, Tail::Torn)) => {
            let file = OpenOptions::new().write(true).open(dir.join(STEP_LOG))?;
            file.set_len(summary.good_bytes)?;
            file.sync_all()?;
            Ok(StepLogSummary {
                unread_tail: None,
                ..summary
            })
        }
        Some((why, Tail::Damaged)) => {
            let aside = damaged_name();
            tracing::warn!(folder = %dir.display(), problem = %why, "a run's step log is damaged; moved aside to {aside}, new steps start a new log");
            std::fs::rename(dir.join(STEP_LOG), dir.join(aside))?;
            durable::sync_dir(dir)?;
            Ok(StepLogSummary::default())
        }
    }
}

/// Counts the log's steps and scalars, up to the first torn or damaged entry.
pub fn summarize(dir: &Path) -> io::Result<StepLogSummary> {
    let mut summary = StepLogSummary::default();
    let (good_bytes, unread_tail) = read_chunks(dir, |chunk| {
        summary.steps += chunk.steps.len() as u64;
        summary.values += chunk
            .columns
            .iter()
            .map(|c| c.values.len() as u64)
            .sum::<u64>();
        if let Some(&last) = chunk.steps.last() {
            summary.last_step = Some(last);
        }
    })?;
    summary.good_bytes = good_bytes;
    summary.unread_tail = unread_tail;
    Ok(summary)
}

/// At most `max_points` of the log's steps, in order: all of them when there are no more, else an
/// even spread that keeps the first and the last. Returns them, and how many the log holds. Two
/// passes over the file, holding one entry at a time and what is returned.
pub fn read_spread(dir: &Path, max_points: usize) -> io::Result<(Vec<StepRecord>, u64)> {
    let total = summarize(dir)?.steps;
    let max_points = max_points.max(2) as u64;
    let picked = |i: u64| -> bool {
        if total <= max_points {
            return true;
        }
        // Row i is kept when it is the nearest row to one of `max_points` evenly spaced places.
        let slot = (i * (max_points - 1) + (total - 1) / 2) / (total - 1);
        let at = (slot * (total - 1) + (max_points - 1) / 2) / (max_points - 1);
        at == i
    };
    let mut records = Vec::with_capacity(total.min(max_points) as usize);
    let mut row = 0u64;
    read_chunks(dir, |chunk| {
        for (i, &step) in chunk.steps.iter().enumerate() {
            if row < total && picked(row) {
                records.push(record_at(&chunk, i, step));
            }
            row += 1;
        }
    })?;
    Ok((records, total))
}

/// Row `i` of a chunk as a record.
fn record_at(chunk: &StoredStepChunk, i: usize, step: u64) -> StepRecord {
    let scalars = chunk
        .columns
        .iter()
        .filter_map(|column| {
            let at = if column.rows.is_empty() {
                Some(i)
            } else {
                column.rows.binary_search(&(i as u32)).ok()
            }?;
            Some((column.name.clone(), *column.values.get(at)?))
        })
        .collect();
    StepRecord {
        step,
        epoch: chunk.epochs.get(i).copied().unwrap_or(0),
        scalars,
    }
}

/// A batch by column: each scalar's name once, with the rows it appears at (none listed when it
/// is at every row).
fn chunk_of(records: &[StepRecord]) -> StoredStepChunk {
    let mut columns: std::collections::BTreeMap<&str, StoredStepColumn> = Default::default();
    for (row, record) in records.iter().enumerate() {
        for (name, value) in &record.scalars {
            let column = columns
                .entry(name.as_str())
                .or_insert_with(|| StoredStepColumn {
                    name: name.clone(),
                    ..Default::default()
                });
            column.rows.push(row as u32);
            column.values.push(*value);
        }
    }
    let mut columns: Vec<StoredStepColumn> = columns.into_values().collect();
    for column in &mut columns {
        if column.rows.len() == records.len() {
            column.rows.clear();
        }
    }
    StoredStepChunk {
        steps: records.iter().map(|r| r.step).collect(),
        epochs: records.iter().map(|r| r.epoch).collect(),
        columns,
    }
}

/// Gives each whole, readable entry to `take`, in order. Returns the bytes read that way, and why
/// reading stopped before the end of the file, if it did. No log: nothing read.
fn read_chunks(
    dir: &Path,
    mut take: impl FnMut(StoredStepChunk),
) -> io::Result<(u64, Option<(String, Tail)>)> {
    let file = match File::open(dir.join(STEP_LOG)) {
        Ok(file) => file,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok((0, None)),
        Err(err) => return Err(err),
    };
    let size = file.metadata()?.len();
    let mut reader = BufReader::new(file);
    let mut offset = 0u64;
    while offset < size {
        let mut header = [0u8; 8];
        if size - offset < 8 || reader.read_exact(&mut header).is_err() {
            let why = format!(
                "{} byte(s) at byte {offset} are not a whole entry",
                size - offset
            );
            return Ok((offset, Some((why, Tail::Torn))));
        }
        let length = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
        let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
        if length == 0 || length > MAX_ENTRY_BYTES {
            let why =
                format!("the entry at byte {offset} has an impossible length ({length} bytes)");
            // A zero-filled tail (what some file systems leave after a power cut) is torn.
            let tail = if length == 0 {
                Tail::Torn
            } else {
                Tail::Damaged
            };
            return Ok((offset, Some((why, tail))));
        }
        if offset + 8 + u64::from(length) > size {
            let why = format!(
                "the entry at byte {offset} runs past the end of the file (torn by a crash)"
            );
            return Ok((offset, Some((why, Tail::Torn))));
        }
        let mut payload = vec![0u8; length as usize];
        reader.read_exact(&mut payload)?;
        let chunk = (crc32fast::hash(&payload) == crc)
            .then(|| StoredStepChunk::decode(payload.as_slice()).ok())
            .flatten()
            .filter(|chunk| chunk.epochs.len() == chunk.steps.len());
        let Some(chunk) = chunk else {
            let why = format!(
                "the entry at byte {offset} does not match its checksum or does not decode"
            );
            return Ok((offset, Some((why, Tail::Damaged))));
        };
        offset += 8 + u64::from(length);
        take(chunk);
    }
    Ok((offset, None))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(step: u64, loss: f64) -> StepRecord {
        StepRecord {
            step,
            epoch: 1 + (step / 10) as u32,
            scalars: [("loss".to_string(), loss)].into(),
        }
    }

    #[test]
    fn batches_read_back_by_step_with_scalars_missing_at_some_steps() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read_spread(dir.path(), 10).unwrap(), (vec![], 0));
        let mut with_rate = step(2, 0.5);
        with_rate.scalars.insert("lr/head".into(), 1e-3);
        let first = vec![step(1, 1.0), with_rate.clone(), step(3, f64::NAN)];
        append(dir.path(), &first).unwrap();
        append(dir.path(), &[step(10, 0.25)]).unwrap();
        let (records, total) = read_spread(dir.path(), 100).unwrap();
        assert_eq!(total, 4);
        assert_eq!(records[1], with_rate);
        assert_eq!(records[0].scalars.len(), 1);
        assert!(records[2].scalars["loss"].is_nan());
        assert_eq!((records[3].step, records[3].epoch), (10, 2));
        let summary = summarize(dir.path()).unwrap();
        assert_eq!(
            (summary.steps, summary.values, summary.last_step),
            (4, 5, Some(10))
        );
    }

    #[test]
    fn a_long_log_is_thinned_to_an_even_spread_keeping_the_first_and_last() {
        let dir = tempfile::tempdir().unwrap();
        for batch in 0..10u64 {
            let records: Vec<StepRecord> = (0..100).map(|i| step(batch * 100 + i, 1.0)).collect();
            append(dir.path(), &records).unwrap();
        }
        let (records, total) = read_spread(dir.path(), 50).unwrap();
        assert_eq!(total, 1000);
        assert_eq!(records.len(), 50);
        assert_eq!(records.first().unwrap().step, 0);
        assert_eq!(records.last().unwrap().step, 999);
        let gaps: Vec<u64> = records.windows(2).map(|w| w[1].step - w[0].step).collect();
        assert!(gaps.iter().all(|&g| (19..=22).contains(&g)), "{gaps:?}");
    }

    #[test]
    fn a_torn_append_is_cut_off_and_damage_is_moved_aside() {
        let dir = tempfile::tempdir().unwrap();
        append(dir.path(), &[step(1, 1.0)]).unwrap();
        let path = dir.path().join(STEP_LOG);
        let whole = std::fs::read(&path).unwrap();
        let mut torn = whole.clone();
        torn.extend_from_slice(&whole[..whole.len() - 3]);
        std::fs::write(&path, &torn).unwrap();
        let summary = summarize(dir.path()).unwrap();
        assert_eq!(summary.steps, 1);
        assert_eq!(summary.unread_tail.as_ref().unwrap().1, Tail::Torn);
        prepare_append(dir.path()).unwrap();
        append(dir.path(), &[step(2, 0.5)]).unwrap();
        assert_eq!(read_spread(dir.path(), 10).unwrap().1, 2);

        // A flipped byte inside the first entry: damage, moved aside before the next append.
        let mut flipped = std::fs::read(&path).unwrap();
        flipped[10] ^= 1;
        std::fs::write(&path, &flipped).unwrap();
        let summary = summarize(dir.path()).unwrap();
        assert_eq!(
            (summary.steps, summary.unread_tail.unwrap().1),
            (0, Tail::Damaged)
        );
        assert_eq!(
            prepare_append(dir.path()).unwrap(),
            StepLogSummary::default()
        );
        let aside: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().ends_with(".pb.damaged"))
            .collect();
        assert_eq!(aside.len(), 1);
        assert_eq!(std::fs::read(aside[0].path()).unwrap(), flipped);
        append(dir.path(), &[step(3, 0.1)]).unwrap();
        assert_eq!(read_spread(dir.path(), 10).unwrap().0, vec![step(3, 0.1)]);
    }
}
