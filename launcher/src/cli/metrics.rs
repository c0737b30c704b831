//! `kojibox metrics [--watch]`: the daemon's and each service's CPU, memory and ports.
//!
//! A table (one row per service, the daemon's own row, a total with the daemon's uptime), or the
//! snapshot as JSON with `--json`. `--watch` asks again every second until interrupted: on a
//! terminal it clears the screen and redraws, otherwise it prints each table after a blank line
//! (with `--json`, one snapshot per line).

use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Result;
use kojibox_home::Home;
use kojibox_manifests::api::{Empty, methods};
use kojibox_manifests::model::MetricsSnapshot;
use launcher::client::Client;

/// How often `--watch` asks.
const REFRESH: Duration = Duration::from_secs(1);

/// `kojibox metrics`.
pub(crate) fn metrics(home: &Home, watch: bool, json: bool) -> Result<ExitCode> {
    let client = Client::connect(home)?;
    if !watch {
        let snapshot = client.call::<methods::MetricsSnapshot>(&Empty::default())?;
        if json {
            super::print_json(&snapshot)?;
        } else {
            print!("{}", table(&snapshot, client.pid()));
        }
        return Ok(ExitCode::SUCCESS);
    }
    let terminal = std::io::stdout().is_terminal();
    let mut first = true;
    loop {
        let snapshot = client.call::<methods::MetricsSnapshot>(&Empty::default())?;
        let mut frame = String::new();
        if json {
            frame = serde_json::to_string(&snapshot)? + "\n";
        } else {
            if terminal {
                // Cursor home, then clear the screen.
                frame.push_str("\x1b[H\x1b[2J");
            } else if !first {
                frame.push('\n');
            }
            frame.push_str(&format!(
                "{} (every {}s, Ctrl-C to stop)\n",
                snapshot.ts,
                REFRESH.as_secs()
            ));
            frame.push_str(&table(&snapshot, client.pid()));
        }
        let mut stdout = std::io::stdout().lock();
        match stdout
            .write_all(frame.as_bytes())
            .and_then(|()| stdout.flush())
        {
            Ok(()) => {}
            // The reader went away (`| head`): done.
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(ExitCode::SUCCESS),
            Err(e) => return Err(e.into()),
        }
        drop(stdout);
        first = false;
        std::thread::sleep(REFRESH);
    }
}

/// The table: services, the daemon (what the totals hold beyond the services), the total.
fn table(snapshot: &MetricsSnapshot, daemon_pid: u32) -> String {
    let mut out = format!(
        "{:<16} {:>7} {:>7} {:>8}  PORTS\n",
        "SERVICE", "PID", "CPU %", "MEM MiB"
    );
    let mut service_ports = Vec::new();
    for s in &snapshot.services {
        service_ports.extend(s.ports.iter().copied());
        let line = match s.pid {
            Some(pid) => format!(
                "{:<16} {:>7} {:>7.1} {:>8}  {}",
                s.id,
                pid,
                s.cpu_percent,
                s.mem_mb,
                ports(&s.ports)
            ),
            None => format!("{:<16} {:>7} {:>7} {:>8}  -", s.id, "-", "-", "-"),
        };
        out.push_str(line.trim_end());
        out.push('\n');
    }
    let cpu: f64 = snapshot.services.iter().map(|s| s.cpu_percent).sum();
    let mem: u64 = snapshot.services.iter().map(|s| s.mem_mb).sum();
    let daemon_ports: Vec<u16> = snapshot
        .ports_in_use
        .iter()
        .copied()
        .filter(|p| !service_ports.contains(p))
        .collect();
    out.push_str(&format!(
        "{:<16} {:>7} {:>7.1} {:>8}  {}\n",
        "(daemon)",
        daemon_pid,
        (snapshot.cpu_percent - cpu).max(0.0),
        snapshot.mem_mb.saturating_sub(mem),
        ports(&daemon_ports)
    ));
    out.push_str(&format!(
        "{:<16} {:>7} {:>7.1} {:>8}  {}  (up {})\n",
        "TOTAL",
        "",
        snapshot.cpu_percent,
        snapshot.mem_mb,
        ports(&snapshot.ports_in_use),
        uptime(snapshot.uptime_sec)
    ));
    out.push_str("CPU % is of the whole machine (all CPUs).\n");
    out
}

fn ports(ports: &[u16]) -> String {
    if ports.is_empty() {
        return "-".into();
    }
    ports
        .iter()
        .map(u16::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

fn uptime(s: u64) -> String {
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kojibox_manifests::model::ServiceMetrics;

    #[test]
    fn the_table_adds_up() {
        let snapshot = MetricsSnapshot {
            ts: "2025-01-01T00:00:00Z".into(),
            uptime_sec: 3725,
            ports_in_use: vec![5432, 8080, 41000],
            cpu_percent: 30.5,
            mem_mb: 120,
            services: vec![
                ServiceMetrics {
                    id: "db".into(),
                    pid: Some(42),
                    cpu_percent: 25.0,
                    mem_mb: 100,
                    ports: vec![5432],
                },
                ServiceMetrics {
                    id: "web".into(),
                    pid: Some(43),
                    cpu_percent: 5.0,
                    mem_mb: 8,
                    ports: vec![8080],
                },
                ServiceMetrics {
                    id: "idle".into(),
                    pid: None,
                    cpu_percent: 0.0,
                    mem_mb: 0,
                    ports: vec![],
                },
            ],
        };
        let text = table(&snapshot, 7);
        let rows: Vec<Vec<&str>> = text
            .lines()
            .map(|l| l.split_whitespace().collect())
            .collect();
        assert_eq!(
            rows[0],
            ["SERVICE", "PID", "CPU", "%", "MEM", "MiB", "PORTS"]
        );
        assert_eq!(rows[1], ["db", "42", "25.0", "100", "5432"]);
        assert_eq!(rows[2], ["web", "43", "5.0", "8", "8080"]);
        assert_eq!(rows[3], ["idle", "-", "-", "-", "-"]);
        assert_eq!(rows[4], ["(daemon)", "7", "0.5", "12", "41000"]);
        assert_eq!(
            rows[5],
            ["TOTAL", "30.5", "120", "5432,8080,41000", "(up", "1h02m)"]
        );
    }
}
