//! The API server: `POST /rpc`, `GET /events` (SSE) and the browser entry `/`, on loopback only.
//!
//! Every request first passes [`guard`] (one Host and one Origin, Host, Origin, body size,
//! credential); [`server`] bounds the connections and their idle time. The daemon writes
//! `app/state/api.json` (`{"url", "pid"}`) and `app/state/api-token` (mode 0600, new at each
//! start, [`kojibox_home::endpoint`]) once it listens, and removes them when it stops; the CLI
//! finds the daemon through them.

pub mod events;
pub mod guard;
pub mod hub;
pub mod rpc;
pub mod server;
pub mod session;
pub mod sessions;
pub mod state;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use kojibox_manifests::error::ErrorCode;

use crate::error::{Error, Result};
pub use state::AppState;

/// The routes, behind the guard.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/rpc", post(rpc::rpc))
        .route("/events", get(events::events))
        .route("/", get(index))
        .route("/app.js", get(script))
        .route("/session", post(session::exchange).delete(session::logout))
        .route("/session/login", post(session::login))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            Arc::clone(&state),
            guard::guard,
        ))
        .layer(axum::middleware::from_fn(guard::secure_headers))
        .with_state(state)
}

/// The browser entry: a page that signs in with a one-time login code (see [`session`]).
async fn index() -> impl IntoResponse {
    Html(include_str!("../../assets/index.html"))
}

async fn script() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        include_str!("../../assets/app.js"),
    )
}

async fn not_found(uri: axum::http::Uri) -> Response {
    guard::refuse(
        StatusCode::NOT_FOUND,
        ErrorCode::NotFound,
        "No such route",
        format!(
            "`{}` is not served: the API is POST /rpc and GET /events",
            uri.path()
        ),
    )
}

async fn method_not_allowed(method: axum::http::Method, uri: axum::http::Uri) -> Response {
    guard::refuse(
        StatusCode::METHOD_NOT_ALLOWED,
        ErrorCode::MethodNotFound,
        "Method not allowed",
        format!("`{method} {}` is not served", uri.path()),
    )
}

/// Binds the API listener; only loopback addresses are allowed.
pub async fn bind(listen: &str) -> Result<tokio::net::TcpListener> {
    let address: SocketAddr = listen.parse().map_err(|e| {
        Error::invalid(
            "Invalid listen address",
            format!("`{listen}`: {e} (expected 127.0.0.1:PORT)"),
        )
    })?;
    if !matches!(
        address.ip(),
        IpAddr::V4(Ipv4Addr::LOCALHOST) | IpAddr::V6(Ipv6Addr::LOCALHOST)
    ) {
        return Err(Error::invalid(
            "Invalid listen address",
            format!(
                "`{listen}` is not 127.0.0.1 or [::1]: the API is only served there (the Host \
                 check accepts no other address, so every request would be refused)"
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
