//! The supervisor: one actor per installed service, and the operations of the contract's
//! Service Manager (`services.list/start/stop/restart/logs/health`).
//!
//! # Theory of operation
//!
//! At start the supervisor reads the services of the installed runtime ([`definitions`]),
//! refuses dependency cycles, ends whatever a previous daemon left running (recorded pid plus
//! process start time, so a reused pid is never touched), and spawns one [`actor::Actor`] per
//! service. An actor owns its process: it spawns it (in its own process group, from the one
//! spawner thread, dying with the daemon), pumps its output into the log, probes its health,
//! restarts it with backoff, and stops it (SIGTERM to the group, SIGKILL after the stop
//! timeout). The lifecycle itself is the pure [`lifecycle::step`].
//!
//! `start` starts a service's dependencies first (each must become `running` before the
//! dependent spawns) and answers at once with `starting`; `shutdown` stops every service in
//! reverse dependency order. Events (`service:stateChanged`, `service:logLine`,
//! `service:health`) go out on the bus given at start; no subscriber can slow a service down.
//!
//! When the daemon runs as root, services run as settings `serviceUser` (default `nobody`), who
//! must be able to reach the home; their data folders are given to that user.

pub mod actor;
pub mod definitions;
pub mod health;
pub mod lifecycle;
pub mod logs;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use kojibox_manifests::event::Event;
use kojibox_manifests::model::{
    HealthCheck, LogEntry, ServiceDefinition, ServiceState, ServiceStatus,
};
use tokio::sync::{broadcast, mpsc, oneshot, watch};

use crate::error::{Error, Result};
use crate::home::Home;
use actor::{Actor, Control};
use definitions::Definition;
use logs::LogSink;

/// The tail `services.logs` returns when none is asked for.
pub const DEFAULT_TAIL: u32 = 100;

/// What every actor shares.
pub struct Context {
    /// The home.
    pub home: Home,
    /// Spawns every child from one long-lived thread.
    pub spawner: kojibox_proc::Spawner,
    /// The event bus.
    pub events: broadcast::Sender<Event>,
    /// Where running services are recorded for leftover cleanup.
    pub records: PathBuf,
    /// The user services run as (when the daemon is root).
    pub user: Option<kojibox_proc::User>,
    /// Why services cannot run as that user, when they cannot.
    pub user_problem: Option<String>,
    /// Every service's state, for dependencies to watch.
    pub states: OnceLock<BTreeMap<String, watch::Receiver<ServiceState>>>,
    /// Ends the service groups if the daemon dies.
    pub watchdog: Option<Arc<crate::watchdog::Watchdog>>,
    /// Secret values for `${secret.*}`, looked up at spawn time.
    pub vault: Arc<crate::vault::Vault>,
}

struct Service {
    id: String,
    /// The definition in use (reloaded from the configuration at each start).
    def: watch::Receiver<Arc<Definition>>,
    tx: mpsc::Sender<Control>,
    state: watch::Receiver<ServiceState>,
    logs: Arc<LogSink>,
}

/// The running supervisor.
pub struct Supervisor {
    home: Home,
    services: Vec<Service>,
    tasks: std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

impl Supervisor {
    /// Loads the installed services, cleans up after a previous daemon and starts one actor per
    /// service (all stopped). Returns notes for the user (what was cleaned up). Must run inside
    /// a tokio runtime.
    pub async fn start(
        home: &Home,
        events: broadcast::Sender<Event>,
    ) -> Result<(Supervisor, Vec<String>)> {
        Self::start_with(home, events, None, None).await
    }

    /// [`Supervisor::start`], telling `watchdog` about every service group, so that they end
    /// even if the daemon is killed (the daemon passes one; in-process tests need not), and
    /// taking secrets from `vault` (default: the home's store, without a passphrase).
    pub async fn start_with(
        home: &Home,
        events: broadcast::Sender<Event>,
        watchdog: Option<Arc<crate::watchdog::Watchdog>>,
        vault: Option<Arc<crate::vault::Vault>>,
    ) -> Result<(Supervisor, Vec<String>)> {
        // Fail early on a broken definition, before touching anything (no port is assigned
        // yet: leftovers may still hold them).
        definitions::check(home)?;
        let records = home.state().join("services");
        let mut notes = Vec::new();
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
        // Ports are assigned once leftovers are gone, so that none looks busy.
        let definitions = definitions::load(home)?;
        let (user, user_problem) = service_user(home)?;
        let spawner = kojibox_proc::Spawner::new()
            .map_err(Error::io("start the process spawner for", home.root()))?;
        let ctx = Arc::new(Context {
            home: home.clone(),
            spawner,
            events: events.clone(),
            records,
            user,
            user_problem,
            states: OnceLock::new(),
            watchdog,
            vault: vault.unwrap_or_else(|| Arc::new(crate::vault::Vault::new(home.clone(), None))),
        });
        let mut services = Vec::new();
        let mut tasks = Vec::new();
        for def in topological(definitions) {
            let def = Arc::new(def);
            let sink = Arc::new(LogSink::new(
                def.id(),
                home.join("app/logs"),
                events.clone(),
            ));
            let (actor, state, def_rx) =
                Actor::new(Arc::clone(&def), Arc::clone(&ctx), Arc::clone(&sink));
            let (tx, rx) = mpsc::channel(32);
            tasks.push(tokio::spawn(actor.run(rx)));
            services.push(Service {
                id: def.id().to_owned(),
                def: def_rx,
                tx,
                state,
                logs: sink,
            });
        }
        let _ = ctx.states.set(
            services
                .iter()
                .map(|s| (s.id.clone(), s.state.clone()))
                .collect(),
        );
        Ok((
            Supervisor {
                home: home.clone(),
                services,
                tasks: std::sync::Mutex::new(tasks),
            },
            notes,
        ))
    }

    fn get(&self, id: &str) -> Result<&Service> {
        self.services
            .iter()
            .find(|s| s.id == id)
            .ok_or_else(|| Error::NotFound {
                detail: format!(
                    "no service `{id}` is installed (installed: {})",
                    self.services
                        .iter()
                        .map(|s| s.id.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            })
    }

    /// Ids of every service, dependencies first.
    pub fn ids(&self) -> Vec<String> {
        self.services.iter().map(|s| s.id.clone()).collect()
    }

    /// `services.list`.
    pub fn list(&self) -> Vec<ServiceState> {
        self.services
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

    /// Whether `up` starts it (its configuration as it is now).
    pub fn enabled(&self, id: &str) -> Result<bool> {
        let service = self.get(id)?;
        Ok(match crate::config::stored_service(&self.home, id) {
            Ok(Some(config)) => config.enabled,
            _ => service.def.borrow().enabled,
        })
    }

    /// `services.start`: starts its stopped dependencies first, then the service; answers at
    /// once (`starting`), before the health check passes.
    pub async fn start_service(&self, id: &str) -> Result<ServiceState> {
        let service = self.get(id)?;
        for dep in self.dependencies(id) {
            let dep_service = self.get(&dep)?;
            let state = dep_service.state.borrow().state;
            if matches!(state, ServiceStatus::Stopped | ServiceStatus::Error)
                && let Err(e) = ask(&dep_service.tx, Control::Start).await?
            {
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

    /// `services.restart`.
    pub async fn restart_service(&self, id: &str) -> Result<ServiceState> {
        let service = self.get(id)?;
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

    /// Starts every enabled service (dependencies first); one result per service.
    pub async fn up(&self) -> Vec<(String, Result<ServiceState>)> {
        let mut out = Vec::new();
        let ids: Vec<String> = self
            .services
            .iter()
            .filter(|s| self.enabled(&s.id).unwrap_or(false))
            .map(|s| s.id.clone())
            .collect();
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
        tokio::time::timeout(timeout, wait).await.map_err(|_| {
            Error::invalid(
                "Timed out",
                format!(
                    "{id} is still {:?} after {} s",
                    self.state(id).map(|s| s.state),
                    timeout.as_secs()
                ),
            )
        })?
    }

    /// Stops every service in reverse dependency order, each fully, then ends the actors.
    /// Control messages after this answer that the supervisor is stopping.
    pub async fn shutdown(&self) {
        for service in self.services.iter().rev() {
            let (reply, done) = oneshot::channel();
            if service.tx.send(Control::Shutdown(reply)).await.is_ok() {
                let _ = done.await;
            }
        }
        let tasks = std::mem::take(
            &mut *self
                .tasks
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        for task in tasks {
            let _ = task.await;
        }
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

/// Sends a control message and waits for the answer.
async fn ask<T>(
    tx: &mpsc::Sender<Control>,
    make: impl FnOnce(oneshot::Sender<T>) -> Control,
) -> Result<T> {
    let (reply, answer) = oneshot::channel();
    tx.send(make(reply))
        .await
        .map_err(|_| Error::invalid("Service is shutting down", "the supervisor is stopping"))?;
    answer
        .await
        .map_err(|_| Error::invalid("Service is shutting down", "the supervisor is stopping"))
}

/// Orders definitions so that every service comes after its dependencies (cycles were refused
/// when they were loaded); otherwise keeps their order.
fn topological(mut pending: Vec<Definition>) -> Vec<Definition> {
    let mut out: Vec<Definition> = Vec::with_capacity(pending.len());
    while !pending.is_empty() {
        let ready = pending
            .iter()
            .position(|d| {
                d.contract
                    .depends_on
                    .iter()
                    .all(|dep| out.iter().any(|o| o.id() == dep))
            })
            .unwrap_or(0);
        out.push(pending.remove(ready));
    }
    out
}

/// When the daemon is root: the user services run as (settings `serviceUser`, default
/// `nobody`) and, if the home is out of that user's reach, why.
/// The user services run as (`None`: kojibox's own, when it is not root) and, when that user
/// cannot reach the home, why.
pub(crate) fn service_user(home: &Home) -> Result<(Option<kojibox_proc::User>, Option<String>)> {
    if !kojibox_proc::current_is_root() {
        return Ok((None, None));
    }
    let name = crate::settings::Settings::load(home)?
        .service_user
        .unwrap_or_else(|| "nobody".to_owned());
    let user = kojibox_proc::lookup_user(&name).map_err(|e| Error::PermissionDenied {
        detail: e.to_string(),
    })?;
    let problem = kojibox_proc::check_traversable(home.root(), &user).err().map(|e| {
        format!("services run as `{name}` when kojibox runs as root, and {name} cannot use this home: {e}")
    });
    Ok((Some(user), problem))
}
