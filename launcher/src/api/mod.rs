//! The API server: `POST /rpc`, `GET /events` (SSE) and the browser entry `/`, on loopback only.
//!
//! Every request first passes [`guard`] (Host, Origin, body size, token). `serve` writes
//! `app/state/api.json` (`{"url", "pid"}`) and `app/state/api-token` (mode 0600, new at each
//! start) once it listens, and removes them when it stops; the CLI finds the daemon through them.

pub mod events;
pub mod guard;
pub mod rpc;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::response::{Html, IntoResponse};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::home::Home;
use crate::supervisor::Supervisor;
use events::EventHub;

/// What the handlers share.
pub struct AppState {
    /// The home.
    pub home: Home,
    /// The services.
    pub supervisor: Arc<Supervisor>,
    /// The event stream.
    pub hub: Arc<EventHub>,
    /// The event bus (for `config:changed`).
    pub events: tokio::sync::broadcast::Sender<kojibox_manifests::event::Event>,
    /// The secret store.
    pub vault: Arc<crate::vault::Vault>,
    /// The bearer token.
    pub token: String,
    /// The port the daemon listens on (for the Host and Origin checks).
    pub port: u16,
    /// Cancelled to make the daemon restart itself (after kojibox replaced itself).
    pub restart: tokio_util::sync::CancellationToken,
}

/// `app/state/api.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// The daemon's pid.
    pub pid: u32,
}

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

/// A fresh random token (32 bytes, hex).
pub fn new_token() -> Result<String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)
        .map_err(|e| Error::io("generate", "the API token")(std::io::Error::other(e)))?;
    Ok(hex::encode(bytes))
}

/// Writes `api-token` (0600) then `api.json`, atomically.
pub fn write_endpoint(home: &Home, endpoint: &Endpoint, token: &str) -> Result<()> {
    let state = home.state();
    std::fs::create_dir_all(&state).map_err(Error::io("create folder", &state))?;
    let token_path = state.join("api-token");
    let mut tmp = tempfile::Builder::new()
        .prefix(".api-token")
        .tempfile_in(&state)
        .map_err(Error::io("create a file in", &state))?;
    // tempfile creates the file 0600 on unix: the token is never readable by others.
    std::io::Write::write_all(&mut tmp, token.as_bytes())
        .map_err(Error::io("write", &token_path))?;
    tmp.as_file()
        .sync_all()
        .map_err(Error::io("sync", &token_path))?;
    tmp.persist(&token_path)
        .map_err(|e| Error::io("write", &token_path)(e.error))?;
    crate::fsutil::write_json(&state.join("api.json"), endpoint)
}

/// Removes `api.json` and `api-token` (the daemon is stopping).
pub fn remove_endpoint(home: &Home) {
    let _ = std::fs::remove_file(home.state().join("api.json"));
    let _ = std::fs::remove_file(home.state().join("api-token"));
}
