//! The learning-rate range test per group (`LrFind`): the run's config prepared as a start
//! prepares it, the groups to probe chosen, then the probe trained in a worker on a training slot
//! (it competes with runs for `--max-concurrent-runs`) and streamed back. It stops when its client
//! goes away or the daemon shuts down, and stores nothing.

use std::sync::Arc;

use strata_proto::worker::v1 as wire;
use tokio::sync::mpsc;

use super::{prepare::Prepared, training::reason_for_clients, Runs};
use crate::{
    domain::{
        group_rates, FrozenUntil, GroupProbe, GroupRate, LrFindProgress, LrFindRange, Outcome,
        RunConfig, SkippedGroup, StopRequest,
    },
    error::{Result, StrataError},
    spec::{check_length, finite_in, glob::Glob, in_range},
    workers::{
        wire::{finished_from_wire, probe_from_wire, probe_progress_from_wire},
        Event,
    },
};

/// Fewest steps of a sweep (fastai raises `num_it` below 6 to 6: fewer leave no curve to read).
pub const MIN_LR_FIND_STEPS: u32 = 6;
/// Most steps of one group's sweep.
pub const MAX_LR_FIND_STEPS: u32 = 2000;
/// Most steps of one whole probe, over all its groups: what one request may make the daemon train.
pub const MAX_LR_FIND_STEPS_TOTAL: u64 = 20_000;
/// Most `groups` patterns.
const MAX_GROUP_PATTERNS: usize = 256;
const MAX_GROUP_PATTERN_CHARS: usize = 1024;
/// Progress events a probe keeps ready for a slow client beyond its groups' results; more are
/// dropped (progress only: every group's result is always sent).
const PROBE_PROGRESS_BUFFER: usize = 64;

/// A range test to run.
#[derive(Clone, Debug, Default)]
pub struct LrFindRequest {
    pub config: RunConfig,
    pub range: LrFindRange,
    /// Globs over group names: the groups to probe (empty: every group).
    pub groups: Vec<String>,
}

/// What a probe sends: its plan first, then progress and each group's result in the model's
/// order; the stream ends after the last group.
#[derive(Clone, Debug)]
pub enum LrFindEvent {
    Plan(Box<LrFindPlan>),
    Progress(LrFindProgress),
    Probed(GroupProbe),
}

/// What a probe will do, known before it trains.
#[derive(Clone, Debug)]
pub struct LrFindPlan {
    /// The config with the daemon's defaults filled in, as a start would record it.
    pub config: RunConfig,
    pub range: LrFindRange,
    /// Every group of the model in order, at the rate the spec gives it.
    pub groups: Vec<GroupRate>,
    /// The groups to be probed, in order.
    pub probed: Vec<String>,
    /// Groups asked for but left alone, and why.
    pub skipped: Vec<SkippedGroup>,
    pub warnings: Vec<String>,
}

impl Runs {
    /// Checks the request, prepares its run config and starts the probe; its events come on the
    /// returned channel, and an error there ends it.
    pub async fn lr_find(
        self: &Arc<Self>,
        request: LrFindRequest,
    ) -> Result<mpsc::Receiver<Result<LrFindEvent>>> {
        self.check_accepting()?;
        let LrFindRequest {
            config,
            range,
            groups,
        } = request;
        check_range(&range)?;
        let patterns = parse_group_patterns(&groups)?;
        let prepared = self.prepare(config, true).await?;
        let plan = plan_probe(&prepared, range, &patterns)?;
        let (tx, rx) = mpsc::channel(plan.probed.len() + PROBE_PROGRESS_BUFFER + 2);
        let probed = plan.probed.clone();
        // The channel is empty and larger than one event.
        let _ = tx.try_send(Ok(LrFindEvent::Plan(Box::new(plan))));
        let this = self.clone();
        self.tasks.spawn(async move {
            if let Err(err) = this.run_probe(prepared, range, probed, tx.clone()).await {
                let _ = tx.send(Err(err)).await;
            }
        });
        Ok(rx)
    }

    /// Waits for a training slot (or the client to leave), then probes in a worker.
    async fn run_probe(
        self: Arc<Self>,
        prepared: Prepared,
        range: LrFindRange,
        groups: Vec<String>,
        events: mpsc::Sender<Result<LrFindEvent>>,
    ) -> Result<()> {
        if let Some(why) = &prepared.remote_only {
            return Err(StrataError::invalid(
                "device",
                format!("range tests run on this daemon's own workers: {why}"),
            ));
        }
        if self.queue.slots() == 0 {
            return Err(StrataError::FailedPrecondition("range tests run on this daemon's own workers, and it has none (--max-concurrent-runs 0: its runs train on remote workers)".into()));
        }
        let permit = tokio::select! {
            permit = self.queue.take_slot() => permit,
            () = events.closed() => return Ok(()),
        };
        let Some(_permit) = permit else {
            return Err(StrataError::ShuttingDown);
        };
        self.check_accepting()?;
        let failed = |reason: &str| {
            tracing::warn!(error = %reason, "a learning-rate range test failed");
            StrataError::FailedPrecondition(format!(
                "the range test failed: {}",
                reason_for_clients(reason)
            ))
        };
        let job = wire::Job {
            kind: Some(wire::job::Kind::LrFind(wire::LrFindJob {
                config: Some(prepared.spec.config.clone().into()),
                parameters: prepared.rate_table().into_iter().map(Into::into).collect(),
                start_lr: range.start_lr,
                end_lr: range.end_lr,
                steps: range.steps,
                groups: groups.clone(),
            })),
            ..Default::default()
        };
        let source = prepared.init.as_ref().map(|init| init.path.as_path());
        let mut session = self
            .workers
            .launch(job, prepared.device, source, "range test")
            .await
            .map_err(|why| failed(&format!("no worker could run it: {why}")))?;
        let results = groups.len();
        let mut stopped: Option<StrataError> = None;
        loop {
            let event = tokio::select! {
                event = session.next() => event,
                () = events.closed(), if stopped.is_none() => {
                    // The client went away: nobody to tell.
                    stopped = Some(StrataError::Internal(String::new()));
                    session.stop(StopRequest::Interrupt).await;
                    continue;
                }
                () = self.stopping.cancelled(), if stopped.is_none() => {
                    stopped = Some(StrataError::ShuttingDown);
                    session.stop(StopRequest::Interrupt).await;
                    continue;
                }
            };
            let message = match event {
                Event::Message(message) => message,
                Event::Ended(exit) => {
                    return match stopped {
                        Some(StrataError::ShuttingDown) => Err(StrataError::ShuttingDown),
                        Some(_) => Ok(()),
                        None => Err(failed(&exit.describe("during the range test"))),
                    };
                }
            };
            use wire::worker_message::Message;
            match message {
                Message::LrFindProgress(progress) => {
                    // Progress never takes the room kept for the groups' results, so sending a
                    // result never waits on the client.
                    if events.capacity() > results + 1 {
                        let progress = probe_progress_from_wire(progress);
                        let _ = events.try_send(Ok(LrFindEvent::Progress(progress)));
                    }
                }
                Message::Probed(probe) => {
                    let probe = probe_from_wire(probe).map_err(|why| failed(&why))?;
                    let _ = events.send(Ok(LrFindEvent::Probed(probe))).await;
                }
                Message::Finished(finished) => {
                    let outcome = finished_from_wire(&finished, session.stop_requested());
                    let _ = session.ended().await;
                    return match (outcome, stopped) {
                        (Outcome::Completed, _) => Ok(()),
                        (Outcome::Stopped(_), Some(StrataError::ShuttingDown)) => {
                            Err(StrataError::ShuttingDown)
                        }
                        (Outcome::Stopped(_), _) => Ok(()),
                        (Outcome::Diverged(reason) | Outcome::Failed(reason), _) => {
                            Err(failed(&reason))
                        }
                    };
                }
                _ => {
                    session.abandon();
                    return Err(failed(
                        "the worker sent a message that is no part of a range test",
                    ));
                }
            }
        }
    }
}

/// The sweep's range and length, as allowed.
fn check_range(range: &LrFindRange) -> Result<()> {
    let rate = "a positive rate below 1e6";
    finite_in("start_lr", range.start_lr, f64::MIN_POSITIVE, 1e6, rate)?;
    finite_in("end_lr", range.end_lr, f64::MIN_POSITIVE, 1e6, rate)?;
    if range.end_lr <= range.start_lr {
        return Err(StrataError::invalid(
            "end_lr",
            format!(
                "{} is not above start_lr {}; the sweep goes up from start_lr to end_lr (fastai's 1e-7 to 10)",
                crate::spec::shown_number(range.end_lr),
                crate::spec::shown_number(range.start_lr)
            ),
        ));
    }
    in_range("steps", range.steps, MIN_LR_FIND_STEPS, MAX_LR_FIND_STEPS)?;
    Ok(())
}

fn parse_group_patterns(patterns: &[String]) -> Result<Vec<Glob>> {
    if patterns.len() > MAX_GROUP_PATTERNS {
        return Err(StrataError::invalid(
            "groups",
            format!(
                "{} patterns; at most {MAX_GROUP_PATTERNS} are allowed",
                patterns.len()
            ),
        ));
    }
    patterns
        .iter()
        .enumerate()
        .map(|(i, pattern)| {
            let field = format!("groups[{i}]");
            check_length(&field, pattern, MAX_GROUP_PATTERN_CHARS)?;
            Glob::parse(pattern).map_err(|message| StrataError::invalid(&field, message))
        })
        .collect()
}

/// Which groups to probe: those the patterns name (all without patterns), less the frozen for
/// good; refused when a pattern names no group, when nothing is left, or when the whole probe
/// would train more than [`MAX_LR_FIND_STEPS_TOTAL`] steps.
fn plan_probe(prepared: &Prepared, range: LrFindRange, patterns: &[Glob]) -> Result<LrFindPlan> {
    let groups = group_rates(&prepared.rate_table());
    let names: Vec<&str> = groups.iter().map(|g| g.name.as_str()).collect();
    for (i, pattern) in patterns.iter().enumerate() {
        if !names.iter().any(|name| pattern.matches(name)) {
            return Err(StrataError::invalid(
                format!("groups[{i}]"),
                format!(
                    "'{}' (--group) matches no layer group; this model has: {}",
                    pattern.as_str(),
                    names.join(", ")
                ),
            ));
        }
    }
    let chosen = groups
        .iter()
        .filter(|g| patterns.is_empty() || patterns.iter().any(|p| p.matches(&g.name)));
    let (mut probed, mut skipped) = (Vec::new(), Vec::new());
    for group in chosen {
        match group.frozen {
            FrozenUntil::Forever => skipped.push(SkippedGroup {
                group: group.name.clone(),
                reason: "frozen for the whole run (--freeze): it never trains, so it has no rate to find".into(),
            }),
            FrozenUntil::Never | FrozenUntil::Epoch(_) => probed.push(group.name.clone()),
        }
    }
    if probed.is_empty() {
        return Err(StrataError::invalid(
            "groups",
            "every group chosen is frozen for the whole run; nothing to probe (drop its --freeze rule, or choose other groups)",
        ));
    }
    let total = u64::from(range.steps) * probed.len() as u64;
    if total > MAX_LR_FIND_STEPS_TOTAL {
        return Err(StrataError::invalid(
            "steps",
            format!(
                "{} steps × {} groups = {total} training steps; at most {MAX_LR_FIND_STEPS_TOTAL} are allowed per probe — lower --steps or probe fewer groups with --group",
                range.steps,
                probed.len()
            ),
        ));
    }
    Ok(LrFindPlan {
        config: prepared.spec.config.clone(),
        range,
        groups,
        probed,
        skipped,
        warnings: prepared.warnings(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_range_is_checked_before_anything_is_prepared() {
        assert!(check_range(&LrFindRange::default()).is_ok());
        let bad = [
            (
                LrFindRange {
                    start_lr: 1.0,
                    end_lr: 1.0,
                    steps: 100,
                },
                "end_lr",
            ),
            (
                LrFindRange {
                    start_lr: 0.0,
                    ..Default::default()
                },
                "start_lr",
            ),
            (
                LrFindRange {
                    end_lr: f64::NAN,
                    ..Default::default()
                },
                "end_lr",
            ),
            (
                LrFindRange {
                    steps: 0,
                    ..Default::default()
                },
                "steps",
            ),
            (
                LrFindRange {
                    steps: MAX_LR_FIND_STEPS + 1,
                    ..Default::default()
                },
                "steps",
            ),
        ];
        for (range, field) in bad {
            match check_range(&range) {
                Err(StrataError::InvalidArgument { field: got, .. }) => {
                    assert_eq!(got, field, "{range:?}")
                }
                other => panic!("{range:?}: {other:?}"),
            }
        }
        assert!(parse_group_patterns(&["layer[".into()]).is_err());
        assert!(parse_group_patterns(&vec!["a".into(); MAX_GROUP_PATTERNS + 1]).is_err());
    }
}
