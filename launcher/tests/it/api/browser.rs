//! Browser access, as an attacker with a web server of their own on this machine would try to
//! get it: the API token never becomes a cookie (cookies reach every port of a host), a login
//! code works once, a session is a header only the daemon's own page sends, and a real headless
//! Chromium that signed in sends nothing of it to another local server.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};

use super::contract::error;
use super::{Api, exchange, request};

/// `kojibox dashboard --print-url` for this daemon.
fn login_url(api: &Api) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_kojibox"))
        .arg("--home")
        .arg(api.env.home_dir())
        .args(["dashboard", "--print-url"])
        .env_remove("KOJIBOX_HOME")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let url = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let prefix = format!("http://127.0.0.1:{}/#login=", api.port);
    assert!(url.starts_with(&prefix), "{url}");
    assert!(
        !url.contains(&api.token),
        "the token is never in a URL: {url}"
    );
    url
}

fn code_of(url: &str) -> String {
    url.rsplit_once("#login=").unwrap().1.to_owned()
}

/// `POST /session` trading `code`, from the daemon's own origin.
fn trade(api: &Api, code: &str) -> super::Reply {
    let lines = vec![
        "POST /session HTTP/1.1".to_owned(),
        format!("Host: 127.0.0.1:{}", api.port),
        format!("Origin: http://127.0.0.1:{}", api.port),
        "Content-Type: application/json".into(),
    ];
    exchange(
        api.port,
        &request(&lines, format!(r#"{{"login": "{code}"}}"#).as_bytes()),
    )
}

fn list_with(api: &Api, authorization: &str) -> super::Reply {
    let lines = vec![
        "POST /rpc HTTP/1.1".to_owned(),
        format!("Host: 127.0.0.1:{}", api.port),
        authorization.to_owned(),
    ];
    exchange(
        api.port,
        &request(&lines, br#"{"method": "services.list", "params": {}}"#),
    )
}

#[test]
fn the_old_token_url_sets_no_cookie_and_a_cookie_with_the_token_grants_nothing() {
    let api = Api::boot(&[]);
    let host = format!("Host: 127.0.0.1:{}", api.port);
    let lines = vec![format!("GET /?token={} HTTP/1.1", api.token), host.clone()];
    let reply = exchange(api.port, &request(&lines, b""));
    assert_eq!(reply.status, 200, "the public page: {reply:?}");
    assert_eq!(reply.header("set-cookie"), None, "{reply:?}");
    assert!(!String::from_utf8_lossy(&reply.body).contains(&api.token));
    let reply = list_with(&api, &format!("Cookie: kojibox_token={}", api.token));
    assert_eq!(reply.status, 401, "{reply:?}");
}

#[test]
fn a_login_code_is_traded_once_for_a_revocable_session_that_rpc_and_events_accept() {
    let api = Api::boot(&[]);
    let url = login_url(&api);
    let code = code_of(&url);

    let wrong = trade(&api, &"0".repeat(64));
    assert_eq!(wrong.status, 401, "{wrong:?}");
    assert_eq!(
        serde_json::to_value(error(&wrong.json()).code).unwrap(),
        "UNAUTHORIZED"
    );
    // The API token is not a login code either.
    assert_eq!(trade(&api, &api.token).status, 401);

    let traded = trade(&api, &code);
    assert_eq!(traded.status, 200, "{traded:?}");
    assert_eq!(traded.header("cache-control").as_deref(), Some("no-store"));
    assert_eq!(
        traded.header("referrer-policy").as_deref(),
        Some("no-referrer")
    );
    assert_eq!(traded.header("set-cookie"), None);
    let session = traded.json()["session"].as_str().unwrap().to_owned();
    assert_ne!(session, api.token);
    assert_eq!(session.len(), 64);
    // Once only.
    assert_eq!(trade(&api, &code).status, 401, "a code works once");

    let auth = format!("Authorization: Session {session}");
    let reply = list_with(&api, &auth);
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(reply.json()["result"].as_array().map(Vec::len), Some(2));
    let stream = api.open_events(&[
        "GET /events HTTP/1.1".into(),
        format!("Host: 127.0.0.1:{}", api.port),
        auth.clone(),
    ]);
    assert_eq!(stream.status, 200, "{}", stream.head);
    drop(stream);
    // A session cannot mint logins (only the CLI's token can).
    let lines = vec![
        "POST /session/login HTTP/1.1".to_owned(),
        format!("Host: 127.0.0.1:{}", api.port),
        auth.clone(),
    ];
    assert_eq!(exchange(api.port, &request(&lines, b"")).status, 403);
    // A session is not a bearer token, nor a cookie.
    assert_eq!(
        list_with(&api, &format!("Authorization: Bearer {session}")).status,
        401
    );
    assert_eq!(
        list_with(&api, &format!("Cookie: session={session}")).status,
        401
    );
    // A foreign page cannot trade a code, even a valid one.
    let fresh = code_of(&login_url(&api));
    let lines = vec![
        "POST /session HTTP/1.1".to_owned(),
        format!("Host: 127.0.0.1:{}", api.port),
        "Origin: http://127.0.0.1:1".into(),
    ];
    let reply = exchange(
        api.port,
        &request(&lines, format!(r#"{{"login": "{fresh}"}}"#).as_bytes()),
    );
    assert_eq!(reply.status, 403, "{reply:?}");

    // Revoked: refused from then on.
    let lines = vec![
        "DELETE /session HTTP/1.1".to_owned(),
        format!("Host: 127.0.0.1:{}", api.port),
        auth.clone(),
    ];
    assert_eq!(exchange(api.port, &request(&lines, b"")).status, 204);
    assert_eq!(list_with(&api, &auth).status, 401);
}

/// What a local web server saw: the head of every request.
#[derive(Clone, Default)]
struct Seen(Arc<Mutex<Vec<String>>>);

impl Seen {
    /// Serves a tiny page on a new port; on `/set` it sets the cookie `probe=1` (persistent,
    /// so it outlives the browser process, as each `--dump-dom` run is one).
    fn serve(&self) -> u16 {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = self.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                let mut head = String::new();
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    head.push_str(&line);
                }
                let cookie = if head.starts_with("GET /set ") {
                    "Set-Cookie: probe=1; Path=/; Max-Age=600\r\n"
                } else {
                    ""
                };
                seen.0.lock().unwrap().push(head);
                let body = "<!doctype html><title>other</title><p>another local server</p>";
                let _ = write!(
                    stream,
                    "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n{cookie}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        port
    }

    fn heads(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
}

/// Debian's Chromium, headless: the DOM of `url` after its scripts ran, in the profile `profile`.
fn chromium(profile: &Path, url: &str) -> String {
    let out = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--disable-extensions",
            "--virtual-time-budget=5000",
            "--dump-dom",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(url)
        .output()
        .unwrap_or_else(|e| {
            panic!("this test needs Debian's chromium (ci/setup installs it): {e}")
        });
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn a_signed_in_chromium_sends_nothing_of_its_session_to_another_local_server() {
    let api = Api::boot(&[]);
    let profile = tempfile::tempdir().unwrap();
    let seen = Seen::default();
    let (a, b) = (seen.serve(), seen.serve());

    // The control: in this browser a cookie set by one local port does reach another port
    // (so no cookie of the daemon could be kept from them).
    chromium(profile.path(), &format!("http://127.0.0.1:{a}/set"));
    chromium(profile.path(), &format!("http://127.0.0.1:{b}/"));
    let heads = seen.heads();
    assert!(
        heads
            .iter()
            .any(|h| h.contains(&format!(":{b}\r\n")) && h.contains("probe=1")),
        "cookies cross ports: {heads:?}"
    );

    // Sign in as the user would: the page trades the code and lists the services.
    let url = login_url(&api);
    let dom = chromium(profile.path(), &url);
    assert!(dom.contains("Signed in: 2 service(s)."), "{dom}");
    assert!(dom.contains("worker: stopped"), "{dom}");
    assert!(
        !dom.contains(&code_of(&url)),
        "the code is not shown: {dom}"
    );
    assert_eq!(
        trade(&api, &code_of(&url)).status,
        401,
        "the page used the code up"
    );

    // The same browser profile then visits other local servers, on both loopback names.
    let before = seen.heads().len();
    chromium(profile.path(), &format!("http://127.0.0.1:{a}/"));
    chromium(profile.path(), &format!("http://localhost:{b}/"));
    let heads = seen.heads()[before..].to_vec();
    assert!(heads.len() >= 2, "{heads:?}");
    for head in &heads {
        let lower = head.to_ascii_lowercase();
        assert!(!head.contains(&api.token), "the API token leaked: {head}");
        assert!(!lower.contains("kojibox"), "{head}");
        assert!(!lower.contains("authorization:"), "{head}");
        assert!(!lower.contains("#login"), "{head}");
    }

    // Nothing of the daemon's is in the browser's cookie store either.
    if let Ok(jar) = std::fs::read(profile.path().join("Default/Cookies")) {
        let jar = String::from_utf8_lossy(&jar);
        assert!(
            !jar.contains(&api.token) && !jar.contains("kojibox"),
            "cookie jar"
        );
    }

    // A page opened without a login is told what to do.
    let fresh = tempfile::tempdir().unwrap();
    let dom = chromium(fresh.path(), &format!("http://127.0.0.1:{}/", api.port));
    assert!(dom.contains("kojibox dashboard"), "{dom}");
}
