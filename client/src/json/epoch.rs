//! Epochs and the events of `strata watch --json` (one NDJSON line each).

use serde_json::{json, Map, Value};
use strata_client::model::val_metric;
use strata_client::{epoch_gap, status_label};
use strata_proto::{
    watch_event, BatchProgress, EpochRecord, GroupEpochStats, StatusChange, WatchEvent,
};

use crate::json::number::number;

/// Per-group statistics of one epoch.
pub fn group(group: &GroupEpochStats) -> Value {
    json!({
        "name": group.name,
        "lr": number(group.lr),
        "grad_norm": number(group.grad_norm),
        "weight_norm": number(group.weight_norm),
        "update_ratio": number(group.update_ratio),
        "frozen": group.frozen,
    })
}

/// The fields of one epoch, as a map so that watch events can extend it.
fn epoch_fields(epoch: &EpochRecord) -> Map<String, Value> {
    let mut fields = Map::new();
    fields.insert("epoch".into(), epoch.epoch.into());
    fields.insert("train_loss".into(), number(epoch.train_loss));
    fields.insert("val_loss".into(), number(epoch.val_loss));
    fields.insert("gap".into(), number(epoch_gap(epoch)));
    let (metric, value) = val_metric(epoch);
    fields.insert(metric.into(), number(value));
    fields.insert("duration_ms".into(), number(epoch.duration_ms));
    fields.insert("samples_per_sec".into(), number(epoch.samples_per_sec));
    fields.insert(
        "groups".into(),
        Value::Array(epoch.groups.iter().map(group).collect()),
    );
    fields.insert(
        "extra".into(),
        Value::Object(
            epoch
                .extra
                .iter()
                .map(|(name, value)| (name.clone(), number(*value)))
                .collect(),
        ),
    );
    fields.insert("no_validation".into(), epoch.no_validation.into());
    fields
}

/// One epoch: `{"epoch","train_loss","val_loss","gap","val_accuracy","duration_ms",
/// "samples_per_sec","groups":[...],"extra":{NAME: VALUE, ...},"no_validation"}`, gap = val_loss −
/// train_loss; `extra` holds an external run's other named scalars, in name order (`{}`: none);
/// `no_validation`: its client did not validate it (the validation figures are null).
pub fn epoch(epoch: &EpochRecord) -> Value {
    Value::Object(epoch_fields(epoch))
}

/// `{"event":"progress","epoch","batch","batches","loss"}`.
fn progress(progress: &BatchProgress) -> Value {
    json!({
        "event": "progress",
        "epoch": progress.epoch,
        "batch": progress.batch,
        "batches": progress.batches,
        "loss": number(progress.loss),
    })
}

/// `{"event":"status","status","reason"}`.
fn status_change(change: &StatusChange) -> Value {
    json!({ "event": "status", "status": status_label(change.status), "reason": change.reason })
}

/// One watch event as an NDJSON line's object; `None` for an event with no payload (which a
/// newer daemon could send for an event kind this client does not know).
pub fn watch_event(event: &WatchEvent) -> Option<Value> {
    let value = match event.event.as_ref()? {
        watch_event::Event::Epoch(record) => {
            let mut fields = Map::new();
            fields.insert("event".into(), "epoch".into());
            fields.extend(epoch_fields(record));
            Value::Object(fields)
        }
        watch_event::Event::Progress(batch) => progress(batch),
        watch_event::Event::Status(change) => status_change(change),
        watch_event::Event::Notice(message) => json!({ "event": "notice", "message": message }),
    };
    Some(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::epoch_record;
    use strata_proto::RunStatus;

    #[test]
    fn gap_is_val_minus_train() {
        let value = epoch(&epoch_record(1, 0.5, 0.75));
        assert_eq!(value["gap"], json!(0.25));
        let value = epoch(&epoch_record(2, 0.75, 0.5));
        assert_eq!(value["gap"], json!(-0.25));
    }

    #[test]
    fn non_finite_floats_are_null() {
        let value = epoch(&epoch_record(3, f64::NAN, f64::INFINITY));
        assert_eq!(value["train_loss"], Value::Null);
        assert_eq!(value["val_loss"], Value::Null);
        assert_eq!(value["gap"], Value::Null);
        assert_eq!(value["val_accuracy"], json!(0.75));
        assert_eq!(number(f64::NEG_INFINITY), Value::Null);
    }

    #[test]
    fn epoch_has_stable_field_names() {
        let value = epoch(&epoch_record(1, 0.5, 0.75));
        let keys: Vec<&str> = value
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        for key in [
            "epoch",
            "train_loss",
            "val_loss",
            "gap",
            "val_accuracy",
            "duration_ms",
            "samples_per_sec",
            "groups",
            "extra",
        ] {
            assert!(keys.contains(&key), "missing {key}");
        }
        assert_eq!(value["extra"], json!({}));
        let mut logged = epoch_record(1, 0.5, 0.75);
        logged.extra = [("val_f1".to_string(), 0.5), ("lr/warmup".to_string(), 0.1)].into();
        assert_eq!(
            serde_json::to_string(&epoch(&logged)["extra"]).unwrap(),
            r#"{"lr/warmup":0.1,"val_f1":0.5}"#
        );
        let group = &value["groups"][0];
        for key in [
            "name",
            "lr",
            "grad_norm",
            "weight_norm",
            "update_ratio",
            "frozen",
        ] {
            assert!(group.get(key).is_some(), "missing group.{key}");
        }
    }

    #[test]
    fn watch_events_are_tagged() {
        let epoch_event = WatchEvent {
            event: Some(watch_event::Event::Epoch(epoch_record(4, 0.5, 0.5))),
        };
        let value = watch_event(&epoch_event).unwrap();
        assert_eq!(value["event"], "epoch");
        assert_eq!(value["epoch"], 4);
        assert_eq!(value["gap"], json!(0.0));

        let status = WatchEvent {
            event: Some(watch_event::Event::Status(StatusChange {
                status: RunStatus::Diverged as i32,
                reason: "loss is NaN".into(),
            })),
        };
        assert_eq!(
            watch_event(&status).unwrap(),
            json!({"event": "status", "status": "diverged", "reason": "loss is NaN"})
        );

        let progress = WatchEvent {
            event: Some(watch_event::Event::Progress(BatchProgress {
                epoch: 1,
                batch: 3,
                batches: 25,
                loss: f64::NAN,
            })),
        };
        assert_eq!(
            watch_event(&progress).unwrap(),
            json!({"event": "progress", "epoch": 1, "batch": 3, "batches": 25, "loss": null})
        );

        let notice = WatchEvent {
            event: Some(watch_event::Event::Notice("skipped".into())),
        };
        assert_eq!(
            watch_event(&notice).unwrap(),
            json!({"event": "notice", "message": "skipped"})
        );
        assert_eq!(watch_event(&WatchEvent { event: None }), None);
    }

    /// Random finite f64s of every magnitude (uniform over bit patterns, so subnormals, huge and
    /// tiny values all appear), plus values known to trip inexact parsers.
    fn awkward_floats(count: usize) -> Vec<f64> {
        let mut rng = strata_rng::SplitMix64::new(0x9e37_79b9_7f4a_7c15);
        let mut next = move || rng.next_u64();
        let mut values = vec![
            0.20529195992896954, // read back one unit off by serde_json's default parser
            0.2052919599289695,
            5e-324,                     // the smallest subnormal
            2.225_073_858_507_201e-308, // the largest subnormal
            f64::MIN_POSITIVE,
            f64::MAX,
            -f64::MAX,
            f64::EPSILON,
            -0.0,
            0.1,
            1e300 * 10.0,
            9007199254740993.0,
        ];
        while values.len() < count {
            let value = f64::from_bits(next());
            if value.is_finite() {
                values.push(value);
            }
            // Also values in the range losses live in.
            values.push(f64::from_bits(next() >> 12 | 0x3fe0_0000_0000_0000) - 0.5);
        }
        // Pairs: a train and a validation loss per epoch.
        values.truncate(count & !1);
        values
    }

    /// The JSON text `strata show --json` would print for epochs carrying these losses.
    fn printed_epochs(values: &[f64]) -> String {
        let epochs: Vec<Value> = values
            .chunks(2)
            .enumerate()
            .map(|(i, pair)| epoch(&epoch_record(i as u32 + 1, pair[0], pair[1])))
            .collect();
        Value::Array(epochs).to_string()
    }

    fn read_back(text: &str) -> Vec<f64> {
        let parsed: Value = serde_json::from_str(text).unwrap();
        parsed
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|e| {
                [
                    e["train_loss"].as_f64().unwrap(),
                    e["val_loss"].as_f64().unwrap(),
                ]
            })
            .collect()
    }

    #[test]
    fn printed_floats_read_back_exactly() {
        let values = awkward_floats(4000);
        let text = printed_epochs(&values);
        let back = read_back(&text);
        assert_eq!(back.len(), values.len());
        for (printed, read) in values.iter().zip(&back) {
            assert_eq!(
                printed.to_bits(),
                read.to_bits(),
                "{printed:e} read back as {read:e}"
            );
        }
    }

    /// Python's `json` (a correct parser other tools use) reads the same text to the same bits.
    #[test]
    fn printed_floats_read_back_exactly_in_python() {
        use std::io::Write;
        use std::process::{Command, Stdio};
        let values = awkward_floats(4000);
        let text = printed_epochs(&values);
        let script = "import json, struct, sys\n\
            for e in json.load(sys.stdin):\n\
            \x20   for k in ('train_loss', 'val_loss'):\n\
            \x20       print(struct.pack('>d', e[k]).hex())\n";
        let child = Command::new("python3")
            .args(["-c", script])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn();
        let Ok(mut child) = child else {
            eprintln!("skipped: python3 is not installed, so Python's json cannot be checked");
            return;
        };
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let bits: Vec<u64> = String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(|line| u64::from_str_radix(line, 16).unwrap())
            .collect();
        let expected: Vec<u64> = values
            .chunks(2)
            .flat_map(|pair| [pair[0].to_bits(), pair[1].to_bits()])
            .collect();
        assert_eq!(bits.len(), expected.len());
        for (got, want) in bits.iter().zip(&expected) {
            assert_eq!(
                got,
                want,
                "Python read {:e} as {:e}",
                f64::from_bits(*want),
                f64::from_bits(*got)
            );
        }
    }
}
