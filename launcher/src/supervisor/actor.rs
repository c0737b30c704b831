//! One actor per service: a task that owns the child process and its lifecycle, driven by
//! [`Control`] messages, and `select!`s over the child's exit, a pending spawn, the restart
//! timer, health probes and the stop in progress. Every state change goes through the pure
//! [`step`]; this file only carries out its effects.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use kojibox_manifests::event::{Event, HealthEvent, HealthStatus};
use kojibox_manifests::model::{LogLevel, ServiceState, ServiceStatus};
use kojibox_proc::{PortCheck, SpawnSpec, Spawned};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::Context;
use super::definitions::{Definition, Resolved};
use super::lifecycle::{Effect, Input, Lifecycle, step};
use super::logs::LogSink;
use crate::error::{Error, Result};

/// Consecutive failed probes of a running service before it is unhealthy.
pub const UNHEALTHY_AFTER: u32 = 3;
/// How long a starting service may take to pass its health check.
pub const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a service must stay up for earlier failures to be forgotten.
pub const STABLE_AFTER: Duration = Duration::from_secs(30);

/// What an actor can be asked.
pub enum Control {
    /// `services.start`.
    Start(oneshot::Sender<Result<ServiceState>>),
    /// `services.stop`.
    Stop(oneshot::Sender<ServiceState>),
    /// `services.restart`.
    Restart(oneshot::Sender<Result<ServiceState>>),
    /// Stop, wait until stopped, then end the actor.
    Shutdown(oneshot::Sender<()>),
    /// Could not start for a reason found outside the actor (a dependency refused to start):
    /// from stopped or error, go to `error` with this `lastError`.
    Fail(String, oneshot::Sender<ServiceState>),
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// What preparing a spawn came to.
enum Prepared {
    Spawned(Spawned),
    SpawnFailed(String),
    DependencyFailed(String),
    /// Stopped meanwhile; a process spawned in the last moment is ended.
    Cancelled(Option<Spawned>),
}

struct Running {
    child: tokio::process::Child,
    pid: u32,
    spawned_at: Instant,
}

/// One service's actor.
pub struct Actor {
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
    probe: Option<BoxFuture<std::result::Result<(), String>>>,
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
    pub fn new(
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
    pub async fn run(mut self, mut rx: mpsc::Receiver<Control>) {
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
                    self.probe = Some(Box::pin(async move { super::health::probe(&check, alive).await }));
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
            let reloaded = off_the_workers(|| super::definitions::load_one(home, id));
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
            let refused = self
                .ctx
                .user_problem
                .clone()
                .map(|detail| Error::PermissionDenied { detail })
                .or_else(|| port_conflict(&self.def).map(|detail| Error::PortConflict { detail }))
                .or_else(|| {
                    if self.def.uses_secrets() {
                        let vault = &self.ctx.vault;
                        off_the_workers(|| self.def.resolve(&mut |name| vault.resolve(name))).err()
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
        let changed = (next.status, next.pid, &next.last_error)
            != (self.lc.status, self.lc.pid, &self.lc.last_error);
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
            self.terminating = Some(Box::pin(async move {
                let outcome = kojibox_proc::terminate_group(pgid, grace).await;
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
                    tokio::spawn(super::logs::pump(
                        out,
                        "stdout",
                        pid,
                        Arc::clone(&self.logs),
                    ));
                }
                if let Some(err) = child.stderr.take() {
                    tokio::spawn(super::logs::pump(
                        err,
                        "stderr",
                        pid,
                        Arc::clone(&self.logs),
                    ));
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
                    tokio::spawn(async move {
                        let mut child = spawned.child;
                        kojibox_proc::terminate_group(spawned.pid, grace).await;
                        let _ = child.wait().await;
                    });
                }
            }
        }
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
            format!("{how}; last output: {}", self.logs.last_lines(3))
        };
        self.apply(Input::Exited(why));
    }

    fn probed(&mut self, verdict: std::result::Result<(), String>) {
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
            Err(why) => match self.lc.status {
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
        last_updated: crate::clock::now(),
    }
}

/// Runs short blocking work (settings files, the registry lock, the secret store) from the
/// actor: on a multi-threaded runtime the worker is handed over meanwhile, so other tasks go on.
fn off_the_workers<T>(work: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(work),
        _ => work(),
    }
}

/// Waits for dependencies, checks ports, runs one-time setup, then spawns.
async fn prepare(
    def: Arc<Definition>,
    ctx: Arc<Context>,
    logs: Arc<LogSink>,
    cancel: CancellationToken,
) -> Prepared {
    for dep in &def.contract.depends_on {
        let Some(mut rx) = ctx.states.get().and_then(|states| states.get(dep)).cloned() else {
            return Prepared::DependencyFailed(format!("dependency {dep} is not installed"));
        };
        loop {
            let state = rx.borrow_and_update().clone();
            match state.state {
                ServiceStatus::Running => break,
                ServiceStatus::Error => {
                    return Prepared::DependencyFailed(format!(
                        "dependency {dep} failed: {}",
                        state.last_error.unwrap_or_default()
                    ));
                }
                ServiceStatus::Stopped | ServiceStatus::Stopping => {
                    return Prepared::DependencyFailed(format!("dependency {dep} is not running"));
                }
                ServiceStatus::Starting => {}
            }
            tokio::select! {
                () = cancel.cancelled() => return Prepared::Cancelled(None),
                changed = rx.changed() => if changed.is_err() {
                    return Prepared::DependencyFailed(format!("dependency {dep} is gone"));
                },
            }
        }
    }
    if cancel.is_cancelled() {
        return Prepared::Cancelled(None);
    }
    if let Some(conflict) = port_conflict(&def) {
        return Prepared::SpawnFailed(conflict);
    }
    let resolved = {
        let vault = &ctx.vault;
        match off_the_workers(|| def.resolve(&mut |name| vault.resolve(name))) {
            Ok(resolved) => resolved,
            Err(e) => return Prepared::SpawnFailed(e.to_string()),
        }
    };
    logs.redact(resolved.secrets.clone());
    if let Err(why) = prepare_data(&def, &resolved, &ctx, &logs, &cancel).await {
        return if cancel.is_cancelled() {
            Prepared::Cancelled(None)
        } else {
            Prepared::SpawnFailed(why)
        };
    }
    let spec = spawn_spec(
        &resolved,
        &def,
        &ctx,
        def.program.clone(),
        resolved.args.clone(),
    );
    match ctx.spawner.spawn(spec).await {
        Ok(spawned) if cancel.is_cancelled() => Prepared::Cancelled(Some(spawned)),
        Ok(spawned) => Prepared::Spawned(spawned),
        Err(e) => Prepared::SpawnFailed(e.to_string()),
    }
}

/// What to spawn for `def`: `program` with `args`, in its environment, folder and user.
fn spawn_spec(
    resolved: &Resolved,
    def: &Definition,
    ctx: &Context,
    program: std::path::PathBuf,
    args: Vec<String>,
) -> SpawnSpec {
    SpawnSpec {
        program,
        args,
        env: resolved
            .env
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        cwd: def.contract.cwd.clone().into(),
        user: ctx.user.clone(),
    }
}

/// Creates the data folder (owned by the service user) and runs the setup steps when it is
/// empty: their output goes to the service log.
async fn prepare_data(
    def: &Definition,
    resolved: &Resolved,
    ctx: &Context,
    logs: &Arc<LogSink>,
    cancel: &CancellationToken,
) -> std::result::Result<(), String> {
    let dir = &def.data_dir;
    let fresh = std::fs::read_dir(dir).map_or(true, |mut entries| entries.next().is_none());
    if fresh {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("could not create {}: {e}", dir.display()))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
        }
        if let Some(user) = &ctx.user {
            kojibox_proc::chown_tree(dir, user).map_err(|e| {
                format!(
                    "could not give {} to user {}: {e}",
                    dir.display(),
                    user.name
                )
            })?;
        }
    }
    if !fresh || resolved.setup.is_empty() {
        return Ok(());
    }
    for (n, argv) in resolved.setup.iter().enumerate() {
        // Named as written (placeholders, not secret values).
        let written = def.setup.get(n).unwrap_or(argv);
        let step = format!("setup step {} ({})", n + 1, written.join(" "));
        logs.note(LogLevel::Info, format!("running {step}"));
        let program = std::path::Path::new(&argv[0]);
        let program = if program.is_absolute() {
            program.to_owned()
        } else {
            ctx.home.join(program)
        };
        let spec = spawn_spec(resolved, def, ctx, program, argv[1..].to_vec());
        let spawned = ctx
            .spawner
            .spawn(spec)
            .await
            .map_err(|e| format!("{step}: {e}"))?;
        let Spawned { mut child, pid, .. } = spawned;
        let out = child
            .stdout
            .take()
            .map(|o| tokio::spawn(super::logs::pump(o, "stdout", pid, Arc::clone(logs))));
        let err = child
            .stderr
            .take()
            .map(|e| tokio::spawn(super::logs::pump(e, "stderr", pid, Arc::clone(logs))));
        let status = tokio::select! {
            status = child.wait() => status,
            () = cancel.cancelled() => {
                kojibox_proc::terminate_group(pid, def.stop_timeout).await;
                let _ = child.wait().await;
                return Err(format!("{step}: cancelled"));
            }
        };
        for pump in [out, err].into_iter().flatten() {
            let _ = pump.await;
        }
        match status {
            Ok(s) if s.success() => {}
            Ok(s) => {
                // Leave an empty data folder behind so the next start runs setup again.
                let _ = clear_dir(&def.data_dir);
                return Err(format!("{step} {}: {}", describe(s), logs.last_lines(3)));
            }
            Err(e) => return Err(format!("{step}: {e}")),
        }
    }
    Ok(())
}

fn clear_dir(dir: &std::path::Path) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() && !path.is_symlink() {
            std::fs::remove_dir_all(&path)?;
        } else {
            std::fs::remove_file(&path)?;
        }
    }
    Ok(())
}

/// `Some(detail)` when one of the service's ports is taken, naming it and its owner.
fn port_conflict(def: &Definition) -> Option<String> {
    def.contract
        .ports
        .iter()
        .find_map(|p| match kojibox_proc::check_tcp_port(p.port) {
            PortCheck::Free => None,
            PortCheck::Busy { owner: Some(pid) } => Some(format!(
                "{} {} port {} is occupied by process {pid}",
                def.id(),
                p.name,
                p.port
            )),
            PortCheck::Busy { owner: None } => Some(format!(
                "{} {} port {} is occupied by another process",
                def.id(),
                p.name,
                p.port
            )),
        })
}

/// `exited with status 1`, `killed by signal 9 (SIGKILL)`.
fn describe(status: std::process::ExitStatus) -> String {
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(signal) = status.signal() {
            let name = match signal {
                9 => " (SIGKILL)",
                15 => " (SIGTERM)",
                6 => " (SIGABRT)",
                11 => " (SIGSEGV)",
                2 => " (SIGINT)",
                _ => "",
            };
            return format!("killed by signal {signal}{name}");
        }
    }
    match status.code() {
        Some(code) => format!("exited with status {code}"),
        None => "exited".to_owned(),
    }
}

/// ±10% of `delay`, so services that failed together do not restart in lockstep.
fn jitter(delay: Duration) -> Duration {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let spread = delay / 10;
    let offset = spread.mul_f64(f64::from(nanos % 2000) / 1000.0);
    (delay - spread) + offset
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
