//! Does the store agree with the run folders? Checked at every start-up and by `stratad check`,
//! repaired by `stratad check --repair`: damage is reported, never silently dropped.
//!
//! sled recovers from a damaged log by keeping what it can read and dropping the rest, so a store
//! can open "fine" with runs or epochs missing. The run folders are a second witness, and what they
//! imply follows from the order things are written in:
//!
//! - a run's record is stored first, then its folder `runs/ID/` is created (holding a copy of the
//!   record, `run.pb`): **a run folder implies a run record**;
//! - the checkpoint of epoch N is synced before the record of epoch N (`train::worker`), so **the
//!   newest checkpoint N implies the records of epochs 1..N-1** — epoch N's own record may be
//!   missing after a crash between the two writes, which is not damage;
//! - epochs are stored in order from 1: **a run's epoch records are 1..N, no gap**;
//! - deleting a run renames its folder to `ID.deleted` before its records go, so a crash midway
//!   leaves a folder that says so (start-up finishes or undoes the deletion), never an orphan.
//!
//! Start-up checks the store against the folders without reading the checkpoints (directory
//! listings and one pass over the records); `stratad check` also verifies every checkpoint's
//! checksum. A repair rebuilds what was lost from the runs' newest intact checkpoints, which hold
//! the run's record and every epoch's ([`crate::train::checkpoint::file`]); it moves damaged files
//! aside, never deletes them, and says what it could not repair.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
};

use crate::{
    domain::{DataFacts, EpochMetrics, RunConfig, RunId, RunRecord, RunStatus, TaskFacts},
    durable,
    error::{Result, StrataError},
    store::{now_ms, EpochScan, Store, StoreScan},
    store::{record, upgrade},
    train::checkpoint::file::{
        self as checkpoint_file, CheckpointFile, Checksum, DAMAGED_SUFFIX, EPOCHS_TENSOR,
        RUN_RECORD_FILE, RUN_TENSOR, UNRECORDED_SUFFIX,
    },
};

/// The suffix a run folder gets while its run is being deleted.
pub const DELETING_SUFFIX: &str = ".deleted";
/// Where a repair moves run folders it cannot turn back into runs.
pub const LOST_AND_FOUND: &str = "lost+found";
/// Problems named in the start-up error; `stratad check` lists them all.
const STARTUP_PROBLEMS_SHOWN: usize = 8;

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

/// A run's checkpoint folder as found on the disk.
#[derive(Debug, Default)]
struct Folder {
    /// Epochs with a checkpoint, ascending.
    checkpoints: Vec<u32>,
    /// Files moved aside earlier (`*.damaged`, `*.unrecorded`).
    set_aside: Vec<String>,
    /// Per checkpoint, when verified: usable (with or without a checksum) or why not.
    verified: BTreeMap<u32, std::result::Result<Checksum, String>>,
}

impl Folder {
    fn newest(&self) -> Option<u32> {
        self.checkpoints.last().copied()
    }

    fn damaged(&self) -> impl Iterator<Item = (u32, &String)> {
        self.verified
            .iter()
            .filter_map(|(epoch, state)| state.as_ref().err().map(|why| (*epoch, why)))
    }
}

/// Everything known about one run id: its record, its epoch records, its folder.
#[derive(Debug, Default)]
struct RunState {
    /// `None`: the store has no record; `Some(Err)`: it has one that does not decode.
    record: Option<std::result::Result<(), String>>,
    epochs: EpochScan,
    folder: Option<Folder>,
}

impl RunState {
    /// The highest epoch the store has a record for (readable or not), 0 if none.
    fn last_stored(&self) -> u32 {
        let readable = self.epochs.readable.last().copied().unwrap_or(0);
        let unreadable = self.epochs.unreadable.iter().map(|(e, _)| *e).max();
        readable.max(unreadable.unwrap_or(0))
    }

    /// Epochs in 1..=last_stored the store has no record of at all.
    fn gaps(&self) -> Vec<u32> {
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
    data_dir: PathBuf,
    runs: BTreeMap<RunId, RunState>,
    bad_keys: Vec<(&'static str, Vec<u8>)>,
    /// Folders of runs whose deletion was interrupted (`ID.deleted`).
    deleting: Vec<String>,
    /// Entries of `runs/` that are not run folders.
    strangers: Vec<String>,
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

/// Where the run folders are: `DATA_DIR/runs` (the one place that names it).
pub fn runs_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("runs")
}

/// Reads the store and the run folders. Fails only when the store cannot be read.
pub fn inspect(store: &Store, data_dir: &Path, checkpoints: Checkpoints) -> Result<Inspection> {
    let StoreScan {
        runs: records,
        epochs,
        bad_keys,
    } = store.scan()?;
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
    let entries = match std::fs::read_dir(runs_dir(data_dir)) {
        Ok(entries) => entries.filter_map(|e| e.ok()).collect(),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(err) => {
            return Err(StrataError::Storage(format!(
                "cannot list {}: {err}",
                runs_dir(data_dir).display()
            )))
        }
    };
    for entry in entries {
        let name = entry.file_name().to_string_lossy().into_owned();
        let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
        match RunId::from_folder_name(&name) {
            Some(id) if is_dir => {
                let folder = read_folder(&entry.path(), id, checkpoints, &mut inspection);
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

fn read_folder(
    dir: &Path,
    id: RunId,
    checkpoints: Checkpoints,
    inspection: &mut Inspection,
) -> Folder {
    let mut folder = Folder {
        checkpoints: checkpoint_file::epochs_in(dir),
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

fn checkpoint_name(epoch: u32) -> String {
    checkpoint_file::path_for(Path::new(""), epoch)
        .display()
        .to_string()
}

/// `1, 2, 3, 5` → `1..3, 5`.
/// The most missing epochs listed one by one (a damaged key can name any epoch).
const MAX_LISTED_GAPS: usize = 10_000;

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

/// Everything wrong (and worth noting) in an inspection.
pub fn findings(inspection: &Inspection) -> Vec<Finding> {
    let runs_dir = runs_dir(&inspection.data_dir);
    let mut found = Vec::new();
    let mut damage = |run: Option<RunId>, kind: &'static str, message: String| {
        found.push(Finding {
            run,
            kind,
            message,
            damage: true,
        })
    };
    for (tree, key) in &inspection.bad_keys {
        damage(
            None,
            "unreadable-key",
            format!(
                "the store's {tree} hold a key of {} bytes, which no record has",
                key.len()
            ),
        );
    }
    for (&id, run) in &inspection.runs {
        let folder_path = runs_dir.join(id.to_string());
        match (&run.record, &run.folder) {
            (Some(Err(why)), _) => damage(
                Some(id),
                "unreadable-run",
                format!("run {id}: its record in the store is unreadable: {why}"),
            ),
            (None, Some(folder)) => damage(
                Some(id),
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
            (None, None) => damage(
                Some(id),
                "epochs-without-run",
                format!(
                    "run {id}: the store holds {} epoch record(s) of the run but no record of the run itself",
                    run.epochs.readable.len() + run.epochs.unreadable.len()
                ),
            ),
            (Some(Ok(())), _) => {}
        }
        if !run.epochs.unreadable.is_empty() {
            let epochs: Vec<u32> = run.epochs.unreadable.iter().map(|(e, _)| *e).collect();
            damage(
                Some(id),
                "unreadable-epochs",
                format!(
                    "run {id}: the records of epoch(s) {} are unreadable: {}",
                    ranges(&epochs),
                    run.epochs.unreadable[0].1
                ),
            );
        }
        let gaps = run.gaps();
        if !gaps.is_empty() {
            damage(
                Some(id),
                "epoch-gap",
                format!(
                    "run {id}: the store has records of epochs up to {} but not of epoch(s) {}",
                    run.last_stored(),
                    ranges(&gaps)
                ),
            );
        }
        if let (Some(folder), Some(Ok(()))) = (&run.folder, &run.record) {
            let last = run.last_stored();
            if let Some(newest) = folder.newest().filter(|&n| n > last + 1) {
                damage(
                    Some(id),
                    "epochs-missing",
                    format!(
                        "run {id}: the store's epoch records end at {last} but {} holds a checkpoint of epoch {newest}: the records of epoch(s) {} were lost",
                        folder_path.display(),
                        ranges(&(last + 1..newest).take(MAX_LISTED_GAPS).collect::<Vec<_>>()),
                    ),
                );
            }
        }
        if let Some(folder) = &run.folder {
            for (epoch, why) in folder.damaged() {
                damage(
                    Some(id),
                    "damaged-checkpoint",
                    format!(
                        "run {id}: the checkpoint {} is unusable: {why}",
                        folder_path.join(checkpoint_name(epoch)).display()
                    ),
                );
            }
        }
    }
    let mut note = |run: Option<RunId>, kind: &'static str, message: String| {
        found.push(Finding {
            run,
            kind,
            message,
            damage: false,
        })
    };
    for name in &inspection.deleting {
        note(
            None,
            "interrupted-delete",
            format!(
                "{}: a deletion was interrupted; stratad finishes it (or undoes it, if the run's record is still there) when it starts",
                runs_dir.join(name).display()
            ),
        );
    }
    for name in &inspection.strangers {
        note(
            None,
            "not-a-run-folder",
            format!(
                "{} is not a run folder (run folders are named by run ids); ignored",
                runs_dir.join(name).display()
            ),
        );
    }
    if inspection.checkpoints_unverified > 0 {
        note(
            None,
            "unverified-checkpoints",
            format!(
                "{} checkpoint(s) were written before checkpoints carried checksums: they load, but their contents cannot be verified",
                inspection.checkpoints_unverified
            ),
        );
    }
    for (&id, run) in &inspection.runs {
        let Some(folder) = &run.folder else { continue };
        let last = run.last_stored();
        if matches!(run.record, Some(Ok(()))) && folder.newest() == Some(last + 1) {
            note(
                Some(id),
                "epoch-ahead",
                format!(
                    "run {id}: the record of epoch {} is not stored but its checkpoint is (stratad stopped between writing the two, or the store lost the record); stratad stores it again from the checkpoint when it starts",
                    last + 1
                ),
            );
        }
        if !folder.set_aside.is_empty() {
            note(
                Some(id),
                "set-aside",
                format!(
                    "run {id}: files moved aside earlier are kept in {}: {}",
                    runs_dir.join(id.to_string()).display(),
                    folder.set_aside.join(", ")
                ),
            );
        }
    }
    found
}

/// What the daemon says when it refuses to start, or `None` when the data dir is sound.
fn startup_refusal(inspection: &Inspection, found: &[Finding]) -> Option<String> {
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
    if let Some(message) = startup_refusal(&inspection, &found) {
        return Err(StrataError::DataDamaged(message));
    }
    for (_, restored) in restore_records_of_newest_checkpoints(store, &inspection, |_| false)? {
        tracing::warn!("{restored}");
    }
    Ok(())
}

/// Runs whose newest checkpoint is one epoch ahead of their stored records: stratad stopped
/// between writing a checkpoint and its epoch's record — or the store lost that record, which
/// looks the same. Either way the checkpoint holds the record (the epoch was fully trained), so it
/// is stored again rather than guessed about. Returns what was restored, by run.
fn restore_records_of_newest_checkpoints(
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
fn archived_epochs(file: &CheckpointFile) -> BTreeMap<u32, EpochMetrics> {
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

/// What a run's newest intact checkpoint says about it.
struct Archive {
    epoch: u32,
    run: Option<RunRecord>,
    epochs: BTreeMap<u32, EpochMetrics>,
}

/// Reads the run's record and epochs from its newest checkpoint that verifies and holds them.
fn read_archive(dir: &Path, id: RunId, folder: &Folder) -> Option<Archive> {
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
        return Some(Archive { epoch, run, epochs });
    }
    None
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
        Some(record) if !record.val_loss.is_finite() || !record.train_loss.is_finite() => (
            RunStatus::Diverged,
            format!(
                "{recovered}; the loss became non-finite at epoch {}",
                record.epoch
            ),
        ),
        Some(record) if planned > 0 && record.epoch >= planned => (RunStatus::Completed, recovered),
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
        id,
        name: String::new(),
        tags: Vec::new(),
        status: RunStatus::Failed,
        reason: format!(
            "recovered by `stratad check --repair`: {why}, and no checkpoint holds a copy, so its config is unknown and it cannot resume; its epochs are kept (delete the run if they are of no use)"
        ),
        config: RunConfig::default(),
        parameters: Vec::new(),
        created_at_ms: id.created_at_ms(),
        started_at_ms: 0,
        finished_at_ms: now_ms(),
        // Unknown: a class count of 0 gives the analysis no baseline to judge against.
        facts: DataFacts {
            task: TaskFacts::Classification { classes: 0 },
            train_rows: 0,
            val_rows: 0,
            steps_per_epoch: 0,
        },
        parameter_count: 0,
        device: String::new(),
        resumes: 0,
    }
}

/// Repairs what the inspection (made with [`Checkpoints::Verify`]) found wrong, as far as it can
/// honestly be repaired, and says what it did and could not do.
pub fn repair(store: &Store, inspection: &Inspection) -> Result<Vec<Repair>> {
    let mut repairs = Vec::new();
    if !inspection.bad_keys.is_empty() {
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
    }
    let found = findings(inspection);
    for (&id, run) in &inspection.runs {
        if !found.iter().any(|f| f.damage && f.run == Some(id)) {
            continue;
        }
        repair_run(store, &inspection.data_dir, id, run, &mut repairs)?;
    }
    // What start-up would restore anyway (a run repaired above has its epochs already).
    let repaired = |id: RunId| found.iter().any(|f| f.damage && f.run == Some(id));
    for (id, restored) in restore_records_of_newest_checkpoints(store, inspection, repaired)? {
        repairs.push(Repair {
            run: Some(id),
            action: restored,
            done: true,
        });
    }
    Ok(repairs)
}

fn repair_run(
    store: &Store,
    data_dir: &Path,
    id: RunId,
    run: &RunState,
    repairs: &mut Vec<Repair>,
) -> Result<()> {
    let dir = runs_dir(data_dir).join(id.to_string());
    let mut did = |action: String, done: bool| {
        repairs.push(Repair {
            run: Some(id),
            action,
            done,
        })
    };
    let io_failed = |what: &str, e: std::io::Error| {
        StrataError::Storage(format!("cannot {what} in {}: {e}", dir.display()))
    };

    // Damaged checkpoints go aside first, so nothing below reads or trusts them.
    let mut folder_checkpoints: Vec<u32> = Vec::new();
    let mut archive = None;
    if let Some(folder) = &run.folder {
        for (epoch, why) in folder.damaged() {
            let path = checkpoint_file::path_for(&dir, epoch);
            let moved = checkpoint_file::set_aside(&path, DAMAGED_SUFFIX)
                .map_err(|e| io_failed("move a damaged checkpoint aside", e))?;
            did(
                format!(
                    "moved the damaged checkpoint {} aside to {} ({why})",
                    checkpoint_name(epoch),
                    moved.display()
                ),
                true,
            );
        }
        folder_checkpoints = folder
            .checkpoints
            .iter()
            .copied()
            .filter(|e| !matches!(folder.verified.get(e), Some(Err(_))))
            .collect();
        archive = read_archive(&dir, id, folder);
    }

    // The run's record: from its newest checkpoint, else from the copy its folder was made with.
    let mut recovering = None;
    let from_checkpoint = archive.as_ref().and_then(|a| {
        let source = format!("its checkpoint of epoch {}", a.epoch);
        a.run.clone().map(|run| (run, source))
    });
    let from_folder = || {
        run.folder.as_ref()?;
        let bytes = checkpoint_file::read_run_record(&dir)?;
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
    };
    match (&run.record, from_checkpoint.or_else(from_folder)) {
        (Some(Ok(())), _) => {}
        (_, Some(archived)) => recovering = Some(archived),
        (record, None) => {
            let has_epochs = !run.epochs.readable.is_empty() || !run.epochs.unreadable.is_empty();
            if record.is_none() && !has_epochs {
                // A folder and nothing else: nothing to show as a run. Keep it, out of the way.
                let lost = data_dir.join(LOST_AND_FOUND);
                durable::create_dir_all(&lost).map_err(|e| io_failed("create lost+found", e))?;
                let target = lost.join(id.to_string());
                std::fs::rename(&dir, &target).map_err(|e| io_failed("move the folder", e))?;
                durable::sync_dir(&lost).map_err(|e| io_failed("sync lost+found", e))?;
                durable::sync_dir(&runs_dir(data_dir))
                    .map_err(|e| io_failed("sync the runs folder", e))?;
                did(
                    format!(
                        "could not rebuild the run: neither its folder nor its checkpoints hold its record (they predate that, or are damaged); moved its folder to {}",
                        target.display()
                    ),
                    false,
                );
                return Ok(());
            }
            let why = if record.is_none() {
                "its record was lost"
            } else {
                "its record was unreadable"
            };
            store.put_run(&placeholder_run(id, why))?;
            did(
                format!("{why} and no checkpoint holds a copy: stored a placeholder record (status failed, config unknown) so its epochs stay visible"),
                false,
            );
        }
    }

    // Its epochs: fill what is missing or unreadable from the checkpoint, drop what cannot be.
    let mut readable: BTreeSet<u32> = run.epochs.readable.iter().copied().collect();
    let unreadable: Vec<u32> = run.epochs.unreadable.iter().map(|(e, _)| *e).collect();
    let mut restore = Vec::new();
    if let Some(archive) = &archive {
        for (epoch, record) in &archive.epochs {
            if !readable.contains(epoch) {
                restore.push(record.clone());
            }
        }
    }
    if !restore.is_empty() {
        let numbers: Vec<u32> = restore.iter().map(|r| r.epoch).collect();
        store.put_epochs(id, &restore)?;
        readable.extend(numbers.iter().copied());
        did(
            format!(
                "restored the records of epoch(s) {} from its checkpoint of epoch {}",
                ranges(&numbers),
                archive.as_ref().map_or(0, |a| a.epoch)
            ),
            true,
        );
    }
    let still_unreadable: Vec<Vec<u8>> = unreadable
        .iter()
        .filter(|e| !readable.contains(e))
        .map(|&e| epoch_key_bytes(id, e))
        .collect();
    if !still_unreadable.is_empty() {
        store.remove_raw("epochs", &still_unreadable)?;
    }
    let top = readable.last().copied().unwrap_or(0);
    let first_gap = (1..=top).find(|e| !readable.contains(e));
    let mut kept = top;
    if let Some(gap) = first_gap {
        kept = gap - 1;
        let dropped: Vec<u32> = readable.iter().copied().filter(|&e| e > kept).collect();
        store.drop_epochs_after(id, kept)?;
        did(
            format!(
                "the record of epoch {gap} was lost and no checkpoint holds a copy: kept epochs 1..{kept}, dropped the records of epoch(s) {} so the epochs stay 1..N",
                ranges(&dropped)
            ),
            false,
        );
    }
    // Checkpoints the records no longer reach would leave a gap when resumed from.
    for &epoch in folder_checkpoints.iter().filter(|&&e| e > kept + 1) {
        let path = checkpoint_file::path_for(&dir, epoch);
        let moved = checkpoint_file::set_aside(&path, UNRECORDED_SUFFIX)
            .map_err(|e| io_failed("move a checkpoint aside", e))?;
        did(
            format!(
                "moved the checkpoint {} aside to {}: the records of the epochs before it are lost, so the run cannot resume from it",
                checkpoint_name(epoch),
                moved.display()
            ),
            false,
        );
    }

    if let Some((archived, source)) = recovering {
        let epochs = store.epochs(id, 1)?;
        let record = recovered_run(archived, &source, &epochs);
        let status = record.status.label();
        store.put_run(&record)?;
        did(
            format!(
                "rebuilt the run's record from {source}: status {status}, {} epoch(s)",
                epochs.len()
            ),
            true,
        );
    } else if first_gap.is_some() {
        store.update_run(id, |record| {
            record.reason = format!(
                "{}{}`stratad check --repair` dropped the records of epochs after {kept}, which could not be recovered",
                record.reason,
                if record.reason.is_empty() { "" } else { "; " },
            );
        })?;
    }
    Ok(())
}

fn epoch_key_bytes(run: RunId, epoch: u32) -> Vec<u8> {
    let mut key = run.0.to_be_bytes().to_vec();
    key.extend_from_slice(&epoch.to_be_bytes());
    key
}

/// What `stratad check` reports: counts, findings, and (with `--repair`) what was done and what
/// is left.
pub struct Report {
    pub data_dir: PathBuf,
    /// The store could not be opened or read (then only the folders were inspected).
    pub store_unreadable: Option<String>,
    pub run_records: usize,
    pub epoch_records: usize,
    pub run_folders: usize,
    pub checkpoints: usize,
    pub checkpoints_verified: usize,
    pub checkpoints_unverified: usize,
    pub findings: Vec<Finding>,
    pub repairs: Option<Vec<Repair>>,
    /// After a repair: what is still wrong.
    pub remaining: Vec<Finding>,
}

impl Report {
    pub fn new(data_dir: &Path, inspection: Option<&Inspection>, findings: Vec<Finding>) -> Self {
        Report {
            data_dir: data_dir.to_path_buf(),
            store_unreadable: None,
            run_records: inspection.map_or(0, |i| i.run_records),
            epoch_records: inspection.map_or(0, |i| i.epoch_records),
            run_folders: inspection.map_or(0, Inspection::run_folders),
            checkpoints: inspection.map_or(0, Inspection::checkpoints),
            checkpoints_verified: inspection.map_or(0, |i| i.checkpoints_verified),
            checkpoints_unverified: inspection.map_or(0, |i| i.checkpoints_unverified),
            findings,
            repairs: None,
            remaining: Vec::new(),
        }
    }

    /// Healthy: nothing damaged (after the repair, when one was made).
    pub fn healthy(&self) -> bool {
        match &self.repairs {
            Some(_) => !self.remaining.iter().any(|f| f.damage),
            None => self.store_unreadable.is_none() && !self.findings.iter().any(|f| f.damage),
        }
    }
}

#[cfg(test)]
mod tests;
