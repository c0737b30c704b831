//! `config.*` through the real daemon: every validation refusal names its field and writes
//! nothing; port conflicts name the other service or the holding pid; the port registry; a
//! setting takes effect at the next start; `config:changed`; concurrent writers lose nothing; a
//! corrupt file is named and kept aside; a daemon killed during a burst of writes leaves every
//! file whole.

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;

use kojibox_manifests::api::methods;
use kojibox_manifests::error::ApiError;
use kojibox_manifests::model::{PortRegistry, ProjectConfig, ServiceStatus};
use rustix::process::Signal;
use serde_json::{Value, json};

use super::contract::error;
use super::{Api, WAIT, eventually, free_port, signal};
use crate::support::{Fixture, diff, snapshot, subtree};

/// A project of `api`'s home (its folder is the home itself, which exists).
fn project(api: &Api, id: &str, domain: &str) -> Value {
    json!({"id": id, "name": id, "path": api.env.home_dir(), "domain": domain, "stack": "php", "overrides": {}})
}

/// The error envelope of a request, whatever its HTTP status (a params parse error is a 400).
fn refused(api: &Api, body: &Value) -> ApiError {
    error(&api.post(&[], body.to_string().as_bytes()).json())
}

fn code(e: &ApiError) -> String {
    serde_json::to_value(e.code)
        .unwrap()
        .as_str()
        .unwrap()
        .to_owned()
}

#[test]
fn every_invalid_setting_is_refused_naming_its_field_and_nothing_is_written() {
    let api = Api::boot(&[]);
    let home = api.env.home_dir();
    let good = project(&api, "p1", "p1.test");
    assert_eq!(api.rpc("config.setProject", good.clone())["result"], "ok");
    let a_file = api.env.at("runtime/manifest.json");
    let with = |field: &str, value: Value| {
        let mut p = good.clone();
        p[field] = value;
        p["id"] = json!("p2");
        json!({"method": "config.setProject", "params": p})
    };
    let web = |ports: Value, env: Value| json!({"method": "config.setService", "params": {"id": "web", "enabled": true, "ports": ports, "env": env, "args": []}});
    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "a project path that does not exist",
            with("path", json!(home.join("nope"))),
            "path: Path does not exist or is not readable",
        ),
        (
            "a project path that is a file",
            with("path", json!(a_file)),
            "is not a folder",
        ),
        (
            "a relative project path",
            with("path", json!("projects/x")),
            "path: `projects/x` is not absolute",
        ),
        (
            "an invalid domain",
            with("domain", json!("my_app.test")),
            "domain: `my_app.test` is not a domain name",
        ),
        (
            "a domain with an empty label",
            with("domain", json!("a..test")),
            "domain: `a..test` is not a domain name",
        ),
        (
            "a public domain",
            with("domain", json!("example.com")),
            "domain: `example.com` is not a local name",
        ),
        (
            "a domain another project has",
            with("domain", json!("p1.test")),
            "domain: p1.test is already the domain of project `p1`",
        ),
        (
            "an unknown stack",
            with("stack", json!("cobol")),
            "stack: unknown stack `cobol` (known: php, node, static)",
        ),
        (
            "an id that is a path",
            json!({"method": "config.setProject", "params": {"id": "../evil", "name": "x", "path": home, "domain": "", "stack": "php", "overrides": {}}}),
            "id: `../evil` is not an id",
        ),
        (
            "port 0",
            web(json!({"http": 0}), json!({})),
            "ports.http: 0 is not a port",
        ),
        (
            "a port above 65535",
            web(json!({"http": 70000}), json!({})),
            "field `ports.http`",
        ),
        (
            "a port name the service does not have",
            web(json!({"admin": 8000}), json!({})),
            "ports.admin: web has no port named `admin` (its ports: http)",
        ),
        (
            "an unknown placeholder",
            web(json!({}), json!({"X": "${nope}"})),
            "unknown placeholder `${nope}`",
        ),
        (
            "an id in params that disagrees with the body",
            json!({"method": "config.setService", "params": {"id": "web", "config": {"id": "worker", "enabled": true, "ports": {}, "env": {}, "args": []}}}),
            "field `id`: the params name `web` but the body's id is `worker`",
        ),
        (
            "an unknown update channel",
            json!({"method": "config.setApp", "params": {"installPath": home, "updateChannel": "nightly", "telemetryOptIn": false}}),
            "field `updateChannel`: unknown variant `nightly`",
        ),
        (
            "another install path",
            json!({"method": "config.setApp", "params": {"installPath": "/opt/kojibox", "updateChannel": "stable", "telemetryOptIn": false}}),
            "installPath: this home is at",
        ),
    ];
    let before = subtree(&snapshot(&home), "app/config");
    for (what, body, detail) in cases {
        let e = refused(&api, &body);
        assert_eq!(code(&e), "VALIDATION_FAILED", "{what}: {e:?}");
        assert!(e.detail.contains(detail), "{what}: {:?}", e.detail);
        assert!(!e.retryable, "{what}");
        assert_eq!(
            serde_json::to_value(e.source).unwrap(),
            "config",
            "{what}: {e:?}"
        );
    }
    let after = subtree(&snapshot(&home), "app/config");
    assert_eq!(
        diff(&before, &after),
        Vec::<String>::new(),
        "nothing written"
    );
}

/// A folder only its owner may read: as a user, mode 000; as root (whose services run as
/// users of their own), a root-owned 0700 folder, which they cannot read.
#[test]
fn an_unreadable_project_path_is_refused() {
    let api = Api::boot(&[]);
    let locked = api.env.root().join("locked");
    std::fs::create_dir(&locked).unwrap();
    let root = rustix::process::geteuid().is_root();
    let mode = if root { 0o700 } else { 0o000 };
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(mode)).unwrap();
    let mut p = project(&api, "p", "");
    p["path"] = json!(locked);
    let e = error(&api.rpc("config.setProject", p.clone()));
    assert_eq!(e.message, "Invalid project path");
    assert!(
        e.detail.contains("Path does not exist or is not readable"),
        "{e:?}"
    );
    if root {
        assert!(e.detail.contains("by each service's own user"), "{e:?}");
    }
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o755)).unwrap();
    assert_eq!(api.rpc("config.setProject", p)["result"], "ok");
}

#[test]
fn port_conflicts_name_the_other_service_or_the_pid_and_a_new_port_takes_effect_at_the_next_start()
{
    let db_port = free_port();
    let api = Api::boot(&[Fixture::new("db", "exec sleep 300").port("db", db_port)]);
    let registry: PortRegistry = serde_json::from_slice(
        &std::fs::read(api.env.at("app/config/ports.json")).expect("the daemon wrote ports.json"),
    )
    .unwrap();
    assert_eq!(registry.assigned["web"], api.web_port);
    assert_eq!(registry.assigned["db"], db_port);

    let set_web = |port: u16| {
        api.rpc(
            "config.setService",
            json!({"id": "web", "enabled": true, "ports": {"http": port}, "env": {}, "args": []}),
        )
    };
    let e = error(&set_web(db_port));
    assert_eq!(code(&e), "PORT_CONFLICT");
    assert_eq!(serde_json::to_value(e.source).unwrap(), "config");
    assert_eq!(
        e.detail,
        format!("web http port {db_port} is already given to db")
    );

    let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let held_port = held.local_addr().unwrap().port();
    let e = error(&set_web(held_port));
    assert_eq!(code(&e), "PORT_CONFLICT");
    assert_eq!(
        e.detail,
        format!(
            "web http port {held_port} is occupied by process {}",
            std::process::id()
        )
    );
    drop(held);

    // Its own port is no conflict, even while web holds it.
    api.call::<methods::ServicesStart>(json!({"id": "web"}));
    api.wait_for("web", ServiceStatus::Running);
    assert_eq!(set_web(api.web_port)["result"], "ok");

    let new_port = free_port();
    assert_eq!(set_web(new_port)["result"], "ok");
    let registry: PortRegistry =
        serde_json::from_slice(&std::fs::read(api.env.at("app/config/ports.json")).unwrap())
            .unwrap();
    assert_eq!(
        registry.assigned["web"], new_port,
        "recorded in the registry"
    );
    let describe = |api: &Api| {
        api.call::<methods::ServicesDescribe>(json!({"id": "web"}))
            .ports[0]
            .port
    };
    assert_eq!(describe(&api), api.web_port, "running: still the old port");
    api.call::<methods::ServicesRestart>(json!({"id": "web"}));
    api.wait_for("web", ServiceStatus::Running);
    assert_eq!(describe(&api), new_port);
    assert!(
        eventually(WAIT, || std::net::TcpStream::connect((
            "127.0.0.1",
            new_port
        ))
        .is_ok()),
        "web listens on its new port"
    );
}

#[test]
fn each_successful_set_announces_config_changed() {
    let api = Api::boot(&[]);
    let mut stream = api.events(None);
    let home = api.env.home_dir();
    let app = json!({"installPath": home, "updateChannel": "beta", "telemetryOptIn": true});
    assert_eq!(api.rpc("config.setApp", app)["result"], "ok");
    let worker = json!({"id": "worker", "enabled": false, "ports": {}, "env": {}, "args": []});
    assert_eq!(api.rpc("config.setService", worker)["result"], "ok");
    assert_eq!(
        api.rpc("config.setProject", project(&api, "proj-1", "my-app.test"))["result"],
        "ok"
    );
    // A refused set announces nothing.
    let mut bad = project(&api, "proj-2", "x.test");
    bad["stack"] = json!("cobol");
    assert_eq!(
        code(&error(&api.rpc("config.setProject", bad))),
        "VALIDATION_FAILED"
    );
    assert_eq!(
        api.rpc("config.setProject", project(&api, "proj-3", ""))["result"],
        "ok"
    );

    let mut changes = Vec::new();
    stream.until("four config:changed", |e| {
        if e.name == "config:changed" {
            changes.push(e.data.clone());
        }
        changes.len() == 4
    });
    assert_eq!(
        changes,
        [
            json!({"scope": "app", "id": "app"}),
            json!({"scope": "service", "id": "worker"}),
            json!({"scope": "project", "id": "proj-1"}),
            json!({"scope": "project", "id": "proj-3"}),
        ]
    );
    assert!(
        api.call::<methods::ConfigGetApp>(json!({}))
            .telemetry_opt_in
    );
    // `up` follows the stored `enabled`.
    let up = api.call::<methods::ServicesUp>(json!({}));
    assert_eq!(
        up.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(),
        ["web"]
    );
}

#[test]
fn concurrent_set_project_calls_lose_nothing_and_tear_nothing() {
    let api = Api::boot(&[]);
    let writers = 16;
    let rounds = 10;
    std::thread::scope(|scope| {
        for w in 0..writers {
            let api = &api;
            scope.spawn(move || {
                for round in 0..rounds {
                    // Its own project, and one project every writer fights over.
                    let mut own = project(api, &format!("p{w}"), &format!("p{w}.test"));
                    own["name"] = json!(format!("writer {w} round {round}"));
                    assert_eq!(api.rpc("config.setProject", own)["result"], "ok");
                    let mut shared = project(api, "shared", "shared.test");
                    shared["overrides"] =
                        json!({"WRITER": w.to_string(), "ROUND": round.to_string()});
                    assert_eq!(api.rpc("config.setProject", shared)["result"], "ok");
                }
            });
        }
    });
    let projects = api.call::<methods::ConfigListProjects>(json!({}));
    let ids: BTreeSet<String> = projects.iter().map(|p| p.id.clone()).collect();
    let mut wanted: BTreeSet<String> = (0..writers).map(|w| format!("p{w}")).collect();
    wanted.insert("shared".into());
    assert_eq!(ids, wanted, "no project lost");
    for p in &projects {
        if let Some(w) = p.id.strip_prefix('p') {
            assert_eq!(
                p.name,
                format!("writer {w} round {}", rounds - 1),
                "the last write won"
            );
        } else {
            assert_eq!(p.overrides["ROUND"], (rounds - 1).to_string(), "{p:?}");
        }
    }
    let dir = api.env.at("app/config/projects");
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        assert!(name.ends_with(".json"), "a stray file: {name}");
        let _: ProjectConfig = serde_json::from_slice(&std::fs::read(&path).unwrap())
            .unwrap_or_else(|e| panic!("{name} is torn: {e}"));
    }
}

#[test]
fn a_corrupt_file_is_named_kept_aside_and_never_reset() {
    let api = Api::boot(&[]);
    assert_eq!(
        api.rpc("config.setProject", project(&api, "p", "p.test"))["result"],
        "ok"
    );
    let file = api.env.at("app/config/projects/p.json");
    std::fs::write(&file, b"{\"id\": \"p\", \"name\": ").unwrap();
    let app = api.env.at("app/config/app.json");
    std::fs::write(&app, b"not json").unwrap();

    for (method, params, path) in [
        ("config.getProject", json!({"id": "p"}), &file),
        ("config.getApp", json!({}), &app),
    ] {
        let e = error(&api.rpc(method, params));
        assert_eq!(code(&e), "INTERNAL", "{method}: {e:?}");
        assert!(
            e.detail.contains(&path.display().to_string())
                && e.detail.contains("a copy is kept as"),
            "{method}: {e:?}"
        );
    }
    // One corrupt project does not fail the list: it is left out (and named by the CLI).
    assert_eq!(
        api.rpc("config.listProjects", json!({}))["result"],
        json!([])
    );
    let copies: Vec<_> = std::fs::read_dir(api.env.at("app/config/projects"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("p.json.corrupt-"))
        .collect();
    assert_eq!(
        copies.len(),
        1,
        "one copy, however often it is read: {copies:?}"
    );
    assert_eq!(
        std::fs::read(api.env.at(&format!("app/config/projects/{}", copies[0]))).unwrap(),
        b"{\"id\": \"p\", \"name\": "
    );
    assert_eq!(
        std::fs::read(&file).unwrap(),
        b"{\"id\": \"p\", \"name\": ",
        "left as it was"
    );
    // Setting it again replaces it; the copy stays.
    assert_eq!(
        api.rpc("config.setProject", project(&api, "p", "p.test"))["result"],
        "ok"
    );
    assert_eq!(
        api.call::<methods::ConfigGetProject>(json!({"id": "p"}))
            .domain,
        "p.test"
    );
    assert!(
        api.env
            .at(&format!("app/config/projects/{}", copies[0]))
            .exists()
    );
}

#[test]
fn a_daemon_killed_during_a_burst_of_writes_leaves_every_config_file_whole() {
    let mut api = Api::boot(&[]);
    let stop = std::sync::atomic::AtomicBool::new(false);
    let written = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for w in 0..4 {
            let (api, stop, written) = (&api, &stop, &written);
            scope.spawn(move || {
                let mut n = 0u32;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    n += 1;
                    let mut p = project(api, &format!("w{w}-{}", n % 8), "");
                    p["overrides"] = json!({"N": "x".repeat(1000 + n as usize)});
                    let body = json!({"method": "config.setProject", "params": p});
                    let reply = std::panic::catch_unwind(|| api.send(&body));
                    let service = json!({"method": "config.setService", "params": {"id": "worker", "enabled": n.is_multiple_of(2), "ports": {}, "env": {"N": n.to_string()}, "args": []}});
                    let _ = std::panic::catch_unwind(|| api.send(&service));
                    match reply {
                        Ok(v) if v["result"] == "ok" => {
                            written.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        }
                        _ => return, // the daemon is gone
                    }
                }
            });
        }
        assert!(
            eventually(WAIT, || written.load(std::sync::atomic::Ordering::Relaxed)
                > 200),
            "the burst is under way"
        );
        signal(api.pid, Signal::KILL);
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
    });
    let _ = api.child().wait();
    api.reaped();

    let config = api.env.at("app/config");
    let mut parsed = 0;
    for entry in walk(&config) {
        let name = entry.file_name().unwrap().to_string_lossy().into_owned();
        if name.ends_with(".json") {
            let bytes = std::fs::read(&entry).unwrap();
            let _: Value = serde_json::from_slice(&bytes)
                .unwrap_or_else(|e| panic!("{} is torn: {e}", entry.display()));
            parsed += 1;
        } else {
            assert!(
                name.starts_with(".kojibox-") && name.ends_with(".tmp"),
                "only a killed writer's temporary file may be left: {name}"
            );
        }
    }
    assert!(parsed > 4, "{parsed} files parsed");

    // And a new daemon serves them.
    api.serve(&[]);
    let projects = api.call::<methods::ConfigListProjects>(json!({}));
    assert!(!projects.is_empty());
    api.call::<methods::ConfigGetService>(json!({"id": "worker"}));
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

/// `kojibox --home H ARGS`, stdin closed.
fn cli(api: &Api, args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_kojibox"))
        .arg("--home")
        .arg(api.env.home_dir())
        .args(args)
        .env_remove("KOJIBOX_HOME")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap()
}

#[test]
fn the_cli_shows_and_changes_settings_with_or_without_a_daemon() {
    use crate::support::{stderr, stdout};
    let mut api = Api::home(&[]);
    let home = api.env.home_dir().display().to_string();

    // No daemon: the files, with the same validation.
    let out = cli(&api, &["config", "app", "--update-channel", "beta"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains(&format!("saved the app settings in {home}")),
        "{}",
        stdout(&out)
    );
    let app: Value = serde_json::from_str(&stdout(&cli(&api, &["config", "app"]))).unwrap();
    assert_eq!(
        app,
        json!({"installPath": home, "updateChannel": "beta", "telemetryOptIn": false})
    );
    let out = cli(
        &api,
        &[
            "projects",
            "set",
            "shop",
            "--path",
            &home,
            "--stack",
            "php",
            "--domain",
            "shop.test",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("saved project shop (new)"),
        "{}",
        stdout(&out)
    );
    let out = cli(&api, &["projects", "set", "blog", "--path", &home]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("needs --path DIR and --stack"),
        "{}",
        stderr(&out)
    );
    let out = cli(
        &api,
        &[
            "projects", "set", "blog", "--path", &home, "--stack", "cobol",
        ],
    );
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("stack: unknown stack `cobol`"),
        "{}",
        stderr(&out)
    );
    assert!(!api.env.at("app/config/projects/blog.json").exists());

    // With a daemon: through the API.
    api.serve(&[]);
    let out = cli(&api, &["projects", "set", "shop", "--name", "The Shop"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains(&format!("(daemon pid {})", api.pid)),
        "{}",
        stdout(&out)
    );
    let list = stdout(&cli(&api, &["projects", "list"]));
    assert!(
        list.contains("shop") && list.contains("shop.test") && list.contains(&home),
        "{list}"
    );
    let projects: Vec<ProjectConfig> =
        serde_json::from_str(&stdout(&cli(&api, &["--json", "projects", "list"]))).unwrap();
    assert_eq!(projects.len(), 1);
    assert_eq!(projects[0].name, "The Shop");

    let port = free_port();
    let port_arg = format!("http={port}");
    let out = cli(
        &api,
        &[
            "config", "service", "web", "--port", &port_arg, "--env", "A=1",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("take effect at its next start"),
        "{}",
        stdout(&out)
    );
    let web: Value =
        serde_json::from_str(&stdout(&cli(&api, &["config", "service", "web"]))).unwrap();
    assert_eq!(web["ports"]["http"], port);
    assert_eq!(web["env"]["A"], "1");
    let registry: PortRegistry =
        serde_json::from_str(&stdout(&cli(&api, &["config", "ports"]))).unwrap();
    assert_eq!(registry.assigned["web"], port);
    let out = cli(&api, &["config", "service", "web", "--port", "http=0"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("a port is 1 to 65535"),
        "{}",
        stderr(&out)
    );
}

/// `config.removeProject` and `kojibox projects remove`, on the files and through the daemon:
/// the file is gone, the project is gone from get and list, `config:changed` is announced, and
/// an unknown id is `NOT_FOUND`. (Refusing a project a domain mapping uses waits for the
/// domain store, issue 17.)
#[test]
fn a_project_is_removed_with_or_without_a_daemon_and_an_unknown_one_is_not_found() {
    use crate::support::{stderr, stdout};
    let mut api = Api::home(&[]);
    let home = api.env.home_dir().display().to_string();
    for id in ["shop", "blog", "wiki"] {
        let out = cli(
            &api,
            &["projects", "set", id, "--path", &home, "--stack", "php"],
        );
        assert!(out.status.success(), "{}", stderr(&out));
    }
    let shop = api.env.at("app/config/projects/shop.json");
    assert!(shop.exists());

    // No daemon: on the files.
    let out = cli(&api, &["projects", "remove", "shop"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains(&format!(
            "removed project shop from {home} (no daemon runs)"
        )),
        "{}",
        stdout(&out)
    );
    assert!(!shop.exists(), "the project file is gone");
    let list = stdout(&cli(&api, &["projects", "list"]));
    assert!(!list.contains("shop") && list.contains("blog"), "{list}");
    let out = cli(&api, &["projects", "show", "shop"]);
    assert!(!out.status.success());
    let out = cli(&api, &["projects", "remove", "shop"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("no project `shop` (see `kojibox projects list`); nothing removed"),
        "{}",
        stderr(&out)
    );

    // Through the daemon: the API and the CLI.
    api.serve(&[]);
    let mut stream = api.events(None);
    assert_eq!(
        api.rpc("config.removeProject", json!({"id": "blog"}))["result"],
        "ok"
    );
    assert!(!api.env.at("app/config/projects/blog.json").exists());
    let e = error(&api.rpc("config.getProject", json!({"id": "blog"})));
    assert_eq!(code(&e), "NOT_FOUND", "{e:?}");
    let ids: Vec<String> = api
        .call::<methods::ConfigListProjects>(json!({}))
        .into_iter()
        .map(|p| p.id)
        .collect();
    assert_eq!(ids, ["wiki"]);
    stream.until("config:changed for blog", |e| {
        e.name == "config:changed" && e.data == json!({"scope": "project", "id": "blog"})
    });

    let e = error(&api.rpc("config.removeProject", json!({"id": "blog"})));
    assert_eq!(code(&e), "NOT_FOUND", "{e:?}");
    assert_eq!(serde_json::to_value(e.source).unwrap(), "config");
    assert!(e.detail.contains("no project `blog`"), "{e:?}");
    let e = refused(
        &api,
        &json!({"method": "config.removeProject", "params": {"id": "../wiki"}}),
    );
    assert_eq!(code(&e), "VALIDATION_FAILED", "{e:?}");
    let e = refused(
        &api,
        &json!({"method": "config.removeProject", "params": {}}),
    );
    assert_eq!(code(&e), "VALIDATION_FAILED", "{e:?}");
    assert!(api.env.at("app/config/projects/wiki.json").exists());

    let out = cli(&api, &["projects", "remove", "wiki"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains(&format!("removed project wiki (daemon pid {})", api.pid)),
        "{}",
        stdout(&out)
    );
    assert!(!api.env.at("app/config/projects/wiki.json").exists());
    assert!(
        api.call::<methods::ConfigListProjects>(json!({}))
            .is_empty()
    );
    stream.until("config:changed for wiki", |e| {
        e.name == "config:changed" && e.data == json!({"scope": "project", "id": "wiki"})
    });
}

/// The domain check and the write run under one lock: of many projects racing for one
/// domain, exactly one gets it.
#[test]
fn of_many_projects_racing_for_one_domain_exactly_one_gets_it() {
    let api = Api::boot(&[]);
    let answers: Vec<Value> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..16)
            .map(|n| {
                let api = &api;
                scope.spawn(move || {
                    api.rpc(
                        "config.setProject",
                        project(api, &format!("r{n}"), "race.test"),
                    )
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let won = answers.iter().filter(|a| a["result"] == "ok").count();
    assert_eq!(won, 1, "{answers:#?}");
    for lost in answers.iter().filter(|a| a["result"] != "ok") {
        let e = error(lost);
        assert!(
            e.detail
                .contains("race.test is already the domain of project"),
            "{e:?}"
        );
    }
    let projects = api.call::<methods::ConfigListProjects>(json!({}));
    assert_eq!(projects.len(), 1);
}

#[test]
fn a_service_never_gets_one_port_twice_and_an_unset_port_goes_back_to_the_registry() {
    let (db_port, admin_port) = (free_port(), free_port());
    let mut api = Api::home(&[Fixture::new("db", "exec sleep 300")
        .port("db", db_port)
        .port("admin", admin_port)]);
    let registry = |api: &Api| -> PortRegistry {
        serde_json::from_slice(&std::fs::read(api.env.at("app/config/ports.json")).unwrap())
            .unwrap()
    };
    api.serve(&[]);
    assert_eq!(registry(&api).assigned["db.admin"], admin_port);
    let set = |ports: Value| {
        api.rpc(
            "config.setService",
            json!({"id": "db", "enabled": true, "ports": ports, "env": {}, "args": []}),
        )
    };
    // admin onto db's port: refused, whether db's is configured or the registry's.
    let e = error(&set(json!({"admin": db_port})));
    assert_eq!(code(&e), "VALIDATION_FAILED", "{e:?}");
    assert!(
        e.detail.contains(&format!(
            "port {db_port} would be both db's `db` and `admin` port"
        )),
        "{e:?}"
    );
    let e = error(&set(json!({"db": 4999, "admin": 4999})));
    assert_eq!(code(&e), "VALIDATION_FAILED", "{e:?}");

    // Configured, then unset: the registry forgets it and gives the default back.
    let moved = free_port();
    assert_eq!(set(json!({"db": moved}))["result"], "ok");
    assert_eq!(registry(&api).assigned["db"], moved);
    let out = cli(&api, &["config", "service", "db", "--unset-port", "db"]);
    assert!(out.status.success(), "{}", crate::support::stderr(&out));
    assert!(
        !registry(&api).assigned.contains_key("db"),
        "{:?}",
        registry(&api)
    );
    api.call::<methods::ServicesStart>(json!({"id": "db"}));
    api.wait_for("db", ServiceStatus::Running);
    assert_eq!(
        api.call::<methods::ServicesDescribe>(json!({"id": "db"}))
            .ports[0]
            .port,
        db_port,
        "the default again"
    );
    assert_eq!(registry(&api).assigned["db"], db_port);
}

#[test]
fn hand_edited_files_are_validated_when_read() {
    use crate::support::{stderr, stdout};
    let mut api = Api::home(&[]);
    // A typo in settings.json: said by `kojibox config` and at the daemon's start; the
    // settings still load.
    std::fs::create_dir_all(api.env.at("app/config")).unwrap();
    std::fs::write(
        api.env.at("app/config/settings.json"),
        r#"{"updateSoruce": "/mnt/usb"}"#,
    )
    .unwrap();
    let typo =
        "settings.json: unknown key `updateSoruce` is ignored (did you mean `updateSource`?)";
    let out = cli(&api, &["config", "app"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains(typo), "{}", stderr(&out));
    api.serve(&[]);
    assert!(
        eventually(WAIT, || api.stderr().contains(&format!(
            "note: {}",
            api.env.at("app/config/settings.json").display()
        )) && api.stderr().contains(typo)),
        "{}",
        api.stderr()
    );

    // A project file whose id is not its name, and a corrupt one: refused when read, and the
    // list still answers the good one.
    for id in ["p1", "p2", "p4"] {
        assert_eq!(
            api.rpc("config.setProject", project(&api, id, ""))["result"],
            "ok"
        );
    }
    let p2 = api.env.at("app/config/projects/p2.json");
    let text = std::fs::read_to_string(&p2)
        .unwrap()
        .replace("\"p2\"", "\"p3\"");
    std::fs::write(&p2, text).unwrap();
    let p4 = api.env.at("app/config/projects/p4.json");
    std::fs::write(&p4, "{").unwrap();
    let e = error(&api.rpc("config.getProject", json!({"id": "p2"})));
    assert_eq!(code(&e), "VALIDATION_FAILED", "{e:?}");
    let mismatch = format!("{} holds project `p3` but is named for `p2`", p2.display());
    assert!(e.detail.contains(&mismatch), "{e:?}");
    let listed = api.rpc("config.listProjects", json!({}));
    let ids: Vec<&str> = listed["result"]
        .as_array()
        .unwrap_or_else(|| panic!("{listed}"))
        .iter()
        .map(|p| p["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["p1"], "{listed}");
    let out = cli(&api, &["projects", "list"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("p1"), "{}", stdout(&out));
    assert!(
        stderr(&out).contains(&mismatch)
            && stderr(&out).contains(&format!("{} is corrupt", p4.display())),
        "{}",
        stderr(&out)
    );

    // A bad port registry is refused, naming the file, the entry and the fix; never used.
    let ports = api.env.at("app/config/ports.json");
    for (text, says) in [
        (
            r#"{"assigned": {"web": 0}, "ranges": {}}"#,
            "assigned.web: 0 is not a port",
        ),
        (
            r#"{"assigned": {"web": 70000}, "ranges": {}}"#,
            "assigned.web: 70000 is not a port",
        ),
        (
            r#"{"assigned": {}, "ranges": {"web": {"from": 9000, "to": 8000}}}"#,
            "ranges.web: from 9000 is above to 8000",
        ),
    ] {
        std::fs::write(&ports, text).unwrap();
        let out = cli(&api, &["config", "ports"]);
        assert!(!out.status.success(), "{text}: {}", stdout(&out));
        let said = format!("{}: {says}", ports.display());
        assert!(
            stderr(&out).contains(&said) && stderr(&out).contains("fix or delete the entry"),
            "{text}: {}",
            stderr(&out)
        );
        let e = error(&api.rpc("services.start", json!({"id": "web"})));
        assert_eq!(code(&e), "VALIDATION_FAILED", "{text}: {e:?}");
        assert!(e.detail.contains(&said), "{text}: {e:?}");
        assert_eq!(
            std::fs::read_to_string(&ports).unwrap(),
            text,
            "left as it was"
        );
    }
}

#[test]
fn a_daemon_does_not_start_on_a_bad_port_registry() {
    use crate::support::stderr;
    let api = Api::home(&[]);
    let ports = api.env.at("app/config/ports.json");
    std::fs::create_dir_all(api.env.at("app/config")).unwrap();
    std::fs::write(&ports, r#"{"assigned": {"web": 0}, "ranges": {}}"#).unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_kojibox"))
        .arg("--home")
        .arg(api.env.home_dir())
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env_remove("KOJIBOX_HOME")
        .env_remove("KOJIBOX_PASSPHRASE")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let exited = eventually(WAIT, || child.try_wait().unwrap().is_some());
    if !exited {
        child.kill().unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert!(exited, "serve ran on a bad port registry: {}", stderr(&out));
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains(&format!(
            "{}: assigned.web: 0 is not a port",
            ports.display()
        )),
        "{}",
        stderr(&out)
    );
}
