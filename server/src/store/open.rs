//! Opening the store: its format checked before sled touches it, sled's damage told apart from a
//! held lock or a refusing disk, the index of shown ids completed, an older format upgraded.

use std::{
    fmt,
    path::Path,
    sync::{
        atomic::{AtomicBool, AtomicU64},
        RwLock,
    },
};

use super::{
    record::{self, decode_stored_run},
    upgrade, Store,
};
use crate::{
    domain::{scramble, RunId, RunIdTag},
    durable::StoreFiles,
    error::{Result, StrataError},
};

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
    /// The format file beside sled's does not hold a format number: not damage to the records,
    /// and nothing to move aside for.
    BadFormatFile(String),
}

impl OpenError {
    /// What to tell the operator about a store that did not open.
    pub fn describe(self, data_dir: &Path) -> StrataError {
        match self {
            OpenError::Locked => StrataError::storage(format!(
                "another stratad is using the data dir {}; stop it or pick another --data-dir",
                data_dir.display()
            )),
            OpenError::Io(message) => StrataError::storage(message),
            OpenError::Damaged(problem) => StrataError::DataDamaged(format!(
                "cannot open the store in {}: {problem}; {}",
                data_dir.display(),
                damaged_store_advice(data_dir)
            )),
            OpenError::BadFormatFile(file) => StrataError::storage(format!(
                "the store's format file {file} does not hold a format number. Nothing was changed: write the record format the store was written in into it ({} for this stratad), or remove the file if the store predates format numbers",
                record::FORMAT
            )),
            OpenError::NewerFormat(format) => StrataError::storage(format!(
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

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "sled panicked".into())
}

/// sled's error (or panic) when it opened or read the store: damage.
fn damaged(e: &dyn fmt::Display) -> OpenError {
    OpenError::Damaged(e.to_string())
}

impl Store {
    /// Opens (or creates) the store of the data dir `dir`, in `dir/db`.
    pub fn open(dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(|e| {
            StrataError::storage_from(format!("cannot create data dir {}", dir.display()), e)
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
        // Before sled touches anything: a newer format is refused with the store as it was.
        let format = read_format(db_dir)?;
        if let Some(format) = format.filter(|&f| f > record::FORMAT) {
            return Err(OpenError::NewerFormat(format));
        }
        let db = open_sled(db_dir, data_dir)?;
        let runs = db.open_tree("runs").map_err(|e| damaged(&e))?;
        let epochs = db.open_tree("epochs").map_err(|e| damaged(&e))?;
        let shown_ids = db.open_tree("shown_ids").map_err(|e| damaged(&e))?;
        let run_id_tag = run_id_tag(&db)?;
        db.flush().map_err(|e| damaged(&e))?;
        let files = StoreFiles::open(db_dir, data_dir).map_err(|e| {
            OpenError::Io(format!(
                "cannot sync the store in {}: {e}",
                data_dir.display()
            ))
        })?;
        index_shown_ids(&runs, &shown_ids)?;
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
            run_id_tag,
            visible: RwLock::new(()),
            sync_failed: AtomicBool::new(false),
        };
        // A store from before format numbers is format 1.
        store.upgrade_from(format.unwrap_or(1), data_dir)?;
        Ok(store)
    }

    /// Rewrites the run records of a store in an older record format in this one's, then records
    /// the format (see [`upgrade`]). Epoch records need no change. Every start also brings up to
    /// date any run record without facts (one an older stratad wrote into this store since).
    fn upgrade_from(&self, format: u32, data_dir: &Path) -> std::result::Result<(), OpenError> {
        let failed = |e: StrataError| {
            OpenError::Io(format!(
                "cannot upgrade the store in {}: {e}",
                data_dir.display()
            ))
        };
        let mut upgraded = 0;
        for entry in self.runs.iter() {
            // sled meeting damage while reading is damage, which `check --repair` can act on.
            let (key, bytes) = entry.map_err(|e| damaged(&e))?;
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
                .insert(key, prost::Message::encode_to_vec(&stored))
                .map_err(|e| damaged(&e))?;
            upgraded += 1;
        }
        if upgraded == 0 && format == record::FORMAT {
            return Ok(());
        }
        // The records first, durably; the format number last (a stop in between upgrades again).
        self.flush().map_err(failed)?;
        crate::durable::replace_file(
            &self.db_dir,
            record::FORMAT_FILE,
            format!("{}\n", record::FORMAT).as_bytes(),
        )
        .map_err(|e| {
            failed(StrataError::storage_from(
                "cannot write the store's format",
                e,
            ))
        })?;
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
}

/// The record format named in the format file beside sled's, `None` when there is none.
fn read_format(db_dir: &Path) -> std::result::Result<Option<u32>, OpenError> {
    match std::fs::read_to_string(db_dir.join(record::FORMAT_FILE)) {
        Ok(text) => Ok(Some(text.trim().parse::<u32>().map_err(|_| {
            OpenError::BadFormatFile(db_dir.join(record::FORMAT_FILE).display().to_string())
        })?)),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(err) => Err(OpenError::Io(format!(
            "cannot read {}: {err}",
            db_dir.join(record::FORMAT_FILE).display()
        ))),
    }
}

/// What sled may keep of the store in memory (its default is 1 GiB): reading a long run once
/// filled it and the daemon kept it for good. Enough for every query's working set measured in
/// the bench (compare of 100 runs × 1,000 epochs, a list of 10,000 runs); the kernel's page
/// cache keeps the rest close.
const CACHE_BYTES: u64 = 128 * 1024 * 1024;

/// sled's database in `db_dir`, its failure told apart: a held lock, a refusing disk, damage.
fn open_sled(db_dir: &Path, data_dir: &Path) -> std::result::Result<sled::Db, OpenError> {
    // sled 0.34 may panic on some damage instead of returning an error: a damaged store must
    // be reported, not abort the process.
    let opened = std::panic::catch_unwind(|| {
        sled::Config::new()
            .path(db_dir)
            .cache_capacity(CACHE_BYTES)
            .open()
    })
    .map_err(|panic| damaged(&panic_message(panic.as_ref())))?;
    opened.map_err(|e| match e {
        // sled reports a held lock as an I/O error whose text says so.
        sled::Error::Io(io) if io.to_string().contains("could not acquire lock") => {
            OpenError::Locked
        }
        sled::Error::Io(io) => OpenError::Io(format!(
            "cannot open the store in {}: {io}",
            data_dir.display()
        )),
        e => damaged(&e),
    })
}

/// The index of shown ids is derived from the run keys: makes sure it has every run (a store from
/// before it, or one whose index lost an entry).
fn index_shown_ids(
    runs: &sled::Tree,
    shown_ids: &sled::Tree,
) -> std::result::Result<(), OpenError> {
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
    Ok(())
}

/// Key, in the `meta` tree, of the store's [`RunIdTag`] (2 bytes, big-endian).
const RUN_ID_TAG_KEY: &[u8] = b"run_id_tag";

/// The store's run id tag: read back, or drawn at random and kept on its first open (the flush
/// after the trees are opened makes it durable before any id is made with it).
fn run_id_tag(db: &sled::Db) -> std::result::Result<RunIdTag, OpenError> {
    let meta = db.open_tree("meta").map_err(|e| damaged(&e))?;
    if let Some(bytes) = meta.get(RUN_ID_TAG_KEY).map_err(|e| damaged(&e))? {
        let bytes: [u8; 2] = bytes
            .as_ref()
            .try_into()
            .map_err(|_| damaged(&"the run id tag is not 2 bytes"))?;
        return Ok(RunIdTag::from_random(u64::from(u16::from_be_bytes(bytes))));
    }
    // std seeds every RandomState from the OS's random source: no extra dependency for 12 bits.
    use std::hash::{BuildHasher, Hasher};
    let random = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    let tag = RunIdTag::from_random(random);
    meta.insert(RUN_ID_TAG_KEY, &tag.value().to_be_bytes())
        .map_err(|e| damaged(&e))?;
    // Durable before any id carries it: a crash must not let the next start draw another.
    meta.flush()
        .map_err(|e| OpenError::Io(format!("cannot write the store's run id tag: {e}")))?;
    Ok(tag)
}
