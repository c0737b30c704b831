//! A self-update proves itself. Before the daemon executes the kojibox an update put in place,
//! it starts a guard from its own, known-good image (`/proc/self/exe`, which still names the
//! previous executable after the file was replaced): `kojibox __prove-self-update`. The guard
//! waits until the restarted daemon (the same pid) serves the API and runs again every service
//! that ran before, within [`DEADLINE`]. If it does not (the new kojibox exits, hangs, or cannot
//! bring the services back), the guard ends it, puts the previous executable
//! (`app/state/update/kojibox.prev`) back in place, starts it (`serve`, with the same arguments)
//! so the services come back on it, and records why in `app/state/update/self-update-failed.json`,
//! which the next daemon start and every `kojibox update` report.

use std::path::Path;
use std::time::{Duration, Instant};

use kojibox_home::Home;
use kojibox_manifests::api::methods;
use kojibox_manifests::model::ServiceStatus;
use serde::{Deserialize, Serialize};

use crate::client::Client;
use crate::error::{Error, Result};

/// How long a restarted daemon has to serve and bring its services back.
pub(crate) const DEADLINE: Duration = Duration::from_secs(60);

/// What a failed self-update left for the user.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Undone {
    /// When the previous kojibox was put back (RFC 3339).
    pub at: String,
    /// Why the new one did not count.
    pub why: String,
}

/// The last self-update that was undone, if any (until an update replaces kojibox again).
pub(crate) fn undone(home: &Home) -> Option<Undone> {
    kojibox_home::fs::read_json(&home.self_update_failed())
        .ok()
        .flatten()
}

/// A note for the user about the last self-update that was undone, if there is one.
pub fn undone_note(home: &Home) -> Option<String> {
    undone(home).map(|u| {
        format!(
            "the last self-update did not prove itself and was undone at {}: {}; the previous \
             kojibox runs (`kojibox update apply` tries again)",
            u.at, u.why
        )
    })
}

/// Forgets an earlier failure (a new self-update is under way).
pub(crate) fn forget(home: &Home) {
    let _ = std::fs::remove_file(home.self_update_failed());
}

/// Starts the guard for this process (about to execute `exe` with `args`), expecting the
/// services of `app/state/resume.json` back (named on its command line: the restarted daemon
/// removes the file as it starts). It writes where the daemon writes (its standard
/// output and error: `app/logs/daemon.log` under `kojibox up`).
pub(crate) fn arm(home: &Home, exe: &Path, args: &[std::ffi::OsString]) -> Result<()> {
    forget(home);
    if !home.previous_exe().exists() {
        return Err(Error::Home(kojibox_home::Error::Internal {
            detail: "no previous kojibox is kept: the self-update cannot be guarded".into(),
        }));
    }
    // Read now: the restarted daemon takes the file as it starts.
    let wanted: Vec<String> =
        kojibox_home::fs::read_json::<Vec<String>>(&home.resume_file())?.unwrap_or_default();
    let mut command = std::process::Command::new("/proc/self/exe");
    command
        .arg("--home")
        .arg(home.root())
        .arg("__prove-self-update")
        .arg("--pid")
        .arg(std::process::id().to_string())
        .arg("--exe")
        .arg(exe)
        .arg("--services")
        .arg(wanted.join(","))
        .arg("--")
        .args(args)
        .stdin(std::process::Stdio::null());
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        // Not in the daemon's group: it must outlive what it watches.
        command.process_group(0);
    }
    command
        .spawn()
        .map_err(Error::io("start the self-update guard for", exe))?;
    Ok(())
}

/// The guard (`kojibox __prove-self-update`): see the module documentation.
pub fn guard(
    home: &Home,
    pid: u32,
    exe: &Path,
    args: &[std::ffi::OsString],
    wanted: &[String],
    say: &dyn Fn(&str),
) -> Result<()> {
    let started = Instant::now();
    let why = loop {
        if !kojibox_proc::is_alive(pid) {
            break format!("the new kojibox (pid {pid}) exited");
        }
        if let Some(missing) = proven(home, pid, wanted) {
            if started.elapsed() > DEADLINE {
                break format!(
                    "the new kojibox did not {missing} within {} s",
                    DEADLINE.as_secs()
                );
            }
        } else {
            say(&format!(
                "self-update proven: kojibox (pid {pid}) serves and runs {} service(s) again",
                wanted.len()
            ));
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    say(&format!(
        "self-update failed: {why}; putting the previous kojibox back"
    ));
    let restarted = undo(home, pid, exe, args, wanted, &why)?;
    say(&format!(
        "self-update undone: the previous kojibox is back at {} and serving (pid {restarted})",
        exe.display()
    ));
    Ok(())
}

/// `None` when the daemon at `pid` serves and runs every one of `wanted`; else what it has not
/// done yet.
fn proven(home: &Home, pid: u32, wanted: &[String]) -> Option<&'static str> {
    let Ok(client) = Client::connect(home) else {
        return Some("answer its API");
    };
    if client.pid() != pid {
        return Some("answer its API");
    }
    let Ok(states) = client.call::<methods::ServicesList>(&Default::default()) else {
        return Some("answer its API");
    };
    let back = wanted.iter().all(|id| {
        states
            .iter()
            .any(|s| &s.id == id && s.state == ServiceStatus::Running)
    });
    if back {
        None
    } else {
        Some("bring back the services that ran")
    }
}

/// Ends the new daemon, puts the previous executable back at `exe`, records why and starts it;
/// answers its pid.
fn undo(
    home: &Home,
    pid: u32,
    exe: &Path,
    args: &[std::ffi::OsString],
    wanted: &[String],
    why: &str,
) -> Result<u32> {
    if kojibox_proc::is_alive(pid) {
        // SIGTERM stops its services in order; SIGKILL if it does not end in 30 s.
        signal(pid, rustix::process::Signal::TERM);
        let until = Instant::now() + Duration::from_secs(30);
        while kojibox_proc::is_alive(pid) && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(100));
        }
        if kojibox_proc::is_alive(pid) {
            signal(pid, rustix::process::Signal::KILL);
        }
    }
    kojibox_runtime::update::restore_previous_to(home, exe)?;
    kojibox_home::fs::write_json(
        home,
        &home.self_update_failed(),
        &Undone {
            at: kojibox_home::clock::now(),
            why: why.to_owned(),
        },
    )?;
    // What ran comes back on the previous kojibox.
    kojibox_home::fs::write_json(home, &home.resume_file(), &wanted)?;
    // A passphrase cannot be handed on: it never left the daemon's memory.
    let args: Vec<&std::ffi::OsString> =
        args.iter().filter(|a| *a != "--passphrase-stdin").collect();
    let mut command = std::process::Command::new(exe);
    // Its output goes where the daemon's went (the guard's own).
    command.args(args).stdin(std::process::Stdio::null());
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        command.process_group(0);
    }
    let child = command
        .spawn()
        .map_err(Error::io("start the previous kojibox", exe))?;
    Ok(child.id())
}

#[cfg(unix)]
fn signal(pid: u32, signal: rustix::process::Signal) {
    if let Some(pid) = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    {
        let _ = rustix::process::kill_process(pid, signal);
    }
}
