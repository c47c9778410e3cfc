//! `stratad check --data-dir DIR [--repair] [--json]`: verifies a data dir while no daemon uses it
//! — every record decodes, every run's epochs are 1..N, the run folders agree with the records,
//! every checkpoint's checksum verifies — and prints a report. Exit 0 when healthy, 1 when damage
//! is found (with `--repair`: when damage is left after repairing), 2 when it cannot check.
//!
//! Without `--repair` nothing in the data dir is changed: sled recovers a damaged log by writing
//! to it, so the check opens a copy of the store (taken while holding the store's lock, so no
//! daemon writes meanwhile). With `--repair` the store is opened in place; one that cannot be
//! opened or read is moved aside (`db.damaged-SECONDS`) and rebuilt from the run folders, and one
//! that lost records is first copied into a fresh store (the old one kept aside the same way;
//! [`crate::store`] says why). Then the repair is verified: the data dir is checked again as the
//! next start would see it (the store closed and opened afresh from a copy), and that check is
//! what the report's "remaining" and the exit code say.

use std::{
    fs::File,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use fs2::FileExt;
use serde_json::{json, Value};

use crate::{
    integrity::{self, Checkpoints, Finding, Inspection, Repair, Report},
    store::{now_ms, OpenError, Store},
};

pub struct CheckOptions {
    pub data_dir: PathBuf,
    pub repair: bool,
    pub json: bool,
}

/// Exit codes of `stratad check`.
pub const HEALTHY: u8 = 0;
pub const DAMAGED: u8 = 1;
pub const CANNOT_CHECK: u8 = 2;

/// Runs the check (and repair) and prints the report on stdout; returns the exit code.
pub fn run(options: &CheckOptions) -> u8 {
    let outcome = if options.repair {
        check_and_repair(&options.data_dir)
    } else {
        check_copy(&options.data_dir, Lock::Now)
    };
    match outcome {
        Ok(report) => {
            if options.json {
                println!("{}", report_json(&report));
            } else {
                print!("{}", report_text(&report));
            }
            if report.healthy() {
                HEALTHY
            } else {
                DAMAGED
            }
        }
        Err(message) => {
            eprintln!("stratad check: {message}");
            CANNOT_CHECK
        }
    }
}

/// A folder removed when dropped (the store's copy).
struct ScratchDir(PathBuf);

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}

fn lock_error(data_dir: &Path) -> String {
    format!(
        "a stratad is using the data dir {}: stop it first (the check reads the store while nothing writes it)",
        data_dir.display()
    )
}

/// Why a store did not open: the damage a check reports (and a repair moves aside), or (`Err`)
/// why the check cannot go on at all.
fn damage_or_refusal(err: OpenError, data_dir: &Path) -> Result<String, String> {
    match err {
        OpenError::Damaged(problem) => Ok(problem),
        OpenError::Locked => Err(lock_error(data_dir)),
        OpenError::Io(message) => Err(message),
        refused @ (OpenError::NewerFormat(_) | OpenError::BadFormatFile(_)) => {
            Err(refused.describe(data_dir).to_string())
        }
    }
}

fn require_data_dir(data_dir: &Path) -> Result<(), String> {
    if !data_dir.is_dir() {
        return Err(format!(
            "{} is not a data dir (no such folder)",
            data_dir.display()
        ));
    }
    Ok(())
}

/// How long a repair waits for sled's threads to let go of the store it wrote (they may hold its
/// lock a moment after the last handle is dropped).
const RELEASE_WAIT: Duration = Duration::from_secs(10);
const RELEASE_POLL: Duration = Duration::from_millis(20);

/// Whether to wait for the store's lock: a repair reopening what it just closed does; a check
/// finding a daemon at work does not.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Lock {
    Now,
    WhenReleased,
}

/// Checks without changing anything: the store is read from a copy.
fn check_copy(data_dir: &Path, lock: Lock) -> Result<Report, String> {
    require_data_dir(data_dir)?;
    let db_dir = data_dir.join("db");
    // sled holds an exclusive lock on its log while open; holding it too keeps a daemon from
    // starting (and writing) while the copy is taken and checked.
    let _lock = match File::open(db_dir.join("db")) {
        Ok(log) => {
            let waited_until = Instant::now() + RELEASE_WAIT;
            while log.try_lock_exclusive().is_err() {
                if lock == Lock::Now || Instant::now() > waited_until {
                    return Err(lock_error(data_dir));
                }
                std::thread::sleep(RELEASE_POLL);
            }
            Some(log)
        }
        Err(_) => None,
    };
    let scratch = ScratchDir(data_dir.join(format!(".stratad-check-{}", std::process::id())));
    let copy = scratch.0.join("db");
    if db_dir.is_dir() {
        copy_dir(&db_dir, &copy).map_err(|e| {
            format!(
                "cannot copy the store {} to check it: {e}",
                db_dir.display()
            )
        })?;
    }
    // A missing db/ is what a daemon would open as an empty store: check it as one.
    inspect_opened(data_dir, Store::try_open_at(&copy, data_dir))
}

/// Inspects with every checkpoint verified; a store that cannot be opened or read is reported
/// with what the folders say.
fn inspect_opened(data_dir: &Path, opened: Result<Store, OpenError>) -> Result<Report, String> {
    let unreadable = match opened {
        Ok(store) => match integrity::inspect(&store, data_dir, Checkpoints::Verify) {
            Ok(inspection) => {
                let findings = integrity::findings(&inspection);
                return Ok(Report::new(data_dir, Some(&inspection), findings));
            }
            Err(err) => format!(
                "the store in {}/db cannot be read: {err}",
                data_dir.display()
            ),
        },
        Err(err) => format!(
            "the store in {}/db cannot be opened: {}",
            data_dir.display(),
            damage_or_refusal(err, data_dir)?
        ),
    };
    let mut report = Report::new(data_dir, None, Vec::new());
    report.findings.push(Finding {
        run: None,
        kind: "unreadable-store",
        message: format!(
            "{unreadable}; a repair moves it aside and rebuilds it from the run folders"
        ),
        damage: true,
    });
    report.store_unreadable = Some(unreadable);
    Ok(report)
}

/// The store of `data_dir`, opened once sled's threads let go of it (after a repair closed it).
fn open_when_released(data_dir: &Path) -> Result<Store, String> {
    let waited_until = Instant::now() + RELEASE_WAIT;
    loop {
        match Store::try_open_at(&data_dir.join("db"), data_dir) {
            Err(OpenError::Locked) if Instant::now() < waited_until => {
                std::thread::sleep(RELEASE_POLL)
            }
            opened => return opened.map_err(|e| e.describe(data_dir).to_string()),
        }
    }
}

/// Whether the store lost or garbled records (not only a run folder's copies or checkpoints):
/// then the repair writes into a fresh copy of it (see [`crate::store`]'s `rebuild`).
fn store_lost_records(found: &[Finding]) -> bool {
    found.iter().any(|f| {
        f.damage
            && matches!(
                f.kind,
                "unreadable-key"
                    | "unreadable-run"
                    | "run-without-record"
                    | "epochs-without-run"
                    | "unreadable-epochs"
                    | "epoch-gap"
                    | "epochs-missing"
            )
    })
}

/// Copies what the store holds into a fresh store, which takes its place (the old one is kept
/// aside as `db.damaged-SECONDS`), and opens it.
fn rebuild_store(
    store: Store,
    data_dir: &Path,
    repairs: &mut Vec<Repair>,
) -> Result<Store, String> {
    let db_dir = data_dir.join("db");
    let fresh = data_dir.join("db.rebuilding");
    if fresh.exists() {
        // Left by a repair that stopped before it was put in place: never the store in use.
        std::fs::remove_dir_all(&fresh)
            .map_err(|e| format!("cannot remove {}: {e}", fresh.display()))?;
    }
    let copied = store
        .copy_into(&fresh, data_dir)
        .map_err(|e| format!("cannot copy the store into a fresh one: {e}"))?;
    drop(store);
    let aside = data_dir.join(format!("db.damaged-{}", now_ms() / 1000));
    // The old store cannot be moved while sled still holds it: wait for its threads to finish.
    let released = Instant::now() + RELEASE_WAIT;
    while File::open(db_dir.join("db"))
        .and_then(|log| log.try_lock_exclusive())
        .is_err()
        && Instant::now() < released
    {
        std::thread::sleep(RELEASE_POLL);
    }
    std::fs::rename(&db_dir, &aside)
        .and_then(|()| std::fs::rename(&fresh, &db_dir))
        .and_then(|()| crate::durable::sync_dir(data_dir))
        .map_err(|e| {
            format!(
                "cannot put the fresh store in place of {}: {e}",
                db_dir.display()
            )
        })?;
    repairs.push(Repair {
        run: None,
        action: format!(
            "the store lost records: wrote its {copied} readable record(s) into a fresh store before repairing (sled leaves a damaged log segment out when it opens a store, and would go on writing behind it), and kept the old one in {}",
            aside.display()
        ),
        done: true,
    });
    open_when_released(data_dir)
}

/// Opens the store in place, moving it aside (and starting a fresh one) if it cannot be read.
/// Says whether it is a fresh one.
fn open_for_repair(data_dir: &Path, repairs: &mut Vec<Repair>) -> Result<(Store, bool), String> {
    let db_dir = data_dir.join("db");
    let problem = match Store::try_open_at(&db_dir, data_dir) {
        Ok(store) => match store.scan() {
            Ok(_) => return Ok((store, false)),
            Err(err) => format!("it cannot be read: {err}"),
        },
        Err(err) => format!("it cannot be opened: {}", damage_or_refusal(err, data_dir)?),
    };
    let aside = data_dir.join(format!("db.damaged-{}", now_ms() / 1000));
    std::fs::rename(&db_dir, &aside)
        .and_then(|()| crate::durable::sync_dir(data_dir))
        .map_err(|e| {
            format!(
                "cannot move the damaged store {} aside: {e}",
                db_dir.display()
            )
        })?;
    repairs.push(Repair {
        run: None,
        action: format!(
            "the store was damaged ({problem}): moved it aside to {} and started a new one, rebuilt from the run folders",
            aside.display()
        ),
        done: true,
    });
    Store::open(data_dir)
        .map(|store| (store, true))
        .map_err(|e| e.to_string())
}

/// Repairs, then checks again what the repair left on the disk — a fresh open of the store, as
/// the next start makes — and reports that: healthy only if that check is.
fn check_and_repair(data_dir: &Path) -> Result<Report, String> {
    require_data_dir(data_dir)?;
    let mut repairs = Vec::new();
    let before = check_copy(data_dir, Lock::Now)?;
    let (mut store, fresh) = open_for_repair(data_dir, &mut repairs)?;
    let failed = |e: crate::error::StrataError| format!("the repair stopped: {e}");
    for done in integrity::finish_interrupted_deletes(&store, data_dir).map_err(failed)? {
        repairs.push(Repair {
            run: None,
            action: done,
            done: true,
        });
    }
    let mut inspection: Inspection =
        integrity::inspect(&store, data_dir, Checkpoints::Verify).map_err(failed)?;
    if !fresh && store_lost_records(&integrity::findings(&inspection)) {
        store = rebuild_store(store, data_dir, &mut repairs)?;
        inspection = integrity::inspect(&store, data_dir, Checkpoints::Verify).map_err(failed)?;
    }
    repairs.extend(integrity::repair(&store, &inspection).map_err(failed)?);
    store.flush().map_err(failed)?;
    drop(store);
    let after = check_copy(data_dir, Lock::WhenReleased)?;
    let mut report = before;
    // An unreadable store is among these findings too.
    report.remaining = after.findings;
    report.repairs = Some(repairs);
    Ok(report)
}

fn finding_json(finding: &Finding) -> Value {
    json!({
        "kind": finding.kind,
        "run": finding.run.map(|id| id.to_string()),
        "message": finding.message,
    })
}

fn report_json(report: &Report) -> Value {
    let split = |findings: &[Finding], damage: bool| -> Vec<Value> {
        findings
            .iter()
            .filter(|f| f.damage == damage)
            .map(finding_json)
            .collect()
    };
    let mut out = json!({
        "data_dir": report.data_dir.display().to_string(),
        "healthy": report.healthy(),
        "runs": report.run_records,
        "epochs": report.epoch_records,
        "run_folders": report.run_folders,
        "checkpoints": report.checkpoints,
        "checkpoints_verified": report.checkpoints_verified,
        "checkpoints_unverified": report.checkpoints_unverified,
        "problems": split(&report.findings, true),
        "notes": split(&report.findings, false),
    });
    if let Some(repairs) = &report.repairs {
        out["repairs"] = repairs
            .iter()
            .map(|r| {
                json!({
                    "run": r.run.map(|id| id.to_string()),
                    "action": r.action,
                    "done": r.done,
                })
            })
            .collect();
        out["remaining"] = split(&report.remaining, true).into();
    }
    out
}

fn report_text(report: &Report) -> String {
    let mut out = format!("data dir {}\n", report.data_dir.display());
    if report.store_unreadable.is_none() {
        out.push_str(&format!(
            "store: {} run record(s), {} epoch record(s)\n",
            report.run_records, report.epoch_records
        ));
        out.push_str(&format!(
            "run folders: {}, checkpoints: {} ({} verified, {} without a checksum)\n",
            report.run_folders,
            report.checkpoints,
            report.checkpoints_verified,
            report.checkpoints_unverified
        ));
    }
    let list = |out: &mut String, title: &str, findings: &[&Finding]| {
        if !findings.is_empty() {
            out.push_str(&format!("{title}:\n"));
            for finding in findings {
                out.push_str(&format!("  - {}\n", finding.message));
            }
        }
    };
    let problems: Vec<&Finding> = report.findings.iter().filter(|f| f.damage).collect();
    let notes: Vec<&Finding> = report.findings.iter().filter(|f| !f.damage).collect();
    list(&mut out, "damage", &problems);
    list(&mut out, "notes", &notes);
    match &report.repairs {
        None if problems.is_empty() => out.push_str("healthy\n"),
        None => out.push_str(&format!(
            "damaged: {} problem(s). `stratad check --data-dir {} --repair` rebuilds lost records from the runs' checkpoints and moves damaged files aside; it deletes only epoch records it cannot keep consistent (after a lost one), and says which\n",
            problems.len(),
            report.data_dir.display()
        )),
        Some(repairs) => {
            let (done, not): (Vec<&Repair>, Vec<&Repair>) = repairs.iter().partition(|r| r.done);
            let line = |r: &Repair| match r.run {
                Some(id) => format!("  - run {id}: {}\n", r.action),
                None => format!("  - {}\n", r.action),
            };
            if repairs.is_empty() {
                out.push_str("nothing to repair\n");
            }
            if !done.is_empty() {
                out.push_str("repaired:\n");
                done.iter().for_each(|r| out.push_str(&line(r)));
            }
            if !not.is_empty() {
                out.push_str("could not be fully repaired:\n");
                not.iter().for_each(|r| out.push_str(&line(r)));
            }
            let remaining: Vec<&Finding> = report.remaining.iter().filter(|f| f.damage).collect();
            list(&mut out, "still damaged", &remaining);
            out.push_str(if remaining.is_empty() {
                "healthy after the repair\n"
            } else {
                "still damaged after the repair\n"
            });
        }
    }
    out
}

#[cfg(test)]
mod tests;
