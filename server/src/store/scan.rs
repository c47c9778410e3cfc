//! The store read record by record for the integrity check, and the removal of what it finds
//! unreadable.

use std::collections::BTreeMap;

use super::{
    keys::EPOCH_KEY_BYTES,
    record::{self, decode_epoch, decode_stored_run},
    Store,
};
use crate::{
    domain::{RunId, RunStatus},
    error::Result,
};

/// What the store holds, read record by record: which records decode and which epochs each run
/// has. For the integrity check; it keeps numbers, not records.
#[derive(Debug, Default)]
pub struct StoreScan {
    /// Every run key: what its record says, if it decodes and names the same run.
    pub runs: BTreeMap<RunId, Result<ScannedRun, String>>,
    /// Every run that has epoch records (with or without a run record).
    pub epochs: BTreeMap<RunId, EpochScan>,
    /// Keys of the wrong length: (tree, key bytes).
    pub bad_keys: Vec<(&'static str, Vec<u8>)>,
}

/// What the check needs of a readable run record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScannedRun {
    /// Logged from outside.
    pub external: bool,
    /// The run has (or had) a run folder: every trained run; an external run stored since they
    /// got one (see [`super::record::StoredExternal::folder`]).
    pub has_folder: bool,
    /// A trained run that can be resumed (interrupted, cancelled, or left queued or running):
    /// it needs a checkpoint to go on from.
    pub resumable: bool,
}

#[derive(Debug, Default)]
pub struct EpochScan {
    /// Epochs whose records decode, ascending.
    pub readable: Vec<u32>,
    /// The digest of each readable record ([`record::epoch_digest`]), in the order of
    /// `readable`: compared with the run's epoch log.
    pub readable_crcs: Vec<u32>,
    /// Epochs whose records do not decode, or name another epoch, and why.
    pub unreadable: Vec<(u32, String)>,
}

impl Store {
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
            // Read as the daemon reads it (status, facts, twin links), so that a record the
            // daemon would refuse is found here, where a repair can act on it.
            let checked = match decode_stored_run(bytes.as_ref()) {
                Ok(run) if run.id == id.to_string() => {
                    let has_folder = run.external.as_ref().is_none_or(|e| e.folder);
                    run.to_domain(|run| super::upgrade::legacy_facts(run, &[]))
                        .map(|record| ScannedRun {
                            external: record.is_external(),
                            has_folder,
                            resumable: !record.is_external()
                                && (record.status.is_live()
                                    || matches!(
                                        record.status,
                                        RunStatus::Interrupted | RunStatus::Cancelled
                                    )),
                        })
                }
                Ok(run) => Err(format!("it holds run '{}'", crate::spec::shown(&run.id))),
                Err(err) => Err(err),
            };
            scan.runs.insert(id, checked);
        }
        for entry in self.epochs.iter() {
            let (key, bytes) = entry?;
            if key.len() != EPOCH_KEY_BYTES {
                scan.bad_keys.push(("epochs", key.to_vec()));
                continue;
            }
            let id = RunId::from_key(&key)?;
            let epoch = u32::from_be_bytes([key[8], key[9], key[10], key[11]]);
            let run = scan.epochs.entry(id).or_default();
            match decode_epoch(bytes.as_ref()) {
                Ok(record) if record.epoch == epoch => {
                    run.readable.push(epoch);
                    run.readable_crcs.push(record::epoch_digest(&record));
                }
                Ok(record) => run
                    .unreadable
                    .push((epoch, format!("it holds epoch {}", record.epoch))),
                Err(err) => run.unreadable.push((epoch, err)),
            }
        }
        Ok(scan)
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
}
