//! `strata watch` (and `start` or `resume` with `--follow`): a run's history, then its live
//! events.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use strata_client::{status_label, Client, Fleet};
use strata_proto::{watch_event::Event, BatchProgress, RunStatus, StatusChange};

use crate::cli::WatchArgs;
use crate::exit::{CliError, Exit};
use crate::output::{note, Out};
use crate::{json, render};

/// `strata watch RUN [--from-epoch E]`.
pub async fn run(
    fleet: &Fleet,
    args: WatchArgs,
    as_json: bool,
    out: &mut Out,
) -> Result<Exit, CliError> {
    let client = crate::commands::locate(fleet, &args.run).await?;
    follow(client, &args.run, args.from_epoch, as_json, out).await
}

/// Streams run `run` (id or unique prefix) from `from_epoch` until its final status; `start`
/// and `resume` do this too, with `--follow`.
///
/// Human mode prints one line per epoch on stdout, a progress bar per epoch on stderr when it is
/// a terminal, and the final status; `--json` prints every event as an NDJSON line. Ends with
/// [`Exit::Success`] when the run completed, [`Exit::RunEndedBadly`] when it failed, diverged or
/// was cancelled, and an error when it was interrupted (it can be resumed, so it is not done).
pub async fn follow(
    client: &Client,
    run: &str,
    from_epoch: u32,
    as_json: bool,
    out: &mut Out,
) -> Result<Exit, CliError> {
    // GetRun first: it resolves a prefix to the full id, gives the epoch total for `epoch 3/10`
    // and the metric's name, and reports an unknown run before any stream is opened.
    let detail = client.get_run(run).await?;
    let Some(info) = detail.run else {
        return Err(CliError::Failed(format!(
            "stratad returned no run for '{run}'"
        )));
    };
    let total_epochs = info.config.as_ref().and_then(|config| config.epochs);
    let mut progress =
        EpochProgress::new(!as_json && std::io::stderr().is_terminal(), total_epochs);
    let mut stream = client.watch_run(&info.id, from_epoch).await?;
    // Where the watch stands: the next epoch to show (a stream opened again after a dropped
    // connection starts there, so no epoch is missed or shown twice), and the last status shown
    // (a new stream repeats the run's current status first).
    let mut next_epoch = from_epoch.max(1);
    let mut last_status: Option<(i32, String)> = None;
    let mut reconnect = Reconnect::default();

    // One Ctrl-C future for the whole watch: recreating it per event could miss a signal that
    // arrives between two events.
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    let mut ctrl_c_armed = true;

    loop {
        let message = tokio::select! {
            message = stream.message() => message,
            signal = &mut ctrl_c, if ctrl_c_armed => {
                ctrl_c_armed = false;
                if signal.is_ok() {
                    progress.clear();
                    return Err(CliError::CtrlC);
                }
                // No signal handler could be installed: watch on without one.
                continue;
            }
        };
        let event = match message {
            Ok(Some(event)) => event,
            // The connection dropped (the daemon restarted, the network failed, this process was
            // paused past the daemon's keepalive): open the stream again from the next epoch.
            dropped => {
                let why = match dropped {
                    Err(status) if !Reconnect::worth_it(&status) => {
                        progress.clear();
                        return Err(strata_client::ClientError::from(status).into());
                    }
                    Err(status) => status.message().to_string(),
                    Ok(_) => "the stream ended before the run did".to_string(),
                };
                progress.clear();
                stream = reconnect
                    .again(client, &info.id, next_epoch, &why, as_json, out)
                    .await?;
                continue;
            }
        };
        reconnect.succeeded();
        match &event.event {
            Some(Event::Epoch(record)) if record.epoch < next_epoch => continue,
            Some(Event::Epoch(record)) => next_epoch = record.epoch + 1,
            Some(Event::Status(change)) => {
                let status = (change.status, change.reason.clone());
                if terminal_status(change).is_none() && last_status.as_ref() == Some(&status) {
                    continue;
                }
                last_status = Some(status);
            }
            _ => {}
        }

        // The run's final status ends the watch; every event before it is shown.
        let finished = match &event.event {
            Some(Event::Status(change)) => terminal_status(change),
            _ => None,
        };
        if as_json {
            if let Some(value) = json::watch_event(&event) {
                out.json(&value)?;
            }
        } else {
            show_event(
                event.event,
                &info.id,
                total_epochs,
                strata_client::metric_label(info.val_metric),
                &mut progress,
                out,
            )?;
        }
        if let Some(status) = finished {
            progress.clear();
            return final_exit(status);
        }
    }
}

/// Opening the stream again after a dropped connection: a few tries, further apart each time,
/// counted afresh once events flow again.
#[derive(Default)]
struct Reconnect {
    /// Tries since the last event received.
    tries: u32,
}

/// Tries to open the stream again before giving up: with the waits below, ~60 s.
const RECONNECT_TRIES: u32 = 12;
const RECONNECT_FIRST_WAIT: std::time::Duration = std::time::Duration::from_millis(200);
const RECONNECT_LONGEST_WAIT: std::time::Duration = std::time::Duration::from_secs(8);

impl Reconnect {
    /// Whether a failed stream is a connection that dropped (worth opening again), not the
    /// daemon's answer about the run (an unknown run, a refused token).
    fn worth_it(status: &tonic::Status) -> bool {
        use tonic::Code;
        matches!(
            status.code(),
            Code::Unavailable
                | Code::Unknown
                | Code::Internal
                | Code::Cancelled
                | Code::DeadlineExceeded
                | Code::Aborted
        )
    }

    fn succeeded(&mut self) {
        self.tries = 0;
    }

    /// Opens the stream again from `next_epoch`, saying so (on stderr; in `--json`, also as a
    /// `notice` event), waiting between tries; an error once the tries are spent.
    async fn again(
        &mut self,
        client: &Client,
        run: &str,
        next_epoch: u32,
        why: &str,
        as_json: bool,
        out: &mut Out,
    ) -> Result<tonic::Streaming<strata_proto::WatchEvent>, CliError> {
        let mut why = why.to_string();
        loop {
            if self.tries >= RECONNECT_TRIES {
                return Err(CliError::Failed(format!(
                    "lost the connection to stratad while watching run {run} and could not open it again ({why})"
                )));
            }
            let wait = RECONNECT_FIRST_WAIT
                .saturating_mul(1 << self.tries.min(6))
                .min(RECONNECT_LONGEST_WAIT);
            if self.tries == 0 {
                note(&format!(
                    "notice: the connection to stratad dropped ({why}); reconnecting to go on from epoch {next_epoch}"
                ));
            }
            self.tries += 1;
            tokio::time::sleep(wait).await;
            match client.watch_run(run, next_epoch).await {
                Ok(stream) => {
                    let message = format!("reconnected; going on from epoch {next_epoch}");
                    if as_json {
                        out.json(&serde_json::json!({ "event": "notice", "message": message }))?;
                    } else {
                        note(&format!("notice: {message}"));
                    }
                    return Ok(stream);
                }
                Err(err) => match err.status() {
                    Some(status) if !Self::worth_it(status) => return Err(err.into()),
                    _ => why = err.to_string(),
                },
            }
        }
    }
}

/// One event in human mode: epochs and the final status on stdout, the rest on stderr.
fn show_event(
    event: Option<Event>,
    run_id: &str,
    total_epochs: Option<u32>,
    val_metric: &str,
    progress: &mut EpochProgress,
    out: &mut Out,
) -> Result<(), CliError> {
    match event {
        Some(Event::Epoch(record)) => {
            progress.clear();
            out.line(&render::epochs::epoch_line(
                &record,
                total_epochs,
                val_metric,
            ))?;
        }
        Some(Event::Progress(batch)) => progress.update(&batch),
        Some(Event::Notice(message)) => progress.suspend(|| note(&format!("notice: {message}"))),
        Some(Event::Status(change)) => {
            if terminal_status(&change).is_some() {
                progress.clear();
                out.line(&render::epochs::run_finished(
                    run_id,
                    change.status,
                    &change.reason,
                ))?;
            } else {
                let label = status_label(change.status);
                progress.suspend(|| note(&format!("run {run_id} is {label}")));
            }
        }
        // An event kind from a newer daemon: nothing to show.
        None => {}
    }
    Ok(())
}

/// The status a change brings the run to, when that is a final one.
fn terminal_status(change: &StatusChange) -> Option<RunStatus> {
    RunStatus::try_from(change.status)
        .ok()
        .filter(|status| status.is_terminal())
}

/// The exit for a run's terminal status.
fn final_exit(status: RunStatus) -> Result<Exit, CliError> {
    match status {
        RunStatus::Completed => Ok(Exit::Success),
        RunStatus::Interrupted => Err(CliError::Failed(
            "run was interrupted; resume it later".into(),
        )),
        _ => Ok(Exit::RunEndedBadly),
    }
}

/// A progress bar for the epoch in progress, drawn on stderr from batch `progress` events.
struct EpochProgress {
    enabled: bool,
    total_epochs: Option<u32>,
    /// The epoch the bar belongs to, and the bar.
    bar: Option<(u32, ProgressBar)>,
}

impl EpochProgress {
    fn new(enabled: bool, total_epochs: Option<u32>) -> EpochProgress {
        EpochProgress {
            enabled,
            total_epochs,
            bar: None,
        }
    }

    fn update(&mut self, batch: &BatchProgress) {
        if !self.enabled {
            return;
        }
        let bar = match &self.bar {
            Some((epoch, bar)) if *epoch == batch.epoch => bar.clone(),
            _ => {
                self.clear();
                let bar = self.new_bar(batch);
                self.bar = Some((batch.epoch, bar.clone()));
                bar
            }
        };
        bar.set_length(u64::from(batch.batches));
        bar.set_position(u64::from(batch.batch));
        bar.set_message(format!("loss {}", render::format::metric(batch.loss)));
    }

    fn new_bar(&self, batch: &BatchProgress) -> ProgressBar {
        let bar = ProgressBar::with_draw_target(
            Some(u64::from(batch.batches)),
            ProgressDrawTarget::stderr(),
        );
        // The template is a constant; should indicatif ever reject it, a plain bar will do.
        let style = ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len}  {msg}")
            .map(|style| style.progress_chars("=> "))
            .unwrap_or_else(|_| ProgressStyle::default_bar());
        bar.set_style(style);
        bar.set_prefix(render::epochs::epoch_label(batch.epoch, self.total_epochs));
        bar
    }

    /// Removes the bar, so that the next line printed does not mix with it.
    fn clear(&mut self) {
        if let Some((_, bar)) = self.bar.take() {
            bar.finish_and_clear();
        }
    }

    /// Runs `print` with the bar hidden, for a line printed while an epoch is in progress.
    fn suspend(&self, print: impl FnOnce()) {
        match &self.bar {
            Some((_, bar)) => bar.suspend(print),
            None => print(),
        }
    }
}

impl Drop for EpochProgress {
    fn drop(&mut self) {
        self.clear();
    }
}
