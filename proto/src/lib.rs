//! Strata's wire protocol, shared by the daemon and every client.

#![allow(clippy::large_enum_variant, clippy::doc_lazy_continuation)]

/// Generated from `proto/strata.proto` (package `strata.v1`).
pub mod v1 {
    tonic::include_proto!("strata.v1");
}

/// The encoded `FileDescriptorSet` of `strata.proto`, for gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/strata_descriptor.bin"));

pub use v1::*;

impl RunStatus {
    /// The lowercase name users see and type: `queued`, `running`, `completed`, ...
    pub fn label(self) -> &'static str {
        match self {
            RunStatus::Unspecified => "unspecified",
            RunStatus::Queued => "queued",
            RunStatus::Running => "running",
            RunStatus::Completed => "completed",
            RunStatus::Failed => "failed",
            RunStatus::Cancelled => "cancelled",
            RunStatus::Diverged => "diverged",
            RunStatus::Interrupted => "interrupted",
        }
    }

    /// Parses a label as printed by [`RunStatus::label`].
    pub fn from_label(label: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.label() == label)
    }

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

    /// A run in a terminal status does not change any more (until it is resumed).
    pub fn is_terminal(self) -> bool {
        !matches!(
            self,
            RunStatus::Queued | RunStatus::Running | RunStatus::Unspecified
        )
    }
}
