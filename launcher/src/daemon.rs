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

/// Runs the daemon until SIGINT/SIGTERM.
pub fn serve(home: &Home, options: &ServeOptions) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("kojibox")
        .enable_all()
        .build()
        .map_err(Error::io("start the runtime for", home.root()))?;
    runtime.block_on(run(home, options))
}

async fn run(home: &Home, options: &ServeOptions) -> Result<()> {
    let _lock = home.lock("daemon", "kojibox daemon")?;
    // An interrupted update first: it decides which version is installed.
    for note in crate::updater::recover(home)? {
        eprintln!("note: {note}");
    }
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
    let state = Arc::new(AppState {
        home: home.clone(),
        supervisor: Arc::clone(&supervisor),
        hub: Arc::clone(&hub),
        events: events.clone(),
        vault,
        token: token.clone(),
        port: address.port(),
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
    wait_for_signal().await;
    eprintln!("stopping services...");
    supervisor.shutdown().await;
    watchdog.finish();
    api::remove_endpoint(home);
    hub.close();
    closing.cancel();
    // Let in-flight requests finish; do not wait on a client that keeps its connection open.
    let _ = tokio::time::timeout(Duration::from_secs(2), server).await;
    eprintln!("all services stopped");
    Ok(())
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
