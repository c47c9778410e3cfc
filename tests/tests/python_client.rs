//! The Python client end to end: installed with pip from the checkout into a fresh venv (its gRPC
//! stubs generated from the proto at build time), a real PyTorch loop with two param groups logs
//! through `StrataLogger` into a real daemon, and `strata show` shows its epochs and a verdict.
//!
//! Offline: pip installs from `.python-wheels/`, which `scripts/setup-test-tools.sh` fills; the
//! test skips, saying why, when that, python3 or the project's `.torch/` is missing.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use strata_e2e::{show, Daemon};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Why the test cannot run here, if it cannot.
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
    let wheels = std::fs::read_dir(root.join(".python-wheels")).ok()?;
    let names: Vec<String> = wheels
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    if !names.iter().any(|n| n.starts_with("grpcio_tools-")) {
        return Some(".python-wheels/ has no grpcio-tools; run scripts/setup-test-tools.sh".into());
    }
    None
}

fn run(command: &mut Command, what: &str) -> String {
    let out = command.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    assert!(out.status.success(), "{what} failed:\n{stdout}\n{stderr}");
    stdout
}

#[test]
fn a_pytorch_loop_logs_through_the_python_client() {
    let root = repo_root();
    if !root.join(".python-wheels").exists() {
        println!("skipped: .python-wheels/ is missing; scripts/setup-test-tools.sh downloads it");
        return;
    }
    if let Some(why) = missing_tools(&root) {
        println!("skipped: {why}");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let venv = tmp.path().join("venv");
    run(
        Command::new("python3").args(["-m", "venv"]).arg(&venv),
        "python3 -m venv",
    );
    // A copy of the package: pip builds in place, and the checkout stays clean.
    let source = tmp.path().join("checkout");
    for dir in ["clients/python", "proto/proto"] {
        strata_e2e::copy_dir(&root.join(dir), &source.join(dir));
    }
    run(
        Command::new(venv.join("bin/pip"))
            .args(["install", "-q", "--no-index", "--find-links"])
            .arg(root.join(".python-wheels"))
            .arg(source.join("clients/python")),
        "pip install ./clients/python",
    );

    // A short silence timeout, for the script killed mid-run below.
    let daemon = Daemon::start_in(&tmp.path().join("data"), &["--external-timeout", "2"]);
    let addr = daemon.addr.trim_start_matches("http://").to_string();
    let script = root.join("clients/python/examples/train_two_groups.py");
    let stdout = run(
        Command::new(venv.join("bin/python"))
            .arg(&script)
            .args([addr.as_str(), "8"])
            .env("PYTHONPATH", root.join(".torch"))
            .env("OMP_NUM_THREADS", "1"),
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

    // A script killed mid-run (no finish, no goodbye): once the daemon's silence timeout has
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
                   task="classification", classes=2)
for epoch in range(2):
    loss = layer(torch.randn(8, 2)).pow(2).mean()
    opt.zero_grad(); loss.backward(); opt.step()
    log.log_epoch(train_loss=1.0 - 0.1 * epoch, val_loss=1.1 - 0.1 * epoch, val_accuracy=0.5)
print(log.run_id, flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"#,
    )
    .unwrap();
    let out = Command::new(venv.join("bin/python"))
        .arg(&killed)
        .arg(&addr)
        .env("PYTHONPATH", root.join(".torch"))
        .env("OMP_NUM_THREADS", "1")
        .output()
        .unwrap();
    assert!(!out.status.success(), "the script was killed");
    let killed_id = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert_eq!(killed_id.len(), 13, "{out:?}");
    let mut status = String::new();
    for _ in 0..100 {
        let shown = show(&daemon, &killed_id);
        status = shown["status"].as_str().unwrap_or("").to_string();
        if status == "interrupted" {
            assert_eq!(shown["epochs"].as_array().unwrap().len(), 2, "{shown}");
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    assert_eq!(
        status, "interrupted",
        "a killed script's run must not stay running"
    );
}
