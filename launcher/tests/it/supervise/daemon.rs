//! The real daemon, `kojibox --home H serve [--up]`: its services die with it even when it is
//! killed with SIGKILL, a new daemon ends what an old one left running (but never a process that
//! merely got a recorded pid), and SIGTERM stops every service in reverse dependency order.

use std::io::{BufRead, BufReader};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::{WAIT, alive, db_and_web, eventually, free_port, kill, read_pid};
use crate::support::{Env, Fixture};

/// A running `kojibox serve`, its stderr collected line by line; it and its watchdog are
/// SIGKILLed on drop. Shared with [`super::escape`].
pub(super) struct Daemon {
    pub(super) child: Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Daemon {
    pub(super) fn start(env: &Env, up: bool) -> Daemon {
        Daemon::start_with(env, up, &[])
    }

    /// [`start`](Daemon::start) with `envs` set (`KOJIBOX_NO_CGROUP` is unset unless given).
    pub(super) fn start_with(env: &Env, up: bool, envs: &[(&str, &str)]) -> Daemon {
        let mut command = Command::new(env!("CARGO_BIN_EXE_kojibox"));
        command
            .arg("--home")
            .arg(env.home_dir())
            .arg("serve")
            .env_remove("KOJIBOX_HOME")
            .env_remove(kojibox_proc::NO_CGROUP_VAR)
            .envs(envs.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if up {
            command.arg("--up");
        }
        let mut child = command.spawn().unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&lines);
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { return };
                sink.lock().unwrap().push(line);
            }
        });
        Daemon { child, lines }
    }

    pub(super) fn stderr(&self) -> String {
        self.lines.lock().unwrap().join("\n")
    }

    /// Waits for a stderr line starting with `prefix`; returns it.
    pub(super) async fn line(&self, prefix: &str) -> String {
        let found = || {
            self.lines
                .lock()
                .unwrap()
                .iter()
                .find(|l| l.starts_with(prefix))
                .cloned()
        };
        assert!(
            eventually(WAIT, || found().is_some()).await,
            "no line `{prefix}` from the daemon:\n{}",
            self.stderr()
        );
        found().unwrap()
    }

    /// SIGTERM, and waits (bounded) for a clean exit.
    pub(super) async fn stop(&mut self) {
        kill(self.child.id(), 15);
        let started = Instant::now();
        while self.child.try_wait().unwrap().is_none() {
            assert!(
                started.elapsed() < WAIT * 2,
                "the daemon did not exit:\n{}",
                self.stderr()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The watchdog: the daemon's child running `kojibox __watchdog`.
    pub(super) fn watchdog(&self) -> Option<u32> {
        crate::support::watchdog_of(self.child.id())
    }

    /// Waits for the daemon to exit.
    async fn exit(&mut self) -> std::process::ExitStatus {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                started.elapsed() < WAIT,
                "the daemon did not exit:\n{}",
                self.stderr()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(watchdog) = self.watchdog() {
            kill(watchdog, 9);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `(pid N)` at the end of a narration line such as `alpha: running (pid 42)`.
fn narrated_pid(line: &str) -> u32 {
    let at = line.rfind("(pid ").unwrap() + 5;
    line[at..].trim_end_matches(')').parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_daemon_leaves_no_service_running() {
    let env = Env::for_services();
    let script = r#"echo $$ > "$DATA/pid"; exec sleep 300"#;
    env.install_fixtures(&[Fixture::new("alpha", script), Fixture::new("beta", script)]);
    let mut daemon = Daemon::start(&env, true);
    let alpha = narrated_pid(&daemon.line("alpha: running").await);
    let beta = narrated_pid(&daemon.line("beta: running").await);
    assert_eq!(read_pid(&env.at("runtime/data/alpha/pid")).await, alpha);
    assert_eq!(read_pid(&env.at("runtime/data/beta/pid")).await, beta);
    assert!(alive(alpha) && alive(beta));

    daemon.child.kill().unwrap();
    assert_eq!(daemon.exit().await.signal(), Some(9));
    assert!(
        eventually(Duration::from_secs(2), || !alive(alpha) && !alive(beta)).await,
        "services outlived the daemon: alpha {} beta {}",
        alive(alpha),
        alive(beta)
    );

    // A new daemon can take the home at once (the lock died with the old one) and serve.
    let mut next = Daemon::start(&env, true);
    next.line("alpha: running").await;
    kill(next.child.id(), 15);
    assert!(next.exit().await.success(), "{}", next.stderr());
}

/// Kills a process on drop if it still runs, so a failing test leaves nothing behind.
struct KillOnDrop(u32);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if alive(self.0) {
            kill(self.0, 9);
        }
    }
}

/// A daemon serving `beta`, whose script starts a grandchild (`sleep 300 &`) and waits, killed
/// with SIGKILL once beta runs; returns the grandchild after beta itself died with the daemon.
async fn grandchild_of_a_killed_daemon(env: &Env) -> KillOnDrop {
    env.install_fixtures(&[Fixture::new(
        "beta",
        r#"sleep 300 &
echo $! > "$DATA/grandchild"
wait"#,
    )]);
    let mut daemon = Daemon::start(env, true);
    let beta = narrated_pid(&daemon.line("beta: running").await);
    let grandchild = KillOnDrop(read_pid(&env.at("runtime/data/beta/grandchild")).await);
    assert!(alive(beta) && alive(grandchild.0));
    daemon.child.kill().unwrap();
    daemon.exit().await;
    assert!(eventually(Duration::from_secs(2), || !alive(beta)).await);
    // As on a normal machine, where init reaps orphans at once (this one's init reaps every
    // second or so): the next daemon finds beta's pid gone, not a zombie.
    let reaped = || !std::path::Path::new(&format!("/proc/{beta}")).exists();
    eventually(Duration::from_secs(5), reaped).await;
    grandchild
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_daemon_leaves_no_grandchild_running() {
    let env = Env::for_services();
    let grandchild = grandchild_of_a_killed_daemon(&env).await;
    assert!(
        eventually(Duration::from_secs(2), || !alive(grandchild.0)).await,
        "beta's grandchild {} outlived the SIGKILLed daemon by 2 s (an orphan)",
        grandchild.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_daemon_ends_what_a_killed_daemon_left_running() {
    let env = Env::for_services();
    let grandchild = grandchild_of_a_killed_daemon(&env).await;
    // Whatever the death signal missed, the next daemon must end before it serves.
    let mut next = Daemon::start(&env, false);
    next.line("kojibox serving").await;
    let left = alive(grandchild.0);
    kill(next.child.id(), 15);
    assert!(next.exit().await.success(), "{}", next.stderr());
    assert!(
        !left,
        "beta's grandchild {} (beta's process group) still ran after the next daemon \
         started:\n{}",
        grandchild.0,
        next.stderr()
    );
}

/// Field 22 of `/proc/<pid>/stat`.
fn start_time(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
    fields[22 - 3].parse().unwrap()
}

/// `sleep 300` in its own process group, as the supervisor starts services; killed on drop, so
/// a failing test leaves nothing behind.
struct Stray(Child);

impl Stray {
    fn start() -> Stray {
        let child = Command::new("sleep")
            .arg("300")
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        Stray(child)
    }

    fn id(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for Stray {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Writes `<home>/app/state/services/<id>.pid` as `kojibox_proc::record` does.
fn write_record(env: &Env, id: &str, pid: u32, start_time: u64) {
    let records = env.at("app/state/services");
    std::fs::create_dir_all(&records).unwrap();
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap();
    let text = format!(
        "id={id}\npid={pid}\npgid={pid}\nstart_time={start_time}\nboot_id={}\n",
        boot.trim()
    );
    std::fs::write(records.join(format!("{id}.pid")), text).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_daemon_ends_a_recorded_leftover_but_never_a_stranger() {
    let env = Env::for_services();
    env.install_fixtures(&[
        Fixture::new("alpha", "exec sleep 300"),
        Fixture::new("beta", "exec sleep 300"),
    ]);
    let mut leftover = Stray::start();
    let mut stranger = Stray::start();
    write_record(&env, "alpha", leftover.id(), start_time(leftover.id()));
    // Same pid, another start time: the pid was reused by a process that is not ours.
    write_record(&env, "beta", stranger.id(), start_time(stranger.id()) + 1);

    let mut daemon = Daemon::start(&env, false);
    daemon.line("kojibox serving").await;
    let status = leftover.0.try_wait().unwrap();
    assert_eq!(
        status.and_then(|s| s.signal()),
        Some(15),
        "the leftover must be ended with SIGTERM before the daemon serves:\n{}",
        daemon.stderr()
    );
    let note = format!(
        "note: stopped alpha (pid {}), left running by a previous daemon",
        leftover.id()
    );
    assert!(daemon.stderr().contains(&note), "{}", daemon.stderr());
    assert!(
        stranger.0.try_wait().unwrap().is_none(),
        "a process whose start time does not match must never be touched"
    );
    assert!(
        !daemon.stderr().contains("stopped beta") && !daemon.stderr().contains("killed beta"),
        "{}",
        daemon.stderr()
    );
    for id in ["alpha", "beta"] {
        let record = env.at(&format!("app/state/services/{id}.pid"));
        assert!(!record.exists(), "{id}");
    }
    kill(daemon.child.id(), 15);
    assert!(daemon.exit().await.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recorded_process_that_already_died_is_not_reported_as_stopped() {
    let env = Env::for_services();
    env.install_fixtures(&[Fixture::new("gamma", "exec sleep 300")]);
    // Dead but not reaped yet (a zombie), as a service killed by its death signal is until
    // init reaps it: nothing runs, so nothing may be reported as stopped or killed.
    let mut dead = Stray::start();
    let pid = dead.id();
    write_record(&env, "gamma", pid, start_time(pid));
    kill(pid, 9);
    assert!(eventually(WAIT, || !alive(pid)).await);
    let mut daemon = Daemon::start(&env, false);
    daemon.line("kojibox serving").await;
    let stderr = daemon.stderr();
    kill(daemon.child.id(), 15);
    assert!(daemon.exit().await.success());
    dead.0.wait().unwrap();
    assert!(!env.at("app/state/services/gamma.pid").exists());
    assert!(
        !stderr.contains("stopped gamma") && !stderr.contains("killed gamma"),
        "pid {pid} had already exited (a zombie), nothing was left running:\n{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_every_service_in_reverse_order_and_exits_0() {
    let env = Env::for_services();
    let port = free_port();
    env.install_fixtures(&db_and_web(port));
    let mut daemon = Daemon::start(&env, true);
    let db = narrated_pid(&daemon.line("db: running").await);
    let web = narrated_pid(&daemon.line("web: running").await);

    kill(daemon.child.id(), 15);
    let status = daemon.exit().await;
    let stderr = daemon.stderr();
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("all services stopped"), "{stderr}");
    let at = |prefix: &str| {
        daemon
            .lines
            .lock()
            .unwrap()
            .iter()
            .position(|l| l.starts_with(prefix))
    };
    let (web_stopped, db_stopping) = (at("web: stopped"), at("db: stopping"));
    assert!(
        web_stopped.is_some() && web_stopped < db_stopping,
        "web must be stopped before db stops:\n{stderr}"
    );
    assert!(!alive(db) && !alive(web));
    assert_eq!(
        kojibox_proc::check_tcp_port(port),
        kojibox_proc::PortCheck::Free
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_watchdog_is_started_again_and_still_ends_the_services() {
    let env = Env::for_services();
    env.install_fixtures(&[Fixture::new(
        "beta",
        r#"sleep 300 &
echo $! > "$DATA/grandchild"
wait"#,
    )]);
    let mut daemon = Daemon::start(&env, true);
    let beta = narrated_pid(&daemon.line("beta: running").await);
    let grandchild = KillOnDrop(read_pid(&env.at("runtime/data/beta/grandchild")).await);
    let first = daemon.watchdog().expect("a watchdog runs");
    kill(first, 9);
    let note = daemon
        .line(&format!("note: the watchdog (pid {first})"))
        .await;
    assert!(
        note.contains("started a new one") && note.contains("watching 1 service group(s)"),
        "{note}"
    );
    let second = daemon.watchdog().expect("a new watchdog runs");
    assert_ne!(first, second);
    // The new watchdog knows beta's group: the daemon's death still takes everything with it.
    daemon.child.kill().unwrap();
    daemon.exit().await;
    assert!(
        eventually(Duration::from_secs(2), || !alive(beta)
            && !alive(grandchild.0))
        .await,
        "beta {} or its grandchild {} outlived the daemon after its watchdog was replaced",
        alive(beta),
        alive(grandchild.0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grown_daemon_log_is_rotated() {
    use launcher::daemon::DAEMON_LOG_ROTATE_BYTES as ROTATE_BYTES;
    let env = Env::for_services();
    env.install_fixtures(&[Fixture::new("alpha", "exec sleep 300")]);
    // A home that has served for months: `kojibox up` appends to what earlier daemons wrote.
    let log = env.at("app/logs/daemon.log");
    std::fs::create_dir_all(log.parent().unwrap()).unwrap();
    let old = "an earlier daemon's line\n".repeat(ROTATE_BYTES as usize / 25 + 1);
    std::fs::write(&log, &old).unwrap();
    let _daemon = crate::support::UpDaemon(&env);
    let out = env.kojibox(&["up"], None);
    assert!(out.status.success(), "{}", crate::support::text(&out));
    let rotated = env.at("app/logs/daemon.1.log");
    assert!(
        eventually(WAIT, || rotated.exists()).await,
        "daemon.log ({} bytes) was not rotated",
        std::fs::metadata(&log).map(|m| m.len()).unwrap_or(0)
    );
    assert!(std::fs::read_to_string(&rotated).unwrap().starts_with(&old));
    // What the daemon says from now on goes to a fresh daemon.log, private like the old one.
    let out = env.kojibox(&["stop", "alpha"], None);
    assert!(out.status.success(), "{}", crate::support::text(&out));
    let fresh = || std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        eventually(WAIT, || fresh().contains("alpha: stopped")).await,
        "daemon.log now holds: {:?}",
        fresh()
    );
    assert!(!fresh().contains("an earlier daemon's line"));
    assert_eq!(crate::support::mode_of(&log), 0o600);
}
