//! Does the store agree with the run folders? Checked at every start-up and by `stratad check`,
//! repaired by `stratad check --repair`: damage is reported, never silently dropped.
//!
//! sled recovers from a damaged log by keeping what it can read and dropping the rest, so a store
//! can open "fine" with runs or epochs missing. The run folders — of every run, trained or logged
//! from outside — are a second copy, and what they imply follows from the order things are
//! written in:
//!
//! - a run's record is stored first, then its folder `runs/ID/` is created (holding a copy of the
//!   record, `run.pb`): **a run folder implies a run record**, and a run with epochs has a folder;
//! - every epoch is appended to the run's epoch log (`epochs.pb`) before it is stored, a trained
//!   run's one at a time, an external run's batch as one write: **the store's epochs are the
//!   log's, but for the log's last write** (a crash between the two; start-up stores them), and
//!   the log is never behind the store but by damage;
//! - the checkpoint of epoch N is synced before the record of epoch N (`runs::ingest`), so **the
//!   newest checkpoint N implies the records of epochs 1..N-1** — epoch N's own record may be
//!   missing after a crash between the two writes, which is not damage;
//! - epochs are stored in order from 1: **a run's epoch records are 1..N, no gap**;
//! - deleting a run renames its folder to `ID.deleted` before its records go, so a crash midway
//!   leaves a folder that says so (start-up finishes or undoes the deletion), never an orphan.
//!
//! Start-up checks the store against the folders without reading the checkpoints (directory
//! listings, one pass over the records, every epoch log read); `stratad check` also verifies every
//! checkpoint's checksum. Damage to the store makes start-up refuse; damage to a second copy alone
//! (a log or `run.pb` missing, cut, flipped or disagreeing, a folder gone) loses nothing while the
//! store is whole, and start-up writes the copy again from the store. A repair rebuilds what the
//! store lost from the runs' newest intact checkpoints and epoch logs (and `run.pb`), writes
//! damaged second copies again from the store, moves damaged files aside (never deletes them),
//! and says what it could not repair.

mod findings;
mod inspect;
mod repair;
mod report;
mod restore;

use std::path::{Path, PathBuf};

pub use findings::findings;
pub use inspect::{inspect, Checkpoints, Inspection};
pub use repair::repair;
pub use report::Report;
pub use restore::finish_interrupted_deletes;
use restore::Copies;

use crate::{
    domain::RunId,
    error::{Result, StrataError},
    store::Store,
    train::checkpoint::file as checkpoint_file,
};

/// The suffix a run folder gets while its run is being deleted.
pub const DELETING_SUFFIX: &str = ".deleted";
/// Where a repair moves run folders it cannot turn back into runs.
pub const LOST_AND_FOUND: &str = "lost+found";
/// The most missing epochs listed one by one (a damaged key can name any epoch).
const MAX_LISTED_GAPS: usize = 10_000;

/// One thing found: damage (the daemon refuses to start, `check` exits 1) or a note.
#[derive(Clone, Debug)]
pub struct Finding {
    pub run: Option<RunId>,
    /// A stable name for scripts: `unreadable-run`, `run-without-record`, ...
    pub kind: &'static str,
    pub message: String,
    pub damage: bool,
}

/// One thing a repair did, or could not do.
#[derive(Clone, Debug)]
pub struct Repair {
    pub run: Option<RunId>,
    pub action: String,
    pub done: bool,
}

impl Finding {
    /// Damage to a run's second copies (its folder's `run.pb`, `epochs.pb`, checkpoints) while
    /// the store holds the run whole: nothing is lost yet. Start-up writes the copies again from
    /// the store (a missing checkpoint cannot be: it is reported) instead of refusing to start.
    pub fn in_second_copies(&self) -> bool {
        self.damage && (Copies::for_findings([self]).any() || self.kind == "checkpoints-missing")
    }

    fn damage(run: Option<RunId>, kind: &'static str, message: String) -> Self {
        Finding {
            run,
            kind,
            message,
            damage: true,
        }
    }

    fn note(run: Option<RunId>, kind: &'static str, message: String) -> Self {
        Finding {
            run,
            kind,
            message,
            damage: false,
        }
    }
}

/// Where the run folders are: `DATA_DIR/runs` (the one place that names it).
pub fn runs_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("runs")
}

/// The start-up check: finishes interrupted deletions, then refuses (with what is wrong and how
/// to recover) a store that disagrees with the run folders.
pub fn check_at_startup(store: &Store, data_dir: &Path) -> Result<()> {
    for done in finish_interrupted_deletes(store, data_dir)? {
        tracing::info!("{done}");
    }
    let inspection = inspect(store, data_dir, Checkpoints::List).map_err(|err| {
        StrataError::DataDamaged(format!(
            "cannot read the store: {err}; {}",
            crate::store::damaged_store_advice(data_dir)
        ))
    })?;
    let found = findings(&inspection);
    // Notes are not damage (files kept aside, a crash between a checkpoint and its record).
    for finding in found.iter().filter(|f| !f.damage) {
        tracing::info!(kind = finding.kind, "{}", finding.message);
    }
    if let Some(message) = findings::startup_refusal(&inspection, &found) {
        return Err(StrataError::DataDamaged(message));
    }
    for (_, restored) in
        restore::restore_records_of_newest_checkpoints(store, &inspection, |_| false)?
    {
        tracing::warn!("{restored}");
    }
    for &id in inspection.runs.keys() {
        let about: Vec<&Finding> = found.iter().filter(|f| f.run == Some(id)).collect();
        for finding in about.iter().filter(|f| f.kind == "checkpoints-missing") {
            tracing::warn!(
                "{} (`stratad check --repair` records that)",
                finding.message
            );
        }
        let copies = restore::Copies::for_findings(about.iter().copied());
        if copies.any() {
            let done = restore::rewrite_second_copies(store, data_dir, id, copies)?;
            if about.iter().any(|f| f.damage) {
                tracing::warn!("{done} (they were damaged or missing)");
            } else {
                tracing::info!("{done}");
            }
        }
    }
    Ok(())
}

fn checkpoint_name(epoch: u32) -> String {
    checkpoint_file::path_for(Path::new(""), epoch)
        .display()
        .to_string()
}

/// `1, 2, 3, 5` → `1..3, 5`.
fn ranges(epochs: &[u32]) -> String {
    let mut parts = Vec::new();
    let mut iter = epochs.iter().copied().peekable();
    while let Some(start) = iter.next() {
        let mut end = start;
        while iter.peek() == Some(&(end + 1)) {
            end += 1;
            iter.next();
        }
        parts.push(if start == end {
            start.to_string()
        } else {
            format!("{start}..{end}")
        });
    }
    parts.join(", ")
}

#[cfg(test)]
mod tests;
