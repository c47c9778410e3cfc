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

/// A run's verdict, as `RunAnalysis.verdict` spells it. The daemon decides it; clients parse it
/// to filter (`strata list --verdict`) and to check what users type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Verdict {
    Good,
    Overfitting,
    Unstable,
    Slow,
    Diverged,
    TooShort,
}

impl Verdict {
    /// Every verdict, best first.
    pub const ALL: [Verdict; 6] = [
        Verdict::Good,
        Verdict::Overfitting,
        Verdict::Unstable,
        Verdict::Slow,
        Verdict::Diverged,
        Verdict::TooShort,
    ];

    /// The label on the wire and on the command line: `good`, `too-short`, ...
    pub fn label(self) -> &'static str {
        match self {
            Verdict::Good => "good",
            Verdict::Overfitting => "overfitting",
            Verdict::Unstable => "unstable",
            Verdict::Slow => "slow",
            Verdict::Diverged => "diverged",
            Verdict::TooShort => "too-short",
        }
    }

    pub fn from_label(label: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.label() == label)
    }

    /// The labels, comma-separated, for messages that list what is allowed.
    pub fn labels() -> String {
        Self::ALL.map(Verdict::label).join(", ")
    }
}

/// A layer group's diagnosis, as `GroupDiagnosis.diagnosis` spells it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Diagnosis {
    TooHigh,
    TooLow,
    Ok,
    Frozen,
}

impl Diagnosis {
    pub const ALL: [Diagnosis; 4] = [
        Diagnosis::TooHigh,
        Diagnosis::TooLow,
        Diagnosis::Ok,
        Diagnosis::Frozen,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Diagnosis::TooHigh => "too-high",
            Diagnosis::TooLow => "too-low",
            Diagnosis::Ok => "ok",
            Diagnosis::Frozen => "frozen",
        }
    }

    pub fn from_label(label: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|d| d.label() == label)
    }
}
