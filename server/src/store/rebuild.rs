//! Copying what a store holds into a fresh one: what `stratad check --repair` does before it
//! writes to a store that lost records.
//!
//! Why a repair must not write into such a store: sled's recovery replays its log from the last
//! snapshot and leaves out every segment whose header fails its checksum — the records in it are
//! lost — but the store it opens goes on appending into the segment the snapshot says is the
//! log's tail, even when that is the damaged one. Whatever a repair writes then lands behind the
//! same damaged header, where the next recovery leaves it out again: the repair says it restored
//! the records, and the next start finds them lost (the data dir in issue 30: byte 0 of `db/db`,
//! the header of the segment that was the tail). A fresh store has no damaged segment.

use std::path::Path;

use super::{record, Store};
use crate::{
    durable::StoreFiles,
    error::{Result, StrataError},
};

/// Records written to the fresh store per batch.
const COPY_BATCH_RECORDS: usize = 10_000;

impl Store {
    /// Writes every record of every tree (the runs, their epochs, the index of shown ids, the
    /// store's run id tag) into a new store in `to`, which must not exist, with the format file;
    /// flushed and synced. Returns how many records were copied.
    pub fn copy_into(&self, to: &Path, data_dir: &Path) -> Result<usize> {
        let _visible = self.readable()?;
        if to.exists() {
            return Err(StrataError::storage(format!(
                "{} exists already; move it away first",
                to.display()
            )));
        }
        let fresh = sled::Config::new().path(to).open()?;
        let mut copied = 0;
        for name in self.db.tree_names() {
            let from = self.db.open_tree(&name)?;
            let into = fresh.open_tree(&name)?;
            let mut batch = sled::Batch::default();
            let mut in_batch = 0;
            for entry in from.iter() {
                let (key, value) = entry?;
                batch.insert(key, value);
                copied += 1;
                in_batch += 1;
                // Bounded memory whatever the store's size.
                if in_batch == COPY_BATCH_RECORDS {
                    into.apply_batch(std::mem::take(&mut batch))?;
                    in_batch = 0;
                }
            }
            into.apply_batch(batch)?;
        }
        fresh.flush()?;
        let files = StoreFiles::open(to, data_dir)
            .map_err(|e| StrataError::storage_from(format!("cannot sync {}", to.display()), e))?;
        files
            .sync()
            .map_err(|e| StrataError::storage_from(format!("cannot sync {}", to.display()), e))?;
        crate::durable::replace_file(
            to,
            record::FORMAT_FILE,
            format!("{}\n", record::FORMAT).as_bytes(),
        )
        .map_err(|e| StrataError::storage_from("cannot write the store's format", e))?;
        Ok(copied)
    }
}
