//! Making writes survive power loss, not only a killed process.
//!
//! A write that has reached the kernel survives the death of the process that made it, but not a
//! power cut or a kernel crash: for that the file's data must be on the disk, which only
//! `fsync`/`fdatasync` promise (they also flush the drive's volatile write cache). A file that was
//! created or renamed also needs its folder synced, or the name that reaches it may be lost.
//!
//! sled 0.34's `flush()` writes its log with `pwrite` and then `sync_file_range`, which flushes
//! neither the drive's cache nor the file's metadata (spacejam/sled#1452), and writes values too
//! large for its log into `blobs/` files that it never syncs. [`StoreFiles::sync`] closes that gap
//! after each flush: `fdatasync` of the log, `fsync` of every blob file not yet synced, then of
//! the folders whose entries may have changed.

use std::{
    collections::HashSet,
    ffi::OsString,
    fs::File,
    io,
    path::{Path, PathBuf},
    sync::Mutex,
};

/// `fsync` of a folder, so that names created, renamed or removed in it are durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Creates `dir` and any missing folders above it, and makes their names durable: every folder
/// whose entry was just added to its parent gets that parent synced (a synced file in a folder
/// whose own entry was lost would be lost with it). Nothing to do when `dir` exists.
pub fn create_dir_all(dir: &Path) -> io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    let existing = dir.ancestors().find(|a| a.is_dir()).map(Path::to_path_buf);
    std::fs::create_dir_all(dir)?;
    for created in dir
        .ancestors()
        .take_while(|a| Some(*a) != existing.as_deref())
    {
        if let Some(parent) = created.parent().filter(|p| !p.as_os_str().is_empty()) {
            sync_dir(parent)?;
        }
    }
    Ok(())
}

/// Replaces `dir/name` with `bytes` so that a crash leaves the old file or the new one, never
/// half of one, and the new one survives a power cut once this returns: written to
/// `dir/name.tmp`, synced, renamed over `name`, and `dir` synced.
pub fn replace_file(dir: &Path, name: &str, bytes: &[u8]) -> io::Result<()> {
    let tmp = dir.join(format!("{name}.tmp"));
    std::fs::write(&tmp, bytes)?;
    sync_file(&tmp)?;
    std::fs::rename(&tmp, dir.join(name))?;
    sync_dir(dir)
}

/// `fsync` of a file's data and metadata.
pub fn sync_file(path: &Path) -> io::Result<()> {
    File::open(path)?.sync_all()
}

/// The files of a sled 0.34 store, held open so that syncing them costs no `open` per write.
pub struct StoreFiles {
    /// `db/db`: sled's log, where every record lives unless it is large.
    log: File,
    /// `db/`: sled renames its snapshots here.
    dir: File,
    /// `db/blobs/`: one file per value too large for the log.
    blobs: PathBuf,
    /// Blob files already synced (sled never rewrites a blob; it writes a new one).
    synced_blobs: Mutex<HashSet<OsString>>,
}

impl StoreFiles {
    /// Opens the files of the sled store in `db_dir` (after sled has created them) and syncs the
    /// folders that sled may just have created, up to `data_dir`.
    pub fn open(db_dir: &Path, data_dir: &Path) -> io::Result<Self> {
        let files = StoreFiles {
            log: File::open(db_dir.join("db"))?,
            dir: File::open(db_dir)?,
            blobs: db_dir.join("blobs"),
            synced_blobs: Mutex::new(HashSet::new()),
        };
        files.sync()?;
        sync_dir(data_dir)?;
        if let Some(parent) = data_dir.parent().filter(|p| !p.as_os_str().is_empty()) {
            sync_dir(parent)?;
        }
        Ok(files)
    }

    /// Makes everything sled has written so far durable. Call after `sled::Db::flush`.
    pub fn sync(&self) -> io::Result<()> {
        // Blobs first: a durable log entry must never point at a blob a power cut could lose.
        self.sync_new_blobs()?;
        self.log.sync_data()?;
        self.dir.sync_all()
    }

    fn sync_new_blobs(&self) -> io::Result<()> {
        let entries = match std::fs::read_dir(&self.blobs) {
            Ok(entries) => entries,
            Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(err) => return Err(err),
        };
        let mut synced = self.synced_blobs.lock().unwrap_or_else(|p| p.into_inner());
        let mut present = HashSet::new();
        let mut any_new = false;
        for entry in entries {
            let name = entry?.file_name();
            if !synced.contains(&name) {
                match sync_file(&self.blobs.join(&name)) {
                    Ok(()) => any_new = true,
                    // sled removed it meanwhile (garbage collection): nothing to keep.
                    Err(err) if err.kind() == io::ErrorKind::NotFound => continue,
                    Err(err) => return Err(err),
                }
            }
            present.insert(name);
        }
        // Forget blobs sled has deleted, so the set stays as small as the folder.
        *synced = present;
        if any_new {
            sync_dir(&self.blobs)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_nested_folders_and_leaves_existing_ones_alone() {
        let tmp = tempfile::tempdir().unwrap();
        let nested = tmp.path().join("data/runs/abc");
        create_dir_all(&nested).unwrap();
        assert!(nested.is_dir());
        create_dir_all(&nested).unwrap();
        std::fs::write(nested.join("f"), b"x").unwrap();
        create_dir_all(&nested).unwrap();
        assert!(nested.join("f").exists());
    }

    #[test]
    fn syncs_a_store_with_and_without_blobs() {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("data");
        let db_dir = data.join("db");
        let db = sled::Config::new().path(&db_dir).open().unwrap();
        let files = StoreFiles::open(&db_dir, &data).unwrap();
        db.insert(b"small", vec![1u8; 16]).unwrap();
        db.flush().unwrap();
        files.sync().unwrap();
        // A value over sled's blob threshold (segment size / 4) goes to its own file.
        db.insert(b"large", vec![2u8; 300 * 1024]).unwrap();
        db.flush().unwrap();
        files.sync().unwrap();
        let blobs = std::fs::read_dir(db_dir.join("blobs")).unwrap().count();
        assert!(blobs >= 1, "the large value was written as a blob");
        assert_eq!(files.synced_blobs.lock().unwrap().len(), blobs);
    }
}
