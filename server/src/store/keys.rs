//! How records are keyed: a run by its id as 8 big-endian bytes, an epoch by its run's key and the
//! epoch as 4 big-endian bytes, so one run's epochs are one contiguous range.

use std::ops::RangeInclusive;

use crate::domain::RunId;

/// Length of an epoch record's key.
pub(super) const EPOCH_KEY_BYTES: usize = 12;

pub(crate) fn epoch_key(run: RunId, epoch: u32) -> [u8; EPOCH_KEY_BYTES] {
    let mut key = [0u8; EPOCH_KEY_BYTES];
    key[..8].copy_from_slice(&run.key());
    key[8..].copy_from_slice(&epoch.to_be_bytes());
    key
}

/// The keys of the run's epochs from `from_epoch` on.
pub(super) fn epochs_from(run: RunId, from_epoch: u32) -> RangeInclusive<[u8; EPOCH_KEY_BYTES]> {
    epoch_key(run, from_epoch)..=epoch_key(run, u32::MAX)
}
