//! Strict HTTP, as an attacker who crafts requests by hand would probe it: a second `Host` or
//! `Origin`, an absolute-form target naming another authority, duplicate JSON keys, unknown
//! routes and methods, and a `--listen` address the Host check would then refuse. Each refusal
//! carries the envelope and starts nothing; the properly sent request then works.

use std::process::Command;

use super::contract::error;
use super::{Api, exchange, request};

const START: &str = r#"{"method": "services.start", "params": {"id": "worker"}}"#;

fn stopped(api: &Api) -> bool {
    api.list()
        .iter()
        .all(|s| s.state == kojibox_manifests::model::ServiceStatus::Stopped)
}

fn envelope_code(reply: &super::Reply) -> String {
    assert_eq!(
        reply.header("content-type").as_deref(),
        Some("application/json"),
        "{reply:?}"
    );
    serde_json::to_value(error(&reply.json()).code)
        .unwrap()
        .as_str()
        .unwrap()
        .to_owned()
}

#[test]
fn two_hosts_two_origins_or_a_mismatched_absolute_target_are_400() {
    let api = Api::boot(&[]);
    let port = api.port;
    let token = format!("Authorization: Bearer {}", api.token);
    let host = format!("Host: 127.0.0.1:{port}");
    let ours = format!("Origin: http://127.0.0.1:{port}");
    let cases: Vec<(&str, Vec<String>)> = vec![
        (
            "two Host headers (ours first)",
            vec![
                "POST /rpc HTTP/1.1".into(),
                host.clone(),
                "Host: evil.example.com".into(),
                token.clone(),
            ],
        ),
        (
            "two Host headers, both ours",
            vec![
                "POST /rpc HTTP/1.1".into(),
                host.clone(),
                host.clone(),
                token.clone(),
            ],
        ),
        (
            "two Origin headers",
            vec![
                "POST /rpc HTTP/1.1".into(),
                host.clone(),
                ours.clone(),
                "Origin: http://evil.example.com".into(),
                token.clone(),
            ],
        ),
        (
            "an absolute target for another authority",
            vec![
                "POST http://evil.example.com/rpc HTTP/1.1".into(),
                host.clone(),
                token.clone(),
            ],
        ),
        (
            "an absolute target for another port",
            vec![
                format!(
                    "POST http://127.0.0.1:{}/rpc HTTP/1.1",
                    port.wrapping_add(1)
                ),
                host.clone(),
                token.clone(),
            ],
        ),
    ];
    for (what, lines) in &cases {
        let reply = exchange(port, &request(lines, START.as_bytes()));
        assert_eq!(reply.status, 400, "{what}: {reply:?}");
        assert_eq!(envelope_code(&reply), "VALIDATION_FAILED", "{what}");
    }
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert!(stopped(&api), "{:?}", api.list());
    // An absolute target that agrees with Host is fine.
    let lines = vec![
        format!("POST http://127.0.0.1:{port}/rpc HTTP/1.1"),
        host,
        token,
    ];
    let reply = exchange(
        port,
        &request(&lines, br#"{"method": "services.list", "params": {}}"#),
    );
    assert_eq!(reply.status, 200, "{reply:?}");
}

#[test]
fn a_body_with_a_key_twice_is_refused_and_starts_nothing() {
    let api = Api::boot(&[]);
    for body in [
        // The last `id` would win in a plain parser: `web` would start.
        r#"{"method": "services.start", "params": {"id": "worker", "id": "web"}}"#,
        r#"{"method": "services.list", "method": "services.start", "params": {"id": "web"}}"#,
        r#"{"method": "config.setApp", "params": {"logLevel": "info", "logLevel": "debug"}}"#,
    ] {
        let reply = api.post(&[], body.as_bytes());
        assert_eq!(reply.status, 400, "{body}: {reply:?}");
        assert_eq!(envelope_code(&reply), "VALIDATION_FAILED");
        let detail = error(&reply.json()).detail;
        assert!(detail.contains("duplicate key"), "{body}: {detail}");
    }
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert!(stopped(&api), "{:?}", api.list());
    let reply = api.post(&[], START.as_bytes());
    assert_eq!(reply.status, 200, "{reply:?}");
}

#[test]
fn unknown_routes_and_methods_answer_with_the_envelope() {
    let api = Api::boot(&[]);
    let auth = api.auth();
    for (line, status, code) in [
        ("GET /nope HTTP/1.1", 404, "NOT_FOUND"),
        ("GET /rpc/../etc/passwd HTTP/1.1", 404, "NOT_FOUND"),
        ("GET /rpc HTTP/1.1", 405, "METHOD_NOT_FOUND"),
        ("PUT /events HTTP/1.1", 405, "METHOD_NOT_FOUND"),
    ] {
        let mut lines = vec![line.to_owned()];
        lines.extend(auth.iter().cloned());
        let reply = exchange(api.port, &request(&lines, b""));
        assert_eq!(reply.status, status, "{line}: {reply:?}");
        assert_eq!(envelope_code(&reply), code, "{line}");
    }
}

#[test]
fn every_answer_carries_the_security_headers() {
    let api = Api::boot(&[]);
    let host = format!("Host: 127.0.0.1:{}", api.port);
    let page = exchange(
        api.port,
        &request(&["GET / HTTP/1.1".into(), host.clone()], b""),
    );
    assert_eq!(page.status, 200, "{page:?}");
    assert!(
        page.header("content-type")
            .is_some_and(|t| t.starts_with("text/html")),
        "{page:?}"
    );
    let body = String::from_utf8_lossy(&page.body);
    assert!(
        !body.contains("<script>") && body.contains(r#"<script src="/app.js""#),
        "no inline script: {body}"
    );
    let refused = exchange(
        api.port,
        &request(&["POST /rpc HTTP/1.1".into(), host.clone()], b"{}"),
    );
    assert_eq!(refused.status, 401);
    let script = exchange(
        api.port,
        &request(&["GET /app.js HTTP/1.1".into(), host], b""),
    );
    assert_eq!(script.status, 200);
    for reply in [&page, &refused, &script] {
        let csp = reply.header("content-security-policy").unwrap_or_default();
        for part in [
            "default-src 'none'",
            "script-src 'self'",
            "connect-src 'self'",
            "frame-ancestors 'none'",
        ] {
            assert!(csp.contains(part), "{part} in {csp:?}");
        }
        assert!(!csp.contains("unsafe-inline"), "{csp}");
        assert_eq!(reply.header("x-frame-options").as_deref(), Some("DENY"));
        assert_eq!(
            reply.header("x-content-type-options").as_deref(),
            Some("nosniff")
        );
        assert_eq!(
            reply.header("referrer-policy").as_deref(),
            Some("no-referrer")
        );
    }
}

#[test]
fn only_127_0_0_1_and_the_ipv6_loopback_may_be_listened_on() {
    let api = Api::home(&[]);
    for listen in [
        "127.0.0.2:0",
        "127.1.2.3:0",
        "0.0.0.0:0",
        "[::]:0",
        "localhost:0",
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_kojibox"))
            .arg("--home")
            .arg(api.env.home_dir())
            .args(["serve", "--listen", listen])
            .env_remove("KOJIBOX_HOME")
            .output()
            .unwrap();
        assert!(!out.status.success(), "{listen} was accepted");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("Invalid listen address"),
            "{listen}: {stderr}"
        );
        assert!(
            !api.env.at("app/state/api.json").exists(),
            "{listen}: api.json written"
        );
    }
}
