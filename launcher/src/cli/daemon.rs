//! `kojibox serve` (the daemon in the foreground), `kojibox up` (in the background, then every
//! enabled service) and `kojibox down`.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use kojibox_home::Home;
use kojibox_manifests::api::methods;
use kojibox_manifests::model::{ServiceState, ServiceStatus};
use launcher::client::Client;
use launcher::daemon::{DaemonOptions, Notice};

/// `kojibox serve`: the daemon in the foreground, its notices on standard error.
pub(crate) fn serve(
    home: &Home,
    up: bool,
    listen: Option<String>,
    passphrase_stdin: bool,
) -> Result<ExitCode> {
    let passphrase = if passphrase_stdin {
        Some(super::passphrase::passphrase_from_stdin()?)
    } else {
        super::passphrase::passphrase_for(home)?
    };
    let exe = std::env::current_exe().context("could not find the kojibox executable")?;
    let mut watchdog = std::process::Command::new(exe);
    watchdog.arg("__watchdog");
    let options = DaemonOptions {
        up,
        listen,
        passphrase,
        watchdog: Some(watchdog),
    };
    launcher::daemon::serve(
        home,
        options,
        Arc::new(|notice: Notice| {
            let _ = writeln!(std::io::stderr(), "{notice}");
        }),
    )?;
    Ok(ExitCode::SUCCESS)
}

/// How long `kojibox up` waits for the services to become running (a service is restarted if its
/// health check has not passed 60 s after a spawn, so this covers a slow first start and one
/// retry).
const UP_WAIT: Duration = Duration::from_secs(150);

/// `kojibox up`: starts the daemon in the background when none runs, then every enabled
/// service, waiting until each is running, has failed, is crash-looping (flapping), or
/// [`UP_WAIT`] has passed; names those that are not running and exits 1 if there are any.
pub(crate) fn up(home: &Home, json: bool) -> Result<ExitCode> {
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
            bar.set_message(format!("{}: {}", s.id, s.state.as_str()));
            (s.id.clone(), bar)
        })
        .collect();
    let deadline = Instant::now() + UP_WAIT;
    let (finals, timed_out) = loop {
        let states = client.call::<methods::ServicesList>(&Default::default())?;
        let mut pending = false;
        for (id, bar) in &bars {
            if let Some(state) = states.iter().find(|s| &s.id == id) {
                bar.set_message(format!("{id}: {}", state.state.as_str()));
                // A crash-looping service is not waited for: it is the answer.
                pending |= state.state == ServiceStatus::Starting && !state.flapping;
            }
        }
        let late = Instant::now() > deadline;
        if !pending || late {
            break (states, pending && late);
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
    let not_running: Vec<&str> = wanted
        .iter()
        .filter(|s| s.state != ServiceStatus::Running)
        .map(|s| s.id.as_str())
        .collect();
    if json {
        println!("{}", serde_json::to_string_pretty(&wanted)?);
    } else {
        println!("daemon pid {} at {}", client.pid(), client.url());
        for state in &wanted {
            let pid = state.pid.map(|p| format!(" (pid {p})")).unwrap_or_default();
            let late = if timed_out && state.state == ServiceStatus::Starting && !state.flapping {
                format!(" (not running after {} s)", UP_WAIT.as_secs())
            } else {
                String::new()
            };
            println!(
                "{}: {}{pid}{late}{}",
                state.id,
                state.state.as_str(),
                super::service::trouble(state)
                    .map(|t| format!(": {t}"))
                    .unwrap_or_default()
            );
        }
        if !not_running.is_empty() {
            println!(
                "{} of {} service(s) running; not running: {} (see `kojibox logs SERVICE`)",
                wanted.len() - not_running.len(),
                wanted.len(),
                not_running.join(", ")
            );
        }
    }
    Ok(if not_running.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Starts `kojibox serve` in the background (its output in `app/logs/daemon.log`) and waits
/// until it answers.
fn start_daemon(home: &Home) -> Result<Client> {
    let daemon_log = home.daemon_log();
    // `app/logs` 0700 and the file 0600, never through a link planted in the home.
    let log = kojibox_home::fs::open_append_private(home, &daemon_log)?;
    let exe = std::env::current_exe().context("could not find the kojibox executable")?;
    let passphrase = super::passphrase::passphrase_for(home)?;
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
                daemon_log.display()
            );
            return Ok(client);
        }
        if let Some(status) = child.try_wait()? {
            bail!(
                "the daemon exited at once ({status}); see {}",
                daemon_log.display()
            );
        }
        if Instant::now() > deadline {
            bail!(
                "the daemon did not answer within 20 s; see {}",
                daemon_log.display()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `kojibox down`: stops every service and the daemon (SIGTERM to the daemon, which stops the
/// services in reverse dependency order), and waits until it is gone.
pub(crate) fn down(home: &Home) -> Result<ExitCode> {
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
