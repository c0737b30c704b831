//! The checks before any handler runs (token, Host, Origin, body size) and the answers to bad
//! requests (strict HTTP: [`super::strict`]; browser sessions: [`super::browser`]). Each refused request asks to start `worker`; afterwards nothing may have started:
//! `services.list` shows every service stopped and no process of the home's services exists.
//! Each test ends with the same request, properly sent, starting `worker`: the refusals were
//! the checks, not a request that could not have worked anyway.

use std::io::Write;
use std::time::Duration;

use kojibox_manifests::error::ApiError;
use kojibox_manifests::model::ServiceStatus;
use serde_json::json;

use super::contract::error;
use super::{Api, Reply, connect, exchange, read_reply, request};

/// A request that would start `worker`.
const START: &str = r#"{"method": "services.start", "params": {"id": "worker"}}"#;
/// The body cap: 1 MiB.
const MAX_BODY: usize = 1 << 20;

/// Fails unless `reply` is a `status` answer carrying a `code` envelope from the API layer (or,
/// for a known method's params, from that method's module: `config` refuses `config.setApp`'s).
fn refused(reply: &Reply, status: u16, code: &str) -> ApiError {
    assert_eq!(reply.status, status, "{reply:?}");
    assert_eq!(
        reply.header("content-type").as_deref(),
        Some("application/json"),
        "{reply:?}"
    );
    let error = error(&reply.json());
    assert_eq!(serde_json::to_value(error.code).unwrap(), code, "{error:?}");
    let source = match error.detail.strip_prefix("invalid params for ") {
        Some(method) => match method.split('.').next().unwrap() {
            "domains" | "proxy" | "certs" => "tooling",
            module => module,
        },
        None => "api",
    };
    assert_eq!(
        serde_json::to_value(error.source).unwrap(),
        source,
        "{error:?}"
    );
    error
}

/// Nothing was started: every service is stopped, no pid, no process, no pid record.
fn nothing_started(api: &Api) {
    std::thread::sleep(Duration::from_millis(200));
    for state in api.list() {
        assert_eq!(
            (state.state, state.pid),
            (ServiceStatus::Stopped, None),
            "{state:?}"
        );
    }
    assert!(api.all_processes().is_empty(), "{:?}", api.all_processes());
    let records = std::fs::read_dir(api.env.at("app/state/services"));
    let records: Vec<_> = records
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name())
        // The daemon's own record of where it contains services, not a service's.
        .filter(|name| name != "containment")
        .collect();
    assert!(records.is_empty(), "{records:?}");
}

/// The refused request, sent properly, does start `worker`.
fn start_works(api: &Api) {
    let answer = api.post(&[], START.as_bytes());
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(answer.json()["result"]["state"], "starting", "{answer:?}");
    api.wait_for("worker", ServiceStatus::Running);
}

/// `POST /rpc` of [`START`] with exactly `headers`.
fn post_start(api: &Api, headers: &[String]) -> Reply {
    let mut lines = vec!["POST /rpc HTTP/1.1".to_owned()];
    lines.extend_from_slice(headers);
    exchange(api.port, &request(&lines, START.as_bytes()))
}

#[test]
fn no_or_wrong_token_is_401_and_starts_nothing() {
    let api = Api::boot(&[]);
    let host = format!("Host: 127.0.0.1:{}", api.port);
    let wrong = "0".repeat(64);
    let cases = [
        ("no token", vec![host.clone()]),
        (
            "a wrong token",
            vec![host.clone(), format!("Authorization: Bearer {wrong}")],
        ),
        (
            "a short token",
            vec![host.clone(), "Authorization: Bearer 0".into()],
        ),
        (
            "the token as Basic",
            vec![host.clone(), format!("Authorization: Basic {}", api.token)],
        ),
        (
            "a token prefix",
            vec![
                host.clone(),
                format!("Authorization: Bearer {}", &api.token[..63]),
            ],
        ),
        (
            "a wrong cookie",
            vec![host.clone(), format!("Cookie: kojibox_token={wrong}")],
        ),
        (
            // Cookies reach every server on this host: the right token in one grants nothing.
            "the right token as a cookie",
            vec![host.clone(), format!("Cookie: kojibox_token={}", api.token)],
        ),
        (
            "the token as a session",
            vec![
                host.clone(),
                format!("Authorization: Session {}", api.token),
            ],
        ),
        (
            "two Authorization headers",
            vec![
                host.clone(),
                format!("Authorization: Bearer {}", api.token),
                format!("Authorization: Bearer {wrong}"),
            ],
        ),
    ];
    for (what, headers) in &cases {
        let error = refused(&post_start(&api, headers), 401, "UNAUTHORIZED");
        assert!(error.detail.contains("api-token"), "{what}: {error:?}");
    }
    // The token in the URL never counts.
    let lines = [
        format!("POST /rpc?token={} HTTP/1.1", api.token),
        host.clone(),
    ];
    refused(
        &exchange(api.port, &request(&lines, START.as_bytes())),
        401,
        "UNAUTHORIZED",
    );
    for path in ["/events", "/events?token=TOKEN", "/session/login"] {
        let path = path.replace("TOKEN", &api.token);
        let lines = [format!("GET {path} HTTP/1.1"), host.clone()];
        refused(
            &exchange(api.port, &request(&lines, b"")),
            401,
            "UNAUTHORIZED",
        );
    }
    nothing_started(&api);
    start_works(&api);
}

#[test]
fn foreign_hosts_and_origins_are_403_and_start_nothing() {
    let api = Api::boot(&[]);
    let port = api.port;
    let token = format!("Authorization: Bearer {}", api.token);
    let hosts = [
        "evil.example.com".to_owned(),
        format!("evil.example.com:{port}"),
        format!("localhost.evil.com:{port}"),
        "localhost.evil.com".into(),
        format!("127.1:{port}"),
        format!("0x7f.0.0.1:{port}"),
        format!("2130706433:{port}"),
        format!("127.0.0.2:{port}"),
        format!("127.0.0.1:{}", port.wrapping_add(1)),
        format!("localhost:{}", port.wrapping_add(1)),
        format!("[::1]:{}", port.wrapping_add(1)),
        format!("localhost:{port}.evil.com"),
    ];
    for host in &hosts {
        let error = refused(
            &post_start(&api, &[format!("Host: {host}"), token.clone()]),
            403,
            "FORBIDDEN",
        );
        assert!(error.detail.contains(host.as_str()), "{host}: {error:?}");
    }
    // HTTP/1.0 may omit Host altogether.
    let lines = ["POST /rpc HTTP/1.0".to_owned(), token.clone()];
    refused(
        &exchange(port, &request(&lines, START.as_bytes())),
        403,
        "FORBIDDEN",
    );
    // The Host check comes first: a rebinding page learns nothing, even about the token.
    refused(
        &post_start(&api, &["Host: evil.example.com".into()]),
        403,
        "FORBIDDEN",
    );

    let host = format!("Host: 127.0.0.1:{port}");
    let origins = [
        "http://evil.example.com".to_owned(),
        "null".into(),
        format!("http://evil.example.com:{port}"),
        format!("https://127.0.0.1:{port}"),
        format!("http://127.0.0.1:{}", port.wrapping_add(1)),
        "http://localhost".into(),
    ];
    for origin in &origins {
        let headers = [host.clone(), token.clone(), format!("Origin: {origin}")];
        let error = refused(&post_start(&api, &headers), 403, "FORBIDDEN");
        assert!(
            error.detail.contains(origin.as_str()),
            "{origin}: {error:?}"
        );
    }
    // The event stream is guarded the same way.
    let events = |headers: &[String]| {
        let mut lines = vec!["GET /events HTTP/1.1".to_owned()];
        lines.extend_from_slice(headers);
        exchange(port, &request(&lines, b""))
    };
    let reply = events(&[format!("Host: evil.example.com:{port}"), token.clone()]);
    refused(&reply, 403, "FORBIDDEN");
    let reply = events(&[host.clone(), token.clone(), "Origin: null".into()]);
    refused(&reply, 403, "FORBIDDEN");
    nothing_started(&api);

    // What passes: loopback names with our port or none, and the daemon's own origin.
    let list = r#"{"method": "services.list", "params": {}}"#;
    for host in [
        format!("localhost:{port}"),
        format!("LOCALHOST:{port}"),
        format!("[::1]:{port}"),
        "localhost".into(),
        "127.0.0.1".into(),
    ] {
        let lines = [
            "POST /rpc HTTP/1.1".to_owned(),
            format!("Host: {host}"),
            token.clone(),
        ];
        let reply = exchange(port, &request(&lines, list.as_bytes()));
        assert_eq!(reply.status, 200, "{host}: {reply:?}");
        assert!(reply.json()["result"].is_array(), "{host}: {reply:?}");
    }
    for origin in [
        format!("http://127.0.0.1:{port}"),
        format!("http://localhost:{port}"),
    ] {
        let reply = api.post(&[&format!("Origin: {origin}")], list.as_bytes());
        assert_eq!(reply.status, 200, "{origin}: {reply:?}");
    }
    let reply = api.post(
        &[&format!("Origin: http://127.0.0.1:{port}")],
        START.as_bytes(),
    );
    assert_eq!(reply.json()["result"]["state"], "starting", "{reply:?}");
    api.wait_for("worker", ServiceStatus::Running);
}

/// [`START`] padded with spaces (valid JSON whitespace) to `len` bytes.
fn padded(len: usize) -> Vec<u8> {
    let mut body = START.as_bytes().to_vec();
    body.resize(len, b' ');
    body
}

#[test]
fn bodies_over_1_mib_are_413_with_or_without_a_length_and_start_nothing() {
    let api = Api::boot(&[]);
    let mut head = vec!["POST /rpc HTTP/1.1".to_owned()];
    head.extend(api.auth());

    // Declared too large: refused on the header alone, before a byte of the body is sent.
    let mut stream = connect(api.port);
    let mut lines = head.clone();
    lines.push(format!("Content-Length: {}", MAX_BODY + 1));
    stream.write_all(&request(&lines, b"")).unwrap();
    let error = refused(&read_reply(stream), 413, "PAYLOAD_TOO_LARGE");
    assert!(error.detail.contains(&MAX_BODY.to_string()), "{error:?}");

    // Chunked, no length: refused once the cap is passed while reading.
    let mut stream = connect(api.port);
    let mut lines = head.clone();
    lines.push("Transfer-Encoding: chunked".into());
    let mut bytes = request(&lines, b"");
    for chunk in padded(MAX_BODY + 1).chunks(64 << 10) {
        bytes.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        bytes.extend_from_slice(chunk);
        bytes.extend_from_slice(b"\r\n");
    }
    bytes.extend_from_slice(b"0\r\n\r\n");
    stream.write_all(&bytes).unwrap();
    refused(&read_reply(stream), 413, "PAYLOAD_TOO_LARGE");
    nothing_started(&api);

    // Exactly at the cap is served, both ways.
    let reply = api.post(&[], &padded(MAX_BODY));
    assert_eq!(reply.json()["result"]["state"], "starting", "{reply:?}");
    api.wait_for("worker", ServiceStatus::Running);
    api.rpc("services.stop", json!({"id": "worker"}));
    api.wait_for("worker", ServiceStatus::Stopped);
    let mut lines = head;
    lines.push("Transfer-Encoding: chunked".into());
    let mut bytes = request(&lines, b"");
    bytes.extend_from_slice(format!("{MAX_BODY:x}\r\n").as_bytes());
    bytes.extend_from_slice(&padded(MAX_BODY));
    bytes.extend_from_slice(b"\r\n0\r\n\r\n");
    let reply = exchange(api.port, &bytes);
    assert_eq!(reply.json()["result"]["state"], "starting", "{reply:?}");
}

#[test]
fn bad_requests_get_an_envelope_naming_what_is_wrong_and_start_nothing() {
    let api = Api::boot(&[]);
    // (body, HTTP status, code, texts the detail must contain)
    let cases: &[(&str, u16, &str, &[&str])] = &[
        (
            r#"{"method": "services.start", "params": {"id": "worker""#,
            400,
            "VALIDATION_FAILED",
            &["malformed request", "EOF"],
        ),
        (
            "services.start worker",
            400,
            "VALIDATION_FAILED",
            &["malformed request"],
        ),
        ("", 400, "VALIDATION_FAILED", &["malformed request"]),
        (
            r#"{"params": {"id": "worker"}}"#,
            400,
            "VALIDATION_FAILED",
            &["missing field `method`"],
        ),
        (
            r#"{"method": "services.start", "params": {"id": "worker"}, "id": 1}"#,
            400,
            "VALIDATION_FAILED",
            &["unknown field `id`"],
        ),
        (
            r#"{"method": "services.strat", "params": {"id": "worker"}}"#,
            404,
            "METHOD_NOT_FOUND",
            &["`services.strat`", "did you mean `services.start`?"],
        ),
        (
            r#"{"method": "Services.Start", "params": {"id": "worker"}}"#,
            404,
            "METHOD_NOT_FOUND",
            &["`Services.Start`", "did you mean `services.start`?"],
        ),
        (
            r#"{"method": "frobnicate", "params": {}}"#,
            404,
            "METHOD_NOT_FOUND",
            &["unknown method `frobnicate`"],
        ),
        (
            r#"{"method": "services.start", "params": {}}"#,
            400,
            "VALIDATION_FAILED",
            &["services.start", "missing field `id`"],
        ),
        (
            r#"{"method": "services.start"}"#,
            400,
            "VALIDATION_FAILED",
            &["services.start", "missing field `id`"],
        ),
        (
            r#"{"method": "services.start", "params": {"id": 5}}"#,
            400,
            "VALIDATION_FAILED",
            &["field `id`", "expected a string"],
        ),
        (
            r#"{"method": "services.start", "params": {"id": "worker", "force": true}}"#,
            400,
            "VALIDATION_FAILED",
            &["unknown field `force`"],
        ),
        (
            r#"{"method": "services.start", "params": "worker"}"#,
            400,
            "VALIDATION_FAILED",
            &["services.start"],
        ),
        (
            r#"{"method": "services.logs", "params": {"id": "worker", "tail": "ten"}}"#,
            400,
            "VALIDATION_FAILED",
            &["field `tail`"],
        ),
        (
            r#"{"method": "config.setApp", "params": {"installPath": "/opt/kojibox", "updateChannel": "nightly", "telemetryOptIn": false}}"#,
            400,
            "VALIDATION_FAILED",
            &[
                "config.setApp",
                "field `updateChannel`",
                "`nightly`",
                "`stable`",
                "`beta`",
            ],
        ),
        (
            r#"{"method": "logs.query", "params": {"service": "worker", "level": "verbose"}}"#,
            400,
            "VALIDATION_FAILED",
            &["field `level`", "`verbose`", "`info`"],
        ),
        (
            r#"{"method": "secrets.get", "params": {"key": "k", "scope": "global"}}"#,
            400,
            "VALIDATION_FAILED",
            &["field `scope`", "`global`", "`service`"],
        ),
        (
            r#"{"method": "config.setService", "params": {"id": "worker", "enabled": true, "ports": {"db": "x"}, "env": {}, "args": []}}"#,
            400,
            "VALIDATION_FAILED",
            &["field `ports.db`"],
        ),
    ];
    for (body, status, code, texts) in cases {
        let error = refused(&api.post(&[], body.as_bytes()), *status, code);
        for text in *texts {
            assert!(
                error.detail.contains(text),
                "{body}: `{text}` not in {error:?}"
            );
        }
    }
    // A well-formed request naming no installed service: an envelope from the supervisor.
    let answer = api.rpc("services.start", json!({"id": "nope"}));
    let error = error(&answer);
    assert_eq!(
        serde_json::to_value(error.code).unwrap(),
        "NOT_FOUND",
        "{error:?}"
    );
    assert!(
        error.detail.contains("`nope`") && error.detail.contains("web, worker"),
        "{error:?}"
    );
    nothing_started(&api);
    start_works(&api);
}

/// The request is an object (`{"method", "params"}`); an array holding the same two values is
/// not a request and must not be run as one.
#[test]
fn a_json_array_is_not_a_request_and_starts_nothing() {
    let api = Api::boot(&[]);
    for body in [
        r#"["services.start", {"id": "worker"}]"#,
        r#"["services.list"]"#,
    ] {
        let reply = api.post(&[], body.as_bytes());
        let error = refused(&reply, 400, "VALIDATION_FAILED");
        assert!(
            error.detail.contains("malformed request"),
            "{body}: {error:?}"
        );
    }
    nothing_started(&api);
    start_works(&api);
}
