//! Epoch records: written durably, read as one run's range.

use super::{
    keys::{epoch_key, epochs_from},
    record::{self, decode_epoch},
    Store,
};
use crate::{
    domain::{EpochMetrics, RunId},
    error::{Result, StrataError},
};

impl Store {
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
    pub(super) fn read_epochs(&self, run: RunId, from_epoch: u32) -> Result<Vec<EpochMetrics>> {
        self.epochs
            .range(epochs_from(run, from_epoch))
            .values()
            .map(|bytes| {
                decode_epoch(bytes?.as_ref())
                    .map_err(|e| StrataError::storage_from(format!("an epoch of run {run}"), e))
            })
            .collect()
    }

    /// At most `max` consecutive epochs of a run from `from_epoch` on, in order: a page, whose
    /// size the caller bounds.
    pub fn epoch_page(&self, run: RunId, from_epoch: u32, max: usize) -> Result<Vec<EpochMetrics>> {
        let _visible = self.readable()?;
        self.epochs
            .range(epochs_from(run, from_epoch))
            .values()
            .take(max)
            .map(|bytes| {
                decode_epoch(bytes?.as_ref())
                    .map_err(|e| StrataError::storage_from(format!("an epoch of run {run}"), e))
            })
            .collect()
    }

    /// The run's epochs with these numbers, in the order given; a number not stored is skipped.
    /// Reads only those records, so a thinned view of a long run costs what it returns.
    pub fn epochs_numbered(&self, run: RunId, numbers: &[u32]) -> Result<Vec<EpochMetrics>> {
        let _visible = self.readable()?;
        let mut epochs = Vec::with_capacity(numbers.len());
        for &number in numbers {
            if let Some(bytes) = self.epochs.get(epoch_key(run, number))? {
                epochs.push(decode_epoch(bytes.as_ref()).map_err(|e| {
                    StrataError::storage_from(format!("epoch {number} of run {run}"), e)
                })?);
            }
        }
        Ok(epochs)
    }

    /// Each stored epoch of a run with its digest ([`record::epoch_digest`]), ascending: what a
    /// repair compares the run's epoch log with. Records that do not decode are left out.
    pub fn epoch_digests(&self, run: RunId) -> Result<Vec<(u32, u32)>> {
        let _visible = self.readable()?;
        let mut digests = Vec::new();
        for entry in self.epochs.range(epochs_from(run, 0)) {
            let (_, bytes) = entry?;
            if let Ok(record) = decode_epoch(&bytes) {
                digests.push((record.epoch, record::epoch_digest(&record)));
            }
        }
        Ok(digests)
    }

    /// The number of the last stored epoch (epochs are stored in order from 1), 0 if none.
    pub fn epochs_done(&self, run: RunId) -> Result<u32> {
        let _visible = self.readable()?;
        self.last_epoch(run)
    }

    /// [`Store::epochs_done`] for a caller that already holds the read guard.
    pub(super) fn last_epoch(&self, run: RunId) -> Result<u32> {
        let last = self.epochs.range(epochs_from(run, 0)).next_back();
        match last {
            Some(entry) => {
                let (key, _) = entry?;
                let epoch: [u8; 4] = key[8..12]
                    .try_into()
                    .map_err(|_| StrataError::storage("corrupt epoch key"))?;
                Ok(u32::from_be_bytes(epoch))
            }
            None => Ok(0),
        }
    }

    /// Removes the epoch records of `run` after `epoch`, durably (a resume that falls back to an
    /// older checkpoint retrains them).
    pub fn drop_epochs_after(&self, run: RunId, epoch: u32) -> Result<()> {
        self.write_durably(|| self.remove_epochs(run, epoch.saturating_add(1)))
    }

    /// Removes the run's epoch records from `from_epoch` on, in one batch; the caller makes it
    /// durable.
    pub(super) fn remove_epochs(&self, run: RunId, from_epoch: u32) -> Result<()> {
        let mut batch = sled::Batch::default();
        for key in self.epochs.range(epochs_from(run, from_epoch)).keys() {
            batch.remove(key?);
        }
        Ok(self.epochs.apply_batch(batch)?)
    }
}
