//! Server-sent events: a run's epochs (history, then live, no gap and no duplicate — the watch
//! fan-out `strata watch` uses), and the daemon-wide feed of changed runs for the runs page.
//!
//! A browser that reconnects sends `Last-Event-ID` (the last epoch it received): its stream
//! resumes after that epoch. A slow browser never slows training: the watcher behind its stream
//! falls back to the store, and the changes feed tells it to re-read the list.

use std::{
    collections::HashMap,
    convert::Infallible,
    net::IpAddr,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

use axum::{
    extract::{Extension, Path, Query, State},
    http::{HeaderMap, StatusCode},
    response::{
        sse::{Event, KeepAlive, Sse},
        IntoResponse, Response,
    },
};
use serde_json::json;
use tokio_stream::{
    wrappers::{errors::BroadcastStreamRecvError, BroadcastStream, ReceiverStream},
    Stream, StreamExt,
};
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

use super::{
    api::{run_name, ApiError},
    json, Dashboard,
};
use crate::transport::connections::PeerAddr;

/// How soon a browser reconnects a dropped stream.
const RECONNECT_AFTER: Duration = Duration::from_secs(1);
/// A comment this often keeps proxies from closing an idle stream.
const KEEPALIVE_EVERY: Duration = Duration::from_secs(15);

/// The open event streams, at most `max`: a new one always opens, and when `max` are open the
/// oldest stream of the client address holding the most is closed to make room. One client (a
/// tab left open, a script holding streams) cannot keep another's page from going live; a
/// browser reconnects a closed stream by itself, after the last epoch it received.
pub struct StreamSlots {
    open: Mutex<Vec<OpenStream>>,
    max: usize,
    next_id: AtomicU64,
}

struct OpenStream {
    id: u64,
    peer: IpAddr,
    close: CancellationToken,
}

/// A stream's place among the open ones, given back when the stream is dropped.
pub struct StreamSlot {
    slots: Arc<StreamSlots>,
    id: u64,
    /// Resolves when the stream is closed to make room.
    pub closed: CancellationToken,
}

impl StreamSlots {
    pub fn new(max: usize) -> Arc<Self> {
        Arc::new(StreamSlots {
            open: Mutex::default(),
            max: max.max(1),
            next_id: AtomicU64::new(0),
        })
    }

    fn open(&self) -> std::sync::MutexGuard<'_, Vec<OpenStream>> {
        self.open.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn take(self: &Arc<Self>, peer: IpAddr) -> StreamSlot {
        let mut open = self.open();
        while open.len() >= self.max {
            // The address with the most streams gives up its oldest (streams are in order).
            let mut counts: HashMap<IpAddr, usize> = HashMap::new();
            for stream in open.iter() {
                *counts.entry(stream.peer).or_default() += 1;
            }
            let busiest = counts
                .into_iter()
                .max_by_key(|(_, count)| *count)
                .map(|(peer, _)| peer);
            let Some(at) = open.iter().position(|s| Some(s.peer) == busiest) else {
                break;
            };
            open.remove(at).close.cancel();
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let close = CancellationToken::new();
        open.push(OpenStream {
            id,
            peer,
            close: close.clone(),
        });
        StreamSlot {
            slots: self.clone(),
            id,
            closed: close,
        }
    }
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        self.slots.open().retain(|s| s.id != self.id);
    }
}

/// `stream`, ending once `closed` resolves.
fn until_closed<S: Stream + Unpin>(
    stream: S,
    closed: WaitForCancellationFutureOwned,
) -> impl Stream<Item = S::Item> {
    struct UntilClosed<S> {
        stream: S,
        closed: std::pin::Pin<Box<WaitForCancellationFutureOwned>>,
    }
    impl<S: Stream + Unpin> Stream for UntilClosed<S> {
        type Item = S::Item;
        fn poll_next(
            mut self: std::pin::Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<S::Item>> {
            if std::future::Future::poll(self.closed.as_mut(), cx).is_ready() {
                return std::task::Poll::Ready(None);
            }
            std::pin::Pin::new(&mut self.stream).poll_next(cx)
        }
    }
    UntilClosed {
        stream,
        closed: Box::pin(closed),
    }
}

/// A place among the [`super::MAX_EVENT_STREAMS`] for a stream from `peer`.
fn stream_slot(dashboard: &Dashboard, peer: Option<PeerAddr>) -> StreamSlot {
    let peer = peer.map_or(IpAddr::from([0, 0, 0, 0]), |p| p.0.ip());
    dashboard.streams.take(peer)
}

/// The epoch to stream from: after `Last-Event-ID` when the browser reconnects, else
/// `?from_epoch=` (default 1).
fn first_epoch(headers: &HeaderMap, query: &HashMap<String, String>) -> Result<u32, ApiError> {
    let last_seen = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u32>().ok());
    if let Some(last) = last_seen {
        return Ok(last.saturating_add(1));
    }
    match query.get("from_epoch") {
        None => Ok(1),
        Some(text) => text.parse::<u32>().map(|e| e.max(1)).map_err(|_| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "from_epoch: must be a whole number of at least 1",
            )
        }),
    }
}

/// `GET /api/runs/RUN/events[?from_epoch=E]`: `epoch` (with the epoch as its id), `progress`,
/// `status` and `notice` events, then `end` after the run's terminal status.
pub async fn run_events(
    State(dashboard): State<Dashboard>,
    Path(run): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    peer: Option<Extension<PeerAddr>>,
) -> Result<Response, ApiError> {
    let run = run_name(&run)?;
    let from_epoch = first_epoch(&headers, &query)?;
    let watch = dashboard.runs.watch(run, from_epoch).await?;
    let slot = Arc::new(stream_slot(&dashboard, peer.map(|p| p.0)));
    let closed = slot.closed.clone().cancelled_owned();
    let metric = watch.metric;
    let events = ReceiverStream::new(watch.events).map(move |event| {
        let _slot = &slot; // Held while the stream lives.
        let event = match event {
            Ok(event) => {
                let (name, id, data) = json::watch_event(&event, metric);
                let sse = Event::default().event(name).data(data.to_string());
                match id {
                    Some(epoch) => sse.id(epoch.to_string()),
                    None => sse,
                }
            }
            Err(err) => Event::default()
                .event("failure")
                .data(json!({ "error": err.to_string() }).to_string()),
        };
        Ok::<_, Infallible>(event)
    });
    let end = tokio_stream::once(Ok(Event::default().event("end").data("{}")));
    let first = tokio_stream::once(Ok(Event::default().retry(RECONNECT_AFTER).comment("")));
    // Closed to make room: cut short, with no `end` (the browser reconnects, after the last
    // epoch it received).
    let stream = until_closed(first.chain(events).chain(end), closed);
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(KEEPALIVE_EVERY))
        .into_response())
}

/// `GET /api/events`: a `changed` event (`{"id"}`) whenever a run is stored, changes status,
/// gains an epoch or is deleted; `resync` when this stream fell behind (re-read the list).
pub async fn changes(
    State(dashboard): State<Dashboard>,
    peer: Option<Extension<PeerAddr>>,
) -> Result<Response, ApiError> {
    let slot = stream_slot(&dashboard, peer.map(|p| p.0));
    let closed = slot.closed.clone().cancelled_owned();
    let changes = BroadcastStream::new(dashboard.runs.subscribe_changes()).map(move |change| {
        let _slot = &slot;
        let event = match change {
            Ok(id) => Event::default()
                .event("changed")
                .data(json!({ "id": id.to_string() }).to_string()),
            Err(BroadcastStreamRecvError::Lagged(skipped)) => Event::default()
                .event("resync")
                .data(json!({ "skipped": skipped }).to_string()),
        };
        Ok::<_, Infallible>(event)
    });
    let first = tokio_stream::once(Ok(Event::default().retry(RECONNECT_AFTER).comment("")));
    Ok(Sse::new(until_closed(first.chain(changes), closed))
        .keep_alive(KeepAlive::new().interval(KEEPALIVE_EVERY))
        .into_response())
}
