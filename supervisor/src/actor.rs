//! One actor per service: a task that owns the child process and its lifecycle, driven by
//! [`Control`] messages, and `select!`s over the child's exit, a pending spawn, the restart
//! timer, health probes and the stop in progress. Every state change goes through the pure
//! [`step`]; this file only carries out its effects (the spawn itself is [`crate::spawn`]'s).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use kojibox_manifests::event::{Event, HealthEvent, HealthStatus};
use kojibox_manifests::model::{LogLevel, ServiceState, ServiceStatus};
use kojibox_proc::Spawned;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use kojibox_config::definition::Definition;

use crate::context::Context;
use crate::control::Control;
use crate::error::{Error, Result};
use crate::exit::{describe, jitter};
use crate::lifecycle::{Effect, Input, Lifecycle, step};
use crate::logs::LogSink;
use crate::spawn::{Prepared, off_the_workers, port_conflict, prepare};

/// Consecutive failed probes of a running service before it is unhealthy.
pub(crate) const UNHEALTHY_AFTER: u32 = 3;
/// How long a starting service may take to pass its health check.
pub(crate) const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a service must stay up for earlier failures to be forgotten.
pub(crate) const STABLE_AFTER: Duration = Duration::from_secs(30);

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

struct Running {
    child: tokio::process::Child,
    pid: u32,
    spawned_at: Instant,
}

/// One service's actor.
pub(crate) struct Actor {
    def: Arc<Definition>,
    /// Tells the supervisor which definition is in use.
    def_tx: watch::Sender<Arc<Definition>>,
    ctx: Arc<Context>,
    logs: Arc<LogSink>,
    lc: Lifecycle,
    state: watch::Sender<ServiceState>,
    running: Option<Running>,
    pending: Option<BoxFuture<Prepared>>,
    cancel: CancellationToken,
    restart_at: Option<Instant>,
    next_probe: Option<Instant>,
    probe: Option<BoxFuture<std::result::Result<(), crate::health::Failure>>>,
    failed_probes: u32,
    verdict: HealthStatus,
    stable_at: Option<Instant>,
    terminating: Option<BoxFuture<()>>,
    shutdown: Option<oneshot::Sender<()>>,
    restart_reply: Option<oneshot::Sender<Result<ServiceState>>>,
    /// The main process exited during a stop; applied once its whole group is gone.
    exit_pending: Option<String>,
    /// The group being terminated, for the watchdog to forget once it is gone.
    terminated_group: Option<u32>,
}

impl Actor {
    /// A stopped service's actor, the receiver of its state and of its definition in use.
    pub(crate) fn new(
        def: Arc<Definition>,
        ctx: Arc<Context>,
        logs: Arc<LogSink>,
    ) -> (
        Actor,
        watch::Receiver<ServiceState>,
        watch::Receiver<Arc<Definition>>,
    ) {
        let lc = Lifecycle::default();
        let (state, rx) = watch::channel(view(def.id(), &lc));
        let (def_tx, def_rx) = watch::channel(Arc::clone(&def));
        let actor = Actor {
            def,
            def_tx,
            ctx,
            logs,
            lc,
            state,
            running: None,
            pending: None,
            cancel: CancellationToken::new(),
            restart_at: None,
            next_probe: None,
            probe: None,
            failed_probes: 0,
            verdict: HealthStatus::Unknown,
            stable_at: None,
            terminating: None,
            shutdown: None,
            restart_reply: None,
            exit_pending: None,
            terminated_group: None,
        };
        (actor, rx, def_rx)
    }

    /// Runs until shut down (or until every sender is gone, which stops the service first).
    pub(crate) async fn run(mut self, mut rx: mpsc::Receiver<Control>) {
        let mut open = true;
        loop {
            if (self.shutdown.is_some() || !open) && self.idle() {
                if let Some(reply) = self.shutdown.take() {
                    let _ = reply.send(());
                }
                return;
            }
            tokio::select! {
                message = rx.recv(), if open => match message {
                    Some(control) => self.control(control),
                    None => {
                        open = false;
                        self.apply(Input::Stop);
                    }
                },
                status = wait_exit(&mut self.running) => self.exited(status),
                prepared = poll(&mut self.pending) => {
                    self.pending = None;
                    self.prepared(prepared);
                }
                () = sleep(self.restart_at) => {
                    self.restart_at = None;
                    self.apply(Input::BackoffElapsed);
                }
                () = sleep(self.next_probe), if self.probe.is_none() => {
                    self.next_probe = None;
                    let check = self.def.contract.health_check.clone();
                    let alive = self.running.is_some();
                    self.probe = Some(Box::pin(async move { crate::health::probe(&check, alive).await }));
                }
                verdict = poll(&mut self.probe) => {
                    self.probe = None;
                    self.probed(verdict);
                }
                () = sleep(self.stable_at) => {
                    self.stable_at = None;
                    self.apply(Input::Stable);
                }
                () = poll(&mut self.terminating) => {
                    self.terminating = None;
                    if let Some(pgid) = self.terminated_group.take() {
                        self.forget_group(pgid);
                    }
                    // Only now is the whole group gone: `stopped` must mean nothing is left.
                    if let Some(how) = self.exit_pending.take() {
                        self.apply(Input::Exited(how));
                    }
                }
            }
        }
    }

    fn idle(&self) -> bool {
        matches!(
            self.lc.status,
            ServiceStatus::Stopped | ServiceStatus::Error
        ) && self.running.is_none()
            && self.pending.is_none()
            && self.terminating.is_none()
    }

    fn control(&mut self, control: Control) {
        match control {
            // Asked to end: whatever comes after it starts nothing (it would prolong the stop).
            Control::Start(reply) | Control::Restart(reply) if self.shutdown.is_some() => {
                let _ = reply.send(Err(Error::ShuttingDown));
            }
            Control::Start(reply) => {
                let result = self.start(Input::Start);
                let _ = reply.send(result);
            }
            Control::Restart(reply) => {
                let result = self.start(Input::Restart);
                if self.lc.status == ServiceStatus::Stopping {
                    // Answer once the old process is gone and the new one is starting, as the
                    // contract's example shows (`starting`).
                    self.restart_reply = Some(reply);
                } else {
                    let _ = reply.send(result);
                }
            }
            Control::Stop(reply) => {
                self.apply(Input::Stop);
                let _ = reply.send(self.view());
            }
            Control::Shutdown(reply) => {
                self.apply(Input::Stop);
                self.shutdown = Some(reply);
            }
            Control::Fail(why, reply) => {
                if matches!(
                    self.lc.status,
                    ServiceStatus::Stopped | ServiceStatus::Error
                ) {
                    self.logs
                        .note(LogLevel::Error, format!("cannot start: {why}"));
                    self.lc = Lifecycle {
                        status: ServiceStatus::Error,
                        last_error: Some(why),
                        ..Lifecycle::default()
                    };
                    self.publish();
                }
                let _ = reply.send(self.view());
            }
        }
    }

    /// A start or restart: the definition is reloaded (configuration changes take effect
    /// now), and from stopped or error, the checks that can answer at once (the service user
    /// can reach the home, the ports are free, the secrets exist) run before the answer.
    fn start(&mut self, input: Input) -> Result<ServiceState> {
        let idle = matches!(
            self.lc.status,
            ServiceStatus::Stopped | ServiceStatus::Error
        );
        if idle || matches!(input, Input::Restart) {
            let (home, id) = (&self.ctx.home, self.def.id());
            let reloaded = off_the_workers(|| kojibox_config::catalog::load_one(home, id))
                .map_err(Error::from);
            match reloaded {
                Ok(def) => {
                    if def != *self.def {
                        self.def = Arc::new(def);
                        self.def_tx.send_replace(Arc::clone(&self.def));
                    }
                }
                Err(error) if idle => return Err(self.refuse(error)),
                Err(error) => {
                    // Restarting a running service on a broken configuration: keep it running.
                    return Err(error);
                }
            }
        }
        if idle {
            let id = self.def.id().to_owned();
            let refused = off_the_workers(|| self.ctx.user_for(&id).err())
                .map(|detail| Error::PermissionDenied { detail })
                .or_else(|| port_conflict(&self.def).map(|detail| Error::PortConflict { detail }))
                .or_else(|| {
                    if self.def.uses_secrets() {
                        let vault = &self.ctx.vault;
                        off_the_workers(|| {
                            crate::spawn::generate_secrets(&self.def, vault)?;
                            self.def
                                .resolve(&mut |name| vault.resolve(name).map_err(Error::from))
                        })
                        .err()
                    } else {
                        None
                    }
                });
            if let Some(error) = refused {
                return Err(self.refuse(error));
            }
        }
        self.apply(input);
        Ok(self.view())
    }

    /// A start refused before anything ran: `error`, with `lastError` set.
    fn refuse(&mut self, error: Error) -> Error {
        self.lc = Lifecycle {
            status: ServiceStatus::Error,
            last_error: Some(error.to_string()),
            ..Lifecycle::default()
        };
        self.logs
            .note(LogLevel::Error, format!("cannot start: {error}"));
        self.publish();
        error
    }

    /// Runs one lifecycle step and its effects.
    fn apply(&mut self, input: Input) {
        let (next, effects) = step(&self.lc, input, &self.def.contract.restart_policy);
        let changed = (
            next.status,
            next.pid,
            &next.last_error,
            next.restarts,
            next.flapping,
        ) != (
            self.lc.status,
            self.lc.pid,
            &self.lc.last_error,
            self.lc.restarts,
            self.lc.flapping,
        );
        if next.flapping && !self.lc.flapping {
            self.logs.note(
                LogLevel::Warn,
                format!(
                    "flapping: failed {} times in a row; restarting less and less often",
                    next.restarts
                ),
            );
        }
        self.lc = next;
        if changed {
            self.publish();
        }
        for effect in effects {
            match effect {
                Effect::Spawn => self.begin_spawn(),
                Effect::Terminate => self.terminate(),
                Effect::RestartAfter(delay) => {
                    let delay = jitter(delay);
                    self.logs.note(
                        LogLevel::Warn,
                        format!(
                            "restarting in {} ms (restart {} of {})",
                            delay.as_millis(),
                            self.lc.restarts,
                            self.def.contract.restart_policy.max_retries
                        ),
                    );
                    self.restart_at = Some(Instant::now() + delay);
                }
                Effect::Cancel => {
                    self.restart_at = None;
                    // A pending spawn notices the token and stops; it is still polled so that a
                    // process it spawned in the last moment is ended, not leaked.
                    self.cancel.cancel();
                }
            }
        }
        if self.lc.status != ServiceStatus::Running {
            self.stable_at = None;
        }
    }

    fn begin_spawn(&mut self) {
        self.cancel = CancellationToken::new();
        self.logs.note(LogLevel::Info, "starting");
        let future = prepare(
            Arc::clone(&self.def),
            Arc::clone(&self.ctx),
            Arc::clone(&self.logs),
            self.cancel.clone(),
        );
        self.pending = Some(Box::pin(future));
    }

    fn terminate(&mut self) {
        if let Some(running) = &self.running {
            let (pgid, grace) = (running.pid, self.def.stop_timeout);
            self.terminated_group = Some(pgid);
            let logs = Arc::clone(&self.logs);
            // The group and the service's cgroup (or marked processes): a double fork plus
            // `setsid` leaves the group, not the scope.
            let scope = self.ctx.spawner.scope(self.def.id());
            self.terminating = Some(Box::pin(async move {
                let outcome = kojibox_proc::terminate_scope(pgid, scope.as_ref(), grace).await;
                if outcome.needed_kill {
                    logs.note(
                        LogLevel::Warn,
                        format!(
                            "did not stop within {} ms of SIGTERM; killed",
                            grace.as_millis()
                        ),
                    );
                }
            }));
        }
    }

    fn prepared(&mut self, prepared: Prepared) {
        match prepared {
            Prepared::Spawned(spawned) => {
                let Spawned {
                    mut child,
                    pid,
                    start_time,
                } = spawned;
                let record = kojibox_proc::Record {
                    id: self.def.id().to_owned(),
                    pid,
                    pgid: pid,
                    start_time,
                };
                if let Err(e) = kojibox_proc::record(&self.ctx.records, &record) {
                    self.logs.note(
                        LogLevel::Warn,
                        format!("could not record pid {pid} for cleanup: {e}"),
                    );
                }
                if let Some(out) = child.stdout.take() {
                    #[cfg(unix)]
                    let out = out.into_owned_fd();
                    self.pump(out, "stdout", pid);
                }
                if let Some(err) = child.stderr.take() {
                    #[cfg(unix)]
                    let err = err.into_owned_fd();
                    self.pump(err, "stderr", pid);
                }
                if let Some(watchdog) = &self.ctx.watchdog {
                    watchdog.watch(pid);
                }
                self.logs.note(LogLevel::Info, format!("spawned pid {pid}"));
                self.running = Some(Running {
                    child,
                    pid,
                    spawned_at: Instant::now(),
                });
                self.failed_probes = 0;
                let first =
                    Duration::from_millis(self.def.contract.health_check.interval_ms.min(100));
                self.next_probe = Some(Instant::now() + first);
                self.apply(Input::Spawned(pid));
            }
            Prepared::SpawnFailed(why) => {
                self.logs
                    .note(LogLevel::Error, format!("cannot start: {why}"));
                self.apply(Input::SpawnFailed(why));
            }
            Prepared::DependencyFailed(why) => {
                self.logs
                    .note(LogLevel::Error, format!("cannot start: {why}"));
                self.apply(Input::DependencyFailed(why));
            }
            Prepared::Cancelled(spawned) => {
                if let Some(spawned) = spawned {
                    let grace = self.def.stop_timeout;
                    let scope = self.ctx.spawner.scope(self.def.id());
                    self.ctx.tasks.spawn(async move {
                        let mut child = spawned.child;
                        kojibox_proc::terminate_scope(spawned.pid, scope.as_ref(), grace).await;
                        let _ = child.wait().await;
                    });
                }
            }
        }
    }

    /// Reads one of the child's pipes into its log until it closes (on Unix from a plain
    /// thread, the pipe widened: see `logs`).
    #[cfg(unix)]
    fn pump(&self, pipe: std::io::Result<std::os::fd::OwnedFd>, stream: &'static str, pid: u32) {
        match pipe {
            Ok(fd) => {
                crate::logs::widen_pipe(&fd);
                let sink = Arc::clone(&self.logs);
                self.ctx
                    .tasks
                    .spawn(crate::logs::pump_fd(fd, stream, pid, sink));
            }
            Err(e) => self.logs.note(
                LogLevel::Warn,
                format!("the service's {stream} cannot be read, so it is not logged: {e}"),
            ),
        }
    }

    /// Reads one of the child's pipes into its log until it closes.
    #[cfg(not(unix))]
    fn pump(
        &self,
        pipe: impl tokio::io::AsyncRead + Unpin + Send + 'static,
        stream: &'static str,
        pid: u32,
    ) {
        let sink = Arc::clone(&self.logs);
        self.ctx
            .tasks
            .spawn(crate::logs::pump(pipe, stream, pid, sink));
    }

    fn exited(&mut self, status: std::io::Result<std::process::ExitStatus>) {
        let Some(running) = self.running.take() else {
            return;
        };
        let _ = kojibox_proc::forget(&self.ctx.records, self.def.id());
        let how = match status {
            Ok(status) => describe(status),
            Err(e) => format!("could not be waited for: {e}"),
        };
        let expected = self.lc.status == ServiceStatus::Stopping || self.terminating.is_some();
        if !expected {
            // Whatever the main process left in its group (workers holding the port) goes too.
            let _ = kojibox_proc::signal_group(running.pid, kojibox_proc::Signal::Kill);
            // And what escaped the group (double fork plus `setsid`): nothing outlives it.
            if let Some(scope) = self.ctx.spawner.scope(self.def.id()) {
                scope.kill();
                self.ctx.tasks.spawn(async move {
                    kojibox_proc::terminate_scope(0, Some(&scope), Duration::ZERO).await;
                });
            }
        }
        let level = if expected {
            LogLevel::Info
        } else {
            LogLevel::Error
        };
        self.logs.note(level, format!("pid {} {how}", running.pid));
        self.next_probe = None;
        self.probe = None;
        self.stable_at = None;
        self.set_verdict(HealthStatus::Unknown);
        if expected && self.terminating.is_some() {
            self.exit_pending = Some(how);
            return;
        }
        self.forget_group(running.pid);
        let why = if expected {
            how
        } else {
            // This run's output only: an earlier run's last words would explain the wrong exit.
            format!(
                "{how}; last output: {}",
                self.logs.last_lines(running.pid, 3)
            )
        };
        self.apply(Input::Exited(why));
    }

    fn probed(&mut self, verdict: std::result::Result<(), crate::health::Failure>) {
        let Some(running) = &self.running else { return };
        let since = running.spawned_at.elapsed();
        let interval = Duration::from_millis(self.def.contract.health_check.interval_ms.max(10));
        match verdict {
            Ok(()) => {
                self.failed_probes = 0;
                self.set_verdict(HealthStatus::Healthy);
                if self.lc.status == ServiceStatus::Starting {
                    self.apply(Input::Healthy);
                    if self.lc.status == ServiceStatus::Running {
                        self.logs.note(
                            LogLevel::Info,
                            format!("healthy after {} ms", since.as_millis()),
                        );
                        self.stable_at = Some(Instant::now() + STABLE_AFTER);
                    }
                }
            }
            Err(crate::health::Failure::Local(why)) => {
                // Nothing learnt about the service: neither healthy nor a failure.
                if self.verdict != HealthStatus::Unknown {
                    self.logs
                        .note(LogLevel::Warn, format!("health unknown: {why}"));
                }
                self.set_verdict(HealthStatus::Unknown);
            }
            Err(crate::health::Failure::Service(why)) => match self.lc.status {
                ServiceStatus::Running => {
                    self.failed_probes += 1;
                    if self.failed_probes >= UNHEALTHY_AFTER {
                        self.set_verdict(HealthStatus::Unhealthy);
                        self.logs.note(LogLevel::Error, format!("unhealthy: {why}"));
                        self.failed_probes = 0;
                        self.apply(Input::Unhealthy(format!(
                            "health check failed {UNHEALTHY_AFTER} times: {why}"
                        )));
                    }
                }
                ServiceStatus::Starting if since > START_TIMEOUT => {
                    self.set_verdict(HealthStatus::Unhealthy);
                    self.apply(Input::Unhealthy(format!(
                        "not healthy {} s after start: {why}",
                        START_TIMEOUT.as_secs()
                    )));
                }
                _ => {}
            },
        }
        if self.running.is_some()
            && matches!(
                self.lc.status,
                ServiceStatus::Starting | ServiceStatus::Running
            )
        {
            self.next_probe = Some(Instant::now() + interval);
        }
    }

    fn forget_group(&self, pgid: u32) {
        if let Some(watchdog) = &self.ctx.watchdog {
            watchdog.forget(pgid);
        }
    }

    fn set_verdict(&mut self, verdict: HealthStatus) {
        if verdict != self.verdict {
            self.verdict = verdict;
            let _ = self.ctx.events.send(Event::ServiceHealth(HealthEvent {
                id: self.def.id().to_owned(),
                status: verdict,
            }));
        }
    }

    fn view(&self) -> ServiceState {
        self.state.borrow().clone()
    }

    fn publish(&mut self) {
        let state = view(self.def.id(), &self.lc);
        self.state.send_replace(state.clone());
        if self.lc.status != ServiceStatus::Stopping
            && let Some(reply) = self.restart_reply.take()
        {
            let _ = reply.send(Ok(state.clone()));
        }
        let _ = self.ctx.events.send(Event::ServiceStateChanged(state));
    }
}

fn view(id: &str, lc: &Lifecycle) -> ServiceState {
    ServiceState {
        id: id.to_owned(),
        state: lc.status,
        pid: lc.pid,
        last_error: lc.last_error.clone(),
        last_updated: kojibox_home::clock::now(),
        restarts: lc.restarts,
        flapping: lc.flapping,
    }
}

async fn wait_exit(running: &mut Option<Running>) -> std::io::Result<std::process::ExitStatus> {
    match running {
        Some(r) => r.child.wait().await,
        None => std::future::pending().await,
    }
}

async fn poll<T>(future: &mut Option<BoxFuture<T>>) -> T {
    match future {
        Some(f) => f.as_mut().await,
        None => std::future::pending().await,
    }
}

async fn sleep(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
