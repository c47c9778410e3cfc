//! Where a resumed run continues from: the newest intact checkpoint at or below its last stored
//! epoch.

use crate::{
    domain::RunId,
    error::{Result, StrataError},
    store::Store,
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
    dir: &std::path::Path,
    data_dir: &std::path::Path,
    done: u32,
) -> Result<ResumePoint> {
    use crate::train::checkpoint::file::{self, CheckpointFile};
    if done == 0 {
        return Ok(ResumePoint {
            after_epoch: 0,
            reason: "resumed from the start (no epoch was stored)".into(),
        });
    }
    let present = file::epochs_in(dir);
    let mut unusable: Vec<(u32, String)> = Vec::new();
    let mut chosen = None;
    for &epoch in present.iter().rev().filter(|&&e| e <= done) {
        let verified = CheckpointFile::read(&file::path_for(dir, epoch))
            .and_then(|f| f.check_identity(&id.to_string(), epoch));
        match verified {
            Ok(()) => {
                chosen = Some(epoch);
                break;
            }
            Err(why) => unusable.push((epoch, why)),
        }
    }
    let described = |list: &[(u32, String)]| {
        list.iter()
            .map(|(e, why)| format!("epoch {e}: {why}"))
            .collect::<Vec<_>>()
            .join("; ")
    };
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
    let mut why: Vec<String> = Vec::new();
    for (epoch, problem) in &unusable {
        let moved =
            file::set_aside(&file::path_for(dir, *epoch), file::DAMAGED_SUFFIX).map_err(|e| {
                StrataError::Storage(format!(
                    "cannot move the damaged checkpoint of epoch {epoch} aside: {e}"
                ))
            })?;
        why.push(format!(
            "the checkpoint of epoch {epoch} is damaged ({problem}) and was moved aside to {}",
            moved.display()
        ));
    }
    let missing: Vec<String> = (after + 1..=done)
        .filter(|e| !present.contains(e))
        .map(|e| e.to_string())
        .collect();
    if !missing.is_empty() && unusable.is_empty() {
        why.push(format!(
            "the checkpoint of epoch {done} is missing (none kept after epoch {after})"
        ));
    }
    // Checkpoints after the one resumed from (above the stored epochs, or left by the fallback)
    // belong to epochs about to be retrained: set them aside, or the next start would read them
    // as epochs whose records were lost.
    for &epoch in present.iter().filter(|&&e| e > after) {
        let path = file::path_for(dir, epoch);
        if path.exists() {
            file::set_aside(&path, file::UNRECORDED_SUFFIX).map_err(|e| {
                StrataError::Storage(format!(
                    "cannot move the checkpoint of epoch {epoch} aside: {e}"
                ))
            })?;
        }
    }
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
