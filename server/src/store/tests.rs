use std::path::Path;

use super::*;
use crate::domain::{scramble, EpochMetrics, RunId, RunRecord};

fn run(store: &Store) -> RunRecord {
    RunRecord::example(store.next_run_id())
}

/// Opens a store this process just dropped. sled's background threads may hold its lock a moment
/// after the last handle goes (seen under load), so a refusal as locked is retried, for a while.
fn reopen(dir: &Path) -> Store {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        match Store::open(dir) {
            Err(StrataError::Storage {
                context: message, ..
            }) if message.starts_with("another stratad is using")
                && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(std::time::Duration::from_millis(20))
            }
            opened => return opened.unwrap(),
        }
    }
}

#[test]
fn ids_increase_and_resolve_by_prefix() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let a = run(&store);
    let b = run(&store);
    let (ka, kb) = (a.id, b.id);
    assert!(ka < kb, "keys follow creation");
    let (a_id, b_id) = (a.id.to_string(), b.id.to_string());
    assert_eq!(a_id.len(), 13);
    store.put_run(&a).unwrap();
    store.put_run(&b).unwrap();
    assert_eq!(store.resolve(&a_id).unwrap(), ka);
    assert_eq!(store.resolve(&b_id.to_uppercase()).unwrap(), kb);
    // Ids made together share (almost) no prefix; the shortest unique one names each run.
    let shared = a_id
        .bytes()
        .zip(b_id.bytes())
        .take_while(|(x, y)| x == y)
        .count();
    assert_eq!(store.resolve(&a_id[..shared + 1]).unwrap(), ka);
    if shared > 0 {
        assert!(matches!(
            store.resolve(&a_id[..shared]),
            Err(StrataError::AmbiguousRun { .. })
        ));
    }
    assert!(matches!(
        store.resolve("il"),
        Err(StrataError::InvalidArgument { .. })
    ));
    let newest: Vec<RunId> = store.runs_newest_first().map(|r| r.unwrap().0.id).collect();
    assert_eq!(newest, vec![kb, ka]);
    // The index is derived: without its entry a whole id still resolves, and reopening the
    // store restores the entry, so prefixes work again.
    store
        .shown_ids
        .remove(scramble(ka.0).to_be_bytes())
        .unwrap();
    assert_eq!(store.resolve(&a_id).unwrap(), ka);
    assert!(store.resolve(&a_id[..shared + 1]).is_err());
    drop(store);
    let store = reopen(dir.path());
    assert_eq!(store.resolve(&a_id[..shared + 1]).unwrap(), ka);
    // Deleting a run forgets its short id.
    store.delete_run(kb).unwrap();
    assert!(matches!(
        store.resolve(&b_id),
        Err(StrataError::RunNotFound(_))
    ));
}

/// Runs from before short ids keep their hex ids: shown, parsed and found by prefix as before,
/// and listed before every newer run.
#[test]
fn older_hex_ids_keep_working() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let old = RunId(0x01a2_2400_c834_0000);
    assert_eq!(old.to_string(), "01a22400c8340000");
    assert_eq!("01a22400c8340000".parse::<RunId>().unwrap(), old);
    store.put_run(&RunRecord::example(old)).unwrap();
    let new = run(&store);
    store.put_run(&new).unwrap();
    assert_eq!(store.resolve("01a22400").unwrap(), old);
    assert_eq!(store.resolve("01a22400c8340000").unwrap(), old);
    assert_eq!(old.created_at_ms(), 0x01a2_2400_c834);
    let newest: Vec<RunId> = store.runs_newest_first().map(|r| r.unwrap().0.id).collect();
    assert_eq!(newest, vec![new.id, old]);
    // A hex string with the short-id bit set is no id of either kind.
    assert!("81a22400c8340000".parse::<RunId>().is_err());
}

#[test]
fn epochs_are_a_range_per_run_and_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = {
        let store = Store::open(dir.path()).unwrap();
        let (a, b) = (run(&store), run(&store));
        store.put_run(&a).unwrap();
        store.put_run(&b).unwrap();
        for epoch in 1..=3 {
            let record = EpochMetrics {
                epoch,
                train_loss: epoch as f64,
                ..Default::default()
            };
            store.put_epoch(a.id, &record).unwrap();
        }
        store
            .put_epoch(
                b.id,
                &EpochMetrics {
                    epoch: 1,
                    ..Default::default()
                },
            )
            .unwrap();
        (a, b)
    };
    let store = Store::open(dir.path()).unwrap();
    let ida = a.id;
    let epochs: Vec<u32> = store
        .epochs(ida, 2)
        .unwrap()
        .iter()
        .map(|e| e.epoch)
        .collect();
    assert_eq!(epochs, vec![2, 3]);
    assert_eq!(store.epochs_done(ida).unwrap(), 3);
    assert_eq!(store.epochs_done(b.id).unwrap(), 1);
    assert!(store.next_run_id() > b.id);
}

/// A store draws its run id tag once and keeps it: every id it makes carries it, across reopens;
/// fresh stores (other daemons) draw their own.
#[test]
fn the_run_id_tag_is_kept_with_the_store() {
    let one = tempfile::tempdir().unwrap();
    let store = Store::open(one.path()).unwrap();
    let tag = store.run_id_tag();
    let mask = (1u64 << crate::domain::RUN_ID_TAG_BITS) - 1;
    assert_eq!(store.next_run_id().0 & mask, u64::from(tag.value()));
    let last = run(&store);
    store.put_run(&last).unwrap();
    drop(store);
    let store = reopen(one.path());
    assert_eq!(store.run_id_tag(), tag, "the same tag after a restart");
    let next = store.next_run_id();
    assert!(next > last.id);
    assert_eq!(next.0 & mask, u64::from(tag.value()));
    // Tags are random: 8 fresh stores drawing one tag between them is a 1 in 2^84 event.
    let mut tags = vec![tag.value()];
    for _ in 0..8 {
        let dir = tempfile::tempdir().unwrap();
        tags.push(Store::open(dir.path()).unwrap().run_id_tag().value());
    }
    tags.sort_unstable();
    tags.dedup();
    assert!(tags.len() > 1, "fresh stores draw their own tags: {tags:?}");
}

/// A store written by a newer stratad is refused, naming the formats, and left as it was.
#[test]
fn a_newer_format_is_refused_and_left_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let id = {
        let store = Store::open(dir.path()).unwrap();
        let run = run(&store);
        store.put_run(&run).unwrap();
        run.id
    };
    let files = |dir: &Path| -> Vec<(String, Vec<u8>)> {
        let mut all: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir.join("db"))
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.path().is_file())
            .map(|e| {
                (
                    e.file_name().to_string_lossy().into_owned(),
                    std::fs::read(e.path()).unwrap(),
                )
            })
            .collect();
        all.sort();
        all
    };
    std::fs::write(
        dir.path().join("db").join(record::FORMAT_FILE),
        format!("{}\n", record::FORMAT + 1),
    )
    .unwrap();
    let before = files(dir.path());
    let err = match Store::open(dir.path()) {
        Err(err) => err.to_string(),
        Ok(_) => panic!("a newer store opened"),
    };
    assert!(
        err.contains(&format!("record format {}", record::FORMAT + 1))
            && err.contains(&format!("reads formats up to {}", record::FORMAT))
            && err.contains("Nothing was changed"),
        "{err}"
    );
    assert!(before == files(dir.path()), "the store's files changed");
    // Back at this format it opens, with its run.
    std::fs::write(
        dir.path().join("db").join(record::FORMAT_FILE),
        format!("{}\n", record::FORMAT),
    )
    .unwrap();
    assert!(Store::open(dir.path())
        .unwrap()
        .get_run(id)
        .unwrap()
        .is_some());
}

/// A format file that does not hold a number is not damage to the records: the store is refused
/// with what to do, and nothing is moved aside or changed.
#[test]
fn a_garbled_format_file_is_refused_as_such_not_as_damage() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path()).unwrap();
        store.put_run(&run(&store)).unwrap();
    }
    let file = dir.path().join("db").join(record::FORMAT_FILE);
    std::fs::write(&file, "").unwrap();
    match Store::open(dir.path()) {
        Err(StrataError::Storage {
            context: message, ..
        }) => assert!(
            message.contains("does not hold a format number")
                && message.contains("Nothing was changed"),
            "{message}"
        ),
        Err(other) => panic!("not the format file's error: {other}"),
        Ok(_) => panic!("opened"),
    }
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "");
}

/// A record that decodes but that the daemon would refuse to read (an unknown task in its facts)
/// is found by the integrity scan, where a repair can act on it — not called healthy.
#[test]
fn the_scan_reads_records_as_the_daemon_does() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let good = run(&store);
    store.put_run(&good).unwrap();
    let bad = run(&store);
    let mut stored = record::StoredRun::from(&bad);
    stored.facts.as_mut().unwrap().task = 3;
    store
        .runs
        .insert(bad.id.key(), prost::Message::encode_to_vec(&stored))
        .unwrap();
    let scan = store.scan().unwrap();
    assert!(scan.runs[&good.id].is_ok());
    let err = scan.runs[&bad.id].as_ref().unwrap_err();
    assert!(err.contains("unknown task 3"), "{err}");
}

#[test]
fn a_sweep_trial_keeps_its_membership_and_a_run_without_one_reads_as_none() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let trial = RunRecord {
        sweep: Some(crate::domain::SweepTrial {
            sweep_id: "ab12cd".into(),
            trial: 3,
            settings: vec![
                ("lr".into(), "1e-2".into()),
                ("layer0".into(), "x0.1".into()),
            ],
        }),
        ..run(&store)
    };
    let plain = run(&store);
    store.put_run(&trial).unwrap();
    store.put_run(&plain).unwrap();
    assert_eq!(store.get_run(trial.id).unwrap().unwrap(), trial);
    assert_eq!(store.get_run(plain.id).unwrap().unwrap().sweep, None);
}
