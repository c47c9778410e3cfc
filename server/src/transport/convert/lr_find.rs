//! The learning-rate range test on the wire: its request, and the events it streams.

use strata_proto as proto;

use crate::{
    domain::{
        GroupProbe, LrFindProgress, LrFindRange, RatePoint, SkippedGroup, Suggestions,
        DEFAULT_END_LR, DEFAULT_LR_FIND_STEPS, DEFAULT_START_LR,
    },
    error::StrataError,
    runs::{LrFindEvent, LrFindPlan, LrFindRequest},
};

impl TryFrom<proto::LrFindRequest> for LrFindRequest {
    type Error = StrataError;

    fn try_from(request: proto::LrFindRequest) -> Result<Self, StrataError> {
        let proto::LrFindRequest {
            config,
            start_lr,
            end_lr,
            steps,
            groups,
        } = request;
        let config = config.ok_or_else(|| StrataError::invalid("config", "required"))?;
        Ok(LrFindRequest {
            config: config.into(),
            range: LrFindRange {
                start_lr: start_lr.unwrap_or(DEFAULT_START_LR),
                end_lr: end_lr.unwrap_or(DEFAULT_END_LR),
                steps: steps.unwrap_or(DEFAULT_LR_FIND_STEPS),
            },
            groups,
        })
    }
}

pub fn lr_find_event_to_proto(event: LrFindEvent) -> proto::LrFindEvent {
    use proto::lr_find_event::Event;
    let event = match event {
        LrFindEvent::Plan(plan) => Event::Plan((*plan).into()),
        LrFindEvent::Progress(progress) => Event::Progress(progress.into()),
        LrFindEvent::Probed(probe) => Event::Probe(probe.into()),
    };
    proto::LrFindEvent { event: Some(event) }
}

impl From<LrFindPlan> for proto::LrFindPlan {
    fn from(plan: LrFindPlan) -> Self {
        let LrFindPlan {
            config,
            range,
            groups,
            probed,
            skipped,
            warnings,
        } = plan;
        let LrFindRange {
            start_lr,
            end_lr,
            steps,
        } = range;
        proto::LrFindPlan {
            config: Some(config.into()),
            start_lr,
            end_lr,
            steps,
            groups: groups.into_iter().map(Into::into).collect(),
            probed,
            skipped: skipped
                .into_iter()
                .map(|SkippedGroup { group, reason }| proto::SkippedGroup { group, reason })
                .collect(),
            warnings,
        }
    }
}

fn point_to_proto(point: RatePoint) -> proto::RatePoint {
    let RatePoint { lr, loss, smoothed } = point;
    proto::RatePoint {
        lr,
        loss,
        smoothed_loss: smoothed,
    }
}

impl From<LrFindProgress> for proto::LrFindProgress {
    fn from(progress: LrFindProgress) -> Self {
        let LrFindProgress {
            group_index,
            step,
            point,
        } = progress;
        proto::LrFindProgress {
            group_index,
            step,
            point: Some(point_to_proto(point)),
        }
    }
}

impl From<GroupProbe> for proto::GroupProbe {
    fn from(probe: GroupProbe) -> Self {
        let GroupProbe {
            group,
            current_lr,
            points,
            diverged,
            suggestions:
                Suggestions {
                    steep,
                    minimum_div10,
                    valley,
                },
        } = probe;
        proto::GroupProbe {
            group,
            current_lr,
            points: points.into_iter().map(point_to_proto).collect(),
            diverged,
            steep,
            minimum_div10,
            valley,
        }
    }
}
