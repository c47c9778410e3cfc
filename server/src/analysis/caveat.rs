//! The caveat a verdict's reason ends with when the leakage check found something: the verdict is
//! judged on validation loss, and validation that shares rows with training, or is handed the
//! label by a feature, looks better than the model is.

use super::text::percent;
use crate::{
    domain::{DataFacts, Leakage, TaskFacts},
    train::data::leakage::{balance_differs_sharply, OVERLAP_FINDING_FRACTION},
};

/// `reason; validation may be optimistic: 14% of its rows also appear in training`, or the
/// reason alone when the data was clean (or not checked).
pub(super) fn with_caveat(reason: String, facts: &DataFacts) -> String {
    let classes = match facts.task {
        TaskFacts::Classification { classes } => u64::from(classes),
        TaskFacts::Regression { .. } => 0,
    };
    match facts.leakage.as_ref().and_then(|l| caveat(l, classes)) {
        Some(caveat) => format!("{reason}; {caveat}"),
        None => reason,
    }
}

fn caveat(leakage: &Leakage, classes: u64) -> Option<String> {
    let mut optimistic = Vec::new();
    if leakage.exact_fraction() >= OVERLAP_FINDING_FRACTION {
        optimistic.push(format!(
            "{} of its rows also appear in training",
            percent(leakage.exact_fraction())
        ));
    } else if leakage.near_fraction() >= OVERLAP_FINDING_FRACTION {
        optimistic.push(format!(
            "{} of its rows nearly appear in training",
            percent(leakage.near_fraction())
        ));
    }
    if let Some((first, rest)) = leakage.label_columns.split_first() {
        optimistic.push(match rest.len() {
            0 => format!("{} gives the label away", first.name),
            more => format!(
                "{} and {more} more column(s) give the label away",
                first.name
            ),
        });
    }
    let balance = leakage
        .class_balance_distance
        .filter(|d| balance_differs_sharply(*d, classes, leakage.val_rows))
        .map(|d| {
            format!("its class balance differs sharply from training's (total variation distance {d:.2})")
        });
    let lead = if optimistic.is_empty() {
        "validation may mislead"
    } else {
        "validation may be optimistic"
    };
    let reasons: Vec<String> = optimistic.into_iter().chain(balance).collect();
    (!reasons.is_empty()).then(|| format!("{lead}: {}", reasons.join(", and ")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{ColumnLeak, LeakyColumn};

    fn facts(leakage: Leakage) -> DataFacts {
        DataFacts {
            leakage: Some(leakage),
            ..DataFacts::of_task(TaskFacts::Classification { classes: 2 })
        }
    }

    fn clean() -> Leakage {
        Leakage {
            val_rows: 200,
            train_rows: 800,
            exact_rows: 0,
            near_rows: 0,
            near_tolerance_std: 1e-3,
            label_columns: Vec::new(),
            class_balance_distance: Some(0.05),
            dropped_repeats: 0,
            dropped_val_copies: 0,
            findings: Vec::new(),
        }
    }

    #[test]
    fn the_reason_ends_with_what_makes_validation_untrustworthy() {
        let reason = || "both curves came down: good".to_string();
        assert_eq!(with_caveat(reason(), &facts(clean())), reason());
        assert_eq!(
            with_caveat(
                reason(),
                &DataFacts::of_task(TaskFacts::Regression {
                    target_variance: None
                })
            ),
            reason()
        );
        let copied = Leakage {
            exact_rows: 28,
            near_rows: 40,
            ..clean()
        };
        assert_eq!(
            with_caveat(reason(), &facts(copied)),
            "both curves came down: good; validation may be optimistic: 14% of its rows also appear in training"
        );
        let nearly = Leakage {
            near_rows: 6,
            label_columns: vec![LeakyColumn {
                position: 3,
                name: "column 3".into(),
                how: ColumnLeak::EqualsLabel,
            }],
            ..clean()
        };
        assert_eq!(
            with_caveat(reason(), &facts(nearly)),
            "both curves came down: good; validation may be optimistic: 3.0% of its rows nearly appear in training, and column 3 gives the label away"
        );
        let skewed = Leakage {
            class_balance_distance: Some(0.4),
            ..clean()
        };
        assert_eq!(
            with_caveat(reason(), &facts(skewed)),
            "both curves came down: good; validation may mislead: its class balance differs sharply from training's (total variation distance 0.40)"
        );
    }
}
