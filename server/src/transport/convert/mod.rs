//! Conversions between the wire protocol (`strata_proto`) and the domain. From the wire:
//! `TryFrom` that destructures every field (no `..`), so a new proto field does not build until
//! it is handled here. To the wire: `From` of domain values.

mod analysis;
mod config;
mod events;
mod external;
mod leakage;
mod lr_find;
mod run;

pub use analysis::thresholds;
pub use events::event_to_proto;
pub use external::external_end;
pub use lr_find::lr_find_event_to_proto;
pub use run::{epoch_to_proto, status_to_proto};

/// A connected remote worker as `ListWorkers` answers it.
pub fn worker_to_proto(worker: crate::workers::remote::WorkerView) -> strata_proto::WorkerInfo {
    let crate::workers::remote::WorkerView {
        offer,
        address,
        host,
        pid,
        version,
        connected_at_ms,
        last_heard_ms,
        training,
        runs_done,
    } = worker;
    let (run_id, device) = training.map_or((String::new(), String::new()), |(run, device)| {
        (run.to_string(), device)
    });
    strata_proto::WorkerInfo {
        name: offer.name,
        labels: offer.labels,
        devices: offer.devices,
        memory_bytes: offer.memory_bytes,
        data_roots: offer
            .data_roots
            .iter()
            .map(|root| root.display().to_string())
            .collect(),
        allow_torchscript: offer.allow_torchscript,
        threads: offer.threads,
        address,
        host,
        pid,
        version,
        connected_at_ms,
        last_heartbeat_ms: last_heard_ms,
        run_id,
        device,
        runs_done,
    }
}
