//! The worker protocol's messages (`worker.proto`) to and from the domain, for both of its sides:
//! the daemon ([`super`]) and the worker program (the `strata-worker` crate), so the two cannot
//! read a message differently. What comes from the other side is checked here: a worker may run
//! a user's TorchScript code, and the daemon trusts nothing it sends beyond its shape.

use strata_proto as proto;
use strata_proto::worker::v1 as wire;

use crate::{
    domain::{
        BatchProgress, EpochMetrics, FrozenUntil, GroupStats, Outcome, ProbeProgress, RatePoint,
        RateProbe, StopRequest, Suggestions, TaskFacts,
    },
    spec::rates::{ParamInfo, ResolvedParam},
};

/// The protocol version this build speaks (see `worker.proto`).
pub const PROTOCOL_VERSION: u32 = 1;
/// Largest chunk of a checkpoint in one message.
pub const CHECKPOINT_CHUNK_BYTES: usize = 1 << 20;
/// Largest message either side decodes: a chunk, or an epoch with many groups.
pub const MAX_MESSAGE_BYTES: usize = 4 << 20;
/// HTTP/2 flow-control windows of a worker's connection, both ways (the protocol's default, 64
/// KiB, would make every 1 MiB chunk wait for acknowledgements of its parts).
pub const FLOW_WINDOW_BYTES: u32 = 16 << 20;
/// Most batch losses one progress message may carry.
pub const MAX_PROGRESS_BATCHES: usize = 1000;
/// How long a worker gathers batch losses before it sends them: one message for many batches,
/// however fast they come, so live progress costs the daemon little, a few milliseconds late.
pub const PROGRESS_GATHER: std::time::Duration = std::time::Duration::from_millis(25);
/// Most layer groups an epoch from a worker may have.
const MAX_EPOCH_GROUPS: usize = 100_000;
/// Most points a range test's group may have (its steps, [`crate::runs::MAX_PROBE_STEPS`]).
const MAX_PROBE_POINTS: usize = 2000;

/// An epoch as a worker sends it.
pub fn epoch_to_wire(epoch: &EpochMetrics) -> proto::EpochRecord {
    // The validation metric travels in the accuracy slot whatever the task: the daemon knows
    // which it is.
    crate::transport::convert::epoch_to_proto(epoch.clone(), crate::domain::ValMetric::Accuracy)
}

/// An epoch as the daemon receives it: whole (a trained run's epochs have every field, and no
/// named scalars), with at most [`MAX_EPOCH_GROUPS`] groups. Values are taken as they are: a
/// diverged run's last epoch has a non-finite loss, and is stored as it was.
pub fn epoch_from_wire(epoch: proto::EpochRecord) -> Result<EpochMetrics, String> {
    let proto::EpochRecord {
        epoch,
        train_loss,
        val_loss,
        val_metric,
        duration_ms,
        samples_per_sec,
        groups,
        extra,
        no_validation,
    } = epoch;
    if no_validation {
        return Err(format!(
            "epoch {epoch} came unvalidated, which only external runs may be"
        ));
    }
    let val_metric = match val_metric {
        Some(
            proto::epoch_record::ValMetric::ValAccuracy(v)
            | proto::epoch_record::ValMetric::ValR2(v),
        ) => v,
        None => return Err(format!("epoch {epoch} came without its validation metric")),
    };
    if !extra.is_empty() {
        return Err(format!(
            "epoch {epoch} came with named scalars, which only external runs have"
        ));
    }
    if groups.len() > MAX_EPOCH_GROUPS {
        return Err(format!("epoch {epoch} came with {} groups", groups.len()));
    }
    let groups = groups
        .into_iter()
        .map(|g| {
            let proto::GroupEpochStats {
                name,
                lr,
                grad_norm,
                weight_norm,
                update_ratio,
                frozen,
            } = g;
            GroupStats {
                name,
                lr,
                grad_norm,
                weight_norm,
                update_ratio,
                frozen,
            }
        })
        .collect();
    Ok(EpochMetrics {
        epoch,
        train_loss,
        val_loss,
        val_metric,
        duration_ms,
        samples_per_sec,
        groups,
        extra: Default::default(),
        no_validation: false,
    })
}

pub fn progress_to_wire(p: &BatchProgress) -> proto::BatchProgress {
    proto::BatchProgress {
        epoch: p.epoch,
        batch: p.batch,
        batches: p.batches,
        loss: p.loss,
    }
}

pub fn progress_from_wire(p: proto::BatchProgress) -> BatchProgress {
    let proto::BatchProgress {
        epoch,
        batch,
        batches,
        loss,
    } = p;
    BatchProgress {
        epoch,
        batch,
        batches,
        loss,
    }
}

fn point_from_wire(point: Option<proto::RatePoint>) -> RatePoint {
    let proto::RatePoint {
        lr,
        loss,
        smoothed_loss,
    } = point.unwrap_or_default();
    RatePoint {
        lr,
        loss,
        smoothed: smoothed_loss,
    }
}

pub fn probe_progress_from_wire(p: proto::RateProbeProgress) -> ProbeProgress {
    let proto::RateProbeProgress {
        group_index,
        step,
        point,
    } = p;
    ProbeProgress {
        group_index,
        step,
        point: point_from_wire(point),
    }
}

pub fn probe_from_wire(p: proto::RateProbe) -> Result<RateProbe, String> {
    let proto::RateProbe {
        group,
        current_lr,
        points,
        diverged,
        steep,
        minimum_div10,
        valley,
    } = p;
    if points.len() > MAX_PROBE_POINTS {
        return Err(format!(
            "group {group}'s sweep came with {} points",
            points.len()
        ));
    }
    Ok(RateProbe {
        group,
        current_lr,
        points: points
            .into_iter()
            .map(|p| point_from_wire(Some(p)))
            .collect(),
        diverged,
        suggestions: Suggestions {
            steep,
            minimum_div10,
            valley,
        },
    })
}

/// The rate table as the worker rebuilds it from a job: each parameter's name, group, shape,
/// rate and freezing, exactly as the daemon resolved them.
pub fn resolved_from_wire(parameters: Vec<proto::ParameterRate>) -> Vec<ResolvedParam> {
    parameters
        .into_iter()
        .map(|p| {
            let proto::ParameterRate {
                name,
                group,
                shape,
                lr,
                frozen,
                init: _,
            } = p;
            let frozen_until = match frozen.and_then(|f| f.until) {
                None => FrozenUntil::Never,
                Some(proto::frozen::Until::Epoch(epoch)) => FrozenUntil::Epoch(epoch),
                Some(proto::frozen::Until::Forever(_)) => FrozenUntil::Forever,
            };
            ResolvedParam {
                info: ParamInfo { name, group, shape },
                lr,
                frozen_until,
            }
        })
        .collect()
}

/// What a worker measured on a run's data.
pub fn data_loaded_to_wire(
    task: TaskFacts,
    train_rows: u64,
    val_rows: u64,
    steps_per_epoch: u64,
) -> wire::DataLoaded {
    let (kind, classes, target_variance) = match task {
        TaskFacts::Classification { classes } => (proto::Task::Classification, classes, None),
        TaskFacts::Regression { target_variance } => (proto::Task::Regression, 0, target_variance),
    };
    wire::DataLoaded {
        task: kind as i32,
        classes,
        target_variance,
        train_rows,
        val_rows,
        steps_per_epoch,
    }
}

/// The measured task and sizes: `(task, train_rows, val_rows, steps_per_epoch)`.
pub fn data_loaded_from_wire(
    loaded: wire::DataLoaded,
) -> Result<(TaskFacts, u64, u64, u64), String> {
    let wire::DataLoaded {
        task,
        classes,
        target_variance,
        train_rows,
        val_rows,
        steps_per_epoch,
    } = loaded;
    let task = match proto::Task::try_from(task) {
        Ok(proto::Task::Classification) => TaskFacts::Classification { classes },
        Ok(proto::Task::Regression) => TaskFacts::Regression { target_variance },
        _ => {
            return Err(format!(
                "the data came with task {task}, neither classification nor regression"
            ))
        }
    };
    Ok((task, train_rows, val_rows, steps_per_epoch))
}

pub fn stop_to_wire(request: StopRequest) -> wire::Stop {
    wire::Stop {
        kind: match request {
            StopRequest::Cancel => wire::StopKind::Cancel,
            StopRequest::Interrupt | StopRequest::None => wire::StopKind::Interrupt,
        } as i32,
    }
}

pub fn stop_from_wire(stop: wire::Stop) -> StopRequest {
    match wire::StopKind::try_from(stop.kind) {
        Ok(wire::StopKind::Cancel) => StopRequest::Cancel,
        _ => StopRequest::Interrupt,
    }
}

/// How a job ended, with the request field a failure on bad input names (empty otherwise).
pub fn finished_to_wire(outcome: &Outcome, field: &str) -> wire::Finished {
    let (kind, reason) = match outcome {
        Outcome::Completed => (wire::OutcomeKind::Completed, String::new()),
        Outcome::Stopped(_) => (wire::OutcomeKind::Stopped, String::new()),
        Outcome::Diverged(reason) => (wire::OutcomeKind::Diverged, reason.clone()),
        Outcome::Failed(reason) => (wire::OutcomeKind::Failed, reason.clone()),
    };
    wire::Finished {
        outcome: kind as i32,
        reason,
        field: field.to_string(),
    }
}

/// The outcome a worker reports; `stopped` is the request the daemon made (a worker stops only
/// when asked).
pub fn finished_from_wire(finished: &wire::Finished, stopped: StopRequest) -> Outcome {
    match wire::OutcomeKind::try_from(finished.outcome) {
        Ok(wire::OutcomeKind::Completed) => Outcome::Completed,
        Ok(wire::OutcomeKind::Stopped) => Outcome::Stopped(match stopped {
            StopRequest::None => StopRequest::Interrupt,
            asked => asked,
        }),
        Ok(wire::OutcomeKind::Diverged) => Outcome::Diverged(finished.reason.clone()),
        _ => Outcome::Failed(if finished.reason.is_empty() {
            "the worker reported a failure without a reason".into()
        } else {
            finished.reason.clone()
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_epoch_and_a_rate_table_cross_unchanged() {
        let epoch = EpochMetrics {
            epoch: 3,
            train_loss: 0.1 + 0.2,
            val_loss: f64::NAN,
            val_metric: 1.0 / 3.0,
            duration_ms: 12.5,
            samples_per_sec: 1e5,
            groups: vec![GroupStats {
                name: "head".into(),
                lr: 1e-3,
                grad_norm: 0.5,
                weight_norm: 2.0,
                update_ratio: 1e-4,
                frozen: false,
            }],
            extra: Default::default(),
            no_validation: false,
        };
        let back = epoch_from_wire(epoch_to_wire(&epoch)).unwrap();
        assert_eq!(back.train_loss.to_bits(), epoch.train_loss.to_bits());
        assert!(back.val_loss.is_nan());
        assert_eq!(back.groups, epoch.groups);
        let mut extra = epoch_to_wire(&epoch);
        extra.extra.insert("x".into(), 1.0);
        assert!(epoch_from_wire(extra)
            .unwrap_err()
            .contains("named scalars"));

        let table = vec![crate::domain::ParameterRate {
            name: "layer0.weight".into(),
            group: "layer0".into(),
            shape: vec![4, 2],
            lr: 3e-4,
            frozen: FrozenUntil::Epoch(2),
            init: crate::domain::ParamInit::Fresh,
        }];
        let resolved = resolved_from_wire(table.into_iter().map(Into::into).collect());
        assert_eq!(
            resolved,
            vec![ResolvedParam {
                info: ParamInfo::new("layer0.weight", vec![4, 2]),
                lr: 3e-4,
                frozen_until: FrozenUntil::Epoch(2),
            }]
        );
    }

    #[test]
    fn outcomes_and_stops_cross_unchanged() {
        for outcome in [
            Outcome::Completed,
            Outcome::Diverged("the loss became NaN".into()),
            Outcome::Failed("libtorch: out of memory".into()),
        ] {
            let back = finished_from_wire(&finished_to_wire(&outcome, ""), StopRequest::None);
            assert_eq!(back, outcome);
        }
        let stopped = finished_to_wire(&Outcome::Stopped(StopRequest::Cancel), "");
        assert_eq!(
            finished_from_wire(&stopped, StopRequest::Cancel),
            Outcome::Stopped(StopRequest::Cancel)
        );
        for request in [StopRequest::Cancel, StopRequest::Interrupt] {
            assert_eq!(stop_from_wire(stop_to_wire(request)), request);
        }
        let task = TaskFacts::Regression {
            target_variance: Some(2.5),
        };
        let loaded = data_loaded_to_wire(task, 10, 3, 2);
        assert_eq!(data_loaded_from_wire(loaded), Ok((task, 10, 3, 2)));
    }
}
