//! Where a resumed run continues from: the newest intact checkpoint at or below its last stored
//! epoch.

use std::path::Path;

use crate::{
    domain::RunId,
    error::{Result, StrataError},
    store::Store,
    train::checkpoint::file::{self, CheckpointFile},
};

/// Where a resumed run starts, and what its reason says about it.
pub(super) struct ResumePoint {
    pub after_epoch: u32,
    pub reason: String,
}

/// Picks the newest intact checkpoint at or below the run's last stored epoch `done`. When that is
/// not `done`'s own, the damaged checkpoints above it are moved aside (`*.damaged`, never deleted)
/// and the records of the epochs after it are dropped: those epochs are retrained, so the run's
/// epochs stay 1..N with no gap or duplicate, and every stored epoch keeps a checkpoint at or
/// below it. With no intact checkpoint at all nothing is changed and the resume is refused: the
/// run stays as it was, resumable once a checkpoint is restored.
pub(super) fn choose_resume_point(
    store: &Store,
    id: RunId,
    dir: &Path,
    data_dir: &Path,
    done: u32,
) -> Result<ResumePoint> {
    if done == 0 {
        return Ok(ResumePoint {
            after_epoch: 0,
            reason: "resumed from the start (no epoch was stored)".into(),
        });
    }
    let present = file::epochs_in(dir);
    let (chosen, unusable) = newest_intact(dir, id, &present, done);
    let Some(after) = chosen else {
        let found = if unusable.is_empty() {
            "there is none".to_string()
        } else {
            described(&unusable)
        };
        return Err(StrataError::FailedPrecondition(format!(
            "run {id} cannot resume: it has {done} stored epoch(s) but no intact checkpoint to continue from in {} ({found}). Nothing was changed: the run keeps its epochs and can resume once a checkpoint is restored; `stratad check --data-dir {}` reports on the data dir",
            dir.display(),
            data_dir.display()
        )));
    };
    if after == done {
        return Ok(ResumePoint {
            after_epoch: done,
            reason: format!("resumed after epoch {done}"),
        });
    }
    let mut why = set_aside_damaged(dir, &unusable)?;
    let missing = (after + 1..=done).any(|e| !present.contains(&e));
    if missing && unusable.is_empty() {
        why.push(format!(
            "the checkpoint of epoch {done} is missing (none kept after epoch {after})"
        ));
    }
    set_aside_after(dir, &present, after)?;
    store.drop_epochs_after(id, after)?;
    Ok(ResumePoint {
        after_epoch: after,
        reason: format!(
            "resumed after epoch {after}, from its newest intact checkpoint: {}; epochs {}..{done} are retrained and their earlier records were dropped",
            why.join("; "),
            after + 1
        ),
    })
}

/// The newest of the `present` checkpoints at or below epoch `done` that reads and belongs to
/// the run, and why each one above it is unusable (newest first).
fn newest_intact(
    dir: &Path,
    id: RunId,
    present: &[u32],
    done: u32,
) -> (Option<u32>, Vec<(u32, String)>) {
    let mut unusable = Vec::new();
    for &epoch in present.iter().rev().filter(|&&e| e <= done) {
        let verified = CheckpointFile::read(&file::path_for(dir, epoch))
            .and_then(|f| f.check_identity(&id.to_string(), epoch));
        match verified {
            Ok(()) => return (Some(epoch), unusable),
            Err(why) => unusable.push((epoch, why)),
        }
    }
    (None, unusable)
}

fn described(unusable: &[(u32, String)]) -> String {
    unusable
        .iter()
        .map(|(e, why)| format!("epoch {e}: {why}"))
        .collect::<Vec<_>>()
        .join("; ")
}

/// Moves the unusable checkpoints aside (`*.damaged`); says what was moved where, and why.
fn set_aside_damaged(dir: &Path, unusable: &[(u32, String)]) -> Result<Vec<String>> {
    let mut why = Vec::new();
    for (epoch, problem) in unusable {
        let moved =
            file::set_aside(&file::path_for(dir, *epoch), file::DAMAGED_SUFFIX).map_err(|e| {
                StrataError::storage_from(
                    format!("cannot move the damaged checkpoint of epoch {epoch} aside"),
                    e,
                )
            })?;
        why.push(format!(
            "the checkpoint of epoch {epoch} is damaged ({problem}) and was moved aside to {}",
            moved.display()
        ));
    }
    Ok(why)
}

/// Checkpoints after the one resumed from (above the stored epochs, or left by the fallback)
/// belong to epochs about to be retrained: they are set aside (`*.unrecorded`), or the next start
/// would read them as epochs whose records were lost.
fn set_aside_after(dir: &Path, present: &[u32], after: u32) -> Result<()> {
    for &epoch in present.iter().filter(|&&e| e > after) {
        let path = file::path_for(dir, epoch);
        if path.exists() {
            file::set_aside(&path, file::UNRECORDED_SUFFIX).map_err(|e| {
                StrataError::storage_from(
                    format!("cannot move the checkpoint of epoch {epoch} aside"),
                    e,
                )
            })?;
        }
    }
    Ok(())
}
