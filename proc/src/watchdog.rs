//! The watchdog: ends every service group when the daemon dies, even by SIGKILL.
//!
//! `PR_SET_PDEATHSIG` reaches a service's main process only; a service that started children of
//! its own (a shell script with workers) would leave them behind. So the daemon starts one small
//! helper (`kojibox __watchdog`: the caller says which command runs [`run`]) in its own process
//! group, and keeps the write end of a pipe to it. It tells the watchdog each service group as it is spawned (`+PGID`) and stopped
//! (`-PGID`). When the pipe closes without a final `done` (the daemon is gone, however it
//! died), the watchdog SIGKILLs every group it still knows and exits.
//!
//! A process group does not hold a process that double-forked and called `setsid`, so the daemon
//! also tells the watchdog its [`Containment`] (`scope <tag> [<cgroup base>]`): on the daemon's
//! death the watchdog also writes `cgroup.kill` of the base (every service cgroup at once) and
//! kills every process carrying the home's marker. (If the watchdog is killed too, the next
//! daemon's [`Containment::reap_escaped`] ends them.)

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::Mutex;

use crate::Containment;

/// The daemon's end. If the helper dies (killed by hand, by the OOM killer), [`Watchdog::check`]
/// starts a new one and tells it everything the old one knew.
pub struct Watchdog {
    recipe: Recipe,
    inner: Mutex<Inner>,
}

/// How to start the helper again: a `Command` cannot be cloned, so its parts are kept.
struct Recipe {
    program: OsString,
    args: Vec<OsString>,
    envs: Vec<(OsString, Option<OsString>)>,
    dir: Option<PathBuf>,
}

#[derive(Default)]
struct Inner {
    pipe: Option<ChildStdin>,
    child: Option<Child>,
    /// The groups the helper must kill if the daemon dies.
    groups: BTreeSet<u32>,
    /// The containment line last sent.
    scope: Option<String>,
    /// [`Watchdog::finish`] was called: nothing is started again.
    finished: bool,
}

impl Recipe {
    fn of(command: &Command) -> Recipe {
        Recipe {
            program: command.get_program().to_owned(),
            args: command.get_args().map(ToOwned::to_owned).collect(),
            envs: command
                .get_envs()
                .map(|(k, v)| (k.to_owned(), v.map(ToOwned::to_owned)))
                .collect(),
            dir: command.get_current_dir().map(ToOwned::to_owned),
        }
    }

    fn command(&self) -> Command {
        let mut command = Command::new(&self.program);
        command.args(&self.args);
        for (key, value) in &self.envs {
            match value {
                Some(value) => command.env(key, value),
                None => command.env_remove(key),
            };
        }
        if let Some(dir) = &self.dir {
            command.current_dir(dir);
        }
        command
    }

    /// Starts the helper: its standard input becomes the pipe; its output is discarded, its
    /// errors inherited.
    fn spawn(&self) -> std::io::Result<(Child, Option<ChildStdin>)> {
        let mut command = self.command();
        command
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        #[cfg(unix)]
        {
            use std::os::unix::process::CommandExt;
            // Its own group: a Ctrl-C to the daemon's terminal must not end it first.
            command.process_group(0);
        }
        let mut child = command.spawn()?;
        let pipe = child.stdin.take();
        Ok((child, pipe))
    }
}

impl Inner {
    fn send(&mut self, line: &str) -> bool {
        match self.pipe.as_mut() {
            Some(pipe) => writeln!(pipe, "{line}").and_then(|()| pipe.flush()).is_ok(),
            None => false,
        }
    }

    /// Tells a fresh helper everything: the containment, then every group.
    fn replay(&mut self) {
        let lines: Vec<String> = self
            .scope
            .iter()
            .cloned()
            .chain(self.groups.iter().map(|g| format!("+{g}")))
            .collect();
        for line in lines {
            self.send(&line);
        }
    }
}

impl Watchdog {
    /// Starts the helper: `command` must run [`run`] (the daemon passes `kojibox __watchdog`).
    /// Its standard input becomes the pipe; its output is discarded, its errors inherited.
    pub fn start(command: Command) -> std::io::Result<Watchdog> {
        let recipe = Recipe::of(&command);
        let (child, pipe) = recipe.spawn()?;
        Ok(Watchdog {
            recipe,
            inner: Mutex::new(Inner {
                pipe,
                child: Some(child),
                ..Inner::default()
            }),
        })
    }

    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The helper's pid, while one runs.
    pub fn pid(&self) -> Option<u32> {
        self.inner().child.as_ref().map(Child::id)
    }

    /// A service group was spawned.
    pub fn watch(&self, pgid: u32) {
        let mut inner = self.inner();
        inner.groups.insert(pgid);
        inner.send(&format!("+{pgid}"));
    }

    /// Tells the watchdog where the services' cgroups and markers are, so that on the daemon's
    /// death it ends escaped processes too.
    pub fn contain(&self, containment: &Containment) {
        let line = containment.watchdog_line();
        let mut inner = self.inner();
        inner.send(&line);
        inner.scope = Some(line);
    }

    /// A service group is gone.
    pub fn forget(&self, pgid: u32) {
        let mut inner = self.inner();
        inner.groups.remove(&pgid);
        inner.send(&format!("-{pgid}"));
    }

    /// Whether the helper still runs; if it died, starts a new one, tells it every group and
    /// answers what happened (for the daemon's log). Never blocks for long: call it every few
    /// seconds.
    pub fn check(&self) -> Option<String> {
        let mut inner = self.inner();
        if inner.finished {
            return None;
        }
        let (old, status) = match inner.child.as_mut().map(|c| (c.id(), c.try_wait())) {
            Some((_, Ok(None))) => return None,
            Some((pid, Ok(Some(status)))) => (Some(pid), status.to_string()),
            Some((pid, Err(e))) => (Some(pid), format!("could not be waited for ({e})")),
            None => (None, "was not running".to_owned()),
        };
        inner.child = None;
        inner.pipe = None;
        let was = old.map(|p| format!(" (pid {p})")).unwrap_or_default();
        match self.recipe.spawn() {
            Ok((child, pipe)) => {
                let pid = child.id();
                inner.child = Some(child);
                inner.pipe = pipe;
                inner.replay();
                Some(format!(
                    "the watchdog{was} {status}; started a new one (pid {pid}) watching {} service group(s)",
                    inner.groups.len()
                ))
            }
            Err(e) => Some(format!(
                "the watchdog{was} {status} and could not be started again: {e}; \
                 if the daemon is killed now, its services outlive it until the next start"
            )),
        }
    }

    /// The daemon stops cleanly: the watchdog ends without killing anything.
    pub fn finish(&self) {
        let child = {
            let mut inner = self.inner();
            inner.finished = true;
            inner.send("done");
            inner.pipe = None;
            inner.child.take()
        };
        if let Some(mut child) = child {
            let _ = child.wait();
        }
    }
}

/// The helper's side (`kojibox __watchdog`): reads `+PGID`, `-PGID` and `done` lines from
/// standard input. Returns when the daemon is gone, after killing every group it still knew.
pub fn run() {
    let mut groups = std::collections::BTreeSet::new();
    let mut scope: Option<(String, Option<std::path::PathBuf>)> = None;
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        if let Some(rest) = line.strip_prefix("scope ") {
            let (tag, base) = match rest.split_once(' ') {
                Some((tag, base)) => (tag, Some(std::path::PathBuf::from(base))),
                None => (rest, None),
            };
            if tag.starts_with("kojibox-") && !tag.contains('/') {
                scope = Some((tag.to_owned(), base));
            }
            continue;
        }
        match (line.strip_prefix('+'), line.strip_prefix('-')) {
            (Some(pgid), _) => {
                groups.extend(pgid.trim().parse::<u32>().ok());
            }
            (_, Some(pgid)) => {
                if let Ok(pgid) = pgid.trim().parse::<u32>() {
                    groups.remove(&pgid);
                }
            }
            _ if line == "done" => return,
            _ => {}
        }
    }
    // The daemon died without saying `done`: nothing may outlive it.
    for pgid in groups {
        let _ = crate::signal_group(pgid, crate::Signal::Kill);
    }
    if let Some((tag, base)) = scope {
        let base = base.filter(|b| b.file_name().and_then(|n| n.to_str()) == Some(tag.as_str()));
        crate::cgroup::kill_everything(&tag, base.as_deref());
    }
}
