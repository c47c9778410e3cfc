//! SIGTERM always ends the process, whatever it is doing: the shutdown race run many times, with
//! the daemon idle, training, holding idle and watching connections, and reading a dataset for a
//! request that will never be answered.

use std::{net::TcpStream, time::Duration};

use strata_e2e::{start_run, Daemon};

/// Far beyond a clean shutdown (runs stop at a batch boundary, connections drain for 2 s); only a
/// process that does not exit reaches it.
const EXIT_BOUND: Duration = Duration::from_secs(60);
const ROUNDS: usize = 12;

/// A CSV big enough that reading it is still under way when the signal comes.
fn big_csv(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("big.csv");
    let mut text = String::from("a,b,c,d,e,f,g,h,y\n");
    for i in 0..200_000u32 {
        let v = f64::from(i % 997) / 997.0;
        text.push_str(&format!("{v},{v},{v},{v},{v},{v},{v},{v},{}\n", i % 3));
    }
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn sigterm_always_exits_whatever_the_daemon_is_doing() {
    let shared = tempfile::tempdir().unwrap();
    let csv = format!("csv:{}", big_csv(shared.path()).display());
    for round in 0..ROUNDS {
        let tmp = tempfile::tempdir().unwrap();
        let daemon = Daemon::start_in(&tmp.path().join("data"), &[]);
        let port = daemon.addr.rsplit(':').next().unwrap().to_string();
        let mut background = Vec::new();
        let mut idle = Vec::new();
        match round % 4 {
            0 => {}
            1 => {
                start_run(&daemon, &["--epochs", "100000"]);
            }
            2 => {
                for _ in 0..20 {
                    idle.push(TcpStream::connect(format!("127.0.0.1:{port}")).unwrap());
                }
                let id = start_run(&daemon, &["--epochs", "100000"]);
                let addr = daemon.addr.clone();
                background.push(std::thread::spawn(move || {
                    strata_e2e::strata(&addr, &["watch", &id, "--json"])
                }));
            }
            _ => {
                let addr = daemon.addr.clone();
                let csv = csv.clone();
                background.push(std::thread::spawn(move || {
                    strata_e2e::strata(&addr, &["start", "--dry-run", "--dataset", &csv])
                }));
            }
        }
        let status = daemon
            .stop_within(EXIT_BOUND)
            .unwrap_or_else(|| panic!("round {round}: stratad did not exit after SIGTERM"));
        assert!(status.success(), "round {round}: exit status {status}");
        for client in background {
            // The clients end too (with an error or the run's interrupted status), never hang.
            let _ = client.join();
        }
        drop(idle);
    }
}
