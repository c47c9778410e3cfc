//! Run records: ids handed out, records written durably and read back, runs left unfinished by a
//! stop, runs deleted.

use std::sync::atomic::Ordering;

use super::{
    now_ms,
    record::{self, decode_stored_run},
    upgrade, Store,
};
use crate::{
    domain::{scramble, RunId, RunIdTag, RunRecord, RunStatus},
    error::{Result, StrataError},
};

/// A stored run record, read back. Records of a store not yet upgraded (see [`upgrade`]) have no
/// facts: they are estimated from the record alone.
fn decode_run(bytes: &[u8]) -> Result<RunRecord> {
    decode_stored_run(bytes)
        .and_then(|stored| stored.to_domain(|run| upgrade::legacy_facts(run, &[])))
        .map_err(|e| StrataError::storage_from("a run record", e))
}

impl Store {
    /// A fresh id, greater than every id handed out before (also across restarts), and unlike
    /// any other daemon's (see [`RunId::next`]).
    pub fn next_run_id(&self) -> RunId {
        let now = now_ms().max(0) as u64;
        let mut last = self.last_id.load(Ordering::Relaxed);
        loop {
            let next = RunId::next(last, now, self.run_id_tag);
            match self
                .last_id
                .compare_exchange(last, next.0, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return next,
                Err(actual) => last = actual,
            }
        }
    }

    /// This daemon's part of every run id it makes.
    pub fn run_id_tag(&self) -> RunIdTag {
        self.run_id_tag
    }

    /// Writes a run record, durably.
    pub fn put_run(&self, run: &RunRecord) -> Result<()> {
        self.put_runs(std::slice::from_ref(run))
    }

    /// Writes several run records with one sync: once it returns all are on the disk (a run and
    /// its single-rate twin are stored together or not at all, as far as a crash can tell: a
    /// torn write leaves neither visible to readers, who wait for the sync).
    pub fn put_runs(&self, runs: &[RunRecord]) -> Result<()> {
        self.write_durably(|| {
            let mut records = sled::Batch::default();
            let mut shown = sled::Batch::default();
            for run in runs {
                records.insert(&run.id.key(), record::encode_run(run));
                if run.id.is_short() {
                    shown.insert(&scramble(run.id.0).to_be_bytes(), &run.id.key());
                }
            }
            self.runs.apply_batch(records)?;
            self.shown_ids.apply_batch(shown)?;
            Ok(())
        })
    }

    pub fn get_run(&self, id: RunId) -> Result<Option<RunRecord>> {
        let _visible = self.readable()?;
        let Some(bytes) = self.runs.get(id.key())? else {
            return Ok(None);
        };
        decode_run(&bytes).map(Some)
    }

    /// A run's record and the number of its last stored epoch, read together.
    pub fn get_run_with_epochs_done(&self, id: RunId) -> Result<Option<(RunRecord, u32)>> {
        let _visible = self.readable()?;
        let Some(bytes) = self.runs.get(id.key())? else {
            return Ok(None);
        };
        Ok(Some((decode_run(&bytes)?, self.last_epoch(id)?)))
    }

    /// Whether the store has a record under this run's key (readable or not).
    pub fn has_run(&self, id: RunId) -> Result<bool> {
        let _visible = self.readable()?;
        Ok(self.runs.contains_key(id.key())?)
    }

    /// Reads a run, changes it and writes it back, durably.
    pub fn update_run(&self, id: RunId, change: impl FnOnce(&mut RunRecord)) -> Result<RunRecord> {
        let mut run = self
            .get_run(id)?
            .ok_or_else(|| StrataError::RunNotFound(id.to_string()))?;
        change(&mut run);
        self.put_run(&run)?;
        Ok(run)
    }

    /// Reads runs, changes each and writes them back in one durable write (one sync for all). A
    /// run not found is skipped.
    pub fn update_runs(&self, ids: &[RunId], change: impl Fn(&mut RunRecord)) -> Result<()> {
        let mut runs = Vec::with_capacity(ids.len());
        for &id in ids {
            if let Some(mut run) = self.get_run(id)? {
                change(&mut run);
                runs.push(run);
            }
        }
        self.put_runs(&runs)
    }

    /// Every external run's client key (those that have one), and the run it names. A record
    /// that does not decode is skipped (the integrity check reports it).
    pub fn client_keys(&self) -> Result<std::collections::HashMap<String, RunId>> {
        let _visible = self.readable()?;
        let mut keys = std::collections::HashMap::new();
        for entry in self.runs.iter() {
            let (key, bytes) = entry?;
            let Ok(run) = decode_run(&bytes) else {
                continue;
            };
            if let crate::domain::RunOrigin::External { client_key, .. } = run.origin {
                if !client_key.is_empty() {
                    keys.insert(client_key, RunId::from_key(&key)?);
                }
            }
        }
        Ok(keys)
    }

    /// Every run with its number of stored epochs, newest first.
    pub fn runs_newest_first(&self) -> impl Iterator<Item = Result<(RunRecord, u32)>> + '_ {
        let mut entries = self.runs.iter().rev();
        std::iter::from_fn(move || {
            let _visible = match self.readable() {
                Ok(guard) => guard,
                Err(err) => return Some(Err(err)),
            };
            let entry = entries.next()?;
            Some(entry.map_err(StrataError::from).and_then(|(key, bytes)| {
                Ok((
                    decode_run(&bytes)?,
                    self.last_epoch(RunId::from_key(&key)?)?,
                ))
            }))
        })
    }

    /// Marks runs that a crash or a kill left `queued` or `running` as `interrupted` — or, when
    /// every planned epoch was stored, as they ended: after its last epoch's record a run only
    /// records its end (`completed`, or `diverged` if that epoch's validation loss was not
    /// finite), so a stop in between (or a store that lost that update) changes nothing else.
    /// Returns how many were marked.
    pub fn mark_unfinished_interrupted(&self) -> Result<usize> {
        let unfinished: Vec<(RunRecord, u32)> = self
            .runs_newest_first()
            .filter(|run| run.as_ref().map_or(true, |(run, _)| run.status.is_live()))
            .collect::<Result<_>>()?;
        let mut marked = Vec::with_capacity(unfinished.len());
        for (mut run, done) in unfinished.iter().cloned() {
            let was = run.status.label();
            let planned = run.planned_epochs();
            let last = match done {
                done if planned > 0 && done >= planned => {
                    self.epochs(run.id, done)?.into_iter().next()
                }
                _ => None,
            };
            match last {
                Some(last) if last.val_loss.is_finite() => {
                    run.status = RunStatus::Completed;
                    run.reason = format!(
                        "stratad stopped after the run's last epoch ({}) was stored, before its end was recorded",
                        last.epoch
                    );
                }
                Some(last) => {
                    run.status = RunStatus::Diverged;
                    run.reason = format!(
                        "the validation loss became {} at epoch {} (recorded when stratad restarted)",
                        last.val_loss, last.epoch
                    );
                }
                None if run.is_external() => {
                    run.status = RunStatus::Interrupted;
                    run.reason = "stratad stopped while the run was being logged from outside; its epochs so far are kept".into();
                }
                None => {
                    run.status = RunStatus::Interrupted;
                    run.reason =
                        format!("stratad stopped while the run was {was}; resume it to continue");
                }
            }
            run.finished_at_ms = now_ms();
            marked.push(run);
        }
        // One sync for all: a stop with thousands of runs queued must not make the next start
        // slow.
        self.put_runs(&marked)?;
        Ok(unfinished.len())
    }

    /// Removes a run and all its epochs, durably. The run goes first: a crash in between leaves
    /// unreachable epochs, never a run with some of its epochs missing.
    pub fn delete_run(&self, run: RunId) -> Result<()> {
        self.write_durably(|| {
            self.runs.remove(run.key())?;
            self.shown_ids.remove(scramble(run.0).to_be_bytes())?;
            self.remove_epochs(run, 0)
        })
    }
}
