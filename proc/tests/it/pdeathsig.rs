//! The daemon dies with SIGKILL: its services must die too (PR_SET_PDEATHSIG).
//!
//! The test binary re-runs itself as a helper *process* playing the daemon: it builds a runtime
//! and a `Spawner`, starts `sleep 60` (and, when the tests run as root, another one as `nobody`,
//! which proves the death signal is armed after the uid drop: setuid clears it), prints their pids
//! and blocks. The test SIGKILLs the helper and checks the sleeps are gone.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use kojibox_proc::{Spawner, current_is_root, lookup_user};

use crate::helpers::{sh, wait_dead};

const MODE: &str = "KOJIBOX_PROC_CHILD_MODE";

/// Not a test of its own: the body of the helper daemon, run only when `MODE` says so.
#[test]
fn helper_daemon() {
    if std::env::var(MODE).as_deref() != Ok("daemon") {
        return;
    }
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let spawner = Spawner::new().unwrap();
        let plain = spawner
            .spawn(sh("exec sleep 60", Path::new("/")))
            .await
            .unwrap();
        println!("CHILD {}", plain.pid);
        let mut keep = vec![plain];
        if current_is_root() {
            let mut spec = sh("exec sleep 60", Path::new("/"));
            spec.user = Some(lookup_user("nobody").unwrap());
            let dropped = spawner.spawn(spec).await.unwrap();
            println!("CHILD {}", dropped.pid);
            keep.push(dropped);
        }
        println!("READY");
        std::future::pending::<()>().await;
        drop((spawner, keep));
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn children_die_with_daemon() {
    let mut helper = Helper(
        Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "pdeathsig::helper_daemon",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(MODE, "daemon")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let stdout = BufReader::new(helper.0.stdout.take().unwrap());
    let reader = std::thread::spawn(move || {
        let mut children = Vec::new();
        for line in stdout.lines() {
            let line = line.unwrap();
            // libtest prints "test pdeathsig::helper_daemon ... " without a newline before it.
            if let Some((_, pid)) = line.split_once("CHILD ") {
                children.push(pid.parse::<u32>().unwrap());
            } else if line == "READY" {
                return children;
            }
        }
        panic!("the helper daemon exited before it was ready");
    });
    let children = tokio::task::spawn_blocking(move || reader.join().unwrap())
        .await
        .unwrap();
    let expected = if current_is_root() { 2 } else { 1 };
    assert_eq!(children.len(), expected, "{children:?}");
    for &pid in &children {
        assert!(
            !crate::helpers::is_dead(pid),
            "service {pid} runs while the daemon lives"
        );
    }

    helper.0.kill().unwrap(); // SIGKILL: no destructor, no cleanup code runs in the daemon
    helper.0.wait().unwrap();

    for &pid in &children {
        assert!(
            wait_dead(pid, Duration::from_secs(3)).await,
            "service {pid} survived its daemon's death"
        );
    }
    if !current_is_root() {
        eprintln!("note: not root, so the death signal after a uid drop was not exercised");
    }
}

/// Kills the helper daemon even when an assertion fails, so it never outlives the test run.
struct Helper(std::process::Child);

impl Drop for Helper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
