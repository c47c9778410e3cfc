//! One local client cannot starve the others (issue 30, finding 5): at the connection cap, the
//! connection idle the longest is closed to admit a new one, so health checks and queries are
//! answered while idle connections (silent TCP, idle HTTP/2, slow headers) flood the daemon; a
//! connection with a request in flight (a `watch` streaming, a dashboard event stream) is never
//! the one closed; and on the dashboard, a client holding every event stream gives up its oldest,
//! only it, to let another page go live. Bounded in count; the timeouts only turn a hang into a
//! failure.

use std::{
    io::{Read, Write},
    net::TcpStream,
    time::Duration,
};

use strata_client::StrataGrpc;
use strata_e2e::{external, http, Daemon};
use strata_proto::{watch_event::Event, LogEpochsRequest};
use tonic_health::pb::{health_client::HealthClient, HealthCheckRequest};

/// The daemon's `--max-connections` in this test.
const MAX_CONNECTIONS: usize = 16;
/// Each answer must come within this (a hang fails the test instead of stalling it).
const BOUND: Duration = Duration::from_secs(30);

async fn health_check(addr: &str) -> bool {
    let check = async {
        let channel = tonic::transport::Endpoint::from_shared(addr.to_string())
            .ok()?
            .connect()
            .await
            .ok()?;
        HealthClient::new(channel)
            .check(HealthCheckRequest {
                service: String::new(),
            })
            .await
            .ok()
    };
    matches!(tokio::time::timeout(BOUND, check).await, Ok(Some(_)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_cannot_keep_health_checks_or_watchers_out() {
    let tmp = tempfile::tempdir().unwrap();
    let daemon = Daemon::start_in(
        &tmp.path().join("data"),
        &["--max-connections", &MAX_CONNECTIONS.to_string()],
    );
    let mut grpc = daemon.client().await.grpc();
    let run = external::log_run(&mut grpc, "watched", 1, 1).await;
    // A watcher with its stream open (a request in flight on its connection).
    let watcher = daemon.client().await;
    let mut stream = watcher.watch_run(&run, 2).await.unwrap();

    // Twice the cap of silent TCP connections, and the cap of idle HTTP/2 ones.
    let port = daemon.addr.rsplit(':').next().unwrap().to_string();
    let silent: Vec<TcpStream> = (0..2 * MAX_CONNECTIONS)
        .map(|_| TcpStream::connect(format!("127.0.0.1:{port}")).unwrap())
        .collect();
    let mut idle = Vec::new();
    for _ in 0..MAX_CONNECTIONS {
        let endpoint = tonic::transport::Endpoint::from_shared(daemon.addr.clone()).unwrap();
        if let Ok(Ok(channel)) = tokio::time::timeout(BOUND, endpoint.connect()).await {
            idle.push(channel);
        }
    }

    let mut answered = 0;
    for _ in 0..10 {
        if health_check(&daemon.addr).await {
            answered += 1;
        }
    }
    assert_eq!(answered, 10, "health checks at the connection cap");

    // The watcher was never the one closed: the next epoch reaches it on the same stream.
    grpc.log_epochs(LogEpochsRequest {
        run: run.clone(),
        epochs: vec![external::epoch(2)],
    })
    .await
    .unwrap();
    loop {
        let event = tokio::time::timeout(BOUND, stream.message())
            .await
            .expect("the watcher goes on")
            .expect("its stream was not closed")
            .expect("an event");
        if let Some(Event::Epoch(epoch)) = event.event {
            assert_eq!(epoch.epoch, 2);
            break;
        }
    }
    drop((silent, idle));
}

/// Opens an event stream and reads until its first bytes arrive; returns the connection.
fn open_stream(base: &str, path: &str) -> TcpStream {
    let host = base.trim_start_matches("http://");
    let mut stream = TcpStream::connect(host).unwrap();
    stream.set_read_timeout(Some(BOUND)).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nAccept: text/event-stream\r\n\r\n"
    )
    .unwrap();
    let mut first = [0u8; 64];
    let read = stream.read(&mut first).unwrap();
    assert!(
        String::from_utf8_lossy(&first[..read]).starts_with("HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&first[..read])
    );
    stream
}

/// What an event stream did first.
#[derive(Debug, PartialEq)]
enum Heard {
    /// The server ended it: its chunked answer's last chunk, or the connection closed.
    Ended,
    /// It carried the awaited text.
    Said,
    /// Neither, within the wait.
    Nothing,
}

/// Reads `stream` until the server ends it or it carries `awaited` (with none, until it ends),
/// for at most `wait`.
fn heard(stream: &mut TcpStream, awaited: Option<&[u8]>, wait: Duration) -> Heard {
    // A deadline for the whole wait, not each read: a stream that stays open sends a keep-alive
    // comment every 15 s, which would reset a per-read timeout for ever.
    let deadline = std::time::Instant::now() + wait;
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return Heard::Nothing;
        }
        stream.set_read_timeout(Some(left)).unwrap();
        match stream.read(&mut buf) {
            Ok(0) => return Heard::Ended,
            Ok(n) => {
                seen.extend_from_slice(&buf[..n]);
                if seen.windows(7).any(|w| w == b"\r\n0\r\n\r\n") || seen.starts_with(b"0\r\n\r\n")
                {
                    return Heard::Ended;
                }
                if awaited.is_some_and(|a| seen.windows(a.len()).any(|w| w == a)) {
                    return Heard::Said;
                }
            }
            Err(err)
                if matches!(
                    err.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return Heard::Nothing
            }
            // Reset: closed.
            Err(_) => return Heard::Ended,
        }
    }
}

/// A change every open `/api/events` stream announces (a new run), after which each of
/// `streams` is read until it names that run: those that ended first (or said nothing), by
/// index. (A stream's events come in order: one closed before the change never names it.)
async fn closed_among(
    grpc: &mut StrataGrpc,
    name: &str,
    streams: &mut [(usize, TcpStream)],
) -> Vec<(usize, Heard)> {
    let run = external::log_run(grpc, name, 1, 1).await;
    let named = format!("\"{run}\"");
    streams
        .iter_mut()
        .map(|(at, stream)| (*at, heard(stream, Some(named.as_bytes()), BOUND)))
        .filter(|(_, heard)| *heard != Heard::Said)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dashboard_client_holding_every_stream_and_slow_headers_starves_no_one() {
    let daemon = Daemon::start();
    let base = daemon.dashboard.clone().expect("the dashboard");
    let mut grpc = daemon.client().await.grpc();
    let run = external::log_run(&mut grpc, "shown", 3, 3).await;

    // 64 event streams (the cap), then 64 connections that send half a request line and stop:
    // 128 connections, the dashboard's cap.
    let mut streams: Vec<(usize, TcpStream)> = (0..64)
        .map(|at| (at, open_stream(&base, "/api/events")))
        .collect();
    let host = base.trim_start_matches("http://").to_string();
    let slow: Vec<TcpStream> = (0..64)
        .map(|_| {
            let mut slow = TcpStream::connect(&host).unwrap();
            slow.write_all(b"GET /api/runs HTTP/1.1\r\nHo").unwrap();
            slow
        })
        .collect();

    // Every legitimate request is answered...
    for _ in 0..20 {
        let answer = http::get(&base, "/api/runs", &[]);
        assert_eq!(answer.status, 200, "{}", answer.body);
    }
    let page = http::get(&base, &format!("/api/runs/{run}"), &[]);
    assert_eq!(page.status, 200, "{}", page.body);
    // ...and the room for them came from the slow headers, never from an event stream (an
    // answer in flight, though it sent nothing since it opened): each still hears of changes.
    let closed = closed_among(&mut grpc, "changed once", &mut streams).await;
    assert_eq!(closed, vec![], "event streams closed to admit requests");

    // A new page goes live: its stream opens, and the oldest of the busy client's is closed,
    // only it.
    let _live = open_stream(&base, &format!("/api/runs/{run}/events"));
    let (_, oldest) = &mut streams[0];
    assert_eq!(
        heard(oldest, None, BOUND),
        Heard::Ended,
        "the oldest stream of the client holding them all was closed"
    );
    let closed = closed_among(&mut grpc, "changed twice", &mut streams[1..]).await;
    assert_eq!(closed, vec![], "only the oldest stream was closed");
    drop(slow);
}
