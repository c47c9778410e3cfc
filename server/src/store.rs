//! The sled store: runs and their per-epoch records.
//!
//! Keys are ordered so the common reads are range scans: a run's key is its id as 8 big-endian
//! bytes (ids sort by creation time, so newest-first is a reverse scan), an epoch's key is the run
//! key followed by the epoch as 4 big-endian bytes (one run's epochs are one contiguous range).
//! Values are the protobuf encodings of `Run` and `EpochRecord`.
//!
//! Durability is explicit: every write here is flushed by sled and then synced to the disk
//! ([`crate::durable::StoreFiles`]: `fdatasync`/`fsync` of sled's files) before it returns, so
//! whatever a caller acknowledges or streams afterwards survives a killed process and a power cut.

use std::{
    collections::BTreeMap,
    fmt,
    path::Path,
    str::FromStr,
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        RwLock, RwLockReadGuard,
    },
    time::{SystemTime, UNIX_EPOCH},
};

use prost::Message;
use strata_proto::{EpochRecord, Run, RunStatus};

use crate::{
    durable::StoreFiles,
    error::{Result, StrataError},
};

/// A run's id. Its key (8 bytes, big-endian, in the store) is the creation time in unix
/// milliseconds, shifted left 16, plus a sequence number, with the top bit set: keys sort by
/// creation time, and every id made since short ids (see below) sorts after every older one.
///
/// Shown to people as 13 characters of Crockford base32 (`0-9a-z` without `i l o u`) of the key
/// *scrambled* by an invertible mix, so ids made a millisecond apart share no prefix and 4–5
/// characters name one run among thousands (time-ordered ids shared their first 10–12 digits).
/// Ids from before this change (top bit clear) are still shown, and found, as their 16 hex digits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RunId(pub u64);

/// The top bit of the key of every run with a short id.
const SHORT_ID_FLAG: u64 = 1 << 63;
const BASE32: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";
const SHORT_ID_CHARS: usize = 13;

/// splitmix64's finalizer: a bijection of u64 that spreads every input bit over all outputs.
fn scramble(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The inverse of `x ^ (x >> shift)`.
fn unshift_xor(y: u64, shift: u32) -> u64 {
    let mut x = y;
    let mut step = shift;
    while step < 64 {
        x = y ^ (x >> shift);
        step += shift;
    }
    y ^ (x >> shift)
}

/// The inverse of an odd multiplier mod 2^64 (Newton's iteration doubles the correct bits).
const fn inverse(a: u64) -> u64 {
    let mut x = a;
    let mut i = 0;
    while i < 6 {
        x = x.wrapping_mul(2u64.wrapping_sub(a.wrapping_mul(x)));
        i += 1;
    }
    x
}

fn unscramble(z: u64) -> u64 {
    let z = unshift_xor(z, 31);
    let z = unshift_xor(z.wrapping_mul(inverse(0x94d0_49bb_1331_11eb)), 27);
    unshift_xor(z.wrapping_mul(inverse(0xbf58_476d_1ce4_e5b9)), 30)
}

/// `value` as 13 base32 characters (65 bits: the first character holds the top 4).
fn to_base32(value: u64) -> String {
    (0..SHORT_ID_CHARS)
        .rev()
        .map(|i| char::from(BASE32[((u128::from(value) >> (5 * i)) & 31) as usize]))
        .collect()
}

/// A base32 string of at most 13 characters as a number (and whether it fits 64 bits).
fn from_base32(text: &str) -> Option<u64> {
    let mut value: u128 = 0;
    for b in text.bytes() {
        let digit = BASE32.iter().position(|&c| c == b)?;
        value = (value << 5) | digit as u128;
    }
    u64::try_from(value).ok()
}

impl RunId {
    const HEX_DIGITS: usize = 16;

    /// The run id a run folder is named by: exactly as ids are shown.
    pub fn from_folder_name(name: &str) -> Option<RunId> {
        let id: RunId = name.parse().ok()?;
        (id.to_string() == name).then_some(id)
    }

    /// When the run was created (ids carry their creation time).
    pub fn created_at_ms(self) -> i64 {
        ((self.0 & !SHORT_ID_FLAG) >> 16) as i64
    }

    fn is_short(self) -> bool {
        self.0 & SHORT_ID_FLAG != 0
    }

    fn key(self) -> [u8; 8] {
        self.0.to_be_bytes()
    }

    fn from_key(key: &[u8]) -> Result<Self> {
        let bytes: [u8; 8] = key
            .get(..8)
            .and_then(|k| k.try_into().ok())
            .ok_or_else(|| StrataError::Storage("corrupt run key".into()))?;
        Ok(RunId(u64::from_be_bytes(bytes)))
    }
}

impl fmt::Display for RunId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_short() {
            f.write_str(&to_base32(scramble(self.0)))
        } else {
            write!(f, "{:016x}", self.0)
        }
    }
}

impl FromStr for RunId {
    type Err = StrataError;

    fn from_str(s: &str) -> Result<Self> {
        let corrupt = || StrataError::Storage(format!("corrupt run id '{s}'"));
        match s.len() {
            Self::HEX_DIGITS => u64::from_str_radix(s, 16)
                .ok()
                .filter(|key| key & SHORT_ID_FLAG == 0)
                .map(RunId)
                .ok_or_else(corrupt),
            SHORT_ID_CHARS => from_base32(s)
                .map(|shown| RunId(unscramble(shown)))
                .filter(|id| id.is_short())
                .ok_or_else(corrupt),
            _ => Err(corrupt()),
        }
    }
}

fn epoch_key(run: RunId, epoch: u32) -> [u8; 12] {
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
        Store::try_open_at(db_dir, data_dir).map_err(|err| match err {
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
        })
    }

    /// [`Store::open_at`], saying whether a failure is damage.
    pub fn try_open_at(db_dir: &Path, data_dir: &Path) -> std::result::Result<Self, OpenError> {
        let damaged = |e: &dyn fmt::Display| OpenError::Damaged(e.to_string());
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
        Ok(Store {
            db,
            files,
            runs,
            epochs,
            shown_ids,
            last_id: AtomicU64::new(last_id),
            visible: RwLock::new(()),
            sync_failed: AtomicBool::new(false),
        })
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
            let checked = match Run::decode(bytes.as_ref()) {
                Ok(run) if run.id == id.to_string() => Ok(()),
                Ok(run) => Err(format!("it holds run '{}'", run.id)),
                Err(err) => Err(format!("it does not decode ({err})")),
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
            match EpochRecord::decode(bytes.as_ref()) {
                Ok(record) if record.epoch == epoch => run.readable.push(epoch),
                Ok(record) => run
                    .unreadable
                    .push((epoch, format!("it holds epoch {}", record.epoch))),
                Err(err) => run
                    .unreadable
                    .push((epoch, format!("it does not decode ({err})"))),
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
    pub fn put_run(&self, run: &Run) -> Result<()> {
        let id: RunId = run.id.parse()?;
        self.write_durably(|| {
            self.runs.insert(id.key(), run.encode_to_vec())?;
            if id.is_short() {
                self.shown_ids
                    .insert(scramble(id.0).to_be_bytes(), &id.key())?;
            }
            Ok(())
        })
    }

    pub fn get_run(&self, id: RunId) -> Result<Option<Run>> {
        let _visible = self.readable()?;
        let Some(bytes) = self.runs.get(id.key())? else {
            return Ok(None);
        };
        let mut run = Run::decode(bytes.as_ref())?;
        run.epochs_done = self.last_epoch(id)?;
        Ok(Some(run))
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
    pub fn update_run(&self, id: RunId, change: impl FnOnce(&mut Run)) -> Result<Run> {
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

    /// Every run, newest first.
    pub fn runs_newest_first(&self) -> impl Iterator<Item = Result<Run>> + '_ {
        let mut entries = self.runs.iter().rev();
        std::iter::from_fn(move || {
            let _visible = match self.readable() {
                Ok(guard) => guard,
                Err(err) => return Some(Err(err)),
            };
            let entry = entries.next()?;
            Some(entry.map_err(StrataError::from).and_then(|(key, bytes)| {
                let mut run = Run::decode(bytes.as_ref())?;
                run.epochs_done = self.last_epoch(RunId::from_key(&key)?)?;
                Ok(run)
            }))
        })
    }

    /// Writes one epoch record, durably: after this returns the epoch is on the disk and may be
    /// streamed.
    pub fn put_epoch(&self, run: RunId, record: &EpochRecord) -> Result<()> {
        self.write_durably(|| {
            self.epochs
                .insert(epoch_key(run, record.epoch), record.encode_to_vec())?;
            Ok(())
        })
    }

    /// Writes several epoch records of one run, durably, with one sync for all of them (a batch
    /// logged at once costs one disk flush, not one per record).
    pub fn put_epochs(&self, run: RunId, records: &[EpochRecord]) -> Result<()> {
        let mut batch = sled::Batch::default();
        for record in records {
            batch.insert(&epoch_key(run, record.epoch), record.encode_to_vec());
        }
        self.write_durably(|| Ok(self.epochs.apply_batch(batch)?))
    }

    /// A run's epochs from `from_epoch` on, in order.
    pub fn epochs(&self, run: RunId, from_epoch: u32) -> Result<Vec<EpochRecord>> {
        let _visible = self.readable()?;
        self.epochs
            .range(epoch_key(run, from_epoch)..=epoch_key(run, u32::MAX))
            .values()
            .map(|bytes| Ok(EpochRecord::decode(bytes?.as_ref())?))
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
        let unfinished: Vec<Run> = self
            .runs_newest_first()
            .filter(|run| {
                run.as_ref().map_or(true, |run| {
                    matches!(run.status(), RunStatus::Queued | RunStatus::Running)
                })
            })
            .collect::<Result<_>>()?;
        for mut run in unfinished.iter().cloned() {
            let was = run.status().label();
            let planned = run.config.as_ref().and_then(|c| c.epochs).unwrap_or(0);
            let last = match run.epochs_done {
                done if planned > 0 && done >= planned => {
                    self.epochs(run.id.parse()?, done)?.into_iter().next()
                }
                _ => None,
            };
            match last {
                Some(last) if last.val_loss.is_finite() => {
                    run.set_status(RunStatus::Completed);
                    run.reason = format!(
                        "stratad stopped after the run's last epoch ({}) was stored, before its end was recorded",
                        last.epoch
                    );
                }
                Some(last) => {
                    run.set_status(RunStatus::Diverged);
                    run.reason = format!(
                        "the validation loss became {} at epoch {} (recorded when stratad restarted)",
                        last.val_loss, last.epoch
                    );
                }
                None => {
                    run.set_status(RunStatus::Interrupted);
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

    fn run(store: &Store) -> Run {
        Run {
            id: store.next_run_id().to_string(),
            ..Default::default()
        }
    }

    #[test]
    fn ids_increase_and_resolve_by_prefix() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let a = run(&store);
        let b = run(&store);
        let (ka, kb): (RunId, RunId) = (a.id.parse().unwrap(), b.id.parse().unwrap());
        assert!(ka < kb, "keys follow creation");
        assert_eq!(a.id.len(), 13);
        store.put_run(&a).unwrap();
        store.put_run(&b).unwrap();
        assert_eq!(store.resolve(&a.id).unwrap().to_string(), a.id);
        assert_eq!(store.resolve(&b.id.to_uppercase()).unwrap(), kb);
        // Ids made together share (almost) no prefix; the shortest unique one names each run.
        let shared =
            a.id.bytes()
                .zip(b.id.bytes())
                .take_while(|(x, y)| x == y)
                .count();
        assert_eq!(store.resolve(&a.id[..shared + 1]).unwrap(), ka);
        if shared > 0 {
            assert!(matches!(
                store.resolve(&a.id[..shared]),
                Err(StrataError::AmbiguousRun { .. })
            ));
        }
        assert!(matches!(
            store.resolve("il"),
            Err(StrataError::InvalidArgument { .. })
        ));
        let newest: Vec<String> = store.runs_newest_first().map(|r| r.unwrap().id).collect();
        assert_eq!(newest, vec![b.id.clone(), a.id.clone()]);
        // The index is derived: without its entry a whole id still resolves, and reopening the
        // store restores the entry, so prefixes work again.
        store
            .shown_ids
            .remove(scramble(ka.0).to_be_bytes())
            .unwrap();
        assert_eq!(store.resolve(&a.id).unwrap(), ka);
        assert!(store.resolve(&a.id[..shared + 1]).is_err());
        drop(store);
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.resolve(&a.id[..shared + 1]).unwrap(), ka);
        // Deleting a run forgets its short id.
        store.delete_run(kb).unwrap();
        assert!(matches!(
            store.resolve(&b.id),
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
        store
            .put_run(&Run {
                id: old.to_string(),
                ..Default::default()
            })
            .unwrap();
        let new = run(&store);
        store.put_run(&new).unwrap();
        assert_eq!(store.resolve("01a22400").unwrap(), old);
        assert_eq!(store.resolve("01a22400c8340000").unwrap(), old);
        assert_eq!(old.created_at_ms(), 0x01a2_2400_c834);
        let newest: Vec<String> = store.runs_newest_first().map(|r| r.unwrap().id).collect();
        assert_eq!(newest, vec![new.id.clone(), old.to_string()]);
        // A hex string with the short-id bit set is no id of either kind.
        assert!("81a22400c8340000".parse::<RunId>().is_err());
    }

    /// Ids are a bijection of their keys, and among 5,000 runs made in one millisecond (the
    /// worst case: keys differing only in their sequence number) 6 characters name each one.
    #[test]
    fn short_ids_round_trip_and_differ_early() {
        let mut z = 0x1234_5678_9abc_def0_u64;
        for _ in 0..10_000 {
            z = scramble(z.wrapping_add(0x9e37_79b9_7f4a_7c15));
            assert_eq!(unscramble(scramble(z)), z);
            let id = RunId(z | SHORT_ID_FLAG);
            assert_eq!(id.to_string().parse::<RunId>().unwrap(), id);
        }
        let base = SHORT_ID_FLAG | (1_795_900_000_000u64 << 16);
        let shown: Vec<String> = (0..5000).map(|seq| RunId(base + seq).to_string()).collect();
        let prefixes: std::collections::HashSet<&str> = shown.iter().map(|s| &s[..6]).collect();
        assert_eq!(
            prefixes.len(),
            shown.len(),
            "6-character prefixes are unique"
        );
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
                let record = EpochRecord {
                    epoch,
                    train_loss: epoch as f64,
                    ..Default::default()
                };
                store.put_epoch(a.id.parse().unwrap(), &record).unwrap();
            }
            store
                .put_epoch(
                    b.id.parse().unwrap(),
                    &EpochRecord {
                        epoch: 1,
                        ..Default::default()
                    },
                )
                .unwrap();
            (a, b)
        };
        let store = Store::open(dir.path()).unwrap();
        let ida: RunId = a.id.parse().unwrap();
        let epochs: Vec<u32> = store
            .epochs(ida, 2)
            .unwrap()
            .iter()
            .map(|e| e.epoch)
            .collect();
        assert_eq!(epochs, vec![2, 3]);
        assert_eq!(store.epochs_done(ida).unwrap(), 3);
        assert_eq!(store.epochs_done(b.id.parse().unwrap()).unwrap(), 1);
        assert!(store.next_run_id() > b.id.parse::<RunId>().unwrap());
    }
}
