//! Driving a sweep: its trials placed on the daemons as their slots free up, watched, stopped
//! early when hopeless, and each one's end recorded — as an Optuna study process drives its
//! trials. The trials are ordinary runs; the daemons record them (with their sweep membership),
//! so a sweep that this process stops driving (Ctrl-C, a crash) loses nothing but the stopping.

use std::collections::VecDeque;

use strata_proto::{watch_event, RunConfig, RunStatus, StartRunRequest, SweepSetting, SweepTrial};
use tokio::sync::mpsc;
use tokio_stream::StreamExt;

use super::space::TrialPlan;
use super::stopping::{StopReason, StoppingRule};
use strata_client::fleet::Daemon;
use strata_client::{Client, ClientError};

/// A trial ready to start: its plan (the swept settings only) and its whole config.
#[derive(Clone, Debug)]
pub struct Trial {
    pub plan: TrialPlan,
    pub config: RunConfig,
}

/// How a trial ended, as far as the sweep saw.
#[derive(Clone, Debug, PartialEq)]
pub enum TrialEnd {
    /// Trained every epoch.
    Completed,
    /// Stopped by the sweep (the run is `cancelled` with the reason recorded).
    StoppedEarly(String),
    /// Ended some other way on its daemon: diverged, failed, cancelled by someone, interrupted
    /// by a daemon shutdown.
    Ended { status: RunStatus, reason: String },
    /// Its daemon went away: the run is left as it was (`interrupted` once the daemon restarts)
    /// and can be resumed.
    Lost(String),
    /// Never started: no daemon was left, or the start was refused.
    NotStarted(String),
}

impl TrialEnd {
    /// A stable label for output: completed, stopped-early, diverged, failed, cancelled,
    /// interrupted, not-started.
    pub fn label(&self) -> &'static str {
        match self {
            TrialEnd::Completed => "completed",
            TrialEnd::StoppedEarly(_) => "stopped-early",
            TrialEnd::Ended { status, .. } => status.label(),
            TrialEnd::Lost(_) => "interrupted",
            TrialEnd::NotStarted(_) => "not-started",
        }
    }

    /// Left unfinished: its daemon went away or shut down (it can be resumed), or it never
    /// started.
    pub fn is_unfinished(&self) -> bool {
        matches!(
            self,
            TrialEnd::Lost(_)
                | TrialEnd::NotStarted(_)
                | TrialEnd::Ended {
                    status: RunStatus::Interrupted,
                    ..
                }
        )
    }

    /// Why, in words (empty for a completed trial).
    pub fn reason(&self) -> &str {
        match self {
            TrialEnd::Completed => "",
            TrialEnd::StoppedEarly(reason)
            | TrialEnd::Ended { reason, .. }
            | TrialEnd::Lost(reason)
            | TrialEnd::NotStarted(reason) => reason,
        }
    }
}

/// One trial of a finished sweep.
#[derive(Clone, Debug)]
pub struct TrialResult {
    pub plan: TrialPlan,
    /// Where it ran, and as which run (none when it never started).
    pub daemon: Option<String>,
    pub run_id: Option<String>,
    /// Epochs it stored, and its last validation loss (NaN before the first).
    pub epochs: u32,
    pub last_val_loss: f64,
    pub end: TrialEnd,
}

/// What a sweep tells its caller as it goes, one event per line of progress.
#[derive(Clone, Debug)]
pub enum Progress {
    DaemonDown {
        daemon: String,
        error: String,
    },
    Started {
        trial: u32,
        daemon: String,
        run_id: String,
        /// The trial's swept settings.
        settings: Vec<(String, String)>,
    },
    Finished(TrialResult),
}

/// What a trial's watcher reports to the driver.
enum WatchReport {
    Epoch {
        trial: u32,
        val_loss: f64,
    },
    End {
        trial: u32,
        status: RunStatus,
        reason: String,
    },
    Lost {
        trial: u32,
        error: String,
    },
}

/// A started trial, while it is watched.
struct InFlight {
    plan: TrialPlan,
    daemon: usize,
    run_id: String,
    /// The epochs it trains, when the sweep's flags say (else the daemon's default).
    planned_epochs: Option<u32>,
    val_losses: Vec<f64>,
    stop: Option<StopReason>,
}

/// A daemon as the driver sees it.
struct Slots {
    daemon: Daemon,
    slots: u32,
    in_flight: u32,
    placed: u32,
    down: bool,
}

/// Runs the trials of sweep `sweep_id` over `daemons` (the reachable ones, with their slot
/// counts) and returns every trial's end, in trial order. `progress` hears of each start and
/// end as it happens.
pub async fn drive(
    sweep_id: &str,
    daemons: Vec<(Daemon, u32)>,
    trials: Vec<Trial>,
    rule: StoppingRule,
    progress: impl FnMut(Progress),
) -> Vec<TrialResult> {
    let (reports, inbox) = mpsc::channel(WATCH_REPORTS_QUEUED);
    let driver = Driver {
        sweep_id,
        rule,
        slots: daemons
            .into_iter()
            .map(|(daemon, slots)| Slots {
                daemon,
                slots: slots.max(1),
                in_flight: 0,
                placed: 0,
                down: false,
            })
            .collect(),
        pending: trials.into(),
        running: Vec::new(),
        results: Vec::new(),
        completed: Vec::new(),
        reports,
        progress,
    };
    driver.run(inbox).await
}

/// Reports queued from the watchers before they wait for the driver.
const WATCH_REPORTS_QUEUED: usize = 1024;

/// The state of a sweep being driven.
struct Driver<'a, P: FnMut(Progress)> {
    sweep_id: &'a str,
    rule: StoppingRule,
    slots: Vec<Slots>,
    pending: VecDeque<Trial>,
    running: Vec<InFlight>,
    results: Vec<TrialResult>,
    /// The validation losses of completed trials, epoch by epoch: what the median rule compares.
    completed: Vec<Vec<f64>>,
    reports: mpsc::Sender<WatchReport>,
    progress: P,
}

impl<P: FnMut(Progress)> Driver<'_, P> {
    /// Places trials while slots are free, then handles one watcher report at a time, until
    /// nothing runs.
    async fn run(mut self, mut inbox: mpsc::Receiver<WatchReport>) -> Vec<TrialResult> {
        loop {
            self.place().await;
            if self.running.is_empty() {
                break;
            }
            match inbox.recv().await {
                Some(WatchReport::Epoch { trial, val_loss }) => self.on_epoch(trial, val_loss),
                Some(WatchReport::End {
                    trial,
                    status,
                    reason,
                }) => self.on_end(trial, status, reason),
                Some(WatchReport::Lost { trial, error }) => self.on_lost(trial, error),
                None => break,
            }
        }
        for trial in std::mem::take(&mut self.pending) {
            self.record(TrialResult {
                plan: trial.plan,
                daemon: None,
                run_id: None,
                epochs: 0,
                last_val_loss: f64::NAN,
                end: TrialEnd::NotStarted("no daemon was left to run it".into()),
            });
        }
        self.results.sort_by_key(|r| r.plan.trial);
        self.results
    }

    fn record(&mut self, result: TrialResult) {
        (self.progress)(Progress::Finished(result.clone()));
        self.results.push(result);
    }

    /// Starts pending trials on the daemons with free slots. A daemon that cannot be reached is
    /// marked down and the trial goes to another; one the daemon refuses is recorded as such.
    async fn place(&mut self) {
        while let Some(index) = pick_daemon(&self.slots) {
            let Some(trial) = self.pending.pop_front() else {
                return;
            };
            let daemon = &mut self.slots[index];
            match start_trial(self.sweep_id, &daemon.daemon.client, &trial).await {
                Ok(run_id) => {
                    daemon.in_flight += 1;
                    daemon.placed += 1;
                    (self.progress)(Progress::Started {
                        trial: trial.plan.trial,
                        daemon: daemon.daemon.name.clone(),
                        run_id: run_id.clone(),
                        settings: trial.plan.values.clone(),
                    });
                    tokio::spawn(watch_trial(
                        daemon.daemon.client.clone(),
                        trial.plan.trial,
                        run_id.clone(),
                        self.reports.clone(),
                    ));
                    self.running.push(InFlight {
                        planned_epochs: trial.config.epochs,
                        plan: trial.plan,
                        daemon: index,
                        run_id,
                        val_losses: Vec::new(),
                        stop: None,
                    });
                }
                Err(err) if err.is_connection_error() => {
                    self.mark_down(index, err.to_string());
                    self.pending.push_front(trial);
                }
                Err(err) => {
                    let daemon = Some(daemon.daemon.name.clone());
                    self.record(TrialResult {
                        plan: trial.plan,
                        daemon,
                        run_id: None,
                        epochs: 0,
                        last_val_loss: f64::NAN,
                        end: TrialEnd::NotStarted(format!("the daemon refused it: {err}")),
                    });
                }
            }
        }
    }

    fn mark_down(&mut self, index: usize, error: String) {
        let daemon = &mut self.slots[index];
        if !daemon.down {
            daemon.down = true;
            (self.progress)(Progress::DaemonDown {
                daemon: daemon.daemon.name.clone(),
                error,
            });
        }
    }

    /// Judges the trial on its new epoch, and stops it through its daemon when it is hopeless
    /// (once: the watcher then reports the end the cancel brings).
    fn on_epoch(&mut self, trial: u32, val_loss: f64) {
        let Some(flight) = self.running.iter_mut().find(|f| f.plan.trial == trial) else {
            return;
        };
        flight.val_losses.push(val_loss);
        // After its last epoch there is nothing left to save: a stop could only race the run's
        // own end and record a finished trial as stopped early.
        let finished = flight
            .planned_epochs
            .is_some_and(|planned| flight.val_losses.len() >= planned as usize);
        if flight.stop.is_some() || finished {
            return;
        }
        let completed = self.completed.iter().map(Vec::as_slice);
        let Some(stop) = self.rule.judge(&flight.val_losses, completed) else {
            return;
        };
        let reason = format!("stopped early by sweep {}: {stop}", self.sweep_id);
        let client = self.slots[flight.daemon].daemon.client.clone();
        let run_id = flight.run_id.clone();
        // Not awaited: the cancel waits for the run to stop, and other trials report meanwhile.
        tokio::spawn(async move {
            let _ = client.cancel_run_because(&run_id, reason).await;
        });
        flight.stop = Some(stop);
    }

    fn take_running(&mut self, trial: u32) -> Option<InFlight> {
        let at = self.running.iter().position(|f| f.plan.trial == trial)?;
        let flight = self.running.swap_remove(at);
        self.slots[flight.daemon].in_flight -= 1;
        Some(flight)
    }

    fn on_end(&mut self, trial: u32, status: RunStatus, reason: String) {
        let Some(flight) = self.take_running(trial) else {
            return;
        };
        let end = match (status, &flight.stop) {
            (RunStatus::Completed, _) => {
                self.completed.push(flight.val_losses.clone());
                TrialEnd::Completed
            }
            (RunStatus::Cancelled, Some(_)) => TrialEnd::StoppedEarly(reason),
            (status, _) => TrialEnd::Ended { status, reason },
        };
        let result = finished(&self.slots, flight, end);
        self.record(result);
    }

    /// The trial's daemon went away: so did every trial on it, and it gets no more.
    fn on_lost(&mut self, trial: u32, error: String) {
        let Some(flight) = self.take_running(trial) else {
            return;
        };
        self.mark_down(flight.daemon, error);
        let end = TrialEnd::Lost(format!(
            "daemon {} went away; restart it on the same data dir and `strata resume {}`",
            self.slots[flight.daemon].daemon.name, flight.run_id
        ));
        let result = finished(&self.slots, flight, end);
        self.record(result);
    }
}

/// The daemon with the most free slots (the one given fewest trials on a tie), if any is free.
fn pick_daemon(slots: &[Slots]) -> Option<usize> {
    slots
        .iter()
        .enumerate()
        .filter(|(_, s)| !s.down && s.in_flight < s.slots)
        .max_by_key(|(i, s)| (s.slots - s.in_flight, std::cmp::Reverse((s.placed, *i))))
        .map(|(i, _)| i)
}

fn finished(slots: &[Slots], flight: InFlight, end: TrialEnd) -> TrialResult {
    TrialResult {
        daemon: Some(slots[flight.daemon].daemon.name.clone()),
        epochs: flight.val_losses.len() as u32,
        last_val_loss: flight.val_losses.last().copied().unwrap_or(f64::NAN),
        plan: flight.plan,
        run_id: Some(flight.run_id),
        end,
    }
}

/// The trial's sweep membership as the daemon stores it.
pub fn membership(sweep_id: &str, plan: &TrialPlan) -> SweepTrial {
    SweepTrial {
        sweep_id: sweep_id.to_string(),
        trial: plan.trial,
        settings: plan
            .values
            .iter()
            .map(|(name, value)| SweepSetting {
                name: name.clone(),
                value: value.clone(),
            })
            .collect(),
    }
}

/// The start request of a trial (a dry run only validates it).
/// The tag every trial of sweep `sweep_id` carries: `sweep:ID`.
pub fn sweep_tag(sweep_id: &str) -> String {
    format!("sweep:{sweep_id}")
}

pub fn start_request(sweep_id: &str, trial: &Trial, dry_run: bool) -> StartRunRequest {
    StartRunRequest {
        config: Some(trial.config.clone()),
        name: format!("sweep {sweep_id} trial {}", trial.plan.trial),
        // A tag too, so that every tag filter (`list --tag`, the dashboard's) finds a sweep.
        tags: vec![sweep_tag(sweep_id)],
        dry_run,
        baseline: None,
        sweep: Some(membership(sweep_id, &trial.plan)),
    }
}

async fn start_trial(
    sweep_id: &str,
    client: &Client,
    trial: &Trial,
) -> Result<String, ClientError> {
    Ok(client
        .start_run(start_request(sweep_id, trial, false))
        .await?
        .run_id)
}

/// Streams one trial's run and reports its validation losses and its end to the driver.
async fn watch_trial(
    client: Client,
    trial: u32,
    run_id: String,
    reports: mpsc::Sender<WatchReport>,
) {
    let lost = |error: String| WatchReport::Lost { trial, error };
    let mut stream = match client.watch_run(&run_id, 0).await {
        Ok(stream) => stream,
        Err(err) => {
            let _ = reports.send(lost(err.to_string())).await;
            return;
        }
    };
    while let Some(event) = stream.next().await {
        let report = match event.map(|e| e.event) {
            Ok(Some(watch_event::Event::Epoch(epoch))) => WatchReport::Epoch {
                trial,
                val_loss: epoch.val_loss,
            },
            Ok(Some(watch_event::Event::Status(change))) => {
                let status = RunStatus::try_from(change.status).unwrap_or(RunStatus::Unspecified);
                if !is_terminal(status) {
                    continue;
                }
                let _ = reports
                    .send(WatchReport::End {
                        trial,
                        status,
                        reason: change.reason,
                    })
                    .await;
                return;
            }
            Ok(_) => continue,
            Err(status) => lost(ClientError::from(status).to_string()),
        };
        let is_lost = matches!(report, WatchReport::Lost { .. });
        if reports.send(report).await.is_err() || is_lost {
            return;
        }
    }
    let _ = reports
        .send(lost("the run's stream ended before the run did".into()))
        .await;
}

fn is_terminal(status: RunStatus) -> bool {
    matches!(
        status,
        RunStatus::Completed
            | RunStatus::Failed
            | RunStatus::Cancelled
            | RunStatus::Diverged
            | RunStatus::Interrupted
    )
}
