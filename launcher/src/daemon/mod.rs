//! The daemon as a library value: [`Daemon::start`] brings it up and answers a
//! [`DaemonHandle`]; [`serve`] is `kojibox serve` (start, wait for SIGINT or SIGTERM, stop, and
//! restart on a replaced executable after a self-update).
//!
//! # Theory of operation
//!
//! [`Daemon::start`] takes the home's daemon lock (one daemon per home), finishes or cleans up
//! an interrupted install or update, opens the secret store, starts the supervisor (ending
//! services a previous daemon left behind), binds the API on loopback, writes
//! `app/state/api.json` and `api-token`, and returns. Then one task of its own starts every
//! enabled service when asked to (`up`), brings back what ran before a self-update restart,
//! and waits for the injected shutdown future (or [`DaemonHandle::shutdown`], or a restart
//! after a self-update). Then it stops every service in reverse dependency order, removes the
//! endpoint files, closes the event stream, lets in-flight requests finish (for two seconds at
//! most), and waits for every other task the daemon spawned (the narration, the event hub,
//! updates in progress, a restart soon after one), each tracked by one [`TaskTracker`].
//!
//! Services die with the daemon even if it is killed: their death signal is tied to the
//! supervisor's spawner thread, and the watchdog (when a command for it is given) kills every
//! service group when the daemon goes without a word.
//!
//! What the daemon has to say goes to a [`Notices`] sink as [`Notice`] values; it prints
//! nothing itself.

mod housekeeping;
mod notice;
mod proof;
mod recovery;
mod reexec;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use kojibox_home::endpoint::{self, Endpoint};
use kojibox_home::task::blocking;
use kojibox_home::{Home, LockName, Settings};
use kojibox_manifests::event::Event;
use kojibox_manifests::model::{LogLevel, ServiceStatus};
use kojibox_proc::Watchdog;
use kojibox_secrets::{SecretStore, SecretValue, Vault};
use kojibox_supervisor::Supervisor;
use kojibox_supervisor::logs::LogSink;
use tokio::sync::broadcast;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::api::{self, AppState, hub::EventHub};
use crate::error::{Error, Result};
pub use housekeeping::ROTATE_BYTES as DAEMON_LOG_ROTATE_BYTES;
pub use notice::{Notice, Notices};
pub use proof::{guard as prove_self_update, undone_note as self_update_undone};

/// How long in-flight requests may take to finish once the daemon stops (a client that keeps
/// its connection open is not waited for longer).
const REQUEST_GRACE: Duration = Duration::from_secs(2);
/// How long the daemon waits for the rest of its tasks (an update rolling back) at the end.
const TASK_GRACE: Duration = Duration::from_secs(30);
/// How long the runtime's blocking threads (pipe readers) get once the daemon is done.
pub const RUNTIME_GRACE: Duration = Duration::from_secs(2);

/// How to run a daemon.
#[derive(Debug, Default)]
pub struct DaemonOptions {
    /// Start every enabled service at once.
    pub up: bool,
    /// Where the API listens (else settings `listen`, else `127.0.0.1:0`).
    pub listen: Option<String>,
    /// Unlocks a passphrase-protected secret store.
    pub passphrase: Option<SecretValue>,
    /// The command that runs the watchdog helper (`kojibox __watchdog`, which calls
    /// [`kojibox_proc::watchdog::run`]); `None` runs without one (an in-process test).
    pub watchdog: Option<std::process::Command>,
}

/// How a daemon ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exit {
    /// kojibox replaced itself: the process should restart on the new executable (the services
    /// that ran are in `app/state/resume.json`).
    pub restart: bool,
}

/// The daemon.
#[derive(Debug)]
pub struct Daemon;

/// A running daemon.
#[derive(Debug)]
pub struct DaemonHandle {
    addr: SocketAddr,
    url: String,
    token: String,
    stop: CancellationToken,
    task: JoinHandle<Result<Exit>>,
}

impl DaemonHandle {
    /// Where the API listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The bearer token.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// Asks the daemon to stop (as its shutdown future would).
    pub fn shutdown(&self) {
        self.stop.cancel();
    }

    /// Waits until the daemon has stopped every service and task.
    pub async fn join(self) -> Result<Exit> {
        self.task.await.map_err(|e| {
            Error::Home(kojibox_home::Error::Internal {
                detail: format!("the daemon's task failed: {e}"),
            })
        })?
    }
}

impl Daemon {
    /// Starts a daemon for `home` (see the module documentation); it runs until `shutdown`
    /// completes, [`DaemonHandle::shutdown`] is called, or a self-update asks for a restart.
    /// Must run inside a multi-threaded tokio runtime.
    pub async fn start(
        home: Home,
        options: DaemonOptions,
        notices: Notices,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<DaemonHandle> {
        let lock = home.lock(LockName::Daemon)?;
        let (events, narration) = broadcast::channel(4096);
        // Everything the daemon says is also kept in its own log (`app/logs/kojibox.jsonl`).
        let h = home.clone();
        let e = events.clone();
        let journal = blocking(move || {
            Ok::<_, Error>(Arc::new(LogSink::new(
                kojibox_supervisor::logs::DAEMON_LOG,
                &h,
                e,
            )))
        })
        .await?;
        let notices = journal_notices(notices, Arc::clone(&journal));
        let h = home.clone();
        for note in blocking(move || recovery::recover(&h)).await? {
            notices(Notice::Note(note));
        }
        let h = home.clone();
        if let Some(note) = blocking(move || Ok::<_, Error>(proof::undone_note(&h))).await? {
            notices(Notice::Note(note));
        }
        // A typo in settings.json (`updateSoruce`) is ignored, but said at every start.
        let h = home.clone();
        for warning in blocking(move || Ok::<_, Error>(Settings::warnings(&h))).await? {
            notices(Notice::Note(warning));
        }
        let vault = Arc::new(Vault::new(home.clone(), options.passphrase.clone()));
        open_secrets(&home, &vault, options.passphrase.is_some(), &notices).await?;

        let tasks = TaskTracker::new();
        let stop = CancellationToken::new();
        let narrating = CancellationToken::new();
        tasks.spawn(notice::narrate(
            narration,
            Arc::clone(&notices),
            narrating.clone(),
        ));
        let hub_stop = CancellationToken::new();
        let hub = EventHub::start(events.subscribe(), &tasks, hub_stop.clone());
        let watchdog = match options.watchdog {
            Some(command) => Some(Arc::new(
                Watchdog::start(command)
                    .map_err(Error::io("start the watchdog for", home.root()))?,
            )),
            None => None,
        };
        let (supervisor, notes) = Supervisor::start_with(
            &home,
            events.clone(),
            kojibox_supervisor::Options {
                watchdog: watchdog.clone(),
                vault: Some(Arc::clone(&vault)),
            },
        )
        .await?;
        let supervisor = Arc::new(supervisor);
        for note in notes {
            notices(Notice::Note(note));
        }

        let listen = match options.listen {
            Some(listen) => listen,
            None => {
                let h = home.clone();
                blocking(move || Settings::load(&h))
                    .await?
                    .listen
                    .unwrap_or_else(|| "127.0.0.1:0".to_owned())
            }
        };
        let listener = api::bind(&listen).await?;
        let addr = listener
            .local_addr()
            .map_err(Error::io("listen on", &listen))?;
        let token = endpoint::new_token()?;
        let restart = CancellationToken::new();
        let stopping = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let metrics = Arc::new(crate::metrics::Sampler::new(addr.port()));
        let state = Arc::new(AppState {
            home: home.clone(),
            supervisor: Arc::clone(&supervisor),
            hub: Arc::clone(&hub),
            events: events.clone(),
            vault,
            token: token.clone(),
            sessions: api::sessions::Sessions::default(),
            port: addr.port(),
            restart: restart.clone(),
            stopping: Arc::clone(&stopping),
            tasks: tasks.clone(),
            metrics: Arc::clone(&metrics),
            journal: Arc::clone(&journal),
        });
        let closing = CancellationToken::new();
        // A quarter of the descriptors at most: the rest stays for the supervisor.
        let connections =
            api::server::Connections::new(api::server::cap_for(kojibox_proc::limits::open_files()));
        // Tracked by its handle: awaited for a grace period at the end, then aborted.
        let server = tokio::spawn(api::server::serve(
            listener,
            api::router(state),
            connections,
            closing.clone(),
        ));
        let url = format!("http://{addr}");
        let h = home.clone();
        let written = Endpoint {
            url: url.clone(),
            pid: std::process::id(),
        };
        let t = token.clone();
        blocking(move || endpoint::write(&h, &written, &t)).await?;
        notices(Notice::Serving {
            home: home.root().to_owned(),
            url: url.clone(),
            services: supervisor.ids(),
        });

        let run = Run {
            home,
            up: options.up,
            supervisor,
            events,
            stopping,
            watchdog,
            hub,
            notices,
            tasks: tasks.clone(),
            stop: stop.clone(),
            restart,
            closing,
            narrating,
            hub_stop,
            server,
            metrics,
            journal,
            _lock: lock,
        };
        let task = tokio::spawn(run.run(shutdown));
        Ok(DaemonHandle {
            addr,
            url,
            token,
            stop,
            task,
        })
    }
}

/// Opens the secret store now (a passphrase's key derivation runs once, here), so that a wrong
/// passphrase is refused at start, not at the first service that needs a secret.
async fn open_secrets(
    home: &Home,
    vault: &Arc<Vault>,
    given: bool,
    notices: &Notices,
) -> Result<()> {
    if !given && SecretStore::is_locked(home) {
        notices(Notice::Note(
            "the secret store is protected by a passphrase and none was given \
             (--passphrase-stdin or KOJIBOX_PASSPHRASE): services that use secrets cannot start"
                .into(),
        ));
        return Ok(());
    }
    if !given && !home.secret_store().exists() {
        return Ok(());
    }
    let opening = Arc::clone(vault);
    match blocking(move || opening.store().map(drop)).await {
        Ok(()) => Ok(()),
        Err(e) if given => Err(e.into()),
        Err(e) => {
            notices(Notice::Note(format!(
                "the secret store cannot be opened: {e}"
            )));
            Ok(())
        }
    }
}

/// The daemon's own task: from serving to stopped.
struct Run {
    home: Home,
    up: bool,
    supervisor: Arc<Supervisor>,
    events: broadcast::Sender<Event>,
    /// Set once the daemon begins to stop (an update still downloading gives up).
    stopping: Arc<std::sync::atomic::AtomicBool>,
    watchdog: Option<Arc<Watchdog>>,
    hub: Arc<EventHub>,
    notices: Notices,
    tasks: TaskTracker,
    stop: CancellationToken,
    restart: CancellationToken,
    closing: CancellationToken,
    narrating: CancellationToken,
    hub_stop: CancellationToken,
    server: JoinHandle<()>,
    metrics: Arc<crate::metrics::Sampler>,
    journal: Arc<LogSink>,
    _lock: kojibox_home::Lock,
}

impl Run {
    async fn run(self, shutdown: impl Future<Output = ()> + Send) -> Result<Exit> {
        let notices = &self.notices;
        let supervisor = &self.supervisor;
        let housekeeping = CancellationToken::new();
        self.tasks.spawn(housekeeping::run(
            housekeeping::Housekeeping {
                home: self.home.clone(),
                supervisor: Arc::clone(supervisor),
                watchdog: self.watchdog.clone(),
                events: self.events.clone(),
                notices: Arc::clone(notices),
            },
            housekeeping.clone(),
        ));
        self.tasks.spawn(crate::metrics::run(
            Arc::clone(&self.metrics),
            Arc::clone(supervisor),
            housekeeping.clone(),
        ));
        if self.up {
            for (id, result) in supervisor.up().await {
                if let Err(e) = result {
                    notices(Notice::CouldNotStart {
                        id,
                        error: e.to_string(),
                    });
                }
            }
        }
        // After a self-update restart: what ran before runs again.
        let h = self.home.clone();
        let resumed = blocking(move || {
            let ids = kojibox_home::fs::read_json::<Vec<String>>(&h.resume_file());
            let _ = std::fs::remove_file(h.resume_file());
            ids
        })
        .await
        .unwrap_or_else(|e| {
            // Never a reason not to serve: the services can be started by hand.
            notices(Notice::Note(format!(
                "could not read which services ran before the restart: {e}"
            )));
            None
        });
        for id in resumed.unwrap_or_default() {
            if let Err(e) = supervisor.start_service(&id).await {
                notices(Notice::CouldNotResume {
                    id,
                    error: e.to_string(),
                });
            }
        }

        let restarting = tokio::select! {
            () = shutdown => false,
            () = self.stop.cancelled() => false,
            () = self.restart.cancelled() => true,
        };
        if restarting {
            let running: Vec<String> = supervisor
                .list()
                .into_iter()
                .filter(|s| matches!(s.state, ServiceStatus::Running | ServiceStatus::Starting))
                .map(|s| s.id)
                .collect();
            if let Err(e) =
                kojibox_home::fs::write_json(&self.home, &self.home.resume_file(), &running)
            {
                // The services still stop in order; the new kojibox starts none by itself.
                notices(Notice::Note(format!(
                    "could not record which services to start again after the restart: {e}"
                )));
            }
        }
        notices(Notice::Stopping);
        self.stopping
            .store(true, std::sync::atomic::Ordering::SeqCst);
        supervisor.shutdown().await;
        // Not restarted from now on: the watchdog is told it may end.
        housekeeping.cancel();
        if let Some(watchdog) = &self.watchdog {
            let watchdog = Arc::clone(watchdog);
            let _ = tokio::task::spawn_blocking(move || watchdog.finish()).await;
        }
        endpoint::remove(&self.home);
        self.hub.close();
        self.hub_stop.cancel();
        self.closing.cancel();
        // Let in-flight requests finish; do not wait on a client that keeps its connection open.
        let mut server = self.server;
        if tokio::time::timeout(REQUEST_GRACE, &mut server)
            .await
            .is_err()
        {
            server.abort();
            let _ = server.await;
        }
        self.narrating.cancel();
        self.tasks.close();
        if tokio::time::timeout(TASK_GRACE, self.tasks.wait())
            .await
            .is_err()
        {
            // Work still runs (a download on a blocking thread): the home stays this process's
            // until it exits, so no second daemon starts beside it.
            notices(Notice::Note(format!(
                "some work did not finish within {} s; the home stays locked until this process exits",
                TASK_GRACE.as_secs()
            )));
            std::mem::forget(self._lock);
        }
        notices(Notice::Stopped);
        let journal = Arc::clone(&self.journal);
        let _ = tokio::task::spawn_blocking(move || journal.flush()).await;
        Ok(Exit {
            restart: restarting,
        })
    }
}

/// `notices`, each also written to the daemon's own log: what could not start as an error,
/// the rest at the level its words announce.
fn journal_notices(notices: Notices, journal: Arc<LogSink>) -> Notices {
    Arc::new(move |notice: Notice| {
        let level = match &notice {
            Notice::CouldNotStart { .. } | Notice::CouldNotResume { .. } => LogLevel::Error,
            Notice::Skipped(_) => LogLevel::Warn,
            Notice::Service(line) => {
                // `web: error: exited with status 1`: the word after the id.
                let state = line.split_once(": ").map_or(line.as_str(), |(_, s)| s);
                kojibox_supervisor::logs::infer_level(state)
            }
            other => kojibox_supervisor::logs::infer_level(&other.to_string()),
        };
        journal.note(level, notice.to_string());
        notices(notice);
    })
}

/// `kojibox serve`: runs the daemon until SIGINT/SIGTERM. After an update replaced kojibox
/// itself, it stops its services (noting which ran), then executes the new kojibox in its place
/// (same pid, same arguments), which starts them again.
///
/// At the end the runtime gets [`RUNTIME_GRACE`] for its blocking threads, then is left.
pub fn serve(home: &Home, options: DaemonOptions, notices: Notices) -> Result<()> {
    // Many connections and services must not run into a low default (1,024 descriptors).
    kojibox_proc::limits::raise_open_files();
    // Named now: once replaced, the running executable's own path names the new file.
    let exe = std::env::current_exe().map_err(Error::io("find", "the kojibox executable"))?;
    let passphrase = options.passphrase.clone();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("kojibox")
        .enable_all()
        .build()
        .map_err(Error::io("start the runtime for", home.root()))?;
    let exit = runtime.block_on(async {
        let daemon = Daemon::start(
            home.clone(),
            options,
            Arc::clone(&notices),
            wait_for_signal(),
        )
        .await?;
        daemon.join().await
    });
    // Not a plain drop, which waits for every blocking task: a service's pipe is read on a
    // blocking thread until the pipe closes, and a process that escaped the service's group
    // and kept its output open must not keep the daemon from exiting (or restarting).
    runtime.shutdown_timeout(RUNTIME_GRACE);
    let exit = exit?;
    if exit.restart {
        notices(Notice::Restarting { exe: exe.clone() });
        // A guard from this (known-good) image: the new kojibox must serve and bring the
        // services back within a deadline, or the previous one comes back.
        let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
        if home.previous_exe().exists()
            && let Err(e) = proof::arm(home, &exe, &args)
        {
            notices(Notice::Note(format!(
                "the self-update cannot be guarded ({e}): if the new kojibox fails, put the \
                 previous one back with `kojibox update rollback`"
            )));
        }
        let failed = reexec::reexec(&exe, passphrase.as_ref());
        // Not restarted: a later start must not start what ran before on its own.
        let _ = std::fs::remove_file(home.resume_file());
        return failed;
    }
    Ok(())
}

/// SIGINT or SIGTERM (Ctrl-C elsewhere).
pub async fn wait_for_signal() {
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
