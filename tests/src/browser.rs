//! Headless Chromium driven over the Chrome DevTools Protocol, for the dashboard's tests: open a
//! page, evaluate JavaScript in it, wait for a condition, take a screenshot.
//!
//! Chromium is Debian's `chromium` package (`scripts/setup-test-tools.sh` installs it when it is
//! missing and it can); [`Browser::launch`] says when it is not there, and the tests skip.

use std::{
    io::{BufRead, BufReader},
    net::TcpStream,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use base64::Engine;
use serde_json::{json, Value};
use tempfile::TempDir;
use tungstenite::{stream::MaybeTlsStream, Message, WebSocket};

/// How long Chromium may take to open its DevTools port.
const LAUNCH_TIMEOUT: Duration = Duration::from_secs(60);
/// How long one DevTools command may take.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);
/// How often [`Browser::wait_for`] evaluates its condition.
const POLL_EVERY: Duration = Duration::from_millis(50);

/// The Chromium binary: `STRATA_CHROMIUM`, else `chromium` or `chromium-browser` on the PATH.
pub fn chromium() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("STRATA_CHROMIUM") {
        return Some(PathBuf::from(path));
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| ["chromium", "chromium-browser"].map(|name| dir.join(name)))
        .find(|candidate| candidate.is_file())
}

/// One headless Chromium with one page, attached over DevTools. Killed when dropped.
pub struct Browser {
    child: Child,
    socket: WebSocket<MaybeTlsStream<TcpStream>>,
    session: String,
    next_id: u64,
    _profile: TempDir,
}

impl Browser {
    /// Starts Chromium (None when it is not installed) with a fresh profile and a 1280×900 page.
    pub fn launch() -> Option<Browser> {
        Browser::launch_with(&[])
    }

    /// [`Browser::launch`] with more command-line switches.
    pub fn launch_with(switches: &[&str]) -> Option<Browser> {
        let binary = chromium()?;
        let profile = tempfile::tempdir().expect("a profile folder");
        let mut child = Command::new(&binary)
            .args([
                "--headless=new",
                "--remote-debugging-port=0",
                "--no-first-run",
                "--no-default-browser-check",
                "--disable-gpu",
                "--disable-extensions",
                // Root (as in containers) cannot use Chromium's sandbox.
                "--no-sandbox",
                // Timers and rendering run as in a visible tab.
                "--disable-background-timer-throttling",
                "--disable-renderer-backgrounding",
                "--disable-backgrounding-occluded-windows",
            ])
            .args(switches)
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", binary.display()));
        let url = devtools_url(&mut child);
        let (socket, _) = tungstenite::connect(url.as_str())
            .unwrap_or_else(|e| panic!("cannot connect to Chromium's DevTools at {url}: {e}"));
        let mut browser = Browser {
            child,
            socket,
            session: String::new(),
            next_id: 0,
            _profile: profile,
        };
        let target = browser.call("Target.createTarget", json!({ "url": "about:blank" }));
        let attached = browser.call(
            "Target.attachToTarget",
            json!({ "targetId": target["targetId"], "flatten": true }),
        );
        browser.session = attached["sessionId"]
            .as_str()
            .expect("a DevTools session")
            .to_string();
        browser.call(
            "Emulation.setDeviceMetricsOverride",
            json!({ "width": 1280, "height": 900, "deviceScaleFactor": 1, "mobile": false }),
        );
        browser.call("Page.enable", json!({}));
        Some(browser)
    }

    /// Sends a command (to the page once attached) and returns its result.
    pub fn call(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let mut command = json!({ "id": id, "method": method, "params": params });
        if !self.session.is_empty() {
            command["sessionId"] = json!(self.session);
        }
        self.socket
            .send(Message::text(command.to_string()))
            .unwrap_or_else(|e| panic!("DevTools {method}: {e}"));
        let deadline = Instant::now() + COMMAND_TIMEOUT;
        loop {
            assert!(Instant::now() < deadline, "DevTools {method}: no answer");
            let message = self
                .socket
                .read()
                .unwrap_or_else(|e| panic!("DevTools {method}: {e}"));
            let Message::Text(text) = message else {
                continue;
            };
            let answer: Value = serde_json::from_str(text.as_str()).expect("DevTools JSON");
            if answer["id"] != json!(id) {
                continue; // An event, or another session's answer.
            }
            if let Some(error) = answer.get("error") {
                panic!("DevTools {method}: {error}");
            }
            return answer["result"].clone();
        }
    }

    /// Opens `url` and waits until its document has loaded.
    pub fn open(&mut self, url: &str) {
        self.call("Page.navigate", json!({ "url": url }));
        self.wait_for(
            "document.readyState === 'complete'",
            Duration::from_secs(60),
        );
    }

    /// The value of a JavaScript expression in the page (promises awaited).
    pub fn eval(&mut self, expression: &str) -> Value {
        let result = self.call(
            "Runtime.evaluate",
            json!({ "expression": expression, "returnByValue": true, "awaitPromise": true }),
        );
        if let Some(exception) = result.get("exceptionDetails") {
            panic!("`{expression}` threw: {exception}");
        }
        result["result"]["value"].clone()
    }

    /// Waits until `condition` is truthy in the page (an exception counts as not yet), and
    /// returns its value; panics with `condition` after `timeout`.
    pub fn wait_for(&mut self, condition: &str, timeout: Duration) -> Value {
        let guarded =
            format!("(() => {{ try {{ return ({condition}); }} catch (e) {{ return null; }} }})()");
        let deadline = Instant::now() + timeout;
        loop {
            let value = self.eval(&guarded);
            let truthy = !matches!(&value, Value::Null | Value::Bool(false))
                && value != json!(0)
                && value != json!("");
            if truthy {
                return value;
            }
            assert!(
                Instant::now() < deadline,
                "waited {timeout:?} for `{condition}` in the page"
            );
            std::thread::sleep(POLL_EVERY);
        }
    }

    /// Saves a PNG of the page at `path` (its folder is created).
    pub fn screenshot(&mut self, path: &Path) {
        let shot = self.call("Page.captureScreenshot", json!({ "format": "png" }));
        let png = base64::engine::general_purpose::STANDARD
            .decode(shot["data"].as_str().expect("screenshot data"))
            .expect("base64 screenshot");
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).expect("the screenshot folder");
        }
        std::fs::write(path, png).expect("the screenshot is written");
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Reads `DevTools listening on ws://...` from Chromium's stderr.
fn devtools_url(child: &mut Child) -> String {
    let stderr = child.stderr.take().expect("Chromium's stderr");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(url) = line.strip_prefix("DevTools listening on ") {
                let _ = tx.send(url.trim().to_string());
            }
            // Keep draining: Chromium must never block on a full pipe.
        }
    });
    rx.recv_timeout(LAUNCH_TIMEOUT)
        .expect("Chromium did not print its DevTools address")
}

/// Where screenshots go: `target/dashboard-screenshots/` (next to the binaries' profile folder).
pub fn screenshot_dir() -> PathBuf {
    crate::bin_dir()
        .parent()
        .map_or_else(crate::bin_dir, Path::to_path_buf)
        .join("dashboard-screenshots")
}
