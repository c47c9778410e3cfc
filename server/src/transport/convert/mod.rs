//! Conversions between the wire protocol (`strata_proto`) and the domain. From the wire:
//! `TryFrom` that destructures every field (no `..`), so a new proto field does not build until
//! it is handled here. To the wire: `From` of domain values.

mod analysis;
mod config;
mod events;
mod external;
mod leakage;
mod rate_probe;
mod run;

pub use analysis::thresholds;
pub use events::event_to_proto;
pub use external::external_end;
pub use rate_probe::probe_event_to_proto;
pub use run::{epoch_to_proto, status_to_proto};
