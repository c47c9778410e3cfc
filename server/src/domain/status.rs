//! Where a run is in its life.

/// A run's status. `Queued` and `Running` are live; every other status is terminal until the run
/// is resumed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RunStatus {
    Queued,
    Running,
    Completed,
    Failed,
    Cancelled,
    Diverged,
    Interrupted,
}

impl RunStatus {
    /// Every status a run can be in.
    pub const ALL: [RunStatus; 7] = [
        RunStatus::Queued,
        RunStatus::Running,
        RunStatus::Completed,
        RunStatus::Failed,
        RunStatus::Cancelled,
        RunStatus::Diverged,
        RunStatus::Interrupted,
    ];

    /// The lowercase name users see and type: `queued`, `running`, `completed`, ...
    pub fn label(self) -> &'static str {
        match self {
            RunStatus::Queued => "queued",
            RunStatus::Running => "running",
            RunStatus::Completed => "completed",
            RunStatus::Failed => "failed",
            RunStatus::Cancelled => "cancelled",
            RunStatus::Diverged => "diverged",
            RunStatus::Interrupted => "interrupted",
        }
    }

    /// A run in a terminal status does not change any more (until it is resumed).
    pub fn is_terminal(self) -> bool {
        !self.is_live()
    }

    /// Queued or running: the run manager holds it.
    pub fn is_live(self) -> bool {
        matches!(self, RunStatus::Queued | RunStatus::Running)
    }
}
