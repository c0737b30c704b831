//! The API as its clients see it: the real `kojibox serve --listen 127.0.0.1:0` in a fresh home
//! under `/tmp`, with two fixture services in a real signed bundle: `web` (python listening on
//! `${port.http}`, port-checked) and `worker` (prints `tick N` every 100 ms, pid-checked).
//! Requests go over raw sockets ([`http`]), so every header is under the test's control.
//!
//! - [`contract`]: every request example of the contract, typed results and their shape;
//!   every method of the contract answers (a result, or `METHOD_NOT_FOUND` when not served).
//! - [`security`]: token, Host, Origin, body cap, bad requests, the browser cookie; each refused
//!   request is shown to have had no effect.
//! - [`events`]: `/events` (SSE), `Last-Event-ID` replay, a stalled consumer.
//! - [`cli`]: `kojibox up/status/rpc/start/stop/logs/events/down` as a user runs them.
//!
//! Every test owns an [`Api`]: dropping it, even on a failed assert, SIGKILLs the daemon it
//! started or adopted and every process whose environment names the home (the services and
//! their children), by pid.

mod browser;
mod cli;
mod config;
pub mod contract;
mod events;
mod flood;
mod http;
mod memory;
mod reload;
mod secrets;
mod security;
mod strict;

pub use http::{EventStream, Reply, Sse, connect, exchange, read_reply, request};

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kojibox_manifests::api::Method;
use kojibox_manifests::model::{HealthCheck, HealthCheckType, ServiceState, ServiceStatus};
use serde_json::{Value, json};

use crate::support::{Env, Fixture};

/// How long any single wait may take before the test fails.
pub const WAIT: Duration = Duration::from_secs(10);

/// A Python the service user (`nobody`) can run (the one on root's `PATH` may sit in `/root`).
pub fn python() -> &'static str {
    ["/usr/bin/python3", "/usr/local/bin/python3", "/bin/python3"]
        .into_iter()
        .find(|p| Path::new(p).is_file())
        .expect("the fixtures need a system python3 (apt-get install python3)")
}

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `web` (port-checked, listens on `web_port`) and `worker` (pid-checked, a line every 100 ms).
pub fn fixtures(web_port: u16) -> Vec<Fixture> {
    let web = r#"exec PYTHON -c '
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1])))
s.listen(16)
print("web listening on port", sys.argv[1], flush=True)
while True:
    s.accept()[0].close()
' "$PORT_HTTP""#
        .replace("PYTHON", python());
    let web = Fixture::new("web", &web)
        .port("http", web_port)
        .template(|t| {
            t.health_check = Some(HealthCheck {
                kind: HealthCheckType::Port,
                target: "127.0.0.1:${port.http}".into(),
                timeout_ms: 500,
                interval_ms: 50,
            });
        });
    let worker = Fixture::new(
        "worker",
        r#"i=0; while :; do i=$((i+1)); echo "tick $i"; sleep 0.1; done"#,
    );
    vec![web, worker]
}

/// Processes with an environment entry for which `hit` holds (a service's
/// `DATA=<home>/runtime/data/<id>`), zombies excluded: the services and everything they started.
pub fn processes_where(hit: impl Fn(&[u8]) -> bool) -> Vec<u32> {
    processes_by("environ", |entries| entries.split(|b| *b == 0).any(&hit))
}

/// Live processes whose `/proc/<pid>/<file>` satisfies `hit`.
fn processes_by(file: &str, hit: impl Fn(&[u8]) -> bool) -> Vec<u32> {
    crate::support::pids()
        .into_iter()
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/{file}")).is_ok_and(|content| hit(&content))
                && kojibox_proc::is_alive(*pid)
        })
        .collect()
}

/// Sends `signal` to `pid`.
pub fn signal(pid: u32, signal: rustix::process::Signal) {
    if let Some(pid) = rustix::process::Pid::from_raw(pid as i32) {
        let _ = rustix::process::kill_process(pid, signal);
    }
}

/// Polls `done` every 20 ms for up to `limit`; whether it came true.
pub fn eventually(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let started = Instant::now();
    while !done() {
        if started.elapsed() > limit {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    true
}

/// A home with the fixtures installed and (once [`serve`](Api::serve)d or
/// [`attach`](Api::attach)ed) the daemon serving it. Dropping it kills everything it started.
pub struct Api {
    pub env: Env,
    /// The port `web` listens on.
    pub web_port: u16,
    /// The API's port and token (once a daemon runs).
    pub port: u16,
    pub token: String,
    /// The daemon's pid (the `serve` child, or the adopted one).
    pub pid: u32,
    /// A shell snippet `serve` runs after, when set (`ulimit -n 256`, `cd DIR`).
    pub prelude: Option<String>,
    child: Option<Child>,
    adopted: Vec<(u32, Option<u64>)>,
    stderr: Arc<Mutex<Vec<String>>>,
}

impl Api {
    /// A fresh home with `web`, `worker` and `extra` installed; no daemon yet.
    pub fn home(extra: &[Fixture]) -> Api {
        let env = Env::for_services();
        let web_port = free_port();
        let mut all = fixtures(web_port);
        all.extend_from_slice(extra);
        env.install_fixtures(&all);
        Api {
            env,
            web_port,
            port: 0,
            token: String::new(),
            pid: 0,
            prelude: None,
            child: None,
            adopted: Vec::new(),
            stderr: Arc::default(),
        }
    }

    /// A fresh home (see [`home`](Api::home)) served by `kojibox serve --listen 127.0.0.1:0`.
    pub fn boot(extra: &[Fixture]) -> Api {
        let mut api = Api::home(extra);
        api.serve(&[]);
        api
    }

    /// Starts `kojibox --home H serve --listen 127.0.0.1:0 ARGS` and waits until it serves.
    pub fn serve(&mut self, args: &[&str]) {
        self.serve_with(args, None, &[]);
    }

    /// [`serve`](Api::serve), writing `input` to its standard input, with `envs` set.
    pub fn serve_with(&mut self, args: &[&str], input: Option<&str>, envs: &[(&str, &str)]) {
        assert!(self.child.is_none(), "a daemon already runs");
        let mut command = match &self.prelude {
            None => Command::new(env!("CARGO_BIN_EXE_kojibox")),
            Some(prelude) => {
                let mut sh = Command::new("sh");
                sh.args(["-c", &format!("{prelude} && exec \"$0\" \"$@\"")])
                    .arg(env!("CARGO_BIN_EXE_kojibox"));
                sh
            }
        };
        let mut child = command
            .arg("--home")
            .arg(self.env.home_dir())
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(args)
            .env_remove("KOJIBOX_HOME")
            .env_remove("KOJIBOX_PASSPHRASE")
            .envs(envs.iter().copied())
            .stdin(if input.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        if let (Some(input), Some(mut stdin)) = (input, child.stdin.take()) {
            std::io::Write::write_all(&mut stdin, input.as_bytes()).unwrap();
        }
        let stderr = child.stderr.take().unwrap();
        self.stderr.lock().unwrap().clear();
        let sink = Arc::clone(&self.stderr);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { return };
                sink.lock().unwrap().push(line);
            }
        });
        let pid = child.id();
        self.child = Some(child);
        let ready = eventually(WAIT, || {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("serve exited at once ({status}):\n{}", self.stderr());
            }
            self.endpoint().is_some_and(|(_, p)| p == pid)
        });
        assert!(
            ready,
            "serve wrote no api.json within {WAIT:?}:\n{}",
            self.stderr()
        );
        self.read_endpoint();
    }

    /// Adopts the daemon `api.json` names (one `kojibox up` started), so the guard kills it.
    pub fn attach(&mut self) {
        self.read_endpoint();
        let pid = self.pid;
        self.adopted
            .push((pid, kojibox_proc::process_start_time(pid)));
    }

    /// `api.json`'s port and pid, when it is there.
    pub fn endpoint(&self) -> Option<(u16, u32)> {
        let text = std::fs::read_to_string(self.env.at("app/state/api.json")).ok()?;
        let value: Value = serde_json::from_str(&text).ok()?;
        let url = value["url"].as_str()?;
        let port = url.strip_prefix("http://127.0.0.1:")?.parse().ok()?;
        Some((port, u32::try_from(value["pid"].as_u64()?).ok()?))
    }

    fn read_endpoint(&mut self) {
        let (port, pid) = self.endpoint().expect("api.json names the daemon");
        self.port = port;
        self.pid = pid;
        self.token = std::fs::read_to_string(self.env.at("app/state/api-token"))
            .expect("api-token is written with api.json")
            .trim()
            .to_owned();
        assert_eq!(
            self.token.len(),
            64,
            "a 32-byte hex token: {:?}",
            self.token
        );
    }

    /// What `serve` printed on stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().join("\n")
    }

    /// The `serve` child (for signals and its exit status).
    pub fn child(&mut self) -> &mut Child {
        self.child.as_mut().expect("a serve child")
    }

    /// Forgets the `serve` child once it has exited (so a new one can be started).
    pub fn reaped(&mut self) {
        self.child = None;
    }

    /// `Host` and `Authorization` lines for this daemon.
    pub fn auth(&self) -> Vec<String> {
        vec![
            format!("Host: 127.0.0.1:{}", self.port),
            format!("Authorization: Bearer {}", self.token),
        ]
    }

    /// `POST /rpc` with our Host and token, `extra` header lines, and `body`.
    pub fn post(&self, extra: &[&str], body: &[u8]) -> Reply {
        let mut lines = vec!["POST /rpc HTTP/1.1".to_owned()];
        lines.extend(self.auth());
        lines.push("Content-Type: application/json".into());
        lines.extend(extra.iter().map(|s| (*s).to_owned()));
        exchange(self.port, &request(&lines, body))
    }

    /// Calls `method`: the envelope (a 200 answer with a JSON body).
    pub fn rpc(&self, method: &str, params: Value) -> Value {
        self.send(&json!({ "method": method, "params": params }))
    }

    /// Sends a request object as the body: the envelope (a 200 answer with a JSON body).
    pub fn send(&self, body: &Value) -> Value {
        let reply = self.post(&[], body.to_string().as_bytes());
        assert_eq!(reply.status, 200, "{body}: {reply:?}");
        assert_eq!(
            reply.header("content-type").as_deref(),
            Some("application/json"),
            "{body}"
        );
        reply.json()
    }

    /// Calls `M` and returns its typed result (an error envelope fails the test).
    pub fn call<M: Method>(&self, params: Value) -> M::Output {
        let envelope = self.rpc(M::NAME, params);
        let typed: kojibox_manifests::Response<M::Output> =
            serde_json::from_value(envelope.clone()).unwrap_or_else(|e| {
                panic!(
                    "{}: not the contract's result type: {e}\n{envelope:#}",
                    M::NAME
                )
            });
        typed
            .into_result()
            .unwrap_or_else(|e| panic!("{} failed: {e}", M::NAME))
    }

    /// `services.list`.
    pub fn list(&self) -> Vec<ServiceState> {
        self.call::<kojibox_manifests::api::methods::ServicesList>(json!({}))
    }

    /// One service's state.
    pub fn state(&self, id: &str) -> ServiceState {
        let list = self.list();
        list.into_iter()
            .find(|s| s.id == id)
            .unwrap_or_else(|| panic!("no service `{id}` listed"))
    }

    /// Waits until `id` is in `state`; returns its state.
    pub fn wait_for(&self, id: &str, state: ServiceStatus) -> ServiceState {
        let started = Instant::now();
        loop {
            let now = self.state(id);
            if now.state == state {
                return now;
            }
            assert!(
                started.elapsed() < WAIT,
                "{id} is {now:?}, not {state:?}, after {WAIT:?}; logs: {:#}",
                self.rpc("services.logs", json!({"id": id, "tail": 20}))
            );
            std::thread::sleep(Duration::from_millis(30));
        }
    }

    /// The live processes of service `id` (found by the `DATA` folder in their environment).
    pub fn processes(&self, id: &str) -> Vec<u32> {
        let data = format!(
            "DATA={}",
            self.env.at(&format!("runtime/data/{id}")).display()
        );
        processes_where(|entry| entry == data.as_bytes())
    }

    /// The live processes of every service of this home.
    pub fn all_processes(&self) -> Vec<u32> {
        let data = format!("DATA={}/", self.env.at("runtime/data").display());
        processes_where(|entry| entry.starts_with(data.as_bytes()))
    }

    /// Opens `/events` with our token (and `Last-Event-ID` when given); waits for the head.
    pub fn events(&self, last_id: Option<u64>) -> EventStream {
        let mut lines = vec!["GET /events HTTP/1.1".to_owned()];
        lines.extend(self.auth());
        if let Some(id) = last_id {
            lines.push(format!("Last-Event-ID: {id}"));
        }
        self.open_events(&lines)
    }

    /// Sends a GET built from `lines` and reads the head of the (streaming) answer.
    pub fn open_events(&self, lines: &[String]) -> EventStream {
        EventStream::open(self.port, lines)
    }
}

impl Drop for Api {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
        for (pid, started) in &self.adopted {
            if kojibox_proc::is_alive(*pid) && kojibox_proc::process_start_time(*pid) == *started {
                signal(*pid, rustix::process::Signal::KILL);
            }
        }
        // Any daemon of this home, even one whose api.json never appeared.
        let serve = format!("--home\0{}\0serve\0", self.env.home_dir().display());
        let daemons = processes_by("cmdline", |argv| {
            argv.windows(serve.len()).any(|w| w == serve.as_bytes())
        });
        for pid in daemons.into_iter().chain(self.all_processes()) {
            signal(pid, rustix::process::Signal::KILL);
        }
    }
}

/// `kojibox --home H ARGS` with `input` on stdin.
pub(crate) fn kojibox_with_input(api: &Api, args: &[&str], input: &str) -> std::process::Output {
    use std::io::Write;
    let mut child = api
        .env
        .kojibox_command(args)
        .env_remove("KOJIBOX_PASSPHRASE")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

/// The row of a CLI table (`status`, `metrics`) whose first word is `id`, split on whitespace.
pub(crate) fn table_row(table: &str, id: &str) -> Vec<String> {
    let line = table
        .lines()
        .find(|l| l.split_whitespace().next() == Some(id));
    let line = line.unwrap_or_else(|| panic!("no row for {id}:\n{table}"));
    line.split_whitespace().map(str::to_owned).collect()
}
