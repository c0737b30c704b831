//! Signalling and ending process groups, and telling whether a process is alive.
//!
//! A group is "gone" when no process of it is left *running*: zombies are ignored, because a zombie
//! holds no port or file and runs no code; reaping it is the job of its parent (the tokio `Child`
//! for a service leader, which the caller awaits). Without that rule a group whose leader is our own
//! unreaped child would look alive until the grace period runs out.

use std::time::{Duration, Instant};

/// The signals the supervisor sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Signal {
    /// SIGTERM: please stop.
    Term,
    /// SIGKILL: stop now.
    Kill,
    /// SIGINT: interrupt (what Ctrl-C sends).
    Int,
    /// SIGHUP: many servers reload their configuration on it.
    Hup,
}

/// How [`terminate_group`] went.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Termination {
    /// SIGTERM was not enough within the grace period, SIGKILL was sent.
    pub needed_kill: bool,
    /// Processes of the group still running at the end (empty when the group is gone). Non-empty
    /// only when signals were refused (another user's processes) or a process is stuck in the
    /// kernel (uninterruptible sleep).
    pub remaining: Vec<u32>,
    /// How long it took.
    pub elapsed: Duration,
}

/// How long to wait for the kernel to finish processes after SIGKILL.
#[cfg(unix)]
pub(crate) const AFTER_KILL: Duration = Duration::from_secs(2);
/// The first and the longest pause between two checks of the group.
#[cfg(unix)]
pub(crate) const POLL_MIN: Duration = Duration::from_millis(2);
#[cfg(unix)]
pub(crate) const POLL_MAX: Duration = Duration::from_millis(50);

/// Sends `signal` to every process of group `pgid`. A group that no longer exists is not an
/// error. Refuses pgid 0 and 1 and the caller's own group (any of those would hit far more than a
/// service).
#[cfg(unix)]
pub fn signal_group(pgid: u32, signal: Signal) -> std::io::Result<()> {
    signal_group_raw(pgid, signal.to_rustix())
}

/// Sends `signal` to every process of group `pgid` (unsupported here: Windows has no process groups
/// in this sense; a job object would be terminated instead).
#[cfg(not(unix))]
pub fn signal_group(_pgid: u32, _signal: Signal) -> std::io::Result<()> {
    Err(std::io::Error::new(
        std::io::ErrorKind::Unsupported,
        "signalling process groups is unsupported on this platform",
    ))
}

/// Whether process `pid` exists and is not a zombie. On Linux read from `/proc`; elsewhere
/// `kill(pid, 0)` (which also counts zombies).
pub fn is_alive(pid: u32) -> bool {
    #[cfg(target_os = "linux")]
    if let Some(stat) = crate::procfs::stat(pid) {
        return !stat.is_dead();
    }
    #[cfg(unix)]
    {
        // /proc may hide other users' processes (hidepid); ask the kernel directly.
        let Some(pid) = to_pid(pid) else {
            return false;
        };
        match rustix::process::test_kill_process(pid) {
            Ok(()) => true,
            Err(e) => e == rustix::io::Errno::PERM,
        }
    }
    #[cfg(not(unix))]
    {
        let _ = pid;
        false
    }
}

/// The start time of process `pid`, in clock ticks after boot (`/proc/<pid>/stat` field 22):
/// together with the pid it identifies one process for good, even after the pid is reused.
/// `None` when there is no such process, and on platforms other than Linux.
pub fn process_start_time(pid: u32) -> Option<u64> {
    #[cfg(target_os = "linux")]
    {
        crate::procfs::stat(pid).map(|s| s.start_time)
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = pid;
        None
    }
}

/// Ends process group `pgid`: SIGTERM (and SIGCONT, so a stopped process can act on it) to the
/// group, wait up to `grace` until no process of the group runs, then SIGKILL the group and wait
/// briefly for the kernel to finish it. Zombies count as gone (see the module docs); the caller
/// still awaits its own `Child` to reap the leader. If the group cannot be signalled at all
/// (EPERM, or a pgid [`signal_group`] refuses), it returns at once with the group's running
/// processes in `remaining`. Needs a tokio time driver. Unsupported on Windows: returns at once,
/// listing `pgid` as remaining.
pub async fn terminate_group(pgid: u32, grace: Duration) -> Termination {
    let started = Instant::now();
    #[cfg(unix)]
    {
        if signal_group(pgid, Signal::Term).is_err() {
            // Refused (another user's processes, or a pgid this crate never signals): waiting
            // would only delay the same answer.
            return Termination {
                needed_kill: false,
                remaining: if pgid > 1 {
                    running_members(pgid)
                } else {
                    Vec::new()
                },
                elapsed: started.elapsed(),
            };
        }
        let _ = signal_group_raw(pgid, rustix::process::Signal::CONT);
        if wait_until_gone(pgid, started + grace).await {
            return Termination {
                needed_kill: false,
                remaining: Vec::new(),
                elapsed: started.elapsed(),
            };
        }
        let _ = signal_group(pgid, Signal::Kill);
        let gone = wait_until_gone(pgid, Instant::now() + AFTER_KILL).await;
        Termination {
            needed_kill: true,
            remaining: if gone {
                Vec::new()
            } else {
                running_members(pgid)
            },
            elapsed: started.elapsed(),
        }
    }
    #[cfg(not(unix))]
    {
        let _ = grace;
        Termination {
            needed_kill: false,
            remaining: vec![pgid],
            elapsed: started.elapsed(),
        }
    }
}

/// Polls until group `pgid` has no running process (true) or `deadline` passes (false).
#[cfg(unix)]
async fn wait_until_gone(pgid: u32, deadline: Instant) -> bool {
    let mut pause = POLL_MIN;
    loop {
        if !group_running(pgid) {
            return true;
        }
        let now = Instant::now();
        if now >= deadline {
            return false;
        }
        tokio::time::sleep(pause.min(deadline - now)).await;
        pause = (pause * 2).min(POLL_MAX);
    }
}

/// Whether any process of group `pgid` runs. `kill(-pgid, 0)` answers "no such group" cheaply; if
/// the group exists, it may hold only zombies, which `/proc` tells apart (the leader first, so the
/// common case reads one file instead of scanning every process).
#[cfg(unix)]
pub(crate) fn group_running(pgid: u32) -> bool {
    let Some(pid) = to_pid(pgid) else {
        return false;
    };
    // EPERM means the group exists but is someone else's: still running.
    if rustix::process::test_kill_process_group(pid) == Err(rustix::io::Errno::SRCH) {
        return false;
    }
    #[cfg(target_os = "linux")]
    {
        if crate::procfs::stat(pgid).is_some_and(|s| s.pgid == pgid && !s.is_dead()) {
            return true;
        }
        !crate::procfs::group_members(pgid).is_empty()
    }
    #[cfg(not(target_os = "linux"))]
    true
}

/// The running members of group `pgid`, for the report (Linux; elsewhere the group id itself).
#[cfg(unix)]
pub(crate) fn running_members(pgid: u32) -> Vec<u32> {
    #[cfg(target_os = "linux")]
    {
        crate::procfs::group_members(pgid)
    }
    #[cfg(not(target_os = "linux"))]
    {
        vec![pgid]
    }
}

/// `kill(-pgid, sig)` with the safety checks of [`signal_group`]; ESRCH is success.
#[cfg(unix)]
pub(crate) fn signal_group_raw(pgid: u32, sig: rustix::process::Signal) -> std::io::Result<()> {
    use std::io::{Error, ErrorKind};
    let Some(pid) = to_pid(pgid).filter(|_| pgid > 1) else {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            format!("refusing to signal process group {pgid}"),
        ));
    };
    if pid == rustix::process::getpgrp() {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            format!("refusing to signal process group {pgid}: it is the daemon's own group"),
        ));
    }
    match rustix::process::kill_process_group(pid, sig) {
        Ok(()) | Err(rustix::io::Errno::SRCH) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Sends `signal` to the single process `pid`; ESRCH is success. Refuses pid 0 and 1.
#[cfg(unix)]
pub(crate) fn signal_process(pid: u32, signal: Signal) -> std::io::Result<()> {
    let Some(raw) = to_pid(pid).filter(|_| pid > 1) else {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("refusing to signal process {pid}"),
        ));
    };
    match rustix::process::kill_process(raw, signal.to_rustix()) {
        Ok(()) | Err(rustix::io::Errno::SRCH) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// A positive pid that fits the kernel's type.
#[cfg(unix)]
pub(crate) fn to_pid(pid: u32) -> Option<rustix::process::Pid> {
    i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
}

#[cfg(unix)]
impl Signal {
    fn to_rustix(self) -> rustix::process::Signal {
        use rustix::process::Signal as S;
        match self {
            Signal::Term => S::TERM,
            Signal::Kill => S::KILL,
            Signal::Int => S::INT,
            Signal::Hup => S::HUP,
        }
    }
}
