//! The checks every request passes before any handler runs, in this order:
//!
//! 1. **Host** must be `localhost`, `127.0.0.1` or `[::1]`, with the daemon's port or none;
//!    anything else (`evil.example.com`, `localhost.evil.com`, `127.1`, `0x7f.0.0.1`,
//!    `2130706433`) is 403: a DNS-rebinding page in a browser cannot reach the API.
//! 2. **Origin**, when present, must be the daemon itself (`http://localhost:PORT`,
//!    `http://127.0.0.1:PORT`); `null` and any other origin are 403: no cross-site requests.
//! 3. **Body size**: a declared `Content-Length` over the cap is 413 before anything is read
//!    (bodies without one are capped while reading, in the handler).
//! 4. **Token**: `Authorization: Bearer <token>` or the `kojibox_token` cookie (set by opening
//!    `/?token=T` once, for browsers, which cannot send the header); missing or wrong is 401.
//!    Compared in constant time.
//!
//! Every refusal carries the contract's error envelope.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use kojibox_manifests::error::{ApiError, ErrorCode, ErrorSource};

use super::state::AppState;

/// The largest request body accepted.
pub const MAX_BODY: usize = 1 << 20;
/// The cookie a browser session carries.
pub const COOKIE: &str = "kojibox_token";

/// The middleware.
pub async fn guard(
    State(state): State<Arc<AppState>>,
    request: Request<Body>,
    next: Next,
) -> Response {
    let headers = request.headers();
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
    // Opening `/?token=T` (the dashboard link) sets the cookie; it is checked like any token.
    let query_token = (request.uri().path() == "/")
        .then(|| {
            request
                .uri()
                .query()
                .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("token=")))
                .map(str::to_owned)
        })
        .flatten();
    let presented = bearer(headers)
        .or_else(|| cookie(headers))
        .or(query_token.clone());
    if !presented.is_some_and(|t| constant_time_eq(t.as_bytes(), state.token.as_bytes())) {
        return refuse(
            StatusCode::UNAUTHORIZED,
            ErrorCode::Unauthorized,
            "Missing or wrong API token",
            "send `Authorization: Bearer <token>` with the token in app/state/api-token".to_owned(),
        );
    }
    if query_token.is_some() {
        // Trade the token in the URL for an HttpOnly cookie and drop it from the address bar.
        return Response::builder()
            .status(StatusCode::SEE_OTHER)
            .header(header::LOCATION, "/")
            .header(
                header::SET_COOKIE,
                format!(
                    "{COOKIE}={}; HttpOnly; SameSite=Strict; Path=/",
                    state.token
                ),
            )
            .body(Body::empty())
            .unwrap_or_default();
    }
    next.run(request).await
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
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    value.strip_prefix("Bearer ").map(|t| t.trim().to_owned())
}

fn cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|kv| {
            let (k, v) = kv.trim().split_once('=')?;
            (k == COOKIE).then(|| v.to_owned())
        })
}

/// Compares without an early exit, so timing does not reveal how much of a guess was right.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
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
