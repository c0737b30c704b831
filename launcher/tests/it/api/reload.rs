//! Changes to the installed runtime take effect without a daemon restart: `installer.start`
//! and a `kojibox install` run beside the daemon supervise the services a bundle adds, stop and
//! drop those it no longer has, and tell clients with `runtime:updated`.

use std::time::Duration;

use kojibox_manifests::model::ServiceStatus;
use serde_json::json;

use super::{Api, WAIT, eventually, fixtures};
use crate::support::{Fixture, host, text};

/// Version 2.0.0 of the fixture bundle: `web` as before, `worker` gone, `extra` new.
fn second_bundle(api: &Api) -> std::path::PathBuf {
    let web = fixtures(api.web_port).remove(0);
    let extra = Fixture::new("extra", r#"echo "extra up"; exec sleep 300"#);
    api.env
        .fixture_bundle("v2", "2.0.0", "1.0", &host(), &[web, extra])
}

fn ids(api: &Api) -> Vec<String> {
    let mut ids: Vec<String> = api.list().into_iter().map(|s| s.id).collect();
    ids.sort();
    ids
}

#[test]
fn installer_start_supervises_added_services_and_drops_removed_ones_at_once() {
    let api = Api::boot(&[]);
    api.rpc("services.start", json!({"id": "worker"}));
    api.wait_for("worker", ServiceStatus::Running);
    let worker = api.processes("worker");
    assert!(!worker.is_empty());
    let mut events = api.events(None);
    let bundle = second_bundle(&api);
    let answer = api.rpc("installer.start", json!({"path": bundle}));
    assert!(answer.get("error").is_none(), "{answer}");
    // Already when the call answers: no restart, no polling.
    assert_eq!(ids(&api), ["extra", "web"]);
    assert_eq!(api.state("extra").state, ServiceStatus::Stopped);
    let gone = api.rpc("services.start", json!({"id": "worker"}));
    assert_eq!(gone["error"]["code"], "NOT_FOUND", "{gone}");
    assert!(
        worker.iter().all(|pid| !kojibox_proc::is_alive(*pid)),
        "the dropped worker still runs: {worker:?}"
    );
    events.until("runtime:updated of 2.0.0", |e| {
        e.name == "runtime:updated" && e.data["version"] == "2.0.0"
    });
    // The new service starts like any other.
    api.rpc("services.start", json!({"id": "extra"}));
    api.wait_for("extra", ServiceStatus::Running);
}

#[test]
fn a_cli_install_beside_the_daemon_is_followed_within_seconds() {
    let api = Api::boot(&[]);
    let mut events = api.events(None);
    let bundle = second_bundle(&api);
    let out = api.env.cli_install(&bundle, None, &[]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        eventually(WAIT, || ids(&api) == ["extra", "web"]),
        "services after the install: {:?}",
        ids(&api)
    );
    events.until("runtime:updated of 2.0.0", |e| {
        e.name == "runtime:updated" && e.data["version"] == "2.0.0"
    });
    let said = || api.stderr();
    assert!(
        eventually(Duration::from_secs(5), || said().contains(
            "note: the installed runtime changed: now supervising extra; stopped and dropped \
             worker (no longer installed)"
        )),
        "{}",
        said()
    );
}
