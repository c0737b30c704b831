//! `kojibox serve`: the daemon in the foreground.
//!
//! It takes the home's daemon lock (one daemon per home), finishes or cleans up an interrupted
//! install, starts the supervisor (ending services a previous daemon left behind), starts every
//! enabled service when asked to (`--up`), and runs until SIGINT or SIGTERM: then it stops every
//! service in reverse dependency order and exits. Services die with it even if it is killed
//! (their death signal is tied to the daemon's spawner thread).

use std::io::Write;

use kojibox_manifests::event::Event;
use kojibox_manifests::model::ServiceStatus;
use tokio::sync::broadcast;

use std::future::IntoFuture;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::api::{self, AppState, Endpoint, events::EventHub};
use crate::error::{Error, Result};
use crate::home::Home;
use crate::supervisor::Supervisor;

/// How to serve.
#[derive(Debug, Default)]
pub struct ServeOptions {
    /// Start every enabled service at once.
    pub up: bool,
    /// Where the API listens (else settings `listen`, else `127.0.0.1:0`).
    pub listen: Option<String>,
    /// Unlocks a passphrase-protected secret store.
    pub passphrase: Option<crate::secrets::SecretValue>,
}

/// Runs the daemon until SIGINT/SIGTERM. After an update replaced kojibox itself, it stops its
/// services (noting which ran), then executes the new kojibox in its place (same pid, same
/// arguments), which starts them again.
pub fn serve(home: &Home, options: &ServeOptions) -> Result<()> {
    // Named now: once replaced, the running executable's own path names the new file.
    let exe = std::env::current_exe().map_err(Error::io("find", "the kojibox executable"))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("kojibox")
        .enable_all()
        .build()
        .map_err(Error::io("start the runtime for", home.root()))?;
    let restart = runtime.block_on(run(home, options))?;
    drop(runtime);
    if restart {
        let failed = reexec(&exe, options.passphrase.as_ref());
        // Not restarted: a later start must not start what ran before on its own.
        let _ = std::fs::remove_file(resume_path(home));
        return failed;
    }
    Ok(())
}

/// `app/state/resume.json`: the services to start again after a self-update restart.
fn resume_path(home: &Home) -> std::path::PathBuf {
    home.state().join("resume.json")
}

/// Replaces this process with `exe` and the same arguments; a passphrase goes over a pipe on
/// standard input (`--passphrase-stdin`), never the environment.
fn reexec(exe: &std::path::Path, passphrase: Option<&crate::secrets::SecretValue>) -> Result<()> {
    let mut command = std::process::Command::new(exe);
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    command.args(&args);
    if let Some(passphrase) = passphrase {
        if !args.iter().any(|a| a == "--passphrase-stdin") {
            command.arg("--passphrase-stdin");
        }
        let (reader, mut writer) =
            std::io::pipe().map_err(Error::io("pass the passphrase to", exe))?;
        writeln!(writer, "{}", passphrase.expose())
            .map_err(Error::io("pass the passphrase to", exe))?;
        drop(writer);
        command.stdin(reader);
    }
    eprintln!("kojibox was updated: restarting as {}", exe.display());
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        Err(Error::io("restart as", exe)(command.exec()))
    }
    #[cfg(not(unix))]
    {
        // Untested: a new daemon in a new process; this one exits.
        command.spawn().map_err(Error::io("restart as", exe))?;
        Ok(())
    }
}

async fn run(home: &Home, options: &ServeOptions) -> Result<bool> {
    let _lock = home.lock("daemon", "kojibox daemon (or direct update)")?;
    // (`recover_if_idle` recovers an interrupted update first.)
    for note in crate::install::recover_if_idle(home)? {
        eprintln!("note: {note}");
    }
    for dir in [
        "app/config",
        "app/config/services",
        "app/config/projects",
        "app/secrets",
    ] {
        let removed = crate::fsutil::remove_stale_temporaries(&home.join(dir));
        if removed > 0 {
            eprintln!(
                "note: removed {removed} temporary file(s) an interrupted write left in {dir}"
            );
        }
    }
    let vault = Arc::new(crate::vault::Vault::new(
        home.clone(),
        options.passphrase.clone(),
    ));
    if options.passphrase.is_none() && crate::secrets::SecretStore::is_locked(home) {
        eprintln!(
            "note: the secret store is protected by a passphrase and none was given \
             (--passphrase-stdin or KOJIBOX_PASSPHRASE): services that use secrets cannot start"
        );
    } else if options.passphrase.is_some() || home.join("app/secrets/secrets.json").exists() {
        // Opened now (a passphrase's key derivation runs once, here): a wrong passphrase is
        // refused at start, not at the first service that needs a secret.
        let opening = Arc::clone(&vault);
        let opened = tokio::task::spawn_blocking(move || opening.store().map(drop))
            .await
            .map_err(|e| Error::invalid("Internal failure", e.to_string()))?;
        match opened {
            Ok(()) => {}
            Err(e) if options.passphrase.is_some() => return Err(e),
            Err(e) => eprintln!("note: the secret store cannot be opened: {e}"),
        }
    }
    let (events, rx) = broadcast::channel(4096);
    tokio::spawn(narrate(rx));
    let hub = EventHub::start(events.subscribe());
    let watchdog = crate::watchdog::Watchdog::start()
        .map(Arc::new)
        .map_err(Error::io("start the watchdog for", home.root()))?;
    let (supervisor, notes) = Supervisor::start_with(
        home,
        events.clone(),
        Some(Arc::clone(&watchdog)),
        Some(Arc::clone(&vault)),
    )
    .await?;
    let supervisor = Arc::new(supervisor);
    for note in notes {
        eprintln!("note: {note}");
    }

    let listen = match &options.listen {
        Some(listen) => listen.clone(),
        None => crate::settings::Settings::load(home)?
            .listen
            .unwrap_or_else(|| "127.0.0.1:0".to_owned()),
    };
    let listener = api::bind(&listen).await?;
    let address = listener
        .local_addr()
        .map_err(Error::io("listen on", &listen))?;
    let token = api::new_token()?;
    let restart = CancellationToken::new();
    let state = Arc::new(AppState {
        home: home.clone(),
        supervisor: Arc::clone(&supervisor),
        hub: Arc::clone(&hub),
        events: events.clone(),
        vault,
        token: token.clone(),
        port: address.port(),
        restart: restart.clone(),
    });
    let closing = CancellationToken::new();
    let server = tokio::spawn(
        axum::serve(listener, api::router(state))
            .with_graceful_shutdown(closing.clone().cancelled_owned())
            .into_future(),
    );
    let url = format!("http://{address}");
    api::write_endpoint(
        home,
        &Endpoint {
            url: url.clone(),
            pid: std::process::id(),
        },
        &token,
    )?;

    let ids = supervisor.ids();
    eprintln!(
        "kojibox serving {} on {url} ({} service(s): {}); Ctrl-C stops",
        home.root().display(),
        ids.len(),
        if ids.is_empty() {
            "none installed".to_owned()
        } else {
            ids.join(", ")
        }
    );
    if options.up {
        for (id, result) in supervisor.up().await {
            if let Err(e) = result {
                eprintln!("{id}: could not start: {e}");
            }
        }
    }
    // After a self-update restart: what ran before runs again.
    if let Some(ids) = crate::fsutil::read_json::<Vec<String>>(&resume_path(home))? {
        let _ = std::fs::remove_file(resume_path(home));
        for id in ids {
            if let Err(e) = supervisor.start_service(&id).await {
                eprintln!("{id}: could not start again after the restart: {e}");
            }
        }
    }
    let restarting = tokio::select! {
        () = wait_for_signal() => false,
        () = restart.cancelled() => true,
    };
    if restarting {
        let running: Vec<String> = supervisor
            .list()
            .into_iter()
            .filter(|s| matches!(s.state, ServiceStatus::Running | ServiceStatus::Starting))
            .map(|s| s.id)
            .collect();
        crate::fsutil::write_json(&resume_path(home), &running)?;
    }
    eprintln!("stopping services...");
    supervisor.shutdown().await;
    watchdog.finish();
    api::remove_endpoint(home);
    hub.close();
    closing.cancel();
    // Let in-flight requests finish; do not wait on a client that keeps its connection open.
    let _ = tokio::time::timeout(Duration::from_secs(2), server).await;
    eprintln!("all services stopped");
    Ok(restarting)
}

/// Prints state changes and health verdicts for a person watching the terminal.
async fn narrate(mut rx: broadcast::Receiver<Event>) {
    loop {
        let line = match rx.recv().await {
            Ok(Event::ServiceStateChanged(s)) => {
                let pid = s.pid.map(|p| format!(" (pid {p})")).unwrap_or_default();
                let why = match (s.state, &s.last_error) {
                    (ServiceStatus::Error | ServiceStatus::Starting, Some(e)) => format!(": {e}"),
                    _ => String::new(),
                };
                format!(
                    "{}: {}{pid}{why}",
                    s.id,
                    serde_json::to_value(s.state)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_owned))
                        .unwrap_or_default()
                )
            }
            Ok(Event::ServiceHealth(h)) => {
                format!("{}: health {:?}", h.id, h.status).to_lowercase()
            }
            Ok(_) => continue,
            Err(broadcast::error::RecvError::Lagged(n)) => format!("({n} events skipped)"),
            Err(broadcast::error::RecvError::Closed) => return,
        };
        let _ = writeln!(std::io::stderr(), "{line}");
    }
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut term), Ok(mut int)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) else {
            let _ = tokio::signal::ctrl_c().await;
            return;
        };
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}
