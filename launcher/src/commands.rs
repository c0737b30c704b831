//! The CLI commands that talk to a running daemon: `rpc`, `events`, `status`, `start`, `stop`,
//! `restart`, `logs`, `up`, `down`.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use kojibox_manifests::api::{IdParams, LogsParams, methods};
use kojibox_manifests::event::Event;
use kojibox_manifests::model::{LogEntry, LogLevel, ServiceState, ServiceStatus};
use launcher::Home;
use launcher::client::Client;

/// `kojibox rpc METHOD [PARAMS_JSON]`: prints the envelope; exit 1 on an error envelope.
pub fn rpc(home: &Home, method: &str, params: Option<&str>) -> Result<ExitCode> {
    let params: serde_json::Value = match params {
        Some(text) => serde_json::from_str(text)
            .with_context(|| format!("PARAMS_JSON is not JSON: {text}"))?,
        None => serde_json::json!({}),
    };
    let envelope = Client::connect(home)?.call_raw(method, params)?;
    println!("{}", serde_json::to_string_pretty(&envelope)?);
    Ok(if envelope.get("error").is_some() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// `kojibox events [--filter NAME...]`: one JSON line per event, until interrupted.
pub fn events(home: &Home, filters: &[String], last_id: Option<u64>) -> Result<ExitCode> {
    let client = Client::connect(home)?;
    let stdout = std::io::stdout();
    client.events(last_id, |envelope| {
        let name = envelope.event.name();
        if !filters.is_empty() && !filters.iter().any(|f| matches_filter(f, name)) {
            return true;
        }
        let mut out = stdout.lock();
        serde_json::to_writer(&mut out, &envelope).is_ok()
            && writeln!(out).is_ok()
            && out.flush().is_ok()
    })?;
    Ok(ExitCode::SUCCESS)
}

/// `service:*` matches every service event; otherwise the exact name.
pub fn matches_filter(filter: &str, name: &str) -> bool {
    match filter.strip_suffix('*') {
        Some(prefix) => name.starts_with(prefix),
        None => filter == name,
    }
}

/// `kojibox status`: a table of services, state, pid, ports, uptime.
pub fn status(home: &Home, json: bool) -> Result<ExitCode> {
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
            status_name(state.state),
            pid,
            ports,
            up,
            state.last_error.as_deref().unwrap_or("")
        );
    }
    Ok(ExitCode::SUCCESS)
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

fn status_name(status: ServiceStatus) -> &'static str {
    match status {
        ServiceStatus::Stopped => "stopped",
        ServiceStatus::Starting => "starting",
        ServiceStatus::Running => "running",
        ServiceStatus::Stopping => "stopping",
        ServiceStatus::Error => "error",
    }
}

/// What a control command does.
#[derive(Debug, Clone, Copy)]
pub enum Action {
    /// `start`.
    Start,
    /// `stop`.
    Stop,
    /// `restart`.
    Restart,
}

/// `kojibox start|stop|restart ID [--wait]`.
pub fn control(home: &Home, action: Action, id: &str, wait: bool, json: bool) -> Result<ExitCode> {
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
        println!("{id}: {}{pid}", status_name(state.state));
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
fn wait_until(
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
            status_name(state.state),
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
                status_name(state.state),
                timeout.as_secs()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `kojibox logs ID [-n N] [-f]`.
pub fn logs(home: &Home, id: &str, tail: u32, follow: bool, json: bool) -> Result<ExitCode> {
    let client = Client::connect(home)?;
    let entries = client.call::<methods::ServicesLogs>(&LogsParams {
        id: id.to_owned(),
        tail: Some(tail),
    })?;
    let print = |entry: &LogEntry| {
        if json {
            println!("{}", serde_json::to_string(entry).unwrap_or_default());
        } else {
            let level = match entry.level {
                LogLevel::Debug => "DEBUG",
                LogLevel::Info => "INFO ",
                LogLevel::Warn => "WARN ",
                LogLevel::Error => "ERROR",
            };
            println!("{} {level} {}", entry.ts, entry.message);
        }
    };
    entries.iter().for_each(print);
    if follow {
        let last = entries.last().map(|e| e.ts.clone());
        client.events(None, |envelope| {
            if let Event::ServiceLogLine(entry) = envelope.event
                && entry.service == id
                && last.as_ref().is_none_or(|ts| entry.ts > *ts)
            {
                print(&entry);
                let _ = std::io::stdout().flush();
            }
            true
        })?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `kojibox up`: starts the daemon in the background when none runs, then every enabled
/// service, waiting until each is running (or failed) with a progress display.
pub fn up(home: &Home, json: bool) -> Result<ExitCode> {
    let client = match Client::connect(home) {
        Ok(client) => client,
        Err(_) => start_daemon(home)?,
    };
    let started = client.call::<methods::ServicesUp>(&Default::default())?;
    let multi = if std::io::stderr().is_terminal() && !json {
        MultiProgress::new()
    } else {
        MultiProgress::with_draw_target(indicatif::ProgressDrawTarget::hidden())
    };
    let style = ProgressStyle::with_template("{spinner} {msg}")
        .unwrap_or_else(|_| ProgressStyle::default_spinner());
    let bars: Vec<(String, ProgressBar)> = started
        .iter()
        .map(|s| {
            let bar = multi.add(ProgressBar::new_spinner());
            bar.set_style(style.clone());
            bar.enable_steady_tick(Duration::from_millis(100));
            bar.set_message(format!("{}: {}", s.id, status_name(s.state)));
            (s.id.clone(), bar)
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(180);
    let finals = loop {
        let states = client.call::<methods::ServicesList>(&Default::default())?;
        let mut pending = false;
        for (id, bar) in &bars {
            if let Some(state) = states.iter().find(|s| &s.id == id) {
                bar.set_message(format!("{id}: {}", status_name(state.state)));
                pending |= state.state == ServiceStatus::Starting;
            }
        }
        if !pending || Instant::now() > deadline {
            break states;
        }
        std::thread::sleep(Duration::from_millis(150));
    };
    for (_, bar) in &bars {
        bar.finish_and_clear();
    }
    let wanted: Vec<&ServiceState> = finals
        .iter()
        .filter(|s| bars.iter().any(|(id, _)| id == &s.id))
        .collect();
    if json {
        println!("{}", serde_json::to_string_pretty(&wanted)?);
    } else {
        println!("daemon pid {} at {}", client.pid(), client.url());
        for state in &wanted {
            let pid = state.pid.map(|p| format!(" (pid {p})")).unwrap_or_default();
            println!(
                "{}: {}{pid}{}",
                state.id,
                status_name(state.state),
                state
                    .last_error
                    .as_ref()
                    .map(|e| format!(": {e}"))
                    .unwrap_or_default()
            );
        }
    }
    Ok(
        if wanted.iter().all(|s| s.state == ServiceStatus::Running) {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        },
    )
}

/// Starts `kojibox serve` in the background (its output in `app/logs/daemon.log`) and waits
/// until it answers.
fn start_daemon(home: &Home) -> Result<Client> {
    let logs = home.join("app/logs");
    std::fs::create_dir_all(&logs)
        .with_context(|| format!("could not create {}", logs.display()))?;
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(logs.join("daemon.log"))?;
    let exe = std::env::current_exe().context("could not find the kojibox executable")?;
    let passphrase = crate::config_cmd::passphrase_for(home)?;
    let mut command = std::process::Command::new(exe);
    command.arg("--home").arg(home.root()).arg("serve");
    if passphrase.is_some() {
        command
            .arg("--passphrase-stdin")
            .stdin(std::process::Stdio::piped());
    } else {
        command.stdin(std::process::Stdio::null());
    }
    command.stdout(log.try_clone()?).stderr(log);
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        // Its own session: closing this terminal does not stop the daemon.
        command.process_group(0);
    }
    let mut child = command.spawn().context("could not start the daemon")?;
    if let (Some(passphrase), Some(mut stdin)) = (passphrase, child.stdin.take()) {
        // The pipe, not the environment or argv: no other process can read it.
        writeln!(stdin, "{}", passphrase.expose()).context("could not pass the passphrase")?;
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(client) = Client::connect(home) {
            eprintln!(
                "started the daemon (pid {}, log {})",
                client.pid(),
                logs.join("daemon.log").display()
            );
            return Ok(client);
        }
        if let Some(status) = child.try_wait()? {
            bail!(
                "the daemon exited at once ({status}); see {}",
                logs.join("daemon.log").display()
            );
        }
        if Instant::now() > deadline {
            bail!(
                "the daemon did not answer within 20 s; see {}",
                logs.join("daemon.log").display()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `kojibox down`: stops every service and the daemon (SIGTERM to the daemon, which stops the
/// services in reverse dependency order), and waits until it is gone.
pub fn down(home: &Home) -> Result<ExitCode> {
    let client = match Client::connect(home) {
        Ok(client) => client,
        Err(e) => {
            println!("{e}");
            return Ok(ExitCode::SUCCESS);
        }
    };
    let pid = client.pid();
    terminate(pid).with_context(|| format!("could not signal the daemon (pid {pid})"))?;
    let deadline = Instant::now() + Duration::from_secs(60);
    while kojibox_proc::is_alive(pid) {
        if Instant::now() > deadline {
            bail!("the daemon (pid {pid}) is still stopping after 60 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    println!("stopped the daemon (pid {pid}) and its services");
    Ok(ExitCode::SUCCESS)
}

#[cfg(unix)]
fn terminate(pid: u32) -> std::io::Result<()> {
    let pid = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
        .ok_or_else(|| std::io::Error::other("bad pid"))?;
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).map_err(std::io::Error::from)
}

#[cfg(not(unix))]
fn terminate(_pid: u32) -> std::io::Result<()> {
    Err(std::io::Error::other(
        "`kojibox down` is not supported on this platform yet; stop `kojibox serve` with Ctrl-C",
    ))
}
