//! Stopping: SIGTERM to the group, SIGKILL after the grace period, nothing left running.

use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::time::Duration;

use kojibox_proc::{Signal, Spawner, is_alive, signal_group, terminate_group};

use crate::helpers::{is_dead, lines, next_line, sh, stat_field, wait_dead};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grandchild_dies_with_its_group() {
    let spawner = Spawner::new().unwrap();
    let mut child = spawner
        .spawn(sh("sleep 60 & echo $!; wait", Path::new("/")))
        .await
        .unwrap();
    let (mut out, _err) = lines(&mut child);
    let grandchild: u32 = next_line(&mut out).await.parse().unwrap();
    assert_eq!(
        stat_field(grandchild, 5).unwrap(),
        child.pid.to_string(),
        "same group"
    );
    assert!(is_alive(grandchild));

    let done = terminate_group(child.pid, Duration::from_secs(5)).await;
    assert!(!done.needed_kill, "SIGTERM was enough: {done:?}");
    assert!(done.remaining.is_empty(), "{done:?}");
    assert!(done.elapsed < Duration::from_secs(2), "{done:?}");
    assert!(is_dead(grandchild), "the grandchild went with its group");
    assert!(!is_alive(grandchild));

    let status = child.child.wait().await.unwrap();
    assert_eq!(status.signal(), Some(15), "{status:?}");
    assert!(
        !Path::new(&format!("/proc/{}", child.pid)).exists(),
        "reaped: no zombie left"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_ignoring_sigterm_is_killed_after_the_grace_period() {
    let spawner = Spawner::new().unwrap();
    // `trap "" TERM` sets SIGTERM to ignored, which `sleep` inherits across exec.
    let mut child = spawner
        .spawn(sh(
            r#"trap "" TERM; echo ready; sleep 30; echo survived"#,
            Path::new("/"),
        ))
        .await
        .unwrap();
    let (mut out, _err) = lines(&mut child);
    assert_eq!(next_line(&mut out).await, "ready");

    let grace = Duration::from_millis(600);
    let done = terminate_group(child.pid, grace).await;
    assert!(done.needed_kill, "{done:?}");
    assert!(done.remaining.is_empty(), "{done:?}");
    assert!(
        done.elapsed >= grace,
        "waited the grace period first: {done:?}"
    );
    assert!(done.elapsed < grace + Duration::from_secs(2), "{done:?}");

    let status = child.child.wait().await.unwrap();
    assert_eq!(status.signal(), Some(9), "{status:?}");
    assert!(
        !Path::new(&format!("/proc/{}", child.pid)).exists(),
        "reaped: no zombie left"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signals_reach_the_group_and_dangerous_targets_are_refused() {
    let own_group: u32 = stat_field(std::process::id(), 5).unwrap().parse().unwrap();
    for pgid in [0, 1, own_group, u32::MAX] {
        assert!(
            signal_group(pgid, Signal::Term).is_err(),
            "pgid {pgid} must be refused"
        );
    }
    let refused = terminate_group(own_group, Duration::from_secs(5)).await;
    assert!(
        refused.elapsed < Duration::from_secs(1),
        "no waiting: {refused:?}"
    );
    assert!(
        refused.remaining.contains(&std::process::id()),
        "{refused:?}"
    );
    // pid_max is at most 2^22: no such group, which is not an error.
    signal_group(1 << 23, Signal::Term).unwrap();

    let spawner = Spawner::new().unwrap();
    let mut child = spawner
        .spawn(sh("echo ready; sleep 30", Path::new("/")))
        .await
        .unwrap();
    let (mut out, _err) = lines(&mut child);
    assert_eq!(next_line(&mut out).await, "ready");
    signal_group(child.pid, Signal::Hup).unwrap();
    let status = child.child.wait().await.unwrap();
    assert_eq!(status.signal(), Some(1), "{status:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zombies_are_not_alive() {
    assert!(is_alive(std::process::id()));
    let mut zombie = std::process::Command::new("/bin/true").spawn().unwrap();
    assert!(wait_dead(zombie.id(), Duration::from_secs(3)).await);
    assert_eq!(
        stat_field(zombie.id(), 3).as_deref(),
        Some("Z"),
        "exited, not reaped yet"
    );
    assert!(!is_alive(zombie.id()));
    zombie.wait().unwrap();
    assert!(!is_alive(zombie.id()));
}
