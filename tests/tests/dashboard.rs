//! The dashboard: its HTTP API's rules (token, 404s, bounds, loopback), and its pages in a real
//! browser (headless Chromium over DevTools) — a run page drawing epochs as they are stored,
//! without a reload, gap or duplicate; the runs page following statuses; the compare page.
//! Screenshots go to `target/dashboard-screenshots/`.

use std::time::Duration;

use serde_json::{json, Value};
use strata_e2e::{
    browser::{self, Browser},
    external, http, show, start_run, Daemon,
};
use strata_proto::{
    create_run_request::Task, epoch_record::ValMetric, CreateRunRequest, EpochRecord,
    FinishRunRequest, LogEpochsRequest, LogStepsRequest, RunStatus, StepRecord,
};

/// Generous: the page waits on the daemon, which waits on training, on a loaded machine.
const PAGE_TIMEOUT: Duration = Duration::from_secs(180);

fn dashboard(daemon: &Daemon) -> String {
    daemon.dashboard.clone().expect("the dashboard's address")
}

/// A browser, or None (with the reason printed) when Chromium is not installed.
fn browser_or_skip(test: &str) -> Option<Browser> {
    let browser = Browser::launch();
    if browser.is_none() {
        eprintln!("{test}: SKIPPED — chromium is not installed (scripts/setup-test-tools.sh installs Debian's package as root; or set STRATA_CHROMIUM)");
    }
    browser
}

fn epochs_of(show: &Value) -> Vec<u64> {
    show["epochs"]
        .as_array()
        .expect("epochs")
        .iter()
        .map(|e| e["epoch"].as_u64().expect("an epoch number"))
        .collect()
}

#[test]
fn the_api_answers_json_with_clear_errors_and_bounded_inputs() {
    let daemon = Daemon::start();
    let base = dashboard(&daemon);
    let run = start_run(&daemon, &["--epochs", "2", "--tag", "api"]);

    let list = http::get(&base, "/api/runs", &[]);
    assert_eq!(list.status, 200, "{}", list.body);
    assert_eq!(list.header("content-type"), Some("application/json"));
    assert_eq!(list.json()["runs"][0]["id"], json!(run));
    let one = http::get(&base, &format!("/api/runs/{}", &run[..6]), &[]);
    assert_eq!(one.status, 200, "{}", one.body);
    assert_eq!(one.json()["id"], json!(run));

    // Bad names and paths: 404 with a JSON error naming the problem.
    for path in [
        "/api/runs/zzzzzzzz",
        "/api/runs/..%2f..%2fetc",
        "/runs/a%20b",
        "/nowhere",
    ] {
        let answer = http::get(&base, path, &[]);
        assert_eq!(answer.status, 404, "{path}: {}", answer.body);
        assert!(answer.json()["error"]
            .as_str()
            .is_some_and(|e| !e.is_empty()));
    }
    // What the router refuses itself (a path that is not UTF-8) is JSON too.
    let not_utf8 = http::get(&base, "/api/runs/%FF", &[]);
    assert_eq!(not_utf8.status, 400);
    assert!(not_utf8.json()["error"].as_str().is_some());
    let long = format!("/api/runs/{}", "a".repeat(10_000));
    assert_eq!(http::get(&base, &long, &[]).status, 404);
    // Bounded inputs: each refusal names its field.
    let too_many: Vec<String> = (0..101).map(|i| format!("r{i}")).collect();
    for (path, field) in [
        (format!("/api/compare?runs={}", too_many.join(",")), "runs"),
        ("/api/compare".to_string(), "runs"),
        ("/api/runs?limit=100000".to_string(), "limit"),
        ("/api/runs?status=sleeping".to_string(), "status"),
        ("/api/runs?verdict=great".to_string(), "verdict"),
        (
            format!("/api/runs/{run}/events?from_epoch=-1"),
            "from_epoch",
        ),
    ] {
        let answer = http::get(&base, &path, &[]);
        assert_eq!(answer.status, 400, "{path}: {}", answer.body);
        let error = answer.json()["error"].as_str().unwrap().to_string();
        assert!(error.starts_with(field), "{path}: {error}");
    }
    // Without a token, only requests to this machine's names are answered (DNS rebinding).
    let rebound = http::get(&base, "/api/runs", &[("Host", "attacker.example:8080")]);
    assert_eq!(rebound.status, 403, "{}", rebound.body);
    // Pages and assets are embedded, with a content security policy.
    let page = http::get(&base, "/", &[]);
    assert_eq!(page.status, 200);
    assert!(page.header("content-security-policy").is_some());
    assert!(http::get(&base, "/assets/uPlot.iife.min.js", &[])
        .body
        .contains("uPlot"));
}

/// A finished run's event stream: its epochs after `Last-Event-ID` (a reconnecting page's last
/// epoch), its status, then `end`; each epoch carries its number as the event id.
#[test]
fn a_reconnecting_stream_resumes_after_the_last_epoch_it_received() {
    let daemon = Daemon::start();
    let base = dashboard(&daemon);
    let run = start_run(&daemon, &["--epochs", "3"]);
    assert_eq!(daemon.strata(&["watch", &run]).code, 0);
    let path = format!("/api/runs/{run}/events");
    let resumed = http::get(&base, &path, &[("Last-Event-ID", "1")]);
    assert_eq!(resumed.status, 200);
    assert_eq!(resumed.header("content-type"), Some("text/event-stream"));
    let ids: Vec<&str> = resumed
        .body
        .lines()
        .filter_map(|l| l.strip_prefix("id: "))
        .collect();
    assert_eq!(ids, ["2", "3"], "{}", resumed.body);
    let events: Vec<&str> = resumed
        .body
        .lines()
        .filter_map(|l| l.strip_prefix("event: "))
        .collect();
    assert_eq!(events, ["epoch", "epoch", "status", "end"]);
    let from_start = http::get(&base, &format!("{path}?from_epoch=1"), &[]);
    assert_eq!(from_start.body.matches("event: epoch").count(), 3);
}

/// A browser holding an event stream open does not keep the daemon from stopping.
#[test]
fn an_open_event_stream_does_not_hold_up_shutdown() {
    use std::io::{Read, Write};
    let daemon = Daemon::start();
    let base = dashboard(&daemon);
    let run = start_run(&daemon, &["--epochs", "100000"]);
    let host = base.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(host).unwrap();
    write!(
        stream,
        "GET /api/runs/{run}/events HTTP/1.1\r\nHost: {host}\r\n\r\n"
    )
    .unwrap();
    let mut first = [0u8; 64];
    let read = stream.read(&mut first).unwrap();
    assert!(String::from_utf8_lossy(&first[..read]).starts_with("HTTP/1.1 200"));
    let status = daemon
        .stop_within(Duration::from_secs(60))
        .expect("stratad stops with a stream open");
    assert!(status.success(), "{status:?}");
}

#[test]
fn with_a_token_the_dashboard_needs_it_and_keeps_it_in_a_cookie() {
    let tmp = tempfile::tempdir().unwrap();
    let token = "dash-s3cret";
    let daemon = Daemon::start_with(&tmp.path().join("data"), &[], &[("STRATA_TOKEN", token)]);
    let base = dashboard(&daemon);

    for path in ["/", "/api/runs", "/api/events", "/assets/run.js"] {
        let answer = http::get(&base, path, &[]);
        assert_eq!(answer.status, 401, "{path}");
        assert!(!answer.body.contains(token));
    }
    assert_eq!(http::get(&base, "/?token=wrong", &[]).status, 401);
    let bearer = format!("Bearer {token}");
    assert_eq!(
        http::get(&base, "/api/runs", &[("Authorization", &bearer)]).status,
        200
    );
    // ?token= once: a cookie for the browser, and a redirect that drops the token from the URL.
    let login = http::get(&base, &format!("/compare?runs=ab&token={token}"), &[]);
    assert_eq!(login.status, 303);
    assert_eq!(login.header("location"), Some("/compare?runs=ab"));
    let cookie = login.header("set-cookie").expect("a cookie").to_string();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    assert!(
        !cookie.contains(token),
        "the cookie holds the token encoded: {cookie}"
    );
    let pair = cookie.split(';').next().unwrap();
    let port = base.rsplit(':').next().unwrap().trim_end_matches('/');
    assert!(
        pair.starts_with(&format!("strata_token_{port}=")),
        "the cookie is named for the port: {pair}"
    );
    // A path of `//host/x` does not turn the redirect into one to another site.
    let sneaky = http::get(&base, &format!("//evil.example/x?token={token}"), &[]);
    assert_eq!(sneaky.header("location"), Some("/evil.example/x"));
    let page = http::get(&base, "/", &[("Cookie", pair)]);
    assert_eq!(page.status, 200);
    assert!(
        !page.body.contains(token),
        "the token never appears in a page"
    );
    assert!(!daemon.log().contains(token), "nor in the log");
}

#[test]
fn the_dashboard_obeys_the_bind_rules() {
    let tmp = tempfile::tempdir().unwrap();
    let refused = Daemon::try_start_in(&tmp.path().join("a"), &["--dashboard-listen", "0.0.0.0:0"])
        .err()
        .expect("no dashboard beyond loopback without a token");
    assert_eq!(refused.code, Some(2));
    assert!(refused.log.contains("dashboard_listen"), "{}", refused.log);
    let off = Daemon::start_in(&tmp.path().join("b"), &["--dashboard-listen", "off"]);
    assert!(off.dashboard.is_none());
    let refused = Daemon::try_start_in(&tmp.path().join("c"), &["--dashboard-listen", "nonsense"])
        .err()
        .expect("a bad address is refused");
    assert_eq!(refused.code, Some(2));
    assert!(refused.log.contains("dashboard_listen"), "{}", refused.log);
}

fn external_run(name: &str) -> CreateRunRequest {
    CreateRunRequest {
        name: name.into(),
        tags: vec!["dash".into()],
        hyperparameters: [("optimizer".to_string(), "adamw".to_string())].into(),
        dataset: "outside".into(),
        model: "outside".into(),
        groups: external::groups(&["body", "head"], 1e-2),
        task: Some(Task::Classes(3)),
        parameter_count: 100,
        train_rows: 300,
        val_rows: 100,
        steps_per_epoch: 10,
        client_key: String::new(),
    }
}

fn logged_epoch(n: u32) -> EpochRecord {
    let loss = 1.1 / f64::from(n).sqrt();
    EpochRecord {
        epoch: n,
        train_loss: loss,
        val_loss: loss * 1.1,
        val_metric: Some(ValMetric::ValAccuracy(0.3 + 0.01 * f64::from(n))),
        duration_ms: 10.0,
        samples_per_sec: 1000.0,
        groups: external::group_stats(&["body", "head"], 1e-2, 1e-3),
        extra: [("val_f1".to_string(), 0.5 + 0.01 * f64::from(n))].into(),
        no_validation: false,
    }
}

/// A run that trains only once the page is open (it waits in the queue behind a long run that
/// is then cancelled), so every one of its epochs reaches the page live, however fast this
/// machine trains; and a run logged from outside, opened mid-run: history, then live.
///
/// One test for the three pages, on one daemon and one browser: starting Chromium costs seconds,
/// and the compare page needs the runs the other pages made.
#[test]
fn pages_draw_epochs_as_they_are_stored_without_reload_gap_or_duplicate() {
    let Some(mut browser) = browser_or_skip("dashboard pages") else {
        return;
    };
    let shots = browser::screenshot_dir();
    let daemon = Daemon::start();
    let base = dashboard(&daemon);
    let blocker = start_run(&daemon, &["--epochs", "100000", "--name", "blocker"]);
    let run = start_run(
        &daemon,
        &[
            "--epochs",
            "12",
            "--name",
            "watched",
            "--progress-events",
            "4",
        ],
    );

    browser.open(&format!("{base}/runs/{run}"));
    browser.wait_for(
        "window.strataChart && window.strataChart.status() === 'queued'",
        PAGE_TIMEOUT,
    );
    assert_eq!(browser.eval("window.strataChart.points()"), json!(0));
    browser.eval("window.loadedOnce = 'still here'");
    let cancelled = daemon.strata(&["cancel", &blocker]);
    assert_eq!(cancelled.code, 0, "{cancelled:?}");
    // Points arrive while the page stays the same page.
    browser.wait_for("window.strataChart.points() >= 1", PAGE_TIMEOUT);
    browser.wait_for(
        "window.strataChart.ended() && window.strataChart.points() === 12",
        PAGE_TIMEOUT,
    );
    assert_eq!(
        browser.eval("window.loadedOnce"),
        json!("still here"),
        "no reload"
    );
    assert_eq!(browser.eval("window.strataChart.duplicates()"), json!(0));
    assert_eq!(browser.eval("window.strataChart.gaps()"), json!(0));
    let drawn = browser.eval("window.strataChart.epochs()");
    assert_eq!(
        drawn,
        json!(epochs_of(&show(&daemon, &run))),
        "the page draws what is stored"
    );
    browser.wait_for(
        "document.getElementById('verdict').textContent.length > 20",
        PAGE_TIMEOUT,
    );
    browser.screenshot(&shots.join("run-page.png"));

    // A run logged from outside, opened after three epochs: 3 points, then 5 as they are logged.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut grpc = rt.block_on(daemon.client()).grpc();
    let created = rt
        .block_on(grpc.create_run(external_run("outside")))
        .unwrap();
    let outside = created.into_inner().run.unwrap().id;
    let log = |grpc: &mut _, epochs: std::ops::RangeInclusive<u32>| {
        let request = LogEpochsRequest {
            run: outside.clone(),
            epochs: epochs.map(logged_epoch).collect(),
        };
        rt.block_on(strata_proto::strata_client::StrataClient::log_epochs(
            grpc, request,
        ))
        .unwrap();
    };
    log(&mut grpc, 1..=3);
    // Ten steps an epoch, their training loss drawn under the epochs' means.
    let steps: Vec<StepRecord> = (1..=30u64)
        .map(|step| StepRecord {
            step,
            epoch: (step as u32 - 1) / 10 + 1,
            scalars: [
                ("train_loss".to_string(), 1.2 / (step as f64).sqrt()),
                ("lr".to_string(), 1e-2),
            ]
            .into(),
        })
        .collect();
    rt.block_on(grpc.log_steps(LogStepsRequest {
        run: outside.clone(),
        steps,
    }))
    .unwrap();

    browser.open(&format!("{base}/runs/{outside}"));
    browser.wait_for(
        "window.strataChart && window.strataChart.points() === 3",
        PAGE_TIMEOUT,
    );
    // Its hyperparameters, its other scalars per epoch and per step, its steps' loss.
    browser.wait_for("window.strataChart.stepPoints() === 30", PAGE_TIMEOUT);
    assert_eq!(
        browser.eval("window.strataChart.hyperparameters()"),
        json!({"optimizer": "adamw"})
    );
    assert_eq!(
        browser.eval("window.strataChart.extraScalars()"),
        json!(["val_f1"])
    );
    assert_eq!(
        browser.eval("window.strataChart.stepScalars()"),
        json!(["lr", "train_loss"])
    );
    browser.screenshot(&shots.join("external-run-page.png"));
    browser.eval("window.loadedOnce = 'again'");
    log(&mut grpc, 4..=5);
    browser.wait_for("window.strataChart.points() === 5", PAGE_TIMEOUT);
    assert_eq!(browser.eval("window.loadedOnce"), json!("again"));
    assert_eq!(
        browser.eval("window.strataChart.epochs()"),
        json!([1, 2, 3, 4, 5])
    );
    assert_eq!(
        browser.eval("[window.strataChart.duplicates(), window.strataChart.gaps()]"),
        json!([0, 0])
    );

    // The runs page follows the run without a reload: an epoch more, then its end.
    browser.open(&format!("{base}/"));
    let row = format!("window.strataRuns.rows().find(r => r.id === '{outside}')");
    browser.wait_for(
        &format!("{row} && {row}.status === 'running' && {row}.epochs_done === 5"),
        PAGE_TIMEOUT,
    );
    browser.eval("window.runsPageOnce = 'same page'");
    log(&mut grpc, 6..=6);
    browser.wait_for(&format!("{row}.epochs_done === 6"), PAGE_TIMEOUT);
    rt.block_on(grpc.finish_run(FinishRunRequest {
        run: outside.clone(),
        status: RunStatus::Completed as i32,
        reason: String::new(),
    }))
    .unwrap();
    browser.wait_for(&format!("{row}.status === 'completed'"), PAGE_TIMEOUT);
    assert_eq!(browser.eval("window.runsPageOnce"), json!("same page"));
    let watched = format!("window.strataRuns.rows().find(r => r.id === '{run}')");
    assert_eq!(
        browser.eval(&format!("{watched}.status")),
        json!("completed")
    );
    browser.screenshot(&shots.join("runs-page.png"));

    // Compare: both trained runs overlaid (val and train each), the best named as the daemon says.
    let compared = daemon.strata(&["compare", &run, &blocker, "--json"]).json();
    browser.open(&format!("{base}/compare?runs={run},{blocker}"));
    browser.wait_for(
        "window.strataCompare && window.strataCompare.ready()",
        PAGE_TIMEOUT,
    );
    let series = browser.eval("window.strataCompare.series()");
    let ids: Vec<Value> = compared["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].clone())
        .collect();
    assert_eq!(series, json!(ids), "one pair of curves per run, best first");
    assert_eq!(
        browser.eval("window.strataCompare.best()"),
        compared["best_run"]
    );
    let lines = browser.eval("document.querySelectorAll('.u-series').length");
    assert_eq!(
        lines,
        json!(1 + 2 * ids.len()),
        "the legend lists epoch + val and train per run"
    );
    browser.screenshot(&shots.join("compare-page.png"));
}
