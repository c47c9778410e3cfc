//! Server-sent events: a run's epochs (history, then live, no gap and no duplicate — the watch
//! fan-out `strata watch` uses), and the daemon-wide feed of changed runs for the runs page.
//!
//! A browser that reconnects sends `Last-Event-ID` (the last epoch it received): its stream
//! resumes after that epoch. A slow browser never slows training: the watcher behind its stream
//! falls back to the store, and the changes feed tells it to re-read the list.

use std::{collections::HashMap, convert::Infallible, sync::Arc, time::Duration};

use axum::{
    extract::{Path, Query, State},
    http::{HeaderMap, StatusCode},
    response::{
        sse::{Event, KeepAlive, Sse},
        IntoResponse, Response,
    },
};
use serde_json::json;
use tokio::sync::OwnedSemaphorePermit;
use tokio_stream::{
    wrappers::{errors::BroadcastStreamRecvError, BroadcastStream, ReceiverStream},
    StreamExt,
};

use super::{
    api::{run_name, ApiError},
    json, Dashboard,
};

/// How soon a browser reconnects a dropped stream.
const RECONNECT_AFTER: Duration = Duration::from_secs(1);
/// A comment this often keeps proxies from closing an idle stream.
const KEEPALIVE_EVERY: Duration = Duration::from_secs(15);

/// One of the [`super::MAX_EVENT_STREAMS`], or 503.
fn stream_slot(dashboard: &Dashboard) -> Result<OwnedSemaphorePermit, ApiError> {
    dashboard.streams.clone().try_acquire_owned().map_err(|_| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "too many dashboard event streams are open; close some dashboard tabs",
        )
    })
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
) -> Result<Response, ApiError> {
    let run = run_name(&run)?;
    let from_epoch = first_epoch(&headers, &query)?;
    let slot = Arc::new(stream_slot(&dashboard)?);
    let watch = dashboard.runs.watch(run, from_epoch).await?;
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
    Ok(Sse::new(first.chain(events).chain(end))
        .keep_alive(KeepAlive::new().interval(KEEPALIVE_EVERY))
        .into_response())
}

/// `GET /api/events`: a `changed` event (`{"id"}`) whenever a run is stored, changes status,
/// gains an epoch or is deleted; `resync` when this stream fell behind (re-read the list).
pub async fn changes(State(dashboard): State<Dashboard>) -> Result<Response, ApiError> {
    let slot = stream_slot(&dashboard)?;
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
    Ok(Sse::new(first.chain(changes))
        .keep_alive(KeepAlive::new().interval(KEEPALIVE_EVERY))
        .into_response())
}
