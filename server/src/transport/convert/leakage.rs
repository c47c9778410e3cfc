//! What the leakage check found, to the wire.

use strata_proto as proto;

use crate::domain::{ColumnLeak, Leakage, LeakyColumn};

impl From<Leakage> for proto::Leakage {
    fn from(leakage: Leakage) -> Self {
        let (exact_fraction, near_fraction) = (leakage.exact_fraction(), leakage.near_fraction());
        let Leakage {
            val_rows,
            train_rows,
            exact_rows,
            near_rows,
            near_tolerance_std,
            label_columns,
            class_balance_distance,
            dropped_repeats,
            dropped_val_copies,
            findings,
        } = leakage;
        proto::Leakage {
            val_rows,
            train_rows,
            exact_rows,
            exact_fraction,
            near_rows,
            near_fraction,
            near_tolerance_std,
            label_columns: label_columns.into_iter().map(Into::into).collect(),
            class_balance_distance,
            dropped_repeats,
            dropped_val_copies,
            findings,
        }
    }
}

impl From<LeakyColumn> for proto::LeakyColumn {
    fn from(column: LeakyColumn) -> Self {
        let LeakyColumn {
            position,
            name,
            how,
        } = column;
        let how = match how {
            ColumnLeak::EqualsLabel => proto::leaky_column::How::EqualsLabel(true),
            ColumnLeak::DeterminesClass { values } => {
                proto::leaky_column::How::DeterminesClassValues(values)
            }
            ColumnLeak::Correlated { correlation } => {
                proto::leaky_column::How::Correlation(correlation)
            }
        };
        proto::LeakyColumn {
            position,
            name,
            how: Some(how),
        }
    }
}
