//! Strata's wire protocol, shared by the daemon and every client.

#![allow(clippy::large_enum_variant, clippy::doc_lazy_continuation)]

/// Generated from `proto/strata.proto` (package `strata.v1`).
pub mod v1 {
    tonic::include_proto!("strata.v1");
}

/// Generated from `proto/worker.proto` (package `strata.worker.v1`): how a worker process and the
/// daemon talk about one job.
pub mod worker {
    pub mod v1 {
        tonic::include_proto!("strata.worker.v1");
    }
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

impl Verdict {
    /// Every verdict, best first.
    pub const ALL: [Verdict; 8] = [
        Verdict::Good,
        Verdict::Plateaued,
        Verdict::Overfitting,
        Verdict::Unstable,
        Verdict::Slow,
        Verdict::NotLearning,
        Verdict::Diverged,
        Verdict::TooShort,
    ];

    /// The name people read and type: `good`, `not-learning`, `too-short`, ...
    pub fn label(self) -> &'static str {
        match self {
            Verdict::Unspecified => "unspecified",
            Verdict::Good => "good",
            Verdict::Plateaued => "plateaued",
            Verdict::Overfitting => "overfitting",
            Verdict::Unstable => "unstable",
            Verdict::Slow => "slow",
            Verdict::NotLearning => "not-learning",
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

impl Diagnosis {
    /// The name people read: `ok`, `too-high`, `too-low`, `frozen`.
    pub fn label(self) -> &'static str {
        match self {
            Diagnosis::Unspecified => "unspecified",
            Diagnosis::Ok => "ok",
            Diagnosis::TooHigh => "too-high",
            Diagnosis::TooLow => "too-low",
            Diagnosis::Frozen => "frozen",
        }
    }
}

impl ValMetric {
    /// `accuracy` or `r2`.
    pub fn label(self) -> &'static str {
        match self {
            ValMetric::Unspecified => "unspecified",
            ValMetric::Accuracy => "accuracy",
            ValMetric::R2 => "r2",
        }
    }
}

impl EpochRecord {
    /// The validation metric's value, whichever it is (NaN when unset).
    pub fn val_metric_value(&self) -> f64 {
        match self.val_metric {
            Some(epoch_record::ValMetric::ValAccuracy(v) | epoch_record::ValMetric::ValR2(v)) => v,
            None => f64::NAN,
        }
    }
}

#[cfg(test)]
mod python_client {
    //! The Python client (`clients/python`) carries this protocol as the encoded descriptor set
    //! (`strata_client/_proto/strata.binpb`), building its message classes from it at import: no
    //! protoc at install, no generated code tied to one protobuf release. This keeps it the same
    //! as `strata.proto`.

    const COPY: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../clients/python/strata_client/_proto/strata.binpb"
    );

    /// Fails when the copy differs from the proto; `STRATA_WRITE_PYTHON_PROTO=1` rewrites it.
    #[test]
    fn the_python_client_carries_this_descriptor_set() {
        if std::env::var_os("STRATA_WRITE_PYTHON_PROTO").is_some() {
            std::fs::write(COPY, super::FILE_DESCRIPTOR_SET).expect("write the copy");
        }
        let copy = std::fs::read(COPY).unwrap_or_default();
        assert!(
            copy == super::FILE_DESCRIPTOR_SET,
            "{COPY} is not proto/strata.proto's descriptor set: rewrite it with \
             `STRATA_WRITE_PYTHON_PROTO=1 cargo test -p strata-proto` and commit it"
        );
    }
}
