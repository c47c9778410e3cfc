//! What one training step of an external run logged.

use std::collections::BTreeMap;

/// Named scalars at one global step of a run logged from outside (a batch's loss, a group's
/// rate): drawn under the epoch curves, never analysed.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StepRecord {
    /// The loop's own global step; strictly increasing within a run.
    pub step: u64,
    /// The epoch the step belongs to, from 1 (0: not known).
    pub epoch: u32,
    pub scalars: BTreeMap<String, f64>,
}
