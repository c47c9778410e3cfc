//! Reading runs: one with its analysis, a filtered list, a comparison — each bounded in what it
//! reads and returns (see [`thinning`]), and analyses served from the cache while a run is unchanged.

use std::sync::{
    atomic::{AtomicBool, Ordering},
    Arc,
};

use super::{
    blocking, blocking_until_abandoned, thinning, EpochsWanted, ListFilter, RunDetail, Runs,
};
use crate::{
    analysis::{self, ComparedRun, Comparison, RunAnalysis, Side, Thresholds, TwinComparison},
    domain::{EpochMetrics, RunId, RunRecord, RunState},
    error::{Result, StrataError},
};

/// Runs one comparison may name.
const MAX_COMPARED_RUNS: usize = 1000;

impl Runs {
    /// One run, the epochs `wanted` asks for (at most [`super::MAX_RETURNED_EPOCHS`], fewer for a run
    /// of many groups: [`thinning::returned_epochs`]), and the analysis of all its epochs.
    pub async fn get(
        self: &Arc<Self>,
        run: &str,
        thresholds: Thresholds,
        wanted: EpochsWanted,
    ) -> Result<RunDetail> {
        let id = self.resolve(run).await?;
        let (this, named) = (self.clone(), run.to_string());
        blocking(move || {
            let mut state = this.state_of(id, &named)?;
            let cap = thinning::returned_epochs(state.record.groups().len());
            let (mut analysis, mut twin) =
                this.analysis_and_twin(&state.record, state.epochs_done, &thresholds)?;
            let (epochs, epochs_thinned, next_epoch) = match wanted {
                EpochsWanted::Whole => {
                    let (epochs, thinned) =
                        this.epochs_spread(id, state.epochs_done, analysis.best_epoch, cap)?;
                    // A run answered whole is answered with the analysis of exactly the epochs
                    // sent: an epoch stored between the two reads, or the cache's allowance for
                    // a run still gaining epochs, must not make them disagree. (At most `cap`
                    // epochs: cheap to analyse again.)
                    if !thinned && analysis.epochs as usize != epochs.len() {
                        analysis = analysis::analyse(&state.record, &epochs, &thresholds);
                        twin =
                            this.twin_comparison(&state.record, &epochs, &analysis, &thresholds)?;
                        state.epochs_done = epochs.len() as u32;
                    }
                    (epochs, thinned, 0)
                }
                EpochsWanted::Page { from_epoch } => {
                    let epochs = this.store.epoch_page(id, from_epoch.max(1), cap)?;
                    let next = match epochs.last() {
                        Some(last) if epochs.len() == cap => last.epoch + 1,
                        _ => 0,
                    };
                    (epochs, false, next)
                }
                EpochsWanted::None => (Vec::new(), state.epochs_done as usize > cap, 0),
            };
            Ok(RunDetail {
                state,
                epochs,
                epochs_thinned,
                next_epoch,
                analysis,
                twin,
            })
        })
        .await
    }

    /// The run's analysis (of every epoch) and its twin comparison (blocking). With the default
    /// thresholds and no twin, the cached analysis: no epoch is read unless the run changed.
    fn analysis_and_twin(
        &self,
        record: &RunRecord,
        epochs_done: u32,
        thresholds: &Thresholds,
    ) -> Result<(RunAnalysis, Option<TwinComparison>)> {
        if *thresholds == Thresholds::default() && record.twin.is_none() {
            return Ok((self.cached_analysis(record, epochs_done)?, None));
        }
        // Not cached: it counts among the analyses computed at once all the same.
        let _turn = self.analyses.computing_turn();
        let epochs = self.store.epochs(record.id, 1)?;
        let analysis = analysis::analyse(record, &epochs, thresholds);
        let twin = self.twin_comparison(record, &epochs, &analysis, thresholds)?;
        Ok((analysis, twin))
    }

    /// The run's analysis with the default thresholds, from the cache while the run is
    /// unchanged (blocking).
    fn cached_analysis(&self, record: &RunRecord, epochs_done: u32) -> Result<RunAnalysis> {
        self.analyses.get_or_analyse(record, epochs_done, || {
            let epochs = self.store.epochs(record.id, 1)?;
            Ok(analysis::analyse(record, &epochs, &Thresholds::default()))
        })
    }

    /// The run's epochs, or when it has more than `cap`, an even spread of `cap` of them that
    /// keeps the first, the best and the last, read one by one; and whether it was thinned.
    /// Stored epochs are numbered from 1 without gaps, so position p is epoch p + 1.
    fn epochs_spread(
        &self,
        id: RunId,
        epochs_done: u32,
        best_epoch: u32,
        cap: usize,
    ) -> Result<(Vec<EpochMetrics>, bool)> {
        let stored = epochs_done as usize;
        if stored <= cap {
            return Ok((self.store.epoch_page(id, 1, cap)?, false));
        }
        let best = best_epoch.checked_sub(1).map(|p| p as usize);
        let numbers: Vec<u32> = thinning::kept_positions(stored, best, cap)
            .into_iter()
            .map(|p| p as u32 + 1)
            .collect();
        Ok((self.store.epochs_numbered(id, &numbers)?, true))
    }

    /// The run against its single-rate twin, when it has one (blocking). A twin deleted since is
    /// no comparison, not an error.
    fn twin_comparison(
        &self,
        record: &RunRecord,
        epochs: &[EpochMetrics],
        analysis: &RunAnalysis,
        thresholds: &Thresholds,
    ) -> Result<Option<TwinComparison>> {
        let Some(twin_id) = record.twin else {
            return Ok(None);
        };
        let Some(twin) = self.store.get_run(twin_id)? else {
            return Ok(None);
        };
        let twin_epochs = self.store.epochs(twin_id, 1)?;
        let twin_analysis = analysis::analyse(&twin, &twin_epochs, thresholds);
        Ok(analysis::compare_with_twin(
            Side {
                record,
                epochs,
                analysis,
            },
            Side {
                record: &twin,
                epochs: &twin_epochs,
                analysis: &twin_analysis,
            },
        ))
    }

    /// Runs newest first, as the filter says.
    pub async fn list(self: &Arc<Self>, filter: ListFilter) -> Result<Vec<RunState>> {
        let this = self.clone();
        blocking_until_abandoned(move |abandoned| {
            let listed = this.list_matching(&filter, filter.verdict.is_some(), abandoned)?;
            Ok(listed.into_iter().map(|(state, _)| state).collect())
        })
        .await
    }

    /// Runs newest first, as the filter says, each with its analysis (default thresholds): what
    /// a list that shows verdicts and best losses needs. A run unchanged since its last analysis
    /// costs no epoch read (the cache).
    pub async fn list_analysed(
        self: &Arc<Self>,
        filter: ListFilter,
    ) -> Result<Vec<(RunState, RunAnalysis)>> {
        let this = self.clone();
        blocking_until_abandoned(move |abandoned| {
            let listed = this.list_matching(&filter, true, abandoned)?;
            Ok(listed
                .into_iter()
                .filter_map(|(state, analysis)| Some((state, analysis?)))
                .collect())
        })
        .await
    }

    /// How many analyses were computed rather than served from the cache.
    pub fn analyses_computed(&self) -> u64 {
        self.analyses.misses()
    }

    /// The runs the filter keeps, newest first, up to its limit; each with its analysis when
    /// `analyse` (a verdict filter needs it anyway). Stops, with what it has, once `abandoned`:
    /// a verdict filter may judge every stored run, and nobody is waiting for the answer.
    fn list_matching(
        &self,
        filter: &ListFilter,
        analyse: bool,
        abandoned: &AtomicBool,
    ) -> Result<Vec<(RunState, Option<RunAnalysis>)>> {
        let limit = filter.limit.unwrap_or(usize::MAX);
        let mut runs = Vec::new();
        for run in self.store.runs_newest_first() {
            if abandoned.load(Ordering::Relaxed) {
                break;
            }
            let (record, epochs_done) = run?;
            let status_ok = filter.status.is_none_or(|s| record.status == s);
            let tag_ok = filter.tag.as_ref().is_none_or(|t| record.tags.contains(t));
            let sweep_ok = filter.sweep.as_ref().is_none_or(|sweep| {
                record
                    .sweep
                    .as_ref()
                    .is_some_and(|trial| &trial.sweep_id == sweep)
            });
            if !(status_ok && tag_ok && sweep_ok) {
                continue;
            }
            let analysis = if analyse {
                Some(self.cached_analysis(&record, epochs_done)?)
            } else {
                None
            };
            if let (Some(verdict), Some(analysis)) = (filter.verdict, &analysis) {
                if analysis.verdict != verdict {
                    continue;
                }
            }
            let (worker, worker_losses) = self.live.remote(record.id);
            let state = RunState {
                queue_position: self.queue.position(record.id),
                worker_pid: self.live.worker_pid(record.id),
                waiting: self.waiting_reason(record.id),
                worker,
                worker_losses,
                record,
                epochs_done,
            };
            runs.push((state, analysis));
            if runs.len() >= limit {
                break;
            }
        }
        Ok(runs)
    }

    /// Analyses the named runs (ids or unique prefixes; a run named twice counts once) and ranks
    /// them by best validation loss.
    pub async fn compare(
        self: &Arc<Self>,
        runs: Vec<String>,
        thresholds: Thresholds,
    ) -> Result<Comparison> {
        if runs.is_empty() {
            return Err(StrataError::invalid(
                "runs",
                "name at least one run (an id or a unique prefix)",
            ));
        }
        if runs.len() > MAX_COMPARED_RUNS {
            return Err(StrataError::invalid(
                "runs",
                format!(
                    "{} runs named; at most {MAX_COMPARED_RUNS} are compared at once",
                    runs.len()
                ),
            ));
        }
        let this = self.clone();
        blocking_until_abandoned(move |abandoned| {
            this.compare_blocking(&runs, &thresholds, abandoned)
        })
        .await
    }

    /// Each run's analysis, twin and epochs (its share of [`thinning::MAX_COMPARED_EPOCHS`]),
    /// then the ranking. Stops once `abandoned`.
    fn compare_blocking(
        &self,
        runs: &[String],
        thresholds: &Thresholds,
        abandoned: &AtomicBool,
    ) -> Result<Comparison> {
        let mut states: Vec<RunState> = Vec::new();
        for run in runs {
            let id = self.store.resolve(run)?;
            if states.iter().any(|seen| seen.record.id == id) {
                continue;
            }
            states.push(self.state_of(id, run)?);
        }
        let compared_runs = states.len();
        // Reading and decoding the epochs is most of the work: spread it over the cores. Each
        // run's epochs are thinned as soon as it is analysed, so memory holds at most one whole
        // run per core.
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let chunk = states.len().div_ceil(threads).max(1);
        let compared: Vec<ComparedRun> = std::thread::scope(|scope| {
            let readers: Vec<_> = states
                .chunks(chunk)
                .map(|part| {
                    scope.spawn(move || {
                        part.iter()
                            .take_while(|_| !abandoned.load(Ordering::Relaxed))
                            .map(|state| {
                                let cap = thinning::compared_epochs_per_run(
                                    compared_runs,
                                    state.record.groups().len(),
                                );
                                self.compared_run(state.clone(), thresholds, cap)
                            })
                            .collect::<Result<Vec<_>>>()
                    })
                })
                .collect();
            readers
                .into_iter()
                .map(|reader| {
                    reader
                        .join()
                        .map_err(|_| StrataError::Internal("an epoch reader failed".into()))?
                })
                .collect::<Result<Vec<Vec<_>>>>()
                .map(|parts| parts.into_iter().flatten().collect())
        })?;
        Ok(analysis::rank(compared))
    }

    /// One run of a comparison: analysed, with its twin and at most `cap` epochs (blocking).
    fn compared_run(
        &self,
        state: RunState,
        thresholds: &Thresholds,
        cap: usize,
    ) -> Result<ComparedRun> {
        let (analysis, twin) =
            self.analysis_and_twin(&state.record, state.epochs_done, thresholds)?;
        let (epochs, epochs_thinned) =
            self.epochs_spread(state.record.id, state.epochs_done, analysis.best_epoch, cap)?;
        Ok(ComparedRun {
            run: state,
            analysis,
            epochs,
            epochs_thinned,
            rank: 0,
            twin,
        })
    }
}
