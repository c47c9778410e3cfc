use std::borrow::Cow;

use safetensors::tensor::Dtype;

use super::*;
use crate::{
    domain::{EpochMetrics, RunConfig, RunRecord, RunStatus},
    store::record,
    train::checkpoint::file::{self as cf, TensorData, EPOCHS_TENSOR, RUN_RECORD_FILE, RUN_TENSOR},
};

fn record(epoch: u32) -> EpochMetrics {
    EpochMetrics {
        epoch,
        train_loss: 1.0 / f64::from(epoch),
        val_loss: 1.5 / f64::from(epoch),
        ..Default::default()
    }
}

/// A run stored as the daemon stores one: its record, then its folder with a copy of it.
fn new_run(store: &Store, epochs: u32) -> RunRecord {
    let run = RunRecord {
        name: "lr-test".into(),
        status: RunStatus::Running,
        config: RunConfig {
            dataset: "spirals".into(),
            epochs: Some(epochs),
            ..Default::default()
        },
        ..RunRecord::example(store.next_run_id())
    };
    store.put_run(&run).unwrap();
    cf::create_run_folder(&folder(store, &run), &record::encode_run(&run)).unwrap();
    run
}

/// The run's folder (the store's data dir is the parent of its `db`).
fn folder(store: &Store, run: &RunRecord) -> std::path::PathBuf {
    store.data_dir().join("runs").join(run.id.to_string())
}

fn id_of(run: &RunRecord) -> RunId {
    run.id
}

/// Epochs stored as the daemon stores them: in the run's epoch log, then in the store.
fn store_epochs(store: &Store, run: &RunRecord, epochs: impl IntoIterator<Item = u32>) {
    let records: Vec<EpochMetrics> = epochs.into_iter().map(record).collect();
    crate::store::epoch_log::append_all(&folder(store, run), &records).unwrap();
    store.put_epochs(id_of(run), &records).unwrap();
}

/// A checkpoint as the worker writes it: the run's record and epochs 1..=epoch inside.
fn checkpoint(data: &Path, run: &RunRecord, epoch: u32) {
    let dir = data.join("runs").join(run.id.to_string());
    std::fs::create_dir_all(&dir).unwrap();
    let mut history = Vec::new();
    for e in 1..=epoch {
        record::encode_epoch_delimited(&record(e), &mut history);
    }
    let run_bytes = record::encode_run(run);
    let tensors = [
        TensorData {
            name: "model.head.weight".into(),
            dtype: Dtype::F32,
            shape: vec![2],
            data: Cow::Owned(vec![1u8; 8]),
        },
        TensorData {
            name: RUN_TENSOR.into(),
            dtype: Dtype::U8,
            shape: vec![run_bytes.len()],
            data: Cow::Borrowed(&run_bytes),
        },
        TensorData {
            name: EPOCHS_TENSOR.into(),
            dtype: Dtype::U8,
            shape: vec![history.len()],
            data: Cow::Borrowed(&history),
        },
    ];
    cf::write(
        &cf::path_for(&dir, epoch),
        &run.id.to_string(),
        epoch,
        &tensors,
    )
    .unwrap();
}

fn damage(store: &Store, data: &Path) -> Vec<Finding> {
    let inspection = inspect(store, data, Checkpoints::Verify).unwrap();
    findings(&inspection)
        .into_iter()
        .filter(|f| f.damage)
        .collect()
}

fn kinds(found: &[Finding]) -> Vec<&'static str> {
    found.iter().map(|f| f.kind).collect()
}

fn repair_all(store: &Store, data: &Path) -> Vec<Repair> {
    let inspection = inspect(store, data, Checkpoints::Verify).unwrap();
    repair(store, &inspection).unwrap()
}

fn stored_epochs(store: &Store, run: &RunRecord) -> Vec<u32> {
    store
        .epochs(id_of(run), 1)
        .unwrap()
        .iter()
        .map(|r| r.epoch)
        .collect()
}

#[test]
fn a_sound_data_dir_starts_including_a_checkpoint_one_epoch_ahead_after_a_crash() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path();
    let store = Store::open(data).unwrap();
    check_at_startup(&store, data).unwrap();
    let run = new_run(&store, 10);
    store_epochs(&store, &run, 1..=3);
    checkpoint(data, &run, 2);
    checkpoint(data, &run, 3);
    // Killed after the checkpoint of epoch 4, before its record.
    checkpoint(data, &run, 4);
    let queued = new_run(&store, 10);
    assert!(damage(&store, data).is_empty());
    check_at_startup(&store, data).unwrap();
    assert!(store.get_run(id_of(&queued)).unwrap().is_some());
}

#[test]
fn a_store_that_lost_everything_is_refused_then_rebuilt_from_the_run_folders() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path();
    let (done, cut) = {
        let store = Store::open(data).unwrap();
        let done = new_run(&store, 3);
        store_epochs(&store, &done, 1..=3);
        checkpoint(data, &done, 2);
        checkpoint(data, &done, 3);
        let cut = new_run(&store, 10);
        store_epochs(&store, &cut, 1..=4);
        checkpoint(data, &cut, 3);
        checkpoint(data, &cut, 4);
        (done, cut)
    };
    std::fs::remove_dir_all(data.join("db")).unwrap();
    let store = Store::open(data).unwrap();
    let err = check_at_startup(&store, data).unwrap_err().to_string();
    assert!(
        err.contains("lists 0 runs") && err.contains("holds 2 run folder(s)"),
        "{err}"
    );
    assert!(err.contains("stratad check --data-dir"), "{err}");
    assert!(
        err.contains(&done.id.to_string()) && err.contains(&cut.id.to_string()),
        "{err}"
    );

    let repairs = repair_all(&store, data);
    assert!(repairs.iter().all(|r| r.done), "{repairs:?}");
    assert!(damage(&store, data).is_empty());
    check_at_startup(&store, data).unwrap();
    let rebuilt = store.get_run(id_of(&done)).unwrap().unwrap();
    assert_eq!(rebuilt.status, RunStatus::Completed);
    assert_eq!(rebuilt.name, "lr-test");
    assert_eq!(rebuilt.config, done.config);
    assert!(rebuilt.reason.contains("recovered"), "{}", rebuilt.reason);
    assert_eq!(
        store.epochs(id_of(&done), 1).unwrap(),
        (1..=3).map(record).collect::<Vec<_>>()
    );
    let rebuilt = store.get_run(id_of(&cut)).unwrap().unwrap();
    assert_eq!(rebuilt.status, RunStatus::Interrupted);
    assert_eq!(stored_epochs(&store, &cut), vec![1, 2, 3, 4]);
}

#[test]
fn a_run_that_never_trained_is_witnessed_by_its_folder_and_rebuilt_from_it() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path();
    let queued = {
        let store = Store::open(data).unwrap();
        let mut queued = new_run(&store, 10);
        queued.status = RunStatus::Queued;
        store.put_run(&queued).unwrap();
        cf::create_run_folder(
            &data.join("runs").join(queued.id.to_string()),
            &record::encode_run(&queued),
        )
        .unwrap();
        queued
    };
    std::fs::remove_dir_all(data.join("db")).unwrap();
    let store = Store::open(data).unwrap();
    let err = check_at_startup(&store, data).unwrap_err().to_string();
    assert!(err.contains("holds 1 run folder(s)"), "{err}");
    let repairs = repair_all(&store, data);
    assert!(repairs.iter().all(|r| r.done), "{repairs:?}");
    let rebuilt = store.get_run(id_of(&queued)).unwrap().unwrap();
    assert_eq!(rebuilt.status, RunStatus::Interrupted);
    assert_eq!(rebuilt.config, queued.config);
    assert!(
        rebuilt.reason.contains(RUN_RECORD_FILE),
        "{}",
        rebuilt.reason
    );
    check_at_startup(&store, data).unwrap();
}

#[test]
fn epochs_lost_behind_a_newer_checkpoint_are_damage_and_restored_from_it() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path();
    let store = Store::open(data).unwrap();
    let run = new_run(&store, 10);
    store_epochs(&store, &run, 1..=2);
    checkpoint(data, &run, 4);
    checkpoint(data, &run, 5);
    let found = damage(&store, data);
    assert_eq!(kinds(&found), vec!["epochs-missing"]);
    assert!(found[0].message.contains("3..4"), "{}", found[0].message);
    let err = check_at_startup(&store, data).unwrap_err().to_string();
    assert!(err.contains("records end at 2"), "{err}");

    let repairs = repair_all(&store, data);
    assert!(repairs.iter().all(|r| r.done), "{repairs:?}");
    assert_eq!(stored_epochs(&store, &run), vec![1, 2, 3, 4, 5]);
    assert!(damage(&store, data).is_empty());
}

#[test]
fn a_gap_no_checkpoint_can_fill_is_repaired_by_dropping_what_follows_and_says_so() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path();
    let store = Store::open(data).unwrap();
    let mut run = new_run(&store, 10);
    run.status = RunStatus::Completed;
    store.put_run(&run).unwrap();
    // Epoch 3 lost from the store, and from the epoch log with all that followed it.
    store_epochs(&store, &run, [1, 2]);
    let later: Vec<EpochMetrics> = [4, 5].into_iter().map(record).collect();
    store.put_epochs(id_of(&run), &later).unwrap();
    assert_eq!(
        kinds(&damage(&store, data)),
        vec!["epoch-gap", "epoch-log-damaged"]
    );
    let repairs = repair_all(&store, data);
    assert_eq!(repairs.len(), 1, "{repairs:?}");
    assert!(!repairs[0].done);
    assert!(repairs[0].action.contains("dropped"), "{:?}", repairs[0]);
    assert_eq!(stored_epochs(&store, &run), vec![1, 2]);
    let reason = store.get_run(id_of(&run)).unwrap().unwrap().reason;
    assert!(
        reason.contains("dropped the records of epochs after 2"),
        "{reason}"
    );
    assert!(damage(&store, data).is_empty());
}

#[test]
fn epochs_whose_run_record_is_lost_keep_a_placeholder_run() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path();
    let store = Store::open(data).unwrap();
    let id = store.next_run_id();
    let records: Vec<EpochMetrics> = (1..=2).map(record).collect();
    store.put_epochs(id, &records).unwrap();
    assert_eq!(kinds(&damage(&store, data)), vec!["epochs-without-run"]);
    repair_all(&store, data);
    let run = store.get_run(id).unwrap().unwrap();
    assert_eq!(run.status, RunStatus::Failed);
    assert_eq!(store.epochs_done(id).unwrap(), 2);
    assert!(run.reason.contains("config is unknown"), "{}", run.reason);
    assert!(damage(&store, data).is_empty());
}

#[test]
fn a_folder_with_nothing_to_rebuild_from_is_moved_to_lost_and_found() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path();
    let store = Store::open(data).unwrap();
    let id = store.next_run_id();
    let dir = data.join("runs").join(id.to_string());
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(cf::path_for(&dir, 1), b"not a checkpoint").unwrap();
    let found = damage(&store, data);
    assert_eq!(
        kinds(&found),
        vec!["run-without-record", "damaged-checkpoint"]
    );
    let repairs = repair_all(&store, data);
    assert!(repairs.iter().any(|r| !r.done), "{repairs:?}");
    let kept = data.join(LOST_AND_FOUND).join(id.to_string());
    assert!(kept.join("epoch-000001.safetensors.damaged").exists());
    assert!(damage(&store, data).is_empty());
}

#[test]
fn a_damaged_checkpoint_is_found_by_check_and_moved_aside_by_repair() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path();
    let store = Store::open(data).unwrap();
    let run = new_run(&store, 10);
    store_epochs(&store, &run, 1..=3);
    checkpoint(data, &run, 2);
    checkpoint(data, &run, 3);
    let path = cf::path_for(&data.join("runs").join(run.id.to_string()), 3);
    let mut bytes = std::fs::read(&path).unwrap();
    let at = bytes.len() - 3;
    bytes[at] ^= 1;
    std::fs::write(&path, bytes).unwrap();
    // Start-up does not read checkpoints; check does.
    check_at_startup(&store, data).unwrap();
    assert_eq!(kinds(&damage(&store, data)), vec!["damaged-checkpoint"]);
    repair_all(&store, data);
    assert!(!path.exists());
    assert!(path.with_extension("safetensors.damaged").exists());
    assert!(damage(&store, data).is_empty());
    assert_eq!(stored_epochs(&store, &run), vec![1, 2, 3]);
}

#[test]
fn interrupted_deletes_are_finished_or_undone_at_start_up() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path();
    let store = Store::open(data).unwrap();
    let kept = new_run(&store, 3);
    store_epochs(&store, &kept, 1..=1);
    checkpoint(data, &kept, 1);
    let gone = new_run(&store, 3);
    store_epochs(&store, &gone, 1..=1);
    checkpoint(data, &gone, 1);
    let runs = data.join("runs");
    for run in [&kept, &gone] {
        std::fs::rename(
            runs.join(run.id.to_string()),
            runs.join(format!("{}{DELETING_SUFFIX}", run.id)),
        )
        .unwrap();
    }
    store.delete_run(id_of(&gone)).unwrap();
    check_at_startup(&store, data).unwrap();
    assert!(runs
        .join(kept.id.to_string())
        .join("epoch-000001.safetensors")
        .exists());
    assert!(!runs.join(format!("{}{DELETING_SUFFIX}", gone.id)).exists());
    assert!(!runs.join(gone.id.to_string()).exists());
}

/// A run logged from outside, stored as the daemon stores one (record, then folder).
fn new_external_run(store: &Store) -> RunRecord {
    let run = RunRecord {
        name: "outside".into(),
        status: RunStatus::Running,
        device: "external".into(),
        origin: crate::domain::RunOrigin::External {
            hyperparameters: vec![("optimizer".into(), "sgd".into())],
            client_key: String::new(),
        },
        ..RunRecord::example(store.next_run_id())
    };
    store.put_run(&run).unwrap();
    cf::create_run_folder(&folder(store, &run), &record::encode_run(&run)).unwrap();
    run
}

fn notes(store: &Store, data: &Path) -> Vec<&'static str> {
    let inspection = inspect(store, data, Checkpoints::Verify).unwrap();
    findings(&inspection)
        .into_iter()
        .filter(|f| !f.damage)
        .map(|f| f.kind)
        .collect()
}

#[test]
fn an_external_run_is_rebuilt_from_its_folder_when_the_store_loses_it() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path();
    let run = {
        let store = Store::open(data).unwrap();
        let run = new_external_run(&store);
        store_epochs(&store, &run, 1..=3);
        store_epochs(&store, &run, 4..=30);
        assert!(damage(&store, data).is_empty());
        run
    };
    std::fs::remove_dir_all(data.join("db")).unwrap();
    let store = Store::open(data).unwrap();
    let err = check_at_startup(&store, data).unwrap_err().to_string();
    assert!(err.contains("holds 1 run folder(s)"), "{err}");
    assert_eq!(kinds(&damage(&store, data)), ["run-without-record"]);
    let repairs = repair_all(&store, data);
    assert!(repairs.iter().all(|r| r.done), "{repairs:?}");
    assert!(damage(&store, data).is_empty());
    let rebuilt = store.get_run(id_of(&run)).unwrap().unwrap();
    assert_eq!(rebuilt.status, RunStatus::Interrupted);
    assert_eq!(
        (rebuilt.name.as_str(), &rebuilt.origin),
        ("outside", &run.origin)
    );
    assert!(
        rebuilt.reason.contains("epochs so far are kept"),
        "{}",
        rebuilt.reason
    );
    assert_eq!(stored_epochs(&store, &run), (1..=30).collect::<Vec<_>>());
}

/// The store's records end before the log's last write: lost, unless a crash between the two
/// explains it (the log is written first, a batch at a time).
#[test]
fn epochs_in_the_log_but_not_the_store_are_restored_or_are_damage() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path();
    let store = Store::open(data).unwrap();
    let run = new_external_run(&store);
    store_epochs(&store, &run, 1..=3);
    // Killed between the log's write of 4..=6 and the store's.
    let batch: Vec<EpochMetrics> = (4..=6).map(record).collect();
    crate::store::epoch_log::append_all(&folder(&store, &run), &batch).unwrap();
    assert!(damage(&store, data).is_empty());
    assert_eq!(notes(&store, data), ["log-ahead"]);
    check_at_startup(&store, data).unwrap();
    assert_eq!(stored_epochs(&store, &run), (1..=6).collect::<Vec<_>>());
    assert!(notes(&store, data).is_empty());

    // The store lost more than the last write: damage, refused, repaired from the log.
    store_epochs(&store, &run, 7..=9);
    store.drop_epochs_after(id_of(&run), 4).unwrap();
    let found = damage(&store, data);
    assert_eq!(kinds(&found), ["epochs-missing"]);
    assert!(found[0].message.contains("5..9"), "{}", found[0].message);
    assert!(check_at_startup(&store, data).is_err());
    let repairs = repair_all(&store, data);
    assert!(repairs.iter().all(|r| r.done), "{repairs:?}");
    assert_eq!(stored_epochs(&store, &run), (1..=9).collect::<Vec<_>>());
    assert!(damage(&store, data).is_empty());
}

/// Damage to a run's second copies, each found; start-up writes them again from the store (it
/// loses nothing to do so), as a repair does.
#[test]
fn damaged_second_copies_are_found_and_written_again_from_the_store() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path();
    let store = Store::open(data).unwrap();
    let damages: [(&str, Damage); 8] = [
        ("run-copy-missing", |dir| {
            std::fs::remove_file(dir.join(RUN_RECORD_FILE)).unwrap()
        }),
        ("run-copy-damaged", |dir| {
            flip(&dir.join(RUN_RECORD_FILE), 12)
        }),
        ("run-copy-differs", |dir| {
            let bytes = crate::store::run_copy::read(dir).intact().unwrap();
            let mut copy = record::decode_stored_run(&bytes).unwrap();
            copy.name = "renamed".into();
            let bytes = prost::Message::encode_to_vec(&copy);
            std::fs::write(
                dir.join(RUN_RECORD_FILE),
                crate::store::run_copy::encode(&bytes),
            )
            .unwrap()
        }),
        ("epoch-log-missing", |dir| {
            std::fs::remove_file(dir.join(crate::store::epoch_log::EPOCH_LOG)).unwrap()
        }),
        ("epoch-log-damaged", |dir| {
            let log = dir.join(crate::store::epoch_log::EPOCH_LOG);
            let len = std::fs::metadata(&log).unwrap().len();
            std::fs::OpenOptions::new()
                .write(true)
                .open(&log)
                .unwrap()
                .set_len(len / 2)
                .unwrap();
        }),
        ("epoch-log-damaged", |dir| {
            flip(&dir.join(crate::store::epoch_log::EPOCH_LOG), 30)
        }),
        ("epoch-copies-differ", |dir| {
            let mut epochs: Vec<EpochMetrics> =
                crate::store::epoch_log::read(dir).into_values().collect();
            epochs[1].train_loss += 1.0;
            crate::store::epoch_log::rewrite(dir, &epochs).unwrap();
        }),
        ("folder-missing", |dir| {
            std::fs::remove_dir_all(dir).unwrap()
        }),
    ];
    for (kind, damage_it) in damages {
        for external in [true, false] {
            let run = if external {
                new_external_run(&store)
            } else {
                let mut run = new_run(&store, 3);
                run.status = RunStatus::Completed;
                store.put_run(&run).unwrap();
                run
            };
            store_epochs(&store, &run, 1..=3);
            let dir = folder(&store, &run);
            damage_it(&dir);
            let found = damage(&store, data);
            assert_eq!(kinds(&found), [kind], "{found:?}");
            assert!(found[0].in_second_copies());
            check_at_startup(&store, data).unwrap();
            assert!(damage(&store, data).is_empty(), "{kind}: not rewritten");
            assert_eq!(stored_epochs(&store, &run), [1, 2, 3]);
            assert_eq!(crate::store::epoch_log::read(&dir).len(), 3);
            // And by a repair.
            damage_it(&dir);
            let repairs = repair_all(&store, data);
            assert!(repairs.iter().all(|r| r.done), "{repairs:?}");
            assert!(damage(&store, data).is_empty(), "{kind}: not repaired");
        }
    }
}

/// Something done to a run's folder.
type Damage = fn(&Path);

fn flip(path: &Path, at: usize) {
    let mut bytes = std::fs::read(path).unwrap();
    bytes[at] ^= 0x10;
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn a_resumable_run_whose_checkpoints_are_gone_is_damage_and_repair_records_it_failed() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path();
    let store = Store::open(data).unwrap();
    let mut run = new_run(&store, 10);
    store_epochs(&store, &run, 1..=3);
    checkpoint(data, &run, 3);
    run.status = RunStatus::Interrupted;
    store.put_run(&run).unwrap();
    assert!(damage(&store, data).is_empty());
    std::fs::remove_file(cf::path_for(&folder(&store, &run), 3)).unwrap();
    assert_eq!(kinds(&damage(&store, data)), ["checkpoints-missing"]);
    // Nothing the store lacks: the daemon starts (and says so in its log).
    check_at_startup(&store, data).unwrap();
    let repairs = repair_all(&store, data);
    assert!(repairs.iter().any(|r| r.action.contains("cannot resume")));
    let after = store.get_run(id_of(&run)).unwrap().unwrap();
    assert_eq!(after.status, RunStatus::Failed);
    assert!(
        after.reason.contains("checkpoints were lost"),
        "{}",
        after.reason
    );
    assert_eq!(stored_epochs(&store, &run), [1, 2, 3]);
    assert!(damage(&store, data).is_empty());
}

#[test]
fn an_external_run_logged_before_folders_gets_one_at_start_up() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path();
    let store = Store::open(data).unwrap();
    let run = new_external_run(&store);
    store_epochs(&store, &run, 1..=2);
    // As an older stratad left it: no folder, and a record that does not say it has one.
    std::fs::remove_dir_all(folder(&store, &run)).unwrap();
    let mut old = record::StoredRun::from(&run);
    old.external.as_mut().unwrap().folder = false;
    store.put_raw_run(run.id, prost::Message::encode_to_vec(&old));
    assert!(damage(&store, data).is_empty());
    assert_eq!(notes(&store, data), ["folder-not-yet-written"]);
    check_at_startup(&store, data).unwrap();
    assert!(notes(&store, data).is_empty());
    assert_eq!(
        crate::store::epoch_log::read(&folder(&store, &run)).len(),
        2
    );
    // From now on its folder is expected.
    std::fs::remove_dir_all(folder(&store, &run)).unwrap();
    assert_eq!(kinds(&damage(&store, data)), ["folder-missing"]);
}
