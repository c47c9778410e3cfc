//! `strata sync DIR`: sends the spool files a Python logger left (what it could not send while
//! stratad was away) and removes each once the daemon holds all of it.
//!
//! The file format is the proto's `SpoolEntry` framing (see `strata.proto`): a header with the
//! run's CreateRun request (its client key) and the daemon's address, then epochs, steps and at
//! most one finish in the order they were logged. Sending is idempotent: CreateRun with the key
//! finds the run again (and continues it if it was interrupted), the daemon skips the epochs and
//! steps it holds already — so a file sent twice, or sent after the logger sent part of it,
//! leaves every epoch stored exactly once. A file a running logger still holds (its `flock`) is
//! left alone.

use std::{
    fs::File,
    path::{Path, PathBuf},
};

use prost::Message;
use serde_json::{json, Value};
use strata_client::{Client, StrataGrpc};
use strata_proto::{
    spool_entry::Entry, CreateRunRequest, EpochRecord, FinishRunRequest, LogEpochsRequest,
    LogStepsRequest, RunStatus, SpoolEntry, StepRecord,
};
use tonic::Code;

use crate::cli::{GlobalArgs, SyncArgs};
use crate::exit::{CliError, Exit};
use crate::output::{note, Out};

/// The spool files' extension.
const SUFFIX: &str = ".spool";
/// The largest entry read: a logger writes batches of a few hundred KB.
const MAX_ENTRY_BYTES: usize = 64 << 20;
/// Epochs and steps one call carries: within the daemon's limits and its 1 MiB a request.
const EPOCHS_PER_CALL: usize = 200;
const STEPS_PER_CALL: usize = 2000;

pub async fn run(
    global: &GlobalArgs,
    args: &SyncArgs,
    as_json: bool,
    out: &mut Out,
) -> Result<Exit, CliError> {
    let files = spool_files(&args.dir)?;
    let mut connections: Vec<(String, Client)> = Vec::new();
    let (mut synced, mut skipped, mut failed) = (Vec::new(), Vec::new(), Vec::new());
    for path in files {
        let name = path.display().to_string();
        let file = match File::open(&path) {
            Ok(file) => file,
            Err(err) => {
                failed.push((name, format!("cannot read it: {err}")));
                continue;
            }
        };
        // A logger still writing it holds the lock: its own retries will send it.
        if file.try_lock().is_err() {
            skipped.push((name, "a running logger holds it".to_string()));
            continue;
        }
        let spool = match read_spool(&path) {
            Ok(spool) => spool,
            Err(why) => {
                failed.push((name, why));
                continue;
            }
        };
        if let Some(problem) = &spool.unread_tail {
            note(&format!(
                "warning: {name}: {problem}; what comes before it is sent"
            ));
        }
        let client = match connection(&mut connections, global, &spool).await {
            Ok(client) => client,
            Err(err) => {
                failed.push((name, err));
                continue;
            }
        };
        match replay(client.grpc(), &spool).await {
            Ok(done) => {
                drop(file);
                if !args.keep {
                    if let Err(err) = std::fs::remove_file(&path) {
                        note(&format!(
                            "warning: {name} was sent but could not be removed: {err}"
                        ));
                    }
                }
                synced.push((name, done));
            }
            Err(status) => failed.push((name, describe(&status, client.addr()))),
        }
    }
    if as_json {
        out.json(&json!({
            "synced": synced.iter().map(|(file, done)| done.json(file)).collect::<Vec<_>>(),
            "skipped": skipped.iter().map(|(file, why)| json!({"file": file, "reason": why})).collect::<Vec<_>>(),
            "failed": failed.iter().map(|(file, why)| json!({"file": file, "error": why})).collect::<Vec<_>>(),
        }))?;
    } else {
        for (file, done) in &synced {
            out.line(&done.line(file))?;
        }
        for (file, why) in &skipped {
            out.line(&format!("{file}: left alone ({why})"))?;
        }
        if synced.is_empty() && skipped.is_empty() && failed.is_empty() {
            out.line(&format!(
                "nothing to send: no spool files in {}",
                args.dir.display()
            ))?;
        }
    }
    match failed.as_slice() {
        [] => Ok(Exit::Success),
        [(file, why)] => Err(CliError::Failed(format!("{file}: {why}"))),
        several => {
            for (file, why) in several {
                note(&format!("{file}: {why}"));
            }
            Err(CliError::Failed(format!(
                "{} spool files could not be sent (each named above); they are kept",
                several.len()
            )))
        }
    }
}

/// The spool files in `dir`, oldest first.
fn spool_files(dir: &Path) -> Result<Vec<PathBuf>, CliError> {
    let entries = std::fs::read_dir(dir).map_err(|e| {
        CliError::Failed(format!(
            "cannot read the spool folder {}: {e} (a logger names its folder when it starts spooling; default ~/.cache/strata/spool)",
            dir.display()
        ))
    })?;
    let mut files: Vec<(std::time::SystemTime, PathBuf)> = entries
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(SUFFIX))
        .filter_map(|e| {
            let meta = e.metadata().ok().filter(|m| m.is_file())?;
            Some((meta.modified().ok()?, e.path()))
        })
        .collect();
    files.sort();
    Ok(files.into_iter().map(|(_, path)| path).collect())
}

/// A spool file, read up to its first short or damaged entry.
struct Spool {
    create: CreateRunRequest,
    addr: String,
    tls_ca: String,
    /// The entries after the header, in order.
    entries: Vec<Entry>,
    unread_tail: Option<String>,
}

fn read_spool(path: &Path) -> Result<Spool, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read it: {e}"))?;
    let mut entries = Vec::new();
    let mut offset = 0usize;
    let mut unread_tail = None;
    while offset < bytes.len() {
        let Some(header) = bytes.get(offset..offset + 8) else {
            unread_tail = Some(format!(
                "{} byte(s) at byte {offset} are not a whole entry (a write cut short)",
                bytes.len() - offset
            ));
            break;
        };
        let length = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
        let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
        let payload = bytes.get(offset + 8..offset + 8 + length);
        let Some(payload) = payload.filter(|_| length > 0 && length <= MAX_ENTRY_BYTES) else {
            unread_tail = Some(format!(
                "the entry at byte {offset} runs past the end of the file (a write cut short)"
            ));
            break;
        };
        if crc32fast::hash(payload) != crc {
            unread_tail = Some(format!(
                "the entry at byte {offset} does not match its checksum"
            ));
            break;
        }
        match SpoolEntry::decode(payload) {
            Ok(SpoolEntry { entry: Some(entry) }) => entries.push(entry),
            _ => {
                unread_tail = Some(format!("the entry at byte {offset} does not decode"));
                break;
            }
        }
        offset += 8 + length;
    }
    let mut entries = entries.into_iter();
    let Some(Entry::Header(header)) = entries.next() else {
        return Err(
            "it does not start with its header (not a spool file, or damaged at its start)".into(),
        );
    };
    let create = header
        .create
        .filter(|c| !c.client_key.is_empty())
        .ok_or("its header names no run (no CreateRun request with a client key)")?;
    Ok(Spool {
        create,
        addr: header.addr,
        tls_ca: header.tls_ca,
        entries: entries.collect(),
        unread_tail,
    })
}

/// The daemon a spool goes to: `--addr` when given, else the one its logger was logging to.
async fn connection<'a>(
    connections: &'a mut Vec<(String, Client)>,
    global: &GlobalArgs,
    spool: &Spool,
) -> Result<&'a Client, String> {
    let addr = match global.addr.first() {
        Some(addr) => addr.clone(),
        None if !spool.addr.is_empty() => spool.addr.clone(),
        None => crate::commands::DEFAULT_ADDR.to_string(),
    };
    if let Some(at) = connections.iter().position(|(a, _)| *a == addr) {
        return Ok(&connections[at].1);
    }
    let ca_file = global.tls_ca.clone().or_else(|| {
        (!spool.tls_ca.is_empty() && global.addr.is_empty()).then(|| PathBuf::from(&spool.tls_ca))
    });
    let tls_ca = match ca_file {
        Some(path) => Some(
            std::fs::read(&path)
                .map_err(|e| format!("cannot read the CA file {}: {e}", path.display()))?,
        ),
        None => None,
    };
    let client = Client::connect_with(&addr, global.token.clone(), tls_ca)
        .await
        .map_err(|e| e.to_string())?;
    connections.push((addr, client));
    Ok(&connections.last().expect("just pushed").1)
}

/// What sending one spool did.
struct Sent {
    run_id: String,
    status: String,
    created: bool,
    epochs: usize,
    epochs_stored: u32,
    steps: usize,
    steps_stored: u32,
    steps_refused: Option<String>,
}

impl Sent {
    fn line(&self, file: &str) -> String {
        let mut line = format!(
            "{file}: run {} {}: {} epoch(s) sent ({} new), {} step(s) ({} new)",
            self.run_id,
            self.status,
            self.epochs,
            self.epochs_stored,
            self.steps,
            self.steps_stored
        );
        if self.created {
            line.push_str("; the run was created");
        }
        if let Some(why) = &self.steps_refused {
            line.push_str(&format!("; later steps refused: {why}"));
        }
        line
    }

    fn json(&self, file: &str) -> Value {
        json!({
            "file": file, "run_id": self.run_id, "status": self.status, "created": self.created,
            "epochs": self.epochs, "epochs_stored": self.epochs_stored,
            "steps": self.steps, "steps_stored": self.steps_stored,
            "steps_refused": self.steps_refused,
        })
    }
}

/// Sends a spool: the run found again (or created) by its key, then its records in order. A run
/// that ended takes nothing more: its spooled epochs must be stored already.
async fn replay(mut grpc: StrataGrpc, spool: &Spool) -> Result<Sent, tonic::Status> {
    let created = grpc.create_run(spool.create.clone()).await?.into_inner();
    let run = created.run.unwrap_or_default();
    let mut status = RunStatus::try_from(run.status).unwrap_or(RunStatus::Unspecified);
    // A run that had ended before this replay takes nothing more; one that ends during it (its
    // spooled finish, a diverged epoch) simply takes nothing after that.
    let ended_before = status != RunStatus::Running;
    let mut sent = Sent {
        run_id: run.id.clone(),
        status: status.label().to_string(),
        created: !created.existing,
        epochs: 0,
        epochs_stored: 0,
        steps: 0,
        steps_stored: 0,
        steps_refused: None,
    };
    let mut epochs: Vec<EpochRecord> = Vec::new();
    let mut steps: Vec<StepRecord> = Vec::new();
    let entries = spool.entries.iter().map(Some).chain([None]);
    for entry in entries {
        let ended = status != RunStatus::Running;
        if !matches!(entry, Some(Entry::Epochs(_))) && !epochs.is_empty() {
            let batch = std::mem::take(&mut epochs);
            sent.epochs += batch.len();
            if ended {
                let beyond = batch.iter().find(|e| e.epoch > run.epochs_done);
                if let Some(beyond) = beyond.filter(|_| ended_before) {
                    return Err(tonic::Status::failed_precondition(format!(
                        "run {} is {} with {} epoch(s); the spool holds epoch {}, which it can no longer take",
                        run.id,
                        status.label(),
                        run.epochs_done,
                        beyond.epoch
                    )));
                }
            } else {
                for chunk in batch.chunks(EPOCHS_PER_CALL) {
                    let answer = grpc
                        .log_epochs(LogEpochsRequest {
                            run: run.id.clone(),
                            epochs: chunk.to_vec(),
                        })
                        .await?
                        .into_inner();
                    sent.epochs_stored += answer.stored;
                    status = RunStatus::try_from(answer.status).unwrap_or(status);
                }
            }
        }
        if !matches!(entry, Some(Entry::Steps(_))) && !steps.is_empty() {
            let batch = std::mem::take(&mut steps);
            sent.steps += batch.len();
            if !ended && sent.steps_refused.is_none() {
                for chunk in batch.chunks(STEPS_PER_CALL) {
                    match grpc
                        .log_steps(LogStepsRequest {
                            run: run.id.clone(),
                            steps: chunk.to_vec(),
                        })
                        .await
                    {
                        Ok(answer) => sent.steps_stored += answer.into_inner().stored,
                        // The run's bound on steps: the epochs still count.
                        Err(refused) if refused.code() == Code::ResourceExhausted => {
                            sent.steps_refused = Some(refused.message().to_string());
                            break;
                        }
                        Err(err) => return Err(err),
                    }
                }
            }
        }
        match entry {
            Some(Entry::Epochs(batch)) => epochs.extend(batch.epochs.iter().cloned()),
            Some(Entry::Steps(batch)) => steps.extend(batch.steps.iter().cloned()),
            Some(Entry::Finish(finish)) if status == RunStatus::Running => {
                let ended = grpc
                    .finish_run(FinishRunRequest {
                        run: run.id.clone(),
                        ..finish.clone()
                    })
                    .await?
                    .into_inner();
                status = ended
                    .run
                    .and_then(|r| RunStatus::try_from(r.status).ok())
                    .unwrap_or(status);
            }
            // A second header, or a finish after the end: nothing to send.
            Some(Entry::Finish(_)) | Some(Entry::Header(_)) | None => {}
        }
    }
    sent.status = status.label().to_string();
    Ok(sent)
}

/// A daemon's refusal or a failed connection, for the one line about a file.
fn describe(status: &tonic::Status, addr: &str) -> String {
    match status.code() {
        Code::Unavailable => {
            format!("cannot reach stratad at {addr} (is it running?); the file is kept")
        }
        Code::Unauthenticated => format!(
            "{} (set --token or STRATA_TOKEN); the file is kept",
            status.message()
        ),
        _ => format!("stratad refused it: {}; the file is kept", status.message()),
    }
}
