//! `strata export`: a run's epochs as CSV or JSON, ready for pandas.
//!
//! CSV is wide: one row per epoch, the epoch's own columns first, then five columns per layer
//! group named `GROUP_lr`, `GROUP_grad_norm`, `GROUP_weight_norm`, `GROUP_update_ratio` and
//! `GROUP_frozen`, groups in the model's order (`pd.read_csv(path)` gives one frame, columns
//! like `df.layer0_update_ratio`); then one `extra_NAME` column per extra scalar an external run
//! logged, in name order, empty where an epoch lacks it. Floats are written in Rust's shortest round-trip form, NaN and
//! inf as `NaN` and `inf` (pandas reads both); booleans as `true`/`false`.
//!
//! JSON is `strata show --json`: the run, its config and rate table, every epoch with its groups,
//! and the daemon's analysis (`pd.json_normalize(doc["epochs"])` flattens the epochs).

use strata_client::epoch_gap;
use strata_client::model::{in_first_appearance_order, val_metric};
use strata_proto::{EpochRecord, GetRunResponse};

use crate::json;
use crate::render::format::plain_number;

/// The epoch columns of the CSV, before the groups'.
pub const EPOCH_COLUMNS: [&str; 7] = [
    "epoch",
    "train_loss",
    "val_loss",
    "gap",
    "val_accuracy",
    "duration_ms",
    "samples_per_sec",
];

/// Per-group column suffixes of the CSV.
pub const GROUP_COLUMNS: [&str; 5] = ["lr", "grad_norm", "weight_norm", "update_ratio", "frozen"];

/// A CSV cell, quoted when it holds a comma, a quote or a line break (RFC 4180).
fn cell(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_string()
    }
}

/// The epochs as CSV, header included, one line per epoch, each line ending in `\n`.
pub fn csv(epochs: &[EpochRecord]) -> String {
    let groups = in_first_appearance_order(
        epochs
            .iter()
            .flat_map(|e| e.groups.iter().map(|g| g.name.as_str())),
    );
    let mut header: Vec<String> = EPOCH_COLUMNS.iter().map(|c| c.to_string()).collect();
    // The metric's column is named for what it is: val_accuracy or val_r2.
    if let Some(first) = epochs.first() {
        header[4] = val_metric(first).0.to_string();
    }
    for group in &groups {
        header.extend(GROUP_COLUMNS.iter().map(|c| cell(&format!("{group}_{c}"))));
    }
    let extras: std::collections::BTreeSet<&str> = epochs
        .iter()
        .flat_map(|e| e.extra.keys().map(String::as_str))
        .collect();
    header.extend(extras.iter().map(|name| cell(&format!("extra_{name}"))));
    let mut out = header.join(",");
    out.push('\n');
    for epoch in epochs {
        let mut row = vec![
            epoch.epoch.to_string(),
            plain_number(epoch.train_loss),
            plain_number(epoch.val_loss),
            plain_number(epoch_gap(epoch)),
            plain_number(val_metric(epoch).1),
            plain_number(epoch.duration_ms),
            plain_number(epoch.samples_per_sec),
        ];
        for name in &groups {
            match epoch.groups.iter().find(|g| g.name == *name) {
                Some(g) => row.extend([
                    plain_number(g.lr),
                    plain_number(g.grad_norm),
                    plain_number(g.weight_norm),
                    plain_number(g.update_ratio),
                    g.frozen.to_string(),
                ]),
                // A group this epoch does not report: empty cells (NaN in pandas).
                None => row.extend(std::iter::repeat_n(String::new(), GROUP_COLUMNS.len())),
            }
        }
        row.extend(extras.iter().map(|name| {
            epoch
                .extra
                .get(*name)
                .map_or(String::new(), |v| plain_number(*v))
        }));
        out.push_str(&row.join(","));
        out.push('\n');
    }
    out
}

/// The run as one JSON document (the shape of `strata show --json`), with a final newline.
pub fn json(response: &GetRunResponse) -> String {
    format!("{}\n", json::show(response))
}

#[cfg(test)]
mod tests {
    use super::*;
    use strata_proto::GroupEpochStats;

    fn epoch(n: u32, train: f64, val: f64, groups: &[(&str, f64)]) -> EpochRecord {
        EpochRecord {
            epoch: n,
            train_loss: train,
            val_loss: val,
            val_metric: Some(strata_proto::epoch_record::ValMetric::ValAccuracy(0.5)),
            duration_ms: 10.0,
            samples_per_sec: 100.0,
            groups: groups
                .iter()
                .map(|(name, ratio)| GroupEpochStats {
                    name: name.to_string(),
                    lr: 1e-3,
                    grad_norm: 0.25,
                    weight_norm: 2.0,
                    update_ratio: *ratio,
                    frozen: *ratio == 0.0,
                })
                .collect(),
            extra: Default::default(),
            no_validation: false,
        }
    }

    #[test]
    fn csv_is_one_row_per_epoch_with_group_columns() {
        let text = csv(&[
            epoch(1, 1.0, 1.25, &[("layer0", 0.0), ("head", 0.01)]),
            epoch(2, 0.5, f64::NAN, &[("head", 0.02)]),
        ]);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "epoch,train_loss,val_loss,gap,val_accuracy,duration_ms,samples_per_sec,\
             layer0_lr,layer0_grad_norm,layer0_weight_norm,layer0_update_ratio,layer0_frozen,\
             head_lr,head_grad_norm,head_weight_norm,head_update_ratio,head_frozen"
        );
        assert_eq!(
            lines[1],
            "1,1,1.25,0.25,0.5,10,100,0.001,0.25,2,0,true,0.001,0.25,2,0.01,false"
        );
        assert_eq!(
            lines[2],
            "2,0.5,NaN,NaN,0.5,10,100,,,,,,0.001,0.25,2,0.02,false"
        );
        assert!(text.ends_with('\n'));
        let columns = lines[0].split(',').count();
        assert!(lines.iter().all(|l| l.split(',').count() == columns));
    }

    #[test]
    fn extra_scalars_are_columns_in_name_order() {
        let mut first = epoch(1, 1.0, 1.0, &[]);
        first.extra = [("val_f1".to_string(), 0.5), ("lr/warmup".to_string(), 0.1)].into();
        let mut second = epoch(2, 1.0, 1.0, &[]);
        second.extra = [("val_f1".to_string(), 0.75)].into();
        let text = csv(&[first, second]);
        let lines: Vec<&str> = text.lines().collect();
        assert!(
            lines[0].ends_with(",extra_lr/warmup,extra_val_f1"),
            "{text}"
        );
        assert!(lines[1].ends_with(",0.1,0.5"), "{text}");
        assert!(lines[2].ends_with(",,0.75"), "{text}");
    }

    #[test]
    fn odd_group_names_are_quoted() {
        let text = csv(&[epoch(1, 1.0, 1.0, &[("a,\"b\"", 0.1)])]);
        assert!(text.contains(r#""a,""b""_lr""#), "{text}");
        assert_eq!(csv(&[]), format!("{}\n", EPOCH_COLUMNS.join(",")));
    }
}
