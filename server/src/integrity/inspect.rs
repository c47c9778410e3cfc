//! What the data dir holds, read once: the store's records and the run folders, side by side.

use std::{
    collections::{BTreeMap, BTreeSet},
    fs::DirEntry,
    path::{Path, PathBuf},
};

use super::{runs_dir, DELETING_SUFFIX, MAX_LISTED_GAPS};
use crate::{
    domain::{RunId, RunRecord},
    error::{Result, StrataError},
    store::{
        epoch_log::{self, LogScan},
        record, run_copy, upgrade, EpochScan, ScannedRun, Store, StoreScan,
    },
    train::checkpoint::file::{
        self as checkpoint_file, CheckpointFile, Checksum, DAMAGED_SUFFIX, UNRECORDED_SUFFIX,
    },
};

/// A run's folder as found on the disk: its checkpoints, and its copies of the run's record and
/// epochs.
#[derive(Debug, Default)]
pub(super) struct Folder {
    /// Epochs with a checkpoint, ascending.
    pub(super) checkpoints: Vec<u32>,
    /// Files moved aside earlier (`*.damaged`, `*.unrecorded`).
    pub(super) set_aside: Vec<String>,
    /// Per checkpoint, when verified: usable (with or without a checksum) or why not.
    pub(super) verified: BTreeMap<u32, std::result::Result<Checksum, String>>,
    /// `run.pb`, read and compared with the store's record.
    pub(super) run_copy: RunCopyState,
    /// `epochs.pb`, read (every entry's checksum checked).
    pub(super) log: LogScan,
}

/// What a folder's `run.pb` says, against the store's record of the run.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(super) enum RunCopyState {
    #[default]
    Missing,
    /// Unreadable, checksum wrong, not a record, or another run's: why.
    Damaged(String),
    /// Readable, but it disagrees with the store's record on what never changes: where.
    Differs(String),
    /// Readable, and the store's record (when readable) agrees with it.
    Intact,
}

impl Folder {
    pub(super) fn newest(&self) -> Option<u32> {
        self.checkpoints.last().copied()
    }

    pub(super) fn damaged(&self) -> impl Iterator<Item = (u32, &String)> {
        self.verified
            .iter()
            .filter_map(|(epoch, state)| state.as_ref().err().map(|why| (*epoch, why)))
    }
}

/// Everything known about one run id: its record, its epoch records, its folder.
#[derive(Debug, Default)]
pub(super) struct RunState {
    /// `None`: the store has no record; `Some(Err)`: it has one that does not decode.
    pub(super) record: Option<std::result::Result<ScannedRun, String>>,
    pub(super) epochs: EpochScan,
    pub(super) folder: Option<Folder>,
}

impl RunState {
    /// The highest epoch the store has a record for (readable or not), 0 if none.
    pub(super) fn last_stored(&self) -> u32 {
        let readable = self.epochs.readable.last().copied().unwrap_or(0);
        let unreadable = self.epochs.unreadable.iter().map(|(e, _)| *e).max();
        readable.max(unreadable.unwrap_or(0))
    }

    /// How many epoch records the store has of the run (readable or not).
    pub(super) fn epoch_records(&self) -> usize {
        self.epochs.readable.len() + self.epochs.unreadable.len()
    }

    /// The store's record of the run, when it is readable.
    pub(super) fn readable_record(&self) -> Option<ScannedRun> {
        self.record.as_ref().and_then(|r| r.as_ref().ok()).copied()
    }

    /// What the folder's epoch log says the store must hold, when it holds any epoch: the last
    /// epoch it witnesses, and the first epoch of its last write (a crash between that write and
    /// the store leaves the store's records ending just before it). A trained run appends to its
    /// log after each checkpoint, so log epochs beyond its newest checkpoint are from a timeline
    /// a resume abandoned (its log is rewritten when it trains again): they witness nothing.
    pub(super) fn log_witness(&self) -> Option<(u32, u32)> {
        let folder = self.folder.as_ref()?;
        let last = folder.log.last();
        if last == 0 {
            return None;
        }
        match folder.newest() {
            Some(newest) if newest < last => Some((newest, newest)),
            _ => Some((last, folder.log.last_write_from)),
        }
    }

    /// Epochs in 1..=last_stored the store has no record of at all.
    pub(super) fn gaps(&self) -> Vec<u32> {
        let present: BTreeSet<u32> = self
            .epochs
            .readable
            .iter()
            .copied()
            .chain(self.epochs.unreadable.iter().map(|(e, _)| *e))
            .collect();
        // From the epochs present, not by counting up to the last: one stray huge epoch number
        // must not make the check list billions of numbers. At most MAX_LISTED_GAPS are kept.
        let mut gaps = Vec::new();
        let mut expected = 1u32;
        for &epoch in &present {
            let mut missing = expected;
            while missing < epoch && gaps.len() < MAX_LISTED_GAPS {
                gaps.push(missing);
                missing += 1;
            }
            expected = epoch.saturating_add(1);
        }
        gaps
    }
}

/// What the data dir holds, read once.
pub struct Inspection {
    pub(super) data_dir: PathBuf,
    pub(super) runs: BTreeMap<RunId, RunState>,
    pub(super) bad_keys: Vec<(&'static str, Vec<u8>)>,
    /// Folders of runs whose deletion was interrupted (`ID.deleted`).
    pub(super) deleting: Vec<String>,
    /// Entries of `runs/` that are not run folders.
    pub(super) strangers: Vec<String>,
    pub run_records: usize,
    pub epoch_records: usize,
    pub checkpoints_verified: usize,
    pub checkpoints_unverified: usize,
}

impl Inspection {
    pub fn run_folders(&self) -> usize {
        self.runs.values().filter(|r| r.folder.is_some()).count()
    }

    pub fn checkpoints(&self) -> usize {
        self.runs
            .values()
            .filter_map(|r| r.folder.as_ref())
            .map(|f| f.checkpoints.len())
            .sum()
    }
}

/// Whether to read every checkpoint and verify its checksum (`stratad check`), or only list the
/// folders (start-up).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Checkpoints {
    List,
    Verify,
}

/// Reads the store and the run folders. Fails only when the store cannot be read.
pub fn inspect(store: &Store, data_dir: &Path, checkpoints: Checkpoints) -> Result<Inspection> {
    let mut inspection = Inspection::of_store(data_dir, store.scan()?);
    for entry in run_folder_entries(data_dir)? {
        let name = entry.file_name().to_string_lossy().into_owned();
        let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
        match RunId::from_folder_name(&name) {
            Some(id) if is_dir => {
                let mut folder = read_folder(&entry.path(), id, checkpoints, &mut inspection);
                let stored = match inspection.runs.get(&id).map(|r| &r.record) {
                    Some(Some(Ok(_))) => store.get_run(id).ok().flatten(),
                    _ => None,
                };
                folder.run_copy = run_copy_state(&entry.path(), id, stored.as_ref());
                inspection.runs.entry(id).or_default().folder = Some(folder);
            }
            _ if is_dir
                && name
                    .strip_suffix(DELETING_SUFFIX)
                    .and_then(RunId::from_folder_name)
                    .is_some() =>
            {
                inspection.deleting.push(name)
            }
            _ => inspection.strangers.push(name),
        }
    }
    Ok(inspection)
}

impl Inspection {
    /// What the store holds, each run's records gathered under its id; no folders read yet.
    fn of_store(data_dir: &Path, scan: StoreScan) -> Self {
        let StoreScan {
            runs: records,
            epochs,
            bad_keys,
        } = scan;
        let mut inspection = Inspection {
            data_dir: data_dir.to_path_buf(),
            runs: BTreeMap::new(),
            run_records: records.len(),
            epoch_records: epochs
                .values()
                .map(|e| e.readable.len() + e.unreadable.len())
                .sum(),
            bad_keys,
            deleting: Vec::new(),
            strangers: Vec::new(),
            checkpoints_verified: 0,
            checkpoints_unverified: 0,
        };
        for (id, record) in records {
            inspection.runs.entry(id).or_default().record = Some(record);
        }
        for (id, scan) in epochs {
            inspection.runs.entry(id).or_default().epochs = scan;
        }
        inspection
    }
}

/// The entries of `DATA_DIR/runs` (none when it does not exist).
fn run_folder_entries(data_dir: &Path) -> Result<Vec<DirEntry>> {
    match std::fs::read_dir(runs_dir(data_dir)) {
        Ok(entries) => Ok(entries.filter_map(|e| e.ok()).collect()),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(err) => Err(StrataError::storage_from(
            format!("cannot list {}", runs_dir(data_dir).display()),
            err,
        )),
    }
}

fn read_folder(
    dir: &Path,
    id: RunId,
    checkpoints: Checkpoints,
    inspection: &mut Inspection,
) -> Folder {
    let mut folder = Folder {
        checkpoints: checkpoint_file::epochs_in(dir),
        log: epoch_log::scan(dir).unwrap_or_else(|err| LogScan {
            exists: true,
            unread_tail: Some(format!("cannot read it: {err}")),
            ..Default::default()
        }),
        ..Default::default()
    };
    if let Ok(entries) = std::fs::read_dir(dir) {
        folder.set_aside = entries
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|name| {
                name.contains(&format!(".{DAMAGED_SUFFIX}"))
                    || name.contains(&format!(".{UNRECORDED_SUFFIX}"))
            })
            .collect();
        folder.set_aside.sort();
    }
    if checkpoints == Checkpoints::Verify {
        for &epoch in &folder.checkpoints {
            let state =
                CheckpointFile::read(&checkpoint_file::path_for(dir, epoch)).and_then(|file| {
                    file.check_identity(&id.to_string(), epoch)?;
                    Ok(file.checksum)
                });
            match state {
                Ok(Checksum::Verified) => inspection.checkpoints_verified += 1,
                Ok(Checksum::Absent) => inspection.checkpoints_unverified += 1,
                Err(_) => {}
            }
            folder.verified.insert(epoch, state);
        }
    }
    folder
}

/// Reads `run.pb` and compares it with the store's record of the run (`stored`, when readable)
/// on what never changes once a run is stored: a copy that disagrees is damaged on one side, and
/// the store (whose log is checksummed too) is the one believed.
pub(super) fn run_copy_state(dir: &Path, id: RunId, stored: Option<&RunRecord>) -> RunCopyState {
    let bytes = match run_copy::read(dir) {
        run_copy::RunCopy::Missing => return RunCopyState::Missing,
        run_copy::RunCopy::Damaged(why) => return RunCopyState::Damaged(why),
        run_copy::RunCopy::Intact(bytes) => bytes,
    };
    let copy = match record::decode_stored_run(&bytes)
        .and_then(|run| run.to_domain(|run| upgrade::legacy_facts(run, &[])))
    {
        Ok(copy) => copy,
        Err(why) => return RunCopyState::Damaged(why),
    };
    if copy.id != id {
        return RunCopyState::Damaged(format!("it holds run {}", copy.id));
    }
    let Some(stored) = stored else {
        return RunCopyState::Intact;
    };
    let fixed = |run: &RunRecord| {
        [
            ("name", format!("{:?}", run.name)),
            ("tags", format!("{:?}", run.tags)),
            ("created_at_ms", run.created_at_ms.to_string()),
            ("origin", format!("{:?}", run.origin)),
            ("sweep", format!("{:?}", run.sweep)),
            ("twin", format!("{:?}/{:?}", run.twin, run.twin_of)),
        ]
    };
    let differs: Vec<&str> = fixed(&copy)
        .iter()
        .zip(fixed(stored).iter())
        .filter(|(a, b)| a.1 != b.1)
        .map(|(a, _)| a.0)
        .collect();
    if differs.is_empty() {
        RunCopyState::Intact
    } else {
        RunCopyState::Differs(differs.join(", "))
    }
}
