//! The checks every request passes before any handler runs, in this order:
//!
//! 1. **One of each**: two `Host` or two `Origin` headers are 400; so is an absolute-form
//!    request (`GET http://a/ HTTP/1.1`) whose authority differs from its `Host`.
//! 2. **Host** must be `localhost`, `127.0.0.1` or `[::1]`, with the daemon's port or none;
//!    anything else (`evil.example.com`, `localhost.evil.com`, `127.1`, `0x7f.0.0.1`,
//!    `2130706433`) is 403: a DNS-rebinding page in a browser cannot reach the API.
//! 3. **Origin**, when present, must be the daemon itself (`http://localhost:PORT`,
//!    `http://127.0.0.1:PORT`); `null` and any other origin are 403: no cross-site requests.
//! 4. **Body size**: a declared `Content-Length` over the cap is 413 before anything is read
//!    (bodies without one are capped while reading, in the handler).
//! 5. **Credential**, except for the public browser entry (`GET /`, `GET /app.js`) and the
//!    login exchange (`POST /session`, which carries its own one-time code):
//!    `Authorization: Bearer <API token>` (the CLI) or `Authorization: Session <secret>` (a
//!    browser tab, see [`super::session`]); missing or wrong is 401. Compared in constant
//!    time. Nothing a browser sends on its own (a cookie) is ever accepted.
//!
//! Every refusal carries the contract's error envelope; every answer carries the security
//! headers of [`secure_headers`].

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use kojibox_manifests::error::{ApiError, ErrorCode, ErrorSource};

use super::server::Admitted;
pub use super::sessions::constant_time_eq;
use super::state::AppState;

/// The largest request body accepted.
pub const MAX_BODY: usize = 1 << 20;

/// What a request was let in with (a request extension, for handlers that care).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Credential {
    /// The API token: the CLI.
    Token,
    /// A browser session.
    Session,
    /// None: a public route.
    Public,
}

/// The `Content-Security-Policy` of every answer: only this daemon's own scripts, styles and
/// connections; no inline script, no frames, no forms elsewhere.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'self'; \
     frame-ancestors 'none'";

/// The middleware.
pub async fn guard(
    State(state): State<Arc<AppState>>,
    mut request: Request<Body>,
    next: Next,
) -> Response {
    let headers = request.headers();
    if let Err(why) =
        check_single(headers).and_then(|()| check_absolute_form(request.uri(), headers))
    {
        return refuse(
            StatusCode::BAD_REQUEST,
            ErrorCode::ValidationFailed,
            "Malformed request",
            why,
        );
    }
    if let Err(why) = check_host(headers, state.port) {
        return refuse(
            StatusCode::FORBIDDEN,
            ErrorCode::Forbidden,
            "Request refused",
            why,
        );
    }
    if let Err(why) = check_origin(headers, state.port) {
        return refuse(
            StatusCode::FORBIDDEN,
            ErrorCode::Forbidden,
            "Request refused",
            why,
        );
    }
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > MAX_BODY as u64) {
        return too_large();
    }
    let credential = if is_public(request.method(), request.uri().path()) {
        Credential::Public
    } else if bearer(headers)
        .is_some_and(|t| constant_time_eq(t.as_bytes(), state.token.as_bytes()))
    {
        Credential::Token
    } else if session_secret(headers).is_some_and(|s| state.sessions.check(&s)) {
        Credential::Session
    } else {
        return refuse(
            StatusCode::UNAUTHORIZED,
            ErrorCode::Unauthorized,
            "Missing or wrong API token",
            "send `Authorization: Bearer <token>` with the token in app/state/api-token \
             (a browser: open the address `kojibox dashboard` prints)"
                .to_owned(),
        );
    };
    if credential != Credential::Public
        && let Some(admitted) = request.extensions().get::<Admitted>()
    {
        admitted.authenticate();
    }
    request.extensions_mut().insert(credential);
    next.run(request).await
}

/// The routes anyone on loopback may ask for: the static browser entry and the code exchange.
fn is_public(method: &Method, path: &str) -> bool {
    matches!(
        (method, path),
        (&Method::GET | &Method::HEAD, "/" | "/app.js") | (&Method::POST, "/session")
    )
}

/// Adds the security headers to an answer (the outermost layer: refusals get them too).
pub async fn secure_headers(request: Request<Body>, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    for (name, value) in [
        (header::CONTENT_SECURITY_POLICY, CSP),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    headers
        .entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    response
}

/// At most one `Host` and one `Origin`: a second one could be read differently by a proxy in
/// front, or by a later check.
fn check_single(headers: &HeaderMap) -> Result<(), String> {
    for name in [header::HOST, header::ORIGIN] {
        if headers.get_all(&name).iter().count() > 1 {
            return Err(format!("the request has more than one `{name}` header"));
        }
    }
    Ok(())
}

/// An absolute-form request target (`GET http://host/path`) must name the same authority as
/// `Host`.
fn check_absolute_form(uri: &Uri, headers: &HeaderMap) -> Result<(), String> {
    let Some(authority) = uri.authority() else {
        return Ok(());
    };
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if authority.as_str().eq_ignore_ascii_case(host) {
        Ok(())
    } else {
        Err(format!(
            "the request target names `{authority}` but the Host header says `{host}`"
        ))
    }
}

fn check_host(headers: &HeaderMap, port: u16) -> Result<(), String> {
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .ok_or("the request has no Host header")?;
    let (name, host_port) = match host.rsplit_once(':') {
        Some((name, p))
            if !name.ends_with(':') && (name.starts_with('[') || !name.contains(':')) =>
        {
            (name, Some(p))
        }
        _ => (host, None),
    };
    let loopback = matches!(
        name.to_ascii_lowercase().as_str(),
        "localhost" | "127.0.0.1" | "[::1]"
    );
    let port_ok = host_port.is_none_or(|p| p == port.to_string());
    if loopback && port_ok {
        Ok(())
    } else {
        Err(format!(
            "Host `{host}` is not this daemon (expected localhost, 127.0.0.1 or [::1] on port {port})"
        ))
    }
}

fn check_origin(headers: &HeaderMap, port: u16) -> Result<(), String> {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return Ok(());
    };
    let origin = origin.to_str().unwrap_or("");
    let allowed = [
        format!("http://localhost:{port}"),
        format!("http://127.0.0.1:{port}"),
        format!("http://[::1]:{port}"),
    ];
    if allowed.iter().any(|a| a.eq_ignore_ascii_case(origin)) {
        Ok(())
    } else {
        Err(format!("Origin `{origin}` may not use this API"))
    }
}

fn bearer(headers: &HeaderMap) -> Option<String> {
    authorization(headers, "Bearer ")
}

/// The session secret of `Authorization: Session <secret>`.
pub fn session_secret(headers: &HeaderMap) -> Option<String> {
    authorization(headers, "Session ")
}

fn authorization(headers: &HeaderMap, scheme: &str) -> Option<String> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let value = values.next()?.to_str().ok()?;
    if values.next().is_some() {
        return None; // two credentials: neither counts
    }
    value.strip_prefix(scheme).map(|t| t.trim().to_owned())
}

/// The 413 answer.
pub fn too_large() -> Response {
    refuse(
        StatusCode::PAYLOAD_TOO_LARGE,
        ErrorCode::PayloadTooLarge,
        "Request body too large",
        format!("the body is over the {MAX_BODY}-byte limit"),
    )
}

/// An error envelope with an HTTP status.
pub fn refuse(status: StatusCode, code: ErrorCode, message: &str, detail: String) -> Response {
    let error = ApiError::new(
        code,
        ErrorSource::Api,
        message,
        detail,
        kojibox_home::clock::now(),
    );
    envelope(status, &kojibox_manifests::Response::<()>::Error(error))
}

/// A JSON answer.
pub fn envelope<T: serde::Serialize>(status: StatusCode, body: &T) -> Response {
    let bytes = serde_json::to_vec(body).unwrap_or_else(|_| b"{}".to_vec());
    (status, [(header::CONTENT_TYPE, "application/json")], bytes).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn host(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_str(value).unwrap());
        h
    }

    #[test]
    fn only_loopback_hosts_on_our_port_pass() {
        for ok in [
            "localhost",
            "localhost:4000",
            "LOCALHOST:4000",
            "127.0.0.1",
            "127.0.0.1:4000",
            "[::1]",
            "[::1]:4000",
        ] {
            assert!(check_host(&host(ok), 4000).is_ok(), "{ok}");
        }
        for bad in [
            "evil.example.com",
            "localhost.evil.com",
            "localhost:4001",
            "127.1",
            "0x7f.0.0.1",
            "2130706433",
            "127.0.0.2:4000",
            "::1",
            "[::1]:80",
            "localhost:4000.evil.com",
        ] {
            assert!(check_host(&host(bad), 4000).is_err(), "{bad}");
        }
        assert!(check_host(&HeaderMap::new(), 4000).is_err());
    }

    #[test]
    fn only_our_own_origin_passes() {
        let mut h = HeaderMap::new();
        assert!(check_origin(&h, 4000).is_ok());
        for (origin, ok) in [
            ("http://localhost:4000", true),
            ("http://127.0.0.1:4000", true),
            ("null", false),
            ("http://evil.example.com", false),
            ("http://localhost:4001", false),
            ("https://localhost:4000", false),
        ] {
            h.insert(header::ORIGIN, HeaderValue::from_str(origin).unwrap());
            assert_eq!(check_origin(&h, 4000).is_ok(), ok, "{origin}");
        }
    }

    #[test]
    fn tokens_compare_exactly() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
    }
}
