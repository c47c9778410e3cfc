//! The dashboard's sweep page in a real browser (headless Chromium over DevTools): a sweep's
//! trials with their settings and results, each setting's effect, `strata sweep show`'s
//! recommendation sentence, and a parallel-coordinates view of the trials against their
//! settings — updated live as trials start and finish. The trials are started as `strata sweep`
//! starts them (StartRun with the sweep's membership) and wait in the queue behind a long run
//! until the page is open, so the page sees them finish whatever this machine's speed.

use std::time::Duration;

use serde_json::{json, Value};
use strata_e2e::{
    browser::{self, Browser},
    http, start_run, Daemon,
};
use strata_proto::{RunConfig, StartRunRequest, SweepSetting, SweepTrial};

const PAGE_TIMEOUT: Duration = Duration::from_secs(240);
const SWEEP: &str = "dash-sweep_1";

/// Trial `trial` of the sweep, at rate `lr` with batch size `batch`.
fn trial(trial: u32, lr: &str, batch: &str) -> StartRunRequest {
    StartRunRequest {
        config: Some(RunConfig {
            dataset: "moons".into(),
            samples: Some(400),
            model: "mlp:16,16".into(),
            epochs: Some(4),
            lr: Some(lr.parse().unwrap()),
            batch_size: Some(batch.parse().unwrap()),
            progress_events_per_epoch: Some(0),
            ..RunConfig::default()
        }),
        name: format!("sweep {SWEEP} trial {trial}"),
        tags: vec![format!("sweep:{SWEEP}")],
        sweep: Some(SweepTrial {
            sweep_id: SWEEP.into(),
            trial,
            settings: [("lr", lr), ("batch-size", batch)]
                .into_iter()
                .map(|(name, value)| SweepSetting {
                    name: name.into(),
                    value: value.into(),
                })
                .collect(),
        }),
        ..StartRunRequest::default()
    }
}

fn statuses(browser: &mut Browser) -> Value {
    browser.eval("window.strataSweep.trials().map(t => t.status).sort()")
}

#[test]
fn the_sweep_page_follows_its_trials_live_and_recommends_one() {
    let Some(mut browser) = Browser::launch() else {
        eprintln!("dashboard sweep page: SKIPPED — chromium is not installed (scripts/setup-test-tools.sh installs Debian's package as root; or set STRATA_CHROMIUM)");
        return;
    };
    let shots = browser::screenshot_dir();
    let tmp = tempfile::tempdir().unwrap();
    let daemon = Daemon::start_in(&tmp.path().join("data"), &["--max-concurrent-runs", "1"]);
    let base = daemon.dashboard.clone().expect("the dashboard's address");

    // Not a sweep of this daemon, or not a sweep id at all: 404s naming the problem.
    for path in ["/api/sweeps/nothing-here", "/api/sweeps/a%20b"] {
        let answer = http::get(&base, path, &[]);
        assert_eq!(answer.status, 404, "{path}: {}", answer.body);
        assert!(answer.json()["error"].as_str().unwrap().contains("sweep"));
    }

    let blocker = start_run(&daemon, &["--epochs", "100000", "--name", "blocker"]);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut grpc = rt.block_on(daemon.client()).grpc();
    let mut start = |request: StartRunRequest| {
        rt.block_on(grpc.start_run(request))
            .expect("the trial starts")
            .into_inner()
            .run_id
    };
    start(trial(1, "0.1", "32"));
    start(trial(2, "0.001", "32"));

    browser.open(&format!("{base}/sweeps/{SWEEP}"));
    browser.wait_for(
        "window.strataSweep && window.strataSweep.trials().length === 2",
        PAGE_TIMEOUT,
    );
    assert_eq!(statuses(&mut browser), json!(["queued", "queued"]));
    assert_eq!(
        browser.eval("window.strataSweep.recommendation()"),
        json!(null)
    );
    browser.eval("window.sweepPageOnce = 'same page'");

    // A third trial appears, then all three train and end: the page follows without a reload.
    start(trial(3, "0.01", "64"));
    browser.wait_for("window.strataSweep.trials().length === 3", PAGE_TIMEOUT);
    assert_eq!(daemon.strata(&["cancel", &blocker]).code, 0);
    browser.wait_for(
        "window.strataSweep.trials().every(t => t.status !== 'queued' && t.status !== 'running') && window.strataSweep.recommendation() !== null",
        PAGE_TIMEOUT,
    );
    assert_eq!(browser.eval("window.sweepPageOnce"), json!("same page"));

    // What the page says is what the daemon's store holds, ranked as `strata sweep show` ranks.
    let shown = daemon.strata(&["sweep", "show", SWEEP, "--json"]).json();
    let trials = browser.eval("window.strataSweep.trials()");
    let page_order: Vec<&Value> = trials
        .as_array()
        .unwrap()
        .iter()
        .map(|t| &t["run_id"])
        .collect();
    let cli_order: Vec<&Value> = shown["trials"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| &t["run_id"])
        .collect();
    assert_eq!(page_order, cli_order, "ranked as the CLI ranks: {shown}");
    let sentence = browser.eval("window.strataSweep.recommendation().sentence");
    assert_eq!(
        sentence, shown["recommendation"]["sentence"],
        "the CLI's sentence"
    );
    assert!(browser
        .eval("window.strataSweep.recommendationText()")
        .as_str()
        .unwrap()
        .contains(sentence.as_str().unwrap()));
    // Each setting's effect, its values in the order the trials first used them.
    let effects = browser.eval(
        "window.strataSweep.effects().map(e => [e.setting, e.values.map(v => [v.value, v.trials])])",
    );
    assert_eq!(
        effects,
        json!([
            ["lr", [["0.1", 1], ["0.001", 1], ["0.01", 1]]],
            ["batch-size", [["32", 2], ["64", 1]]],
        ])
    );
    // The parallel view: an axis per setting and one for the result; a line per trial.
    assert_eq!(
        browser.eval("window.strataSweep.axes()"),
        json!(["lr", "batch-size", "best val loss"])
    );
    assert_eq!(browser.eval("window.strataSweep.lines()"), json!(3));
    browser.screenshot(&shots.join("sweep-page.png"));

    // The runs page links a trial to its sweep's page.
    browser.open(&format!("{base}/"));
    browser.wait_for(
        "window.strataRuns && window.strataRuns.rows().length === 4",
        PAGE_TIMEOUT,
    );
    browser.eval("document.querySelector('input[data-column=\"sweep\"]').click()");
    let link = browser.eval(&format!(
        "document.querySelector('a[href=\"/sweeps/{SWEEP}\"]') !== null"
    ));
    assert_eq!(link, json!(true));
}
