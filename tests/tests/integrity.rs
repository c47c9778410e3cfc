//! Damage on the disk is found, never silent: a damaged store makes the daemon refuse to start
//! (naming the problem and the way out) or start with every run and epoch intact; a damaged
//! checkpoint makes resume fall back to the newest intact one; `stratad check` reports and
//! `--repair` rebuilds. Real daemons on copies of a real data dir; tiny runs.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use serde_json::Value;
use strata_e2e::{bin, clear_strata_env, show, start_run, watch_to_end, Daemon};
use tonic::Code;

/// What a user can see of a data dir: every run's id and status, and all its epochs.
#[derive(Debug, PartialEq)]
struct Visible(Vec<(String, String, Value)>);

fn visible(daemon: &Daemon) -> Visible {
    let list = daemon.strata(&["list", "--json"]).json();
    let mut runs: Vec<(String, String, Value)> = list["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|run| {
            let id = run["id"].as_str().unwrap().to_string();
            let show = daemon.strata(&["show", &id, "--json"]).json();
            let status = show["status"].as_str().unwrap().to_string();
            (id, status, show["epochs"].clone())
        })
        .collect();
    runs.sort_by(|a, b| a.0.cmp(&b.0));
    Visible(runs)
}

/// Two finished tiny runs of 3 epochs (checkpoints of epochs 2 and 3 each) and what they look like.
fn data_dir_with_two_runs(data: &Path) -> (Daemon, Vec<String>, Visible) {
    let daemon = Daemon::start_in(data, &[]);
    let mut ids = Vec::new();
    for seed in ["1", "2"] {
        let id = start_run(&daemon, &["--epochs", "3", "--seed", seed]);
        assert_eq!(watch_to_end(&daemon, &id).0, 0);
        ids.push(id);
    }
    let seen = visible(&daemon);
    assert_eq!(seen.0.len(), 2);
    (daemon, ids, seen)
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// The daemon either refuses to start, saying what is wrong and how to recover, or starts with
/// exactly what was there. Never starts with something silently missing.
fn refuses_or_shows_everything(data: &Path, expected: &Visible, what: &str) -> &'static str {
    match Daemon::try_start_in(data, &[]) {
        Ok(daemon) => {
            assert_eq!(
                &visible(&daemon),
                expected,
                "{what}: stratad started with runs or epochs missing or changed; log:\n{}",
                daemon.log()
            );
            "started intact"
        }
        Err(refused) => {
            assert_eq!(refused.code, Some(1), "{what}: {refused:?}");
            assert!(
                refused.log.contains("store") && refused.log.contains("stratad check --data-dir"),
                "{what}: the refusal names neither the problem nor the way out: {}",
                refused.log
            );
            "refused"
        }
    }
}

/// `stratad ARGS` (a command, not the daemon), with its exit code and stdout.
fn stratad(args: &[&str], data: &Path) -> (i32, String, String) {
    let mut command = Command::new(bin("stratad"));
    clear_strata_env(&mut command);
    let out = command
        .args(args)
        .arg("--data-dir")
        .arg(data)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn check_json(data: &Path, repair: bool) -> (i32, Value) {
    let mut args = vec!["check", "--json"];
    if repair {
        args.push("--repair");
    }
    let (code, stdout, stderr) = stratad(&args, data);
    let json = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}\nstderr: {stderr}"));
    (code, json)
}

fn kinds(findings: &Value) -> Vec<String> {
    findings
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["kind"].as_str().unwrap().to_string())
        .collect()
}

/// Byte offsets spread over the file: its start (the first message header), and fifths of it.
fn offsets(len: usize) -> Vec<usize> {
    let mut at: Vec<usize> = vec![0, 1, 9, 17];
    at.extend((1..10).map(|k| len * k / 10));
    at.push(len.saturating_sub(2));
    at.retain(|&o| o < len);
    at.dedup();
    at
}

fn flip_store_bytes(original: &Path, work: &Path, expected: &Visible, how: &str) {
    let len = std::fs::metadata(original.join("db/db")).unwrap().len() as usize;
    let mut outcomes = Vec::new();
    for (i, offset) in offsets(len).into_iter().enumerate() {
        let copy = work.join(format!("{how}-{i}"));
        copy_dir(original, &copy);
        let log = copy.join("db/db");
        let mut bytes = std::fs::read(&log).unwrap();
        bytes[offset] ^= 0x5a;
        std::fs::write(&log, bytes).unwrap();
        let what = format!("{how}: byte {offset} of {len} in db/db flipped");
        outcomes.push((offset, refuses_or_shows_everything(&copy, expected, &what)));
    }
    println!("{how}: {outcomes:?}");
}

#[test]
fn flipped_bytes_in_the_store_are_refused_or_harmless_after_a_kill_and_after_a_clean_stop() {
    let tmp = tempfile::tempdir().unwrap();
    for how in ["sigkill", "sigterm"] {
        let data = tmp.path().join(how);
        let (mut daemon, _, seen) = data_dir_with_two_runs(&data);
        let status = daemon.signal_and_wait(if how == "sigkill" { "KILL" } else { "TERM" });
        assert_eq!(status.success(), how == "sigterm", "{status}");
        flip_store_bytes(&data, tmp.path(), &seen, how);
    }
}

/// Cancels a run and waits until that is recorded.
fn cancel(daemon: &Daemon, id: &str) {
    let out = daemon.strata(&["cancel", id, "--json"]);
    assert_eq!(out.json()["status"], "cancelled", "{out:?}");
}

#[test]
fn a_deleted_store_is_refused_then_rebuilt_by_repair_and_its_runs_resume() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let (daemon, ids, seen) = data_dir_with_two_runs(&data);
    // A run that never trains (queued behind a long one, then cancelled): its folder, made when
    // it was stored, is all that witnesses it if the store loses it.
    let long = start_run(&daemon, &["--epochs", "100000"]);
    let never_trained = start_run(&daemon, &["--epochs", "3"]);
    cancel(&daemon, &never_trained);
    cancel(&daemon, &long);
    let with_cancelled = visible(&daemon);
    assert!(daemon.stop().success());
    // A rebuilt run cannot know it was cancelled: what it was told last is in its checkpoints,
    // written while it trained. It comes back interrupted, with every epoch.
    let rebuilt_expected = Visible(
        with_cancelled
            .0
            .iter()
            .map(|(id, status, epochs)| {
                let status = if status == "cancelled" {
                    "interrupted"
                } else {
                    status
                };
                (id.clone(), status.to_string(), epochs.clone())
            })
            .collect(),
    );
    assert!(seen.0.iter().all(|run| with_cancelled.0.contains(run)));
    let seen = with_cancelled;

    // Deleted snapshots: sled rebuilds from its log, or the daemon refuses.
    let no_snapshots = tmp.path().join("no-snapshots");
    copy_dir(&data, &no_snapshots);
    for entry in std::fs::read_dir(no_snapshots.join("db")).unwrap() {
        let path = entry.unwrap().path();
        if path
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("snap.")
        {
            std::fs::remove_file(path).unwrap();
        }
    }
    refuses_or_shows_everything(&no_snapshots, &seen, "db/snap.* deleted");

    // A snapshot sled cannot read: sled refuses it, and so does stratad, saying what to do;
    // the repair moves the store aside and rebuilds it from the run folders.
    let bad_snapshot = tmp.path().join("bad-snapshot");
    copy_dir(&data, &bad_snapshot);
    let garbage: Vec<u8> = (0..300u32).map(|i| (i * 7919 % 251) as u8).collect();
    std::fs::write(bad_snapshot.join("db/snap.00000000000001F0"), garbage).unwrap();
    let refused = Daemon::try_start_in(&bad_snapshot, &[])
        .err()
        .expect("stratad refuses");
    assert_eq!(refused.code, Some(1));
    assert!(
        refused.log.contains("cannot open the store") && refused.log.contains("--repair"),
        "{}",
        refused.log
    );
    let (code, report) = check_json(&bad_snapshot, false);
    assert_eq!(code, 1, "{report}");
    assert_eq!(kinds(&report["problems"]), vec!["unreadable-store"]);
    let (code, report) = check_json(&bad_snapshot, true);
    assert_eq!(code, 0, "{report}");
    let kept_aside = std::fs::read_dir(&bad_snapshot)
        .unwrap()
        .filter(|e| {
            let name = e.as_ref().unwrap().file_name();
            name.to_string_lossy().starts_with("db.damaged-")
        })
        .count();
    assert_eq!(kept_aside, 1, "the damaged store is kept");
    let daemon = Daemon::start_in(&bad_snapshot, &[]);
    assert_eq!(visible(&daemon), rebuilt_expected);
    drop(daemon);

    // The whole store deleted: an empty store beside two run folders is refused, by name.
    std::fs::remove_dir_all(data.join("db")).unwrap();
    let refused = Daemon::try_start_in(&data, &[])
        .err()
        .expect("stratad refuses");
    assert_eq!(refused.code, Some(1));
    assert!(
        refused.log.contains("lists 0 runs")
            && refused.log.contains("holds 4 run folder(s)")
            && refused.log.contains(&ids[0])
            && refused.log.contains("--repair"),
        "{}",
        refused.log
    );

    let (code, report) = check_json(&data, false);
    assert_eq!(code, 1, "{report}");
    assert_eq!(report["healthy"], false);
    assert_eq!(kinds(&report["problems"]), vec!["run-without-record"; 4]);
    let (code, report) = check_json(&data, true);
    assert_eq!(code, 0, "{report}");
    assert_eq!(report["healthy"], true);
    assert!(
        report["remaining"].as_array().unwrap().is_empty(),
        "{report}"
    );
    let rebuilt = report["repairs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| {
            r["action"]
                .as_str()
                .unwrap()
                .contains("rebuilt the run's record")
        })
        .count();
    assert_eq!(rebuilt, 4, "{report}");

    // Every run and epoch is back, and runs resume from their folders alone.
    let daemon = Daemon::start_in(&data, &[]);
    assert_eq!(visible(&daemon), rebuilt_expected);
    let out = daemon.strata(&["resume", &never_trained, "--follow", "--json"]);
    assert_eq!(out.code, 0, "{out:?}");
    let show = daemon.strata(&["show", &never_trained, "--json"]).json();
    assert_eq!(show["status"], "completed");
    assert_eq!(epoch_numbers(&show), vec![1, 2, 3]);
    let out = daemon.strata(&["resume", &ids[0], "--epochs", "4", "--follow", "--json"]);
    assert_eq!(out.code, 0, "{out:?}");
    let show = daemon.strata(&["show", &ids[0], "--json"]).json();
    let epochs: Vec<u64> = show["epochs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["epoch"].as_u64().unwrap())
        .collect();
    assert_eq!(epochs, vec![1, 2, 3, 4]);
    assert_eq!(show["status"], "completed");
}

fn run_dir(data: &Path, id: &str) -> PathBuf {
    data.join("runs").join(id)
}

fn checkpoint(data: &Path, id: &str, epoch: u32) -> PathBuf {
    run_dir(data, id).join(format!("epoch-{epoch:06}.safetensors"))
}

/// Where a tensor's bytes are in a safetensors file.
fn tensor_range(file: &[u8], name: &str) -> std::ops::Range<usize> {
    let header_len = u64::from_le_bytes(file[..8].try_into().unwrap()) as usize;
    let header: Value = serde_json::from_slice(&file[8..8 + header_len]).unwrap();
    let offsets = &header[name]["data_offsets"];
    let start = 8 + header_len + offsets[0].as_u64().unwrap() as usize;
    let end = 8 + header_len + offsets[1].as_u64().unwrap() as usize;
    start..end
}

fn epoch_numbers(show: &Value) -> Vec<u64> {
    show["epochs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["epoch"].as_u64().unwrap())
        .collect()
}

#[test]
fn a_damaged_newest_checkpoint_falls_back_to_the_previous_one_and_says_so() {
    let daemon = Daemon::start();
    let data = daemon.data_dir.clone();
    for damage in ["truncated", "weights flipped"] {
        let id = start_run(&daemon, &["--epochs", "3"]);
        assert_eq!(watch_to_end(&daemon, &id).0, 0);
        let newest = checkpoint(&data, &id, 3);
        let mut bytes = std::fs::read(&newest).unwrap();
        if damage == "truncated" {
            bytes.truncate(bytes.len() / 2);
        } else {
            let weights = tensor_range(&bytes, "model.layer0.weight");
            for at in weights.clone().step_by(7) {
                bytes[at] ^= 0xa5;
            }
        }
        std::fs::write(&newest, bytes).unwrap();

        let out = daemon.strata(&["resume", &id, "--epochs", "5", "--json"]);
        let reply = out.json();
        let reason = reply["reason"].as_str().unwrap();
        assert!(
            reason.contains("resumed after epoch 2")
                && reason.contains("epoch 3 is damaged")
                && reason.contains("moved aside"),
            "{damage}: {reason}"
        );
        assert_eq!(watch_to_end(&daemon, &id).0, 0, "{damage}");
        let show = daemon.strata(&["show", &id, "--json"]).json();
        assert_eq!(show["status"], "completed", "{damage}");
        assert_eq!(epoch_numbers(&show), vec![1, 2, 3, 4, 5], "{damage}");
        assert!(
            run_dir(&data, &id)
                .join("epoch-000003.safetensors.damaged")
                .exists(),
            "{damage}: the damaged checkpoint was not kept aside"
        );
        assert!(daemon
            .log()
            .contains("run resumed from an older checkpoint"));
    }
}

#[test]
fn a_checkpoint_written_before_checksums_still_resumes() {
    let daemon = Daemon::start();
    let data = daemon.data_dir.clone();
    let id = start_run(&daemon, &["--epochs", "2"]);
    assert_eq!(watch_to_end(&daemon, &id).0, 0);
    // Rewrite the newest checkpoint as tch's `write_safetensors` wrote them: no metadata, and
    // only the training state.
    let path = checkpoint(&data, &id, 2);
    let bytes = std::fs::read(&path).unwrap();
    let header_len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: serde_json::Map<String, Value> =
        serde_json::from_slice(&bytes[8..8 + header_len]).unwrap();
    let mut names: Vec<&String> = header
        .keys()
        .filter(|name| *name != "__metadata__" && !name.starts_with("strata."))
        .collect();
    names.sort();
    let (mut legacy_header, mut legacy_data) = (serde_json::Map::new(), Vec::new());
    for name in names {
        let range = tensor_range(&bytes, name);
        let mut info = header[name].clone();
        info["data_offsets"] =
            serde_json::json!([legacy_data.len(), legacy_data.len() + range.len()]);
        legacy_data.extend_from_slice(&bytes[range]);
        legacy_header.insert(name.clone(), info);
    }
    let mut header_bytes = serde_json::to_vec(&legacy_header).unwrap();
    while header_bytes.len() % 8 != 0 {
        header_bytes.push(b' ');
    }
    let mut legacy = (header_bytes.len() as u64).to_le_bytes().to_vec();
    legacy.extend(header_bytes);
    legacy.extend(legacy_data);
    std::fs::write(&path, legacy).unwrap();

    let out = daemon.strata(&["resume", &id, "--epochs", "3", "--follow", "--json"]);
    assert_eq!(out.code, 0, "{out:?}\n{}", daemon.log());
    let show = daemon.strata(&["show", &id, "--json"]).json();
    assert_eq!(epoch_numbers(&show), vec![1, 2, 3]);
}

#[tokio::test]
async fn with_no_intact_checkpoint_resume_is_refused_and_the_run_stays_resumable() {
    let daemon = Daemon::start();
    let data = daemon.data_dir.clone();
    let id = start_run(&daemon, &["--epochs", "3"]);
    assert_eq!(watch_to_end(&daemon, &id).0, 0);
    let kept: Vec<(PathBuf, Vec<u8>)> = [2, 3]
        .iter()
        .map(|&e| {
            let path = checkpoint(&data, &id, e);
            let bytes = std::fs::read(&path).unwrap();
            (path, bytes)
        })
        .collect();
    std::fs::write(&kept[0].0, &kept[0].1[..100]).unwrap();
    let mut garbled = kept[1].1.clone();
    let weights = tensor_range(&garbled, "model.head.weight");
    garbled[weights.start] ^= 1;
    std::fs::write(&kept[1].0, garbled).unwrap();

    let client = daemon.client().await;
    let err = client.resume_run(&id, 5).await.expect_err("resume refused");
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    let err = err.status().expect("a status");
    assert!(
        err.message().contains("no intact checkpoint")
            && err.message().contains("epoch 3")
            && err.message().contains("epoch 2"),
        "{}",
        err.message()
    );
    let run = client.get_run(&id).await.unwrap();
    assert_eq!(run.run.unwrap().status().label(), "completed");
    assert_eq!(run.epochs.len(), 3, "nothing was dropped");
    assert!(
        kept.iter().all(|(path, _)| path.exists()),
        "nothing was moved"
    );

    // Restored, it resumes.
    for (path, bytes) in &kept {
        std::fs::write(path, bytes).unwrap();
    }
    let out = daemon.strata(&["resume", &id, "--epochs", "4", "--follow", "--json"]);
    assert_eq!(out.code, 0, "{out:?}");
    let show = daemon.strata(&["show", &id, "--json"]).json();
    assert_eq!(epoch_numbers(&show), vec![1, 2, 3, 4]);
}

#[test]
fn check_reports_a_healthy_and_a_damaged_data_dir_and_repair_moves_damage_aside() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let (daemon, ids, _) = data_dir_with_two_runs(&data);
    // A deleted run leaves nothing behind that looks like damage.
    let extra = start_run(&daemon, &["--epochs", "1"]);
    assert_eq!(watch_to_end(&daemon, &extra).0, 0);
    assert_eq!(daemon.strata(&["delete", &extra]).code, 0);

    // Not while a daemon uses the data dir.
    let (code, _, stderr) = stratad(&["check"], &data);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("a stratad is using the data dir"),
        "{stderr}"
    );
    assert!(daemon.stop().success());

    let (code, text, _) = stratad(&["check"], &data);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("healthy"), "{text}");
    let (code, report) = check_json(&data, false);
    assert_eq!(code, 0, "{report}");
    assert_eq!(report["healthy"], true);
    assert_eq!(report["runs"], 2);
    assert_eq!(report["epochs"], 6);
    assert_eq!(report["checkpoints_verified"], 4);

    let damaged = checkpoint(&data, &ids[1], 2);
    let mut bytes = std::fs::read(&damaged).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x01;
    std::fs::write(&damaged, bytes).unwrap();
    let store_before = std::fs::read(data.join("db/db")).unwrap();
    let (code, text, _) = stratad(&["check"], &data);
    assert_eq!(code, 1, "{text}");
    assert!(
        text.contains("epoch-000002.safetensors") && text.contains("checksum"),
        "{text}"
    );
    let (code, report) = check_json(&data, false);
    assert_eq!(code, 1);
    assert_eq!(kinds(&report["problems"]), vec!["damaged-checkpoint"]);
    assert_eq!(report["problems"][0]["run"], ids[1].as_str());
    assert!(damaged.exists(), "check alone changed a file");
    assert_eq!(
        std::fs::read(data.join("db/db")).unwrap(),
        store_before,
        "check alone changed the store"
    );

    let (code, report) = check_json(&data, true);
    assert_eq!(code, 0, "{report}");
    assert!(!damaged.exists());
    assert!(damaged.with_extension("safetensors.damaged").exists());
    let (code, report) = check_json(&data, false);
    assert_eq!(code, 0, "{report}");
    assert_eq!(kinds(&report["notes"]), vec!["set-aside"]);
    // The data dir starts as before.
    let daemon = Daemon::start_in(&data, &[]);
    assert_eq!(
        daemon.strata(&["list", "--json"]).json()["runs"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
}

/// Five runs logged from outside, 40 epochs each in batches, then a SIGKILL: what the user can see
/// after a restart.
async fn data_dir_with_external_runs(data: &Path) -> Visible {
    let mut daemon = Daemon::start_in(data, &[]);
    let mut grpc = daemon.client().await.grpc();
    for i in 0..5 {
        strata_e2e::external::log_run(&mut grpc, &format!("outside-{i}"), 40, 8).await;
    }
    daemon.signal_and_wait("KILL");
    let pristine = data.with_extension("pristine");
    copy_dir(data, &pristine);
    let daemon = Daemon::start_in(&pristine, &[]);
    let seen = visible(&daemon);
    assert_eq!(seen.0.len(), 5);
    assert!(seen.0.iter().all(
        |(_, status, epochs)| status == "interrupted" && epochs.as_array().unwrap().len() == 40
    ));
    seen
}

/// Issue 30, finding 1: a flipped byte in the store lost external runs' epochs silently. Now
/// every flip is either harmless or found — by `check` (exit 1) and at start-up (refused, or the
/// epochs put back from the runs' epoch logs) — and `--repair` brings every epoch back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_damage_never_loses_an_external_run_silently_and_repair_brings_it_back() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let seen = data_dir_with_external_runs(&data).await;
    // Byte 0 (the first segment's header) and 10..90 % into the log's non-zero bytes.
    let original = std::fs::read(data.join("db/db")).unwrap();
    let len = original.len();
    let written: Vec<usize> = (0..len).filter(|&i| original[i] != 0).collect();
    let mut offsets = vec![0];
    offsets.extend([1, 3, 5, 7, 9].map(|tenth| written[written.len() * tenth / 10]));
    let mut outcomes = Vec::new();
    for (i, offset) in offsets.into_iter().enumerate() {
        let copy = tmp.path().join(format!("flip-{i}"));
        copy_dir(&data, &copy);
        let log = copy.join("db/db");
        let mut bytes = std::fs::read(&log).unwrap();
        bytes[offset] ^= 0x5a;
        std::fs::write(&log, bytes).unwrap();
        let what = format!("byte {offset} of {len} in db/db flipped");
        let (checked, report) = check_json(&copy, false);
        let started = refuses_or_shows_everything(&copy, &seen, &what);
        if checked == 0 {
            assert_eq!(
                started, "started intact",
                "{what}: check said healthy: {report}"
            );
        }
        let (code, report) = check_json(&copy, true);
        assert_eq!(code, 0, "{what}: {report}");
        let (code, report) = check_json(&copy, false);
        assert_eq!(code, 0, "{what}: the repair did not hold: {report}");
        let daemon = Daemon::start_in(&copy, &[]);
        assert_eq!(visible(&daemon), seen, "{what}: after the repair");
        outcomes.push((offset, checked, started));
    }
    println!("{outcomes:?}");

    // The whole store deleted: refused, and rebuilt from the runs' folders.
    std::fs::remove_dir_all(data.join("db")).unwrap();
    let refused = Daemon::try_start_in(&data, &[]).err().expect("refused");
    assert!(
        refused.log.contains("holds 5 run folder(s)"),
        "{}",
        refused.log
    );
    let (code, report) = check_json(&data, false);
    assert_eq!(code, 1, "{report}");
    assert_eq!(kinds(&report["problems"]), vec!["run-without-record"; 5]);
    let (code, report) = check_json(&data, true);
    assert_eq!(code, 0, "{report}");
    let daemon = Daemon::start_in(&data, &[]);
    assert_eq!(visible(&daemon), seen);
}

/// Issue 30, finding 6: damage to a run's second copies — its epoch log, its `run.pb`, its
/// folder, the checkpoints of a run that can resume — is found by `check` (exit 1, named); the
/// daemon starts and writes the copies again from the store; a missing checkpoint is recorded by
/// the repair (the run cannot resume). Nothing the user sees changes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damage_to_second_copies_is_found_and_put_right_from_the_store() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let mut daemon = Daemon::start_in(&data, &[]);
    let mut grpc = daemon.client().await.grpc();
    let mut external = Vec::new();
    for i in 0..5 {
        external.push(strata_e2e::external::log_run(&mut grpc, &format!("x{i}"), 12, 5).await);
    }
    // A trained run stopped by a shutdown after its first epoch: interrupted, resumable.
    let trained = start_run(&daemon, &["--epochs", "100000"]);
    while show(&daemon, &trained)["epochs"]
        .as_array()
        .unwrap()
        .is_empty()
    {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(daemon.signal_and_wait("TERM").success());
    let daemon = Daemon::start_in(&data, &[]);
    let seen = visible(&daemon);
    assert!(daemon.stop().success());
    let (code, report) = check_json(&data, false);
    assert_eq!(code, 0, "{report}");

    let log = |id: &str| run_dir(&data, id).join("epochs.pb");
    let run_pb = |id: &str| run_dir(&data, id).join("run.pb");
    let mut flipped = std::fs::read(log(&external[0])).unwrap();
    flipped[100] ^= 0x01;
    std::fs::write(log(&external[0]), flipped).unwrap();
    let cut = std::fs::read(log(&external[1])).unwrap();
    std::fs::write(log(&external[1]), &cut[..cut.len() / 3]).unwrap();
    let mut flipped = std::fs::read(run_pb(&external[2])).unwrap();
    flipped[20] ^= 0x01;
    std::fs::write(run_pb(&external[2]), flipped).unwrap();
    std::fs::remove_file(run_pb(&external[3])).unwrap();
    std::fs::remove_dir_all(run_dir(&data, &external[4])).unwrap();
    for epoch in std::fs::read_dir(run_dir(&data, &trained)).unwrap() {
        let path = epoch.unwrap().path();
        if path.extension().is_some_and(|e| e == "safetensors") {
            std::fs::remove_file(path).unwrap();
        }
    }
    let (code, report) = check_json(&data, false);
    assert_eq!(code, 1, "{report}");
    let mut found: Vec<(String, String)> = report["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["run"].as_str().unwrap().to_string(),
                p["kind"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    found.sort();
    let mut expected: Vec<(String, String)> = [
        (&external[0], "epoch-log-damaged"),
        (&external[1], "epoch-log-damaged"),
        (&external[2], "run-copy-damaged"),
        (&external[3], "run-copy-missing"),
        (&external[4], "folder-missing"),
        (&trained, "checkpoints-missing"),
    ]
    .iter()
    .map(|(id, kind)| (id.to_string(), kind.to_string()))
    .collect();
    expected.sort();
    assert_eq!(found, expected, "{report}");

    // The daemon starts, says what it wrote again, and shows everything as it was.
    let daemon = Daemon::start_in(&data, &[]);
    assert_eq!(visible(&daemon), seen);
    assert!(
        daemon.log().contains("again from the store"),
        "{}",
        daemon.log()
    );
    assert!(daemon.stop().success());
    let (code, report) = check_json(&data, false);
    assert_eq!(code, 1, "{report}");
    assert_eq!(kinds(&report["problems"]), ["checkpoints-missing"]);
    let (code, report) = check_json(&data, true);
    assert_eq!(code, 0, "{report}");
    let (code, report) = check_json(&data, false);
    assert_eq!(code, 0, "{report}");
    let daemon = Daemon::start_in(&data, &[]);
    let show = show(&daemon, &trained);
    assert_eq!(show["status"], "failed");
    assert!(
        show["reason"]
            .as_str()
            .unwrap()
            .contains("checkpoints were lost"),
        "{show}"
    );
    assert_eq!(
        show["epochs"],
        seen.0.iter().find(|r| r.0 == trained).unwrap().2
    );
}
