//! What is wrong with a data dir (damage: the daemon refuses to start, `check` exits 1), and what
//! is worth noting about it.

use std::path::Path;

use super::{
    checkpoint_name, inspect::RunState, ranges, runs_dir, Finding, Inspection, MAX_LISTED_GAPS,
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
        (Some(Ok(())), _) => return None,
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
    if let (Some(folder), Some(Ok(()))) = (&run.folder, &run.record) {
        let last = run.last_stored();
        if let Some(newest) = folder.newest().filter(|&n| n > last + 1) {
            found.push(Finding::damage(
                Some(id),
                "epochs-missing",
                format!(
                    "run {id}: the store's epoch records end at {last} but {} holds a checkpoint of epoch {newest}: the records of epoch(s) {} were lost",
                    folder_path.display(),
                    ranges(&(last + 1..newest).take(MAX_LISTED_GAPS).collect::<Vec<_>>()),
                ),
            ));
        }
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
        return;
    };
    let last = run.last_stored();
    if matches!(run.record, Some(Ok(()))) && folder.newest() == Some(last + 1) {
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
    let damage: Vec<&Finding> = found.iter().filter(|f| f.damage).collect();
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
