//! With the real PostgreSQL of the default recipe and the supervisor driven in-process:
//! `kojibox-bundle build` (from the npm tarball `ci/setup` fetched, no network), `kojibox
//! install`, start (setup runs `initdb`), `psql` answers `select 1`, `kill -9` of the postmaster
//! is survived, and a stop leaves no PostgreSQL process and a free port. Every connection needs
//! the generated superuser password (`postgres-password`): one without it, or with another, is
//! refused. When the tests run as root (CI), PostgreSQL runs as a user of its own (kojibox's
//! range, not `nobody`) owning its 0700 data folder, which also proves the home and data folder
//! work for an unprivileged service user; the password file setup used is gone.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use kojibox_manifests::model::ServiceStatus;
use kojibox_supervisor::Supervisor;
use tokio::sync::broadcast;

use crate::postgres::{artifact, password, psql_refused, recipe};
use crate::support::{Home, bundler, free_port, pids, text};

/// `select 1` until it answers (PostgreSQL listens before its recovery is over), off the
/// runtime's workers.
async fn answers(port: u16, password: &str) -> String {
    let password = password.to_owned();
    tokio::task::spawn_blocking(move || {
        crate::postgres::psql(port, &password, "select 1", Duration::from_secs(15))
    })
    .await
    .unwrap()
}

/// Processes whose executable lies under `dir`.
fn running_from(dir: &Path) -> Vec<(u32, PathBuf)> {
    pids()
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

fn kill(pid: u32, signal: i32) {
    let status = std::process::Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status()
        .unwrap();
    assert!(status.success(), "kill -{signal} {pid}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_builds_installs_runs_survives_kill_9_and_stops_clean() {
    let Some(tgz) = artifact() else {
        return;
    };
    let started = Instant::now();
    let env = Home::new();
    let work = tempfile::tempdir().unwrap();
    let recipe_path = work.path().join("postgres.toml");
    std::fs::write(&recipe_path, recipe(&tgz, "1.0.0", "16.14")).unwrap();
    std::fs::create_dir_all(work.path().join("bundles")).unwrap();
    let bundle = work.path().join("bundles/postgres.kbx");
    let built = bundler()
        .arg("build")
        .arg(&recipe_path)
        .arg("--out")
        .arg(&bundle)
        .args(["--target", "linux-x64", "--level", "1", "--cache"])
        .arg(work.path().join("cache"))
        .output()
        .unwrap();
    assert!(
        built.status.success(),
        "kojibox-bundle build:\n{}",
        text(&built)
    );
    let pubkey = work.path().join("bundles/postgres.pub");
    let install = env
        .kojibox(&[
            "install".as_ref(),
            bundle.as_os_str(),
            "--pubkey".as_ref(),
            pubkey.as_os_str(),
        ])
        .output()
        .unwrap();
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
    let home = kojibox_home::Home::at(env.root()).unwrap();
    let (sup, _) = Supervisor::start(&home, bus).await.unwrap();
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
        use std::os::unix::fs::MetadataExt;
        let uid = uid_of(first);
        assert!(
            kojibox_proc::SERVICE_IDS.contains(&uid),
            "PostgreSQL runs as a user of its own, not {uid}"
        );
        let data = std::fs::metadata(env.at("runtime/data/postgres")).unwrap();
        assert_eq!(
            (data.uid(), data.gid(), data.mode() & 0o7777),
            (uid, uid, 0o700)
        );
    }
    assert!(
        !env.at("runtime/data/.postgres.secrets").exists(),
        "the password file is removed once setup is over"
    );
    let password = password(&env);
    assert_eq!(answers(port, &password).await, "1");
    psql_refused(port, None);
    psql_refused(port, Some("not-the-password"));
    eprintln!("answering {:?} after the start", started.elapsed());

    kill(first, 9);
    let again = sup
        .wait_for("postgres", Duration::from_secs(30), |s| {
            s.state == ServiceStatus::Running && s.pid.is_some_and(|p| p != first)
        })
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", log(&sup)));
    assert_ne!(again.pid, Some(first));
    assert_eq!(
        answers(port, &password).await,
        "1",
        "answers again after kill -9"
    );

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
