//! The repair of a store whose history put its log's tail in the segment that gets damaged
//! (issue 30's data dir): what sled does with such a store, and that the repair holds anyway.

use super::*;
use crate::{
    domain::{EpochMetrics, GroupStats, RunRecord, RunStatus},
    store::{epoch_log, record},
    train::checkpoint::file as cf,
};

/// sled's log segments (its default size) and the bytes of a segment's header.
const SEGMENT_BYTES: usize = 512 * 1024;
const SEGMENT_HEADER_BYTES: usize = 20;

/// The log sequence number of each segment of `db/db` whose header is intact.
fn segment_lsns(log: &Path) -> Vec<Option<i64>> {
    let bytes = std::fs::read(log).unwrap_or_default();
    bytes
        .chunks(SEGMENT_BYTES)
        .filter(|segment| segment.len() >= SEGMENT_HEADER_BYTES)
        .map(|segment| {
            let header = &segment[..SEGMENT_HEADER_BYTES];
            let crc = u32::from_le_bytes(header[0..4].try_into().unwrap()) ^ 0xFFFF_FFFF;
            let lsn = i64::from_le_bytes(header[4..12].try_into().unwrap()) ^ 0x7FFF_FFFF_FFFF_FFFF;
            (crc32fast::hash(&header[4..20]) == crc).then_some(lsn)
        })
        .collect()
}

fn epoch(n: u32) -> EpochMetrics {
    EpochMetrics {
        epoch: n,
        train_loss: 1.0 / f64::from(n),
        val_loss: 1.2 / f64::from(n),
        val_metric: 0.5,
        groups: (0..16)
            .map(|g| GroupStats {
                name: format!("layer{g}"),
                lr: 1e-3,
                grad_norm: 0.5 + f64::from(n),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    }
}

/// Logs epochs to an external-like run, as the daemon does (epoch log, then store), until sled's
/// newest segment is the file's first one, reused (what the data dir of issue 30 had), and a
/// few epochs more; returns the run and its epoch count.
fn store_with_its_tail_in_the_first_segment(data: &Path) -> (RunRecord, u32) {
    let store = Store::open(data).unwrap();
    let run = RunRecord {
        status: RunStatus::Completed,
        ..RunRecord::example(store.next_run_id())
    };
    store.put_run(&run).unwrap();
    let folder = data.join("runs").join(run.id.to_string());
    cf::create_run_folder(&folder, &record::encode_run(&run)).unwrap();
    let log = data.join("db").join("db");
    let write = |store: &Store, n: u32| {
        let record = epoch(n);
        epoch_log::append(&folder, &record).unwrap();
        store.put_epoch(run.id, &record).unwrap();
    };
    for n in 1..=20_000u32 {
        write(&store, n);
        let lsns = segment_lsns(&log);
        let newest = lsns.iter().enumerate().max_by_key(|(_, lsn)| **lsn);
        if matches!(newest, Some((0, Some(lsn))) if *lsn >= SEGMENT_BYTES as i64) {
            // A restart: sled's recovery writes a snapshot where the log ends, in that segment;
            // then a few epochs more, and a clean stop.
            drop(store);
            let store = open_when_released(data).unwrap();
            for more in n + 1..=n + 10 {
                write(&store, more);
            }
            return (run, n + 10);
        }
    }
    panic!("sled never reused its first segment for the log's tail");
}

fn flip_first_byte(log: &Path) {
    let mut bytes = std::fs::read(log).unwrap();
    bytes[0] ^= 0xFF;
    std::fs::write(log, bytes).unwrap();
}

fn report_of(data: &Path) -> Report {
    check_copy(data, Lock::WhenReleased).unwrap()
}

fn damage_kinds(findings: &[Finding]) -> Vec<&'static str> {
    findings
        .iter()
        .filter(|f| f.damage)
        .map(|f| f.kind)
        .collect()
}

/// Why the repair of issue 30's data dir did not hold: sled leaves the damaged segment out when
/// it opens the store, and writes after it to that same segment — the next open leaves those
/// out too. The repair now writes into a fresh store, and checks what the next start will see.
#[test]
fn a_repair_holds_when_the_damaged_segment_was_the_logs_tail() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let (run, epochs) = store_with_its_tail_in_the_first_segment(&data);
    let log = data.join("db").join("db");
    flip_first_byte(&log);

    // What sled does: records in the damaged segment are gone, and what is written into the
    // store it opened does not survive the next open.
    let before = report_of(&data);
    assert_eq!(
        damage_kinds(&before.findings),
        ["epochs-missing"],
        "{:?}",
        before.findings
    );
    {
        let copy = tmp.path().join("copy");
        copy_dir(&data, &copy).unwrap();
        let store = Store::open(&copy).unwrap();
        let kept = store.epochs_done(run.id).unwrap();
        assert!(kept < epochs, "sled lost no epoch");
        store.put_epoch(run.id, &epoch(kept + 1)).unwrap();
        assert_eq!(store.epochs_done(run.id).unwrap(), kept + 1);
        drop(store);
        let store = open_when_released(&copy).unwrap();
        assert_eq!(
            store.epochs_done(run.id).unwrap(),
            kept,
            "a write into the recovered store survived its next open"
        );
    }

    // The repair holds: it says so, and the next check and the next open agree.
    let repaired = check_and_repair(&data).unwrap();
    assert!(repaired.healthy(), "{:?}", repaired.remaining);
    let actions: Vec<&str> = repaired
        .repairs
        .iter()
        .flatten()
        .map(|r| r.action.as_str())
        .collect();
    assert!(
        actions.iter().any(|a| a.contains("fresh store")),
        "{actions:?}"
    );
    for _ in 0..2 {
        let after = report_of(&data);
        assert!(after.healthy(), "{:?}", after.findings);
        let store = open_when_released(&data).unwrap();
        assert_eq!(
            store.epochs(run.id, 1).unwrap(),
            (1..=epochs).map(epoch).collect::<Vec<_>>()
        );
    }
}
