//! Human-readable output of the CLI: tables, the run summary, the live epoch line, the daemon's
//! analysis, the terminal chart and plot files, one module per thing rendered.
//!
//! Every function returns text without a trailing newline (the caller decides where it goes),
//! except `plot`, which writes a file. Each value is printed one way, by `format`; the y axis of
//! both charts is `scale`'s. Analysis (verdicts, diagnoses) is the daemon's job; these modules
//! only lay out numbers.

pub mod analysis;
pub mod chart;
pub mod epochs;
pub mod format;
pub mod info;
pub mod list;
pub mod lr_find;
pub mod plot;
pub mod rate_plot;
pub mod rates;
pub mod run;
pub mod scale;
pub mod sweep;
pub mod table;
