//! Per-epoch checkpoints as the daemon keeps them: the model's parameters and the optimizer's
//! state in one safetensors file per epoch, `DATA_DIR/runs/ID/epoch-NNNNNN.safetensors`. A
//! worker builds the file ([`file::encode`]) and sends it in chunks; the daemon writes them to a
//! temporary name ([`Receiving`]), verifies the whole file, syncs it, renames it into place and
//! syncs the folder, so a crash leaves either the previous checkpoint or the new one, never half of
//! one, and once [`Receiving::commit`] returns the checkpoint survives a power cut too (the epoch
//! record that points at it is written only then).
//!
//! Each file carries a checksum, verified whenever it is read, the run's record and its own epoch's
//! record; with the run's epoch log ([`crate::store::epoch_log`]) a run folder alone is enough to
//! rebuild the run ([`file`] says how and why).

pub mod file;

use std::{io::Write, path::Path};

pub use self::file::{epochs_in, path_for, Checksum};
use crate::durable;

/// Deletes all but the newest `keep` checkpoints.
pub fn prune(dir: &Path, keep: usize) {
    let epochs = epochs_in(dir);
    for &epoch in epochs.iter().take(epochs.len().saturating_sub(keep.max(1))) {
        if let Err(err) = std::fs::remove_file(path_for(dir, epoch)) {
            tracing::warn!(dir = %dir.display(), epoch, error = %err, "could not prune a checkpoint");
        }
    }
}

/// The checkpoint of one epoch arriving from a worker, chunk by chunk, written to the folder's
/// temporary name as it comes (the daemon never holds a whole checkpoint in memory).
pub struct Receiving {
    epoch: u32,
    file: std::fs::File,
    written: u64,
    /// Most bytes this run's checkpoints may have.
    limit: u64,
}

impl Receiving {
    /// Starts receiving `epoch`'s checkpoint into `dir` (created if missing), at most `limit`
    /// bytes; an earlier unfinished one is overwritten.
    pub fn start(dir: &Path, epoch: u32, limit: u64) -> Result<Self, String> {
        durable::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let tmp = dir.join(file::TMP_FILE);
        let file = std::fs::File::create(&tmp)
            .map_err(|e| format!("cannot write a checkpoint in {}: {e}", dir.display()))?;
        Ok(Receiving {
            epoch,
            file,
            written: 0,
            limit,
        })
    }

    /// The epoch whose checkpoint this is.
    pub fn epoch(&self) -> u32 {
        self.epoch
    }

    /// Bytes received so far.
    pub fn received(&self) -> u64 {
        self.written
    }

    /// Appends the next chunk.
    pub fn write(&mut self, chunk: &[u8]) -> Result<(), String> {
        let total = self.written.saturating_add(chunk.len() as u64);
        if total > self.limit {
            return Err(format!(
                "the checkpoint of epoch {} is larger than {} bytes, the most this run's parameters and optimizer state can take",
                self.epoch, self.limit
            ));
        }
        self.file
            .write_all(chunk)
            .map_err(|e| format!("cannot write a checkpoint: {e}"))?;
        self.written = total;
        Ok(())
    }

    /// Verifies the whole file (it parses, its checksum matches, it is `run_id`'s checkpoint of
    /// this epoch), syncs it, renames it into place and syncs the folder.
    pub fn commit(self, dir: &Path, run_id: &str) -> Result<(), String> {
        let Receiving { epoch, file, .. } = self;
        let tmp = dir.join(file::TMP_FILE);
        let failed =
            |e: std::io::Error| format!("cannot write a checkpoint in {}: {e}", dir.display());
        file.sync_all().map_err(failed)?;
        drop(file);
        file::verify_on_disk(&tmp, run_id, epoch).map_err(|why| {
            format!("the worker sent an unusable checkpoint of epoch {epoch}: {why}")
        })?;
        std::fs::rename(&tmp, path_for(dir, epoch)).map_err(failed)?;
        durable::sync_dir(dir).map_err(failed)
    }
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use super::{file::TensorData, *};

    #[test]
    fn a_received_checkpoint_lands_whole_or_not_at_all() {
        let dir = tempfile::tempdir().unwrap();
        let weights = [1u8; 16];
        let tensors = [TensorData {
            name: "model.head.weight".into(),
            dtype: safetensors::tensor::Dtype::F32,
            shape: vec![2, 2],
            data: Cow::Borrowed(&weights[..]),
        }];
        let bytes = file::encode("01a2000000000000", 3, &tensors).unwrap();
        let mut receiving = Receiving::start(dir.path(), 3, 1 << 20).unwrap();
        for chunk in bytes.chunks(7) {
            receiving.write(chunk).unwrap();
        }
        assert_eq!(receiving.received(), bytes.len() as u64);
        receiving.commit(dir.path(), "01a2000000000000").unwrap();
        assert_eq!(std::fs::read(path_for(dir.path(), 3)).unwrap(), bytes);

        // Another run's, or cut short: refused, and nothing is renamed into place.
        let mut receiving = Receiving::start(dir.path(), 4, 1 << 20).unwrap();
        receiving.write(&bytes).unwrap();
        let err = receiving
            .commit(dir.path(), "01a2000000000000")
            .unwrap_err();
        assert!(err.contains("epoch 4"), "{err}");
        let mut receiving = Receiving::start(dir.path(), 3, 1 << 20).unwrap();
        receiving.write(&bytes[..bytes.len() - 1]).unwrap();
        assert!(receiving.commit(dir.path(), "01a2000000000000").is_err());
        assert_eq!(epochs_in(dir.path()), vec![3]);

        // Over the run's bound.
        let mut receiving = Receiving::start(dir.path(), 5, 10).unwrap();
        assert!(receiving
            .write(&bytes)
            .unwrap_err()
            .contains("larger than 10 bytes"));
    }
}
