//! Epochs: the epoch table of `strata show` and the lines `strata watch` prints.

use strata_client::epoch_gap;
use strata_client::model::val_metric;

fn val_metric_value(epoch: &EpochRecord) -> f64 {
    val_metric(epoch).1
}
use strata_proto::EpochRecord;

use crate::render::format::{metric, signed_metric, status_with_reason, validation_metric};
use crate::render::table::{Align, Table};

/// The seed's table, `Epoch | Training Loss | Validation Loss | Gap`, then the validation metric
/// (`Val Accuracy`, or `Val R²` for regression).
pub fn epoch_table(epochs: &[EpochRecord], val_metric: &str) -> String {
    if epochs.is_empty() {
        return "no epochs yet".into();
    }
    let mut table = Table::new(&[
        ("Epoch", Align::Right),
        ("Training Loss", Align::Right),
        ("Validation Loss", Align::Right),
        ("Gap", Align::Right),
        (metric_heading(val_metric), Align::Right),
    ]);
    for epoch in epochs {
        let [val, gap, accuracy] = validation_columns(epoch);
        table.row(vec![
            epoch.epoch.to_string(),
            metric(epoch.train_loss),
            val,
            gap,
            accuracy,
        ]);
    }
    table.render_ruled()
}

/// An epoch's validation loss, gap and metric as printed; `—` for an epoch its client did not
/// validate.
fn validation_columns(epoch: &EpochRecord) -> [String; 3] {
    if epoch.no_validation {
        return ["—".into(), "—".into(), "—".into()];
    }
    [
        metric(epoch.val_loss),
        signed_metric(epoch_gap(epoch)),
        validation_metric(val_metric_value(epoch)),
    ]
}

/// The validation metric's column heading in the epoch table.
fn metric_heading(val_metric: &str) -> &'static str {
    match val_metric {
        "r2" => "Val R²",
        _ => "Val Accuracy",
    }
}

/// `epoch   3/10`: the epoch number padded so that successive lines line up.
pub fn epoch_label(epoch: u32, total_epochs: Option<u32>) -> String {
    match total_epochs {
        Some(total) => {
            let width = total.to_string().len().max(3);
            format!("epoch {epoch:>width$}/{total}")
        }
        None => format!("epoch {epoch:>3}"),
    }
}

/// The short name of the validation metric on the epoch line.
fn metric_label(val_metric: &str) -> &str {
    match val_metric {
        "" | "accuracy" => "acc",
        other => other,
    }
}

/// One line per finished epoch in `strata watch`:
/// `epoch   3/10  train 0.512345  val 0.534567  gap +0.022222  acc 0.8123  (1234 samples/s)`.
pub fn epoch_line(epoch: &EpochRecord, total_epochs: Option<u32>, val_metric: &str) -> String {
    let [val, gap, accuracy] = validation_columns(epoch);
    let throughput = if epoch.samples_per_sec.is_finite() {
        format!("{:.0}", epoch.samples_per_sec)
    } else {
        "-".to_string()
    };
    format!(
        "{}  train {}  val {}  gap {}  {} {accuracy}  ({throughput} samples/s)",
        epoch_label(epoch.epoch, total_epochs),
        metric(epoch.train_loss),
        val,
        gap,
        metric_label(val_metric),
    )
}

/// The last line of `strata watch`: `run ID completed`, or `run ID failed: reason`.
pub fn run_finished(run_id: &str, status: i32, reason: &str) -> String {
    format!("run {run_id} {}", status_with_reason(status, reason))
}

#[cfg(test)]
mod tests {
    use super::*;
    use strata_proto::RunStatus;

    fn record(epoch: u32, train: f64, val: f64) -> EpochRecord {
        EpochRecord {
            epoch,
            train_loss: train,
            val_loss: val,
            val_metric: Some(strata_proto::epoch_record::ValMetric::ValAccuracy(0.8123)),
            duration_ms: 10.0,
            samples_per_sec: 1234.4,
            groups: vec![],
            extra: Default::default(),
            no_validation: false,
        }
    }

    #[test]
    fn epoch_table_is_right_aligned_with_gap() {
        let table = epoch_table(
            &[record(1, 0.693148, 0.701235), record(10, 0.25, 0.2)],
            "accuracy",
        );
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(
            lines[0],
            "Epoch | Training Loss | Validation Loss |       Gap | Val Accuracy"
        );
        assert_eq!(
            lines[1],
            "------+---------------+-----------------+-----------+-------------"
        );
        assert_eq!(
            lines[2],
            "    1 |      0.693148 |        0.701235 | +0.008087 |       0.8123"
        );
        assert_eq!(
            lines[3],
            "   10 |      0.250000 |        0.200000 | -0.050000 |       0.8123"
        );
        let regression = epoch_table(&[record(1, 0.5, 0.5)], "r2");
        assert!(
            regression.starts_with("Epoch | Training Loss | Validation Loss |       Gap | Val R²")
        );
        // Every line has the same width, so the columns line up.
        assert!(lines.iter().all(|l| l.len() == lines[0].len()));
    }

    #[test]
    fn epoch_table_shows_nan_for_diverged_epochs() {
        let table = epoch_table(&[record(1, f64::NAN, 1.0)], "accuracy");
        assert!(table.lines().nth(2).unwrap().contains("NaN"));
    }

    #[test]
    fn epoch_line_matches_the_documented_shape() {
        let line = epoch_line(&record(3, 0.512345, 0.534567), Some(10), "accuracy");
        assert_eq!(line, "epoch   3/10  train 0.512345  val 0.534567  gap +0.022222  acc 0.8123  (1234 samples/s)");
        let line = epoch_line(&record(3, 0.5, 0.5), Some(1000), "r2");
        assert!(line.starts_with("epoch    3/1000  "), "{line}");
        assert!(line.contains(" r2 0.8123 "), "{line}");
    }

    #[test]
    fn finished_line_includes_reason_only_when_given() {
        assert_eq!(
            run_finished("abc", RunStatus::Completed as i32, ""),
            "run abc completed"
        );
        assert_eq!(
            run_finished("abc", RunStatus::Failed as i32, "out of memory"),
            "run abc failed: out of memory"
        );
    }
}
