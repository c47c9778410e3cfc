//! What is wrong with a data dir (damage: the daemon refuses to start, `check` exits 1), and what
//! is worth noting about it.

use std::{collections::BTreeMap, path::Path};

use super::{
    checkpoint_name,
    inspect::{RunCopyState, RunState},
    ranges, runs_dir, Finding, Inspection, MAX_LISTED_GAPS,
};
use crate::domain::RunId;

/// Problems named in the start-up error; `stratad check` lists them all.
const STARTUP_PROBLEMS_SHOWN: usize = 8;

/// Everything wrong (and worth noting) in an inspection: the damage first, then the notes.
pub fn findings(inspection: &Inspection) -> Vec<Finding> {
    let runs_dir = runs_dir(&inspection.data_dir);
    let mut found: Vec<Finding> = inspection
        .bad_keys
        .iter()
        .map(|(tree, key)| {
            Finding::damage(
                None,
                "unreadable-key",
                format!(
                    "the store's {tree} hold a key of {} bytes, which no record has",
                    key.len()
                ),
            )
        })
        .collect();
    for (&id, run) in &inspection.runs {
        run_damage(id, run, &runs_dir.join(id.to_string()), &mut found);
    }
    data_dir_notes(inspection, &runs_dir, &mut found);
    for (&id, run) in &inspection.runs {
        run_notes(id, run, &runs_dir.join(id.to_string()), &mut found);
    }
    found
}

/// What is wrong with one run, whose folder is (or would be) `folder_path`.
fn run_damage(id: RunId, run: &RunState, folder_path: &Path, found: &mut Vec<Finding>) {
    found.extend(record_damage(id, run, folder_path));
    epoch_damage(id, run, folder_path, found);
    second_copy_damage(id, run, folder_path, found);
    if let Some(folder) = &run.folder {
        for (epoch, why) in folder.damaged() {
            found.push(Finding::damage(
                Some(id),
                "damaged-checkpoint",
                format!(
                    "run {id}: the checkpoint {} is unusable: {why}",
                    folder_path.join(checkpoint_name(epoch)).display()
                ),
            ));
        }
    }
}

/// The run's record: unreadable, or missing while its folder or its epochs witness the run.
fn record_damage(id: RunId, run: &RunState, folder_path: &Path) -> Option<Finding> {
    let (kind, message) = match (&run.record, &run.folder) {
        (Some(Ok(_)), _) => return None,
        (Some(Err(why)), _) => (
            "unreadable-run",
            format!("run {id}: its record in the store is unreadable: {why}"),
        ),
        (None, Some(folder)) => (
            "run-without-record",
            match folder.newest() {
                Some(newest) => format!(
                    "run {id}: {} holds checkpoints up to epoch {newest} but the store has no record of the run{}",
                    folder_path.display(),
                    match run.last_stored() {
                        0 => " nor of its epochs".to_string(),
                        last => format!(" (its epoch records end at {last})"),
                    }
                ),
                None => format!(
                    "run {id}: the run folder {} exists but the store has no record of the run",
                    folder_path.display()
                ),
            },
        ),
        (None, None) => (
            "epochs-without-run",
            format!(
                "run {id}: the store holds {} epoch record(s) of the run but no record of the run itself",
                run.epoch_records()
            ),
        ),
    };
    Some(Finding::damage(Some(id), kind, message))
}

/// The run's epoch records: unreadable ones, gaps, and epochs lost behind a newer checkpoint.
fn epoch_damage(id: RunId, run: &RunState, folder_path: &Path, found: &mut Vec<Finding>) {
    if !run.epochs.unreadable.is_empty() {
        let epochs: Vec<u32> = run.epochs.unreadable.iter().map(|(e, _)| *e).collect();
        found.push(Finding::damage(
            Some(id),
            "unreadable-epochs",
            format!(
                "run {id}: the records of epoch(s) {} are unreadable: {}",
                ranges(&epochs),
                run.epochs.unreadable[0].1
            ),
        ));
    }
    let gaps = run.gaps();
    if !gaps.is_empty() {
        found.push(Finding::damage(
            Some(id),
            "epoch-gap",
            format!(
                "run {id}: the store has records of epochs up to {} but not of epoch(s) {}",
                run.last_stored(),
                ranges(&gaps)
            ),
        ));
    }
    if let (Some(folder), Some(Ok(_))) = (&run.folder, &run.record) {
        let last = run.last_stored();
        // What the folder witnesses beyond the store, more than a crash can explain: a
        // checkpoint more than one epoch ahead, an epoch log ahead by more than its last write.
        let by_checkpoint = folder.newest().filter(|&n| n > last + 1);
        let by_log = run
            .log_witness()
            .filter(|&(_, last_write_from)| last + 1 < last_write_from);
        if by_checkpoint.is_some() || by_log.is_some() {
            let lost_to = by_checkpoint
                .map_or(0, |n| n - 1)
                .max(by_log.map_or(0, |(witnessed, _)| witnessed));
            let witnesses = match (by_checkpoint, by_log) {
                (Some(newest), Some((witnessed, _))) => format!(
                    "holds a checkpoint of epoch {newest} and an epoch log up to epoch {witnessed}"
                ),
                (Some(newest), None) => format!("holds a checkpoint of epoch {newest}"),
                (None, Some((witnessed, _))) => {
                    format!("holds an epoch log up to epoch {witnessed}")
                }
                (None, None) => unreachable!("one witness at least"),
            };
            found.push(Finding::damage(
                Some(id),
                "epochs-missing",
                format!(
                    "run {id}: the store's epoch records end at {last} but {} {witnesses}: the records of epoch(s) {} were lost",
                    folder_path.display(),
                    ranges(&(last + 1..=lost_to).take(MAX_LISTED_GAPS).collect::<Vec<_>>()),
                ),
            ));
        }
    }
}

/// The run's second copies in its folder — its record (`run.pb`), its epochs (`epochs.pb`), a
/// checkpoint to resume from — checked against the store's record and epochs. Damage to them
/// loses nothing yet, but the next damage to the store would: `--repair` rewrites them from the
/// store.
fn second_copy_damage(id: RunId, run: &RunState, folder_path: &Path, found: &mut Vec<Finding>) {
    let Some(record) = run.readable_record() else {
        return;
    };
    let stored = run.last_stored();
    let folder_shown = folder_path.display();
    let Some(folder) = &run.folder else {
        // Without epochs, a stop between storing the run and creating its folder looks the
        // same: a note, and start-up creates it.
        if record.has_folder && stored > 0 {
            found.push(Finding::damage(
                Some(id),
                "folder-missing",
                format!(
                    "run {id}: its run folder {folder_shown} is gone (with the second copy of its record and its {stored} epoch(s){})",
                    if record.external { "" } else { ", and its checkpoints" }
                ),
            ));
        }
        return;
    };
    let run_pb = folder_path.join(crate::train::checkpoint::file::RUN_RECORD_FILE);
    let run_pb = run_pb.display();
    match &folder.run_copy {
        RunCopyState::Intact => {}
        RunCopyState::Missing => found.push(Finding::damage(
            Some(id),
            "run-copy-missing",
            format!("run {id}: {run_pb}, the second copy of its record, is missing"),
        )),
        RunCopyState::Damaged(why) => found.push(Finding::damage(
            Some(id),
            "run-copy-damaged",
            format!("run {id}: {run_pb}, the second copy of its record, is damaged: {why}"),
        )),
        RunCopyState::Differs(fields) => found.push(Finding::damage(
            Some(id),
            "run-copy-differs",
            format!("run {id}: {run_pb} disagrees with the store's record of the run on {fields}"),
        )),
    }
    epoch_log_damage(id, run, folder_path, found);
    // A run that can resume needs a checkpoint to resume from once it has trained.
    let usable = folder
        .checkpoints
        .iter()
        .any(|e| !matches!(folder.verified.get(e), Some(Err(_))));
    if record.resumable && stored > 0 && !usable {
        found.push(Finding::damage(
            Some(id),
            "checkpoints-missing",
            format!(
                "run {id} is resumable with {stored} epoch(s) stored, but {folder_shown} holds no {}checkpoint to resume from: it cannot resume",
                if folder.checkpoints.is_empty() { "" } else { "intact " }
            ),
        ));
    }
}

/// The run's epoch log against the store's epochs: it must hold every stored epoch, with the
/// same values (the log is written first, so it is never behind the store but by damage).
fn epoch_log_damage(id: RunId, run: &RunState, folder_path: &Path, found: &mut Vec<Finding>) {
    let Some(folder) = &run.folder else {
        return;
    };
    let log = &folder.log;
    let log_path = folder_path.join(crate::store::epoch_log::EPOCH_LOG);
    let log_path = log_path.display();
    let stored = run.epochs.readable.last().copied().unwrap_or(0);
    if stored == 0 {
        return;
    }
    if !log.exists {
        found.push(Finding::damage(
            Some(id),
            "epoch-log-missing",
            format!("run {id}: {log_path}, the second copy of its {stored} epoch(s), is missing"),
        ));
        return;
    }
    if log.last() < stored {
        found.push(Finding::damage(
            Some(id),
            "epoch-log-damaged",
            format!(
                "run {id}: {log_path} holds epochs up to {} but the store up to {stored}{}",
                log.last(),
                match &log.unread_tail {
                    Some(why) => format!(" ({why})"),
                    None => " (the file was cut short)".to_string(),
                }
            ),
        ));
    }
    let logged: BTreeMap<u32, u32> = log.entries.iter().copied().collect();
    let differ: Vec<u32> = run
        .epochs
        .readable
        .iter()
        .zip(&run.epochs.readable_crcs)
        .filter(|(epoch, digest)| logged.get(epoch).is_some_and(|d| d != *digest))
        .map(|(epoch, _)| *epoch)
        .collect();
    if !differ.is_empty() {
        found.push(Finding::damage(
            Some(id),
            "epoch-copies-differ",
            format!(
                "run {id}: the records of epoch(s) {} in {log_path} differ from the store's",
                ranges(&differ[..differ.len().min(MAX_LISTED_GAPS)])
            ),
        ));
    }
}

/// Notes on the runs folder as a whole: interrupted deletions, strangers, unverified checkpoints.
fn data_dir_notes(inspection: &Inspection, runs_dir: &Path, found: &mut Vec<Finding>) {
    for name in &inspection.deleting {
        found.push(Finding::note(
            None,
            "interrupted-delete",
            format!(
                "{}: a deletion was interrupted; stratad finishes it (or undoes it, if the run's record is still there) when it starts",
                runs_dir.join(name).display()
            ),
        ));
    }
    for name in &inspection.strangers {
        found.push(Finding::note(
            None,
            "not-a-run-folder",
            format!(
                "{} is not a run folder (run folders are named by run ids); ignored",
                runs_dir.join(name).display()
            ),
        ));
    }
    if inspection.checkpoints_unverified > 0 {
        found.push(Finding::note(
            None,
            "unverified-checkpoints",
            format!(
                "{} checkpoint(s) were written before checkpoints carried checksums: they load, but their contents cannot be verified",
                inspection.checkpoints_unverified
            ),
        ));
    }
}

/// Notes on one run's folder: a checkpoint one epoch ahead of the records, files set aside.
fn run_notes(id: RunId, run: &RunState, folder_path: &Path, found: &mut Vec<Finding>) {
    let Some(folder) = &run.folder else {
        match run.readable_record() {
            Some(record) if !record.has_folder => found.push(Finding::note(
                Some(id),
                "folder-not-yet-written",
                format!(
                    "run {id} was logged before external runs had a run folder; stratad writes {} (its record and epochs, from the store) when it starts",
                    folder_path.display()
                ),
            )),
            Some(_) if run.last_stored() == 0 => found.push(Finding::note(
                Some(id),
                "folder-not-yet-written",
                format!(
                    "run {id}: its run folder {} is missing (stratad stopped between storing the run and creating it, or it was removed); stratad creates it from the store's record when it starts",
                    folder_path.display()
                ),
            )),
            _ => {}
        }
        return;
    };
    let last = run.last_stored();
    let log_ahead = run
        .log_witness()
        .filter(|&(witnessed, from)| witnessed > last && last + 1 >= from);
    if let (Some(Ok(_)), Some((witnessed, _))) = (&run.record, log_ahead) {
        found.push(Finding::note(
            Some(id),
            "log-ahead",
            format!(
                "run {id}: the records of epoch(s) {} are in its epoch log but not in the store (stratad stopped between writing the two, or the store lost them); stratad stores them from the log when it starts",
                ranges(&(last + 1..=witnessed).collect::<Vec<_>>())
            ),
        ));
    } else if matches!(run.record, Some(Ok(_))) && folder.newest() == Some(last + 1) {
        found.push(Finding::note(
            Some(id),
            "epoch-ahead",
            format!(
                "run {id}: the record of epoch {} is not stored but its checkpoint is (stratad stopped between writing the two, or the store lost the record); stratad stores it again from the checkpoint when it starts",
                last + 1
            ),
        ));
    }
    if !folder.set_aside.is_empty() {
        found.push(Finding::note(
            Some(id),
            "set-aside",
            format!(
                "run {id}: files moved aside earlier are kept in {}: {}",
                folder_path.display(),
                folder.set_aside.join(", ")
            ),
        ));
    }
}

/// What the daemon says when it refuses to start, or `None` when the data dir is sound.
pub(super) fn startup_refusal(inspection: &Inspection, found: &[Finding]) -> Option<String> {
    // Damage to second copies alone is put right from the store as the daemon starts.
    let damage: Vec<&Finding> = found
        .iter()
        .filter(|f| f.damage && !f.in_second_copies())
        .collect();
    if damage.is_empty() {
        return None;
    }
    let dir = inspection.data_dir.display();
    let advice = format!(
        "Nothing was changed. Run `stratad check --data-dir {dir}` for a full report, and \
         `stratad check --data-dir {dir} --repair` to rebuild what was lost from the runs' \
         checkpoints (damaged files are moved aside, never deleted); or move {dir}/runs aside to \
         start with an empty store"
    );
    let orphans: Vec<RunId> = inspection
        .runs
        .iter()
        .filter(|(_, r)| r.record.is_none() && r.folder.is_some())
        .map(|(id, _)| *id)
        .collect();
    if inspection.run_records == 0 && inspection.epoch_records == 0 && !orphans.is_empty() {
        let names: Vec<String> = orphans.iter().take(3).map(|id| id.to_string()).collect();
        let more = if orphans.len() > 3 { ", ..." } else { "" };
        return Some(format!(
            "the store in {dir}/db lists 0 runs but {dir}/runs holds {} run folder(s) ({}{more}): \
             the store is damaged or was deleted. {advice}",
            orphans.len(),
            names.join(", "),
        ));
    }
    let mut message = format!(
        "the data dir {dir} is damaged: its store disagrees with its run folders or holds unreadable records ({} problem(s)):",
        damage.len()
    );
    for finding in damage.iter().take(STARTUP_PROBLEMS_SHOWN) {
        message.push_str("\n  - ");
        message.push_str(&finding.message);
    }
    if damage.len() > STARTUP_PROBLEMS_SHOWN {
        message.push_str(&format!(
            "\n  - and {} more",
            damage.len() - STARTUP_PROBLEMS_SHOWN
        ));
    }
    message.push('\n');
    message.push_str(&advice);
    Some(message)
}
