//! `strata sweep` over real daemons on loopback: a grid spread over three daemons and ranked by
//! `sweep show`, a hopeless trial stopped early and recorded as such, a daemon killed mid-sweep
//! (its trial interrupted and resumable, the others finished), bad specs refused before
//! anything starts, and a stop reason stored without its control characters.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use serde_json::Value;
use strata_e2e::{bin, clear_strata_env, CliOutput, Daemon};

/// Tiny trials: a synthetic set, a small MLP, no batch events.
const TRIAL: &[&str] = &[
    "--dataset",
    "moons",
    "--samples",
    "400",
    "--model",
    "mlp:16,16",
    "--progress-events",
    "0",
];

/// Daemons with one training slot each, on data dirs in one temporary folder (removed when the
/// folder is dropped, after the daemons).
fn daemons(n: usize) -> (Vec<Daemon>, tempfile::TempDir) {
    let tmp = tempfile::tempdir().expect("a temporary folder");
    let fleet = (0..n)
        .map(|i| {
            Daemon::start_in(
                &tmp.path().join(format!("d{i}")),
                &["--max-concurrent-runs", "1"],
            )
        })
        .collect();
    (fleet, tmp)
}

/// `strata --addr A --addr B ... ARGS`: every address before the subcommand (a global flag given
/// after it would replace them).
fn strata_on(daemons: &[&Daemon], args: &[&str]) -> Command {
    let mut command = Command::new(bin("strata"));
    clear_strata_env(&mut command);
    for daemon in daemons {
        command.arg("--addr").arg(&daemon.addr);
    }
    command.args(args).stdin(Stdio::null());
    command
}

fn run(daemons: &[&Daemon], args: &[&str]) -> CliOutput {
    let output = strata_on(daemons, args).output().expect("strata runs");
    CliOutput::from(output)
}

fn sweep(daemons: &[&Daemon], flags: &[&str]) -> CliOutput {
    let mut args = vec!["sweep", "--json"];
    args.extend_from_slice(TRIAL);
    args.extend_from_slice(flags);
    run(daemons, &args)
}

/// The name the CLI gives a daemon named by `--addr`.
fn name_of(daemon: &Daemon) -> String {
    strata_client::DaemonSpec::from_addr(&daemon.addr, None, None).name
}

fn trials(summary: &Value) -> &Vec<Value> {
    summary["trials"].as_array().expect("trials")
}

#[test]
fn a_grid_runs_every_trial_over_three_daemons_and_show_ranks_and_recommends() {
    let (fleet, _tmp) = daemons(3);
    let all: Vec<&Daemon> = fleet.iter().collect();
    let out = sweep(
        &all,
        &[
            "--epochs",
            "8",
            "--lr",
            "1e-4,1e-3,3e-2",
            "--layer-lr",
            "layer0=x1,x0.1,1e-7",
            "--no-early-stop",
        ],
    );
    let summary = out.json();
    let id = summary["sweep_id"].as_str().unwrap().to_string();
    assert_eq!(trials(&summary).len(), 9, "{summary}");
    for trial in trials(&summary) {
        assert_eq!(trial["outcome"], "completed", "{trial}");
        assert_eq!(trial["epochs"], 8);
    }
    let used: std::collections::BTreeSet<&str> = trials(&summary)
        .iter()
        .map(|t| t["daemon"].as_str().unwrap())
        .collect();
    let names: std::collections::BTreeSet<String> = fleet.iter().map(name_of).collect();
    assert_eq!(
        used,
        names.iter().map(String::as_str).collect(),
        "trials ran on every daemon"
    );
    assert_eq!(summary["counts"]["completed"], 9);

    // Each daemon records its trials' membership; `list --sweep` finds them.
    let mut listed = 0;
    for daemon in &fleet {
        let runs = daemon.strata(&["list", "--sweep", &id, "--json"]).json();
        for run in runs["runs"].as_array().unwrap() {
            assert_eq!(run["sweep"]["sweep_id"], id.as_str());
            let settings = &run["sweep"]["settings"];
            assert!(
                settings["lr"].is_string() && settings["layer0"].is_string(),
                "{run}"
            );
            listed += 1;
        }
    }
    assert_eq!(listed, 9);

    let show = run(&all, &["sweep", "show", &id, "--json"]).json();
    let ranked = show["trials"].as_array().unwrap();
    assert_eq!(ranked.len(), 9);
    let losses: Vec<f64> = ranked
        .iter()
        .map(|t| t["best_val_loss"].as_f64().unwrap())
        .collect();
    assert!(losses.windows(2).all(|w| w[0] <= w[1]), "{losses:?}");
    for (i, trial) in ranked.iter().enumerate() {
        assert_eq!(trial["rank"], i as u64 + 1);
        assert!(trial["verdict"].is_string() && trial["status"] == "completed");
    }
    // At 1e-4 and 1e-3 eight epochs of Adam barely leave ln 2; 3e-2 gets far below: the top
    // trial has the highest base rate, by a margin no float noise moves.
    assert_eq!(ranked[0]["settings"]["lr"], "3e-2", "{show}");
    let best_at_low_rates = ranked
        .iter()
        .filter(|t| t["settings"]["lr"] != "3e-2")
        .map(|t| t["best_val_loss"].as_f64().unwrap())
        .fold(f64::INFINITY, f64::min);
    assert!(losses[0] < 0.75 * best_at_low_rates, "{losses:?}");
    let recommendation = &show["recommendation"];
    assert_eq!(recommendation["trial"], ranked[0]["trial"]);
    assert_eq!(
        recommendation["reference"]["kind"], "uniform",
        "layer0=x1 trials train every group at one rate: {recommendation}"
    );
    let sentence = recommendation["sentence"].as_str().unwrap();
    assert!(
        sentence.contains("best validation loss") && sentence.contains("lower than uniform"),
        "{sentence}"
    );
    let effects = show["effects"].as_array().unwrap();
    let names: Vec<&str> = effects
        .iter()
        .map(|e| e["setting"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["lr", "layer0"]);
    assert_eq!(effects[0]["values"].as_array().unwrap().len(), 3);

    // The text form says the same.
    let text = run(&all, &["sweep", "show", &id]);
    assert_eq!(text.code, 0, "{text:?}");
    assert!(
        text.stdout.contains("Recommendation  lr=3e-2"),
        "{}",
        text.stdout
    );
}

#[test]
fn a_hopeless_trial_is_stopped_early_and_recorded_as_stopped() {
    // One daemon with one slot: trials run in order, so the good trial has finished when the
    // hopeless one (a rate of 1e-7: validation stays at ln 2) reports its first epoch, and the
    // median rule (one finished trial needed) stops it with 99 epochs still to go.
    let (fleet, _tmp) = daemons(1);
    let one = [&fleet[0]];
    let out = sweep(
        &one,
        &[
            "--epochs",
            "100",
            "--lr",
            "3e-2,1e-7",
            "--min-finished-trials",
            "1",
        ],
    );
    let summary = out.json();
    let id = summary["sweep_id"].as_str().unwrap().to_string();
    let ended = trials(&summary);
    assert_eq!(ended[0]["outcome"], "completed", "{summary}");
    assert_eq!(ended[1]["outcome"], "stopped-early", "{summary}");
    assert!(ended[1]["epochs"].as_u64().unwrap() < 100);
    let run_id = ended[1]["run_id"].as_str().unwrap();

    let shown = strata_e2e::show(&fleet[0], run_id);
    assert_eq!(shown["status"], "cancelled");
    let reason = shown["reason"].as_str().unwrap();
    assert!(
        reason.starts_with(&format!(
            "stopped early by sweep {id}: best validation loss"
        )),
        "{reason}"
    );
    assert!(reason.contains("above the median"), "{reason}");
    assert_eq!(shown["sweep"]["trial"], 2);
    assert_eq!(shown["tags"], serde_json::json!([format!("sweep:{id}")]));
    assert_eq!(shown["sweep"]["settings"]["lr"], "1e-7");

    let show = run(&one, &["sweep", "show", &id, "--json"]).json();
    let ranked = show["trials"].as_array().unwrap();
    assert_eq!(ranked[0]["settings"]["lr"], "3e-2");
    assert_eq!(ranked[1]["stopped_early"], true);
    // Without layer rules every trial trains its groups at one rate: the best is compared
    // with the other.
    assert_eq!(
        show["recommendation"]["reference"]["kind"], "uniform",
        "{show}"
    );

    // The dashboard lists the sweep's trials with their place in it, and nothing else.
    strata_e2e::start_run(&fleet[0], &["--epochs", "1"]);
    let dashboard = fleet[0]
        .dashboard
        .as_deref()
        .expect("the dashboard's address");
    let listed = strata_e2e::http::get(dashboard, &format!("/api/runs?sweep={id}"), &[]).json();
    let rows = listed["runs"].as_array().unwrap();
    assert_eq!(rows.len(), 2, "{listed}");
    let stopped = rows
        .iter()
        .find(|r| r["id"] == run_id)
        .expect("the stopped trial");
    assert_eq!(stopped["sweep"]["sweep_id"], id.as_str());
    assert_eq!(stopped["sweep"]["settings"]["lr"], "1e-7");
    assert_eq!(stopped["status"], "cancelled");
    let page = strata_e2e::http::get(dashboard, &format!("/api/runs/{run_id}"), &[]).json();
    assert_eq!(page["sweep"]["trial"], 2, "{page}");
}

#[test]
fn a_daemon_killed_mid_sweep_leaves_its_trial_interrupted_and_resumable() {
    let (mut fleet, _tmp) = daemons(3);
    let victim_name = name_of(&fleet[1]);
    let mut args = vec!["sweep", "--json"];
    args.extend_from_slice(TRIAL);
    args.extend_from_slice(&["--epochs", "60", "--lr", "1e-3,3e-3,1e-2,3e-2,1e-1"]);
    let mut child = {
        let all: Vec<&Daemon> = fleet.iter().collect();
        strata_on(&all, &args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("strata sweep starts")
    };
    // With --json the progress lines go to stderr. Kill the victim as soon as a trial starts on
    // it: the trial has 60 epochs to go, and the victim gets no other (one slot each).
    let stderr = child.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines();
    let started_on_victim = format!(" started on {victim_name} as run ");
    let mut progress = Vec::new();
    for line in lines.by_ref() {
        let line = line.expect("a progress line");
        progress.push(line.clone());
        if line.contains(&started_on_victim) {
            break;
        }
    }
    assert!(
        progress.iter().any(|l| l.contains(&started_on_victim)),
        "{progress:?}"
    );
    fleet[1].signal_and_wait("KILL");
    progress.extend(lines.map_while(Result::ok));
    let output = child.wait_with_output().expect("strata sweep ends");
    assert_eq!(output.status.code(), Some(1), "{progress:?}");
    let summary: Value = serde_json::from_slice(&output.stdout).expect("the summary as JSON");
    assert!(
        progress.iter().any(|l| l.contains("did not finish")),
        "the error line: {progress:?}"
    );
    let ended = trials(&summary);
    assert_eq!(ended.len(), 5);
    let (lost, others): (Vec<&Value>, Vec<&Value>) = ended
        .iter()
        .partition(|t| t["daemon"] == victim_name.as_str());
    assert_eq!(lost.len(), 1, "{summary}");
    assert_eq!(lost[0]["outcome"], "interrupted");
    assert!(lost[0]["reason"]
        .as_str()
        .unwrap()
        .contains("strata resume"));
    for trial in &others {
        assert_eq!(trial["outcome"], "completed", "{trial}");
    }
    assert_eq!(summary["daemons_down"][0]["daemon"], victim_name.as_str());

    // While it is down, `sweep show` says so and ranks the trials the others hold.
    let sweep_id = summary["sweep_id"].as_str().unwrap();
    let show = {
        let all: Vec<&Daemon> = fleet.iter().collect();
        run(&all, &["sweep", "show", sweep_id, "--json"]).json()
    };
    assert_eq!(show["unreachable"][0]["daemon"], victim_name.as_str());
    assert_eq!(show["trials"].as_array().unwrap().len(), others.len());

    // Back on the same data dir, the trial is interrupted and resumes to the end.
    let data_dir = fleet[1].data_dir.clone();
    let back = Daemon::start_in(&data_dir, &["--max-concurrent-runs", "1"]);
    let run_id = lost[0]["run_id"].as_str().unwrap();
    assert_eq!(strata_e2e::show(&back, run_id)["status"], "interrupted");
    let resumed = back.strata(&["resume", run_id, "--json"]);
    assert_eq!(resumed.code, 0, "{resumed:?}");
    let (code, _) = strata_e2e::watch_to_end(&back, run_id);
    assert_eq!(code, 0);
    let shown = strata_e2e::show(&back, run_id);
    assert_eq!(shown["status"], "completed");
    assert_eq!(shown["sweep"]["trial"], lost[0]["trial"]);
}

#[test]
fn bad_specs_are_usage_errors_naming_the_flag_and_start_nothing() {
    let (fleet, _tmp) = daemons(1);
    let one = [&fleet[0]];
    let cases: [(&[&str], &str); 5] = [
        (&["--lr", "1e-3,fast"], "--lr: 'fast' is not a number"),
        (&["--lr", "log:1e-4..1e-1"], "--trials"),
        (&["--batch-size", "log:8..64"], "--batch-size"),
        (&["--layer-lr", "layer0"], "--layer-lr"),
        // The daemon's own rules, through the dry run of every trial.
        (&["--lr", "1e-3,-1"], "trial 2 (lr=-1): lr:"),
    ];
    for (flags, message) in cases {
        let out = sweep(&one, flags);
        assert_eq!(out.code, 2, "{flags:?}: {out:?}");
        assert!(out.stderr.contains(message), "{flags:?}: {}", out.stderr);
        assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
    }
    let too_many: Vec<String> = (1..=40).map(|i| format!("{i}e-4")).collect();
    let seeds: Vec<String> = (0..30).map(|i| i.to_string()).collect();
    let out = sweep(
        &one,
        &["--lr", &too_many.join(","), "--seed", &seeds.join(",")],
    );
    assert_eq!(out.code, 2);
    assert!(
        out.stderr.contains("more than 1000 trials"),
        "{}",
        out.stderr
    );
    let listed = fleet[0].strata(&["list", "--json"]).json();
    assert_eq!(
        listed["runs"].as_array().unwrap().len(),
        0,
        "nothing started"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_reason_is_stored_without_control_characters() {
    // A reason is shown in terminals and pages: escapes in it could forge lines or clear the
    // screen. Each control character is stored as a space.
    let (fleet, _tmp) = daemons(1);
    let mut flags: Vec<&str> = TRIAL.to_vec();
    flags.extend(["--epochs", "100000"]);
    let run = strata_e2e::start_with_flags(&fleet[0], &flags);
    let client = fleet[0].client().await;
    let reason = "\u{1b}[2J\u{1b}[31mcleared\r\nFAKE LINE\u{7}";
    let cancelled = client
        .cancel_run_because(&run, reason.to_string())
        .await
        .expect("the cancel");
    let stored = cancelled.run.expect("the run").reason;
    assert!(!stored.chars().any(char::is_control), "{stored:?}");
    assert!(
        stored.starts_with(" [2J [31mcleared  FAKE LINE "),
        "{stored:?}"
    );
    let shown = strata_e2e::show(&fleet[0], &run);
    assert_eq!(shown["reason"].as_str(), Some(stored.as_str()));
}
