//! What start-up puts right by itself (and a repair too): deletions a stop interrupted, and the
//! record of an epoch whose checkpoint was written just before a stop.

use std::{collections::BTreeMap, path::Path};

use super::{runs_dir, Inspection, DELETING_SUFFIX};
use crate::{
    domain::{EpochMetrics, RunId},
    durable,
    error::{Result, StrataError},
    store::{record, Store},
    train::checkpoint::file::{self as checkpoint_file, CheckpointFile, EPOCHS_TENSOR},
};

/// Runs whose newest checkpoint is one epoch ahead of their stored records: stratad stopped
/// between writing a checkpoint and its epoch's record — or the store lost that record, which
/// looks the same. Either way the checkpoint holds the record (the epoch was fully trained), so it
/// is stored again rather than guessed about. Returns what was restored, by run.
pub(super) fn restore_records_of_newest_checkpoints(
    store: &Store,
    inspection: &Inspection,
    skip: impl Fn(RunId) -> bool,
) -> Result<Vec<(RunId, String)>> {
    let mut restored = Vec::new();
    for (&id, run) in &inspection.runs {
        let (Some(Ok(())), Some(folder)) = (&run.record, &run.folder) else {
            continue;
        };
        if skip(id) {
            continue;
        }
        let last = run.last_stored();
        let Some(newest) = folder.newest().filter(|&n| n == last + 1) else {
            continue;
        };
        let dir = runs_dir(&inspection.data_dir).join(id.to_string());
        let record = CheckpointFile::read(&checkpoint_file::path_for(&dir, newest))
            .and_then(|file| {
                file.check_identity(&id.to_string(), newest)?;
                Ok(file)
            })
            .map(|file| archived_epochs(&file).remove(&newest));
        match record {
            Ok(Some(record)) => {
                store.put_epoch(id, &record)?;
                restored.push((id, format!(
                    "run {id}: stored the record of epoch {newest} from its checkpoint (stratad stopped between writing the two, or the store lost the record)"
                )));
            }
            // Written before checkpoints held their epochs: the epoch is retrained on resume.
            Ok(None) => {}
            Err(why) => restored.push((id, format!(
                "run {id}: its newest checkpoint (epoch {newest}) is unusable: {why}; a resume falls back to an older one"
            ))),
        }
    }
    Ok(restored)
}

/// The epoch records a checkpoint holds (none if it predates that).
pub(super) fn archived_epochs(file: &CheckpointFile) -> BTreeMap<u32, EpochMetrics> {
    let mut epochs = BTreeMap::new();
    let Some(mut bytes) = file.tensor_bytes(EPOCHS_TENSOR) else {
        return epochs;
    };
    while !bytes.is_empty() {
        match record::decode_epoch_delimited(&mut bytes) {
            Ok(record) => {
                epochs.insert(record.epoch, record);
            }
            Err(_) => break,
        }
    }
    epochs
}

/// Completes or undoes deletions a crash interrupted: a folder `ID.deleted` whose run still has
/// its record was not deleted (the client was never told it was) and gets its name back; one
/// whose record is gone is removed. Returns what was done.
pub fn finish_interrupted_deletes(store: &Store, data_dir: &Path) -> Result<Vec<String>> {
    let runs = runs_dir(data_dir);
    let Ok(entries) = std::fs::read_dir(&runs) else {
        return Ok(Vec::new());
    };
    let mut done = Vec::new();
    for entry in entries.filter_map(|e| e.ok()) {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(id) = name
            .strip_suffix(DELETING_SUFFIX)
            .and_then(RunId::from_folder_name)
        else {
            continue;
        };
        let failed = |e: std::io::Error| {
            StrataError::Storage(format!(
                "cannot finish deleting {}: {e}",
                entry.path().display()
            ))
        };
        if store.has_run(id)? {
            std::fs::rename(entry.path(), runs.join(id.to_string())).map_err(failed)?;
            done.push(format!(
                "run {id}: its deletion was interrupted before its record was removed; its folder is back in place"
            ));
        } else {
            store.delete_run(id)?;
            std::fs::remove_dir_all(entry.path()).map_err(failed)?;
            done.push(format!(
                "run {id}: finished its deletion, which a stop had interrupted"
            ));
        }
        durable::sync_dir(&runs).map_err(failed)?;
    }
    Ok(done)
}
