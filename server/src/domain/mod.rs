//! Strata's domain model: runs, their configuration and resolved rates, epochs, the facts the
//! analysis judges them by, and the analysis's conclusions. Training, the store, the analysis and
//! the run manager speak only these types; the wire format (`strata_proto`) is converted at the
//! edge, in [`crate::transport`], and the store keeps its own record format ([`crate::store`]).

mod config;
mod epoch;
mod event;
mod facts;
mod id;
mod lr_find;
pub mod numbers;
mod outcome;
mod run;
mod status;
mod step;
mod verdict;

pub use config::RunConfig;
pub use epoch::{EpochMetrics, GroupStats};
pub use event::{BatchProgress, RunEvent};
pub use facts::{ColumnLeak, DataFacts, Leakage, LeakyColumn, TaskFacts, ValMetric};
pub(crate) use id::{from_base32, scramble, SHORT_ID_CHARS, SHORT_ID_FLAG};
pub use id::{RunId, RunIdTag, RUN_ID_TAG_BITS};
pub use lr_find::{
    GroupProbe, LrFindProgress, LrFindRange, RatePoint, SkippedGroup, Suggestions, DEFAULT_END_LR,
    DEFAULT_LR_FIND_STEPS, DEFAULT_START_LR,
};
pub use outcome::{Outcome, StopRequest};
pub use run::{
    group_rates, groups_in_order, largest_member, FrozenUntil, GroupRate, ParamInit, ParameterRate,
    RunOrigin, RunRecord, RunState, SweepTrial,
};
pub use status::RunStatus;
pub use step::StepRecord;
pub use verdict::{Diagnosis, Verdict};
