//! Browser sessions: how a page gets API access without ever holding the API token.
//!
//! # Theory of operation
//!
//! Cookies are not isolated by port: a cookie set by `http://127.0.0.1:PORT` is sent to every
//! web server on `127.0.0.1`, whatever its port. So nothing a browser sends by itself grants
//! access here. Instead:
//!
//! The store is [`super::sessions`].
//!
//! 1. The CLI (holding the API token) asks `POST /session/login` for a **login code**: random,
//!    valid once, for [`LOGIN_TTL`]. It answers the dashboard URL with the code in the
//!    fragment (`http://127.0.0.1:PORT/#login=CODE`): a fragment is never sent to a server,
//!    never part of a `Referer`.
//! 2. The page (`/app.js`) trades the code for a **session secret** (`POST /session` with
//!    `{"login": CODE}`), removes the fragment from the address bar, and keeps the secret in
//!    the tab's `sessionStorage`.
//! 3. It sends the secret as `Authorization: Session SECRET` on `/rpc` and `/events` (read
//!    with `fetch`, which can carry headers). A session expires after [`SESSION_IDLE`] unused
//!    and [`SESSION_MAX`](super::sessions::SESSION_MAX) in all; `DELETE /session` revokes it; a daemon restart ends them all
//!    (they live in memory only).
//!
//! The exchange answers carry `Cache-Control: no-store` and `Referrer-Policy: no-referrer`.
//! Codes and secrets are 256-bit random and compared in constant time.

use std::sync::Arc;

use axum::Extension;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use kojibox_manifests::error::ErrorCode;
use serde::{Deserialize, Serialize};

use super::guard::{Credential, MAX_BODY, refuse, too_large};
use super::sessions::{LOGIN_TTL, SESSION_IDLE};
use super::state::AppState;

/// The answer of `POST /session/login`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LoginAnswer {
    /// The dashboard address with the one-time code in its fragment.
    pub url: String,
    /// When the code stops working (RFC 3339).
    pub expires_at: String,
}

/// The body of `POST /session`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExchangeBody {
    login: String,
}

/// The answer of `POST /session`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionAnswer {
    /// The session secret: send it as `Authorization: Session SECRET`.
    pub session: String,
    /// How long it stays valid unused, in seconds.
    pub idle_seconds: u64,
}

/// `POST /session/login`: the CLI (with the API token, not a session) asks for a login URL.
pub async fn login(
    State(state): State<Arc<AppState>>,
    Extension(credential): Extension<Credential>,
    headers: HeaderMap,
) -> Response {
    if credential != Credential::Token {
        return refuse(
            StatusCode::FORBIDDEN,
            ErrorCode::Forbidden,
            "A session cannot create logins",
            "only the API token (app/state/api-token, used by the CLI) can".to_owned(),
        );
    }
    let code = match state.sessions.new_login() {
        Ok(code) => code,
        Err(e) => return internal(&e),
    };
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("127.0.0.1");
    let expires =
        jiff::Timestamp::now() + jiff::SignedDuration::try_from(LOGIN_TTL).unwrap_or_default();
    private(
        StatusCode::OK,
        &LoginAnswer {
            url: format!("http://{host}/#login={code}"),
            expires_at: expires.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
        },
    )
}

/// `POST /session`: a page trades its login code for a session secret.
pub async fn exchange(State(state): State<Arc<AppState>>, body: Body) -> Response {
    let Ok(bytes) = axum::body::to_bytes(body, MAX_BODY).await else {
        return too_large();
    };
    let Ok(body) = kojibox_manifests::from_json_slice::<ExchangeBody>(&bytes) else {
        return refuse(
            StatusCode::BAD_REQUEST,
            ErrorCode::ValidationFailed,
            "Invalid request",
            r#"the body must be {"login": CODE}"#.to_owned(),
        );
    };
    match state.sessions.exchange(&body.login) {
        Some(Ok(session)) => private(
            StatusCode::OK,
            &SessionAnswer {
                session,
                idle_seconds: SESSION_IDLE.as_secs(),
            },
        ),
        Some(Err(e)) => internal(&e),
        None => no_store(refuse(
            StatusCode::UNAUTHORIZED,
            ErrorCode::Unauthorized,
            "Unknown or used login code",
            "a login code works once, for two minutes: run `kojibox dashboard` again".to_owned(),
        )),
    }
}

/// `DELETE /session`: ends the session the request carries.
pub async fn logout(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    if let Some(secret) = super::guard::session_secret(&headers) {
        state.sessions.revoke(&secret);
    }
    no_store(StatusCode::NO_CONTENT.into_response())
}

fn private<T: Serialize>(status: StatusCode, body: &T) -> Response {
    no_store(super::guard::envelope(status, body))
}

fn no_store(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        header::HeaderValue::from_static("no-referrer"),
    );
    response
}

fn internal(e: &std::io::Error) -> Response {
    refuse(
        StatusCode::INTERNAL_SERVER_ERROR,
        ErrorCode::Internal,
        "Could not create a session",
        e.to_string(),
    )
}
