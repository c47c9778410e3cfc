//! Reading runs: one with its analysis, a filtered list, a comparison.

use std::sync::Arc;

use super::{blocking, ListFilter, RunDetail, Runs};
use crate::{
    analysis::{self, Comparison, RunAnalysis, Side, Thresholds, TwinComparison},
    domain::{EpochMetrics, RunRecord, RunState},
    error::{Result, StrataError},
};

/// Runs one comparison may name.
const MAX_COMPARED_RUNS: usize = 1000;

impl Runs {
    /// One run, its epochs, and their analysis.
    pub async fn get(self: &Arc<Self>, run: &str, thresholds: Thresholds) -> Result<RunDetail> {
        let id = self.resolve(run).await?;
        let (this, named) = (self.clone(), run.to_string());
        blocking(move || {
            let state = this.state_of(id, &named)?;
            let epochs = this.store.epochs(id, 1)?;
            let analysis = analysis::analyse(&state.record, &epochs, &thresholds);
            let twin = this.twin_comparison(&state.record, &epochs, &analysis, &thresholds)?;
            Ok(RunDetail {
                state,
                epochs,
                analysis,
                twin,
            })
        })
        .await
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
        blocking(move || this.list_blocking(&filter)).await
    }

    fn list_blocking(&self, filter: &ListFilter) -> Result<Vec<RunState>> {
        let listed = self.list_matching(filter, filter.verdict.is_some())?;
        Ok(listed.into_iter().map(|(state, _)| state).collect())
    }

    /// Runs newest first, as the filter says, each with its analysis (default thresholds): what
    /// a list that shows verdicts and best losses needs. Reads every listed run's epochs, so
    /// callers bound it with the filter's limit.
    pub async fn list_analysed(
        self: &Arc<Self>,
        filter: ListFilter,
    ) -> Result<Vec<(RunState, RunAnalysis)>> {
        let this = self.clone();
        blocking(move || {
            let listed = this.list_matching(&filter, true)?;
            Ok(listed
                .into_iter()
                .filter_map(|(state, analysis)| Some((state, analysis?)))
                .collect())
        })
        .await
    }

    /// The runs the filter keeps, newest first, up to its limit; each with its analysis when
    /// `analyse` (a verdict filter needs it anyway).
    fn list_matching(
        &self,
        filter: &ListFilter,
        analyse: bool,
    ) -> Result<Vec<(RunState, Option<RunAnalysis>)>> {
        let limit = filter.limit.unwrap_or(usize::MAX);
        let mut runs = Vec::new();
        for run in self.store.runs_newest_first() {
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
                let epochs = self.store.epochs(record.id, 1)?;
                Some(analysis::analyse(&record, &epochs, &Thresholds::default()))
            } else {
                None
            };
            if let (Some(verdict), Some(analysis)) = (filter.verdict, &analysis) {
                if analysis.verdict != verdict {
                    continue;
                }
            }
            let state = RunState {
                queue_position: self.queue.position(record.id),
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
        blocking(move || this.compare_blocking(&runs, &thresholds)).await
    }

    fn compare_blocking(&self, runs: &[String], thresholds: &Thresholds) -> Result<Comparison> {
        let mut states: Vec<RunState> = Vec::new();
        for run in runs {
            let id = self.store.resolve(run)?;
            if states.iter().any(|seen| seen.record.id == id) {
                continue;
            }
            states.push(self.state_of(id, run)?);
        }
        // Reading and decoding the epochs is most of the work: spread it over the cores.
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let chunk = states.len().div_ceil(threads).max(1);
        let store = &self.store;
        let analysed: Vec<(RunState, Vec<EpochMetrics>)> = std::thread::scope(|scope| {
            let readers: Vec<_> = states
                .chunks(chunk)
                .map(|part| {
                    scope.spawn(move || {
                        part.iter()
                            .map(|state| Ok((state.clone(), store.epochs(state.record.id, 1)?)))
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
        let mut comparison = analysis::compare(analysed, thresholds);
        for compared in &mut comparison.runs {
            compared.twin = self.twin_comparison(
                &compared.run.record,
                &compared.epochs,
                &compared.analysis,
                thresholds,
            )?;
        }
        Ok(comparison)
    }
}
