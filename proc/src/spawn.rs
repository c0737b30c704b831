//! Starting services: one dedicated spawner thread, a clean environment, a process group per
//! child, an optional privilege drop, and a death signal tied to the daemon.
//!
//! `PR_SET_PDEATHSIG` fires when the *thread* that forked the child exits, not the process. Tokio's
//! blocking pool retires idle threads after a few seconds, so a child spawned from there would be
//! killed for no reason. Every child is therefore forked by one OS thread owned by [`Spawner`],
//! which lives as long as the `Spawner` (the daemon keeps one for its whole life).

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::mpsc;

use tokio::sync::oneshot;

use crate::{Containment, Error, Scope, User};

/// What to run.
///
/// The child gets a clean environment: `PATH` (the daemon's, or `/usr/local/bin:/usr/bin:/bin`
/// when it has none), `LANG`, `LC_ALL` and `TZ` when the daemon has them set, and
/// `HOME=<cwd>`; then every pair of `env`, which overrides those. Nothing else is inherited.
#[derive(Clone)]
pub struct SpawnSpec {
    /// The program: an absolute path, a path relative to `cwd`, or a bare name looked up in the
    /// child's `PATH`.
    pub program: PathBuf,
    /// Its arguments (without `argv[0]`).
    pub args: Vec<String>,
    /// Variables added to the base environment described above.
    pub env: Vec<(String, String)>,
    /// Working directory (and `HOME`).
    pub cwd: PathBuf,
    /// Run as this user (requires root). It gets its primary group only: no supplementary groups.
    pub user: Option<User>,
    /// The service this process belongs to: with a [`Spawner::contained`], the child starts in
    /// that service's [`Scope`] (its cgroup, and the marker [`crate::MARKER_VAR`] in its
    /// environment). `None`: a process group only.
    pub scope: Option<String>,
}

/// Values may hold secrets, so only the variable names are shown.
impl fmt::Debug for SpawnSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let env: Vec<&str> = self.env.iter().map(|(k, _)| k.as_str()).collect();
        f.debug_struct("SpawnSpec")
            .field("program", &self.program)
            .field("args", &self.args)
            .field("env (names only)", &env)
            .field("cwd", &self.cwd)
            .field("user", &self.user.as_ref().map(|u| &u.name))
            .field("scope", &self.scope)
            .finish()
    }
}

/// A running child: its own process group (pgid == pid), stdout/stderr piped, stdin null.
#[derive(Debug)]
pub struct Spawned {
    /// The child; await `child.wait()` to reap it.
    pub child: tokio::process::Child,
    /// Its pid, which is also its process group id.
    pub pid: u32,
    /// Its start time (see [`crate::process_start_time`]); 0 where unknown (not Linux).
    pub start_time: u64,
}

/// Spawns children from one dedicated OS thread that lives as long as this value (and its
/// clones): `PR_SET_PDEATHSIG(SIGKILL)` is tied to that thread. Create it inside a tokio runtime.
///
/// **Dropping the last clone ends the thread, and the kernel then SIGKILLs every child it started
/// that still runs.** Keep one for the daemon's whole life.
#[derive(Clone, Debug)]
pub struct Spawner {
    requests: mpsc::Sender<Request>,
    containment: Option<Containment>,
}

struct Request {
    spec: SpawnSpec,
    reply: oneshot::Sender<Result<Spawned, Error>>,
}

impl Spawner {
    /// Starts the spawner thread; it enters the current tokio runtime, so the children's pipes
    /// and exit notifications belong to that runtime (build it with `enable_all`).
    pub fn new() -> std::io::Result<Spawner> {
        Spawner::start(None)
    }

    /// [`Spawner::new`], and every spawn whose [`SpawnSpec::scope`] names a service starts in
    /// that service's scope of `containment`.
    pub fn contained(containment: Containment) -> std::io::Result<Spawner> {
        Spawner::start(Some(containment))
    }

    /// The scope service `id`'s processes are in (`None` for an uncontained spawner).
    pub fn scope(&self, id: &str) -> Option<Scope> {
        self.containment.as_ref().map(|c| c.scope(id))
    }

    fn start(containment: Option<Containment>) -> std::io::Result<Spawner> {
        let held = containment.clone();
        let runtime = tokio::runtime::Handle::try_current().map_err(|e| {
            std::io::Error::other(format!(
                "Spawner::new must be called inside a tokio runtime: {e}"
            ))
        })?;
        let (requests, inbox) = mpsc::channel::<Request>();
        std::thread::Builder::new()
            .name("kojibox-spawner".to_owned())
            .spawn(move || {
                let _entered = runtime.enter();
                while let Ok(Request { spec, reply }) = inbox.recv() {
                    // A panic must not end this thread: its exit would SIGKILL every service.
                    let spawned = std::panic::catch_unwind(|| spawn_here(&spec, held.as_ref()))
                        .unwrap_or_else(|_| {
                            Err(Error::Spawn {
                                program: spec.program.clone(),
                                source: std::io::Error::other(
                                    "internal error (panic) in the spawner",
                                ),
                            })
                        });
                    if let Err(Ok(unwanted)) = reply.send(spawned) {
                        // The caller stopped waiting: nobody would supervise this child. Kill it;
                        // dropping the `Child` leaves the reaping to tokio.
                        #[cfg(unix)]
                        let _ = crate::signal_group(unwanted.pid, crate::Signal::Kill);
                        drop(unwanted);
                    }
                }
            })?;
        Ok(Spawner {
            requests,
            containment,
        })
    }

    /// Starts `spec` and returns once the program has been executed (or has failed to be).
    pub async fn spawn(&self, spec: SpawnSpec) -> Result<Spawned, Error> {
        let (reply, answer) = oneshot::channel();
        self.requests
            .send(Request { spec, reply })
            .map_err(|_| Error::SpawnerGone)?;
        answer.await.map_err(|_| Error::SpawnerGone)?
    }
}

#[cfg_attr(not(unix), allow(dead_code))] // Windows: spawning is not built yet
const DEFAULT_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

/// The child's whole environment (see [`SpawnSpec`]).
#[cfg_attr(not(unix), allow(dead_code))]
fn environment(spec: &SpawnSpec, cwd: &Path) -> Result<BTreeMap<String, String>, Error> {
    let mut env = BTreeMap::new();
    env.insert(
        "PATH".to_owned(),
        std::env::var("PATH").unwrap_or_else(|_| DEFAULT_PATH.to_owned()),
    );
    for key in ["LANG", "LC_ALL", "TZ"] {
        if let Ok(value) = std::env::var(key) {
            env.insert(key.to_owned(), value);
        }
    }
    env.insert("HOME".to_owned(), cwd.to_string_lossy().into_owned());
    for (key, value) in &spec.env {
        if key.is_empty() || key.contains(['=', '\0']) || value.contains('\0') {
            return Err(Error::Spawn {
                program: spec.program.clone(),
                source: std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    format!("invalid environment variable {key:?} (empty, or holds '=' or NUL)"),
                ),
            });
        }
        env.insert(key.clone(), value.clone());
    }
    Ok(env)
}

/// Makes the program an absolute path: relative paths are relative to `cwd`, bare names are
/// searched in the child's `PATH` (std would otherwise resolve both differently per platform).
#[cfg_attr(not(unix), allow(dead_code))]
fn resolve_program(program: &Path, cwd: &Path, path_var: &str) -> Result<PathBuf, Error> {
    if program.components().count() > 1 || program.is_absolute() {
        return Ok(cwd.join(program));
    }
    std::env::split_paths(path_var)
        .map(|dir| cwd.join(dir).join(program))
        .find(|candidate| candidate.is_file())
        .ok_or_else(|| Error::ProgramNotFound {
            program: program.to_owned(),
            path_var: Some(path_var.to_owned()),
        })
}

/// Who runs the child, for messages.
#[cfg_attr(not(unix), allow(dead_code))]
fn runner(user: Option<&User>) -> String {
    match user {
        Some(user) => user.name.clone(),
        #[cfg(unix)]
        None => format!(
            "the daemon's user (uid {})",
            rustix::process::geteuid().as_raw()
        ),
        #[cfg(not(unix))]
        None => "the daemon's user".to_owned(),
    }
}

/// Checks what can be checked before forking, so failures get precise messages.
#[cfg(unix)]
fn preflight(program: &Path, spec: &SpawnSpec, cwd: &Path) -> Result<(), Error> {
    use std::io::ErrorKind;
    use std::os::unix::fs::PermissionsExt;

    let user = spec.user.as_ref();
    let denied = |reason: String| Error::PermissionDenied {
        program: program.to_owned(),
        user: runner(user),
        reason,
    };
    match std::fs::metadata(cwd) {
        Ok(meta) if meta.is_dir() => {}
        Ok(_) => {
            let source = std::io::Error::new(ErrorKind::NotADirectory, "not a directory");
            return Err(Error::Cwd {
                program: program.to_owned(),
                cwd: cwd.to_owned(),
                source,
            });
        }
        Err(source) => {
            return Err(Error::Cwd {
                program: program.to_owned(),
                cwd: cwd.to_owned(),
                source,
            });
        }
    }
    let meta = match std::fs::metadata(program) {
        Ok(meta) => meta,
        Err(e) if e.kind() == ErrorKind::NotFound => {
            return Err(Error::ProgramNotFound {
                program: program.to_owned(),
                path_var: None,
            });
        }
        Err(e) if e.kind() == ErrorKind::PermissionDenied => {
            return Err(denied(format!(
                "a folder on the way cannot be searched ({e})"
            )));
        }
        Err(source) => {
            return Err(Error::Io {
                path: program.to_owned(),
                source,
            });
        }
    };
    if meta.is_dir() {
        let reason = "it is a folder, not a program".to_owned();
        return Err(Error::NotExecutable {
            program: program.to_owned(),
            reason,
        });
    }
    let mode = meta.permissions().mode();
    if mode & 0o111 == 0 {
        let reason = format!(
            "no execute bit is set (mode {:o}); run `chmod +x {}`",
            mode & 0o7777,
            program.display()
        );
        return Err(Error::NotExecutable {
            program: program.to_owned(),
            reason,
        });
    }
    let head = file_head(program);
    #[cfg(target_os = "linux")]
    if let Some(reason) = elf_problem(&head) {
        return Err(Error::NotExecutable {
            program: program.to_owned(),
            reason,
        });
    }
    let Some(user) = user else { return Ok(()) };
    if !crate::current_is_root() {
        return Err(Error::NotRoot {
            program: program.to_owned(),
            user: user.name.clone(),
        });
    }
    crate::check_traversable(cwd, user)?;
    if let Some(folder) = program.parent() {
        crate::check_traversable(folder, user)?;
    }
    if !crate::users::allows(&meta, user, 0o1) {
        return Err(denied(format!(
            "its mode {:o} does not let {} execute it; run `chmod o+x {}` or give it to that user",
            mode & 0o7777,
            user.name,
            program.display()
        )));
    }
    if head.starts_with(b"#!") && !crate::users::allows(&meta, user, 0o4) {
        return Err(denied(format!(
            "it is a script and {} cannot read it; run `chmod o+r {}`",
            user.name,
            program.display()
        )));
    }
    Ok(())
}

/// The first bytes of the program (empty when unreadable).
#[cfg(unix)]
fn file_head(program: &Path) -> Vec<u8> {
    use std::io::Read;
    let mut head = Vec::new();
    let _ = std::fs::File::open(program).and_then(|file| file.take(64).read_to_end(&mut head));
    head
}

/// Why an ELF file cannot run here, if it cannot. glibc's `execvp` hands any file the kernel
/// refuses with ENOEXEC to `/bin/sh` as a script, so a damaged or foreign binary would otherwise
/// "start" as a shell spitting syntax errors instead of failing with a clear message.
#[cfg(target_os = "linux")]
fn elf_problem(head: &[u8]) -> Option<String> {
    if !head.starts_with(b"\x7fELF") {
        return None;
    }
    let machine = match (head.get(5), head.get(18..20)) {
        (Some(1), Some(m)) => u16::from_le_bytes([m[0], m[1]]),
        (Some(2), Some(m)) => u16::from_be_bytes([m[0], m[1]]),
        _ => return Some("its ELF header is cut short or damaged; reinstall it".to_owned()),
    };
    // ELF e_machine values this machine runs (64-bit kernels usually run their 32-bit sibling).
    let native: &[u16] = match std::env::consts::ARCH {
        "x86_64" => &[62, 3],
        "x86" => &[3],
        "aarch64" => &[183, 40],
        "arm" => &[40],
        "riscv64" => &[243],
        _ => return None,
    };
    (!native.contains(&machine)).then(|| {
        format!(
            "it is built for another kind of machine (ELF machine {machine}) than this {}; \
             install the payload for this platform",
            std::env::consts::ARCH
        )
    })
}

/// Runs on the spawner thread.
#[cfg(unix)]
fn spawn_here(spec: &SpawnSpec, containment: Option<&Containment>) -> Result<Spawned, Error> {
    use std::process::Stdio;

    let cwd = std::path::absolute(&spec.cwd).map_err(|source| Error::Cwd {
        program: spec.program.clone(),
        cwd: spec.cwd.clone(),
        source,
    })?;
    let mut env = environment(spec, &cwd)?;
    let program = resolve_program(&spec.program, &cwd, &env["PATH"])?;
    preflight(&program, spec, &cwd)?;
    let scope = spec
        .scope
        .as_deref()
        .zip(containment)
        .map(|(id, containment)| containment.scope(id));
    // The cgroup leaf's `cgroup.procs`, opened here (by the daemon, close-on-exec) so that the
    // child can move itself in after its uid drop: Linux judges such a write by the opener's
    // credentials.
    let mut procs = None;
    if let Some(scope) = &scope {
        env.insert(crate::MARKER_VAR.to_owned(), scope.marker.clone());
        if let Some(leaf) = &scope.cgroup {
            let placed = scope.prepare().and_then(|()| {
                std::fs::OpenOptions::new()
                    .write(true)
                    .open(leaf.join("cgroup.procs"))
            });
            procs = Some(std::sync::Arc::new(
                placed.map_err(|source| cgroup_error(&program, leaf, source))?,
            ));
        }
    }
    let child_procs = procs.clone();

    let mut command = tokio::process::Command::new(&program);
    command
        .args(&spec.args)
        .env_clear()
        .envs(&env)
        .current_dir(&cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    if let Some(user) = &spec.user {
        // std then also calls setgroups(0, NULL): no supplementary groups (see below).
        command.gid(user.gid).uid(user.uid);
    }
    let daemon = rustix::process::getpid();
    // Between fork and exec, std's child does, in this order (rust-lang/rust,
    // library/std/src/sys/process/unix/unix.rs, `Command::do_exec`): dup2 the stdio pipes;
    // setgroups(explicit groups: unused here), setgid(gid), setgroups(0, NULL) when a uid is set
    // and no groups were given, setuid(uid); chroot (unused); chdir(cwd); setpgid(0, 0) for
    // `process_group(0)`; setsid (unused); SIGPIPE back to SIG_DFL; then the `pre_exec` closures;
    // then execvp. So `after_fork` runs with the final credentials. That order matters: the kernel
    // clears the death signal whenever credentials change (prctl(2)), so set before setuid it
    // would be lost. std documents the closures as running "just before exec" but not this order,
    // so the `children_die_with_daemon` test guards it: as root it runs a child as `nobody`, which
    // survives its daemon if the death signal is armed before the uid drop (checked by moving
    // the drop into the closure after the prctl: the test then fails).
    //
    // SAFETY: the closure runs in the forked child of a multi-threaded process, where only
    // async-signal-safe operations are allowed. It only makes raw syscalls through rustix
    // (write to an already open descriptor, prctl, getppid) and builds `io::Error`s from raw
    // errno values; it neither allocates, nor takes locks, nor touches shared state (the `Arc`
    // is only dereferenced, never cloned or dropped there). `daemon` is a plain integer.
    #[allow(unsafe_code)]
    unsafe {
        command.pre_exec(move || {
            if let Some(procs) = &child_procs {
                // "0" is the writing process; a failure is caught by the daemon's own write below.
                let _ = rustix::io::write(procs.as_ref(), b"0");
            }
            after_fork(daemon)
        });
    }
    let child = command
        .spawn()
        .map_err(|e| spawn_error(e, &program, spec.user.as_ref()))?;
    let pid = child.id().ok_or_else(|| Error::Spawn {
        program: program.clone(),
        source: std::io::Error::other("the child was reaped before its pid could be read"),
    })?;
    let start_time = crate::process_start_time(pid).unwrap_or(0);
    if let (Some(procs), Some(scope)) = (&procs, &scope) {
        use std::io::Write;
        // Again from the daemon (kernels that judge the writer, not the opener); ESRCH: it
        // already exited, nothing to place.
        let placed = (&**procs).write_all(pid.to_string().as_bytes());
        if let Err(source) = placed
            && source.raw_os_error() != Some(rustix::io::Errno::SRCH.raw_os_error())
        {
            let _ = crate::signal_group(pid, crate::Signal::Kill);
            let leaf = scope.cgroup.clone().unwrap_or_default();
            return Err(cgroup_error(&program, &leaf, source));
        }
    }
    if let Some(containment) = containment {
        containment.note_direct(pid, start_time);
    }
    Ok(Spawned {
        child,
        pid,
        start_time,
    })
}

/// The child's last steps before exec: ask for SIGKILL when the spawner thread dies, then make
/// sure it has not died already (the request would have come too late to fire).
#[cfg(unix)]
fn after_fork(daemon: rustix::process::Pid) -> std::io::Result<()> {
    #[cfg(target_os = "linux")]
    rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL))?;
    // macOS and the BSDs have no equivalent armed here: children there outlive a crashed daemon
    // until the next daemon ends them with `reap_leftovers`.
    if rustix::process::getppid() != Some(daemon) {
        // The daemon died between fork and here: we were reparented. Do not start orphaned.
        return Err(rustix::io::Errno::SRCH.into());
    }
    Ok(())
}

/// A service's cgroup could not be created or entered.
#[cfg(unix)]
fn cgroup_error(program: &Path, leaf: &Path, source: std::io::Error) -> Error {
    Error::Spawn {
        program: program.to_owned(),
        source: std::io::Error::new(
            source.kind(),
            format!(
                "could not place it in cgroup {}: {source}; fix the cgroup's permissions, or set \
                 {}=1 for the daemon to use the subreaper fallback",
                leaf.display(),
                crate::NO_CGROUP_VAR
            ),
        ),
    }
}

/// Turns what `spawn` reported (often an errno from the child) into an actionable error.
#[cfg(unix)]
fn spawn_error(e: std::io::Error, program: &Path, user: Option<&User>) -> Error {
    use std::io::ErrorKind;
    let program = program.to_owned();
    if e.raw_os_error() == Some(rustix::io::Errno::NOEXEC.raw_os_error()) {
        let reason = "it is not a program for this machine (wrong architecture, or a damaged file)"
            .to_owned();
        return Error::NotExecutable { program, reason };
    }
    match e.kind() {
        ErrorKind::NotFound => Error::ProgramNotFound {
            program,
            path_var: None,
        },
        ErrorKind::PermissionDenied => Error::PermissionDenied {
            program,
            user: runner(user),
            reason: format!(
                "the system refused to execute it ({e}); check the file's and its folders' \
                 permissions, and that its file system is not mounted noexec"
            ),
        },
        _ => Error::Spawn { program, source: e },
    }
}

#[cfg(not(unix))]
fn spawn_here(_spec: &SpawnSpec, _containment: Option<&Containment>) -> Result<Spawned, Error> {
    // On Windows each child would be created suspended, assigned to a job object with
    // JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE (the job handle held by the daemon plays the role of
    // PR_SET_PDEATHSIG and of the process group), then resumed. Not built or tested yet.
    Err(Error::Unsupported {
        what: "spawning services",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(env: &[(&str, &str)]) -> SpawnSpec {
        SpawnSpec {
            program: "x".into(),
            args: vec![],
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            cwd: "/srv/home".into(),
            user: None,
            scope: None,
        }
    }

    #[test]
    fn passed_variables_override_the_base() {
        let env = environment(
            &spec(&[("HOME", "/elsewhere"), ("A", "1")]),
            Path::new("/srv/home"),
        )
        .unwrap();
        assert_eq!(env["HOME"], "/elsewhere");
        assert_eq!(env["A"], "1");
        assert!(env.contains_key("PATH"));
    }

    #[test]
    fn bad_variable_names_are_refused() {
        for bad in [("", "v"), ("A=B", "v"), ("A", "nul\0")] {
            assert!(
                environment(&spec(&[bad]), Path::new("/")).is_err(),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn debug_hides_values() {
        let shown = format!("{:?}", spec(&[("PGPASSWORD", "hunter2")]));
        assert!(
            shown.contains("PGPASSWORD") && !shown.contains("hunter2"),
            "{shown}"
        );
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn foreign_and_damaged_elf_files_are_named() {
        let own = file_head(Path::new("/proc/self/exe"));
        assert_eq!(elf_problem(&own), None, "this very test binary runs here");
        assert_eq!(elf_problem(b"#!/bin/sh\n"), None);
        assert!(elf_problem(b"\x7fELF\x02\x01").unwrap().contains("damaged"));
        let mut foreign = own.clone();
        foreign[18..20].copy_from_slice(
            &(if cfg!(target_arch = "aarch64") {
                62u16
            } else {
                183u16
            })
            .to_le_bytes(),
        );
        assert!(
            elf_problem(&foreign)
                .unwrap()
                .contains("another kind of machine")
        );
    }

    #[cfg(unix)]
    #[test]
    fn programs_resolve_against_cwd_and_path() {
        let cwd = Path::new("/srv/home");
        assert_eq!(
            resolve_program(Path::new("bin/pg"), cwd, "").unwrap(),
            Path::new("/srv/home/bin/pg")
        );
        assert_eq!(
            resolve_program(Path::new("/bin/sh"), cwd, "").unwrap(),
            Path::new("/bin/sh")
        );
        assert_eq!(
            resolve_program(Path::new("sh"), cwd, "/nonexistent:/bin").unwrap(),
            Path::new("/bin/sh")
        );
        let err = resolve_program(Path::new("no-such-program-x"), cwd, "/bin").unwrap_err();
        assert!(err.to_string().contains("PATH=/bin"), "{err}");
    }
}
