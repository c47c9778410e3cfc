//! What a client can make stratad read, and who may talk to it: files only under the data roots
//! (symlinks resolved), regular files only, contents never in errors; no token means loopback.

use std::process::{Command, Stdio};

use strata_e2e::{bin, clear_strata_env, Daemon};

fn start_error(daemon: &Daemon, args: &[&str]) -> String {
    let mut all = vec!["start", "--dry-run"];
    all.extend_from_slice(args);
    let out = daemon.strata(&all);
    assert_eq!(out.code, 2, "{args:?} should be refused: {out:?}");
    assert_eq!(out.stderr.lines().count(), 1, "{out:?}");
    out.stderr
}

#[test]
fn files_outside_the_data_roots_special_files_and_contents_stay_unread() {
    let allowed = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir_in("/var/tmp").unwrap();
    let secret = outside.path().join("secret.csv");
    std::fs::write(&secret, "api_key,sk-live-123\n1,2\n3,4\n").unwrap();
    std::os::unix::fs::symlink(&secret, allowed.path().join("link.csv")).unwrap();
    let inside = allowed.path().join("keys.csv");
    std::fs::write(&inside, "api_key,sk-live-456,y\n1,2,0\n3,4,1\n").unwrap();
    let daemon = Daemon::start_in(
        &allowed.path().join("data"),
        &[
            "--data-root",
            allowed.path().to_str().unwrap(),
            "--allow-torchscript",
        ],
    );
    let csv = |p: &std::path::Path| format!("csv:{}", p.display());

    // Outside the roots: the same refusal whether the file exists or not.
    let exists = start_error(&daemon, &["--dataset", &csv(&secret)]);
    let missing = start_error(
        &daemon,
        &["--dataset", &csv(&outside.path().join("nothing.csv"))],
    );
    assert!(exists.contains("outside the directories"), "{exists}");
    assert_eq!(
        exists.replace("secret", "nothing"),
        missing,
        "existence is not revealed"
    );
    // A symlink inside that points outside, and `..` out of a root.
    let linked = start_error(
        &daemon,
        &["--dataset", &csv(&allowed.path().join("link.csv"))],
    );
    assert!(linked.contains("outside the directories"), "{linked}");
    let dotdot = format!("csv:{}/../../etc/passwd", allowed.path().display());
    assert!(start_error(&daemon, &["--dataset", &dotdot]).contains("outside"));
    // Other fields that name files are confined too.
    let val = start_error(
        &daemon,
        &["--dataset", &csv(&inside), "--val-dataset", &csv(&secret)],
    );
    assert!(
        val.contains("val_dataset") && val.contains("outside the directories"),
        "{val}"
    );
    let model = start_error(
        &daemon,
        &[
            "--dataset",
            "spirals",
            "--model",
            &format!("torchscript:{}", secret.display()),
        ],
    );
    assert!(model.contains("outside the directories"), "{model}");

    // Inside the roots: never the file's contents in an error.
    let no_label = start_error(&daemon, &["--dataset", &csv(&inside), "--label", "zzz"]);
    assert!(!no_label.contains("sk-live"), "{no_label}");
    assert!(no_label.contains("3 columns"), "{no_label}");
    let cell = allowed.path().join("cell.csv");
    std::fs::write(&cell, "x,y\nsk-live-789,1\n2,0\n").unwrap();
    let not_numeric = start_error(&daemon, &["--dataset", &csv(&cell)]);
    assert!(
        not_numeric.contains("row 1") && !not_numeric.contains("sk-live"),
        "{not_numeric}"
    );

    // Special files are never read: a FIFO (would block), a device (endless).
    let fifo = allowed.path().join("fifo.csv");
    let made = Command::new("mkfifo").arg(&fifo).status();
    if made.is_ok_and(|s| s.success()) {
        let err = start_error(&daemon, &["--dataset", &csv(&fifo)]);
        assert!(err.contains("not a regular file"), "{err}");
    }
    std::os::unix::fs::symlink("/dev/zero", allowed.path().join("zero.csv")).unwrap();
    let err = start_error(
        &daemon,
        &["--dataset", &csv(&allowed.path().join("zero.csv"))],
    );
    assert!(err.contains("outside"), "{err}");

    // Nothing was stored, and the daemon still serves.
    let list = daemon.strata(&["list", "--json"]).json();
    assert_eq!(list["runs"].as_array().map(Vec::len), Some(0), "{list}");
}

#[test]
fn no_token_means_loopback_unless_the_operator_says_otherwise() {
    let tmp = tempfile::tempdir().unwrap();
    let mut command = Command::new(bin("stratad"));
    clear_strata_env(&mut command);
    let out = command
        .args(["--listen", "0.0.0.0:0", "--data-dir"])
        .arg(tmp.path().join("data"))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--token-file") && stderr.contains("--insecure-no-auth"),
        "{stderr}"
    );

    // Said explicitly, it serves (and warns).
    let mut command = Command::new(bin("stratad"));
    clear_strata_env(&mut command);
    let mut child = command
        .args(["--listen", "0.0.0.0:0", "--insecure-no-auth", "--data-dir"])
        .arg(tmp.path().join("data"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first_line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut first_line,
    )
    .unwrap();
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    assert!(
        first_line.starts_with("stratad listening on 0.0.0.0:"),
        "{first_line:?} {out:?}"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("without a token"), "{stderr}");
}
