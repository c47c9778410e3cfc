//! The learning-rate range test on the wire: its request, and the events it streams.

use strata_proto as proto;

use crate::{
    domain::{
        ProbeProgress, RangeTest, RatePoint, RateProbe, SkippedGroup, Suggestions, DEFAULT_END_LR,
        DEFAULT_PROBE_STEPS, DEFAULT_START_LR,
    },
    error::StrataError,
    runs::{FindRatesRequest, ProbeEvent, ProbePlan},
};

impl TryFrom<proto::FindRatesRequest> for FindRatesRequest {
    type Error = StrataError;

    fn try_from(request: proto::FindRatesRequest) -> Result<Self, StrataError> {
        let proto::FindRatesRequest {
            config,
            start_lr,
            end_lr,
            steps,
            groups,
        } = request;
        let config = config.ok_or_else(|| StrataError::invalid("config", "required"))?;
        Ok(FindRatesRequest {
            config: config.into(),
            range: RangeTest {
                start_lr: start_lr.unwrap_or(DEFAULT_START_LR),
                end_lr: end_lr.unwrap_or(DEFAULT_END_LR),
                steps: steps.unwrap_or(DEFAULT_PROBE_STEPS),
            },
            groups,
        })
    }
}

pub fn probe_event_to_proto(event: ProbeEvent) -> proto::FindRatesEvent {
    use proto::find_rates_event::Event;
    let event = match event {
        ProbeEvent::Plan(plan) => Event::Plan((*plan).into()),
        ProbeEvent::Progress(progress) => Event::Progress(progress.into()),
        ProbeEvent::Probed(probe) => Event::Probe(probe.into()),
    };
    proto::FindRatesEvent { event: Some(event) }
}

impl From<ProbePlan> for proto::RateProbePlan {
    fn from(plan: ProbePlan) -> Self {
        let ProbePlan {
            config,
            range,
            groups,
            probed,
            skipped,
            warnings,
        } = plan;
        let RangeTest {
            start_lr,
            end_lr,
            steps,
        } = range;
        proto::RateProbePlan {
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

impl From<ProbeProgress> for proto::RateProbeProgress {
    fn from(progress: ProbeProgress) -> Self {
        let ProbeProgress {
            group_index,
            step,
            point,
        } = progress;
        proto::RateProbeProgress {
            group_index,
            step,
            point: Some(point_to_proto(point)),
        }
    }
}

impl From<RateProbe> for proto::RateProbe {
    fn from(probe: RateProbe) -> Self {
        let RateProbe {
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
        proto::RateProbe {
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
