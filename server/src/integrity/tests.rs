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
    run
}

fn id_of(run: &RunRecord) -> RunId {
    run.id
}

fn store_epochs(store: &Store, run: &RunRecord, epochs: impl IntoIterator<Item = u32>) {
    let records: Vec<EpochMetrics> = epochs.into_iter().map(record).collect();
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
    let run = new_run(&store, 10);
    store_epochs(&store, &run, [1, 2, 4, 5]);
    assert_eq!(kinds(&damage(&store, data)), vec!["epoch-gap"]);
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
