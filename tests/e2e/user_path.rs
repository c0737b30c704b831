//! One user's whole path, step by step, each as a user types it.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::postgres::{artifact, password, psql_refused, recipe};
use crate::support::{Home, alive, bundler, free_port, ok, text};

/// How long PostgreSQL may take to answer `psql` after a start or a restart.
const ANSWER: Duration = Duration::from_secs(30);

fn psql(home: &Home, port: u16, sql: &str) -> String {
    crate::postgres::psql(port, &password(home), sql, ANSWER)
}

/// `kojibox-bundle build RECIPE --key KEY --out OUT --target linux-x64` (fast compression).
fn build(dir: &Path, recipe_text: &str, name: &str) -> PathBuf {
    let recipe_path = dir.join(format!("{name}.toml"));
    std::fs::write(&recipe_path, recipe_text).unwrap();
    let out = dir.join(format!("{name}.kbx"));
    ok(bundler()
        .arg("build")
        .arg(&recipe_path)
        .arg("--key")
        .arg(dir.join("keys/release.key"))
        .arg("--out")
        .arg(&out)
        .args(["--target", "linux-x64", "--level", "1", "--cache"])
        .arg(dir.join("cache")));
    out
}

/// The version `kojibox rpc runtime.getManifest` reports.
fn installed(home: &Home) -> String {
    let envelope: serde_json::Value =
        serde_json::from_str(&ok(&mut home.kojibox(&["rpc", "runtime.getManifest"]))).unwrap();
    envelope["result"]["version"].as_str().unwrap().to_owned()
}

/// `postgres`'s state and pid from `kojibox status --json`.
fn postgres(home: &Home) -> (String, Option<u32>) {
    let rows: serde_json::Value =
        serde_json::from_str(&ok(&mut home.kojibox(&["status", "--json"]))).unwrap();
    let row = rows
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["state"]["id"] == "postgres")
        .expect("status lists postgres");
    (
        row["state"]["state"].as_str().unwrap().to_owned(),
        row["state"]["pid"].as_u64().map(|p| p as u32),
    )
}

#[test]
fn build_install_serve_query_update_rollback_verify() {
    let Some(tgz) = artifact() else {
        return;
    };
    let started = Instant::now();
    let home = Home::new();
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();

    // The publisher: a key, bundle 1.0.0.
    ok(bundler()
        .args(["keygen", "--out"])
        .arg(dir.join("keys/release")));
    let v1 = build(dir, &recipe(&tgz, "1.0.0", "16.14"), "stack-1.0.0");

    // The user: install offline, give PostgreSQL a free port, bring it up.
    let installed_out = ok(home
        .kojibox(&["install".as_ref(), v1.as_os_str(), "--pubkey".as_ref()])
        .arg(dir.join("keys/release.pub")));
    assert!(
        installed_out.contains("installed bundle 1.0.0")
            && installed_out.contains("+ postgres 16.14 linux-x64"),
        "{installed_out}"
    );
    let port = free_port();
    ok(&mut home.kojibox(&[
        "config",
        "service",
        "postgres",
        "--port",
        &format!("db={port}"),
    ]));
    let up = ok(&mut home.kojibox(&["up"]));
    assert!(up.contains("postgres: running"), "{up}");
    assert!(
        home.at("runtime/data/postgres/PG_VERSION").is_file(),
        "setup ran initdb"
    );
    psql(
        &home,
        port,
        "create table kept (n int); insert into kept values (42)",
    );
    assert_eq!(psql(&home, port, "select n from kept"), "42");
    // The superuser's password is the generated secret: without it (or with another) no way in.
    psql_refused(port, None);
    psql_refused(port, Some("not-the-password"));
    let (state, first) = postgres(&home);
    assert_eq!(state, "running");
    eprintln!("built, installed and answering in {:?}", started.elapsed());

    // The publisher again: 1.1.0, whose PostgreSQL is a new payload, into an update repository.
    let v2 = build(dir, &recipe(&tgz, "1.1.0", "16.14-r1"), "stack-1.1.0");
    let repo = dir.join("repo");
    ok(bundler()
        .arg("publish")
        .arg(&v2)
        .arg("--repo")
        .arg(&repo)
        .args(["--channel", "stable", "--key"])
        .arg(dir.join("keys/release.key")));
    std::fs::write(
        home.at("app/config/settings.json"),
        serde_json::json!({ "updateSource": repo }).to_string(),
    )
    .unwrap();

    // The update, through the running daemon: PostgreSQL restarts on 1.1.0 with its data.
    let check = ok(&mut home.kojibox(&["update", "check"]));
    assert!(check.contains("1.1.0 is available"), "{check}");
    let applied = ok(&mut home.kojibox(&["update", "apply"]));
    assert!(applied.contains("updated to 1.1.0"), "{applied}");
    assert_eq!(installed(&home), "1.1.0");
    let (state, second) = postgres(&home);
    assert_eq!(state, "running");
    assert_ne!(second, first, "PostgreSQL was restarted on the new payload");
    let exe = std::fs::read_link(format!("/proc/{}/exe", second.unwrap())).unwrap();
    assert!(
        exe.starts_with(home.at("runtime/bin/postgres/16.14-r1")),
        "{}",
        exe.display()
    );
    assert_eq!(
        psql(&home, port, "select n from kept"),
        "42",
        "the data survived"
    );

    // Back to 1.0.0, and still the same data.
    let rolled = ok(&mut home.kojibox(&["update", "rollback"]));
    assert!(rolled.contains("rolled back to 1.0.0"), "{rolled}");
    assert_eq!(installed(&home), "1.0.0");
    assert_eq!(psql(&home, port, "select n from kept"), "42");

    // Down: the daemon and PostgreSQL are gone, the port is free; everything verifies.
    let daemon = home.daemon_pid().unwrap();
    let (_, third) = postgres(&home);
    ok(&mut home.kojibox(&["down"]));
    assert!(!alive(daemon), "the daemon is gone");
    assert!(!alive(third.unwrap()), "PostgreSQL is gone");
    std::net::TcpListener::bind(("127.0.0.1", port)).expect("the port is free");
    let out = home.kojibox(&["verify"]).output().unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        report.contains("ok       postgres 16.14 linux-x64")
            && report.contains("ok       postgres 16.14-r1 linux-x64"),
        "{report}"
    );
    eprintln!("the whole path in {:?}", started.elapsed());
}
