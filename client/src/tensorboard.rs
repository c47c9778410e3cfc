//! `strata export --format tensorboard`: a run's epochs as a TensorBoard event file.
//!
//! One file per run, in a folder of its own (`ID` or `ID-name`), so `tensorboard --logdir DIR`
//! shows each run as a line of its own. Per epoch (step = epoch) the file holds the scalars
//! `loss/train`, `loss/val`, `metric/val_accuracy` (or `metric/val_r2`), and per layer group
//! `lr/GROUP`, `grad_norm/GROUP`, `weight_norm/GROUP` and `update_ratio/GROUP`; and `extra/NAME`
//! for each extra scalar a run logged from outside sent.
//!
//! The file is TFRecords (see `tfrecord`) of `Event` protobufs; the few messages it needs are
//! declared here, field for field as TensorFlow's `event.proto` and `summary.proto` number them.

use std::path::Path;

use prost::Message;
use strata_client::labels::val_metric;
use strata_proto::{EpochRecord, Run};

use crate::tfrecord::append_record;

/// What the first record of every event file says, so readers know the format.
const FILE_VERSION: &str = "brain.Event:2";

/// The longest part of a run's name kept in its folder's name.
const FOLDER_NAME_MAX_CHARS: usize = 64;

/// `tensorflow.Event`, with the two kinds of content Strata writes.
#[derive(Clone, PartialEq, Message)]
struct Event {
    /// Seconds since the Unix epoch.
    #[prost(double, tag = "1")]
    wall_time: f64,
    #[prost(int64, tag = "2")]
    step: i64,
    #[prost(oneof = "EventContent", tags = "3, 5")]
    content: Option<EventContent>,
}

#[derive(Clone, PartialEq, prost::Oneof)]
enum EventContent {
    #[prost(string, tag = "3")]
    FileVersion(String),
    #[prost(message, tag = "5")]
    Summary(Summary),
}

/// `tensorflow.Summary`.
#[derive(Clone, PartialEq, Message)]
struct Summary {
    #[prost(message, repeated, tag = "1")]
    value: Vec<SummaryValue>,
}

/// `tensorflow.Summary.Value`, as a scalar.
#[derive(Clone, PartialEq, Message)]
struct SummaryValue {
    #[prost(string, tag = "1")]
    tag: String,
    /// Optional, so that a 0 is written: in TensorFlow it is a member of a oneof, and readers
    /// skip a value whose oneof is unset.
    #[prost(float, optional, tag = "2")]
    simple_value: Option<f32>,
}

/// An epoch's scalars as (tag, value), in the order they are written.
pub fn epoch_scalars(epoch: &EpochRecord) -> Vec<(String, f64)> {
    let mut scalars = vec![
        ("loss/train".to_string(), epoch.train_loss),
        ("loss/val".to_string(), epoch.val_loss),
    ];
    // An epoch logged without a metric gets no point rather than a made-up NaN.
    if epoch.val_metric.is_some() {
        let (name, value) = val_metric(epoch);
        scalars.push((format!("metric/{name}"), value));
    }
    for group in &epoch.groups {
        let name = &group.name;
        scalars.extend([
            (format!("lr/{name}"), group.lr),
            (format!("grad_norm/{name}"), group.grad_norm),
            (format!("weight_norm/{name}"), group.weight_norm),
            (format!("update_ratio/{name}"), group.update_ratio),
        ]);
    }
    // Extra named scalars a run logged from outside sent (in name order).
    scalars.extend(
        epoch
            .extra
            .iter()
            .map(|(name, value)| (format!("extra/{name}"), *value)),
    );
    scalars
}

/// The event file of a run's epochs. Wall times are the run's start plus the epochs' durations
/// (the daemon records no clock time per epoch), so TensorBoard's relative axis reads as
/// training time; `now_secs` stands in for a run that never started.
pub fn event_file(run: &Run, epochs: &[EpochRecord], now_secs: f64) -> Vec<u8> {
    let start_ms = [run.started_at_ms, run.created_at_ms]
        .into_iter()
        .find(|&ms| ms > 0);
    let start_secs = start_ms.map_or(now_secs, |ms| ms as f64 / 1000.0);
    let mut out = Vec::new();
    let header = Event {
        wall_time: start_secs,
        step: 0,
        content: Some(EventContent::FileVersion(FILE_VERSION.to_string())),
    };
    append_record(&mut out, &header.encode_to_vec());
    let mut elapsed_ms = 0.0;
    for epoch in epochs {
        elapsed_ms += epoch.duration_ms.max(0.0);
        let value = epoch_scalars(epoch)
            .into_iter()
            .map(|(tag, value)| SummaryValue {
                tag,
                simple_value: Some(value as f32),
            })
            .collect();
        let event = Event {
            wall_time: start_secs + elapsed_ms / 1000.0,
            step: i64::from(epoch.epoch),
            content: Some(EventContent::Summary(Summary { value })),
        };
        append_record(&mut out, &event.encode_to_vec());
    }
    out
}

/// The folder a run's event file goes in: its id, then its name when it has one, with anything
/// but letters, digits, `.`, `_` and `-` replaced by `_`.
pub fn run_folder_name(run: &Run) -> String {
    let safe = |text: &str| -> String {
        text.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                    c
                } else {
                    '_'
                }
            })
            .collect()
    };
    let name: String = run.name.chars().take(FOLDER_NAME_MAX_CHARS).collect();
    if name.is_empty() {
        safe(&run.id)
    } else {
        format!("{}-{}", safe(&run.id), safe(&name))
    }
}

/// `events.out.tfevents.SECONDS.HOST.strata`: TensorBoard reads files named
/// `*tfevents*`; the suffix marks the file as Strata's, to replace on the next export.
pub fn event_file_name(now_secs: u64, host: &str) -> String {
    format!("events.out.tfevents.{now_secs}.{host}.strata")
}

/// Whether `path` is an event file an earlier export wrote.
pub fn is_strata_event_file(path: &Path) -> bool {
    path.file_name()
        .and_then(|name| name.to_str())
        .is_some_and(|name| name.starts_with("events.out.tfevents.") && name.ends_with(".strata"))
}

/// This machine's name for event file names (`localhost` when it cannot be read), without a
/// path separator.
pub fn host_name() -> String {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|name| name.trim().replace(['/', '\\'], "_"))
        .unwrap_or_default();
    if name.is_empty() {
        "localhost".to_string()
    } else {
        name
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::epoch_record;
    use crate::tfrecord::masked_crc32c;

    /// The records of an event file, their CRCs checked.
    fn records(mut bytes: &[u8]) -> Vec<Vec<u8>> {
        let mut records = Vec::new();
        while !bytes.is_empty() {
            let length = &bytes[..8];
            let crc = u32::from_le_bytes(bytes[8..12].try_into().unwrap());
            assert_eq!(crc, masked_crc32c(length));
            let n = u64::from_le_bytes(length.try_into().unwrap()) as usize;
            let data = &bytes[12..12 + n];
            let crc = u32::from_le_bytes(bytes[12 + n..16 + n].try_into().unwrap());
            assert_eq!(crc, masked_crc32c(data));
            records.push(data.to_vec());
            bytes = &bytes[16 + n..];
        }
        records
    }

    #[test]
    fn the_file_is_a_version_then_one_event_per_epoch() {
        let run = Run {
            started_at_ms: 1_700_000_000_000,
            ..Run::default()
        };
        let mut second = epoch_record(2, 0.5, 0.75);
        second.groups[0].update_ratio = 0.0;
        let epochs = [epoch_record(1, 1.0, 1.25), second];
        let records = records(&event_file(&run, &epochs, 0.0));
        assert_eq!(records.len(), 3);
        let events: Vec<Event> = records
            .iter()
            .map(|r| Event::decode(r.as_slice()).unwrap())
            .collect();
        assert_eq!(
            events[0].content,
            Some(EventContent::FileVersion("brain.Event:2".into()))
        );
        assert_eq!(events[0].wall_time, 1_700_000_000.0);
        assert_eq!((events[1].step, events[2].step), (1, 2));
        assert!(events[2].wall_time > events[1].wall_time);
        let Some(EventContent::Summary(summary)) = &events[2].content else {
            panic!("no summary: {:?}", events[2])
        };
        let scalar = |tag: &str| {
            summary
                .value
                .iter()
                .find(|v| v.tag == tag)
                .unwrap_or_else(|| panic!("no {tag} in {summary:?}"))
                .simple_value
        };
        assert_eq!(scalar("loss/train"), Some(0.5));
        assert_eq!(scalar("loss/val"), Some(0.75));
        // A zero is written, not left out as a default.
        assert_eq!(scalar("update_ratio/head"), Some(0.0));
        let tags: Vec<&str> = summary.value.iter().map(|v| v.tag.as_str()).collect();
        assert!(tags.contains(&"metric/val_accuracy"), "{tags:?}");
        for prefix in ["lr", "grad_norm", "weight_norm", "update_ratio"] {
            assert!(
                tags.contains(&format!("{prefix}/head").as_str()),
                "{tags:?}"
            );
        }
    }

    #[test]
    fn folders_are_named_for_the_run_and_safe() {
        let mut run = Run {
            id: "k3f9x2tq8b1mz".into(),
            ..Run::default()
        };
        assert_eq!(run_folder_name(&run), "k3f9x2tq8b1mz");
        run.name = "layer0 1e-3/../x".into();
        assert_eq!(run_folder_name(&run), "k3f9x2tq8b1mz-layer0_1e-3_.._x");
        run.name = "é".repeat(100);
        assert_eq!(run_folder_name(&run).len(), 14 + FOLDER_NAME_MAX_CHARS);
        assert!(is_strata_event_file(Path::new(&event_file_name(17, "h"))));
        assert!(!is_strata_event_file(Path::new("events.out.tfevents.17.h")));
    }
}
