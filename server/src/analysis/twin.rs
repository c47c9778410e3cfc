//! The seed's question: did the layer rates help? A run against its single-rate twin (same data,
//! split, seed, initialization, model, optimizer, schedule and epochs, every group at one rate):
//! whether it reached the twin's best validation loss sooner, ended lower, generalized better, and
//! with what verdicts — in one sentence with its numbers.

use super::{
    text::{gap, loss, percent, rate},
    RunAnalysis,
};
use crate::domain::{EpochMetrics, RunId, RunRecord, Verdict};

/// Best validation losses within this fraction of each other: no difference worth a verdict.
pub const TWIN_SAME_WITHIN: f64 = 0.01;

/// What the layer rates did against one rate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TwinOutcome {
    Helped,
    Hurt,
    NoDifference,
}

impl TwinOutcome {
    pub fn label(self) -> &'static str {
        match self {
            TwinOutcome::Helped => "helped",
            TwinOutcome::Hurt => "hurt",
            TwinOutcome::NoDifference => "no-difference",
        }
    }
}

/// A run against its single-rate twin, on the epochs each has so far.
#[derive(Clone, Debug, PartialEq)]
pub struct TwinComparison {
    pub twin: RunId,
    pub twin_lr: f64,
    pub run_best_val_loss: f64,
    pub twin_best_val_loss: f64,
    pub twin_best_epoch: u32,
    /// The first epoch at which the run was at or below the twin's best (None: never).
    pub run_reached_twin_best_at: Option<u32>,
    /// The run's best over the twin's.
    pub best_ratio: f64,
    pub run_gap_at_best: f64,
    pub twin_gap_at_best: f64,
    pub run_verdict: Verdict,
    pub twin_verdict: Verdict,
    pub outcome: TwinOutcome,
    pub summary: String,
}

/// One side of the comparison.
pub struct Side<'a> {
    pub record: &'a RunRecord,
    pub epochs: &'a [EpochMetrics],
    pub analysis: &'a RunAnalysis,
}

/// `None` until both have a finite best validation loss.
pub fn compare_with_twin(run: Side<'_>, twin: Side<'_>) -> Option<TwinComparison> {
    if !(run.analysis.has_best() && twin.analysis.has_best()) {
        return None;
    }
    let (run_best, twin_best) = (run.analysis.best_val_loss, twin.analysis.best_val_loss);
    let reached = run
        .epochs
        .iter()
        .find(|e| e.val_loss <= twin_best)
        .map(|e| e.epoch);
    let best_ratio = run_best / twin_best;
    let outcome = if best_ratio < 1.0 - TWIN_SAME_WITHIN {
        TwinOutcome::Helped
    } else if best_ratio > 1.0 + TWIN_SAME_WITHIN {
        TwinOutcome::Hurt
    } else {
        TwinOutcome::NoDifference
    };
    let twin_lr = twin.record.config.lr.unwrap_or(f64::NAN);
    let mut comparison = TwinComparison {
        twin: twin.record.id,
        twin_lr,
        run_best_val_loss: run_best,
        twin_best_val_loss: twin_best,
        twin_best_epoch: twin.analysis.best_epoch,
        run_reached_twin_best_at: reached,
        best_ratio,
        run_gap_at_best: run.analysis.gap_at_best,
        twin_gap_at_best: twin.analysis.gap_at_best,
        run_verdict: run.analysis.verdict,
        twin_verdict: twin.analysis.verdict,
        outcome,
        summary: String::new(),
    };
    let so_far = run.record.status.is_live() || twin.record.status.is_live();
    comparison.summary = summary(&comparison, so_far);
    Some(comparison)
}

/// "Against its single-rate twin 7mq2 (every group at 1e-2): reached the twin's best validation
/// loss (0.1146, its epoch 12) at epoch 6, 2.0× sooner; ended 8.9% lower (0.1044 vs 0.1146);
/// gap at best +0.02 vs +0.05; verdicts overfitting vs good: the layer rates helped."
fn summary(c: &TwinComparison, so_far: bool) -> String {
    let mut parts = vec![format!(
        "against its single-rate twin {} (every group at {})",
        c.twin,
        rate(c.twin_lr)
    )];
    parts.push(match c.run_reached_twin_best_at {
        Some(epoch) => {
            let speed = f64::from(c.twin_best_epoch) / f64::from(epoch.max(1));
            let pace = if speed >= 1.05 {
                format!(", {speed:.1}× sooner")
            } else if speed <= 0.95 {
                format!(", {:.1}× later", 1.0 / speed)
            } else {
                String::new()
            };
            format!(
                "reached the twin's best validation loss ({}, its epoch {}) at epoch {epoch}{pace}",
                loss(c.twin_best_val_loss),
                c.twin_best_epoch
            )
        }
        None => format!(
            "never reached the twin's best validation loss ({}, its epoch {})",
            loss(c.twin_best_val_loss),
            c.twin_best_epoch
        ),
    });
    parts.push(match c.outcome {
        TwinOutcome::Helped => format!(
            "ended {} lower ({} vs {})",
            percent(1.0 - c.best_ratio),
            loss(c.run_best_val_loss),
            loss(c.twin_best_val_loss)
        ),
        TwinOutcome::Hurt => format!(
            "ended {} higher ({} vs {})",
            percent(c.best_ratio - 1.0),
            loss(c.run_best_val_loss),
            loss(c.twin_best_val_loss)
        ),
        TwinOutcome::NoDifference => format!(
            "ended level with it ({} vs {})",
            loss(c.run_best_val_loss),
            loss(c.twin_best_val_loss)
        ),
    });
    parts.push(format!(
        "gap at best {} vs {}",
        gap(c.run_gap_at_best),
        gap(c.twin_gap_at_best)
    ));
    parts.push(format!(
        "verdicts {} vs {}",
        c.run_verdict.label(),
        c.twin_verdict.label()
    ));
    let answer = match c.outcome {
        TwinOutcome::Helped => "the layer rates helped",
        TwinOutcome::Hurt => "the single rate did better",
        TwinOutcome::NoDifference => "the layer rates made no clear difference",
    };
    let mut text = format!("{}: {}", parts[0], parts[1..].join("; "));
    text.push_str(&format!(": {answer}"));
    if so_far {
        text.push_str(" so far");
    }
    let mut chars = text.chars();
    chars.next().map_or(String::new(), |first| {
        first.to_uppercase().chain(chars).collect()
    }) + "."
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::{analyse, Thresholds};
    use crate::domain::RunStatus;

    fn epochs(vals: &[f64]) -> Vec<EpochMetrics> {
        vals.iter()
            .enumerate()
            .map(|(i, &v)| EpochMetrics {
                epoch: i as u32 + 1,
                train_loss: v * 0.9,
                val_loss: v,
                ..Default::default()
            })
            .collect()
    }

    fn record(id: u64, lr: f64) -> RunRecord {
        let mut record = RunRecord::example(RunId(id));
        record.status = RunStatus::Completed;
        record.config.lr = Some(lr);
        record
    }

    #[test]
    fn the_twin_comparison_answers_with_its_numbers() {
        let (run, twin) = (record(1, 1e-2), record(2, 1e-2));
        let (run_epochs, twin_epochs) = (
            epochs(&[0.6, 0.4, 0.3, 0.2, 0.15, 0.12]),
            epochs(&[0.65, 0.5, 0.42, 0.35, 0.31, 0.3]),
        );
        let t = Thresholds::default();
        let (a, b) = (
            analyse(&run, &run_epochs, &t),
            analyse(&twin, &twin_epochs, &t),
        );
        let side = |record, epochs, analysis| Side {
            record,
            epochs,
            analysis,
        };
        let c =
            compare_with_twin(side(&run, &run_epochs, &a), side(&twin, &twin_epochs, &b)).unwrap();
        assert_eq!(c.outcome, TwinOutcome::Helped);
        assert_eq!(c.run_reached_twin_best_at, Some(3));
        assert_eq!(c.twin_best_epoch, 6);
        assert!((c.best_ratio - 0.4).abs() < 1e-12);
        assert!(
            c.summary.starts_with(&format!(
                "Against its single-rate twin {} (every group at 1e-2): reached the twin's best validation loss (0.3000, its epoch 6) at epoch 3, 2.0× sooner; ended 60% lower (0.1200 vs 0.3000)",
                RunId(2)
            )),
            "{}",
            c.summary
        );
        assert!(
            c.summary.ends_with(": the layer rates helped."),
            "{}",
            c.summary
        );
        // The other way round: the single rate did better.
        let c =
            compare_with_twin(side(&twin, &twin_epochs, &b), side(&run, &run_epochs, &a)).unwrap();
        assert_eq!(c.outcome, TwinOutcome::Hurt);
        assert_eq!(c.run_reached_twin_best_at, None);
        assert!(
            c.summary.contains("never reached the twin's best"),
            "{}",
            c.summary
        );
        assert!(
            c.summary.ends_with(": the single rate did better."),
            "{}",
            c.summary
        );
    }
}
