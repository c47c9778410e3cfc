//! What a training worker reports, made durable by the daemon — the one writer of the store —
//! before anyone is told. For each epoch, in this order: its checkpoint (received in chunks,
//! verified whole, synced, renamed into place, its folder synced), its line in the run's epoch
//! log, its record in the store (synced). Only then is the epoch acknowledged to the worker (which
//! waits for it before training on), streamed to watchers, and counted done. Every stored epoch
//! therefore has a checkpoint, and the newest checkpoint is at most one epoch ahead of the stored
//! records (what the start-up check relies on).
//!
//! A worker may run a user's TorchScript code, so nothing it sends is taken on trust: epochs come
//! in order, one at a time, with the run's groups; a checkpoint is bounded by what the run's
//! parameters and optimizer state can take, and must verify as this run's checkpoint of that epoch.

use std::{path::PathBuf, sync::Arc};

use strata_proto::worker::v1 as wire;

use super::blocking;
use crate::{
    domain::{DataFacts, EpochMetrics, RunId, RunRecord},
    error::StrataError,
    store::{epoch_log, record, Store},
    train::checkpoint::{self, Receiving},
    workers::wire::{data_loaded_from_wire, epoch_from_wire},
};

/// Room for a checkpoint beyond its tensors' values: the data's statistics, the records, the
/// header.
const CHECKPOINT_OVERHEAD_BYTES: u64 = 64 << 20;
/// A checkpoint holds each parameter's values and at most three more of its size (Adam's two
/// moments, and room to spare).
const CHECKPOINT_COPIES_PER_PARAMETER: u64 = 4;
/// A checkpoint up to this size waits in memory until its epoch comes, and is then written,
/// verified and synced in one go; a larger one is written as it arrives.
const CHECKPOINT_BUFFER_BYTES: usize = 8 << 20;

/// A training run's reports on their way to the store.
pub(super) struct Ingest {
    id: RunId,
    store: Arc<Store>,
    dir: PathBuf,
    keep_checkpoints: usize,
    checkpoint_limit: u64,
    /// The run's groups in order: every epoch must report these.
    groups: Vec<String>,
    planned_epochs: u32,
    /// The newest epoch stored.
    last_stored: u32,
    receiving: Option<Receiving>,
    /// The chunks of the next checkpoint not written yet.
    buffered: Vec<u8>,
    data_loaded: bool,
}

/// What storing an epoch ended with: the epoch, to acknowledge and stream.
pub(super) struct Stored(pub EpochMetrics);

impl Ingest {
    pub fn new(
        record: &RunRecord,
        store: Arc<Store>,
        dir: PathBuf,
        keep_checkpoints: usize,
        planned_epochs: u32,
        resume_after_epoch: u32,
    ) -> Ingest {
        let values: u64 = record
            .parameters
            .iter()
            .map(|p| p.numel().max(0) as u64)
            .sum();
        Ingest {
            id: record.id,
            store,
            dir,
            keep_checkpoints,
            checkpoint_limit: values
                .saturating_mul(4 * CHECKPOINT_COPIES_PER_PARAMETER)
                .saturating_add(CHECKPOINT_OVERHEAD_BYTES),
            groups: record.groups().into_iter().map(|g| g.name).collect(),
            planned_epochs,
            last_stored: resume_after_epoch,
            receiving: None,
            buffered: Vec::new(),
            data_loaded: false,
        }
    }

    /// What the worker was doing, for a reason that says where it stopped.
    pub fn doing(&self) -> String {
        if self.data_loaded {
            format!("during epoch {}", self.last_stored + 1)
        } else {
            "while it loaded the run's data".into()
        }
    }

    /// The worker loaded the data: its measured facts go into the run's record (with what the
    /// start found: the label, the task's reason, the leakage check); the record, encoded as the
    /// store keeps it, is what every checkpoint carries.
    pub async fn data_loaded(&mut self, loaded: wire::DataLoaded) -> Result<Vec<u8>, String> {
        let (task, train_rows, val_rows, steps_per_epoch) = data_loaded_from_wire(loaded)?;
        let (store, id) = (self.store.clone(), self.id);
        let record = blocking(move || {
            store.update_run(id, |run| {
                run.facts = DataFacts {
                    task,
                    train_rows,
                    val_rows,
                    steps_per_epoch,
                    ..run.facts.clone()
                };
            })
        })
        .await
        .map_err(|e| format!("cannot record the run's data: {e}"))?;
        self.data_loaded = true;
        Ok(record::encode_run(&record))
    }

    /// A chunk of the next epoch's checkpoint: kept in memory while the checkpoint is small, so
    /// that storing the epoch is one trip to the blocking pool; written to the temporary file
    /// as it comes once it is larger than [`CHECKPOINT_BUFFER_BYTES`].
    pub async fn checkpoint_chunk(&mut self, data: Vec<u8>) -> Result<(), String> {
        if data.len() > crate::workers::wire::CHECKPOINT_CHUNK_BYTES {
            return Err(format!(
                "the worker sent a checkpoint chunk of {} bytes",
                data.len()
            ));
        }
        self.buffered.extend_from_slice(&data);
        if self.buffered.len() >= CHECKPOINT_BUFFER_BYTES {
            let (receiving, buffered) = (self.receiving.take(), std::mem::take(&mut self.buffered));
            let (dir, epoch, limit) = (
                self.dir.clone(),
                self.last_stored + 1,
                self.checkpoint_limit,
            );
            let receiving = blocking(move || {
                let mut receiving = match receiving {
                    Some(receiving) => receiving,
                    None => Receiving::start(&dir, epoch, limit).map_err(StrataError::storage)?,
                };
                receiving.write(&buffered).map_err(StrataError::storage)?;
                Ok(receiving)
            })
            .await
            .map_err(|e| e.to_string())?;
            self.receiving = Some(receiving);
        }
        Ok(())
    }

    /// An epoch, its checkpoint just sent: stored durably in the order above.
    pub async fn epoch(&mut self, done: wire::EpochDone) -> Result<Stored, String> {
        let wire::EpochDone {
            epoch,
            checkpoint_bytes,
        } = done;
        let epoch = epoch_from_wire(epoch.ok_or("an epoch came without its record")?)?;
        let expected = self.last_stored + 1;
        if epoch.epoch != expected || epoch.epoch > self.planned_epochs {
            return Err(format!(
                "the worker sent epoch {} where epoch {expected} of {} was due",
                epoch.epoch, self.planned_epochs
            ));
        }
        let groups: Vec<&str> = epoch.groups.iter().map(|g| g.name.as_str()).collect();
        if groups != self.groups {
            return Err(format!(
                "epoch {} came with groups {groups:?}; the run has {:?}",
                epoch.epoch, self.groups
            ));
        }
        let (receiving, buffered) = (self.receiving.take(), std::mem::take(&mut self.buffered));
        let received = receiving.as_ref().map_or(0, Receiving::received) + buffered.len() as u64;
        if received == 0 || received != checkpoint_bytes {
            return Err(format!(
                "the checkpoint of epoch {} came with {received} of its {checkpoint_bytes} bytes",
                epoch.epoch,
            ));
        }
        let (store, id, dir) = (self.store.clone(), self.id, self.dir.clone());
        let (limit, stored) = (self.checkpoint_limit, epoch.clone());
        blocking(move || {
            let storage = StrataError::storage;
            let mut receiving = match receiving {
                Some(receiving) => receiving,
                None => Receiving::start(&dir, stored.epoch, limit).map_err(storage)?,
            };
            receiving.write(&buffered).map_err(storage)?;
            receiving.commit(&dir, &id.to_string()).map_err(storage)?;
            epoch_log::append(&dir, &stored)
                .map_err(|e| storage(format!("cannot append to the run's epoch log: {e}")))?;
            store.put_epoch(id, &stored)
        })
        .await
        .map_err(|e| e.to_string())?;
        self.last_stored = epoch.epoch;
        Ok(Stored(epoch))
    }

    /// Deletes the checkpoints beyond the newest `--keep-checkpoints` (after an epoch is told).
    pub async fn prune(&self) {
        let (dir, keep) = (self.dir.clone(), self.keep_checkpoints);
        let _ = blocking(move || {
            checkpoint::prune(&dir, keep);
            Ok(())
        })
        .await;
    }
}

/// The run's epoch log made to hold exactly the epochs it goes on from (none for a new run; a
/// resume from an older checkpoint drops the later ones), so it never mixes timelines
/// (blocking).
pub(super) fn rewrite_epoch_log(
    store: &Store,
    id: RunId,
    dir: &std::path::Path,
    resume_after_epoch: u32,
) -> crate::error::Result<()> {
    let kept: Vec<EpochMetrics> = match resume_after_epoch {
        0 => Vec::new(),
        after => store
            .epochs(id, 1)?
            .into_iter()
            .filter(|e| e.epoch <= after)
            .collect(),
    };
    crate::durable::create_dir_all(dir)
        .and_then(|()| epoch_log::rewrite(dir, &kept))
        .map_err(|e| StrataError::storage_from("cannot write the run's epoch log", e))
}
