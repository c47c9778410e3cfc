//! The dashboard over TLS: with `--tls-cert/--tls-key` it serves HTTPS with gRPC's certificate
//! (a client trusting only that certificate reads it; plain HTTP gets no page; the token's
//! cookie is `Secure`; a browser draws a run live over it), and beyond loopback without a
//! certificate it refuses to start, saying how.

use std::{
    io::{Read, Write},
    path::PathBuf,
    time::Duration,
};

use serde_json::json;
use strata_e2e::{
    browser::{self, Browser},
    http, Daemon,
};

const PAGE_TIMEOUT: Duration = Duration::from_secs(120);

/// A self-signed certificate for localhost and 127.0.0.1 (as the gRPC TLS tests make), written
/// to `dir`: (cert path, key path, cert PEM).
fn certificate(dir: &std::path::Path) -> (PathBuf, PathBuf, String) {
    let cert =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    let (cert_path, key_path) = (dir.join("cert.pem"), dir.join("key.pem"));
    let pem = cert.cert.pem();
    std::fs::write(&cert_path, &pem).unwrap();
    std::fs::write(&key_path, cert.signing_key.serialize_pem()).unwrap();
    (cert_path, key_path, pem)
}

#[test]
fn with_a_certificate_the_dashboard_serves_https_with_it() {
    let tmp = tempfile::tempdir().unwrap();
    let (cert, key, pem) = certificate(tmp.path());
    let token = "tls-s3cret";
    let daemon = Daemon::start_with(
        &tmp.path().join("data"),
        &[
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ],
        &[("STRATA_TOKEN", token)],
    );
    let base = daemon.dashboard.clone().expect("the dashboard's address");
    assert!(base.starts_with("https://127.0.0.1:"), "{base}");

    // A client that trusts only the test certificate reads the dashboard: the same certificate.
    let bearer = format!("Bearer {token}");
    let runs = http::get_tls(
        &base,
        "/api/runs",
        &[("Authorization", &bearer)],
        pem.as_bytes(),
        "localhost",
    )
    .expect("the handshake succeeds with the daemon's certificate");
    assert_eq!(runs.status, 200, "{}", runs.body);
    assert_eq!(runs.json()["runs"], json!([]));
    // The token's cookie is never sent over plain HTTP.
    let login = http::get_tls(
        &base,
        &format!("/?token={token}"),
        &[],
        pem.as_bytes(),
        "127.0.0.1",
    )
    .unwrap();
    assert_eq!(login.status, 303);
    let cookie = login.header("set-cookie").expect("a cookie");
    assert!(cookie.contains("; Secure"), "{cookie}");
    // Another certificate is not the one served.
    let other =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    let refused = http::get_tls(&base, "/", &[], other.cert.pem().as_bytes(), "localhost");
    assert!(refused.is_err(), "{refused:?}");

    // Plain HTTP on the HTTPS port gets no page.
    let host = base.trim_start_matches("https://");
    let mut plain = std::net::TcpStream::connect(host).unwrap();
    plain
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    // The server may close at the first bytes that are not a TLS handshake, before the request
    // is all written: a refused write is no page either.
    let _ = write!(
        plain,
        "GET /api/runs HTTP/1.1\r\nHost: {host}\r\nAuthorization: {bearer}\r\n\r\n"
    );
    let mut answer = Vec::new();
    let _ = plain.read_to_end(&mut answer);
    assert!(
        !String::from_utf8_lossy(&answer).contains("\"runs\""),
        "no runs over plain HTTP: {}",
        String::from_utf8_lossy(&answer)
    );
}

#[test]
fn beyond_loopback_without_a_certificate_the_dashboard_refuses_and_says_how() {
    let tmp = tempfile::tempdir().unwrap();
    let token = [("STRATA_TOKEN", "wide-s3cret")];
    let refused = Daemon::try_start_with(
        &tmp.path().join("a"),
        &["--dashboard-listen", "0.0.0.0:0"],
        &token,
    )
    .err()
    .expect("no plain-HTTP dashboard beyond loopback");
    assert_eq!(refused.code, Some(2), "{}", refused.log);
    for said in [
        "dashboard_listen",
        "--tls-cert",
        "--dashboard-plain-http",
        "127.0.0.1",
    ] {
        assert!(refused.log.contains(said), "{said}: {}", refused.log);
    }
    // Behind a proxy that terminates TLS: allowed when said.
    let proxied = Daemon::start_with(
        &tmp.path().join("b"),
        &["--dashboard-listen", "0.0.0.0:0", "--dashboard-plain-http"],
        &token,
    );
    let base = proxied.dashboard.clone().expect("a dashboard");
    assert!(base.starts_with("http://0.0.0.0:"), "{base}");
    // With the certificate: HTTPS beyond loopback.
    let (cert, key, pem) = certificate(tmp.path());
    let wide = Daemon::start_with(
        &tmp.path().join("c"),
        &[
            "--dashboard-listen",
            "0.0.0.0:0",
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ],
        &token,
    );
    let base = wide.dashboard.clone().expect("a dashboard");
    let port = base.rsplit(':').next().unwrap();
    let local = format!("https://127.0.0.1:{port}");
    let answer = http::get_tls(
        &local,
        "/api/runs",
        &[("Authorization", "Bearer wide-s3cret")],
        pem.as_bytes(),
        "localhost",
    )
    .unwrap();
    assert_eq!(answer.status, 200, "{}", answer.body);
}

/// A browser reads the pages and the live event stream over HTTPS (it is told to accept the
/// self-signed certificate; the test above checks which certificate is served).
#[test]
fn a_browser_follows_a_run_over_https() {
    let Some(mut browser) = Browser::launch_with(&["--ignore-certificate-errors"]) else {
        eprintln!("dashboard over https: SKIPPED — chromium is not installed");
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let (cert, key, _) = certificate(tmp.path());
    let daemon = Daemon::start_in(
        &tmp.path().join("data"),
        &[
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ],
    );
    let base = daemon.dashboard.clone().unwrap();
    let grpc = daemon.addr.replace("http://", "https://");
    let cert_flag = cert.to_str().unwrap();
    let mut flags = vec!["start", "--json", "--epochs", "3", "--tls-ca", cert_flag];
    flags.extend_from_slice(strata_e2e::TINY_RUN);
    let started = strata_e2e::strata(&grpc, &flags);
    assert_eq!(started.code, 0, "{started:?}");
    let run = started.json()["run_id"].as_str().unwrap().to_string();
    browser.open(&format!("{base}/runs/{run}"));
    browser.wait_for(
        "window.strataChart && window.strataChart.ended() && window.strataChart.points() === 3",
        PAGE_TIMEOUT,
    );
    assert_eq!(
        browser.eval("location.protocol + String(window.strataCharts.ids().includes('loss'))"),
        json!("https:true")
    );
    browser.open(&format!("{base}/"));
    browser.wait_for(
        &format!("window.strataRuns && window.strataRuns.rows().some(r => r.id === '{run}' && r.status === 'completed')"),
        PAGE_TIMEOUT,
    );
    browser.screenshot(&browser::screenshot_dir().join("runs-page-https.png"));
}
