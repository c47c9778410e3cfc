//! The dashboard's runs table and compare page in a real browser (headless Chromium over
//! DevTools), on a 1280 px window: the table fits it, shows each run's rates and (as chosen
//! columns, remembered) its hyperparameters, marks runs logged from outside, narrows to a search,
//! and sends the ticked runs to the compare page — which shows their diagnoses side by side,
//! what differs between them, and a log scale for losses that span decades. Screenshots go to
//! `target/dashboard-screenshots/`.

use std::time::Duration;

use serde_json::{json, Value};
use strata_e2e::{
    browser::{self, Browser},
    start_run, Daemon,
};
use strata_proto::{
    create_run_request::Task, epoch_record::ValMetric, CreateRunRequest, EpochRecord,
    GroupEpochStats, GroupRate, LogEpochsRequest,
};

const PAGE_TIMEOUT: Duration = Duration::from_secs(180);

fn browser_or_skip(test: &str) -> Option<Browser> {
    let browser = Browser::launch();
    if browser.is_none() {
        eprintln!("{test}: SKIPPED — chromium is not installed (scripts/setup-test-tools.sh installs Debian's package as root; or set STRATA_CHROMIUM)");
    }
    browser
}

/// An external run named `name` with `hyperparameters`, its head at `head_lr`, logging `epochs`
/// epochs whose losses start at `scale` and fall 30×; its id.
fn external(
    daemon: &Daemon,
    name: &str,
    hyperparameters: &[(&str, &str)],
    head_lr: f64,
    scale: f64,
) -> String {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut grpc = rt.block_on(daemon.client()).grpc();
    let groups = [("body", 1e-4), ("head", head_lr)];
    let created = rt
        .block_on(
            grpc.create_run(CreateRunRequest {
                name: name.into(),
                tags: vec!["tables".into()],
                hyperparameters: hyperparameters
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                dataset: "outside".into(),
                model: "outside".into(),
                groups: groups
                    .iter()
                    .map(|&(name, lr)| GroupRate {
                        name: name.into(),
                        lr,
                        frozen: None,
                    })
                    .collect(),
                task: Some(Task::Classes(3)),
                parameter_count: 100,
                train_rows: 300,
                val_rows: 100,
                steps_per_epoch: 10,
                client_key: String::new(),
            }),
        )
        .unwrap();
    let run = created.into_inner().run.unwrap().id;
    let epochs = (1..=10u32)
        .map(|n| {
            let loss = scale / f64::from(n).powf(1.5);
            EpochRecord {
                epoch: n,
                train_loss: loss,
                val_loss: loss * 1.2,
                val_metric: Some(ValMetric::ValAccuracy(0.5)),
                duration_ms: 10.0,
                samples_per_sec: 1000.0,
                groups: groups
                    .iter()
                    .map(|&(name, lr)| GroupEpochStats {
                        name: name.into(),
                        lr,
                        grad_norm: 0.5,
                        weight_norm: 3.0,
                        update_ratio: lr * 2.0,
                        frozen: false,
                    })
                    .collect(),
                extra: Default::default(),
                no_validation: false,
            }
        })
        .collect();
    rt.block_on(grpc.log_epochs(LogEpochsRequest {
        run: run.clone(),
        epochs,
    }))
    .unwrap();
    run
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .unwrap_or_else(|| panic!("an array: {value}"))
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect()
}

#[test]
fn the_runs_table_fits_searches_and_sends_runs_to_a_compare_page_that_says_what_differs() {
    let Some(mut browser) = browser_or_skip("dashboard tables") else {
        return;
    };
    let shots = browser::screenshot_dir();
    let daemon = Daemon::start();
    let base = daemon.dashboard.clone().expect("the dashboard's address");
    let trained = start_run(
        &daemon,
        &["--epochs", "2", "--name", "trained-here", "--baseline"],
    );
    assert_eq!(daemon.strata(&["watch", &trained]).code, 0);
    let twin = strata_e2e::show(&daemon, &trained)["twin_run_id"]
        .as_str()
        .unwrap_or_else(|| panic!("a twin"))
        .to_string();
    assert_eq!(daemon.strata(&["watch", &twin]).code, 0);
    let alpha = external(
        &daemon,
        "alpha",
        &[("optimizer", "adamw"), ("weight_decay", "0.01")],
        1e-2,
        2.0,
    );
    let beta = external(
        &daemon,
        "beta",
        &[("optimizer", "sgd"), ("weight_decay", "0.01")],
        1e-1,
        0.02,
    );

    browser.open(&format!("{base}/"));
    browser.wait_for(
        "window.strataRuns && window.strataRuns.shown().length === 4",
        PAGE_TIMEOUT,
    );
    // 1280 px wide, and nothing sticks out of it.
    assert_eq!(browser.eval("window.innerWidth"), json!(1280));
    assert_eq!(
        browser.eval("document.documentElement.scrollWidth <= window.innerWidth"),
        json!(true),
        "the page is no wider than the window"
    );
    let table_box =
        "(() => { const b = document.querySelector('.table-box'); return b.scrollWidth <= b.clientWidth; })()";
    assert_eq!(browser.eval(table_box), json!(true), "the table fits");
    // The rate table, compact; runs logged from outside marked, the trained one not.
    let row_text = |browser: &mut Browser, run: &str| {
        browser
            .eval(&format!(
                "document.querySelector('tr[data-run=\"{run}\"]').textContent"
            ))
            .as_str()
            .unwrap()
            .to_string()
    };
    assert!(
        row_text(&mut browser, &alpha).contains("body 1e-4 · head 0.01"),
        "{}",
        row_text(&mut browser, &alpha)
    );
    let marked = browser.eval(
        "[...document.querySelectorAll('#rows tr')].filter(tr => tr.querySelector('.badge.external')).map(tr => tr.dataset.run).sort()",
    );
    let mut external_runs = vec![alpha.clone(), beta.clone()];
    external_runs.sort();
    assert_eq!(strings(&marked), external_runs);
    browser.screenshot(&shots.join("runs-table.png"));

    // Search: by hyperparameter, by name, by tag; several words must all match.
    for (search, expected) in [
        ("sgd", vec![beta.clone()]),
        ("optimizer=adamw", vec![alpha.clone()]),
        ("trained-here", {
            // The twin is named for its run.
            let mut pair = vec![trained.clone(), twin.clone()];
            pair.sort();
            pair
        }),
        ("tables weight_decay=0.01", {
            let mut both = vec![alpha.clone(), beta.clone()];
            both.sort();
            both
        }),
    ] {
        browser.eval(&format!(
            "(() => {{ const s = document.getElementById('search'); s.value = '{search}'; s.dispatchEvent(new Event('input')); }})()"
        ));
        let mut shown = strings(&browser.eval("window.strataRuns.shown()"));
        shown.sort();
        assert_eq!(shown, expected, "search '{search}'");
    }
    browser.eval(
        "(() => { const s = document.getElementById('search'); s.value = ''; s.dispatchEvent(new Event('input')); })()",
    );

    // Hyperparameter columns on offer; one chosen is shown, and still after a reload.
    let offered = strings(&browser.eval("window.strataRuns.offered()"));
    assert!(
        offered.contains(&"hp:optimizer".to_string()) && offered.contains(&"rates".to_string()),
        "{offered:?}"
    );
    browser.eval("document.getElementById('columns-button').click()");
    browser.eval("document.querySelector('input[data-column=\"hp:optimizer\"]').click()");
    assert!(strings(&browser.eval("window.strataRuns.columns()")).contains(&"optimizer".into()));
    browser.open(&format!("{base}/"));
    browser.wait_for(
        "window.strataRuns && window.strataRuns.shown().length === 4",
        PAGE_TIMEOUT,
    );
    assert!(
        strings(&browser.eval("window.strataRuns.columns()")).contains(&"optimizer".into()),
        "the choice is remembered"
    );
    assert!(row_text(&mut browser, &beta).contains("sgd"));
    assert_eq!(browser.eval(table_box), json!(true), "still fits");

    // Tick the two external runs and compare them.
    for run in [&alpha, &beta] {
        browser.eval(&format!(
            "document.querySelector('tr[data-run=\"{run}\"] input[type=checkbox]').click()"
        ));
    }
    assert_eq!(
        browser.eval("document.getElementById('compare').textContent"),
        json!("Compare 2 selected")
    );
    browser.eval("document.getElementById('compare').click()");
    browser.wait_for(
        "location.pathname === '/compare' && window.strataCompare && window.strataCompare.ready()",
        PAGE_TIMEOUT,
    );
    let mut compared = strings(&browser.eval("window.strataCompare.series()"));
    compared.sort();
    assert_eq!(compared, external_runs);
    // The table shows each run's rates as text (a nested list once showed "[object …]").
    let table = browser.eval("document.querySelector('main').innerText");
    let table = table.as_str().unwrap_or_default();
    assert!(!table.contains("[object"), "{table}");
    assert!(table.contains("body 1e-4"), "{table}");
    // Losses 100× apart: a log scale first.
    assert_eq!(
        browser.eval("window.strataCharts.state('compare').log"),
        json!(true)
    );
    // Each group's diagnosis per run, and only the settings that differ.
    let diagnoses = browser.eval("window.strataCompare.diagnoses()");
    assert_eq!(
        diagnoses
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect::<Vec<_>>(),
        ["body", "head"],
        "{diagnoses}"
    );
    for group in ["body", "head"] {
        let row = diagnoses[group].as_array().unwrap();
        assert_eq!(row.len(), 2);
        assert!(row.iter().all(Value::is_string), "{diagnoses}");
    }
    let diff = strings(&browser.eval("window.strataCompare.diff()"));
    assert!(diff.contains(&"rates".to_string()), "{diff:?}");
    assert!(
        diff.contains(&"hyperparameter optimizer".to_string()),
        "{diff:?}"
    );
    assert!(
        !diff.contains(&"hyperparameter weight_decay".to_string()),
        "the same in both: {diff:?}"
    );
    assert!(!diff.contains(&"tags".to_string()), "{diff:?}");
    browser.screenshot(&shots.join("compare-diff.png"));
    browser.eval("document.getElementById('diff').scrollIntoView()");
    browser.screenshot(&shots.join("compare-diagnoses.png"));

    // A run with a single-rate twin is set against it, as `strata compare` does.
    let compared = daemon
        .strata(&["compare", &trained, &alpha, "--json"])
        .json();
    let twin_summary = compared["runs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == json!(trained))
        .and_then(|r| r["twin"]["summary"].as_str())
        .unwrap_or_else(|| panic!("a twin comparison: {compared}"))
        .to_string();
    browser.open(&format!("{base}/compare?runs={trained},{alpha}"));
    browser.wait_for(
        "window.strataCompare && window.strataCompare.ready()",
        PAGE_TIMEOUT,
    );
    let shown = browser.eval(&format!(
        "document.querySelector('tr[data-run=\"{trained}\"] td.twin').textContent"
    ));
    assert!(
        shown.as_str().unwrap().contains(&twin_summary),
        "{shown} / {twin_summary}"
    );
}
