//! How a run's training ends, and what may ask it to stop early: the daemon's run manager and the
//! worker's training loop speak of both the same way (the worker protocol carries them).

use std::sync::atomic::{AtomicU8, Ordering};

/// What asked a run to stop early.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum StopRequest {
    None = 0,
    Cancel = 1,
    /// The daemon is shutting down.
    Interrupt = 2,
}

impl StopRequest {
    pub fn load(flag: &AtomicU8) -> StopRequest {
        match flag.load(Ordering::Acquire) {
            1 => StopRequest::Cancel,
            2 => StopRequest::Interrupt,
            _ => StopRequest::None,
        }
    }

    /// Asks through `flag`, unless a request is there already: a cancel never downgrades a
    /// shutdown's interrupt.
    pub fn request(self, flag: &AtomicU8) {
        let _ = flag.compare_exchange(
            StopRequest::None as u8,
            self as u8,
            Ordering::AcqRel,
            Ordering::Acquire,
        );
    }
}

/// How a run's training ended.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    Completed,
    Stopped(StopRequest),
    Diverged(String),
    Failed(String),
}
