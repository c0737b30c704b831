//! `GET /events`: Server-Sent Events for the contract's seven events, from the
//! [`EventHub`](super::hub::EventHub):
//! first the buffered events after `Last-Event-ID`, then live ones.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use futures_util::stream::{self, Stream, StreamExt};

use super::state::AppState;

/// The SSE handler.
pub async fn events(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Sse<impl Stream<Item = Result<SseEvent, Infallible>>> {
    let last_id = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok());
    let (replay, rx) = state.hub.subscribe(last_id);
    let live = stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|entry| (entry, rx))
    });
    let all = stream::iter(replay).chain(live).map(|entry| {
        Ok(SseEvent::default()
            .id(entry.id.to_string())
            .event(entry.name)
            .data(entry.data()))
    });
    Sse::new(all).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}
