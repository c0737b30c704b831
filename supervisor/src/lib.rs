//! The supervisor: one actor per installed service, and the operations of the contract's
//! Service Manager (`services.list/start/stop/restart/logs/health`).
//!
//! # Theory of operation
//!
//! At start the supervisor reads the services of the installed runtime
//! ([`kojibox_config::catalog`]),
//! refuses dependency cycles, ends whatever a previous daemon left running (recorded pid plus
//! process start time, so a reused pid is never touched), and spawns one actor per
//! service. An actor (`actor.rs`) owns its process: it spawns it (in its own process group, from the one
//! spawner thread, dying with the daemon), pumps its output into the log, probes its health,
//! restarts it with backoff, and stops it (SIGTERM to the group, SIGKILL after the stop
//! timeout). The lifecycle itself is the pure [`lifecycle::step`].
//!
//! `start` starts a service's dependencies first (each must become `running` before the
//! dependent spawns) and answers at once with `starting`; `shutdown` stops every service in
//! reverse dependency order. Events (`service:stateChanged`, `service:logLine`,
//! `service:health`) go out on the bus given at start; no subscriber can slow a service down.
//!
//! When the daemon runs as root, each service runs as a user of its own (made at its first
//! start, see `kojibox_config::user`), or as settings `serviceUser` shared by all; that user must
//! be able to reach the home, and its data folder (0700) is given to it.
//!
//! An update asks for restarts through [`kojibox_runtime::update::Services`], which the
//! supervisor implements (`services.rs`).
//!
//! The set of services follows the installed runtime without a restart: [`Supervisor::reload`]
//! (after an install, an update or a rollback, and whenever the daemon sees the manifest
//! change) supervises new services (stopped) and stops and drops those no longer installed.

mod actor;
mod context;
mod control;
pub mod error;
mod exit;
pub mod health;
pub mod lifecycle;
pub mod logs;
mod services;
mod spawn;

pub use spawn::render_config;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use kojibox_config::definition::Definition;
use kojibox_home::Home;
use kojibox_home::task::blocking;
use kojibox_manifests::event::Event;
use kojibox_manifests::model::{
    HealthCheck, LogEntry, ServiceDefinition, ServiceState, ServiceStatus,
};
use kojibox_proc::Watchdog;
use kojibox_secrets::Vault;
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio_util::task::TaskTracker;

use actor::Actor;
use context::Context;
use control::{Control, ask};
pub use error::{Error, Result};
use logs::LogSink;

/// The tail `services.logs` returns when none is asked for.
pub const DEFAULT_TAIL: u32 = 100;

/// How long [`Supervisor::shutdown`] waits for the log pumps to read the last output of the
/// stopped services (a process outside every group kojibox ends could hold a pipe open).
const PUMP_DRAIN: Duration = Duration::from_secs(5);

/// What a supervisor is started with, beyond the home and the event bus.
#[derive(Default)]
pub struct Options {
    /// Told about every service group, so that they end even if the daemon is killed (the
    /// daemon passes one; in-process tests need not).
    pub watchdog: Option<Arc<Watchdog>>,
    /// Where `${secret.*}` values come from (default: the home's store, without a passphrase).
    pub vault: Option<Arc<Vault>>,
}

struct Service {
    id: String,
    /// The definition in use (reloaded from the configuration at each start).
    def: watch::Receiver<Arc<Definition>>,
    tx: mpsc::Sender<Control>,
    state: watch::Receiver<ServiceState>,
    logs: Arc<LogSink>,
}

/// What [`Supervisor::reload`] changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reloaded {
    /// Services now supervised (stopped), dependencies first.
    pub added: Vec<String>,
    /// Services no longer installed: stopped and dropped.
    pub removed: Vec<String>,
}

impl Reloaded {
    /// Whether the set of services changed.
    pub fn changed(&self) -> bool {
        !self.added.is_empty() || !self.removed.is_empty()
    }
}

/// The running supervisor.
pub struct Supervisor {
    home: Home,
    ctx: Arc<Context>,
    /// Dependencies first; replaced (not edited) by a reload, so a reader holds a snapshot.
    services: RwLock<Arc<Vec<Arc<Service>>>>,
    /// One reload at a time.
    reloading: tokio::sync::Mutex<()>,
    /// The bytes of `runtime/manifest.json` the services were last loaded from.
    loaded_from: std::sync::Mutex<Option<Vec<u8>>>,
    actors: std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>,
    /// The actors' helper tasks (log pumps, ending a process spawned as a start was cancelled).
    tasks: TaskTracker,
    /// Set when [`Supervisor::shutdown`] begins: from then on nothing starts.
    closing: AtomicBool,
    /// The services' cgroups (or markers): emptied and removed at the end of a shutdown.
    containment: kojibox_proc::Containment,
}

impl Supervisor {
    /// Loads the installed services, cleans up after a previous daemon and starts one actor per
    /// service (all stopped). Returns notes for the user (what was cleaned up). Must run inside
    /// a tokio runtime.
    pub async fn start(
        home: &Home,
        events: broadcast::Sender<Event>,
    ) -> Result<(Supervisor, Vec<String>)> {
        Self::start_with(home, events, Options::default()).await
    }

    /// [`Supervisor::start`] with a watchdog and a vault.
    pub async fn start_with(
        home: &Home,
        events: broadcast::Sender<Event>,
        options: Options,
    ) -> Result<(Supervisor, Vec<String>)> {
        // Fail early on a broken definition, before touching anything (no port is assigned
        // yet: leftovers may still hold them). Off the workers: it takes the registry's lock.
        let h = home.clone();
        blocking(move || kojibox_config::catalog::check(&h).map_err(Error::from)).await?;
        let records = home.service_records();
        let mut notes = Vec::new();
        // Each service in a cgroup of its own where possible, else the daemon as subreaper.
        let containment = {
            let (root, records) = (home.root().to_owned(), records.clone());
            blocking(move || Ok::<_, Error>(kojibox_proc::Containment::for_home(&root, &records)))
                .await?
        };
        for leftover in kojibox_proc::reap_leftovers(&records, Duration::from_secs(10)).await {
            let pid = leftover.record.as_ref().map_or(0, |r| r.pid);
            match &leftover.outcome {
                kojibox_proc::LeftoverOutcome::Terminated(t) => {
                    let how = if t.needed_kill { "killed" } else { "stopped" };
                    notes.push(format!(
                        "{how} {} (pid {pid}), left running by a previous daemon",
                        leftover.id
                    ));
                }
                kojibox_proc::LeftoverOutcome::Orphans(t) => {
                    let how = if t.needed_kill { "killed" } else { "stopped" };
                    notes.push(format!(
                        "{how} what {} (pid {pid}) had started and left running when a previous daemon died",
                        leftover.id
                    ));
                }
                _ => {}
            }
        }
        // What escaped the recorded groups (double fork plus `setsid`): the earlier daemons'
        // cgroups and every process carrying this home's marker.
        notes.extend(containment.reap_escaped(Duration::from_secs(10)).await);
        if let Some(watchdog) = &options.watchdog {
            watchdog.contain(&containment);
        }
        // Ports are assigned once leftovers are gone, so that none looks busy.
        let h = home.clone();
        let (definitions, users, loaded_from) = blocking(move || {
            // Read first: a manifest switched while loading is noticed by the next reload.
            let loaded_from = std::fs::read(h.manifest()).ok();
            let definitions = kojibox_config::catalog::load(&h)?;
            let users = kojibox_config::user::service_users(&h)?;
            Ok::<_, Error>((definitions, users, loaded_from))
        })
        .await?;
        let spawner = kojibox_proc::Spawner::contained(containment.clone())
            .map_err(Error::io("start the process spawner for", home.root()))?;
        let tasks = TaskTracker::new();
        let ctx = Arc::new(Context {
            home: home.clone(),
            spawner,
            events: events.clone(),
            records,
            users,
            states: RwLock::default(),
            watchdog: options.watchdog,
            vault: options
                .vault
                .unwrap_or_else(|| Arc::new(Vault::new(home.clone(), None))),
            tasks: tasks.clone(),
        });
        let supervisor = Supervisor {
            home: home.clone(),
            ctx,
            services: RwLock::new(Arc::new(Vec::new())),
            reloading: tokio::sync::Mutex::new(()),
            loaded_from: std::sync::Mutex::new(loaded_from),
            actors: std::sync::Mutex::new(Vec::new()),
            tasks,
            closing: AtomicBool::new(false),
            containment,
        };
        let services = kojibox_config::catalog::topological(definitions)
            .into_iter()
            .map(|def| supervisor.supervise(def))
            .collect();
        supervisor.replace(services);
        Ok((supervisor, notes))
    }

    /// A new actor (stopped) for `def`.
    fn supervise(&self, def: Definition) -> Arc<Service> {
        let def = Arc::new(def);
        let sink = Arc::new(LogSink::new(def.id(), &self.home, self.ctx.events.clone()));
        let (actor, state, def_rx) =
            Actor::new(Arc::clone(&def), Arc::clone(&self.ctx), Arc::clone(&sink));
        let (tx, rx) = mpsc::channel(32);
        self.actors
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(tokio::spawn(actor.run(rx)));
        Arc::new(Service {
            id: def.id().to_owned(),
            def: def_rx,
            tx,
            state,
            logs: sink,
        })
    }

    /// Makes `services` the supervised set (and the states dependencies watch).
    fn replace(&self, services: Vec<Arc<Service>>) {
        *self
            .ctx
            .states
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = services
            .iter()
            .map(|s| (s.id.clone(), s.state.clone()))
            .collect();
        *self
            .services
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(services);
    }

    /// The supervised services now, dependencies first.
    fn all(&self) -> Arc<Vec<Arc<Service>>> {
        Arc::clone(
            &self
                .services
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }

    /// The installed services changed (an install, an update, a rollback): supervises the new
    /// ones (stopped), stops and drops those no longer installed (each fully, dependents
    /// first). Services that stay keep running; their new definition applies at their next
    /// start, as after a configuration change. While the supervisor shuts down, nothing
    /// changes.
    pub async fn reload(&self) -> Result<Reloaded> {
        let _one = self.reloading.lock().await;
        self.open()?;
        let h = self.home.clone();
        let (definitions, bytes) = blocking(move || {
            // Read first, as at start.
            let bytes = std::fs::read(h.manifest()).ok();
            kojibox_config::catalog::check(&h)?;
            Ok::<_, Error>((kojibox_config::catalog::load(&h)?, bytes))
        })
        .await?;
        let current = self.all();
        let wanted: Vec<String> = definitions.iter().map(|d| d.id().to_owned()).collect();
        let mut reloaded = Reloaded::default();
        for gone in current.iter().rev().filter(|s| !wanted.contains(&s.id)) {
            let (reply, done) = oneshot::channel();
            if gone.tx.send(Control::Shutdown(reply)).await.is_ok() {
                let _ = done.await;
            }
            gone.logs.note(
                kojibox_manifests::model::LogLevel::Info,
                "no longer installed: stopped and no longer supervised",
            );
            gone.logs.flush();
            reloaded.removed.push(gone.id.clone());
        }
        let mut next = Vec::new();
        for def in kojibox_config::catalog::topological(definitions) {
            match current.iter().find(|s| s.id == def.id()) {
                Some(kept) => next.push(Arc::clone(kept)),
                None => {
                    reloaded.added.push(def.id().to_owned());
                    next.push(self.supervise(def));
                }
            }
        }
        self.replace(next);
        *self
            .loaded_from
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = bytes;
        Ok(reloaded)
    }

    /// [`reload`](Supervisor::reload) if `runtime/manifest.json` differs from the one the
    /// services were last loaded from (a `kojibox install` run beside the daemon); `None` when
    /// it does not.
    pub async fn reload_if_changed(&self) -> Option<Result<Reloaded>> {
        let h = self.home.clone();
        let now = blocking(move || Ok::<_, Error>(std::fs::read(h.manifest()).ok()))
            .await
            .ok()?;
        let same = *self
            .loaded_from
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            == now;
        if same {
            return None;
        }
        Some(self.reload().await)
    }

    fn get(&self, id: &str) -> Result<Arc<Service>> {
        let all = self.all();
        all.iter().find(|s| s.id == id).cloned().ok_or_else(|| {
            kojibox_config::service::not_installed(id, all.iter().map(|s| s.id.as_str())).into()
        })
    }

    /// Ids of every service, dependencies first.
    pub fn ids(&self) -> Vec<String> {
        self.all().iter().map(|s| s.id.clone()).collect()
    }

    /// `services.list`.
    pub fn list(&self) -> Vec<ServiceState> {
        self.all()
            .iter()
            .map(|s| s.state.borrow().clone())
            .collect()
    }

    /// One service's state.
    pub fn state(&self, id: &str) -> Result<ServiceState> {
        Ok(self.get(id)?.state.borrow().clone())
    }

    /// Watches one service's state.
    pub fn subscribe(&self, id: &str) -> Result<watch::Receiver<ServiceState>> {
        Ok(self.get(id)?.state.clone())
    }

    /// The definition a service runs with (placeholders expanded, secrets not): the one of its
    /// last start, which a configuration change replaces at the next start.
    pub fn definition(&self, id: &str) -> Result<ServiceDefinition> {
        Ok(self.get(id)?.def.borrow().contract.clone())
    }

    /// `services.start`: starts its stopped dependencies first, then the service; answers at
    /// once (`starting`), before the health check passes. While the supervisor shuts down it
    /// answers [`Error::ShuttingDown`] and starts nothing.
    pub async fn start_service(&self, id: &str) -> Result<ServiceState> {
        let service = self.get(id)?;
        self.open()?;
        for dep in self.dependencies(id) {
            let dep_service = self.get(&dep)?;
            let state = dep_service.state.borrow().state;
            if matches!(state, ServiceStatus::Stopped | ServiceStatus::Error)
                && let Err(e) = ask(&dep_service.tx, Control::Start).await?
            {
                if matches!(e, Error::ShuttingDown) {
                    return Err(e);
                }
                let detail = format!("{id} needs {dep}, which could not start: {e}");
                ask(&service.tx, |reply| Control::Fail(detail.clone(), reply)).await?;
                return Err(Error::DependencyFailed { detail });
            }
        }
        ask(&service.tx, Control::Start).await?
    }

    /// `services.stop`: answers at once (`stopping`).
    pub async fn stop_service(&self, id: &str) -> Result<ServiceState> {
        ask(&self.get(id)?.tx, Control::Stop).await
    }

    /// `services.restart`; while the supervisor shuts down, [`Error::ShuttingDown`].
    pub async fn restart_service(&self, id: &str) -> Result<ServiceState> {
        let service = self.get(id)?;
        self.open()?;
        if matches!(
            service.state.borrow().state,
            ServiceStatus::Stopped | ServiceStatus::Error
        ) {
            return self.start_service(id).await;
        }
        ask(&service.tx, Control::Restart).await?
    }

    /// `services.logs`: the newest `tail` lines.
    pub fn logs(&self, id: &str, tail: Option<u32>) -> Result<Vec<LogEntry>> {
        Ok(self
            .get(id)?
            .logs
            .tail(tail.unwrap_or(DEFAULT_TAIL) as usize))
    }

    /// `services.health`: the configured check.
    pub fn health(&self, id: &str) -> Result<HealthCheck> {
        Ok(self.get(id)?.def.borrow().contract.health_check.clone())
    }

    /// Starts every enabled service (dependencies first); one result per service. Whether a
    /// service is enabled is its configuration as it is now.
    pub async fn up(&self) -> Vec<(String, Result<ServiceState>)> {
        let mut out = Vec::new();
        let known: Vec<(String, bool)> = self
            .all()
            .iter()
            .map(|s| (s.id.clone(), s.def.borrow().enabled))
            .collect();
        let home = self.home.clone();
        let ids: Vec<String> = blocking(move || {
            Ok::<_, Error>(
                known
                    .into_iter()
                    .filter(
                        |(id, defined)| match kojibox_config::stored_service(&home, id) {
                            Ok(Some(config)) => config.enabled,
                            _ => *defined,
                        },
                    )
                    .map(|(id, _)| id)
                    .collect(),
            )
        })
        .await
        .unwrap_or_default();
        for id in ids {
            let result = self.start_service(&id).await;
            out.push((id, result));
        }
        out
    }

    /// Waits until `id`'s state satisfies `done`, or `timeout`.
    pub async fn wait_for(
        &self,
        id: &str,
        timeout: Duration,
        done: impl Fn(&ServiceState) -> bool,
    ) -> Result<ServiceState> {
        let mut rx = self.subscribe(id)?;
        let wait = async {
            loop {
                let state = rx.borrow_and_update().clone();
                if done(&state) {
                    return Ok(state);
                }
                if rx.changed().await.is_err() {
                    return Err(Error::NotFound {
                        detail: format!("service `{id}` is gone"),
                    });
                }
            }
        };
        tokio::time::timeout(timeout, wait)
            .await
            .map_err(|_| Error::Timeout {
                detail: format!(
                    "{id} is still {:?} after {} s",
                    self.state(id).map(|s| s.state),
                    timeout.as_secs()
                ),
            })?
    }

    /// Stops every service in reverse dependency order, each fully, then ends the actors and
    /// waits for their helper tasks (the log pumps read the last output). Control messages
    /// after this answer that the supervisor is stopping.
    pub async fn shutdown(&self) {
        self.closing.store(true, Ordering::SeqCst);
        // A reload in progress finishes first; none starts after this.
        let _one = self.reloading.lock().await;
        for service in self.all().iter().rev() {
            let (reply, done) = oneshot::channel();
            if service.tx.send(Control::Shutdown(reply)).await.is_ok() {
                let _ = done.await;
            }
        }
        let actors = std::mem::take(
            &mut *self
                .actors
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        for actor in actors {
            let _ = actor.await;
        }
        self.tasks.close();
        let _ = tokio::time::timeout(PUMP_DRAIN, self.tasks.wait()).await;
        // Whatever a service left (a setup step's or a crashed service's escapees) and the
        // cgroups themselves: nothing outlives the daemon's services.
        let containment = self.containment.clone();
        let _ = tokio::task::spawn_blocking(move || containment.kill_everything()).await;
    }

    /// `Ok` unless the supervisor is shutting down ([`Error::ShuttingDown`]: nothing starts).
    fn open(&self) -> Result<()> {
        if self.closing.load(Ordering::SeqCst) {
            return Err(Error::ShuttingDown);
        }
        Ok(())
    }

    /// `id`'s dependencies, transitively, dependencies first.
    fn dependencies(&self, id: &str) -> Vec<String> {
        fn visit(sup: &Supervisor, id: &str, out: &mut Vec<String>) {
            let Ok(service) = sup.get(id) else { return };
            let depends_on = service.def.borrow().contract.depends_on.clone();
            for dep in &depends_on {
                if !out.contains(dep) {
                    visit(sup, dep, out);
                    out.push(dep.clone());
                }
            }
        }
        let mut out = Vec::new();
        visit(self, id, &mut out);
        out
    }
}
