//! Each run's analysis with the default thresholds, kept until what it was made from changes.
//!
//! Analysing a run reads and decodes every one of its epochs; the runs page lists (and the
//! verdict filter judges) every listed run, up to once a second while runs log. An entry is keyed
//! by what the analysis depends on: the run's record (status, facts, config, resumes…) and its
//! number of stored epochs. An end, a resume (which may retrain dropped epochs: it counts a resume
//! first), any change of the record makes the entry stale; so does every new epoch of a short
//! run. A long run that only gained epochs since (one being logged or trained, its record
//! unchanged) is served its entry until it gained more than 1/[`REANALYSE_AFTER_GROWTH_DIVISOR`]
//! of them: re-analysing 150,000 epochs on every new one, for every list an open runs page makes,
//! kept the daemon busy; this way the work per logged epoch is bounded (a re-analysis of N epochs
//! every N/100 epochs), and the analysis says which epochs it covers (`epochs`).

use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicU64, Ordering},
        Mutex,
    },
};

use crate::{
    analysis::RunAnalysis,
    domain::{RunId, RunRecord},
};

/// Runs whose analysis is kept; beyond it an arbitrary entry makes room (it is recomputed when
/// read again). A few KB each: ~50 MB at most.
const MAX_CACHED_ANALYSES: usize = 20_000;
/// A run that only gained epochs is re-analysed once it gained more than 1/this of them.
const REANALYSE_AFTER_GROWTH_DIVISOR: u32 = 100;

struct Entry {
    record: RunRecord,
    epochs_done: u32,
    analysis: RunAnalysis,
}

#[derive(Default)]
pub struct AnalysisCache {
    entries: Mutex<HashMap<RunId, Entry>>,
    /// Analyses computed because none was cached (what a test observes).
    misses: AtomicU64,
}

impl AnalysisCache {
    /// The run's cached analysis if it was made from this record and, but for at most 1 % more
    /// (rounded down: none for a run under 100 epochs), this many epochs; otherwise
    /// `analyse()`'s, which is kept for next time.
    pub fn get_or_analyse<E>(
        &self,
        record: &RunRecord,
        epochs_done: u32,
        analyse: impl FnOnce() -> Result<RunAnalysis, E>,
    ) -> Result<RunAnalysis, E> {
        if let Some(entry) = self.lock().get(&record.id) {
            let grown = epochs_done.checked_sub(entry.epochs_done);
            let fresh_enough = grown
                .is_some_and(|grown| grown <= entry.epochs_done / REANALYSE_AFTER_GROWTH_DIVISOR);
            if fresh_enough && entry.record == *record {
                return Ok(entry.analysis.clone());
            }
        }
        self.misses.fetch_add(1, Ordering::Relaxed);
        let analysis = analyse()?;
        // Only an analysis of exactly the epochs counted is kept: one that landed in between
        // made it of more epochs than the key says.
        if analysis.epochs == epochs_done {
            let mut entries = self.lock();
            if entries.len() >= MAX_CACHED_ANALYSES && !entries.contains_key(&record.id) {
                if let Some(evicted) = entries.keys().next().copied() {
                    entries.remove(&evicted);
                }
            }
            entries.insert(
                record.id,
                Entry {
                    record: record.clone(),
                    epochs_done,
                    analysis: analysis.clone(),
                },
            );
        }
        Ok(analysis)
    }

    /// Forgets a deleted run.
    pub fn forget(&self, run: RunId) {
        self.lock().remove(&run);
    }

    /// How many analyses were computed rather than served from the cache.
    pub fn misses(&self) -> u64 {
        self.misses.load(Ordering::Relaxed)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<RunId, Entry>> {
        // An entry is inserted whole: a panic elsewhere cannot leave one half-written.
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::RunStatus;

    /// An analysis of no epochs, said to be of `epochs`: what the cache keeps is what counts.
    fn analysis_of(epochs: u32) -> RunAnalysis {
        let record = RunRecord::example(RunId(1));
        RunAnalysis {
            epochs,
            ..crate::analysis::analyse(&record, &[], &Default::default())
        }
    }

    #[test]
    fn an_entry_serves_until_an_epoch_lands_or_the_record_changes() {
        let cache = AnalysisCache::default();
        let mut record = RunRecord::example(RunId(1));
        let get = |record: &RunRecord, epochs| {
            cache
                .get_or_analyse(record, epochs, || Ok::<_, ()>(analysis_of(epochs)))
                .unwrap()
        };
        assert_eq!(get(&record, 3).epochs, 3);
        assert_eq!(cache.misses(), 1);
        assert_eq!(get(&record, 3).epochs, 3);
        assert_eq!(
            cache.misses(),
            1,
            "the second read is served from the cache"
        );

        assert_eq!(get(&record, 4).epochs, 4, "a new epoch invalidates");
        assert_eq!(cache.misses(), 2);

        record.status = RunStatus::Completed;
        get(&record, 4);
        assert_eq!(cache.misses(), 3, "a changed record invalidates");
        get(&record, 4);
        assert_eq!(cache.misses(), 3);

        cache.forget(record.id);
        get(&record, 4);
        assert_eq!(cache.misses(), 4, "a forgotten run is analysed again");
    }

    #[test]
    fn a_long_run_that_only_gained_epochs_is_reanalysed_after_one_percent_more() {
        let cache = AnalysisCache::default();
        let record = RunRecord::example(RunId(1));
        let get = |epochs| {
            cache
                .get_or_analyse(&record, epochs, || Ok::<_, ()>(analysis_of(epochs)))
                .unwrap()
        };
        get(10_000);
        assert_eq!(get(10_100).epochs, 10_000, "within 1 %: the entry serves");
        assert_eq!(cache.misses(), 1);
        assert_eq!(get(10_101).epochs, 10_101, "beyond it: analysed again");
        assert_eq!(cache.misses(), 2);
        assert_eq!(get(9_000).epochs, 9_000, "fewer epochs than analysed");
        assert_eq!(cache.misses(), 3);
    }

    #[test]
    fn an_analysis_of_other_epochs_than_counted_is_not_kept() {
        let cache = AnalysisCache::default();
        let record = RunRecord::example(RunId(1));
        // An epoch landed between counting and reading: the analysis saw 6.
        let first = cache.get_or_analyse(&record, 5, || Ok::<_, ()>(analysis_of(6)));
        assert_eq!(first.unwrap().epochs, 6);
        let _ = cache.get_or_analyse(&record, 5, || Ok::<_, ()>(analysis_of(5)));
        assert_eq!(cache.misses(), 2);
    }
}
