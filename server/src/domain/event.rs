//! What a run tells its watchers while it trains.

use super::{EpochMetrics, RunStatus};

/// A batch's loss, sampled; never stored.
#[derive(Clone, Debug, PartialEq)]
pub struct BatchProgress {
    pub epoch: u32,
    /// From 1.
    pub batch: u32,
    pub batches: u32,
    pub loss: f64,
}

/// One event of a run's live stream.
#[derive(Clone, Debug, PartialEq)]
pub enum RunEvent {
    /// An epoch, once it is durably stored.
    Epoch(EpochMetrics),
    Progress(BatchProgress),
    /// The status changed; a terminal status is the stream's last event.
    Status {
        status: RunStatus,
        reason: String,
    },
    /// The watcher fell behind and live progress was skipped (epochs never are).
    Notice(String),
}
