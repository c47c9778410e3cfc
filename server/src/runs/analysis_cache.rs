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
        Arc, Condvar, Mutex,
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
/// Analyses computed at once, daemon-wide. Analysing a run holds all its epochs decoded — up to
/// ~250 MB for the largest external run (2,500,000 epoch × group records) — so this bounds what
/// any number of pages, lists and compares asking at once can hold.
const MAX_ANALYSES_AT_ONCE: usize = 2;
/// Epoch × group records an analysis must have held for the allocator to be asked to give its
/// memory back (a trim walks the heap: not after every small run's analysis).
const TRIM_AFTER_RECORDS: usize = 100_000;

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
    /// Per run being analysed, a lock its other askers wait on: they then find the entry its
    /// first asker made, instead of analysing it again at the same time (four pages of one long
    /// run opened at once held four copies of its epochs).
    in_flight: Mutex<HashMap<RunId, Arc<Mutex<()>>>>,
    /// Analyses being computed, at most [`MAX_ANALYSES_AT_ONCE`].
    computing: (Mutex<usize>, Condvar),
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
        if let Some(analysis) = self.cached(record, epochs_done) {
            return Ok(analysis);
        }
        // One asker per run analyses; the others wait for it and read what it kept.
        let asking = Asking::new(self, record.id);
        let _this_run = asking.lock();
        if let Some(analysis) = self.cached(record, epochs_done) {
            return Ok(analysis);
        }
        self.misses.fetch_add(1, Ordering::Relaxed);
        let analysis = {
            let _turn = self.computing_turn();
            analyse()
        };
        // A long run's analysis leaves its memory in the allocator's arenas: hand it back.
        let records = epochs_done as usize * record.parameters.len().max(1);
        if records >= TRIM_AFTER_RECORDS {
            release_memory_to_the_system();
        }
        let analysis = analysis?;
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

    /// The run's entry, if it was made from this record and (but for the allowance) these epochs.
    fn cached(&self, record: &RunRecord, epochs_done: u32) -> Option<RunAnalysis> {
        let entries = self.lock();
        let entry = entries.get(&record.id)?;
        let grown = epochs_done.checked_sub(entry.epochs_done);
        let fresh_enough =
            grown.is_some_and(|grown| grown <= entry.epochs_done / REANALYSE_AFTER_GROWTH_DIVISOR);
        (fresh_enough && entry.record == *record).then(|| entry.analysis.clone())
    }

    /// Waits until fewer than [`MAX_ANALYSES_AT_ONCE`] analyses are being computed; the turn
    /// ends when the guard is dropped.
    pub fn computing_turn(&self) -> impl Drop + '_ {
        struct Turn<'a>(&'a (Mutex<usize>, Condvar));
        impl Drop for Turn<'_> {
            fn drop(&mut self) {
                let (count, freed) = self.0;
                *count.lock().unwrap_or_else(|p| p.into_inner()) -= 1;
                freed.notify_one();
            }
        }
        let (count, freed) = &self.computing;
        let mut computing = count.lock().unwrap_or_else(|p| p.into_inner());
        while *computing >= MAX_ANALYSES_AT_ONCE {
            computing = freed.wait(computing).unwrap_or_else(|p| p.into_inner());
        }
        *computing += 1;
        Turn(&self.computing)
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

/// One asker's hold on a run's lock in [`AnalysisCache::in_flight`]; the last to let go removes
/// it (clones are made and dropped only under the map's lock, so the count is exact).
struct Asking<'a> {
    cache: &'a AnalysisCache,
    run: RunId,
    lock: Option<Arc<Mutex<()>>>,
}

impl<'a> Asking<'a> {
    fn new(cache: &'a AnalysisCache, run: RunId) -> Self {
        let lock = cache
            .in_flight
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(run)
            .or_default()
            .clone();
        Asking {
            cache,
            run,
            lock: Some(lock),
        }
    }

    /// Waits for the run's lock (held while its analysis is computed).
    fn lock(&self) -> std::sync::MutexGuard<'_, ()> {
        self.lock
            .as_ref()
            .expect("held until dropped")
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }
}

impl Drop for Asking<'_> {
    fn drop(&mut self) {
        let mut in_flight = self
            .cache
            .in_flight
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        drop(self.lock.take());
        if in_flight
            .get(&self.run)
            .is_some_and(|lock| Arc::strong_count(lock) == 1)
        {
            in_flight.remove(&self.run);
        }
    }
}

/// Gives the memory an analysis freed back to the system: glibc keeps freed small blocks in its
/// per-thread arenas, so after a long run's analysis (millions of small allocations, on a
/// blocking thread) the daemon's resident memory stayed at its peak.
fn release_memory_to_the_system() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free memory to the system; it has no preconditions.
    unsafe {
        libc::malloc_trim(0);
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

    /// Four askers of one run at once: one analyses it, the others wait for its entry (its
    /// analysis returns only once they all wait).
    #[test]
    fn askers_of_a_run_being_analysed_wait_for_it_instead_of_analysing_it_too() {
        let cache = Arc::new(AnalysisCache::default());
        let record = RunRecord::example(RunId(1));
        let askers: Vec<_> = (0..4)
            .map(|_| {
                let (cache, record) = (cache.clone(), record.clone());
                std::thread::spawn(move || {
                    cache
                        .get_or_analyse(&record, 7, || {
                            // The run's lock is held by the map, this asker and the three others.
                            while Arc::strong_count(&cache.in_flight.lock().unwrap()[&record.id])
                                < 1 + 4
                            {
                                std::thread::yield_now();
                            }
                            Ok::<_, ()>(analysis_of(7))
                        })
                        .unwrap()
                })
            })
            .collect();
        for asker in askers {
            assert_eq!(asker.join().unwrap().epochs, 7);
        }
        assert_eq!(cache.misses(), 1);
        assert!(cache.in_flight.lock().unwrap().is_empty());
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
