//! Signed updates end to end: a repository written by `kojibox-bundle publish` (the library),
//! the real daemon applying updates to a home whose `app` service runs and keeps data, every
//! refusal leaving the installed version, the running service and its data as they were, an
//! update that fails its health check rolling back by itself, the watermark, `rollback`, and
//! `kill -9` at several points of an apply.
//!
//! `app` appends its version to `$DATA/runs` each time it starts, so the tests read from the
//! service itself which version ran, and that its data survived.

use std::path::{Path, PathBuf};
use std::time::Duration;

use kojibox_manifests::channel::{ChannelIndex, SignedChannel};
use kojibox_manifests::model::ServiceStatus;
use kojibox_signing::SecretKey;
use rustix::process::Signal;
use serde_json::{Value, json};
use sha2::Digest;

use crate::api::contract::error;
use crate::api::{Api, WAIT, eventually, fixtures, signal};
use crate::support::{Fixture, foreign, host, key, stderr};

/// `app` at `version`: records the start and runs (or, `broken`, exits at once).
fn app(version: &str, broken: bool) -> Fixture {
    let tail = if broken { "exit 1" } else { "exec sleep 300" };
    Fixture::new("app", &format!(r#"echo {version} >> "$DATA/runs"; {tail}"#))
}

/// A home with bundle 1.0.0 (web, worker, app 1.0) installed and `repo/` as its update source.
fn home() -> Api {
    let api = Api::home(&[app("1.0", false)]);
    std::fs::create_dir_all(api.env.at("app/config")).unwrap();
    std::fs::write(
        api.env.at("app/config/settings.json"),
        json!({"updateSource": repo(&api)}).to_string(),
    )
    .unwrap();
    api
}

fn repo(api: &Api) -> PathBuf {
    api.env.root().join("repo")
}

/// Bundle `version` (its services at `service_version`) for `target`, signed by key 1.
fn bundle(api: &Api, version: &str, service_version: &str, target: &str, app: Fixture) -> PathBuf {
    let mut all = fixtures(api.web_port);
    all.push(app);
    api.env.fixture_bundle(
        &format!("b{version}-{target}"),
        version,
        service_version,
        target,
        &all,
    )
}

/// Publishes `bundle` on the stable channel with the real publisher (key 1).
fn publish(api: &Api, bundle: &Path, force: bool) -> ChannelIndex {
    bundler::publish::publish(
        &bundler::publish::Publish {
            bundle,
            repo: &repo(api),
            channel: "stable",
            expires_in: 3600,
            force,
        },
        &key(1),
    )
    .unwrap()
    .index
}

/// Writes `channels/stable.json` holding `index`, signed by `key`.
fn write_channel(api: &Api, index: &ChannelIndex, key: &SecretKey) {
    let file = SignedChannel {
        index: index.clone(),
        signature: key.sign(&index.message()).to_string(),
    };
    std::fs::write(
        repo(api).join("channels/stable.json"),
        serde_json::to_vec_pretty(&file).unwrap(),
    )
    .unwrap();
}

/// Puts a bundle into the repository as `bundles/<name>`; its index entry (sha256, size).
fn place(api: &Api, bundle: &Path, name: &str) -> (String, u64) {
    let bytes = std::fs::read(bundle).unwrap();
    let dest = repo(api).join("bundles").join(name);
    std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
    std::fs::write(&dest, &bytes).unwrap();
    (
        hex::encode(sha2::Sha256::digest(&bytes)),
        bytes.len() as u64,
    )
}

fn installed_version(api: &Api) -> String {
    api.env.manifest().version
}

fn runs(api: &Api) -> String {
    std::fs::read_to_string(api.env.at("runtime/data/app/runs")).unwrap_or_default()
}

fn code(answer: &Value) -> String {
    serde_json::to_value(error(answer).code)
        .unwrap()
        .as_str()
        .unwrap()
        .to_owned()
}

fn apply(api: &Api, version: &str) -> Value {
    api.rpc("updater.apply", json!({ "version": version }))
}

#[test]
fn a_good_update_brings_the_running_service_back_on_the_new_version_with_its_data() {
    let mut api = home();
    api.serve(&[]);
    api.rpc("services.start", json!({"id": "app"}));
    let before = api.wait_for("app", ServiceStatus::Running).pid;
    assert!(
        eventually(WAIT, || runs(&api) == "1.0\n"),
        "{:?}",
        runs(&api)
    );
    let mut events = api.events(None);

    let v110 = bundle(&api, "1.1.0", "1.1", &host(), app("1.1", false));
    publish(&api, &v110, false);
    let check = api.rpc("updater.check", json!({}));
    assert_eq!(
        check["result"],
        json!({"available": true, "version": "1.1.0"})
    );
    assert_eq!(apply(&api, "1.1.0")["result"], "ok", "{}", api.stderr());

    assert_eq!(installed_version(&api), "1.1.0");
    let after = api.wait_for("app", ServiceStatus::Running);
    assert_ne!(after.pid, before, "restarted");
    assert_eq!(
        runs(&api),
        "1.0\n1.1\n",
        "the new version ran, the data stayed"
    );
    let describe = api.rpc("services.describe", json!({"id": "app"}));
    assert!(
        describe["result"]["binary"]
            .as_str()
            .unwrap()
            .contains("/app/1.1/"),
        "{describe}"
    );
    assert_eq!(
        api.state("worker").state,
        ServiceStatus::Stopped,
        "a stopped service stays stopped"
    );
    let mut phases = Vec::new();
    let mut updated = None;
    events.until("runtime:updated", |e| {
        match e.name.as_str() {
            "update:available" => assert_eq!(e.data, json!({"version": "1.1.0"})),
            "update:progress" => phases.push(e.data["phase"].as_str().unwrap().to_owned()),
            "runtime:updated" => updated = Some(e.data.clone()),
            _ => {}
        }
        updated.is_some()
    });
    phases.dedup();
    assert_eq!(
        phases,
        [
            "check", "download", "verify", "install", "restart", "health", "done"
        ]
    );
    assert_eq!(updated.unwrap()["version"], "1.1.0");
    let check = api.rpc("updater.check", json!({}));
    assert_eq!(
        check["result"],
        json!({"available": false, "version": "1.1.0"})
    );
    // No journal, no downloaded bundle left behind.
    assert!(!api.env.at("app/state/update/journal.json").exists());
    assert!(!api.env.at("app/cache/updates/kojibox-1.1.0.kbx").exists());

    // Rollback (CLI, through the daemon), then the watermark refuses anything below 1.1.0.
    let out = api.env.kojibox(&["update", "rollback"], None);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(installed_version(&api), "1.0.0");
    assert!(
        eventually(WAIT, || runs(&api) == "1.0\n1.1\n1.0\n"),
        "{:?}",
        runs(&api)
    );
    let v105 = bundle(&api, "1.0.5", "1.0.5", &host(), app("1.0.5", false));
    publish(&api, &v105, true);
    let check = api.rpc("updater.check", json!({}));
    assert_eq!(check["result"]["available"], true, "1.0.5 > 1.0.0");
    let refused = apply(&api, "1.0.5");
    assert_eq!(code(&refused), "UPDATE_ROLLBACK_REJECTED", "{refused}");
    assert!(
        error(&refused)
            .detail
            .contains("1.1.0, the highest version ever installed"),
        "{refused}"
    );
    assert_eq!(installed_version(&api), "1.0.0");
}

#[test]
fn an_update_whose_service_fails_its_health_check_rolls_back_by_itself() {
    let mut api = home();
    api.serve(&[]);
    api.rpc("services.start", json!({"id": "app"}));
    api.wait_for("app", ServiceStatus::Running);
    let broken = bundle(&api, "1.1.0", "1.1", &host(), app("1.1", true));
    publish(&api, &broken, false);

    let answer = apply(&api, "1.1.0");
    assert_eq!(code(&answer), "UPDATE_FAILED", "{answer}");
    let detail = error(&answer).detail;
    assert!(
        detail.contains("app did not become healthy")
            && detail.contains("rolled back: 1.0.0 is running again"),
        "{detail}"
    );
    assert_eq!(installed_version(&api), "1.0.0");
    let state = api.wait_for("app", ServiceStatus::Running);
    assert!(state.pid.is_some());
    assert_eq!(runs(&api), "1.0\n1.1\n1.0\n", "old, broken new, old again");
    let mark: Value =
        serde_json::from_slice(&std::fs::read(api.env.at("app/state/versions.json")).unwrap())
            .unwrap();
    assert_eq!(
        mark["highestInstalled"], "1.0.0",
        "a failed update raises nothing"
    );
    assert!(!api.env.at("app/state/update/journal.json").exists());
}

#[test]
fn every_bad_update_is_refused_and_leaves_the_version_the_service_and_its_data_alone() {
    let mut api = home();
    api.serve(&[]);
    api.rpc("services.start", json!({"id": "app"}));
    let pid = api.wait_for("app", ServiceStatus::Running).pid;
    assert!(eventually(WAIT, || runs(&api) == "1.0\n"));
    let good = bundle(&api, "1.1.0", "1.1", &host(), app("1.1", false));
    let published = publish(&api, &good, false);
    let stable = repo(&api).join("channels/stable.json");
    let bundle_file = repo(&api).join(&published.bundle);
    let good_bytes = std::fs::read(&bundle_file).unwrap();

    type Setup<'a> = Box<dyn Fn() + 'a>;
    let cases: Vec<(&str, Setup<'_>, &str, &str)> = vec![
        (
            "a bit flipped in the bundle",
            Box::new(|| {
                let mut bytes = good_bytes.clone();
                let at = bytes.len() / 2;
                bytes[at] ^= 0x10;
                std::fs::write(&bundle_file, bytes).unwrap();
            }),
            "UPDATE_SIGNATURE_INVALID",
            "Signature verification failed for version 1.1.0: the bundle's sha256",
        ),
        (
            "an index signed by an unknown key",
            Box::new(|| write_channel(&api, &published, &key(9))),
            "UPDATE_SIGNATURE_INVALID",
            "Signature verification failed for the stable channel index",
        ),
        (
            "an index whose version was edited after signing",
            Box::new(|| {
                let text = std::fs::read_to_string(&stable).unwrap();
                std::fs::write(&stable, text.replace("\"1.1.0\"", "\"1.2.0\"")).unwrap();
            }),
            "UPDATE_SIGNATURE_INVALID",
            "Signature verification failed for the stable channel index (version 1.2.0)",
        ),
        (
            "an index whose sha256 was edited after signing",
            Box::new(|| {
                let text = std::fs::read_to_string(&stable).unwrap();
                std::fs::write(&stable, text.replace(&published.sha256, &"0".repeat(64))).unwrap();
            }),
            "UPDATE_SIGNATURE_INVALID",
            "Signature verification failed for the stable channel index",
        ),
        (
            "an expired index",
            Box::new(|| {
                let mut index = published.clone();
                index.expires_at = "2020-01-01T00:00:00Z".into();
                write_channel(&api, &index, &key(1));
            }),
            "UPDATE_FAILED",
            "expired at 2020-01-01T00:00:00Z",
        ),
        (
            "an index signed for another channel",
            Box::new(|| {
                let mut index = published.clone();
                index.channel = "beta".into();
                write_channel(&api, &index, &key(1));
            }),
            "UPDATE_FAILED",
            "signed for the beta channel, not stable",
        ),
        (
            "a bundle for another target",
            Box::new(|| {
                let other = bundle(&api, "1.1.0", "1.1", &foreign(), app("1.1", false));
                let (sha256, size) = place(&api, &other, "other.kbx");
                let mut index = published.clone();
                (index.bundle, index.sha256, index.size) =
                    ("bundles/other.kbx".into(), sha256, size);
                write_channel(&api, &index, &key(1));
            }),
            "VALIDATION_FAILED",
            "has no payload for",
        ),
        (
            "a bundle larger than its index declares",
            Box::new(|| {
                let mut index = published.clone();
                index.size -= 1;
                write_channel(&api, &index, &key(1));
            }),
            "UPDATE_SIGNATURE_INVALID",
            "larger than the",
        ),
        (
            "an index larger than 64 KiB",
            Box::new(|| {
                let text = std::fs::read_to_string(&stable).unwrap();
                std::fs::write(&stable, format!("{text}{}", " ".repeat(70 << 10))).unwrap();
            }),
            "UPDATE_FAILED",
            "larger than 64 KiB",
        ),
        (
            "a bundle signed by an unknown key (its index by the pinned one)",
            Box::new(|| {
                let mut all = fixtures(api.web_port);
                all.push(app("1.1", false));
                let other =
                    api.env
                        .fixture_bundle_signed("unknown", "1.1.0", "1.1", &host(), &all, 9);
                let (sha256, size) = place(&api, &other, "unknown.kbx");
                let mut index = published.clone();
                (index.bundle, index.sha256, index.size) =
                    ("bundles/unknown.kbx".into(), sha256, size);
                write_channel(&api, &index, &key(1));
            }),
            "UPDATE_SIGNATURE_INVALID",
            "Signature verification failed for version 1.1.0",
        ),
    ];
    let payloads = crate::support::subtree(
        &crate::support::snapshot(&api.env.home_dir()),
        "runtime/bin",
    );
    for (what, setup, wanted, detail) in cases {
        publish(&api, &good, true);
        std::fs::write(&bundle_file, &good_bytes).unwrap();
        setup();
        let answer = apply(&api, "1.1.0");
        assert_eq!(code(&answer), wanted, "{what}: {answer}");
        assert!(
            error(&answer).detail.contains(detail),
            "{what}: {:?}",
            error(&answer).detail
        );
        assert_eq!(installed_version(&api), "1.0.0", "{what}");
        assert_eq!(
            api.state("app").pid,
            pid,
            "{what}: the service was not touched"
        );
        assert_eq!(runs(&api), "1.0\n", "{what}: its data neither");
        let now = crate::support::subtree(
            &crate::support::snapshot(&api.env.home_dir()),
            "runtime/bin",
        );
        assert_eq!(
            crate::support::diff(&payloads, &now),
            Vec::<String>::new(),
            "{what}: no payload installed"
        );
        let _ = std::fs::remove_dir_all(api.env.at("app/cache/updates"));
    }
    // After all that, the good update goes through.
    publish(&api, &good, true);
    std::fs::write(&bundle_file, &good_bytes).unwrap();
    assert_eq!(apply(&api, "1.1.0")["result"], "ok");
    assert_eq!(installed_version(&api), "1.1.0");
}

#[test]
fn a_kill_during_apply_at_any_point_leaves_one_consistent_version() {
    let api = home();
    let v110 = bundle(&api, "1.1.0", "1.1", &host(), {
        app("1.1", false).template(|t| t.stop_timeout_ms = Some(2500))
    });
    publish(&api, &v110, false);
    let template = || std::fs::read_to_string(api.env.at("runtime/services/app.json")).unwrap();
    let old_template = template();
    let watermark = || -> Value {
        serde_json::from_slice(&std::fs::read(api.env.at("app/state/versions.json")).unwrap())
            .unwrap()
    };
    for point in [
        "update:before-install",
        "install:extract",
        "install:before-switch",
        "install:after-switch",
        "update:after-switch",
        "update:after-health",
    ] {
        let out = api.env.kojibox(&["update", "apply", "1.1.0"], Some(point));
        assert!(
            stderr(&out).contains(&format!("fault point {point} reached")),
            "{point}: {}",
            stderr(&out)
        );
        // Whatever runs next (here `verify`) finds one version: 1.0.0, whole, and the
        // unproven 1.1.0 never became the watermark.
        let out = api.env.kojibox(&["verify"], None);
        assert!(out.status.success(), "{point}: {}", stderr(&out));
        assert_eq!(watermark()["highestInstalled"], "1.0.0", "{point}");
        let out = api.env.kojibox(&["update", "check"], None);
        assert!(out.status.success(), "{point}: {}", stderr(&out));
        assert_eq!(installed_version(&api), "1.0.0", "{point}");
        assert_eq!(template(), old_template, "{point}: the 1.0.0 templates");
        let out = api.env.kojibox(&["verify"], None);
        assert!(out.status.success(), "{point}: {}", stderr(&out));
        assert!(
            !api.env.at("app/state/update/journal.json").exists(),
            "{point}"
        );
    }
    let out = api.env.kojibox(&["update", "apply"], None);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(installed_version(&api), "1.1.0");
    assert_ne!(template(), old_template);
    let out = api.env.kojibox(&["verify"], None);
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn a_daemon_killed_after_the_switch_comes_back_on_the_previous_version() {
    let mut api = home();
    api.serve_with(&[], None, &[("KOJIBOX_FAULT", "update:after-switch")]);
    api.rpc("services.start", json!({"id": "app"}));
    api.wait_for("app", ServiceStatus::Running);
    let v110 = bundle(&api, "1.1.0", "1.1", &host(), app("1.1", false));
    publish(&api, &v110, false);
    // The daemon dies during the call (no answer).
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| apply(&api, "1.1.0")));
    let _ = api.child().wait();
    api.reaped();
    assert!(
        eventually(WAIT, || api.processes("app").is_empty()),
        "the service died with its daemon"
    );
    assert_eq!(installed_version(&api), "1.1.0", "killed after the switch");

    api.serve(&[]);
    assert!(
        eventually(WAIT, || api.stderr().contains("rolled back to 1.0.0")),
        "{}",
        api.stderr()
    );
    assert_eq!(installed_version(&api), "1.0.0");
    api.rpc("services.start", json!({"id": "app"}));
    api.wait_for("app", ServiceStatus::Running);
    assert!(
        eventually(WAIT, || runs(&api) == "1.0\n1.0\n"),
        "{:?}",
        runs(&api)
    );
    signal(api.pid, Signal::TERM);
}

/// Copies the kojibox under test to `<root>/bin/kojibox` (so a self-update never replaces the
/// test's own binary) and serves the home with the copy, its output in `<root>/daemon.log`;
/// attaches `api` to it. Returns the copy's path and the daemon.
fn serve_from_a_copy(api: &mut Api) -> (PathBuf, std::process::Child) {
    let exe = api.env.root().join("bin/kojibox");
    std::fs::create_dir_all(exe.parent().unwrap()).unwrap();
    std::fs::copy(env!("CARGO_BIN_EXE_kojibox"), &exe).unwrap();
    let log = std::fs::File::create(api.env.root().join("daemon.log")).unwrap();
    let daemon = std::process::Command::new(&exe)
        .arg("--home")
        .arg(api.env.home_dir())
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env_remove("KOJIBOX_HOME")
        .stdin(std::process::Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    assert!(eventually(WAIT, || api.endpoint().is_some()));
    api.attach();
    (exe, daemon)
}

/// A bundle carrying kojibox for this machine replaces the running executable once everything
/// else is good; the daemon restarts itself on it (same pid, new token) and starts again what
/// ran. kojibox runs from a copy here, so the test's own binary is never replaced.
#[test]
fn an_update_carrying_kojibox_replaces_it_and_the_daemon_comes_back_on_it() {
    let mut api = home();
    let (exe, mut daemon) = serve_from_a_copy(&mut api);
    let (pid, token) = (api.pid, api.token.clone());
    assert_eq!(pid, daemon.id());
    api.rpc("services.start", json!({"id": "app"}));
    api.wait_for("app", ServiceStatus::Running);

    let mut new = std::fs::read(&exe).unwrap();
    new.extend_from_slice(b"\n# kojibox 1.1.0\n");
    let mut all = fixtures(api.web_port);
    all.push(app("1.1", false));
    all.push(Fixture::file("kojibox", new.clone()));
    let v110 = api
        .env
        .fixture_bundle("self", "1.1.0", "1.1", &host(), &all);
    publish(&api, &v110, false);
    assert_eq!(apply(&api, "1.1.0")["result"], "ok");
    assert_eq!(
        std::fs::read(&exe).unwrap(),
        new,
        "the executable was replaced"
    );

    // The same process (exec), serving again with a new token, app running again.
    assert!(
        eventually(Duration::from_secs(20), || {
            std::fs::read_to_string(api.env.at("app/state/api-token"))
                .is_ok_and(|t| t.trim() != token)
                && api.endpoint().is_some()
        }),
        "{}",
        std::fs::read_to_string(api.env.root().join("daemon.log")).unwrap_or_default()
    );
    api.attach();
    assert_eq!(api.pid, pid, "restarted in place");
    let app_state = api.wait_for("app", ServiceStatus::Running);
    assert!(app_state.pid.is_some());
    assert_eq!(
        runs(&api),
        "1.0\n1.1\n1.1\n",
        "app ran again after the restart"
    );
    let ids: Vec<String> = api.list().into_iter().map(|s| s.id).collect();
    assert_eq!(
        ids,
        ["web", "worker", "app"],
        "kojibox itself is no service"
    );
    let running = std::fs::read_link(format!("/proc/{pid}/exe")).unwrap();
    assert_eq!(running, exe, "the daemon runs the new executable");
    assert!(
        std::fs::read_to_string(api.env.root().join("daemon.log"))
            .unwrap()
            .contains("kojibox was updated: restarting as")
    );
    // The guard saw it serve and run app again, and left it alone.
    let proven =
        format!("self-update proven: kojibox (pid {pid}) serves and runs 1 service(s) again");
    assert!(
        eventually(WAIT, || std::fs::read_to_string(
            api.env.root().join("daemon.log")
        )
        .unwrap()
        .contains(&proven)),
        "{}",
        std::fs::read_to_string(api.env.root().join("daemon.log")).unwrap()
    );
    assert!(
        !api.env
            .at("app/state/update/self-update-failed.json")
            .exists()
    );

    // Rollback puts the previous kojibox back too, and the daemon restarts on it.
    let original = std::fs::read(env!("CARGO_BIN_EXE_kojibox")).unwrap();
    let token = api.token.clone();
    assert_eq!(api.rpc("updater.rollback", json!({}))["result"], "ok");
    assert_eq!(installed_version(&api), "1.0.0");
    assert!(
        std::fs::read(&exe).unwrap() == original,
        "the previous executable is back"
    );
    assert!(
        eventually(Duration::from_secs(20), || {
            std::fs::read_to_string(api.env.at("app/state/api-token"))
                .is_ok_and(|t| t.trim() != token)
                && api.endpoint().is_some()
        }),
        "{}",
        std::fs::read_to_string(api.env.root().join("daemon.log")).unwrap_or_default()
    );
    api.attach();
    assert_eq!(api.pid, pid);
    api.wait_for("app", ServiceStatus::Running);
    assert!(
        eventually(WAIT, || runs(&api).ends_with("1.0\n1.0\n")),
        "{:?}",
        runs(&api)
    );
    assert!(!api.env.at("app/state/update/kojibox.prev").exists());
    signal(pid, Signal::TERM);
    let _ = daemon.wait();
}

/// A static file server on 127.0.0.1 for `root`, honouring `Range: bytes=N-`; records each
/// request line and its range.
fn serve_files(
    root: PathBuf,
    honour_range: bool,
) -> (u16, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = std::sync::Arc::clone(&seen);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut first = String::new();
            reader.read_line(&mut first).unwrap();
            let mut from = 0usize;
            loop {
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                if let Some(range) = line.to_ascii_lowercase().strip_prefix("range: bytes=")
                    && honour_range
                {
                    from = range.trim().trim_end_matches('-').parse().unwrap();
                }
                if line.trim().is_empty() {
                    break;
                }
            }
            let path = first.split(' ').nth(1).unwrap_or("/").to_owned();
            log.lock().unwrap().push(format!("{path} from {from}"));
            match std::fs::read(root.join(path.trim_start_matches('/'))) {
                Ok(body) => {
                    let part = &body[from.min(body.len())..];
                    let head = if from > 0 {
                        format!(
                            "206 Partial Content\r\nContent-Range: bytes {from}-{}/{}",
                            body.len() - 1,
                            body.len()
                        )
                    } else {
                        "200 OK".to_owned()
                    };
                    let _ = write!(
                        stream,
                        "HTTP/1.1 {head}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                        part.len()
                    );
                    let _ = stream.write_all(part);
                }
                Err(_) => {
                    let _ = stream.write_all(
                        b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                    );
                }
            }
        }
    });
    (port, seen)
}

/// Over HTTP, with no daemon: check, then an apply that resumes a partial download.
#[test]
fn an_http_source_works_and_a_partial_download_resumes() {
    let api = home();
    let v110 = bundle(&api, "1.1.0", "1.1", &host(), app("1.1", false));
    let index = publish(&api, &v110, false);
    let (port, seen) = serve_files(repo(&api), true);
    std::fs::write(
        api.env.at("app/config/settings.json"),
        json!({"updateSource": format!("http://127.0.0.1:{port}/")}).to_string(),
    )
    .unwrap();
    let out = api.env.kojibox(&["update", "check"], None);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        crate::support::stdout(&out).contains("1.1.0 is available"),
        "{}",
        crate::support::stdout(&out)
    );
    // Half the bundle already came down before an interruption.
    let bytes = std::fs::read(&v110).unwrap();
    let half = bytes.len() / 2;
    let cache = api.env.at("app/cache/updates");
    std::fs::create_dir_all(&cache).unwrap();
    std::fs::write(cache.join("kojibox-1.1.0.kbx.part"), &bytes[..half]).unwrap();
    let out = api.env.kojibox(&["update", "apply"], None);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(installed_version(&api), "1.1.0");
    let seen = seen.lock().unwrap().clone();
    assert!(
        seen.contains(&format!("/{} from {half}", index.bundle)),
        "the download resumed at {half}: {seen:?}"
    );
}

/// A server that ignores ranges (the download starts over), and a `.part` that is already
/// whole (only the check is left: no request for the bundle).
#[test]
fn a_server_ignoring_ranges_and_a_whole_part_file_both_end_in_a_verified_bundle() {
    let api = home();
    let v110 = bundle(&api, "1.1.0", "1.1", &host(), app("1.1", false));
    let index = publish(&api, &v110, false);
    let bytes = std::fs::read(&v110).unwrap();
    let cache = api.env.at("app/cache/updates");
    std::fs::create_dir_all(&cache).unwrap();

    let (port, seen) = serve_files(repo(&api), false);
    let http = launcher::updater::Source::Http(format!("http://127.0.0.1:{port}"));
    std::fs::write(
        cache.join("kojibox-1.1.0.kbx.part"),
        &bytes[..bytes.len() / 3],
    )
    .unwrap();
    let got = launcher::updater::download(&api.env.home(), &http, &index, &mut |_, _| {}).unwrap();
    assert_eq!(std::fs::read(&got).unwrap(), bytes, "started over, whole");
    assert_eq!(seen.lock().unwrap().len(), 1);
    std::fs::remove_file(&got).unwrap();

    std::fs::write(cache.join("kojibox-1.1.0.kbx.part"), &bytes).unwrap();
    let got = launcher::updater::download(&api.env.home(), &http, &index, &mut |_, _| {}).unwrap();
    assert_eq!(std::fs::read(&got).unwrap(), bytes);
    assert_eq!(
        seen.lock().unwrap().len(),
        1,
        "no request: the part was whole"
    );
}

/// `rollback` goes back to the version before the last update that went through, even after a
/// later update failed.
#[test]
fn rollback_after_a_failed_update_goes_back_to_the_version_before_the_last_good_one() {
    let mut api = home();
    api.serve(&[]);
    api.rpc("services.start", json!({"id": "app"}));
    api.wait_for("app", ServiceStatus::Running);
    let v110 = bundle(&api, "1.1.0", "1.1", &host(), app("1.1", false));
    publish(&api, &v110, false);
    assert_eq!(apply(&api, "1.1.0")["result"], "ok");
    let v120 = bundle(&api, "1.2.0", "1.2", &host(), app("1.2", true));
    publish(&api, &v120, false);
    assert_eq!(code(&apply(&api, "1.2.0")), "UPDATE_FAILED");
    assert_eq!(installed_version(&api), "1.1.0");
    let answer = api.rpc("updater.rollback", json!({}));
    assert_eq!(answer["result"], "ok", "{answer}");
    assert_eq!(installed_version(&api), "1.0.0");
    api.wait_for("app", ServiceStatus::Running);
    assert!(
        eventually(WAIT, || runs(&api).ends_with("1.0\n")),
        "{:?}",
        runs(&api)
    );
}

#[test]
fn an_update_supervises_the_services_it_adds_and_drops_and_a_failed_one_brings_them_back() {
    let mut api = home();
    api.serve(&[]);
    for id in ["worker", "app"] {
        api.rpc("services.start", json!({"id": id}));
        api.wait_for(id, ServiceStatus::Running);
    }
    let ids = |api: &Api| {
        let mut ids: Vec<String> = api.list().into_iter().map(|s| s.id).collect();
        ids.sort();
        ids
    };
    let web = fixtures(api.web_port).remove(0);
    let extra = Fixture::new("extra", "exec sleep 300");
    // 1.1.0 drops worker and adds extra, but its app does not start: rolled back, and worker,
    // which the update had stopped, runs again.
    let broken = api.env.fixture_bundle(
        "b1.1.0",
        "1.1.0",
        "1.1",
        &host(),
        &[web.clone(), app("1.1", true), extra.clone()],
    );
    publish(&api, &broken, false);
    let answer = apply(&api, "1.1.0");
    assert_eq!(code(&answer), "UPDATE_FAILED", "{answer}");
    assert_eq!(ids(&api), ["app", "web", "worker"]);
    api.wait_for("worker", ServiceStatus::Running);
    api.wait_for("app", ServiceStatus::Running);
    // 1.2.0 does the same and works: extra is supervised, worker stopped and dropped, at once.
    let worker = api.processes("worker");
    let good = api.env.fixture_bundle(
        "b1.2.0",
        "1.2.0",
        "1.2",
        &host(),
        &[web, app("1.2", false), extra],
    );
    publish(&api, &good, false);
    assert_eq!(apply(&api, "1.2.0")["result"], "ok", "{}", api.stderr());
    assert_eq!(ids(&api), ["app", "extra", "web"]);
    assert_eq!(api.state("extra").state, ServiceStatus::Stopped);
    assert!(
        worker.iter().all(|pid| !kojibox_proc::is_alive(*pid)),
        "the dropped worker still runs: {worker:?}"
    );
    api.rpc("services.start", json!({"id": "extra"}));
    api.wait_for("extra", ServiceStatus::Running);
}

/// A self-update whose kojibox runs `--version` but cannot serve: the guard the daemon left
/// puts the previous kojibox back and starts it, the services that ran come back, and the next
/// `kojibox update` says what happened.
#[test]
fn a_self_update_that_does_not_prove_itself_is_undone_and_the_previous_kojibox_serves_again() {
    let mut api = home();
    let (exe, mut daemon) = serve_from_a_copy(&mut api);
    let original = std::fs::read(&exe).unwrap();
    let pid = api.pid;
    api.rpc("services.start", json!({"id": "app"}));
    api.wait_for("app", ServiceStatus::Running);

    // Passes the installer's `--version` check, then fails to serve.
    let broken = b"#!/bin/sh\ncase \"$*\" in *--version*) echo 'kojibox 1.1.0'; exit 0;; esac\n\
        echo 'cannot serve' >&2; exit 3\n"
        .to_vec();
    let mut all = fixtures(api.web_port);
    all.push(app("1.0", false));
    all.push(Fixture::file("kojibox", broken.clone()));
    let v110 = api
        .env
        .fixture_bundle("self-broken", "1.1.0", "1.0", &host(), &all);
    publish(&api, &v110, false);
    assert_eq!(apply(&api, "1.1.0")["result"], "ok", "{}", api.stderr());
    // The old daemon execs the broken kojibox, which exits.
    let exited = daemon.wait().unwrap();
    assert_eq!(exited.code(), Some(3));
    let log_file = api.env.root().join("daemon.log");
    let daemon_log = || std::fs::read_to_string(&log_file).unwrap();
    // Back within seconds: the previous executable in place, a new daemon serving, app running.
    assert!(
        eventually(Duration::from_secs(20), || {
            api.endpoint().is_some_and(|(_, p)| p != pid)
                && std::fs::read(&exe).unwrap() == original
        }),
        "{}",
        daemon_log()
    );
    api.attach();
    let restored = api.pid;
    api.wait_for("app", ServiceStatus::Running);
    let running = std::fs::read_link(format!("/proc/{restored}/exe")).unwrap();
    assert_eq!(running, exe);
    let said = daemon_log();
    assert!(
        said.contains(&format!(
            "self-update failed: the new kojibox (pid {pid}) exited; putting the previous kojibox back"
        )),
        "{said}"
    );
    let out = api.env.kojibox(&["update", "check"], None);
    assert!(
        stderr(&out).contains("note: the last self-update did not prove itself and was undone")
            && stderr(&out).contains(&format!("the new kojibox (pid {pid}) exited")),
        "{}",
        stderr(&out)
    );
    signal(restored, Signal::TERM);
}
