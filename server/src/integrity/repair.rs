//! `stratad check --repair`: rebuilds what the store lost from the runs' newest intact
//! checkpoints, moves damaged files aside (never deletes them), and says what it could not do.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
};

use super::{
    checkpoint_name, findings,
    inspect::{run_copy_state, Folder, RunCopyState, RunState},
    ranges,
    restore::{
        archived_epochs, restore_records_of_newest_checkpoints, rewrite_second_copies, Copies,
    },
    runs_dir, Finding, Inspection, Repair, LOST_AND_FOUND,
};
use crate::{
    domain::{DataFacts, EpochMetrics, RunConfig, RunId, RunRecord, RunStatus, TaskFacts},
    durable,
    error::{Result, StrataError},
    store::{epoch_key, now_ms, record, upgrade, Store},
    train::checkpoint::file::{
        self as checkpoint_file, CheckpointFile, DAMAGED_SUFFIX, RUN_RECORD_FILE, RUN_TENSOR,
        UNRECORDED_SUFFIX,
    },
};

/// Repairs what the inspection (made with [`super::Checkpoints::Verify`]) found wrong, as far as it
/// can honestly be repaired, and says what it did and could not do.
pub fn repair(store: &Store, inspection: &Inspection) -> Result<Vec<Repair>> {
    let mut repairs = remove_bad_keys(store, inspection)?;
    let found = findings(inspection);
    // Runs the store lost something of: rebuilt from their folders, then their folders written
    // again from what the store now holds.
    let damaged = |id: RunId| {
        found
            .iter()
            .any(|f| f.damage && f.run == Some(id) && !f.in_second_copies())
    };
    for (&id, run) in &inspection.runs {
        let about: Vec<&Finding> = found.iter().filter(|f| f.run == Some(id)).collect();
        let mut repair = RunRepair {
            store,
            data_dir: &inspection.data_dir,
            dir: runs_dir(&inspection.data_dir).join(id.to_string()),
            id,
            repairs: &mut repairs,
        };
        if damaged(id) {
            if repair.repair(run)? {
                let copies = repair.copies_out_of_date()?;
                if copies.any() {
                    repair.rewrite_copies(copies)?;
                }
            }
            continue;
        }
        // The store holds the run whole: its damaged second copies are written from it.
        let copies = Copies::for_findings(about.iter().copied());
        if copies.any() {
            repair.rewrite_copies(copies)?;
        }
        if about.iter().any(|f| f.kind == "checkpoints-missing") {
            repair.record_lost_checkpoints(run.last_stored())?;
        }
    }
    // What start-up would restore anyway (a run repaired above has its epochs already).
    for (id, restored) in restore_records_of_newest_checkpoints(store, inspection, damaged)? {
        repairs.push(Repair {
            run: Some(id),
            action: restored,
            done: true,
        });
    }
    Ok(repairs)
}

/// Removes the keys no record has, tree by tree.
fn remove_bad_keys(store: &Store, inspection: &Inspection) -> Result<Vec<Repair>> {
    let mut repairs = Vec::new();
    for tree in ["runs", "epochs"] {
        let keys: Vec<Vec<u8>> = inspection
            .bad_keys
            .iter()
            .filter(|(t, _)| *t == tree)
            .map(|(_, k)| k.clone())
            .collect();
        if !keys.is_empty() {
            store.remove_raw(tree, &keys)?;
            repairs.push(Repair {
                run: None,
                action: format!(
                    "removed {} unreadable key(s) from the store's {tree}",
                    keys.len()
                ),
                done: true,
            });
        }
    }
    Ok(repairs)
}

/// A run record to rebuild the run from, and where it was found.
type Recovered = (RunRecord, String);

/// The repair of one damaged run, recording what it does in `repairs`.
struct RunRepair<'a> {
    store: &'a Store,
    data_dir: &'a Path,
    /// The run's folder.
    dir: PathBuf,
    id: RunId,
    repairs: &'a mut Vec<Repair>,
}

impl RunRepair<'_> {
    /// In this order: damaged checkpoints aside (so nothing below reads or trusts them), the run's
    /// record, its epochs, the checkpoints the epochs no longer reach, and the record's status.
    /// Returns whether the run is in the store now (false: its folder went to lost+found).
    fn repair(&mut self, run: &RunState) -> Result<bool> {
        let (checkpoints, archive) = match &run.folder {
            Some(folder) => (
                self.set_aside_damaged(folder)?,
                read_archive(&self.dir, self.id, folder),
            ),
            None => (Vec::new(), None),
        };
        // The run's record: from its newest checkpoint, else from the copy its folder was made with.
        let mut recovering = None;
        if !matches!(run.record, Some(Ok(_))) {
            let archived = archive
                .as_ref()
                .and_then(Archive::recovered)
                .or_else(|| record_in_folder(&self.dir, self.id, run));
            match archived {
                Some(archived) => recovering = Some(archived),
                None if run.record.is_none() && run.epoch_records() == 0 => {
                    self.move_to_lost_and_found()?;
                    return Ok(false);
                }
                None => self.store_placeholder(run.record.is_none())?,
            }
        }
        let (kept, gap) = self.repair_epochs(run, archive.as_ref())?;
        self.set_aside_unrecorded(&checkpoints, kept)?;
        match recovering {
            Some((archived, source)) => self.store_recovered(archived, &source)?,
            None if gap.is_some() => self.note_dropped_epochs(kept)?,
            None => {}
        }
        Ok(true)
    }

    /// The run's second copies that disagree with what the store holds of it now.
    fn copies_out_of_date(&self) -> Result<Copies> {
        let record = self.store.get_run(self.id)?;
        let log = crate::store::epoch_log::scan(&self.dir).unwrap_or_default();
        Ok(Copies {
            record: run_copy_state(&self.dir, self.id, record.as_ref()) != RunCopyState::Intact,
            epochs: log.entries != self.store.epoch_digests(self.id)?,
        })
    }

    /// Writes the run's second copies again from the store.
    fn rewrite_copies(&mut self, copies: Copies) -> Result<()> {
        let done = rewrite_second_copies(self.store, self.data_dir, self.id, copies)?;
        let done = done
            .strip_prefix(&format!("run {}: ", self.id))
            .unwrap_or(&done)
            .to_string();
        self.did(done, true);
        Ok(())
    }

    /// A resumable run with epochs whose checkpoints are all gone cannot resume: it is recorded
    /// as failed, saying why (its epochs are kept).
    fn record_lost_checkpoints(&mut self, epochs: u32) -> Result<()> {
        let reason = format!(
            "its checkpoints were lost (found by `stratad check --repair`): it cannot resume; its {epochs} epoch(s) are kept"
        );
        let recorded = reason.clone();
        self.store.update_run(self.id, |run| {
            run.status = RunStatus::Failed;
            run.reason = recorded;
            run.finished_at_ms = now_ms();
        })?;
        self.did(format!("{reason}: recorded the run as failed"), false);
        Ok(())
    }

    fn did(&mut self, action: String, done: bool) {
        self.repairs.push(Repair {
            run: Some(self.id),
            action,
            done,
        })
    }

    fn io_failed(&self, what: &str, e: std::io::Error) -> StrataError {
        StrataError::storage_from(format!("cannot {what} in {}", self.dir.display()), e)
    }

    /// Moves the checkpoint of `epoch` aside with `suffix`; returns where it went. `what` names
    /// the move in the error.
    fn set_aside(&self, epoch: u32, suffix: &str, what: &str) -> Result<PathBuf> {
        checkpoint_file::set_aside(&checkpoint_file::path_for(&self.dir, epoch), suffix)
            .map_err(|e| self.io_failed(what, e))
    }

    /// Moves the checkpoints that failed verification aside; returns the epochs of the others.
    fn set_aside_damaged(&mut self, folder: &Folder) -> Result<Vec<u32>> {
        for (epoch, why) in folder.damaged() {
            let moved = self.set_aside(epoch, DAMAGED_SUFFIX, "move a damaged checkpoint aside")?;
            self.did(
                format!(
                    "moved the damaged checkpoint {} aside to {} ({why})",
                    checkpoint_name(epoch),
                    moved.display()
                ),
                true,
            );
        }
        Ok(folder
            .checkpoints
            .iter()
            .copied()
            .filter(|e| !matches!(folder.verified.get(e), Some(Err(_))))
            .collect())
    }

    /// A folder and nothing else: nothing to show as a run. It is kept, out of the way.
    fn move_to_lost_and_found(&mut self) -> Result<()> {
        let lost = self.data_dir.join(LOST_AND_FOUND);
        durable::create_dir_all(&lost).map_err(|e| self.io_failed("create lost+found", e))?;
        let target = lost.join(self.id.to_string());
        std::fs::rename(&self.dir, &target).map_err(|e| self.io_failed("move the folder", e))?;
        durable::sync_dir(&lost).map_err(|e| self.io_failed("sync lost+found", e))?;
        durable::sync_dir(&runs_dir(self.data_dir))
            .map_err(|e| self.io_failed("sync the runs folder", e))?;
        self.did(
            format!(
                "could not rebuild the run: neither its folder nor its checkpoints hold its record (they predate that, or are damaged); moved its folder to {}",
                target.display()
            ),
            false,
        );
        Ok(())
    }

    /// Keeps the epochs of a run whose record is lost (or unreadable) with no copy anywhere.
    fn store_placeholder(&mut self, record_lost: bool) -> Result<()> {
        let why = if record_lost {
            "its record was lost"
        } else {
            "its record was unreadable"
        };
        self.store.put_run(&placeholder_run(self.id, why))?;
        self.did(
            format!("{why} and no checkpoint holds a copy: stored a placeholder record (status failed, config unknown) so its epochs stay visible"),
            false,
        );
        Ok(())
    }

    /// Fills the epochs missing or unreadable from the checkpoint, removes the unreadable ones it
    /// cannot replace and drops what follows a gap. Returns the last epoch kept, and the gap.
    fn repair_epochs(
        &mut self,
        run: &RunState,
        archive: Option<&Archive>,
    ) -> Result<(u32, Option<u32>)> {
        let mut readable: BTreeSet<u32> = run.epochs.readable.iter().copied().collect();
        let restore: Vec<EpochMetrics> = archive
            .iter()
            .flat_map(|a| a.epochs.iter())
            .filter(|(epoch, _)| !readable.contains(epoch))
            .map(|(_, record)| record.clone())
            .collect();
        if !restore.is_empty() {
            let numbers: Vec<u32> = restore.iter().map(|r| r.epoch).collect();
            self.store.put_epochs(self.id, &restore)?;
            readable.extend(numbers.iter().copied());
            self.did(
                format!(
                    "restored the records of epoch(s) {} from {}",
                    ranges(&numbers),
                    archive.map_or("its folder", |a| a.source.as_str())
                ),
                true,
            );
        }
        let still_unreadable: Vec<Vec<u8>> = run
            .epochs
            .unreadable
            .iter()
            .map(|(e, _)| *e)
            .filter(|e| !readable.contains(e))
            .map(|e| epoch_key(self.id, e).to_vec())
            .collect();
        if !still_unreadable.is_empty() {
            self.store.remove_raw("epochs", &still_unreadable)?;
        }
        self.drop_after_gap(&readable)
    }

    /// Keeps the epochs 1..N before the first one missing, and drops the records after it.
    fn drop_after_gap(&mut self, readable: &BTreeSet<u32>) -> Result<(u32, Option<u32>)> {
        let top = readable.last().copied().unwrap_or(0);
        let Some(gap) = (1..=top).find(|e| !readable.contains(e)) else {
            return Ok((top, None));
        };
        let kept = gap - 1;
        let dropped: Vec<u32> = readable.iter().copied().filter(|&e| e > kept).collect();
        self.store.drop_epochs_after(self.id, kept)?;
        self.did(
            format!(
                "the record of epoch {gap} was lost and no checkpoint holds a copy: kept epochs 1..{kept}, dropped the records of epoch(s) {} so the epochs stay 1..N",
                ranges(&dropped)
            ),
            false,
        );
        Ok((kept, Some(gap)))
    }

    /// Checkpoints the records no longer reach would leave a gap when resumed from: aside.
    fn set_aside_unrecorded(&mut self, checkpoints: &[u32], kept: u32) -> Result<()> {
        for &epoch in checkpoints.iter().filter(|&&e| e > kept + 1) {
            let moved = self.set_aside(epoch, UNRECORDED_SUFFIX, "move a checkpoint aside")?;
            self.did(
                format!(
                    "moved the checkpoint {} aside to {}: the records of the epochs before it are lost, so the run cannot resume from it",
                    checkpoint_name(epoch),
                    moved.display()
                ),
                false,
            );
        }
        Ok(())
    }

    /// Stores the run's record rebuilt from `source`, with the status its epochs now show.
    fn store_recovered(&mut self, archived: RunRecord, source: &str) -> Result<()> {
        let epochs = self.store.epochs(self.id, 1)?;
        let record = recovered_run(archived, source, &epochs);
        let status = record.status.label();
        self.store.put_run(&record)?;
        self.did(
            format!(
                "rebuilt the run's record from {source}: status {status}, {} epoch(s)",
                epochs.len()
            ),
            true,
        );
        Ok(())
    }

    /// Says in the run's reason that the epochs after `kept` were dropped.
    fn note_dropped_epochs(&mut self, kept: u32) -> Result<()> {
        self.store.update_run(self.id, |record| {
            record.reason = format!(
                "{}{}`stratad check --repair` dropped the records of epochs after {kept}, which could not be recovered",
                record.reason,
                if record.reason.is_empty() { "" } else { "; " },
            );
        })?;
        Ok(())
    }
}

/// What a run's folder says about it: its newest intact checkpoint (the run's record and that
/// epoch's), and its epoch log.
struct Archive {
    /// Where the epochs come from, in words ("its checkpoint of epoch 5", "its epoch log").
    source: String,
    run: Option<RunRecord>,
    epochs: BTreeMap<u32, EpochMetrics>,
}

impl Archive {
    /// The run's record it holds, and where it came from.
    fn recovered(&self) -> Option<Recovered> {
        self.run.clone().map(|run| (run, self.source.clone()))
    }
}

/// Reads the run's record and epochs from its newest checkpoint that verifies and holds them,
/// with its epoch log up to that epoch; without one (a run logged from outside has none), from
/// the epoch log alone.
fn read_archive(dir: &Path, id: RunId, folder: &Folder) -> Option<Archive> {
    if let Some(archive) = read_checkpoint_archive(dir, id, folder) {
        return Some(archive);
    }
    let epochs = crate::store::epoch_log::read(dir);
    (!epochs.is_empty()).then(|| Archive {
        source: "its epoch log".into(),
        run: None,
        epochs,
    })
}

fn read_checkpoint_archive(dir: &Path, id: RunId, folder: &Folder) -> Option<Archive> {
    for &epoch in folder.checkpoints.iter().rev() {
        if matches!(folder.verified.get(&epoch), Some(Err(_))) {
            continue;
        }
        let Ok(file) = CheckpointFile::read(&checkpoint_file::path_for(dir, epoch)) else {
            continue;
        };
        if file.check_identity(&id.to_string(), epoch).is_err() {
            continue;
        }
        let Some(run_bytes) = file.tensor_bytes(RUN_TENSOR) else {
            continue;
        };
        let Ok(run) = record::decode_stored_run(run_bytes) else {
            continue;
        };
        // The epoch log, up to this checkpoint's epoch (the run goes on from here), and the
        // checkpoint's own record(s) over it.
        let mut epochs = crate::store::epoch_log::read(dir);
        epochs.retain(|&e, _| e <= epoch);
        epochs.extend(archived_epochs(&file));
        let listed: Vec<EpochMetrics> = epochs.values().cloned().collect();
        let run = run
            .to_domain(|run| upgrade::legacy_facts(run, &listed))
            .ok()
            .filter(|run| run.id == id);
        return Some(Archive {
            source: format!("its checkpoint of epoch {epoch}"),
            run,
            epochs,
        });
    }
    None
}

/// The run's record from the copy its folder was made with (`run.pb`), if it has a folder.
fn record_in_folder(dir: &Path, id: RunId, run: &RunState) -> Option<Recovered> {
    run.folder.as_ref()?;
    let bytes = checkpoint_file::read_run_record(dir)?;
    let record = record::decode_stored_run(bytes.as_slice())
        .ok()?
        .to_domain(|run| upgrade::legacy_facts(run, &[]))
        .ok()?;
    (record.id == id).then(|| {
        (
            record,
            format!("the copy in {}", dir.join(RUN_RECORD_FILE).display()),
        )
    })
}

/// A run record rebuilt from its checkpoint: what it was configured with, and how far it got.
fn recovered_run(archive_run: RunRecord, source: &str, epochs: &[EpochMetrics]) -> RunRecord {
    let mut run = archive_run;
    let last = epochs.last();
    let planned = run.planned_epochs();
    let recovered = format!(
        "recovered by `stratad check --repair` from {source}, after the store lost its record"
    );
    let (status, reason) = match last {
        Some(record) if record.diverged() => (
            RunStatus::Diverged,
            format!(
                "{recovered}; the loss became non-finite at epoch {}",
                record.epoch
            ),
        ),
        Some(record) if planned > 0 && record.epoch >= planned => (RunStatus::Completed, recovered),
        _ if run.is_external() => (
            RunStatus::Interrupted,
            format!("{recovered}; its epochs so far are kept"),
        ),
        _ => (
            RunStatus::Interrupted,
            format!("{recovered}; resume it to continue"),
        ),
    };
    run.status = status;
    run.reason = reason;
    run.finished_at_ms = now_ms();
    run
}

/// A placeholder for a run whose record is lost with nothing to rebuild it from, so that the
/// epochs the store still has stay visible.
fn placeholder_run(id: RunId, why: &str) -> RunRecord {
    RunRecord {
        status: RunStatus::Failed,
        reason: format!(
            "recovered by `stratad check --repair`: {why}, and no checkpoint holds a copy, so its config is unknown and it cannot resume; its epochs are kept (delete the run if they are of no use)"
        ),
        finished_at_ms: now_ms(),
        device: String::new(),
        // Unknown: a class count of 0 gives the analysis no baseline to judge against.
        ..RunRecord::queued(
            id,
            RunConfig::default(),
            Vec::new(),
            DataFacts::of_task(TaskFacts::Classification { classes: 0 }),
        )
    }
}
