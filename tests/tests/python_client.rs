//! The Python client end to end, installed with pip from a copy of `clients/python` alone (outside
//! the checkout) into a fresh venv with the real PyTorch of `.torch/`, PyTorch Lightning and
//! Hugging Face transformers:
//! - the package builds (wheel and sdist) from its folder alone and leaves it as it was;
//! - its own pytest suite passes against real daemons (queue, spool, sync, heartbeat, token, TLS);
//! - a PyTorch loop logs through `StrataLogger`, a killed one's run becomes interrupted;
//! - a loop whose daemon is down at start, restarted mid-run and cut off for longer than its
//!   silence timeout trains to the end, and after `strata sync` its run holds every epoch once;
//! - the documented Lightning and Hugging Face examples (docs/src/python.md) run.
//!
//! Offline: pip installs from `.python-wheels/`, which `scripts/setup-test-tools.sh` fills; each
//! test skips, saying why, when that, python3 or the project's `.torch/` is missing. The tests
//! share one venv and run one at a time (each trains with PyTorch).

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{Mutex, MutexGuard, OnceLock},
    time::{Duration, Instant},
};

use strata_e2e::{bin_dir, proxy::Proxy, repo_root, run_ok, show, Daemon};

/// Wheels the venv is made from (their distribution names, as pip names the files).
const WHEELS: &[&str] = &[
    "grpcio-",
    "protobuf-",
    "flit_core-",
    "build-",
    "pytest-",
    "pandas-",
    "pytorch_lightning-",
    "transformers-",
    "accelerate-",
];
/// What the venv installs beside the package.
const EXTRAS: &[&str] = &[
    "pytest",
    "pandas",
    "pytorch-lightning",
    "transformers",
    "accelerate",
    "build",
];

struct Python {
    /// The venv's `bin/`.
    bin: PathBuf,
    /// The copy of `clients/python` the package was installed from.
    package: PathBuf,
    /// Its files (path → bytes) before and after `pip install`.
    before: BTreeMap<PathBuf, Vec<u8>>,
    after: BTreeMap<PathBuf, Vec<u8>>,
    tmp: PathBuf,
}

/// One test at a time: each trains with PyTorch, and they share the venv.
fn serial() -> MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

/// The venv, made once; `None` (and a line saying why) when the tools are missing.
fn python(test: &str) -> Option<&'static Python> {
    static SETUP: OnceLock<Result<Python, String>> = OnceLock::new();
    match SETUP.get_or_init(setup) {
        Ok(python) => Some(python),
        Err(why) => {
            println!("skipped {test}: {why}");
            None
        }
    }
}

/// Why the tests cannot run here, if they cannot.
fn missing_tools(root: &Path) -> Option<String> {
    let python = Command::new("python3").arg("--version").output();
    if !python.is_ok_and(|out| out.status.success()) {
        return Some("python3 is not installed".into());
    }
    if !root.join(".torch/torch/__init__.py").exists() {
        return Some(
            ".torch/ (PyTorch for Python) is missing; scripts/setup-libtorch.sh installs it".into(),
        );
    }
    let names: Vec<String> = std::fs::read_dir(root.join(".python-wheels"))
        .map(|dir| {
            dir.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    let absent: Vec<&str> = WHEELS
        .iter()
        .filter(|w| !names.iter().any(|n| n.starts_with(*w)))
        .map(|w| w.trim_end_matches('-'))
        .collect();
    if !absent.is_empty() {
        return Some(format!(
            ".python-wheels/ lacks {}; run scripts/setup-test-tools.sh",
            absent.join(", ")
        ));
    }
    None
}

/// Every file under `dir` with its bytes.
fn files_of(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut files = BTreeMap::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(folder) = todo.pop() {
        for entry in std::fs::read_dir(&folder).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                todo.push(path);
            } else {
                let relative = path.strip_prefix(dir).unwrap().to_path_buf();
                files.insert(relative, std::fs::read(&path).unwrap());
            }
        }
    }
    files
}

fn setup() -> Result<Python, String> {
    let root = repo_root();
    if let Some(why) = missing_tools(&root) {
        return Err(why);
    }
    // Kept for the whole test process: the tests share it.
    let tmp = tempfile::tempdir().unwrap().keep();
    let venv = tmp.join("venv");
    run_ok(
        Command::new("python3").args(["-m", "venv"]).arg(&venv),
        "python3 -m venv",
    );
    // The package's folder alone, outside the checkout: no proto/ beside it.
    let package = tmp.join("strata-client");
    strata_e2e::copy_dir(&root.join("clients/python"), &package);
    let before = files_of(&package);
    run_ok(
        Command::new(venv.join("bin/pip"))
            .args(["install", "-q", "--no-index", "--find-links"])
            .arg(root.join(".python-wheels"))
            .arg(&package)
            .args(EXTRAS)
            // PyTorch is .torch's: pip sees it there and installs none.
            .env("PYTHONPATH", root.join(".torch")),
        "pip install the package and its extras",
    );
    let after = files_of(&package);
    Ok(Python {
        bin: venv.join("bin"),
        package,
        before,
        after,
        tmp,
    })
}

impl Python {
    /// The venv's python running `args`, with PyTorch from `.torch/`, one thread, and no
    /// Strata settings from the caller's environment.
    fn command(&self) -> Command {
        let mut command = Command::new(self.bin.join("python"));
        strata_e2e::clear_strata_env(&mut command);
        command
            .env("PYTHONPATH", repo_root().join(".torch"))
            .env("OMP_NUM_THREADS", "1")
            .env("CUDA_VISIBLE_DEVICES", "")
            .env("STRATA_BIN_DIR", bin_dir());
        command
    }
}

#[test]
fn the_package_builds_from_its_folder_alone_and_installs_without_touching_it() {
    let _serial = serial();
    let Some(python) = python("packaging") else {
        return;
    };
    let changed: Vec<&PathBuf> = python
        .before
        .keys()
        .chain(python.after.keys())
        .filter(|path| python.before.get(*path) != python.after.get(*path))
        .collect();
    assert!(
        changed.is_empty(),
        "pip install changed the package's folder: {changed:?}"
    );

    // A wheel and an sdist built from another copy of the folder alone.
    let source = python.tmp.join("build-source");
    strata_e2e::copy_dir(&python.package, &source);
    let dist = python.tmp.join("dist");
    run_ok(
        python
            .command()
            .args(["-m", "build", "--sdist", "--wheel", "--outdir"])
            .arg(&dist)
            .arg(&source)
            .env("PIP_NO_INDEX", "1")
            .env("PIP_FIND_LINKS", repo_root().join(".python-wheels")),
        "python -m build",
    );
    let built: Vec<String> = std::fs::read_dir(&dist)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    let wheel = built.iter().find(|n| n.ends_with(".whl")).expect("a wheel");
    let sdist = built
        .iter()
        .find(|n| n.ends_with(".tar.gz"))
        .expect("an sdist");
    let listing = run_ok(
        Command::new("tar").arg("tzf").arg(dist.join(sdist)),
        "tar tzf",
    );
    for needed in [
        "strata_client/_proto/strata.binpb",
        "strata_client/py.typed",
        "tests/test_logger.py",
        "pyproject.toml",
    ] {
        assert!(
            listing.contains(needed),
            "the sdist lacks {needed}:\n{listing}"
        );
    }
    // The wheel alone, in a venv without PyTorch: it imports and reads the protocol.
    let bare = python.tmp.join("bare-venv");
    run_ok(
        Command::new("python3").args(["-m", "venv"]).arg(&bare),
        "python3 -m venv",
    );
    run_ok(
        Command::new(bare.join("bin/pip"))
            .args(["install", "-q", "--no-index", "--find-links"])
            .arg(repo_root().join(".python-wheels"))
            .arg(dist.join(wheel)),
        "pip install the wheel",
    );
    let out = run_ok(
        Command::new(bare.join("bin/python")).args([
            "-c",
            "import strata_client, strata_client._proto as p; \
             print(strata_client.__version__, p.pb.CreateRunRequest(client_key='k').client_key)",
        ]),
        "import strata_client",
    );
    assert_eq!(out.trim(), "0.2.0 k");
}

#[test]
fn the_packages_own_test_suite_passes_against_real_daemons() {
    let _serial = serial();
    let Some(python) = python("the pytest suite") else {
        return;
    };
    let out = python
        .command()
        .args(["-m", "pytest", "-q", "-p", "no:cacheprovider"])
        .arg(python.package.join("tests"))
        .current_dir(&python.tmp)
        .output()
        .unwrap();
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    println!("{text}");
    assert!(out.status.success(), "the pytest suite failed:\n{text}");
    assert!(
        text.contains(" passed") && !text.contains(" skipped"),
        "every test ran: {text}"
    );
}

#[test]
fn a_pytorch_loop_logs_through_the_python_client() {
    let _serial = serial();
    let Some(python) = python("a PyTorch loop") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    // A short silence timeout, for the script killed mid-run below.
    let daemon = Daemon::start_in(&tmp.path().join("data"), &["--external-timeout", "2"]);
    let addr = daemon.addr.trim_start_matches("http://").to_string();
    let script = repo_root().join("clients/python/examples/train_two_groups.py");
    let stdout = run_ok(
        python
            .command()
            .arg(&script)
            .args([addr.as_str(), "8"])
            .env("STRATA_SPOOL_DIR", tmp.path().join("spool")),
        "the PyTorch script",
    );
    let id = stdout.lines().last().unwrap_or("").trim().to_string();
    assert_eq!(id.len(), 13, "the script prints the run id: {stdout}");

    let shown = show(&daemon, &id);
    assert_eq!(shown["external"], true, "{shown}");
    assert_eq!(shown["status"], "completed", "{shown}");
    let epochs = shown["epochs"].as_array().unwrap();
    assert_eq!(epochs.len(), 8, "{shown}");
    let groups: Vec<&str> = epochs[0]["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["name"].as_str().unwrap())
        .collect();
    assert_eq!(groups, ["body", "head"]);
    for g in epochs[7]["groups"].as_array().unwrap() {
        for field in ["grad_norm", "weight_norm", "update_ratio"] {
            assert!(g[field].as_f64().unwrap() > 0.0, "{field}: {g}");
        }
    }
    assert_eq!(strata_e2e::group(&epochs[7], "head")["lr"], 0.2);
    let train_accuracy = epochs[7]["extra"]["train_accuracy"].as_f64().unwrap();
    assert!(
        train_accuracy > 0.0 && train_accuracy <= 1.0,
        "{}",
        epochs[7]
    );
    let verdict = shown["analysis"]["verdict"].as_str().unwrap();
    assert!(!verdict.is_empty(), "{shown}");
    let text = daemon.strata(&["show", &id]);
    assert_eq!(text.code, 0, "{text:?}");
    assert!(text.stdout.contains("external"), "{}", text.stdout);
    assert!(text.stdout.contains(verdict), "{}", text.stdout);
    // Every step's loss, 15 steps an epoch.
    let base = daemon.dashboard.clone().unwrap();
    let steps = strata_e2e::http::get(&base, &format!("/api/runs/{id}/steps"), &[]).json();
    assert_eq!(steps["stored"], 8 * 15, "{steps}");

    // Beside a run the daemon trained itself.
    let trained = strata_e2e::start_run(&daemon, &["--epochs", "3"]);
    strata_e2e::watch_to_end(&daemon, &trained);
    let compared = daemon.strata(&["compare", &id, &trained]);
    assert_eq!(compared.code, 0, "{compared:?}");
    assert!(
        compared.stdout.contains(&id) && compared.stdout.contains(&trained),
        "{}",
        compared.stdout
    );

    // A script killed mid-run (no close, no goodbye): once the daemon's silence timeout has
    // passed the run is interrupted, with every epoch it logged.
    let killed = tmp.path().join("killed.py");
    std::fs::write(
        &killed,
        r#"
import os, signal, sys, torch
from strata_client import StrataLogger
layer = torch.nn.Linear(2, 2)
opt = torch.optim.SGD([{"params": layer.parameters(), "lr": 0.1, "name": "head"}])
log = StrataLogger(sys.argv[1], name="killed", optimizer=opt, model=layer,
                   task="classification", classes=2, spool_dir=sys.argv[2])
for epoch in range(2):
    loss = layer(torch.randn(8, 2)).pow(2).mean()
    opt.zero_grad(); loss.backward(); opt.step()
    log.log_epoch(train_loss=1.0 - 0.1 * epoch, val_loss=1.1 - 0.1 * epoch, val_accuracy=0.5)
print(log.wait_for_run_id(30), flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"#,
    )
    .unwrap();
    let out = python
        .command()
        .arg(&killed)
        .arg(&addr)
        .arg(tmp.path().join("spool"))
        .output()
        .unwrap();
    assert!(!out.status.success(), "the script was killed");
    let killed_id = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert_eq!(killed_id.len(), 13, "{out:?}");
    let shown = wait_for(&daemon, &killed_id, |run| run["status"] == "interrupted");
    assert_eq!(shown["epochs"].as_array().unwrap().len(), 2, "{shown}");
}

/// Polls `strata show` until `done` holds (a minute at most).
fn wait_for(
    daemon: &Daemon,
    run: &str,
    done: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let started = Instant::now();
    loop {
        let shown = daemon.strata(&["show", run, "--json"]);
        if shown.code == 0 {
            let shown = shown.json();
            if done(&shown) {
                return shown;
            }
            if started.elapsed() > Duration::from_secs(60) {
                panic!("run {run} never got there: {shown}");
            }
        } else if started.elapsed() > Duration::from_secs(60) {
            panic!("run {run} cannot be shown: {shown:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The script's epochs and status as stored.
fn epochs_and_status(shown: &serde_json::Value) -> (Vec<u64>, String) {
    let epochs = shown["epochs"]
        .as_array()
        .map(|e| e.iter().map(|e| e["epoch"].as_u64().unwrap()).collect())
        .unwrap_or_default();
    (epochs, shown["status"].as_str().unwrap_or("").to_string())
}

/// Waits for the script to reach the end of epoch `n` (its `at-N` file); the run id it knows.
fn reached(script: &mut Child, ctrl: &Path, n: u32) -> String {
    let at = ctrl.join(format!("at-{n}"));
    let started = Instant::now();
    while !at.exists() {
        if let Ok(Some(status)) = script.try_wait() {
            panic!("the script ended ({status}) before epoch {n}");
        }
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "the script never reached epoch {n}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    std::fs::read_to_string(at).unwrap()
}

fn go(ctrl: &Path, n: u32) {
    std::fs::write(ctrl.join(format!("go-{n}")), "").unwrap();
}

fn port_of(daemon: &Daemon) -> u16 {
    daemon.addr.rsplit(':').next().unwrap().parse().unwrap()
}

fn spool_files(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .filter(|e| e.file_name().to_string_lossy().ends_with(".spool"))
                .count()
        })
        .unwrap_or(0)
}

/// The issue's "done when": the daemon down at the start, restarted mid-run, the network cut for
/// longer than the silence timeout (the run interrupted, then continued by its client), and cut
/// again at the end, so the last epochs wait in the spool until `strata sync` sends them.
#[test]
fn a_loop_survives_a_daemon_down_restarted_and_cut_off_and_strata_sync_completes_its_run() {
    let _serial = serial();
    let Some(python) = python("the resilient loop") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let (ctrl, spool, data) = (
        tmp.path().join("ctrl"),
        tmp.path().join("spool"),
        tmp.path().join("data"),
    );
    std::fs::create_dir_all(&ctrl).unwrap();
    let proxy = Proxy::start();
    let timeout = ["--external-timeout", "2"];
    let mut script = python
        .command()
        .arg(repo_root().join("tests/tests/python/resilient_training.py"))
        .arg(&proxy.addr)
        .arg(&ctrl)
        .arg(&spool)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();

    // Epochs 1-3 with no daemon at all: spooled, no run.
    assert_eq!(reached(&mut script, &ctrl, 3), "");
    assert_eq!(spool_files(&spool), 1, "the records wait in the spool");
    let daemon = Daemon::start_in(&data, &timeout);
    proxy.connect_to(port_of(&daemon));
    go(&ctrl, 3);

    // Epochs 4-6 reach the daemon with 1-3: the run is created with the first record.
    reached(&mut script, &ctrl, 6);
    let run = loop {
        let listed = daemon.strata(&["list", "--json"]).json();
        if let Some(run) = listed["runs"][0]["id"].as_str() {
            break run.to_string();
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    wait_for(&daemon, &run, |r| epochs_and_status(r).0.len() == 6);
    // The daemon restarts (its runs interrupted by the stop).
    let mut daemon = daemon;
    daemon.signal_and_wait("TERM");
    drop(daemon);
    let daemon = Daemon::start_in(&data, &timeout);
    assert_eq!(show(&daemon, &run)["status"], "interrupted");
    proxy.connect_to(port_of(&daemon));
    go(&ctrl, 6);

    // Epochs 7-9 continue the same run; then the network goes for longer than the timeout.
    reached(&mut script, &ctrl, 9);
    wait_for(&daemon, &run, |r| {
        epochs_and_status(r) == ((1..=9).collect(), "running".into())
    });
    proxy.cut();
    let cut = wait_for(&daemon, &run, |r| r["status"] == "interrupted");
    assert!(
        cut["reason"]
            .as_str()
            .unwrap()
            .contains("--external-timeout"),
        "{cut}"
    );
    go(&ctrl, 9);

    // Epochs 10-12 logged while cut off; back, the run continues from where it was.
    reached(&mut script, &ctrl, 12);
    proxy.connect_to(port_of(&daemon));
    go(&ctrl, 12);
    reached(&mut script, &ctrl, 15);
    wait_for(&daemon, &run, |r| {
        epochs_and_status(r) == ((1..=15).collect(), "running".into())
    });
    // Cut off for good: the last epoch and the end stay in the spool.
    proxy.cut();
    go(&ctrl, 15);
    let out = script.wait_with_output().unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(
        out.status.success(),
        "the script trains to the end:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains(&format!("RUN {run}")), "{stdout}");
    assert!(stdout.contains("left in the spool file"), "{stdout}");
    assert_eq!(
        stderr.matches("cannot reach stratad").count(),
        1,
        "one warning:\n{stderr}"
    );
    println!("{stderr}");
    // The daemon holds 15 epochs; cut off, the run is (or soon will be) interrupted.
    assert_eq!(epochs_and_status(&show(&daemon, &run)).0.len(), 15);

    let synced = daemon.strata(&["sync", &spool.display().to_string()]);
    assert_eq!(synced.code, 0, "{synced:?}");
    assert!(synced.stdout.contains(&run), "{}", synced.stdout);
    let shown = show(&daemon, &run);
    let (epochs, status) = epochs_and_status(&shown);
    assert_eq!(
        epochs,
        (1..=16).collect::<Vec<_>>(),
        "every epoch exactly once"
    );
    assert_eq!(status, "completed");
    assert!(!shown["analysis"]["verdict"].as_str().unwrap().is_empty());
    assert!(shown["resumes"].as_u64().unwrap() >= 2, "{shown}");
    assert_eq!(spool_files(&spool), 0, "a spool sent is removed");
    let listed = daemon.strata(&["list", "--json"]).json();
    assert_eq!(
        listed["runs"].as_array().unwrap().len(),
        1,
        "no other run: {listed}"
    );
    // Again: nothing to send, nothing changed.
    let again = daemon.strata(&["sync", &spool.display().to_string()]);
    assert_eq!(again.code, 0, "{again:?}");
    assert_eq!(epochs_and_status(&show(&daemon, &run)).0.len(), 16);
}

/// The framework examples of the Python client's documentation (docs/src/python.md) are these
/// files, word for word, and they run.
#[test]
fn the_documented_lightning_and_hugging_face_examples_run() {
    let _serial = serial();
    let Some(python) = python("the framework examples") else {
        return;
    };
    let page = std::fs::read_to_string(repo_root().join("docs/src/python.md")).unwrap();
    let daemon = Daemon::start();
    let addr = daemon.addr.trim_start_matches("http://").to_string();
    let tmp = tempfile::tempdir().unwrap();
    for (file, name, epochs) in [
        ("lightning_two_groups.py", "lightning two groups", 4),
        ("huggingface_tiny_bert.py", "hf tiny bert", 3),
    ] {
        let path = repo_root().join("clients/python/examples").join(file);
        let example = std::fs::read_to_string(&path).unwrap();
        assert!(
            page.contains(example.trim()),
            "docs/src/python.md does not hold {} as it is",
            path.display()
        );
        let stdout = run_ok(
            python
                .command()
                .arg(&path)
                .arg(&addr)
                .arg(tmp.path().join(file))
                .env("STRATA_SPOOL_DIR", tmp.path().join("spool")),
            file,
        );
        let id = stdout.lines().last().unwrap_or("").trim().to_string();
        let shown = show(&daemon, &id);
        assert_eq!(shown["name"], name, "{shown}");
        assert_eq!(shown["status"], "completed", "{shown}");
        let logged = shown["epochs"].as_array().unwrap();
        assert_eq!(logged.len(), epochs, "{shown}");
        let last = &logged[epochs - 1];
        assert!(last["val_loss"].as_f64().is_some(), "validated: {last}");
        assert!(last["val_accuracy"].as_f64().is_some(), "{last}");
        for g in last["groups"].as_array().unwrap() {
            assert!(g["update_ratio"].as_f64().unwrap() > 0.0, "{g}");
        }
        assert!(!shown["hyperparameters"].as_object().unwrap().is_empty());
        let base = daemon.dashboard.clone().unwrap();
        let steps = strata_e2e::http::get(&base, &format!("/api/runs/{id}/steps"), &[]).json();
        assert!(steps["stored"].as_u64().unwrap() > 0, "{steps}");
    }
}
