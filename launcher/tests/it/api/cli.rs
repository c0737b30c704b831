//! The CLI as a user runs it against a home: `up`, `status`, `rpc`, `stop/start/restart --wait`,
//! `logs`, `events`, `down`, with and without `--json`, and `serve` itself (its token, SIGTERM).

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use kojibox_manifests::event::EventEnvelope;
use kojibox_manifests::model::{LogEntry, ServiceState, ServiceStatus};
use rustix::process::Signal;
use serde_json::{Value, json};

use super::contract::error;
use super::{Api, WAIT, eventually, request, signal, table_row};
use crate::support::{Fixture, stderr, stdout, text};

/// A child killed (by pid) and reaped when dropped.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs `kojibox --home H ARGS` and waits for it, killing it (by pid) and failing the test if it
/// runs longer than `limit`.
fn kojibox(api: &Api, args: &[&str], limit: Duration) -> Output {
    let child = api
        .env
        .kojibox_command(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || tx.send(child.wait_with_output()));
    match rx.recv_timeout(limit) {
        Ok(out) => out.unwrap(),
        Err(_) => {
            signal(pid, Signal::KILL);
            let out = rx.recv().unwrap().unwrap();
            panic!(
                "`kojibox {}` still ran after {limit:?}:\n{}",
                args.join(" "),
                text(&out)
            );
        }
    }
}

/// Runs `kojibox --home H ARGS` (at most 30 s); returns (exit code, stdout, all of the output).
fn run(api: &Api, args: &[&str]) -> (i32, String, String) {
    let out = kojibox(api, args, Duration::from_secs(30));
    (out.status.code().unwrap_or(-1), stdout(&out), text(&out))
}

/// Whether something accepts connections on `port`.
fn listening(port: u16) -> bool {
    std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
}

#[test]
fn without_a_daemon_every_client_command_says_so_and_fails() {
    let api = Api::home(&[]);
    let home = api.env.home_dir().display().to_string();
    let commands: [&[&str]; 7] = [
        &["status"],
        &["--json", "status"],
        &["rpc", "services.list"],
        &["start", "web", "--wait"],
        // Stored lines are read without a daemon; following them needs one.
        &["logs", "worker", "-n", "5", "-f"],
        &["events"],
        &["restart", "worker"],
    ];
    for args in commands {
        let out = kojibox(&api, args, WAIT);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", text(&out));
        let message = stderr(&out);
        assert!(
            message.contains(&format!("no kojibox daemon runs for {home}"))
                && message.contains("kojibox up"),
            "{args:?}: {}",
            text(&out)
        );
    }
    // A daemon killed without cleanup left api.json behind, and another program listens on
    // its port now: its pid is gone, so nothing (no token) is sent there.
    let state = api.env.at("app/state");
    std::fs::create_dir_all(&state).unwrap();
    let stranger = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", stranger.local_addr().unwrap());
    std::fs::write(
        state.join("api.json"),
        json!({"url": url, "pid": 4_000_000}).to_string(),
    )
    .unwrap();
    std::fs::write(state.join("api-token"), "0".repeat(64)).unwrap();
    let out = kojibox(&api, &["status"], WAIT);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        stderr(&out).contains("names pid 4000000, which has stopped"),
        "{}",
        text(&out)
    );
    stranger.set_nonblocking(true).unwrap();
    assert!(
        stranger.accept().is_err(),
        "nothing connected to the stranger"
    );
    // A live pid but nobody answers at the url.
    let url = format!("http://127.0.0.1:{}", super::free_port());
    std::fs::write(
        state.join("api.json"),
        json!({"url": url, "pid": std::process::id()}).to_string(),
    )
    .unwrap();
    let out = kojibox(&api, &["status"], WAIT);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        stderr(&out).contains(&format!("nothing answers at {url}")),
        "{}",
        text(&out)
    );
    // `down` with nothing running has nothing to do.
    let (code, said, all) = run(&api, &["down"]);
    assert_eq!(code, 0, "{all}");
    assert!(said.contains("no kojibox daemon runs"), "{all}");
}

#[test]
fn up_status_rpc_stop_start_logs_events_and_down_as_a_user_runs_them() {
    let mut api = Api::home(&[]);
    let out = kojibox(&api, &["up"], Duration::from_secs(30));
    if api.endpoint().is_some() {
        api.attach();
    }
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let daemon = api.pid;
    assert!(
        kojibox_proc::is_alive(daemon),
        "up leaves the daemon running in the background"
    );
    let mode = std::fs::metadata(api.env.at("app/state/api-token"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "api-token must be private");
    let states = api.list();
    for state in &states {
        assert_eq!(
            state.state,
            ServiceStatus::Running,
            "{state:?}\n{}",
            text(&out)
        );
        let line = format!("{}: running (pid {})", state.id, state.pid.unwrap());
        assert!(stdout(&out).contains(&line), "`{line}` in {}", text(&out));
    }
    let pid_of = |id: &str| {
        states
            .iter()
            .find(|s| s.id == id)
            .unwrap()
            .pid
            .unwrap()
            .to_string()
    };

    let (code, table, all) = run(&api, &["status"]);
    assert_eq!(code, 0, "{all}");
    assert!(
        table.contains(&format!(
            "daemon pid {daemon} at http://127.0.0.1:{}",
            api.port
        )),
        "{all}"
    );
    let header: Vec<&str> = table
        .lines()
        .nth(1)
        .unwrap_or("")
        .split_whitespace()
        .collect();
    assert_eq!(
        header,
        [
            "SERVICE", "STATE", "PID", "PORTS", "UPTIME", "LAST", "ERROR"
        ],
        "{all}"
    );
    let ports = format!("http:{}", api.web_port);
    assert_eq!(
        table_row(&table, "web")[..4],
        ["web", "running", &pid_of("web"), &ports],
        "{all}"
    );
    assert_eq!(
        table_row(&table, "worker")[..3],
        ["worker", "running", &pid_of("worker")],
        "{all}"
    );

    let (code, json_status, all) = run(&api, &["--json", "status"]);
    assert_eq!(code, 0, "{all}");
    let rows: Vec<Value> =
        serde_json::from_str(&json_status).unwrap_or_else(|e| panic!("{e}: {all}"));
    assert_eq!(rows.len(), 2, "{all}");
    for row in &rows {
        let state: ServiceState = serde_json::from_value(row["state"].clone()).unwrap();
        assert_eq!(state.state, ServiceStatus::Running, "{row}");
        assert!(row["uptimeSec"].is_u64(), "{row}");
    }
    assert_eq!(
        rows[0]["ports"],
        json!([{"name": "http", "port": api.web_port, "protocol": "tcp"}])
    );
    assert_eq!(rows[1]["ports"], json!([]));

    let (code, envelope, all) = run(&api, &["rpc", "services.list"]);
    assert_eq!(code, 0, "{all}");
    let envelope: Value = serde_json::from_str(&envelope).unwrap_or_else(|e| panic!("{e}: {all}"));
    let listed: kojibox_manifests::Response<Vec<ServiceState>> =
        serde_json::from_value(envelope).unwrap();
    assert_eq!(listed.into_result().unwrap(), api.list());
    let (code, envelope, all) = run(&api, &["rpc", "services.start", r#"{"id":"nope"}"#]);
    assert_eq!(code, 1, "{all}");
    let failed = error(&serde_json::from_str(&envelope).unwrap_or_else(|e| panic!("{e}: {all}")));
    assert_eq!(
        serde_json::to_value(failed.code).unwrap(),
        "NOT_FOUND",
        "{all}"
    );
    let (code, envelope, all) = run(&api, &["rpc", "services.lst"]);
    assert_eq!(code, 1, "{all}");
    assert!(
        envelope.contains("METHOD_NOT_FOUND") && envelope.contains("services.list"),
        "{all}"
    );

    let (code, said, all) = run(&api, &["stop", "web", "--wait"]);
    assert_eq!((code, said.as_str()), (0, "web: stopped\n"), "{all}");
    assert_eq!(api.state("web").state, ServiceStatus::Stopped);
    assert!(
        api.processes("web").is_empty() && !listening(api.web_port),
        "{:?}",
        api.processes("web")
    );
    let (code, said, all) = run(&api, &["start", "web", "--wait"]);
    let web = api.state("web");
    assert_eq!(code, 0, "{all}");
    assert_eq!(
        said,
        format!("web: running (pid {})\n", web.pid.unwrap()),
        "{all}"
    );
    assert_eq!(web.state, ServiceStatus::Running);
    assert!(listening(api.web_port));

    let lines = || {
        api.call::<kojibox_manifests::api::methods::ServicesLogs>(json!({"id": "worker"}))
            .len()
    };
    assert!(
        eventually(WAIT, || lines() > 10),
        "the worker keeps printing"
    );
    let (code, said, all) = run(&api, &["logs", "worker", "-n", "5"]);
    assert_eq!(code, 0, "{all}");
    assert_eq!(said.lines().count(), 5, "{all}");
    assert!(
        said.lines()
            .all(|l| l.contains(" INFO ") && l.contains("tick ")),
        "{all}"
    );
    let (code, said, all) = run(&api, &["--json", "logs", "worker", "-n", "3"]);
    assert_eq!(code, 0, "{all}");
    let entries: Vec<LogEntry> = said
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(entries.len(), 3, "{all}");
    assert!(entries.iter().all(|e| e.service == "worker"), "{all}");

    let events = filtered_events_see_a_restart(&api);
    assert!(!events.is_empty());

    let (code, said, all) = run(&api, &["down"]);
    assert_eq!(code, 0, "{all}");
    assert!(
        said.contains(&format!("stopped the daemon (pid {daemon})")),
        "{all}"
    );
    assert!(!kojibox_proc::is_alive(daemon), "the daemon is gone");
    assert!(
        api.all_processes().is_empty(),
        "left behind: {:?}",
        api.all_processes()
    );
    assert!(
        !api.env.at("app/state/api.json").exists() && !api.env.at("app/state/api-token").exists()
    );
    assert!(!listening(api.web_port) && !listening(api.port));
    let (code, _, all) = run(&api, &["status"]);
    assert_eq!(code, 1, "{all}");
}

/// Runs `kojibox events --filter service:stateChanged` and restarts `worker` until the stream
/// shows a whole restart (the command may connect after the first one began); every line must
/// be an event envelope of that one name. Returns the lines' envelopes.
fn filtered_events_see_a_restart(api: &Api) -> Vec<EventEnvelope> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_kojibox"))
        .arg("--home")
        .arg(api.env.home_dir())
        .args(["events", "--filter", "service:stateChanged"])
        .env_remove("KOJIBOX_HOME")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let out = child.stdout.take().unwrap();
    let child = Killed(child);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { return };
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    std::thread::sleep(Duration::from_millis(200));
    let mut envelopes: Vec<EventEnvelope> = Vec::new();
    for _ in 0..3 {
        let (code, said, all) = run(api, &["restart", "worker", "--wait"]);
        assert_eq!(code, 0, "{all}");
        let pid = api.state("worker").pid.unwrap();
        assert_eq!(said, format!("worker: running (pid {pid})\n"), "{all}");
        let deadline = Instant::now() + WAIT;
        let running = |e: &EventEnvelope| {
            let v = serde_json::to_value(e).unwrap();
            v["data"]["id"] == "worker"
                && v["data"]["state"] == "running"
                && v["data"]["pid"] == pid
        };
        while !envelopes.iter().any(running) {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = rx.recv_timeout(left).unwrap_or_else(|_| {
                panic!("no line for worker running (pid {pid}); got {envelopes:#?}")
            });
            let value: Value =
                serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
            assert_eq!(
                value["event"], "service:stateChanged",
                "only the filtered event: {line}"
            );
            assert!(value["id"].is_u64(), "{line}");
            envelopes.push(serde_json::from_value(value).unwrap());
        }
        let mut states: Vec<String> = envelopes
            .iter()
            .map(|e| serde_json::to_value(e).unwrap())
            .filter(|v| v["data"]["id"] == "worker")
            .map(|v| v["data"]["state"].as_str().unwrap().to_owned())
            .collect();
        states.dedup();
        // A restart goes from `stopping` straight to `starting` (no `stopped` in between).
        if states.ends_with(&["stopping", "starting", "running"].map(String::from)) {
            for pair in envelopes.windows(2) {
                assert!(pair[1].id > pair[0].id, "ids increase");
            }
            drop(child);
            return envelopes;
        }
    }
    panic!("`kojibox events` never showed a whole restart: {envelopes:#?}");
}

#[test]
fn serve_writes_a_fresh_private_token_each_start_and_sigterm_stops_everything_then_exits_0() {
    let mut api = Api::home(&[]);
    let refused = kojibox(&api, &["serve", "--listen", "0.0.0.0:0"], WAIT);
    assert_eq!(refused.status.code(), Some(1), "{}", text(&refused));
    assert!(
        stderr(&refused).contains("is not 127.0.0.1 or [::1]"),
        "{}",
        text(&refused)
    );

    api.serve(&["--up"]);
    let first = api.token.clone();
    let daemon = api.pid;
    let token = api.env.at("app/state/api-token");
    assert_eq!(
        std::fs::metadata(&token).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let web = api.wait_for("web", ServiceStatus::Running).pid.unwrap();
    let worker = api.wait_for("worker", ServiceStatus::Running).pid.unwrap();
    // One daemon per home.
    let second = kojibox(&api, &["serve"], WAIT);
    assert_eq!(second.status.code(), Some(1), "{}", text(&second));
    assert_eq!(
        api.endpoint().map(|(_, pid)| pid),
        Some(daemon),
        "{}",
        text(&second)
    );

    signal(daemon, Signal::TERM);
    let started = Instant::now();
    let status = loop {
        if let Some(status) = api.child().try_wait().unwrap() {
            break status;
        }
        assert!(
            started.elapsed() < WAIT,
            "serve did not exit on SIGTERM:\n{}",
            api.stderr()
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(
        (status.code(), status.signal()),
        (Some(0), None),
        "{}",
        api.stderr()
    );
    // Stopped by the daemon before it exited (not merely killed with it).
    let narrated = ["web: stopped", "worker: stopped", "all services stopped"];
    let complete = || {
        narrated
            .iter()
            .all(|l| api.stderr().lines().any(|s| s.starts_with(l)))
    };
    assert!(eventually(WAIT, complete), "{}", api.stderr());
    let said = api.stderr();
    assert!(
        !kojibox_proc::is_alive(web) && !kojibox_proc::is_alive(worker),
        "{said}"
    );
    assert!(
        api.all_processes().is_empty(),
        "left behind: {:?}",
        api.all_processes()
    );
    assert!(!listening(api.web_port));
    assert!(
        !api.env.at("app/state/api.json").exists() && !token.exists(),
        "{said}"
    );
    api.reaped();

    api.serve(&[]);
    assert_ne!(api.token, first, "a new token at each start");
    assert_eq!(
        std::fs::metadata(&token).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let list = r#"{"method": "services.list", "params": {}}"#;
    let lines = [
        "POST /rpc HTTP/1.1".to_owned(),
        format!("Host: 127.0.0.1:{}", api.port),
        format!("Authorization: Bearer {first}"),
    ];
    let reply = super::exchange(api.port, &request(&lines, list.as_bytes()));
    assert_eq!(reply.status, 401, "the old token is void: {reply:?}");
    assert!(
        api.list().iter().all(|s| s.state == ServiceStatus::Stopped),
        "serve without --up starts nothing"
    );
}

/// `--help` says what kojibox is for (its first line is the user's, not a crate description)
/// and lists the commands, the internal watchdog hidden.
#[test]
fn help_says_what_kojibox_does_and_hides_the_watchdog() {
    let out = Command::new(env!("CARGO_BIN_EXE_kojibox"))
        .arg("--help")
        .output()
        .unwrap();
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        help.lines().next(),
        Some("kojibox: installs runtime bundles offline, supervises services, serves the API"),
        "{help}"
    );
    for command in [
        "install", "serve", "up", "down", "status", "update", "verify", "rpc",
    ] {
        assert!(
            help.contains(&format!("\n  {command} ")),
            "{command}: {help}"
        );
    }
    assert!(!help.contains("__watchdog"), "{help}");
}

#[test]
fn up_answers_every_service_when_one_cannot_start_and_the_cli_names_it() {
    let api = Api::boot(&[]);
    // Someone else holds web's port: web cannot start, worker can.
    let held = std::net::TcpListener::bind(("127.0.0.1", api.web_port)).unwrap();
    let answer = api.rpc("services.up", json!({}));
    let states = answer["result"]
        .as_array()
        .unwrap_or_else(|| panic!("a partial result, not an error: {answer}"));
    let by_id = |id: &str| {
        states
            .iter()
            .find(|s| s["id"] == id)
            .unwrap_or_else(|| panic!("{id} in {answer}"))
            .clone()
    };
    let web = by_id("web");
    assert_eq!(web["state"], "error", "{web}");
    assert!(
        web["lastError"]
            .as_str()
            .is_some_and(|e| e.contains(&api.web_port.to_string())),
        "{web}"
    );
    assert!(
        ["starting", "running"].contains(&by_id("worker")["state"].as_str().unwrap()),
        "{answer}"
    );
    api.wait_for("worker", ServiceStatus::Running);
    // `kojibox up` says which did not start, and exits 1.
    let out = kojibox(&api, &["up"], WAIT);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let said = stdout(&out);
    assert!(said.contains("worker: running"), "{said}");
    assert!(said.contains("web: error"), "{said}");
    drop(held);
}

#[test]
fn up_returns_at_once_naming_a_crash_looping_service() {
    let crashy = Fixture::new("crashy", r#"echo "no config file" >&2; exit 1"#)
        .template(|t| t.restart_policy = crate::supervise::policy(1000, 0));
    let api = Api::boot(&[crashy]);
    // Restarted for ever (maxRetries 1000): `up` must not wait until it gives up.
    let out = kojibox(&api, &["up"], Duration::from_secs(30));
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let said = stdout(&out);
    let line = said
        .lines()
        .find(|l| l.starts_with("crashy: "))
        .unwrap_or_else(|| panic!("no line for crashy: {said}"));
    assert!(
        line.contains("flapping, restarted") && line.contains("no config file"),
        "{line}"
    );
    assert!(said.contains("web: running"), "{said}");
    assert!(
        said.contains("2 of 3 service(s) running; not running: crashy"),
        "{said}"
    );
}
