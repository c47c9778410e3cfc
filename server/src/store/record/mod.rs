//! The store's own record format: how runs and epochs are kept on the disk — in sled, in each run
//! folder's `run.pb` and `epochs.pb`, and inside checkpoints. Protobuf messages defined here, not
//! in the wire protocol, so the protocol can change without touching what is stored.
//!
//! Format 1 was the wire protocol's `Run` and `EpochRecord`; format 2 keeps their field numbers
//! and types (so every format-1 record decodes as format 2) and adds the run's data facts. Fields
//! that format 1 derived on every read (`epochs_done`, `queue_position`) are reserved and never
//! written. Format 3 adds epochs that were not validated (`StoredEpoch::no_validation`, whose NaN
//! validation loss an older build would read as a divergence) and an external run's client key;
//! records need no change to become format 3 (every new field's absence means what it always
//! did), but a store holding them is refused by an older build, which would misread them, and
//! drop them on a rewrite. A store says which format it was written in: the file [`FORMAT_FILE`] in its folder,
//! read before sled opens it, so a store from a newer `stratad` is refused without a byte of it
//! changed; see [`super::upgrade`] for how an older one is brought up to date.

mod convert;
mod messages;

use prost::Message;

use crate::domain::{EpochMetrics, RunRecord};
pub use messages::{
    StoredConfig, StoredEpoch, StoredExternal, StoredFacts, StoredGroupStats, StoredHyperparameter,
    StoredLeakage, StoredLeakyColumn, StoredParameter, StoredRun, StoredScalar, StoredStepChunk,
    StoredStepColumn, StoredSweepTrial,
};

/// The record format this build writes, and the newest it reads.
pub const FORMAT: u32 = 3;
/// The file in the store's folder (`DATA_DIR/db`) holding the format number, in decimal.
pub const FORMAT_FILE: &str = "strata-format";

/// Why a stored record could not be read back.
pub type DecodeResult<T> = std::result::Result<T, String>;

pub fn encode_run(run: &RunRecord) -> Vec<u8> {
    StoredRun::from(run).encode_to_vec()
}

pub fn encode_epoch(epoch: &EpochMetrics) -> Vec<u8> {
    StoredEpoch::from(epoch).encode_to_vec()
}

/// Appends the epoch, length-delimited (as the epoch log and checkpoints keep them).
pub fn encode_epoch_delimited(epoch: &EpochMetrics, out: &mut Vec<u8>) {
    // Encoding into a Vec only fails when it runs out of capacity, which a Vec never does.
    let _ = StoredEpoch::from(epoch).encode_length_delimited(out);
}

/// A CRC32 of the epoch as this build encodes it: equal for equal records whichever build wrote
/// their bytes (the store and a run's epoch log are compared by it).
pub fn epoch_digest(epoch: &EpochMetrics) -> u32 {
    crc32fast::hash(&encode_epoch(epoch))
}

pub fn decode_epoch(bytes: &[u8]) -> DecodeResult<EpochMetrics> {
    StoredEpoch::decode(bytes)
        .map(EpochMetrics::from)
        .map_err(|e| format!("it does not decode ({e})"))
}

/// The next length-delimited epoch of `bytes`, and what follows it.
pub fn decode_epoch_delimited(bytes: &mut &[u8]) -> DecodeResult<EpochMetrics> {
    StoredEpoch::decode_length_delimited(bytes)
        .map(EpochMetrics::from)
        .map_err(|e| format!("it does not decode ({e})"))
}

pub fn decode_stored_run(bytes: &[u8]) -> DecodeResult<StoredRun> {
    StoredRun::decode(bytes).map_err(|e| format!("it does not decode ({e})"))
}
