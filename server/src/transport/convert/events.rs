//! A run's stream of events to the wire.

use strata_proto as proto;

use super::run::{epoch_to_proto, status_to_proto};
use crate::domain::{RunEvent, ValMetric};

/// An event of a run's stream; epochs carry the run's validation metric.
pub fn event_to_proto(event: RunEvent, metric: ValMetric) -> proto::WatchEvent {
    use proto::watch_event::Event;
    {
        let event = match event {
            RunEvent::Epoch(epoch) => Event::Epoch(epoch_to_proto(epoch, metric)),
            RunEvent::Progress(p) => Event::Progress(proto::BatchProgress {
                epoch: p.epoch,
                batch: p.batch,
                batches: p.batches,
                loss: p.loss,
            }),
            RunEvent::Status { status, reason } => Event::Status(proto::StatusChange {
                status: status_to_proto(status) as i32,
                reason,
            }),
            RunEvent::Notice(notice) => Event::Notice(notice),
        };
        proto::WatchEvent { event: Some(event) }
    }
}
