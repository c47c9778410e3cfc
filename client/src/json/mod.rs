//! The CLI's `--json` output: protocol values as `serde_json::Value`s with stable field names.
//!
//! Scripts and tests rely on these names, so they are spelled out here field by field rather than
//! derived from the generated types (whose names could change with the proto). Non-finite floats
//! (a diverged run's NaN loss) become `null`, since JSON has no NaN.
//!
//! One module per thing shaped: `run` (a run, and the commands' answers about runs), `epoch`
//! (epochs and watch events), `analysis` (the daemon's analysis, compare), `info`, and `number`
//! (the float rule every module follows).

mod analysis;
mod epoch;
mod info;
mod lr_find;
mod number;
mod run;
mod sweep;

pub use analysis::compare;
pub use epoch::watch_event;
pub use info::server_info;
pub use lr_find::lr_find;
pub use run::{cancel, delete, dry_run, list, resume, show, start};
pub use sweep::{sweep_end, sweep_show};
