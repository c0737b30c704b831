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

use std::io::{BufRead, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::Mutex;

use crate::Containment;

/// The daemon's end.
pub struct Watchdog {
    pipe: Mutex<Option<ChildStdin>>,
    child: Mutex<Option<Child>>,
}

impl Watchdog {
    /// Starts the helper: `command` must run [`run`] (the daemon passes `kojibox __watchdog`).
    /// Its standard input becomes the pipe; its output is discarded, its errors inherited.
    pub fn start(mut command: Command) -> std::io::Result<Watchdog> {
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
        Ok(Watchdog {
            pipe: Mutex::new(pipe),
            child: Mutex::new(Some(child)),
        })
    }

    fn send(&self, line: &str) {
        if let Ok(mut pipe) = self.pipe.lock()
            && let Some(pipe) = pipe.as_mut()
        {
            let _ = writeln!(pipe, "{line}").and_then(|()| pipe.flush());
        }
    }

    /// A service group was spawned.
    pub fn watch(&self, pgid: u32) {
        self.send(&format!("+{pgid}"));
    }

    /// Tells the watchdog where the services' cgroups and markers are, so that on the daemon's
    /// death it ends escaped processes too.
    pub fn contain(&self, containment: &Containment) {
        self.send(&containment.watchdog_line());
    }

    /// A service group is gone.
    pub fn forget(&self, pgid: u32) {
        self.send(&format!("-{pgid}"));
    }

    /// The daemon stops cleanly: the watchdog ends without killing anything.
    pub fn finish(&self) {
        self.send("done");
        if let Ok(mut pipe) = self.pipe.lock() {
            pipe.take();
        }
        if let Ok(mut child) = self.child.lock()
            && let Some(mut child) = child.take()
        {
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
