//! `metrics.snapshot` and `kojibox metrics [--watch]` against the real daemon (`kojibox serve`),
//! with the API tests' `web` (python listening on a port) and `worker` (a line every 100 ms), plus
//! `burn` (a busy loop in the service's own process) and `parent` (an idle shell whose child is a
//! busy loop). CPU figures are compared with one core's share of the machine (`100 / CPUs`),
//! polled until the background sampler has two samples; nothing here times the daemon.

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use kojibox_manifests::api::methods;
use kojibox_manifests::model::{MetricsSnapshot, ServiceMetrics, ServiceStatus};
use serde_json::{Value, json};

use crate::api::{Api, WAIT, eventually, signal, table_row};
use crate::support::{Fixture, stdout, text};

/// A busy loop in the service's main process.
fn burn() -> Fixture {
    Fixture::new("burn", "while :; do :; done")
}

/// An idle main process whose child (its own `sh`) is a busy loop.
fn parent() -> Fixture {
    Fixture::new("parent", "sh -c 'while :; do :; done' & wait")
}

/// One core's share of the whole machine, in percent.
fn core() -> f64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap();
    let cpus = stat
        .lines()
        .filter(|l| {
            l.strip_prefix("cpu")
                .is_some_and(|r| r.starts_with(|c: char| c.is_ascii_digit()))
        })
        .count();
    100.0 / cpus.max(1) as f64
}

fn snapshot(api: &Api) -> MetricsSnapshot {
    api.call::<methods::MetricsSnapshot>(json!({}))
}

fn row<'a>(snapshot: &'a MetricsSnapshot, id: &str) -> &'a ServiceMetrics {
    snapshot
        .services
        .iter()
        .find(|s| s.id == id)
        .unwrap_or_else(|| panic!("no `{id}` in {snapshot:#?}"))
}

fn start(api: &Api, id: &str) -> u32 {
    let answer = api.rpc("services.start", json!({ "id": id }));
    assert!(answer.get("result").is_some(), "{answer}");
    api.wait_for(id, ServiceStatus::Running)
        .pid
        .expect("a running service has a pid")
}

/// Polls the snapshot until `done` holds for it (at most [`WAIT`]); the last one either way.
fn snapshot_until(api: &Api, done: impl Fn(&MetricsSnapshot) -> bool) -> (bool, MetricsSnapshot) {
    let started = Instant::now();
    loop {
        let now = snapshot(api);
        if done(&now) {
            return (true, now);
        }
        if started.elapsed() > WAIT {
            return (false, now);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn metrics_snapshot_answers_at_once_after_start_with_the_contract_shape() {
    let api = Api::boot(&[]);
    // The first call, as soon as api.json names the daemon: an answer, never a wait for samples.
    let raw = api.rpc("metrics.snapshot", json!({}));
    let result = &raw["result"];
    for key in ["ts", "uptimeSec", "portsInUse", "cpuPercent", "memMB"] {
        assert!(result.get(key).is_some(), "{key} in {raw}");
    }
    let first: MetricsSnapshot = serde_json::from_value(result.clone()).unwrap();
    assert!(first.uptime_sec < 60, "{first:?}");
    assert!(
        first.ports_in_use.contains(&api.port),
        "the API's port: {first:?}"
    );
    assert!(
        first.cpu_percent >= 0.0 && first.cpu_percent <= 100.0,
        "{first:?}"
    );
    // Every installed service has a row; none runs yet.
    let mut ids: Vec<&str> = first.services.iter().map(|s| s.id.as_str()).collect();
    ids.sort_unstable();
    assert_eq!(ids, ["web", "worker"], "{first:?}");
    for s in &first.services {
        assert_eq!((s.pid, s.mem_mb, s.ports.len()), (None, 0, 0), "{s:?}");
        assert_eq!(s.cpu_percent, 0.0, "{s:?}");
    }
    assert!(
        first.ts.parse::<jiff::Timestamp>().is_ok(),
        "RFC 3339: {}",
        first.ts
    );
    // Once sampled, the daemon's own memory shows.
    let (sampled, now) = snapshot_until(&api, |s| s.mem_mb > 0);
    assert!(sampled, "the daemon's memory: {now:?}");
    let ts = |s: &MetricsSnapshot| s.ts.parse::<jiff::Timestamp>().unwrap();
    assert!(ts(&now) >= ts(&first));
}

#[test]
fn metrics_a_busy_service_and_a_service_with_a_busy_child_show_cpu_an_idle_one_does_not() {
    let api = Api::boot(&[burn(), parent()]);
    let burn_pid = start(&api, "burn");
    let parent_pid = start(&api, "parent");
    let worker_pid = start(&api, "worker");
    let core = core();
    let (busy, now) = snapshot_until(&api, |s| {
        row(s, "burn").cpu_percent > core * 0.3 && row(s, "parent").cpu_percent > core * 0.3
    });
    assert!(
        busy,
        "a busy loop shows well over a third of a core ({core:.1}%), also as a child: {now:#?}"
    );
    let (burn, parent, worker) = (row(&now, "burn"), row(&now, "parent"), row(&now, "worker"));
    assert_eq!(
        (burn.pid, parent.pid, worker.pid),
        (Some(burn_pid), Some(parent_pid), Some(worker_pid)),
        "the pids the supervisor lists"
    );
    assert!(
        worker.cpu_percent < burn.cpu_percent / 2.0,
        "the worker sleeps most of the time: {now:#?}"
    );
    for s in [burn, parent, worker] {
        assert!(s.mem_mb > 0, "{s:?}");
        assert!(s.cpu_percent <= 100.0, "{s:?}");
    }
    assert_eq!(row(&now, "web").pid, None, "web was not started");
    // The totals are the daemon's share plus every service's.
    let services_cpu: f64 = now.services.iter().map(|s| s.cpu_percent).sum();
    let services_mem: u64 = now.services.iter().map(|s| s.mem_mb).sum();
    assert!(now.cpu_percent + 0.01 >= services_cpu, "{now:#?}");
    assert!(
        now.cpu_percent <= 100.0 + 0.01,
        "of the whole machine: {now:#?}"
    );
    assert!(
        now.mem_mb > services_mem,
        "the daemon's memory too: {now:#?}"
    );

    // Stopped, a service reads zeros at once: no stale pid.
    let stopped = api.rpc("services.stop", json!({"id": "burn"}));
    assert!(stopped.get("result").is_some(), "{stopped}");
    api.wait_for("burn", ServiceStatus::Stopped);
    let after = snapshot(&api);
    let burn = row(&after, "burn");
    assert_eq!(
        (burn.pid, burn.mem_mb, burn.cpu_percent),
        (None, 0, 0.0),
        "{after:#?}"
    );
}

#[test]
fn metrics_ports_of_a_listening_service_the_api_and_nothing_stale() {
    let api = Api::boot(&[]);
    start(&api, "web");
    start(&api, "worker");
    let web_port = api.web_port;
    let (listed, now) = snapshot_until(&api, |s| row(s, "web").ports.contains(&web_port));
    assert!(listed, "web listens on {web_port}: {now:#?}");
    assert_eq!(row(&now, "web").ports, [web_port], "{now:#?}");
    assert_eq!(row(&now, "worker").ports, Vec::<u16>::new(), "{now:#?}");
    let mut expected = vec![web_port, api.port];
    expected.sort_unstable();
    assert_eq!(now.ports_in_use, expected, "sorted, once each: {now:#?}");

    let stopped = api.rpc("services.stop", json!({"id": "web"}));
    assert!(stopped.get("result").is_some(), "{stopped}");
    api.wait_for("web", ServiceStatus::Stopped);
    let after = snapshot(&api);
    assert!(row(&after, "web").ports.is_empty(), "{after:#?}");
    assert_eq!(after.ports_in_use, [api.port], "{after:#?}");
}

#[test]
fn metrics_cli_table_json_and_watch() {
    let api = Api::boot(&[burn()]);
    let web_pid = start(&api, "web");
    start(&api, "burn");
    let core = core();
    let (ready, _) = snapshot_until(&api, |s| {
        row(s, "burn").cpu_percent > core * 0.3 && row(s, "web").ports.contains(&api.web_port)
    });
    assert!(ready, "sampled");

    let out = api.env.kojibox(&["--json", "metrics"], None);
    assert!(out.status.success(), "{}", text(&out));
    let value: Value = serde_json::from_str(&stdout(&out)).unwrap();
    let parsed: MetricsSnapshot = serde_json::from_value(value.clone()).unwrap();
    assert!(parsed.ports_in_use.contains(&api.port), "{value:#}");
    assert_eq!(row(&parsed, "web").pid, Some(web_pid), "{value:#}");
    assert!(value["services"][0].get("memMB").is_some(), "{value:#}");

    let out = api.env.kojibox(&["metrics"], None);
    assert!(out.status.success(), "{}", text(&out));
    let table = stdout(&out);
    let header = table_row(&table, "SERVICE");
    assert_eq!(
        header,
        ["SERVICE", "PID", "CPU", "%", "MEM", "MiB", "PORTS"],
        "{table}"
    );
    let web = table_row(&table, "web");
    assert_eq!(web[1], web_pid.to_string(), "{table}");
    assert_eq!(web[4], api.web_port.to_string(), "{table}");
    let burn = table_row(&table, "burn");
    let burn_cpu: f64 = burn[2].parse().unwrap();
    assert!(burn_cpu > core * 0.3, "{table}");
    assert!(burn[3].parse::<u64>().unwrap() > 0, "{table}");
    assert_eq!(table_row(&table, "worker")[1], "-", "stopped: {table}");
    let daemon = table_row(&table, "(daemon)");
    assert_eq!(daemon[1], api.pid.to_string(), "{table}");
    assert_eq!(daemon[4], api.port.to_string(), "{table}");
    assert!(daemon[3].parse::<u64>().unwrap() > 0, "{table}");
    let total = table_row(&table, "TOTAL");
    assert!(total[1].parse::<f64>().unwrap() >= burn_cpu, "{table}");
    assert!(
        total.last().unwrap().ends_with(')') && total.contains(&"(up".to_owned()),
        "{table}"
    );

    // --watch redraws every second until stopped (a pipe is no terminal: tables one after another).
    for (args, frames_of) in [
        (&["metrics", "--watch"][..], "TOTAL"),
        (&["--json", "metrics", "--watch"][..], "{"),
    ] {
        let lines = watch(&api, args, frames_of, 2);
        let frames = lines.iter().filter(|l| l.starts_with(frames_of)).count();
        assert!(frames >= 2, "{args:?}:\n{}", lines.join("\n"));
        if frames_of == "{" {
            for line in &lines {
                let _: MetricsSnapshot = serde_json::from_str(line).unwrap();
            }
        }
    }
}

/// Runs `kojibox ARGS` until it printed `frames` lines starting with `marker` (at most 30 s),
/// then kills it (by pid); the lines it printed.
fn watch(api: &Api, args: &[&str], marker: &str, frames: usize) -> Vec<String> {
    let mut child = api
        .env
        .kojibox_command(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    let out = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { return };
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let mut lines = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while lines
        .iter()
        .filter(|l: &&String| l.starts_with(marker))
        .count()
        < frames
    {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => lines.push(line),
            Err(_) => break,
        }
    }
    let still_running = child.try_wait().unwrap().is_none();
    signal(pid, rustix::process::Signal::KILL);
    let _ = child.wait();
    assert!(
        still_running,
        "--watch keeps running:\n{}",
        lines.join("\n")
    );
    lines
}

/// Not a check: measures `metrics.snapshot` over the API (run with `--ignored --nocapture`).
#[test]
#[ignore = "a measurement, not a check"]
fn metrics_snapshot_latency() {
    let api = Api::boot(&[burn(), parent()]);
    for id in ["web", "worker", "burn", "parent"] {
        start(&api, id);
    }
    assert!(eventually(WAIT, || snapshot(&api).mem_mb > 0));
    let mut times = Vec::new();
    for _ in 0..200 {
        let started = Instant::now();
        let raw = api.rpc("metrics.snapshot", json!({}));
        times.push(started.elapsed());
        assert!(raw.get("result").is_some(), "{raw}");
    }
    times.sort_unstable();
    println!(
        "metrics.snapshot over HTTP, 200 calls, 4 services running: median {:?}, p99 {:?}, max {:?}",
        times[times.len() / 2],
        times[times.len() * 99 / 100],
        times[times.len() - 1]
    );
}
