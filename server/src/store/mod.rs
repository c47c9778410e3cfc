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
mod epochs;
mod keys;
mod open;
mod rebuild;
pub mod record;
mod resolve;
pub mod run_copy;
mod runs;
mod scan;
pub mod step_log;
pub mod upgrade;

use std::{
    path::PathBuf,
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        RwLock, RwLockReadGuard,
    },
    time::{SystemTime, UNIX_EPOCH},
};

pub(crate) use keys::epoch_key;
pub use open::{damaged_store_advice, OpenError};
pub use scan::{EpochScan, ScannedRun, StoreScan};

use crate::{
    domain::RunIdTag,
    durable::StoreFiles,
    error::{Result, StrataError},
};

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
    db_dir: PathBuf,
    last_id: AtomicU64,
    /// The low bits of every run id this store hands out, so ids differ across daemons.
    run_id_tag: RunIdTag,
    /// Writes hold it exclusively from their insert until it is on the disk; reads share it. sled
    /// shows an insert to readers at once, before any flush: without this, a watcher reading
    /// history (or any query) could stream an epoch that a power cut would still lose.
    visible: RwLock<()>,
    /// Set when a write could not be synced: its insert may be in sled's memory (and on the disk
    /// by a later flush) though its caller was told it failed, so from then on the store serves
    /// nothing until stratad restarts and reads what is really on the disk.
    sync_failed: AtomicBool,
}

impl Store {
    /// The data dir the store is in (tests write run folders beside it).
    #[cfg(test)]
    pub(crate) fn data_dir(&self) -> &std::path::Path {
        self.db_dir.parent().unwrap_or(&self.db_dir)
    }

    /// Writes a run record's bytes as they are (tests write records an older stratad wrote).
    #[cfg(test)]
    pub(crate) fn put_raw_run(&self, id: crate::domain::RunId, bytes: Vec<u8>) {
        self.runs.insert(id.key(), bytes).unwrap();
        self.flush().unwrap();
    }
}

/// Durability: what every write goes through, and what every read checks.
impl Store {
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
            return Err(StrataError::storage(
                "an earlier write could not be synced to the disk (is it full?); restart stratad once the disk is fixed — everything acknowledged before is on the disk",
            ));
        }
        Ok(())
    }

    /// Makes every write so far durable: sled's flush puts it in the kernel, the sync on the disk.
    pub fn flush(&self) -> Result<()> {
        self.db.flush()?;
        self.files
            .sync()
            .map_err(|e| StrataError::storage_from("cannot sync the store to disk", e))
    }
}

#[cfg(test)]
mod tests;
