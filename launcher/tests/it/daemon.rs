//! The daemon as a library value: `Daemon::start` in this process, on port 0, with an injected
//! shutdown future and watchdog command; the API answered over real HTTP; every task it spawned
//! ended when `join` returns. (`supervise::daemon` and `api` run the real binary.)

use std::sync::{Arc, Mutex};
use std::time::Duration;

use kojibox_manifests::api::{IdParams, methods};
use kojibox_manifests::error::ErrorCode;
use kojibox_manifests::model::ServiceStatus;
use launcher::client::{Client, ClientError};
use launcher::daemon::{Daemon, DaemonOptions, Notice, Notices};

use crate::supervise::{WAIT, alive, eventually};
use crate::support::{Env, Fixture};

/// A sink that keeps every notice.
fn collect() -> (Notices, Arc<Mutex<Vec<Notice>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&seen);
    let notices: Notices = Arc::new(move |n: Notice| sink.lock().unwrap().push(n));
    (notices, seen)
}

/// The launcher's own client, from a blocking thread.
async fn client(env: &Env) -> Client {
    let home = env.home();
    tokio::task::spawn_blocking(move || Client::connect(&home))
        .await
        .unwrap()
        .expect("the daemon answers")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daemon_runs_in_process_on_port_0_and_ends_with_its_shutdown_future() {
    let env = Env::for_services();
    env.install_fixtures(&[Fixture::new("worker", "echo started; exec sleep 300")]);
    let (notices, seen) = collect();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let mut watchdog = std::process::Command::new(env!("CARGO_BIN_EXE_kojibox"));
    watchdog.arg("__watchdog");
    let daemon = Daemon::start(
        env.home(),
        DaemonOptions {
            up: true,
            listen: Some("127.0.0.1:0".into()),
            watchdog: Some(watchdog),
            ..DaemonOptions::default()
        },
        notices,
        async {
            let _ = stopped.await;
        },
    )
    .await
    .unwrap();
    assert_ne!(daemon.addr().port(), 0, "port 0 became a real port");
    let endpoint = kojibox_home::endpoint::read(&env.home()).unwrap().unwrap();
    assert_eq!(endpoint.url, daemon.url());
    assert_eq!(endpoint.pid, std::process::id(), "served from this process");

    let api = client(&env).await;
    let pid = tokio::task::spawn_blocking(move || {
        let deadline = std::time::Instant::now() + WAIT;
        loop {
            let states = api
                .call::<methods::ServicesList>(&Default::default())
                .unwrap();
            if let Some(pid) = states
                .iter()
                .find(|s| s.id == "worker" && s.state == ServiceStatus::Running)
                .and_then(|s| s.pid)
            {
                return pid;
            }
            assert!(std::time::Instant::now() < deadline, "{states:?}");
            std::thread::sleep(Duration::from_millis(50));
        }
    })
    .await
    .unwrap();
    assert!(alive(pid));

    stop.send(()).unwrap();
    let exit = tokio::time::timeout(WAIT, daemon.join())
        .await
        .expect("the daemon stops")
        .unwrap();
    assert!(!exit.restart);
    assert!(!alive(pid), "the service is gone with the daemon");
    assert!(
        kojibox_home::endpoint::read(&env.home()).unwrap().is_none(),
        "api.json is removed"
    );
    let seen = seen.lock().unwrap().clone();
    let at = |wanted: &dyn Fn(&Notice) -> bool| seen.iter().position(wanted);
    let serving = at(&|n| matches!(n, Notice::Serving { services, .. } if services == &["worker"]));
    let running = at(&|n| matches!(n, Notice::Service(l) if l.starts_with("worker: running (pid")));
    let stopping = at(&|n| n == &Notice::Stopping);
    let down = at(&|n| matches!(n, Notice::Service(l) if l == "worker: stopped"));
    let last = at(&|n| n == &Notice::Stopped);
    assert!(
        serving < running && running < stopping && stopping < down && down < last,
        "{seen:#?}"
    );
    assert_eq!(
        last,
        Some(seen.len() - 1),
        "`all services stopped` comes last"
    );
    assert_eq!(seen.last().unwrap().to_string(), "all services stopped");
    // The daemon lock went with it: another daemon may start on the home.
    drop(env.home().lock(kojibox_home::LockName::Daemon).unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_the_daemon_shuts_down_the_api_answers_busy_to_restarts() {
    let env = Env::for_services();
    let stubborn = "trap '' TERM; echo ready; while :; do sleep 1; done";
    env.install_fixtures(&[
        Fixture::new("slow", stubborn).template(|t| t.stop_timeout_ms = Some(2000))
    ]);
    let (notices, _seen) = collect();
    let daemon = Daemon::start(
        env.home(),
        DaemonOptions {
            listen: Some("127.0.0.1:0".into()),
            ..DaemonOptions::default()
        },
        notices,
        std::future::pending(),
    )
    .await
    .unwrap();
    let api = client(&env).await;
    let api = Arc::new(api);
    let a = Arc::clone(&api);
    tokio::task::spawn_blocking(move || {
        a.call::<methods::ServicesStart>(&IdParams { id: "slow".into() })
            .unwrap();
    })
    .await
    .unwrap();
    let home = env.home();
    assert!(
        eventually(WAIT, || {
            std::fs::read_to_string(home.service_log("slow")).is_ok_and(|l| l.contains("ready"))
        })
        .await
    );
    daemon.shutdown();
    let a = Arc::clone(&api);
    let answer = tokio::task::spawn_blocking(move || {
        let deadline = std::time::Instant::now() + WAIT;
        loop {
            match a.call::<methods::ServicesRestart>(&IdParams { id: "slow".into() }) {
                // Not stopping yet: the restart went through (the shutdown has not begun).
                Ok(state) => assert!(std::time::Instant::now() < deadline, "{state:?}"),
                Err(e) => return e,
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    })
    .await
    .unwrap();
    let ClientError::Api(error) = answer else {
        panic!("an error envelope, not {answer}");
    };
    assert_eq!(error.code, ErrorCode::Busy, "{error:?}");
    assert!(error.retryable, "{error:?}");
    let exit = tokio::time::timeout(WAIT, daemon.join())
        .await
        .unwrap()
        .unwrap();
    assert!(!exit.restart);
}
