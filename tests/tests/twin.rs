//! The seed's question — did the layer rates converge faster than one rate? — answered by a
//! single-rate twin: `strata start ... --baseline` starts, beside the run, the same run with every
//! group at one rate, and `show` and `compare` say whether the layer rates helped, with numbers.
//!
//! The two setups were chosen by training them at seeds 1–6 (a different CPU behaves like a
//! different seed): a head at Adam 0.3 over a body at 3e-3 beat one rate of 0.3 (which makes the
//! whole network bounce) at every seed, by 1.2–77× in best validation loss; a first layer starved
//! at 1e-6 under 1e-2 lost to one rate of 1e-2 at every seed, by 2–4×.

use serde_json::Value;
use strata_e2e::{show, watch_to_end, Daemon};

/// Starts a run with `--baseline` (and these flags), waits for it and its twin; returns both ids.
fn run_with_twin(daemon: &Daemon, flags: &[&str]) -> (String, String) {
    let mut args = vec!["start", "--json"];
    args.extend_from_slice(flags);
    let out = daemon.strata(&args);
    assert_eq!(out.code, 0, "{out:?}");
    let started = out.json();
    let (id, twin) = (
        started["run_id"].as_str().unwrap().to_string(),
        started["twin_run_id"].as_str().unwrap().to_string(),
    );
    assert_eq!(twin.len(), 13, "{started}");
    watch_to_end(daemon, &id);
    watch_to_end(daemon, &twin);
    (id, twin)
}

fn twin_of(shown: &Value) -> &Value {
    let twin = &shown["twin"];
    assert!(twin.is_object(), "no twin comparison: {shown}");
    twin
}

#[test]
fn a_twin_says_whether_the_layer_rates_helped() {
    let tmp = tempfile::tempdir().unwrap();
    let daemon = Daemon::start_in(&tmp.path().join("data"), &["--max-concurrent-runs", "2"]);
    let spirals = [
        "--dataset",
        "spirals",
        "--samples",
        "400",
        "--model",
        "mlp:32,32",
        "--epochs",
        "20",
        "--seed",
        "1",
    ];

    // Helps: a head rate one rate cannot take, with the body slowed down.
    let mut flags = spirals.to_vec();
    flags.extend([
        "--lr",
        "0.3",
        "--layer-lr",
        "layer0=3e-3",
        "--layer-lr",
        "layer1=3e-3",
        "--baseline",
        "--name",
        "slow-body",
    ]);
    let (helped, helped_twin) = run_with_twin(&daemon, &flags);
    let shown = show(&daemon, &helped);
    assert_eq!(shown["twin_run_id"], helped_twin.as_str());
    let twin = twin_of(&shown);
    assert_eq!(twin["outcome"], "helped", "{twin}");
    assert!(twin["best_ratio"].as_f64().unwrap() < 0.99, "{twin}");
    let summary = twin["summary"].as_str().unwrap();
    assert!(
        summary.starts_with(&format!(
            "Against its single-rate twin {helped_twin} (every group at 3e-1): "
        )) && summary.ends_with(": the layer rates helped."),
        "{summary}"
    );
    // The twin is the same run at one rate: same data, seed, model and epochs, nothing else.
    let twin_shown = show(&daemon, &helped_twin);
    assert_eq!(twin_shown["twin_of"], helped.as_str());
    assert_eq!(twin_shown["name"], "slow-body (single-rate twin)");
    let (config, twin_config) = (&shown["config"], &twin_shown["config"]);
    for field in [
        "dataset",
        "samples",
        "seed",
        "model",
        "epochs",
        "optimizer",
        "schedule",
    ] {
        assert_eq!(config[field], twin_config[field], "{field}");
    }
    assert_eq!(twin_config["layer_lr"], serde_json::json!([]));
    assert_eq!(twin_config["lr"], 0.3);
    for parameter in twin_shown["parameters"].as_array().unwrap() {
        assert_eq!(parameter["lr"], 0.3, "{parameter}");
    }
    let human = daemon.strata(&["show", &helped]);
    assert!(
        human.stdout.contains(&format!(
            "Twin       {helped_twin} (every group at one rate)"
        )) && human.stdout.contains(summary),
        "{}",
        human.stdout
    );

    // Hurts: a starved first layer against one rate for all.
    let mut flags = spirals.to_vec();
    flags.extend([
        "--lr",
        "1e-2",
        "--layer-lr",
        "layer0=1e-6",
        "--baseline",
        "lr=1e-2",
    ]);
    let (hurt, hurt_twin) = run_with_twin(&daemon, &flags);
    let shown = show(&daemon, &hurt);
    let twin = twin_of(&shown);
    assert_eq!(twin["outcome"], "hurt", "{twin}");
    assert!(twin["best_ratio"].as_f64().unwrap() > 1.01, "{twin}");
    assert!(
        twin["summary"]
            .as_str()
            .unwrap()
            .ends_with(": the single rate did better."),
        "{twin}"
    );
    assert_eq!(
        show(&daemon, &hurt_twin)["name"],
        format!("single-rate twin of {hurt}")
    );

    // compare answers for each run that has a twin.
    let compared = daemon.strata(&["compare", &helped, &hurt]);
    assert_eq!(compared.code, 0, "{compared:?}");
    assert!(
        compared.stdout.contains("the layer rates helped")
            && compared.stdout.contains("the single rate did better"),
        "{}",
        compared.stdout
    );
    let json = daemon.strata(&["compare", &helped, &hurt, "--json"]).json();
    for run in json["runs"].as_array().unwrap() {
        assert!(run["twin"]["outcome"].is_string(), "{run}");
    }

    // A dry run stores nothing, twin included; a bad baseline is refused naming the field.
    let before = daemon.strata(&["list", "--json"]).json()["runs"]
        .as_array()
        .unwrap()
        .len();
    let mut flags = vec!["start", "--dry-run"];
    flags.extend(spirals);
    flags.push("--baseline");
    assert_eq!(daemon.strata(&flags).code, 0);
    let mut flags = vec!["start"];
    flags.extend(spirals);
    flags.extend(["--baseline", "lr=-1"]);
    let out = daemon.strata(&flags);
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains("baseline.lr"), "{out:?}");
    let after = daemon.strata(&["list", "--json"]).json()["runs"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(before, after);
}
