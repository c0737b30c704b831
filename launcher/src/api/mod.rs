//! The API server: `POST /rpc`, `GET /events` (SSE) and the browser entry `/`, on loopback only.
//!
//! Every request first passes [`guard`] (Host, Origin, body size, token). The daemon writes
//! `app/state/api.json` (`{"url", "pid"}`) and `app/state/api-token` (mode 0600, new at each
//! start, [`kojibox_home::endpoint`]) once it listens, and removes them when it stops; the CLI
//! finds the daemon through them.

pub mod events;
pub mod guard;
pub mod hub;
pub mod rpc;
pub mod state;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::response::{Html, IntoResponse};
use axum::routing::{get, post};

use crate::error::{Error, Result};
pub use state::AppState;

/// The routes, behind the guard.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/rpc", post(rpc::rpc))
        .route("/events", get(events::events))
        .route("/", get(index))
        .layer(axum::middleware::from_fn_with_state(
            Arc::clone(&state),
            guard::guard,
        ))
        .with_state(state)
}

async fn index() -> impl IntoResponse {
    Html(concat!(
        "<!doctype html><meta charset=utf-8><title>kojibox</title>",
        "<h1>kojibox daemon</h1><p>API: <code>POST /rpc</code>; events: <code>GET /events</code>.</p>"
    ))
}

/// Binds the API listener; only loopback addresses are allowed.
pub async fn bind(listen: &str) -> Result<tokio::net::TcpListener> {
    let address: SocketAddr = listen.parse().map_err(|e| {
        Error::invalid(
            "Invalid listen address",
            format!("`{listen}`: {e} (expected 127.0.0.1:PORT)"),
        )
    })?;
    if !address.ip().is_loopback() {
        return Err(Error::invalid(
            "Invalid listen address",
            format!(
                "`{listen}` is not a loopback address: the API is only served on 127.0.0.1 or [::1]"
            ),
        ));
    }
    tokio::net::TcpListener::bind(address)
        .await
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::AddrInUse => Error::PortConflict {
                detail: format!("the API address {address} is already in use"),
            },
            _ => Error::io("listen on", listen)(e),
        })
}
