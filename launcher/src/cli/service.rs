//! `kojibox status`, `start`, `stop`, `restart`: the services of the running daemon.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use indicatif::ProgressBar;
use kojibox_home::Home;
use kojibox_manifests::api::{IdParams, methods};
use kojibox_manifests::model::{ServiceState, ServiceStatus};
use launcher::client::Client;

/// `kojibox status`: a table of services, state, pid, ports, uptime.
pub(crate) fn status(home: &Home, json: bool) -> Result<ExitCode> {
    let client = Client::connect(home)?;
    let states = client.call::<methods::ServicesList>(&Default::default())?;
    let mut rows = Vec::new();
    for state in &states {
        let def = client
            .call::<methods::ServicesDescribe>(&IdParams {
                id: state.id.clone(),
            })
            .ok();
        rows.push((state, def));
    }
    if json {
        let out: Vec<_> = rows
            .iter()
            .map(|(s, d)| serde_json::json!({ "state": s, "ports": d.as_ref().map(|d| &d.ports), "uptimeSec": uptime(s).map(|u| u.as_secs()) }))
            .collect();
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!("daemon pid {} at {}", client.pid(), client.url());
    if rows.is_empty() {
        println!("no services installed");
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<14} {:<9} {:>7}  {:<16} {:>9}  LAST ERROR",
        "SERVICE", "STATE", "PID", "PORTS", "UPTIME"
    );
    for (state, def) in rows {
        let ports = def
            .map(|d| {
                d.ports
                    .iter()
                    .map(|p| format!("{}:{}", p.name, p.port))
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .unwrap_or_default();
        let pid = state
            .pid
            .map(|p| p.to_string())
            .unwrap_or_else(|| "-".into());
        let up = uptime(state)
            .map(human_duration)
            .unwrap_or_else(|| "-".into());
        println!(
            "{:<14} {:<9} {:>7}  {:<16} {:>9}  {}",
            state.id,
            state.state.as_str(),
            pid,
            ports,
            up,
            trouble(state).unwrap_or_default()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// What is wrong with a service, for a person: that it is flapping (with how often it was
/// restarted) and its `lastError`.
pub(crate) fn trouble(state: &ServiceState) -> Option<String> {
    let flapping = state
        .flapping
        .then(|| format!("flapping, restarted {} times in a row", state.restarts));
    match (flapping, &state.last_error) {
        (Some(f), Some(e)) => Some(format!("{f}; last: {e}")),
        (Some(f), None) => Some(f),
        (None, Some(e)) => Some(e.clone()),
        (None, None) => None,
    }
}

fn uptime(state: &ServiceState) -> Option<Duration> {
    if state.state != ServiceStatus::Running {
        return None;
    }
    let since: jiff::Timestamp = state.last_updated.parse().ok()?;
    let secs = jiff::Timestamp::now().as_second() - since.as_second();
    Some(Duration::from_secs(secs.max(0) as u64))
}

fn human_duration(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
    }
}

/// What a control command does.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Action {
    /// `start`.
    Start,
    /// `stop`.
    Stop,
    /// `restart`.
    Restart,
}

/// `kojibox start|stop|restart ID [--wait]`.
pub(crate) fn control(
    home: &Home,
    action: Action,
    id: &str,
    wait: bool,
    json: bool,
) -> Result<ExitCode> {
    let client = Client::connect(home)?;
    let params = IdParams { id: id.to_owned() };
    let state = match action {
        Action::Start => client.call::<methods::ServicesStart>(&params),
        Action::Stop => client.call::<methods::ServicesStop>(&params),
        Action::Restart => client.call::<methods::ServicesRestart>(&params),
    }?;
    let state = if wait {
        let target = match action {
            Action::Stop => ServiceStatus::Stopped,
            Action::Start | Action::Restart => ServiceStatus::Running,
        };
        wait_until(&client, id, target, Duration::from_secs(120), !json)?
    } else {
        state
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&state)?);
    } else {
        let pid = state.pid.map(|p| format!(" (pid {p})")).unwrap_or_default();
        println!("{id}: {}{pid}", state.state.as_str());
        if let Some(error) = &state.last_error {
            println!("  last error: {error}");
        }
    }
    Ok(if state.state == ServiceStatus::Error {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// Polls until `id` reaches `target` or `error`; with a spinner on a terminal.
pub(crate) fn wait_until(
    client: &Client,
    id: &str,
    target: ServiceStatus,
    timeout: Duration,
    show: bool,
) -> Result<ServiceState> {
    let spinner = if show && std::io::stderr().is_terminal() {
        ProgressBar::new_spinner()
    } else {
        ProgressBar::hidden()
    };
    spinner.enable_steady_tick(Duration::from_millis(100));
    let started = Instant::now();
    loop {
        let states = client.call::<methods::ServicesList>(&Default::default())?;
        let state = states
            .into_iter()
            .find(|s| s.id == id)
            .with_context(|| format!("service `{id}` disappeared"))?;
        spinner.set_message(format!(
            "{id}: {} ({:.0?})",
            state.state.as_str(),
            started.elapsed()
        ));
        if state.state == target || state.state == ServiceStatus::Error {
            spinner.finish_and_clear();
            return Ok(state);
        }
        if started.elapsed() > timeout {
            spinner.finish_and_clear();
            bail!(
                "{id} is still {} after {} s",
                state.state.as_str(),
                timeout.as_secs()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
