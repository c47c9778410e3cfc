//! The sled store: runs and their per-epoch records.
//!
//! Keys are ordered so the common reads are range scans: a run's key is its id as 8 big-endian
//! bytes (ids sort by creation time, so newest-first is a reverse scan), an epoch's key is the run
//! key followed by the epoch as 4 big-endian bytes (one run's epochs are one contiguous range).
//! Values are the store's own records ([`record`]); a file beside sled's says which format they
//! are in.
//!
//! Durability is explicit: every write here is flushed by sled and then synced to the disk
//! ([`crate::durable::StoreFiles`]: `fdatasync`/`fsync` of sled's files) before it returns, so
//! whatever a caller acknowledges or streams afterwards survives a killed process and a power cut.

pub mod epoch_log;
pub mod record;
pub mod upgrade;

use std::{
    collections::BTreeMap,
    fmt,
    path::Path,
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        RwLock, RwLockReadGuard,
    },
    time::{SystemTime, UNIX_EPOCH},
};

use crate::{
    domain::{
        from_base32, scramble, EpochMetrics, RunId, RunRecord, RunStatus, SHORT_ID_CHARS,
        SHORT_ID_FLAG,
    },
    durable::StoreFiles,
    error::{Result, StrataError},
};
use record::{decode_epoch, decode_stored_run};

pub(crate) fn epoch_key(run: RunId, epoch: u32) -> [u8; 12] {
    let mut key = [0u8; 12];
    key[..8].copy_from_slice(&run.key());
    key[8..].copy_from_slice(&epoch.to_be_bytes());
    key
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "sled panicked".into())
}

/// A stored run record, read back. Records of a store not yet upgraded (see [`upgrade`]) have no
/// facts: they are estimated from the record alone.
fn decode_run(bytes: &[u8]) -> Result<RunRecord> {
    decode_stored_run(bytes)
        .and_then(|stored| stored.to_domain(|run| upgrade::legacy_facts(run, &[])))
        .map_err(|e| StrataError::Storage(format!("a run record: {e}")))
}

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

pub struct Store {
    db: sled::Db,
    files: StoreFiles,
    runs: sled::Tree,
    epochs: sled::Tree,
    /// Short ids as shown (their scrambled value, big-endian) → run key: prefix lookups.
    shown_ids: sled::Tree,
    /// sled's folder, where the format file is.
    db_dir: std::path::PathBuf,
    last_id: AtomicU64,
    /// Writes hold it exclusively from their insert until it is on the disk; reads share it. sled
    /// shows an insert to readers at once, before any flush: without this, a watcher reading
    /// history (or any query) could stream an epoch that a power cut would still lose.
    visible: RwLock<()>,
    /// Set when a write could not be synced: its insert may be in sled's memory (and on the disk
    /// by a later flush) though its caller was told it failed, so from then on the store serves
    /// nothing until stratad restarts and reads what is really on the disk.
    sync_failed: AtomicBool,
}

/// What the store holds, read record by record: which records decode and which epochs each run
/// has. For the integrity check; it keeps numbers, not records.
#[derive(Debug, Default)]
pub struct StoreScan {
    /// Every run key: `Ok` if its record decodes and names the same run.
    pub runs: BTreeMap<RunId, Result<(), String>>,
    /// Every run that has epoch records (with or without a run record).
    pub epochs: BTreeMap<RunId, EpochScan>,
    /// Keys of the wrong length: (tree, key bytes).
    pub bad_keys: Vec<(&'static str, Vec<u8>)>,
}

#[derive(Debug, Default)]
pub struct EpochScan {
    /// Epochs whose records decode, ascending.
    pub readable: Vec<u32>,
    /// Epochs whose records do not decode, or name another epoch, and why.
    pub unreadable: Vec<(u32, String)>,
}

/// Why a store did not open.
#[derive(Debug)]
pub enum OpenError {
    /// Another process (a running stratad) holds it.
    Locked,
    /// The disk or the file system refused (permissions, no space): not damage.
    Io(String),
    /// sled found it damaged (or panicked reading it).
    Damaged(String),
    /// A newer `stratad` wrote it, in a record format this one does not know.
    NewerFormat(u32),
}

impl OpenError {
    /// What to tell the operator about a store that did not open.
    pub fn describe(self, data_dir: &Path) -> StrataError {
        match self {
            OpenError::Locked => StrataError::Storage(format!(
                "another stratad is using the data dir {}; stop it or pick another --data-dir",
                data_dir.display()
            )),
            OpenError::Io(message) => StrataError::Storage(message),
            OpenError::Damaged(problem) => StrataError::DataDamaged(format!(
                "cannot open the store in {}: {problem}; {}",
                data_dir.display(),
                damaged_store_advice(data_dir)
            )),
            OpenError::NewerFormat(format) => StrataError::Storage(format!(
                "the store in {} was written by a newer stratad (record format {format}; this one reads formats up to {}). Nothing was changed: run a stratad at least as new as the one that wrote it",
                data_dir.display(),
                record::FORMAT
            )),
        }
    }
}

/// Says what to do about a store that cannot be opened or read, after what went wrong.
pub fn damaged_store_advice(data_dir: &Path) -> String {
    let dir = data_dir.display();
    format!(
        "the store in {dir}/db is damaged. Run `stratad check --data-dir {dir}` to see what is wrong, \
         and `stratad check --data-dir {dir} --repair` to move it aside and rebuild it from the run \
         folders in {dir}/runs (it moves files aside rather than deleting them, and reports the epoch records it has to drop)"
    )
}

impl Store {
    /// Opens (or creates) the store of the data dir `dir`, in `dir/db`.
    pub fn open(dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(|e| {
            StrataError::Storage(format!("cannot create data dir {}: {e}", dir.display()))
        })?;
        Store::open_at(&dir.join("db"), dir)
    }

    /// Opens (or creates) the sled store in `db_dir`; `data_dir` is what error messages name (the
    /// store may be a copy being checked).
    pub fn open_at(db_dir: &Path, data_dir: &Path) -> Result<Self> {
        Store::try_open_at(db_dir, data_dir).map_err(|err| err.describe(data_dir))
    }

    /// [`Store::open_at`], saying whether a failure is damage.
    pub fn try_open_at(db_dir: &Path, data_dir: &Path) -> std::result::Result<Self, OpenError> {
        let damaged = |e: &dyn fmt::Display| OpenError::Damaged(e.to_string());
        // Before sled touches anything: a newer format is refused with the store as it was.
        let format = match std::fs::read_to_string(db_dir.join(record::FORMAT_FILE)) {
            Ok(text) => Some(text.trim().parse::<u32>().map_err(|_| {
                OpenError::Damaged(format!(
                    "its format file {} does not hold a format number",
                    record::FORMAT_FILE
                ))
            })?),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => None,
            Err(err) => {
                return Err(OpenError::Io(format!(
                    "cannot read {}: {err}",
                    db_dir.join(record::FORMAT_FILE).display()
                )))
            }
        };
        if let Some(format) = format.filter(|&f| f > record::FORMAT) {
            return Err(OpenError::NewerFormat(format));
        }
        // sled 0.34 may panic on some damage instead of returning an error: a damaged store must
        // be reported, not abort the process.
        let opened = std::panic::catch_unwind(|| sled::Config::new().path(db_dir).open())
            .map_err(|panic| damaged(&panic_message(panic.as_ref())))?;
        let db = opened.map_err(|e| match e {
            // sled reports a held lock as an I/O error whose text says so.
            sled::Error::Io(io) if io.to_string().contains("could not acquire lock") => {
                OpenError::Locked
            }
            sled::Error::Io(io) => OpenError::Io(format!(
                "cannot open the store in {}: {io}",
                data_dir.display()
            )),
            e => damaged(&e),
        })?;
        let runs = db.open_tree("runs").map_err(|e| damaged(&e))?;
        // A store from before format numbers is format 1.
        let format = format.unwrap_or(1);
        let epochs = db.open_tree("epochs").map_err(|e| damaged(&e))?;
        let shown_ids = db.open_tree("shown_ids").map_err(|e| damaged(&e))?;
        db.flush().map_err(|e| damaged(&e))?;
        let files = StoreFiles::open(db_dir, data_dir).map_err(|e| {
            OpenError::Io(format!(
                "cannot sync the store in {}: {e}",
                data_dir.display()
            ))
        })?;
        // The index of shown ids is derived from the run keys: make sure it has every run (a
        // store from before it, or one whose index lost an entry).
        for key in runs.iter().keys() {
            let key = key.map_err(|e| damaged(&e))?;
            let Ok(id) = RunId::from_key(&key) else {
                continue;
            };
            if id.is_short()
                && !shown_ids
                    .contains_key(scramble(id.0).to_be_bytes())
                    .map_err(|e| damaged(&e))?
            {
                shown_ids
                    .insert(scramble(id.0).to_be_bytes(), &id.key())
                    .map_err(|e| damaged(&e))?;
            }
        }
        let last_id = match runs.last().map_err(|e| damaged(&e))? {
            Some((key, _)) => RunId::from_key(&key).map_err(|e| damaged(&e))?.0,
            None => 0,
        };
        let store = Store {
            db,
            files,
            runs,
            epochs,
            shown_ids,
            db_dir: db_dir.to_path_buf(),
            last_id: AtomicU64::new(last_id),
            visible: RwLock::new(()),
            sync_failed: AtomicBool::new(false),
        };
        store.upgrade_from(format).map_err(|e| {
            OpenError::Io(format!(
                "cannot upgrade the store in {}: {e}",
                data_dir.display()
            ))
        })?;
        Ok(store)
    }

    /// Rewrites the run records of a store in an older record format in this one's, then records
    /// the format (see [`upgrade`]). Epoch records need no change.
    fn upgrade_from(&self, format: u32) -> Result<()> {
        if format == record::FORMAT {
            return Ok(());
        }
        let mut upgraded = 0;
        for entry in self.runs.iter() {
            let (key, bytes) = entry?;
            // A record that does not decode is left for the integrity check to report.
            let Ok(mut stored) = decode_stored_run(&bytes) else {
                continue;
            };
            if stored.facts.is_some() {
                continue;
            }
            let Ok(id) = RunId::from_key(&key) else {
                continue;
            };
            let epochs = self.read_epochs(id, 1).unwrap_or_default();
            let facts = upgrade::legacy_facts(&stored, &epochs);
            stored.facts = Some(record::StoredFacts::from(&facts));
            self.runs
                .insert(key, prost::Message::encode_to_vec(&stored))?;
            upgraded += 1;
        }
        // The records first, durably; the format number last (a stop in between upgrades again).
        self.flush()?;
        crate::durable::replace_file(
            &self.db_dir,
            record::FORMAT_FILE,
            format!("{}\n", record::FORMAT).as_bytes(),
        )
        .map_err(|e| StrataError::Storage(format!("cannot write the store's format: {e}")))?;
        if upgraded > 0 {
            tracing::info!(
                runs = upgraded,
                from = format,
                to = record::FORMAT,
                "upgraded the store's run records"
            );
        }
        Ok(())
    }

    /// Reads every record once and says which decode; fails only if the store cannot be read.
    pub fn scan(&self) -> Result<StoreScan> {
        let mut scan = StoreScan::default();
        for entry in self.runs.iter() {
            let (key, bytes) = entry?;
            let Ok(bytes8) = <[u8; 8]>::try_from(key.as_ref()) else {
                scan.bad_keys.push(("runs", key.to_vec()));
                continue;
            };
            let id = RunId(u64::from_be_bytes(bytes8));
            let checked = match decode_stored_run(bytes.as_ref()) {
                Ok(run) if run.id == id.to_string() => Ok(()),
                Ok(run) => Err(format!("it holds run '{}'", crate::spec::shown(&run.id))),
                Err(err) => Err(err),
            };
            scan.runs.insert(id, checked);
        }
        for entry in self.epochs.iter() {
            let (key, bytes) = entry?;
            if key.len() != 12 {
                scan.bad_keys.push(("epochs", key.to_vec()));
                continue;
            }
            let id = RunId::from_key(&key)?;
            let epoch = u32::from_be_bytes([key[8], key[9], key[10], key[11]]);
            let run = scan.epochs.entry(id).or_default();
            match decode_epoch(bytes.as_ref()) {
                Ok(record) if record.epoch == epoch => run.readable.push(epoch),
                Ok(record) => run
                    .unreadable
                    .push((epoch, format!("it holds epoch {}", record.epoch))),
                Err(err) => run.unreadable.push((epoch, err)),
            }
        }
        Ok(scan)
    }

    /// Removes the epoch records of `run` after `epoch`, durably (a resume that falls back to an
    /// older checkpoint retrains them).
    pub fn drop_epochs_after(&self, run: RunId, epoch: u32) -> Result<()> {
        self.write_durably(|| {
            let mut batch = sled::Batch::default();
            for key in self
                .epochs
                .range(epoch_key(run, epoch.saturating_add(1))..=epoch_key(run, u32::MAX))
                .keys()
            {
                batch.remove(key?);
            }
            Ok(self.epochs.apply_batch(batch)?)
        })
    }

    /// Removes records by key, durably: records that do not decode, keys of the wrong length.
    pub fn remove_raw(&self, tree: &str, keys: &[Vec<u8>]) -> Result<()> {
        let tree = match tree {
            "runs" => &self.runs,
            _ => &self.epochs,
        };
        self.write_durably(|| {
            for key in keys {
                tree.remove(key.as_slice())?;
            }
            Ok(())
        })
    }

    /// A fresh id, greater than every id handed out before (also across restarts).
    pub fn next_run_id(&self) -> RunId {
        let from_clock = ((now_ms() as u64) << 16) | SHORT_ID_FLAG;
        let mut last = self.last_id.load(Ordering::Relaxed);
        loop {
            let next = from_clock.max(last + 1) | SHORT_ID_FLAG;
            match self
                .last_id
                .compare_exchange(last, next, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return RunId(next),
                Err(actual) => last = actual,
            }
        }
    }

    /// Writes a run record, durably.
    pub fn put_run(&self, run: &RunRecord) -> Result<()> {
        let id = run.id;
        self.write_durably(|| {
            self.runs.insert(id.key(), record::encode_run(run))?;
            if id.is_short() {
                self.shown_ids
                    .insert(scramble(id.0).to_be_bytes(), &id.key())?;
            }
            Ok(())
        })
    }

    pub fn get_run(&self, id: RunId) -> Result<Option<RunRecord>> {
        let _visible = self.readable()?;
        let Some(bytes) = self.runs.get(id.key())? else {
            return Ok(None);
        };
        decode_run(&bytes).map(Some)
    }

    /// A run's record and the number of its last stored epoch, read together.
    pub fn get_run_with_epochs_done(&self, id: RunId) -> Result<Option<(RunRecord, u32)>> {
        let _visible = self.readable()?;
        let Some(bytes) = self.runs.get(id.key())? else {
            return Ok(None);
        };
        Ok(Some((decode_run(&bytes)?, self.last_epoch(id)?)))
    }

    /// Whether the store has a record under this run's key (readable or not).
    pub fn has_run(&self, id: RunId) -> Result<bool> {
        let _visible = self.readable()?;
        Ok(self.runs.contains_key(id.key())?)
    }

    /// Runs `write` (sled inserts and removes) and makes it durable before any reader can see it.
    fn write_durably<T>(&self, write: impl FnOnce() -> Result<T>) -> Result<T> {
        let _exclusive = self.visible.write().unwrap_or_else(|p| p.into_inner());
        self.check_usable()?;
        let written = write()?;
        if let Err(err) = self.flush() {
            self.sync_failed.store(true, Ordering::SeqCst);
            tracing::error!(error = %err, "a write could not be made durable; the store serves nothing more until stratad restarts");
            return Err(err);
        }
        Ok(written)
    }

    /// Shares the store with other readers, never with a write that is not on the disk yet.
    fn readable(&self) -> Result<RwLockReadGuard<'_, ()>> {
        let guard = self.visible.read().unwrap_or_else(|p| p.into_inner());
        self.check_usable()?;
        Ok(guard)
    }

    fn check_usable(&self) -> Result<()> {
        if self.sync_failed.load(Ordering::SeqCst) {
            return Err(StrataError::Storage(
                "an earlier write could not be synced to the disk (is it full?); restart stratad once the disk is fixed — everything acknowledged before is on the disk".into(),
            ));
        }
        Ok(())
    }

    /// Reads a run, changes it and writes it back, durably.
    pub fn update_run(&self, id: RunId, change: impl FnOnce(&mut RunRecord)) -> Result<RunRecord> {
        let mut run = self
            .get_run(id)?
            .ok_or_else(|| StrataError::RunNotFound(id.to_string()))?;
        change(&mut run);
        self.put_run(&run)?;
        Ok(run)
    }

    /// Finds the one run whose id starts with `prefix` (case-insensitive): a short id's prefix,
    /// or an older id's hex digits.
    pub fn resolve(&self, prefix: &str) -> Result<RunId> {
        let prefix = prefix.trim().to_ascii_lowercase();
        if prefix.is_empty() {
            return Err(StrataError::invalid(
                "run",
                "a run id (or a unique prefix of one) is required",
            ));
        }
        let as_short = prefix.len() <= SHORT_ID_CHARS && from_base32(&prefix).is_some();
        let as_hex =
            prefix.len() <= RunId::HEX_DIGITS && prefix.bytes().all(|b| b.is_ascii_hexdigit());
        if !as_short && !as_hex {
            return Err(StrataError::invalid(
                "run",
                format!(
                    "{} is not a run id: ids are 13 characters of 0-9 and a-z (no i, l, o, u), or 16 hex digits for older runs",
                    crate::spec::shown(&prefix)
                ),
            ));
        }
        let _visible = self.readable()?;
        // A whole id names its run directly, index or not.
        if let Ok(id) = prefix.parse::<RunId>() {
            if self.runs.contains_key(id.key())? {
                return Ok(id);
            }
        }
        let mut found: Vec<RunId> = Vec::new();
        if as_short {
            let padded = |fill: char| {
                let text: String = prefix
                    .chars()
                    .chain(std::iter::repeat(fill))
                    .take(SHORT_ID_CHARS)
                    .collect();
                from_base32(&text)
            };
            if let Some(low) = padded('0') {
                let high = padded('z').unwrap_or(u64::MAX);
                for entry in self
                    .shown_ids
                    .range(low.to_be_bytes()..=high.to_be_bytes())
                    .values()
                    .take(2)
                {
                    found.push(RunId::from_key(&entry?)?);
                }
            }
        }
        if as_hex && found.len() < 2 {
            let low = u64::from_str_radix(&format!("{prefix:0<16}"), 16).unwrap_or(0);
            let high = u64::from_str_radix(&format!("{prefix:f<16}"), 16)
                .unwrap_or(u64::MAX)
                .min(SHORT_ID_FLAG - 1);
            if low <= high {
                for key in self
                    .runs
                    .range(low.to_be_bytes()..=high.to_be_bytes())
                    .keys()
                    .take(2)
                {
                    found.push(RunId::from_key(&key?)?);
                }
            }
        }
        match found[..] {
            [] => Err(StrataError::RunNotFound(prefix)),
            [only] => Ok(only),
            [first, second, ..] => Err(StrataError::AmbiguousRun {
                prefix,
                examples: format!("{first}, {second}, ..."),
            }),
        }
    }

    /// Every run with its number of stored epochs, newest first.
    pub fn runs_newest_first(&self) -> impl Iterator<Item = Result<(RunRecord, u32)>> + '_ {
        let mut entries = self.runs.iter().rev();
        std::iter::from_fn(move || {
            let _visible = match self.readable() {
                Ok(guard) => guard,
                Err(err) => return Some(Err(err)),
            };
            let entry = entries.next()?;
            Some(entry.map_err(StrataError::from).and_then(|(key, bytes)| {
                Ok((
                    decode_run(&bytes)?,
                    self.last_epoch(RunId::from_key(&key)?)?,
                ))
            }))
        })
    }

    /// Writes one epoch record, durably: after this returns the epoch is on the disk and may be
    /// streamed.
    pub fn put_epoch(&self, run: RunId, record: &EpochMetrics) -> Result<()> {
        self.write_durably(|| {
            self.epochs
                .insert(epoch_key(run, record.epoch), record::encode_epoch(record))?;
            Ok(())
        })
    }

    /// Writes several epoch records of one run, durably, with one sync for all of them (a batch
    /// logged at once costs one disk flush, not one per record).
    pub fn put_epochs(&self, run: RunId, records: &[EpochMetrics]) -> Result<()> {
        let mut batch = sled::Batch::default();
        for record in records {
            batch.insert(&epoch_key(run, record.epoch), record::encode_epoch(record));
        }
        self.write_durably(|| Ok(self.epochs.apply_batch(batch)?))
    }

    /// A run's epochs from `from_epoch` on, in order.
    pub fn epochs(&self, run: RunId, from_epoch: u32) -> Result<Vec<EpochMetrics>> {
        let _visible = self.readable()?;
        self.read_epochs(run, from_epoch)
    }

    /// [`Store::epochs`] for a caller that already holds the read guard.
    fn read_epochs(&self, run: RunId, from_epoch: u32) -> Result<Vec<EpochMetrics>> {
        self.epochs
            .range(epoch_key(run, from_epoch)..=epoch_key(run, u32::MAX))
            .values()
            .map(|bytes| {
                decode_epoch(bytes?.as_ref())
                    .map_err(|e| StrataError::Storage(format!("an epoch of run {run}: {e}")))
            })
            .collect()
    }

    /// The number of the last stored epoch (epochs are stored in order from 1), 0 if none.
    pub fn epochs_done(&self, run: RunId) -> Result<u32> {
        let _visible = self.readable()?;
        self.last_epoch(run)
    }

    /// [`Store::epochs_done`] for a caller that already holds the read guard.
    fn last_epoch(&self, run: RunId) -> Result<u32> {
        let last = self
            .epochs
            .range(epoch_key(run, 0)..=epoch_key(run, u32::MAX))
            .next_back();
        match last {
            Some(entry) => {
                let (key, _) = entry?;
                let epoch: [u8; 4] = key[8..12]
                    .try_into()
                    .map_err(|_| StrataError::Storage("corrupt epoch key".into()))?;
                Ok(u32::from_be_bytes(epoch))
            }
            None => Ok(0),
        }
    }

    /// Marks runs that a crash or a kill left `queued` or `running` as `interrupted` — or, when
    /// every planned epoch was stored, as they ended: after its last epoch's record a run only
    /// records its end (`completed`, or `diverged` if that epoch's validation loss was not
    /// finite), so a stop in between (or a store that lost that update) changes nothing else.
    /// Returns how many were marked.
    pub fn mark_unfinished_interrupted(&self) -> Result<usize> {
        let unfinished: Vec<(RunRecord, u32)> = self
            .runs_newest_first()
            .filter(|run| run.as_ref().map_or(true, |(run, _)| run.status.is_live()))
            .collect::<Result<_>>()?;
        for (mut run, done) in unfinished.iter().cloned() {
            let was = run.status.label();
            let planned = run.planned_epochs();
            let last = match done {
                done if planned > 0 && done >= planned => {
                    self.epochs(run.id, done)?.into_iter().next()
                }
                _ => None,
            };
            match last {
                Some(last) if last.val_loss.is_finite() => {
                    run.status = RunStatus::Completed;
                    run.reason = format!(
                        "stratad stopped after the run's last epoch ({}) was stored, before its end was recorded",
                        last.epoch
                    );
                }
                Some(last) => {
                    run.status = RunStatus::Diverged;
                    run.reason = format!(
                        "the validation loss became {} at epoch {} (recorded when stratad restarted)",
                        last.val_loss, last.epoch
                    );
                }
                None => {
                    run.status = RunStatus::Interrupted;
                    run.reason =
                        format!("stratad stopped while the run was {was}; resume it to continue");
                }
            }
            run.finished_at_ms = now_ms();
            self.put_run(&run)?;
        }
        Ok(unfinished.len())
    }

    /// Removes a run and all its epochs, durably. The run goes first: a crash in between leaves
    /// unreachable epochs, never a run with some of its epochs missing.
    pub fn delete_run(&self, run: RunId) -> Result<()> {
        self.write_durably(|| {
            self.runs.remove(run.key())?;
            self.shown_ids.remove(scramble(run.0).to_be_bytes())?;
            let mut batch = sled::Batch::default();
            for key in self
                .epochs
                .range(epoch_key(run, 0)..=epoch_key(run, u32::MAX))
                .keys()
            {
                batch.remove(key?);
            }
            Ok(self.epochs.apply_batch(batch)?)
        })
    }

    /// Makes every write so far durable: sled's flush puts it in the kernel, the sync on the disk.
    pub fn flush(&self) -> Result<()> {
        self.db.flush()?;
        self.files
            .sync()
            .map_err(|e| StrataError::Storage(format!("cannot sync the store to disk: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(store: &Store) -> RunRecord {
        RunRecord::example(store.next_run_id())
    }

    #[test]
    fn ids_increase_and_resolve_by_prefix() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let a = run(&store);
        let b = run(&store);
        let (ka, kb) = (a.id, b.id);
        assert!(ka < kb, "keys follow creation");
        let (a_id, b_id) = (a.id.to_string(), b.id.to_string());
        assert_eq!(a_id.len(), 13);
        store.put_run(&a).unwrap();
        store.put_run(&b).unwrap();
        assert_eq!(store.resolve(&a_id).unwrap(), ka);
        assert_eq!(store.resolve(&b_id.to_uppercase()).unwrap(), kb);
        // Ids made together share (almost) no prefix; the shortest unique one names each run.
        let shared = a_id
            .bytes()
            .zip(b_id.bytes())
            .take_while(|(x, y)| x == y)
            .count();
        assert_eq!(store.resolve(&a_id[..shared + 1]).unwrap(), ka);
        if shared > 0 {
            assert!(matches!(
                store.resolve(&a_id[..shared]),
                Err(StrataError::AmbiguousRun { .. })
            ));
        }
        assert!(matches!(
            store.resolve("il"),
            Err(StrataError::InvalidArgument { .. })
        ));
        let newest: Vec<RunId> = store.runs_newest_first().map(|r| r.unwrap().0.id).collect();
        assert_eq!(newest, vec![kb, ka]);
        // The index is derived: without its entry a whole id still resolves, and reopening the
        // store restores the entry, so prefixes work again.
        store
            .shown_ids
            .remove(scramble(ka.0).to_be_bytes())
            .unwrap();
        assert_eq!(store.resolve(&a_id).unwrap(), ka);
        assert!(store.resolve(&a_id[..shared + 1]).is_err());
        drop(store);
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.resolve(&a_id[..shared + 1]).unwrap(), ka);
        // Deleting a run forgets its short id.
        store.delete_run(kb).unwrap();
        assert!(matches!(
            store.resolve(&b_id),
            Err(StrataError::RunNotFound(_))
        ));
    }

    /// Runs from before short ids keep their hex ids: shown, parsed and found by prefix as before,
    /// and listed before every newer run.
    #[test]
    fn older_hex_ids_keep_working() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let old = RunId(0x01a2_2400_c834_0000);
        assert_eq!(old.to_string(), "01a22400c8340000");
        assert_eq!("01a22400c8340000".parse::<RunId>().unwrap(), old);
        store.put_run(&RunRecord::example(old)).unwrap();
        let new = run(&store);
        store.put_run(&new).unwrap();
        assert_eq!(store.resolve("01a22400").unwrap(), old);
        assert_eq!(store.resolve("01a22400c8340000").unwrap(), old);
        assert_eq!(old.created_at_ms(), 0x01a2_2400_c834);
        let newest: Vec<RunId> = store.runs_newest_first().map(|r| r.unwrap().0.id).collect();
        assert_eq!(newest, vec![new.id, old]);
        // A hex string with the short-id bit set is no id of either kind.
        assert!("81a22400c8340000".parse::<RunId>().is_err());
    }

    #[test]
    fn epochs_are_a_range_per_run_and_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = {
            let store = Store::open(dir.path()).unwrap();
            let (a, b) = (run(&store), run(&store));
            store.put_run(&a).unwrap();
            store.put_run(&b).unwrap();
            for epoch in 1..=3 {
                let record = EpochMetrics {
                    epoch,
                    train_loss: epoch as f64,
                    ..Default::default()
                };
                store.put_epoch(a.id, &record).unwrap();
            }
            store
                .put_epoch(
                    b.id,
                    &EpochMetrics {
                        epoch: 1,
                        ..Default::default()
                    },
                )
                .unwrap();
            (a, b)
        };
        let store = Store::open(dir.path()).unwrap();
        let ida = a.id;
        let epochs: Vec<u32> = store
            .epochs(ida, 2)
            .unwrap()
            .iter()
            .map(|e| e.epoch)
            .collect();
        assert_eq!(epochs, vec![2, 3]);
        assert_eq!(store.epochs_done(ida).unwrap(), 3);
        assert_eq!(store.epochs_done(b.id).unwrap(), 1);
        assert!(store.next_run_id() > b.id);
    }

    /// A store written by a newer stratad is refused, naming the formats, and left as it was.
    #[test]
    fn a_newer_format_is_refused_and_left_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let id = {
            let store = Store::open(dir.path()).unwrap();
            let run = run(&store);
            store.put_run(&run).unwrap();
            run.id
        };
        let files = |dir: &Path| -> Vec<(String, Vec<u8>)> {
            let mut all: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir.join("db"))
                .unwrap()
                .filter_map(|e| e.ok())
                .filter(|e| e.path().is_file())
                .map(|e| {
                    (
                        e.file_name().to_string_lossy().into_owned(),
                        std::fs::read(e.path()).unwrap(),
                    )
                })
                .collect();
            all.sort();
            all
        };
        std::fs::write(
            dir.path().join("db").join(record::FORMAT_FILE),
            format!("{}\n", record::FORMAT + 1),
        )
        .unwrap();
        let before = files(dir.path());
        let err = match Store::open(dir.path()) {
            Err(err) => err.to_string(),
            Ok(_) => panic!("a newer store opened"),
        };
        assert!(
            err.contains(&format!("record format {}", record::FORMAT + 1))
                && err.contains(&format!("reads formats up to {}", record::FORMAT))
                && err.contains("Nothing was changed"),
            "{err}"
        );
        assert!(before == files(dir.path()), "the store's files changed");
        // Back at this format it opens, with its run.
        std::fs::write(
            dir.path().join("db").join(record::FORMAT_FILE),
            format!("{}\n", record::FORMAT),
        )
        .unwrap();
        assert!(Store::open(dir.path())
            .unwrap()
            .get_run(id)
            .unwrap()
            .is_some());
    }
}
