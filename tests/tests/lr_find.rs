//! `strata lr-find`: the per-group learning-rate range test, through the real CLI and daemon.
//!
//! The ordering test uses a model whose right rates are known by construction: a TorchScript
//! module `out = C·slow(x) + fast(x)` with two linear layers on a regression. The loss is
//! quadratic in each layer's weights; scaling `slow`'s output by C scales its gradient by C and
//! its curvature by C², so plain SGD's largest stable rate for `slow` — and with it where its
//! loss bottoms out and runs away — is C² times smaller than `fast`'s. With C = 10 that is 100×;
//! the test asserts only the order with a margin of 3×, never a number.

use std::path::Path;

use serde_json::Value;
use strata_e2e::{close, show, Daemon};

/// `slow`'s output is multiplied by this: its good rate is SCALE² times smaller than `fast`'s.
const SCALE: f64 = 10.0;
/// What the test asks of the suggested rates' ratio (the construction gives SCALE² = 100).
const MIN_RATIO: f64 = 3.0;

/// Scripts `out = SCALE·slow(x) + fast(x)` (two `Linear(inputs, 1)`) with PyTorch into `path`,
/// or says why it cannot.
fn script_scaled_module(path: &Path, inputs: usize) -> Result<(), String> {
    strata_e2e::script_torch_module(
        path,
        &format!(
            r#"class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.slow = torch.nn.Linear({inputs}, 1)
        self.fast = torch.nn.Linear({inputs}, 1)
    def forward(self, x):
        return {SCALE:.1} * self.slow(x) + self.fast(x)"#
        ),
    )
}

/// A probed group's entry in `lr-find --json`.
fn probe<'a>(found: &'a Value, group: &str) -> &'a Value {
    found["probes"]
        .as_array()
        .and_then(|probes| probes.iter().find(|p| p["group"] == group))
        .unwrap_or_else(|| panic!("no probe of {group} in {found}"))
}

fn rate(probe: &Value, suggestion: &str) -> f64 {
    probe[suggestion]
        .as_f64()
        .unwrap_or_else(|| panic!("no {suggestion} in {probe}"))
}

#[test]
fn a_group_whose_good_rate_is_a_hundred_times_lower_gets_the_lower_suggestion() {
    let tmp = tempfile::tempdir().unwrap();
    let module = tmp.path().join("scaled.pt");
    if let Err(why) = script_scaled_module(&module, 4) {
        println!("SKIPPED a_group_whose_good_rate_is_a_hundred_times_lower_gets_the_lower_suggestion: {why}");
        return;
    }
    let daemon = Daemon::start_in(&tmp.path().join("data"), &["--allow-torchscript"]);
    let model = format!("torchscript:{}", module.display());
    let found = daemon
        .strata(&[
            "lr-find",
            "--json",
            "--dataset",
            "regression",
            "--samples",
            "512",
            "--model",
            &model,
            "--optimizer",
            "sgd",
            "--momentum",
            "0",
            // The group not being probed barely moves, so each curve is its own group's.
            "--lr",
            "1e-5",
            "--batch-size",
            "32",
        ])
        .json();
    // fastai's defaults, reported back.
    assert_eq!(found["start_lr"], 1e-7);
    assert_eq!(found["end_lr"], 10.0);
    assert_eq!(found["steps"], 100);
    let groups: Vec<&str> = found["probes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["group"].as_str().unwrap())
        .collect();
    assert_eq!(groups, ["slow", "fast"], "in the model's order");
    let (slow, fast) = (probe(&found, "slow"), probe(&found, "fast"));
    for p in [slow, fast] {
        let points = p["points"].as_array().unwrap();
        assert!(!points.is_empty() && points.len() <= 100, "{p}");
        // The sweep rises exponentially from start_lr.
        assert_eq!(points[0]["lr"], 1e-7);
        assert!(points
            .windows(2)
            .all(|w| w[1]["lr"].as_f64() > w[0]["lr"].as_f64()));
        assert!(close(p["current_lr"].as_f64().unwrap(), 1e-5), "{p}");
    }
    for suggestion in ["valley", "minimum_div10"] {
        let (slow_rate, fast_rate) = (rate(slow, suggestion), rate(fast, suggestion));
        assert!(
            fast_rate >= MIN_RATIO * slow_rate,
            "{suggestion}: fast {fast_rate:e} should be at least {MIN_RATIO}× slow {slow_rate:e} (by construction {}×)",
            SCALE * SCALE
        );
    }
    // `slow` diverges at a rate 100× lower: its sweep stops earlier.
    let taken = |p: &Value| p["points"].as_array().unwrap().len();
    assert!(
        taken(slow) < taken(fast),
        "{} vs {}",
        taken(slow),
        taken(fast)
    );
    // A probe is not a run.
    let list = daemon.strata(&["list", "--json"]).json();
    assert_eq!(list["runs"], serde_json::json!([]), "{list}");
}

#[test]
fn apply_starts_a_run_with_the_suggested_rates_and_prints_its_start_line() {
    let tmp = tempfile::tempdir().unwrap();
    let daemon = Daemon::start_in(&tmp.path().join("data"), &[]);
    let plot = tmp.path().join("rates.svg");
    let flags = [
        "--dataset",
        "spirals",
        "--samples",
        "200",
        "--model",
        "mlp:8",
        "--batch-size",
        "20",
        "--epochs",
        "1",
    ];
    let mut args = vec!["lr-find", "--json", "--steps", "30", "--apply"];
    args.extend_from_slice(&flags);
    args.extend_from_slice(&["--plot", plot.to_str().unwrap()]);
    let found = daemon.strata(&args).json();
    let run = found["run_id"].as_str().expect("--apply started a run");
    assert_eq!(found["suggestion"], "valley");
    let rules: Vec<&str> = found["layer_lr"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap())
        .collect();
    assert_eq!(rules.len(), 2, "one rule per group: {rules:?}");
    let command = found["start_command"].as_str().unwrap();
    assert!(
        command.starts_with("strata start --dataset spirals"),
        "{command}"
    );
    let shown = show(&daemon, run);
    for rule in rules {
        let (group, rate) = rule.split_once('=').unwrap();
        let rate: f64 = rate.parse().unwrap();
        assert!(command.contains(&format!("--layer-lr {rule}")), "{command}");
        // The rule is the suggestion, rounded to 4 significant digits.
        let suggested = probe(&found, group)["suggested_lr"].as_f64().unwrap();
        assert!(
            (rate / suggested - 1.0).abs() < 1e-3,
            "{rule} vs {suggested}"
        );
        let applied = shown["groups"]
            .as_array()
            .unwrap()
            .iter()
            .find(|g| g["name"] == group)
            .unwrap_or_else(|| panic!("no group {group} in {shown}"));
        assert!(
            close(applied["lr"].as_f64().unwrap(), rate),
            "{applied} vs {rule}"
        );
    }
    let svg = std::fs::read_to_string(&plot).unwrap();
    assert!(
        svg.contains("layer0") && svg.contains("head"),
        "the plot names the groups"
    );

    // For people: a chart per group, the table and the start line.
    let mut args = vec!["lr-find", "--steps", "30", "--group", "head"];
    args.extend_from_slice(&flags);
    let out = daemon.strata(&args);
    assert_eq!(out.code, 0, "{out:?}");
    for text in [
        "head: smoothed loss",
        "min/10",
        "valley",
        "not probed",
        "strata start --dataset spirals",
    ] {
        assert!(out.stdout.contains(text), "no '{text}' in\n{}", out.stdout);
    }
    assert!(out.stderr.contains("probed head (1/1)"), "{}", out.stderr);
}

#[test]
fn bad_ranges_steps_and_groups_are_usage_errors_naming_the_flag() {
    let daemon = Daemon::start();
    let base = ["lr-find", "--dataset", "spirals", "--samples", "100"];
    let run = |extra: &[&str]| {
        let mut args: Vec<&str> = base.iter().chain(extra).copied().collect();
        if !extra.contains(&"--model") {
            args.extend(["--model", "mlp:8"]);
        }
        daemon.strata(&args)
    };
    let deep = "mlp:4,4,4,4,4,4,4,4,4,4";
    for (extra, named) in [
        (&["--start-lr", "1", "--end-lr", "1"][..], "--end-lr"),
        (&["--start-lr", "100"][..], "--start-lr"),
        (&["--start-lr", "0"][..], "--start-lr"),
        (&["--end-lr", "-1"][..], "--end-lr"),
        (&["--steps", "0"][..], "--steps"),
        (&["--steps", "2001"][..], "--steps"),
        (&["--group", "nope*"][..], "--group"),
        // 11 groups × 2000 steps is over the cap of one probe.
        (&["--steps", "2000", "--model", deep][..], "--steps"),
    ] {
        let out = run(extra);
        assert_eq!(out.code, 2, "{extra:?}: {out:?}");
        // The first line is the error (clap's usage hint may follow it).
        let first = out.stderr.lines().next().unwrap_or_default();
        assert!(first.starts_with("error:"), "{extra:?}: {}", out.stderr);
        assert!(first.contains(named), "{extra:?}: {}", out.stderr);
    }
    let out = run(&["--group", "nope*"]);
    assert!(
        out.stderr.contains("layer0, head"),
        "names what exists: {}",
        out.stderr
    );
    // Every chosen group frozen for good: nothing to probe.
    let out = run(&["--freeze", "*"]);
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains("frozen"), "{}", out.stderr);
}

/// The daemon checks the range itself (the CLI checks it first, but other clients may not): each
/// bad value is INVALID_ARGUMENT naming the field, before anything is read or trained.
#[tokio::test]
async fn the_daemon_refuses_bad_ranges_from_any_client() {
    use strata_proto::{LrFindRequest, RunConfig};
    let daemon = Daemon::start();
    let client = daemon.client().await;
    let request = |start_lr: Option<f64>, end_lr: Option<f64>, steps: Option<u32>| LrFindRequest {
        config: Some(RunConfig {
            dataset: "spirals".into(),
            samples: Some(100),
            model: "mlp:8".into(),
            ..RunConfig::default()
        }),
        start_lr,
        end_lr,
        steps,
        groups: Vec::new(),
    };
    for (bad, field) in [
        (request(Some(f64::NAN), None, None), "start_lr"),
        (request(None, Some(f64::INFINITY), None), "end_lr"),
        (request(Some(1.0), Some(1e-3), None), "end_lr"),
        (request(None, None, Some(0)), "steps"),
        (request(None, None, Some(u32::MAX)), "steps"),
        (
            LrFindRequest {
                groups: vec!["[".into()],
                ..request(None, None, None)
            },
            "groups[0]",
        ),
        (
            LrFindRequest {
                config: None,
                ..request(None, None, None)
            },
            "config",
        ),
    ] {
        let status = match client.lr_find(bad.clone()).await {
            Ok(mut stream) => stream.message().await.expect_err("refused"),
            Err(err) => err.status().cloned().expect("a status"),
        };
        assert_eq!(
            status.code(),
            tonic::Code::InvalidArgument,
            "{bad:?}: {status:?}"
        );
        assert!(
            status.message().starts_with(field),
            "{field}: {}",
            status.message()
        );
    }
    let list = daemon.strata(&["list", "--json"]).json();
    assert_eq!(list["runs"], serde_json::json!([]));
}

/// A probe in progress when the daemon is told to stop ends with the daemon (exit 0), and its
/// client hears that it stopped instead of waiting for the rest of the sweep.
#[tokio::test]
async fn shutdown_stops_a_probe_in_progress() {
    use strata_proto::{lr_find_event::Event, LrFindRequest, RunConfig};
    let tmp = tempfile::tempdir().unwrap();
    let mut daemon = Daemon::start_in(&tmp.path().join("data"), &[]);
    let client = daemon.client().await;
    let mut stream = client
        .lr_find(LrFindRequest {
            config: Some(RunConfig {
                dataset: "spirals".into(),
                samples: Some(2000),
                model: "mlp:64,64".into(),
                ..RunConfig::default()
            }),
            start_lr: None,
            end_lr: None,
            // 3 groups × 2000 steps: far more than happens before the signal.
            steps: Some(2000),
            groups: Vec::new(),
        })
        .await
        .expect("the probe starts");
    // Wait until it trains.
    loop {
        match stream.message().await.expect("no error yet") {
            Some(strata_proto::LrFindEvent {
                event: Some(Event::Progress(_)),
            }) => break,
            Some(_) => continue,
            None => panic!("the probe ended before any progress"),
        }
    }
    let status = daemon.signal_and_wait("TERM");
    assert!(status.success(), "stratad exits 0: {status:?}");
    // The stream ends with an error or ends early; never with every group probed.
    let mut probes = 0;
    while let Ok(Some(event)) = stream.message().await {
        if matches!(event.event, Some(Event::Probe(_))) {
            probes += 1;
        }
    }
    assert!(
        probes < 3,
        "the sweep went on after shutdown: {probes} groups"
    );
}
