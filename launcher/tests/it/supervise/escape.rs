//! A service that escapes its process group (fork, `setsid`, fork again: the grandchild is in a
//! session and group of its own) is still ended: by `kojibox stop`, and, after the daemon *and*
//! its watchdog were killed with SIGKILL, by the next `kojibox serve` on the same home. Each
//! scenario runs twice: with cgroups (where the machine lets the daemon create them; this one
//! does as root) and with the subreaper fallback (`KOJIBOX_NO_CGROUP=1`). Every process and
//! cgroup a test starts is ended or removed by a drop guard, also when it fails.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::daemon::Daemon;
use super::{WAIT, alive, eventually, kill, python, read_pid};
use crate::support::{Env, Fixture, text};

/// Forks, `setsid`s, forks again; the grandchild writes its pid to `$DATA/escaped` and sleeps.
fn escaper() -> Fixture {
    let script = r#"PYTHON -c '
import os, sys, time
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        open(sys.argv[1] + ".tmp", "w").write("%d\n" % os.getpid())
        os.rename(sys.argv[1] + ".tmp", sys.argv[1])
        time.sleep(300)
    os._exit(0)
os.wait()
' "$DATA/escaped"
exec sleep 300"#
        .replace("PYTHON", python());
    Fixture::new("escaper", &script)
}

/// Ends process `pid` (if it runs) on drop.
struct KillOnDrop(u32);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if alive(self.0) {
            kill(self.0, 9);
        }
    }
}

/// Removes, on drop, the cgroups the daemons of this home created (killing what is left in them).
struct CgroupGuard(PathBuf);

impl CgroupGuard {
    /// The cgroup bases recorded in `app/state/services/containment`.
    fn bases(&self) -> Vec<PathBuf> {
        std::fs::read_to_string(self.0.join("app/state/services/containment"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.strip_prefix("base="))
            .map(PathBuf::from)
            .filter(|b| {
                b.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("kojibox-"))
            })
            .collect()
    }
}

impl Drop for CgroupGuard {
    fn drop(&mut self) {
        for base in self.bases() {
            if !base.exists() {
                continue;
            }
            let _ = std::fs::write(base.join("cgroup.kill"), "1");
            let deadline = Instant::now() + Duration::from_secs(3);
            for leaf in std::fs::read_dir(&base).into_iter().flatten().flatten() {
                if leaf.file_type().is_ok_and(|t| t.is_dir()) {
                    while std::fs::remove_dir(leaf.path()).is_err() && Instant::now() < deadline {
                        std::thread::sleep(Duration::from_millis(20));
                    }
                }
            }
            let _ = std::fs::remove_dir(&base);
        }
    }
}

/// The cgroup2 path of `pid` (`0::` line of `/proc/<pid>/cgroup`).
fn cgroup_of(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("0::").map(str::to_owned))
        .unwrap_or_default()
}

/// A daemon, with cgroups or (`no_cgroup`) the subreaper fallback.
fn start(env: &Env, up: bool, no_cgroup: bool) -> Daemon {
    let envs: &[(&str, &str)] = if no_cgroup {
        &[(kojibox_proc::NO_CGROUP_VAR, "1")]
    } else {
        &[]
    };
    Daemon::start_with(env, up, envs)
}

/// Starts a daemon serving the escaper; returns it, the escaped grandchild, and guards.
async fn escaped(env: &Env, no_cgroup: bool) -> (Daemon, KillOnDrop, CgroupGuard) {
    env.install_fixtures(&[escaper()]);
    let guard = CgroupGuard(env.home_dir());
    let daemon = start(env, true, no_cgroup);
    let running = daemon.line("escaper: running").await;
    let at = running.rfind("(pid ").unwrap() + 5;
    let leader: u32 = running[at..].trim_end_matches(')').parse().unwrap();
    let pid = read_pid(&env.at("runtime/data/escaper/escaped")).await;
    let grandchild = KillOnDrop(pid);
    assert!(alive(pid), "the grandchild {pid} must run");
    // It really left: a session (and group) of its own.
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
    let (pgid, session) = (fields[2], fields[3]);
    assert_ne!(
        pgid,
        leader.to_string(),
        "it left the service's process group"
    );
    assert_ne!(session, pid.to_string(), "the second fork happened");
    assert_eq!(session, pgid, "a session of its own");
    let bases = guard.bases();
    if no_cgroup {
        assert!(bases.is_empty(), "{bases:?}");
        assert!(!cgroup_of(pid).contains("kojibox-"), "{}", cgroup_of(pid));
    } else if let Some(base) = bases.first() {
        let tag = base.file_name().unwrap().to_str().unwrap();
        assert!(
            cgroup_of(pid).ends_with(&format!("/{tag}/escaper")),
            "the grandchild must be in the service's cgroup: {}",
            cgroup_of(pid)
        );
    } else {
        eprintln!("cgroups unavailable here: the daemon used the subreaper fallback");
    }
    (daemon, grandchild, guard)
}

async fn stop_ends_the_escaped_grandchild(no_cgroup: bool) {
    let env = Env::for_services();
    let (mut daemon, grandchild, _guard) = escaped(&env, no_cgroup).await;
    let out = env.kojibox(&["stop", "escaper", "--wait"], None);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        eventually(Duration::from_secs(5), || !alive(grandchild.0)).await,
        "the escaped grandchild {} outlived `kojibox stop escaper`:\n{}",
        grandchild.0,
        daemon.stderr()
    );
    daemon.stop().await;
}

async fn the_next_daemon_ends_what_a_killed_one_left(no_cgroup: bool) {
    let env = Env::for_services();
    let (mut daemon, grandchild, _guard) = escaped(&env, no_cgroup).await;
    let watchdog = daemon.watchdog().expect("the daemon's watchdog runs");
    kill(watchdog, 9);
    assert!(eventually(WAIT, || !alive(watchdog)).await);
    daemon.child.kill().unwrap();
    daemon.child.wait().unwrap();
    // The attack's premise: the grandchild survives the daemon and its watchdog.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        alive(grandchild.0),
        "the grandchild {} died with the daemon: nothing to test",
        grandchild.0
    );

    let mut next = start(&env, false, no_cgroup);
    next.line("kojibox serving").await;
    let left = alive(grandchild.0);
    let stderr = next.stderr();
    next.stop().await;
    assert!(
        !left,
        "the escaped grandchild {} still ran after the next daemon started:\n{stderr}",
        grandchild.0
    );
    assert!(
        stderr.contains("of escaper") && stderr.contains(&grandchild.0.to_string()),
        "the next daemon must say what it ended:\n{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_ends_a_grandchild_that_escaped_with_setsid() {
    stop_ends_the_escaped_grandchild(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_next_daemon_ends_a_grandchild_that_escaped_a_killed_daemon_and_watchdog() {
    the_next_daemon_ends_what_a_killed_one_left(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_cgroups_stop_ends_a_grandchild_that_escaped_with_setsid() {
    stop_ends_the_escaped_grandchild(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_cgroups_the_next_daemon_ends_a_grandchild_that_escaped_a_killed_daemon() {
    the_next_daemon_ends_what_a_killed_one_left(true).await;
}

/// Killing only the daemon: its watchdog ends the escaped grandchild at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_watchdog_ends_a_grandchild_that_escaped_a_killed_daemon() {
    for no_cgroup in [false, true] {
        let env = Env::for_services();
        let (mut daemon, grandchild, _guard) = escaped(&env, no_cgroup).await;
        daemon.child.kill().unwrap();
        daemon.child.wait().unwrap();
        assert!(
            eventually(Duration::from_secs(5), || !alive(grandchild.0)).await,
            "the escaped grandchild {} outlived the SIGKILLed daemon (no_cgroup {no_cgroup})",
            grandchild.0
        );
    }
}
