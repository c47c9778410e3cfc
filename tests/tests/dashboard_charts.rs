//! The dashboard's charts in a real browser (headless Chromium over DevTools): every control
//! changes what is drawn — the log toggle the axis, the smoothing slider the path (the raw data
//! kept), a legend click hides a series, a drag zooms and the reset button appears, one cursor
//! shows the same epoch on every chart of a run — and the verdict's epochs are marked, the data
//! and image download, each chart names its unit. The run is logged from outside (no training),
//! so its curves are known exactly. Screenshots go to `target/dashboard-screenshots/`.

use std::time::Duration;

use serde_json::{json, Value};
use strata_e2e::{
    browser::{self, Browser},
    Daemon,
};
use strata_proto::{
    create_run_request::Task, epoch_record::ValMetric, CreateRunRequest, EpochRecord,
    GroupEpochStats, GroupRate, LogEpochsRequest, LogStepsRequest, StepRecord,
};

const PAGE_TIMEOUT: Duration = Duration::from_secs(120);
const EPOCHS: u32 = 14;
const STEPS_PER_EPOCH: u64 = 10;

fn browser_or_skip(test: &str) -> Option<Browser> {
    let browser = Browser::launch();
    if browser.is_none() {
        eprintln!("{test}: SKIPPED — chromium is not installed (scripts/setup-test-tools.sh installs Debian's package as root; or set STRATA_CHROMIUM)");
    }
    browser
}

/// Losses that fall 40× in six epochs, then validation rises while training keeps falling.
fn losses(n: u32) -> (f64, f64) {
    let e = f64::from(n);
    if n <= 6 {
        (2.0 / e.powi(2), 2.0 / e.powi(2) + 0.01)
    } else {
        (0.055 - 0.002 * (e - 6.0), 0.0656 + 0.03 * (e - 6.0))
    }
}

fn epoch(n: u32) -> EpochRecord {
    let (train_loss, val_loss) = losses(n);
    EpochRecord {
        epoch: n,
        train_loss,
        val_loss,
        val_metric: Some(ValMetric::ValAccuracy(0.5 + 0.02 * f64::from(n))),
        duration_ms: 10.0,
        samples_per_sec: 1000.0,
        groups: [("body", 1e-4), ("head", 1e-2)]
            .into_iter()
            .map(|(name, lr)| GroupEpochStats {
                name: name.into(),
                lr,
                grad_norm: 0.5,
                weight_norm: 3.0,
                update_ratio: lr * 0.5,
                frozen: false,
            })
            .collect(),
        extra: [
            ("val/f1", 0.5),
            ("val/precision", 0.6),
            ("train/grad_scale", 1024.0),
            ("warmup", 1.0),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v + 0.01 * f64::from(n)))
        .collect(),
        no_validation: false,
    }
}

/// An external run of [`EPOCHS`] epochs with ten steps each; its id.
fn logged_run(daemon: &Daemon) -> String {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut grpc = rt.block_on(daemon.client()).grpc();
    let created = rt
        .block_on(
            grpc.create_run(CreateRunRequest {
                name: "charted".into(),
                tags: vec!["charts".into()],
                hyperparameters: [("optimizer".to_string(), "adamw".to_string())].into(),
                dataset: "outside".into(),
                model: "outside".into(),
                groups: [("body", 1e-4), ("head", 1e-2)]
                    .into_iter()
                    .map(|(name, lr)| GroupRate {
                        name: name.into(),
                        lr,
                        frozen: None,
                    })
                    .collect(),
                task: Some(Task::Classes(3)),
                parameter_count: 100,
                train_rows: 300,
                val_rows: 100,
                steps_per_epoch: STEPS_PER_EPOCH,
                client_key: String::new(),
            }),
        )
        .unwrap();
    let run = created.into_inner().run.unwrap().id;
    rt.block_on(grpc.log_epochs(LogEpochsRequest {
        run: run.clone(),
        epochs: (1..=EPOCHS).map(epoch).collect(),
    }))
    .unwrap();
    let steps = (1..=u64::from(EPOCHS) * STEPS_PER_EPOCH)
        .map(|step| {
            let epoch = ((step - 1) / STEPS_PER_EPOCH + 1) as u32;
            StepRecord {
                step,
                epoch,
                scalars: [("train_loss".to_string(), losses(epoch).0 * 1.1)].into(),
            }
        })
        .collect();
    rt.block_on(grpc.log_steps(LogStepsRequest {
        run: run.clone(),
        steps,
    }))
    .unwrap();
    run
}

/// Drags the mouse across chart `chart` from x value `from` to `to`, as a user does.
fn drag(browser: &mut Browser, chart: &str, from: f64, to: f64) {
    let at = |browser: &mut Browser, x: f64| {
        browser.eval(&format!("window.strataCharts.pointAt('{chart}', {x})"))
    };
    let (start, end) = (at(browser, from), at(browser, to));
    for (kind, point) in [
        ("mouseMoved", &start),
        ("mousePressed", &start),
        ("mouseMoved", &end),
        ("mouseReleased", &end),
    ] {
        browser.call(
            "Input.dispatchMouseEvent",
            json!({ "type": kind, "x": point["x"], "y": point["y"], "button": "left", "clickCount": 1 }),
        );
    }
}

fn state(browser: &mut Browser, chart: &str) -> Value {
    browser.eval(&format!("window.strataCharts.state('{chart}')"))
}

#[test]
fn every_chart_control_changes_what_is_drawn() {
    let Some(mut browser) = browser_or_skip("dashboard charts") else {
        return;
    };
    let shots = browser::screenshot_dir();
    let daemon = Daemon::start();
    let base = daemon.dashboard.clone().expect("the dashboard's address");
    let run = logged_run(&daemon);

    browser.open(&format!("{base}/runs/{run}"));
    browser.wait_for(
        &format!("window.strataChart && window.strataChart.points() === {EPOCHS}"),
        PAGE_TIMEOUT,
    );
    browser.wait_for("window.strataChart.stepPoints() === 140", PAGE_TIMEOUT);
    // The verdict's epochs, once the analysis is read: the best, where overfitting began.
    let marks = browser.wait_for(
        "window.strataChart.marks().length >= 2 && window.strataChart.marks()",
        PAGE_TIMEOUT,
    );
    let labels: Vec<&str> = marks
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["label"].as_str().unwrap())
        .collect();
    assert!(labels.contains(&"best (6)"), "{marks}");
    assert!(
        labels.iter().any(|l| l.starts_with("overfitting from ")),
        "{marks}"
    );
    assert_eq!(
        state(&mut browser, "loss")["marks"],
        marks,
        "the loss chart marks them"
    );

    // Units on the axes: one per chart.
    let units: Vec<Value> = ["loss", "metric", "rate", "ratio", "steps"]
        .iter()
        .map(|id| {
            let s = state(&mut browser, id);
            json!([s["xAxisLabel"], s["yAxisLabel"]])
        })
        .collect();
    assert_eq!(
        units,
        [
            json!(["epoch", "loss, mean per epoch"]),
            json!(["epoch", "accuracy, per epoch"]),
            json!(["epoch", "learning rate, per epoch"]),
            json!(["epoch", "‖Δw‖/‖w‖ per step"]),
            json!(["epoch (its steps spread across it)", "loss, per step"]),
        ]
    );
    // The update ratio is per step on the chart as in the groups table: the epoch's over its
    // ten steps.
    let ratio = state(&mut browser, "ratio");
    let head_first = ratio["data"][2][0].as_f64().unwrap();
    assert!((head_first - 1e-2 * 0.5 / 10.0).abs() < 1e-12, "{ratio}");
    assert!(browser
        .eval("document.getElementById('groups').textContent")
        .as_str()
        .unwrap()
        .contains("Update ratio per step"));

    // Log scale first for a loss that fell more than a decade, linear for the accuracy; the
    // toggle switches the axis.
    assert_eq!(state(&mut browser, "loss")["log"], json!(true));
    assert_eq!(state(&mut browser, "metric")["log"], json!(false));
    browser.eval("window.strataCharts.toggleLog('loss')");
    assert_eq!(state(&mut browser, "loss")["log"], json!(false));
    browser.screenshot(&shots.join("run-charts-linear.png"));
    browser.eval("window.strataCharts.toggleLog('loss')");
    assert_eq!(state(&mut browser, "loss")["log"], json!(true));

    // Smoothing through the page's slider: the drawn path changes, the raw data (CSV) does not.
    let raw_path = state(&mut browser, "loss")["data"][2].clone();
    let rates = state(&mut browser, "rate")["data"].clone();
    let csv = browser.eval("window.strataCharts.csv('loss')");
    browser.eval(
        "(() => { const s = document.getElementById('smoothing'); s.value = '0.8'; s.dispatchEvent(new Event('input')); })()",
    );
    let smoothed = state(&mut browser, "loss")["data"][2].clone();
    assert_ne!(smoothed, raw_path, "smoothing changes the path");
    assert_eq!(smoothed[0], raw_path[0], "debiased: the first point stays");
    assert_eq!(browser.eval("window.strataCharts.csv('loss')"), csv);
    assert_eq!(
        state(&mut browser, "rate")["data"],
        rates,
        "a rate is never smoothed"
    );
    browser.screenshot(&shots.join("run-charts-smoothed.png"));
    browser.eval("window.strataCharts.smoothing(0)");
    assert_eq!(state(&mut browser, "loss")["data"][2], raw_path);

    // The CSV has the x column and one per series, a row an epoch; the PNG is a PNG.
    let csv = csv.as_str().unwrap().to_string();
    assert_eq!(csv.lines().next(), Some("epoch,train,validation"));
    assert_eq!(csv.lines().count(), 1 + EPOCHS as usize);
    // The buttons download them, named for the run and the chart.
    let downloads = tempfile::tempdir().unwrap();
    browser.call(
        "Page.setDownloadBehavior",
        json!({ "behavior": "allow", "downloadPath": downloads.path().to_str().unwrap() }),
    );
    browser.eval("window.strataCharts.download('loss', 'csv')");
    browser.eval("window.strataCharts.download('loss', 'png')");
    let (csv_file, png_file) = (
        downloads.path().join(format!("{run}-loss.csv")),
        downloads.path().join(format!("{run}-loss.png")),
    );
    let deadline = std::time::Instant::now() + PAGE_TIMEOUT;
    while !(csv_file.is_file() && png_file.is_file()) {
        assert!(
            std::time::Instant::now() < deadline,
            "no downloads in {}",
            downloads.path().display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // (A file appears complete: Chromium writes to a temporary name and renames it.)
    assert_eq!(std::fs::read_to_string(&csv_file).unwrap(), csv);
    assert!(std::fs::read(&png_file).unwrap().starts_with(b"\x89PNG"));
    let png = browser.eval("window.strataCharts.png('loss')");
    assert_eq!(png["type"], json!("image/png"));
    assert_eq!(png["signature"], json!("PNG"));
    assert!(png["size"].as_u64().unwrap() > 1000, "{png}");

    // A legend click hides one series, and shows it again.
    browser.eval("window.strataCharts.clickLegend('ratio', 1)");
    assert_eq!(state(&mut browser, "ratio")["shown"], json!([false, true]));
    browser.eval("window.strataCharts.clickLegend('ratio', 1)");
    assert_eq!(state(&mut browser, "ratio")["shown"], json!([true, true]));
    // Ctrl+click shows one alone (layer under layer: the one hidden beneath), and back.
    browser.eval("window.strataCharts.clickLegend('ratio', 2, true)");
    assert_eq!(state(&mut browser, "ratio")["shown"], json!([false, true]));
    browser.eval("window.strataCharts.clickLegend('ratio', 2, true)");
    assert_eq!(state(&mut browser, "ratio")["shown"], json!([true, true]));
    // Pointing at an entry makes its line stand out: the others fade.
    browser.eval("window.strataCharts.hoverLegend('ratio', 1)");
    let alphas = state(&mut browser, "ratio")["alphas"].clone();
    assert_eq!(alphas[0], json!(1), "{alphas}");
    assert!(alphas[1].as_f64().unwrap() < 0.5, "{alphas}");

    // One cursor: the pointer at epoch 5 of the loss chart shows epoch 5 on every chart.
    browser.eval("window.strataCharts.hover('loss', 5)");
    let ids = browser.eval("window.strataCharts.ids()");
    let epoch_charts: Vec<String> = ids
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .filter(|id| id != "step-scalars")
        .collect();
    assert!(epoch_charts.len() >= 8, "{ids}");
    for id in &epoch_charts {
        assert_eq!(state(&mut browser, id)["cursorX"], json!(5), "{id}");
    }

    // A drag zooms, the reset button appears, and it resets.
    assert_eq!(state(&mut browser, "loss")["resetVisible"], json!(false));
    drag(&mut browser, "loss", 3.0, 9.0);
    let zoomed = state(&mut browser, "loss");
    assert_eq!(
        (zoomed["zoomed"].clone(), zoomed["resetVisible"].clone()),
        (json!(true), json!(true))
    );
    // The run's other charts zoom with it, and reset with it.
    assert_eq!(state(&mut browser, "metric")["zoomed"], json!(true));
    browser.screenshot(&shots.join("run-charts-zoomed.png"));
    browser.eval("window.strataCharts.resetZoom('loss')");
    for id in &epoch_charts {
        let reset = state(&mut browser, id);
        assert_eq!(
            (reset["zoomed"].clone(), reset["resetVisible"].clone()),
            (json!(false), json!(false)),
            "{id}"
        );
    }

    // An external run's other scalars, a chart per prefix.
    assert_eq!(
        browser.eval("window.strataChart.extraGroups()"),
        json!({
            "other": ["warmup"],
            "train": ["train/grad_scale"],
            "val": ["val/f1", "val/precision"],
        })
    );
    browser.screenshot(&shots.join("run-charts.png"));
}
