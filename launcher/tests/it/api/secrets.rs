//! Secrets as a user meets them: `kojibox secrets set` (value on stdin, never argv), a service
//! given `${secret.KEY}` in its env, the daemon restarted; and the canary: the value reaches the
//! service's environment and `secrets.get`, and nothing else (no file under the home, no other
//! API answer, no event, no daemon output). A passphrase-protected store and unknown secrets.

use kojibox_manifests::api::methods;
use kojibox_manifests::model::ServiceStatus;
use rustix::process::Signal;
use serde_json::{Value, json};

use super::contract::error;
use super::{Api, WAIT, eventually, kojibox_with_input, signal};
use crate::support::{Fixture, stderr, stdout};

/// Prints its secret (as a careless service would) and keeps running.
fn canary() -> Fixture {
    Fixture::new("canary", r#"echo "my token is $API_TOKEN"; exec sleep 300"#)
}

/// The environment of a live process, as `KEY=VALUE` strings.
fn environ(pid: u32) -> Vec<String> {
    std::fs::read(format!("/proc/{pid}/environ"))
        .unwrap()
        .split(|b| *b == 0)
        .map(|e| String::from_utf8_lossy(e).into_owned())
        .collect()
}

/// Every file under `dir` that contains `needle`.
fn files_containing(dir: &std::path::Path, needle: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let meta = std::fs::symlink_metadata(&path).unwrap();
        if meta.is_dir() {
            out.extend(files_containing(&path, needle));
        } else if meta.is_file()
            && std::fs::read(&path)
                .unwrap()
                .windows(needle.len())
                .any(|w| w == needle)
        {
            out.push(path.display().to_string());
        }
    }
    out
}

#[test]
fn a_secret_reaches_its_service_and_secrets_get_only_and_survives_a_restart() {
    let mut api = Api::home(&[canary()]);
    let value = format!("canary-{:016x}", rand_u64());
    // Set before any daemon runs: on the files directly.
    let out = kojibox_with_input(
        &api,
        &["secrets", "set", "api-token", "--scope", "service"],
        &format!("{value}\n"),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!stdout(&out).contains(&value) && !stderr(&out).contains(&value));
    api.serve(&[]);
    let mut events = api.events(None);

    let config = json!({"id": "canary", "enabled": true, "ports": {}, "env": {"API_TOKEN": "${secret.api-token}"}, "args": []});
    assert_eq!(api.rpc("config.setService", config)["result"], "ok");
    let mut answers: Vec<Value> = Vec::new();
    answers.push(api.rpc("services.start", json!({"id": "canary"})));
    let running = api.wait_for("canary", ServiceStatus::Running);
    let pid = running.pid.unwrap();
    assert!(
        environ(pid).contains(&format!("API_TOKEN={value}")),
        "the service got the value"
    );
    let logs = || api.call::<methods::ServicesLogs>(json!({"id": "canary"}));
    assert!(
        eventually(WAIT, || logs()
            .iter()
            .any(|e| e.message == "my token is [redacted]")),
        "the service printed its secret and the log redacted it: {:?}",
        logs()
    );
    assert_eq!(
        api.call::<methods::SecretsGet>(json!({"key": "api-token", "scope": "service"})),
        value
    );

    // Every other answer that could carry it.
    for (method, params) in [
        ("services.describe", json!({"id": "canary"})),
        ("services.logs", json!({"id": "canary"})),
        ("services.list", json!({})),
        ("config.getService", json!({"id": "canary"})),
        ("services.health", json!({"id": "canary"})),
        ("secrets.get", json!({"key": "api-token", "scope": "app"})),
        (
            "secrets.get",
            json!({"key": "api-token", "scope": "project"}),
        ),
    ] {
        answers.push(api.rpc(method, params));
    }
    let describe = &answers[1]["result"];
    assert_eq!(describe["env"]["API_TOKEN"], "${secret.api-token}");

    // The daemon restarts: the secret is still there, and used again.
    signal(api.pid, Signal::TERM);
    let _ = api.child().wait();
    api.reaped();
    let mut seen = Vec::new();
    while let Ok(Some(event)) = events.read_event() {
        seen.push(event);
    }
    assert!(
        seen.iter().any(|e| e.is_state("canary", "running")),
        "{seen:?}"
    );
    api.serve(&[]);
    answers.push(api.rpc("services.start", json!({"id": "canary"})));
    let again = api.wait_for("canary", ServiceStatus::Running);
    assert!(environ(again.pid.unwrap()).contains(&format!("API_TOKEN={value}")));
    assert_eq!(
        api.call::<methods::SecretsGet>(json!({"key": "api-token", "scope": "service"})),
        value
    );
    api.call::<methods::ServicesStop>(json!({"id": "canary"}));
    api.wait_for("canary", ServiceStatus::Stopped);

    for answer in &answers {
        assert!(!answer.to_string().contains(&value), "{answer}");
    }
    for event in &seen {
        assert!(!event.data.to_string().contains(&value), "{event:?}");
    }
    assert!(!api.stderr().contains(&value), "daemon output");
    assert_eq!(
        files_containing(&api.env.home_dir(), value.as_bytes()),
        Vec::<String>::new(),
        "no file under the home holds the value"
    );
}

#[test]
fn an_unknown_secret_is_not_found_and_the_service_does_not_start() {
    let api = Api::boot(&[canary()]);
    let config = json!({"id": "canary", "enabled": true, "ports": {}, "env": {"API_TOKEN": "${secret.missing}"}, "args": []});
    assert_eq!(api.rpc("config.setService", config)["result"], "ok");
    let e = error(&api.rpc("services.start", json!({"id": "canary"})));
    assert_eq!(serde_json::to_value(e.code).unwrap(), "NOT_FOUND", "{e:?}");
    assert!(e.detail.contains("secret `missing`"), "{e:?}");
    assert_eq!(api.state("canary").state, ServiceStatus::Error);
    assert!(api.processes("canary").is_empty());

    let e = error(&api.rpc("secrets.get", json!({"key": "missing", "scope": "app"})));
    assert_eq!(serde_json::to_value(e.code).unwrap(), "NOT_FOUND");
    for params in [
        json!({"key": "../x", "scope": "app", "value": "sekrit-731962"}),
        json!({"key": "x", "scope": "app", "value": 731962}),
    ] {
        let reply = api.post(
            &[],
            json!({"method": "secrets.set", "params": params})
                .to_string()
                .as_bytes(),
        );
        let e = error(&reply.json());
        assert_eq!(serde_json::to_value(e.code).unwrap(), "VALIDATION_FAILED");
        assert!(
            !e.detail.contains("731962"),
            "the value is never echoed: {e:?}"
        );
    }
}

#[test]
fn a_passphrase_protected_store_needs_the_passphrase_to_start_a_service_using_it() {
    let mut api = Api::home(&[canary()]);
    let value = format!("canary-{:016x}", rand_u64());
    let out = kojibox_with_input(&api, &["secrets", "set", "api-token"], &value);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = kojibox_with_input(
        &api,
        &["secrets", "passphrase", "--stdin"],
        "correct horse\n",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!api.env.at("app/secrets/key").exists(), "no plain key left");
    let config = json!({"id": "canary", "enabled": true, "ports": {}, "env": {"API_TOKEN": "${secret.app.api-token}"}, "args": []});

    // Without it: the daemon says so, and the service cannot start.
    api.serve(&[]);
    assert!(
        eventually(WAIT, || api.stderr().contains("protected by a passphrase")),
        "{}",
        api.stderr()
    );
    assert_eq!(api.rpc("config.setService", config)["result"], "ok");
    let e = error(&api.rpc("services.start", json!({"id": "canary"})));
    assert_eq!(
        serde_json::to_value(e.code).unwrap(),
        "PERMISSION_DENIED",
        "{e:?}"
    );
    signal(api.pid, Signal::TERM);
    let _ = api.child().wait();
    api.reaped();

    // A wrong one is refused at start; the right one opens the store.
    let out = kojibox_with_input(
        &api,
        &["serve", "--listen", "127.0.0.1:0", "--passphrase-stdin"],
        "wrong\n",
    );
    assert!(!out.status.success());
    assert!(stderr(&out).contains("passphrase"), "{}", stderr(&out));
    assert!(
        !api.env.at("app/state/api.json").exists(),
        "it never served"
    );
    api.serve_with(&["--passphrase-stdin"], Some("correct horse\n"), &[]);
    api.call::<methods::ServicesStart>(json!({"id": "canary"}));
    let running = api.wait_for("canary", ServiceStatus::Running);
    assert!(environ(running.pid.unwrap()).contains(&format!("API_TOKEN={value}")));

    // The CLI needs it too when no daemon runs.
    signal(api.pid, Signal::TERM);
    let _ = api.child().wait();
    api.reaped();
    let out = kojibox_with_input(&api, &["secrets", "get", "api-token"], "");
    assert!(!out.status.success());
    assert!(stderr(&out).contains("passphrase"), "{}", stderr(&out));
    assert!(!stdout(&out).contains(&value));
}

/// `secrets.remove` and `kojibox secrets remove`, on the files and through the daemon: the
/// secret is gone from `secrets.get`, no longer resolves for a service, other secrets stay, and
/// an unknown one is `NOT_FOUND`.
#[test]
fn a_removed_secret_is_gone_and_no_longer_resolves_with_or_without_a_daemon() {
    let mut api = Api::home(&[canary()]);
    let value = format!("canary-{:016x}", rand_u64());
    for (key, scope) in [
        ("api-token", "service"),
        ("api-token", "app"),
        ("other", "app"),
    ] {
        let out = kojibox_with_input(&api, &["secrets", "set", key, "--scope", scope], &value);
        assert!(out.status.success(), "{}", stderr(&out));
    }

    // No daemon: on the files.
    let out = kojibox_with_input(
        &api,
        &["secrets", "remove", "api-token", "--scope", "service"],
        "",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("removed secret api-token (scope service) from")
            && stdout(&out).contains("(no daemon runs)"),
        "{}",
        stdout(&out)
    );
    let out = kojibox_with_input(
        &api,
        &["secrets", "get", "api-token", "--scope", "service"],
        "",
    );
    assert!(!out.status.success(), "the removed secret is gone");
    assert!(!stdout(&out).contains(&value));
    let out = kojibox_with_input(
        &api,
        &["secrets", "remove", "api-token", "--scope", "service"],
        "",
    );
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("no secret `api-token` in scope service")
            && stderr(&out).contains("nothing removed"),
        "{}",
        stderr(&out)
    );
    let out = kojibox_with_input(&api, &["secrets", "get", "api-token"], "");
    assert!(
        out.status.success(),
        "the app scope's is still there: {}",
        stderr(&out)
    );
    assert_eq!(stdout(&out).trim_end(), value);

    // Through the daemon: the API, then a service that names it.
    api.serve(&[]);
    let config = json!({"id": "canary", "enabled": true, "ports": {}, "env": {"API_TOKEN": "${secret.api-token}"}, "args": []});
    assert_eq!(api.rpc("config.setService", config)["result"], "ok");
    let params = json!({"key": "api-token", "scope": "app"});
    assert_eq!(api.rpc("secrets.remove", params.clone())["result"], "ok");
    let e = error(&api.rpc("secrets.get", params.clone()));
    assert_eq!(serde_json::to_value(e.code).unwrap(), "NOT_FOUND", "{e:?}");
    let e = error(&api.rpc("services.start", json!({"id": "canary"})));
    assert_eq!(serde_json::to_value(e.code).unwrap(), "NOT_FOUND", "{e:?}");
    assert!(
        e.detail.contains("secret `api-token`"),
        "it no longer resolves: {e:?}"
    );
    assert!(api.processes("canary").is_empty());
    let e = error(&api.rpc("secrets.remove", params));
    assert_eq!(serde_json::to_value(e.code).unwrap(), "NOT_FOUND", "{e:?}");
    assert_eq!(serde_json::to_value(e.source).unwrap(), "secrets");
    assert!(
        e.detail.contains("no secret `api-token` in scope `app`"),
        "{e:?}"
    );
    let e = error(&api.rpc("secrets.remove", json!({"key": "../x", "scope": "app"})));
    assert_eq!(
        serde_json::to_value(e.code).unwrap(),
        "VALIDATION_FAILED",
        "{e:?}"
    );

    let out = kojibox_with_input(&api, &["secrets", "remove", "other"], "");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains(&format!(
            "removed secret other (scope app) (daemon pid {})",
            api.pid
        )),
        "{}",
        stdout(&out)
    );
    let e = error(&api.rpc("secrets.get", json!({"key": "other", "scope": "app"})));
    assert_eq!(serde_json::to_value(e.code).unwrap(), "NOT_FOUND", "{e:?}");
}

fn rand_u64() -> u64 {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).unwrap();
    u64::from_le_bytes(bytes)
}
