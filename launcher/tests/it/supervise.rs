//! The supervisor with small fixture services (shell scripts in a real signed bundle, installed
//! into a fresh home under `/tmp`): restart policy, `dependsOn`, port conflicts, stop timeouts,
//! process groups. The library is driven in-process here; `daemon` runs the real binary and
//! `logs` covers the service logs.
//!
//! Fixtures write what they saw (timestamps from `date +%s%N`, pids) into their `${data}` folder,
//! so the tests measure the children themselves rather than the supervisor's own account.

mod config_files;
mod daemon;
mod escape;
mod groups;
mod logs;
mod storms;
mod users;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kojibox_manifests::error::{ErrorCode, ErrorSource};
use kojibox_manifests::event::Event;
use kojibox_manifests::model::{
    HealthCheck, HealthCheckType, RestartPolicy, ServiceState, ServiceStatus,
};
use launcher::supervisor::Supervisor;
use tokio::sync::broadcast;

use crate::support::{Env, Fixture};

/// How long any single wait may take before the test fails.
pub const WAIT: Duration = Duration::from_secs(10);

/// A home with fixtures installed, its supervisor, and every event it published.
pub struct Harness {
    pub env: Env,
    pub sup: Supervisor,
    pub events: Arc<Mutex<Vec<Event>>>,
    pub bus: broadcast::Sender<Event>,
    pub _reaper: Reaper,
}

/// When a test fails, SIGKILLs the process group of every service still running, so a failed
/// test leaves no grandchild behind (the death signal reaches direct children only).
pub struct Reaper(Vec<tokio::sync::watch::Receiver<ServiceState>>);

impl Drop for Reaper {
    fn drop(&mut self) {
        if std::thread::panicking() {
            for state in &self.0 {
                if let Some(pid) = state.borrow().pid {
                    let _ = kojibox_proc::signal_group(pid, kojibox_proc::Signal::Kill);
                }
            }
        }
    }
}

/// Installs `fixtures` into a fresh home and starts a supervisor on it.
pub async fn harness(fixtures: &[Fixture]) -> Harness {
    let env = Env::for_services();
    env.install_fixtures(fixtures);
    let (bus, mut rx) = broadcast::channel(4096);
    let events = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&events);
    tokio::spawn(async move {
        loop {
            match rx.recv().await {
                // Enough for any assertion; a chatty child is not made to fill memory.
                Ok(Event::ServiceLogLine(_)) if sink.lock().unwrap().len() > 10_000 => {}
                Ok(event) => sink.lock().unwrap().push(event),
                Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => return,
            }
        }
    });
    let (sup, notes) = Supervisor::start(&env.home(), bus.clone()).await.unwrap();
    assert!(notes.is_empty(), "{notes:?}");
    let reaper = Reaper(
        sup.ids()
            .iter()
            .map(|id| sup.subscribe(id).unwrap())
            .collect(),
    );
    Harness {
        env,
        sup,
        events,
        bus,
        _reaper: reaper,
    }
}

impl Harness {
    /// `runtime/data/<id>/<file>`.
    pub fn data(&self, id: &str, file: &str) -> PathBuf {
        self.env.at(&format!("runtime/data/{id}/{file}"))
    }

    /// Every `service:stateChanged` so far: (id, state, pid).
    pub fn states(&self) -> Vec<(String, ServiceStatus, Option<u32>)> {
        self.events
            .lock()
            .unwrap()
            .iter()
            .filter_map(|e| match e {
                Event::ServiceStateChanged(s) => Some((s.id.clone(), s.state, s.pid)),
                _ => None,
            })
            .collect()
    }

    /// Whether an event matching `wanted` arrives within 2 s (or came already).
    pub async fn saw(&self, wanted: impl Fn(&Event) -> bool) -> bool {
        eventually(Duration::from_secs(2), || {
            self.events.lock().unwrap().iter().any(&wanted)
        })
        .await
    }

    /// Waits until `id` is running; returns its state.
    pub async fn running(&self, id: &str) -> ServiceState {
        self.sup
            .wait_for(id, WAIT, |s| s.state == ServiceStatus::Running)
            .await
            .unwrap_or_else(|e| panic!("{id} is not running: {e}; logs: {:#?}", self.log(id)))
    }

    /// The messages of `id`'s log tail.
    pub fn log(&self, id: &str) -> Vec<String> {
        self.sup
            .logs(id, Some(200))
            .unwrap()
            .into_iter()
            .map(|e| e.message)
            .collect()
    }
}

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A Python the service user can run (the one on root's `PATH` may sit in `/root`).
pub fn python() -> &'static str {
    ["/usr/bin/python3", "/usr/local/bin/python3", "/bin/python3"]
        .into_iter()
        .find(|p| Path::new(p).is_file())
        .expect("the fixtures need a system python3 (apt-get install python3)")
}

/// The `date +%s%N` timestamps in a file, one a line.
pub fn read_ns(path: &Path) -> Vec<u64> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .split_whitespace()
        .map(|l| l.parse().unwrap())
        .collect()
}

/// A pid written by a fixture, once it is there.
pub async fn read_pid(path: &Path) -> u32 {
    let started = Instant::now();
    loop {
        if let Some(pid) = std::fs::read_to_string(path)
            .ok()
            .and_then(|t| t.trim().parse().ok())
        {
            return pid;
        }
        assert!(started.elapsed() < WAIT, "no pid in {}", path.display());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Polls `done` every 10 ms for up to `limit`; whether it came true.
pub async fn eventually(limit: Duration, done: impl Fn() -> bool) -> bool {
    let started = Instant::now();
    while !done() {
        if started.elapsed() > limit {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    true
}

/// Whether `pid` runs (a zombie does not: it holds nothing).
pub fn alive(pid: u32) -> bool {
    kojibox_proc::is_alive(pid)
}

pub fn policy(max_retries: u32, backoff_ms: u64) -> Option<RestartPolicy> {
    Some(RestartPolicy {
        max_retries,
        backoff_ms,
    })
}

/// The API code of an error, as the wire spells it.
pub fn code(e: &launcher::supervisor::Error) -> (ErrorCode, String) {
    use kojibox_home::ToApi;
    let api = e.to_api(ErrorSource::Services, "2026-01-01T00:00:00Z");
    assert_eq!(api.source, ErrorSource::Services);
    (api.code, api.detail)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_loop_ends_in_error_after_max_retries_with_growing_delays() {
    let script = r#"date +%s%N >> "$DATA/spawns"; echo "crashing now" >&2; exit 1"#;
    let crashy = Fixture::new("crashy", script).template(|t| t.restart_policy = policy(3, 300));
    let h = harness(&[crashy]).await;
    let answer = h.sup.start_service("crashy").await.unwrap();
    assert_eq!(
        answer.state,
        ServiceStatus::Starting,
        "start answers at once"
    );
    let end = h
        .sup
        .wait_for("crashy", WAIT, |s| s.state == ServiceStatus::Error)
        .await
        .unwrap();
    // Nothing more is spawned after giving up.
    tokio::time::sleep(Duration::from_millis(900)).await;
    let spawns = read_ns(&h.data("crashy", "spawns"));
    assert_eq!(spawns.len(), 4, "maxRetries 3 = 1 + 3 spawns: {spawns:?}");
    let gaps: Vec<f64> = spawns
        .windows(2)
        .map(|w| (w[1] - w[0]) as f64 / 1e6)
        .collect();
    for (n, gap) in gaps.iter().enumerate() {
        let expected = 300.0 * f64::from(1u32 << n);
        assert!(
            *gap >= 0.85 * expected && *gap <= 1.1 * expected + 300.0,
            "restart {} came {gap:.0} ms after the previous spawn, expected about {expected} ms \
             (all gaps: {gaps:?})",
            n + 1
        );
    }
    assert!(gaps.windows(2).all(|w| w[1] > w[0]), "{gaps:?}");
    let why = end.last_error.clone().unwrap();
    assert!(
        why.contains("gave up after 3 restart(s)")
            && why.contains("exited with status 1")
            && why.contains("crashing now"),
        "{why}"
    );
    assert_eq!(end.pid, None);
    assert_eq!(h.sup.state("crashy").unwrap().state, ServiceStatus::Error);

    // A manual start resets the count: a whole new round of 1 + 3 spawns.
    let again = h.sup.start_service("crashy").await.unwrap();
    assert_eq!(again.state, ServiceStatus::Starting);
    assert_eq!(again.last_error, None);
    h.sup
        .wait_for("crashy", WAIT, |s| s.state == ServiceStatus::Error)
        .await
        .unwrap();
    assert_eq!(read_ns(&h.data("crashy", "spawns")).len(), 8);
    h.sup.shutdown().await;
}

/// `db` listens 500 ms after it starts, so it is `starting` (port check failing) for a while.
pub fn db_and_web(db_port: u16) -> Vec<Fixture> {
    let db = r#"date +%s%N > "$DATA/spawned"
exec PYTHON -c '
import socket, sys, time
time.sleep(0.5)
open(sys.argv[2], "w").write("%d\n" % time.time_ns())
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1])))
s.listen(16)
while True:
    s.accept()[0].close()
' "$PORT_DB" "$DATA/listening""#
        .replace("PYTHON", python());
    let db = Fixture::new("db", &db).port("db", db_port).template(|t| {
        t.health_check = Some(HealthCheck {
            kind: HealthCheckType::Port,
            target: "127.0.0.1:${port.db}".into(),
            timeout_ms: 200,
            interval_ms: 50,
        });
    });
    let web = Fixture::new("web", r#"date +%s%N > "$DATA/spawned"; exec sleep 300"#)
        .template(|t| t.depends_on = vec!["db".into()]);
    // The dependent first: the supervisor orders them, not the bundle.
    vec![web, db]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dependencies_start_first_and_stop_last() {
    let port = free_port();
    let h = harness(&db_and_web(port)).await;
    assert_eq!(h.sup.ids(), ["db", "web"]);
    let check = h.sup.health("db").unwrap();
    assert_eq!(
        (check.kind, check.target.as_str()),
        (HealthCheckType::Port, format!("127.0.0.1:{port}").as_str()),
        "placeholders expand in the health target"
    );

    let answer = h.sup.start_service("web").await.unwrap();
    assert_eq!(answer.state, ServiceStatus::Starting);
    assert_eq!(h.sup.state("db").unwrap().state, ServiceStatus::Starting);
    h.running("web").await;
    assert_eq!(h.sup.state("db").unwrap().state, ServiceStatus::Running);

    let [db_spawned] = read_ns(&h.data("db", "spawned"))[..] else {
        panic!()
    };
    let [db_listening] = read_ns(&h.data("db", "listening"))[..] else {
        panic!()
    };
    let [web_spawned] = read_ns(&h.data("web", "spawned"))[..] else {
        panic!()
    };
    assert!(
        web_spawned > db_listening && db_listening >= db_spawned + 450_000_000,
        "web spawned {} ms after db, which listened after {} ms",
        (web_spawned as i64 - db_spawned as i64) / 1_000_000,
        (db_listening - db_spawned) / 1_000_000
    );
    let states = h.states();
    let db_running = states
        .iter()
        .position(|s| s.0 == "db" && s.1 == ServiceStatus::Running);
    let web_spawned = states.iter().position(|s| s.0 == "web" && s.2.is_some());
    assert!(
        db_running.is_some() && db_running < web_spawned,
        "db must be running before web spawns: {states:?}"
    );
    assert!(
        h.saw(|e| matches!(e, Event::ServiceHealth(h) if h.id == "db"
            && h.status == kojibox_manifests::event::HealthStatus::Healthy))
            .await
    );

    // Shutdown: web is stopped entirely before db is asked to stop.
    let before = h.states().len();
    let (db_pid, web_pid) = (
        h.sup.state("db").unwrap().pid.unwrap(),
        h.sup.state("web").unwrap().pid.unwrap(),
    );
    let Harness {
        env, sup, events, ..
    } = h;
    sup_shutdown(sup).await;
    let after = || -> Vec<(String, ServiceStatus)> {
        events
            .lock()
            .unwrap()
            .iter()
            .filter_map(|e| match e {
                Event::ServiceStateChanged(s) => Some((s.id.clone(), s.state)),
                _ => None,
            })
            .skip(before)
            .collect()
    };
    let db_stopped = ("db".to_owned(), ServiceStatus::Stopped);
    assert!(eventually(WAIT, || after().contains(&db_stopped)).await);
    let after = after();
    let web_stopped = after
        .iter()
        .position(|s| *s == ("web".into(), ServiceStatus::Stopped));
    let db_stopping = after
        .iter()
        .position(|s| *s == ("db".into(), ServiceStatus::Stopping));
    assert!(
        web_stopped.is_some() && web_stopped < db_stopping,
        "shutdown must stop web before db: {after:?}"
    );
    assert!(!alive(db_pid) && !alive(web_pid));
    drop(env);
}

pub async fn sup_shutdown(sup: Supervisor) {
    tokio::time::timeout(WAIT, sup.shutdown())
        .await
        .expect("shutdown hangs");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_dependency_puts_the_dependent_in_error_naming_it() {
    let sleeper = r#"date +%s%N > "$DATA/spawned"; exec sleep 300"#;
    let h = harness(&[
        Fixture::new("broken", r#"echo "broken: cannot start" >&2; exit 1"#),
        Fixture::new("app", sleeper).template(|t| t.depends_on = vec!["broken".into()]),
    ])
    .await;
    // The dependency starts, then fails while the dependent waits for it.
    h.sup.start_service("app").await.unwrap();
    let app = h
        .sup
        .wait_for("app", WAIT, |s| s.state == ServiceStatus::Error)
        .await
        .unwrap();
    let why = app.last_error.unwrap();
    assert!(
        why.contains("broken"),
        "lastError must name the dependency: {why}"
    );
    assert_eq!(h.sup.state("broken").unwrap().state, ServiceStatus::Error);
    assert!(!h.data("app", "spawned").exists(), "app must never spawn");
    sup_shutdown(h.sup).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dependency_that_cannot_start_puts_the_dependent_in_error_naming_it() {
    let held_port = free_port();
    let sleeper = r#"date +%s%N > "$DATA/spawned"; exec sleep 300"#;
    let h = harness(&[
        Fixture::new("blocked", "exec sleep 300").port("http", held_port),
        Fixture::new("app", sleeper).template(|t| t.depends_on = vec!["blocked".into()]),
    ])
    .await;
    // Taken after the registry gave it to `blocked` (ports are sticky: no silent move).
    let held = std::net::TcpListener::bind(("127.0.0.1", held_port)).unwrap();
    // The dependency's port is taken: the answer says so at once...
    let err = h.sup.start_service("app").await.unwrap_err();
    let (code, detail) = code(&err);
    assert_eq!(code, ErrorCode::DependencyFailed, "{detail}");
    assert!(
        detail.contains("blocked") && detail.contains(&held_port.to_string()),
        "{detail}"
    );
    assert!(!h.data("app", "spawned").exists());
    // ... and the dependent is in error, naming it, like any dependent of a failed dependency.
    let app = h.sup.state("app").unwrap();
    assert_eq!(
        app.state,
        ServiceStatus::Error,
        "a dependency that fails puts the dependent in error: {app:?}"
    );
    assert!(
        app.last_error
            .as_deref()
            .is_some_and(|e| e.contains("blocked")),
        "{app:?}"
    );
    drop(held);
    sup_shutdown(h.sup).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dependency_cycles_are_refused_at_start() {
    let env = Env::for_services();
    env.install_fixtures(&[
        Fixture::new("a", "exec sleep 300").template(|t| t.depends_on = vec!["b".into()]),
        Fixture::new("b", "exec sleep 300").template(|t| t.depends_on = vec!["a".into()]),
    ]);
    let (bus, _rx) = broadcast::channel(16);
    let Err(err) = Supervisor::start(&env.home(), bus).await else {
        panic!("a cycle must be refused")
    };
    let (code, detail) = code(&err);
    assert_eq!(code, ErrorCode::ValidationFailed, "{detail}");
    assert!(
        detail.contains("cycle") && detail.contains("a") && detail.contains("b"),
        "{detail}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_port_held_by_the_test_is_a_port_conflict_naming_its_pid() {
    let port = free_port();
    let web =
        Fixture::new("web", r#"date +%s%N > "$DATA/spawned"; exec sleep 300"#).port("http", port);
    let h = harness(&[web]).await;
    assert_eq!(h.sup.definition("web").unwrap().ports[0].port, port);
    // Taken after the registry gave it to `web` (ports are sticky: no silent move).
    let held = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();

    let err = h.sup.start_service("web").await.unwrap_err();
    let (code, detail) = code(&err);
    assert_eq!(code, ErrorCode::PortConflict, "{detail}");
    assert_eq!(
        serde_json::to_value(code).unwrap(),
        "PORT_CONFLICT",
        "the wire code"
    );
    assert!(
        detail.contains(&format!("port {port}"))
            && detail.contains(&format!("process {}", std::process::id())),
        "the detail must name port {port} and this test's pid {}: {detail}",
        std::process::id()
    );
    let state = h.sup.state("web").unwrap();
    assert_eq!(state.state, ServiceStatus::Error);
    assert!(
        state
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains(&port.to_string())),
        "{state:?}"
    );
    assert!(
        h.saw(|e| matches!(e, Event::ServiceStateChanged(s)
            if s.id == "web" && s.state == ServiceStatus::Error))
            .await
    );
    assert!(!h.data("web", "spawned").exists(), "nothing was spawned");

    // Once the port is free, the same port is used (ports are sticky, never moved).
    drop(held);
    h.sup.start_service("web").await.unwrap();
    h.running("web").await;
    assert_eq!(h.sup.definition("web").unwrap().ports[0].port, port);
    sup_shutdown(h.sup).await;
}

/// `kill -SIG pid`.
pub fn kill(pid: u32, signal: i32) {
    let status = std::process::Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status()
        .unwrap();
    assert!(status.success(), "kill -{signal} {pid}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_home_is_permission_denied() {
    if !kojibox_proc::current_is_root() {
        eprintln!("skipped: services change user only when kojibox runs as root");
        return;
    }
    let env = Env::for_services();
    env.install_fixtures(&[Fixture::new("svc", "exec sleep 300")]);
    crate::support::set_mode(env.root(), 0o700);
    let (bus, _rx) = broadcast::channel(16);
    let (sup, _) = Supervisor::start(&env.home(), bus).await.unwrap();
    let err = sup.start_service("svc").await.unwrap_err();
    let (code, detail) = code(&err);
    assert_eq!(code, ErrorCode::PermissionDenied, "{detail}");
    assert!(
        detail.contains("-svc") && detail.contains(&env.root().display().to_string()),
        "the detail must name the user and the folder that blocks: {detail}"
    );
    assert_eq!(sup.state("svc").unwrap().state, ServiceStatus::Error);
    sup_shutdown(sup).await;
}

/// The registry gives a port once: the default when free, else the next free one of the range;
/// from then on it is the service's, even once the default is free again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_default_port_moves_to_the_next_free_one_once_and_then_stays() {
    let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let default = held.local_addr().unwrap().port();
    let web = Fixture::new("web", "exec sleep 300").port("http", default);
    let h = harness(&[web]).await;
    let given = h.sup.definition("web").unwrap().ports[0].port;
    assert_ne!(given, default, "the default is held by this test");
    assert!(
        (default..default.saturating_add(100)).contains(&given),
        "{given} is in the default range of {default}"
    );
    let registry: kojibox_manifests::model::PortRegistry =
        serde_json::from_slice(&std::fs::read(h.env.at("app/config/ports.json")).unwrap()).unwrap();
    assert_eq!(registry.assigned["web"], given);
    let env = h.sup.definition("web").unwrap().env;
    assert_eq!(
        env["PORT_HTTP"],
        given.to_string(),
        "${{port.http}} follows"
    );
    sup_shutdown(h.sup).await;

    drop(held);
    let (bus, _) = broadcast::channel(16);
    let (again, _) = Supervisor::start(&h.env.home(), bus).await.unwrap();
    assert_eq!(
        again.definition("web").unwrap().ports[0].port,
        given,
        "sticky: the freed default does not take it back"
    );
    sup_shutdown(again).await;
}

/// While the supervisor shuts down, a start or a restart answers `BUSY` (retryable) and starts
/// nothing: neither a service that is still stopping (which would prolong the shutdown) nor one
/// that is already stopped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starts_and_restarts_during_shutdown_answer_busy_and_start_nothing() {
    use kojibox_home::ToApi;
    let stubborn =
        r#"date +%s%N >> "$DATA/spawns"; trap '' TERM; echo ready; while :; do sleep 1; done"#;
    let idle = r#"date +%s%N >> "$DATA/spawns"; exec sleep 300"#;
    let h = harness(&[
        Fixture::new("slow", stubborn).template(|t| t.stop_timeout_ms = Some(1500)),
        Fixture::new("idle", idle),
    ])
    .await;
    h.sup.start_service("slow").await.unwrap();
    h.running("slow").await;
    assert!(
        eventually(WAIT, || h.log("slow").contains(&"ready".to_owned())).await,
        "the trap must be set before the shutdown"
    );
    let started = Instant::now();
    let (_, answers) = tokio::join!(h.sup.shutdown(), async {
        // The shutdown is under way: `slow` ignores SIGTERM for 1.5 s.
        assert!(
            eventually(WAIT, || h.sup.state("slow").unwrap().state
                == ServiceStatus::Stopping)
            .await
        );
        vec![
            h.sup.restart_service("slow").await,
            h.sup.start_service("slow").await,
            h.sup.start_service("idle").await,
            h.sup.restart_service("idle").await,
        ]
    });
    let took = started.elapsed();
    for answer in answers {
        let err = answer.expect_err("nothing starts while shutting down");
        let api = err.to_api(ErrorSource::Services, "2026-01-01T00:00:00Z");
        assert_eq!(api.code, ErrorCode::Busy, "{api:?}");
        assert!(api.retryable, "{api:?}");
    }
    assert!(
        took < Duration::from_secs(4),
        "the shutdown was not prolonged by a restart: {took:?}"
    );
    assert_eq!(
        read_ns(&h.data("slow", "spawns")).len(),
        1,
        "slow spawned once"
    );
    assert!(
        read_ns(&h.data("idle", "spawns")).is_empty(),
        "idle never spawned"
    );
    assert_eq!(h.sup.state("slow").unwrap().state, ServiceStatus::Stopped);
    assert_eq!(h.sup.state("idle").unwrap().state, ServiceStatus::Stopped);
}

/// A wait that runs out of time is `BUSY` (retryable: the same wait may succeed later), never a
/// validation error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wait_that_times_out_is_busy_and_retryable() {
    use kojibox_home::ToApi;
    let h = harness(&[Fixture::new("idle", "exec sleep 300")]).await;
    let err = h
        .sup
        .wait_for("idle", Duration::from_millis(100), |s| {
            s.state == ServiceStatus::Running
        })
        .await
        .unwrap_err();
    let api = err.to_api(ErrorSource::Services, "2026-01-01T00:00:00Z");
    assert_eq!(
        (api.code, api.retryable),
        (ErrorCode::Busy, true),
        "{api:?}"
    );
    assert!(api.detail.contains("idle is still"), "{api:?}");
    sup_shutdown(h.sup).await;
}
