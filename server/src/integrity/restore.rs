//! What start-up puts right by itself (and a repair too): deletions a stop interrupted, the
//! records of epochs whose epoch log or checkpoint was written just before a stop, and second
//! copies (a run folder's `run.pb` and `epochs.pb`) missing or damaged while the store is sound.

use std::{collections::BTreeMap, path::Path};

use super::{runs_dir, Finding, Inspection, DELETING_SUFFIX};
use crate::{
    domain::{EpochMetrics, RunId},
    durable,
    error::{Result, StrataError},
    store::{
        epoch_log::{self, EPOCH_LOG},
        record, Store,
    },
    train::checkpoint::file::{self as checkpoint_file, CheckpointFile, EPOCHS_TENSOR},
};

/// Runs whose epoch log or newest checkpoint holds epochs just after their stored records:
/// stratad stopped between writing those and the store — or the store lost them, which looks the
/// same. Either way the copy holds the records (the epochs were fully trained or logged), so they
/// are stored again rather than guessed about (and a checkpoint's record is added to the log, which
/// is written before the store). Returns what was restored, by run.
pub(super) fn restore_records_of_newest_checkpoints(
    store: &Store,
    inspection: &Inspection,
    skip: impl Fn(RunId) -> bool,
) -> Result<Vec<(RunId, String)>> {
    let mut restored = Vec::new();
    for (&id, run) in &inspection.runs {
        let (Some(Ok(_)), Some(folder)) = (&run.record, &run.folder) else {
            continue;
        };
        if skip(id) {
            continue;
        }
        let dir = runs_dir(&inspection.data_dir).join(id.to_string());
        let mut last = run.last_stored();
        if let Some((witnessed, from)) = run.log_witness() {
            if witnessed > last && last + 1 >= from {
                let records: Vec<EpochMetrics> = epoch_log::read(&dir)
                    .into_values()
                    .filter(|r| r.epoch > last && r.epoch <= witnessed)
                    .collect();
                if let Some(newest) = records.last().map(|r| r.epoch) {
                    store.put_epochs(id, &records)?;
                    restored.push((id, format!(
                        "run {id}: stored the record(s) of epoch(s) {}..{newest} from its epoch log (stratad stopped between writing the two, or the store lost them)",
                        last + 1
                    )));
                    last = newest;
                }
            }
        }
        let Some(newest) = folder.newest().filter(|&n| n == last + 1) else {
            continue;
        };
        let record = CheckpointFile::read(&checkpoint_file::path_for(&dir, newest))
            .and_then(|file| {
                file.check_identity(&id.to_string(), newest)?;
                Ok(file)
            })
            .map(|file| archived_epochs(&file).remove(&newest));
        match record {
            Ok(Some(record)) => {
                if folder.log.last() == last {
                    epoch_log::append(&dir, &record).map_err(|e| {
                        StrataError::storage_from(format!("cannot append to the epoch log in {}", dir.display()), e)
                    })?;
                }
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

/// Which of a run's second copies to write again from the store.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Copies {
    /// `run.pb` (and the folder, if it is missing).
    pub record: bool,
    /// `epochs.pb`.
    pub epochs: bool,
}

impl Copies {
    /// What the findings about a run say to rewrite: its second copies that are missing, damaged
    /// or disagree with the store.
    pub(super) fn for_findings<'a>(found: impl IntoIterator<Item = &'a Finding>) -> Copies {
        let mut copies = Copies::default();
        for finding in found {
            match finding.kind {
                "folder-missing" | "folder-not-yet-written" => {
                    copies.record = true;
                    copies.epochs = true;
                }
                "run-copy-missing" | "run-copy-damaged" | "run-copy-differs" => {
                    copies.record = true
                }
                "epoch-log-missing" | "epoch-log-damaged" | "epoch-copies-differ" => {
                    copies.epochs = true
                }
                _ => {}
            }
        }
        copies
    }

    pub(super) fn any(self) -> bool {
        self.record || self.epochs
    }
}

/// Epochs read from the store at once while a log is rewritten from it.
const REWRITE_PAGE_EPOCHS: usize = 1000;

/// Writes the run's second copies again from the store, which holds the run's record: its folder
/// and `run.pb` (marking an external run as having them), and its epoch log with every stored
/// epoch. Returns what was done, in words.
pub(super) fn rewrite_second_copies(
    store: &Store,
    data_dir: &Path,
    id: RunId,
    copies: Copies,
) -> Result<String> {
    let dir = runs_dir(data_dir).join(id.to_string());
    let failed = |what: &str, e: std::io::Error| {
        StrataError::storage_from(format!("cannot write {what} in {}", dir.display()), e)
    };
    let record = store
        .get_run(id)?
        .ok_or_else(|| StrataError::RunNotFound(id.to_string()))?;
    let mut done = Vec::new();
    if copies.record {
        if !dir.is_dir() {
            done.push("its folder");
        }
        checkpoint_file::create_run_folder(&dir, &record::encode_run(&record))
            .map_err(|e| failed(checkpoint_file::RUN_RECORD_FILE, e))?;
        done.push(checkpoint_file::RUN_RECORD_FILE);
        // An external run's record written by this stratad says it has a folder now.
        if record.is_external() {
            store.put_run(&record)?;
        }
    }
    if copies.epochs {
        durable::create_dir_all(&dir).map_err(|e| failed("the folder", e))?;
        let mut log = epoch_log::Rewrite::start(&dir).map_err(|e| failed(EPOCH_LOG, e))?;
        let mut from = 1;
        loop {
            let page = store.epoch_page(id, from, REWRITE_PAGE_EPOCHS)?;
            for epoch in &page {
                log.push(epoch).map_err(|e| failed(EPOCH_LOG, e))?;
            }
            match page.last() {
                Some(last) if page.len() == REWRITE_PAGE_EPOCHS => from = last.epoch + 1,
                _ => break,
            }
        }
        log.commit().map_err(|e| failed(EPOCH_LOG, e))?;
        done.push(EPOCH_LOG);
    }
    Ok(format!(
        "run {id}: wrote {} again from the store",
        done.join(", ")
    ))
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
            StrataError::storage_from(
                format!("cannot finish deleting {}", entry.path().display()),
                e,
            )
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
