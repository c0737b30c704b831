//! Stopping: SIGTERM to the whole process group, SIGKILL after the stop timeout, and nothing of
//! the group left behind, neither when a service is stopped nor when its main process crashes.

use std::path::Path;
use std::time::{Duration, Instant};

use kojibox_manifests::model::ServiceStatus;

use super::{WAIT, alive, eventually, harness, kill, policy, read_pid, sup_shutdown};
use crate::support::Fixture;

/// The running (non-zombie) processes of group `pgid`.
pub fn group(pgid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for pid in crate::support::pids() {
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
        if fields[2] == pgid.to_string() && !matches!(fields[0], "Z" | "X") {
            out.push(pid);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_child_ignoring_sigterm_is_killed_after_the_stop_timeout() {
    let script = "trap '' TERM\necho ready\nwhile :; do sleep 1; done";
    let stubborn = Fixture::new("stubborn", script).template(|t| t.stop_timeout_ms = Some(500));
    let h = harness(&[stubborn]).await;
    h.sup.start_service("stubborn").await.unwrap();
    let pid = h.running("stubborn").await.pid.unwrap();
    assert!(
        eventually(WAIT, || h.log("stubborn").contains(&"ready".to_owned())).await,
        "the trap must be set before the stop"
    );
    assert!(!group(pid).is_empty());

    let started = Instant::now();
    let answer = h.sup.stop_service("stubborn").await.unwrap();
    assert_eq!(
        answer.state,
        ServiceStatus::Stopping,
        "stop answers at once"
    );
    h.sup
        .wait_for("stubborn", WAIT, |s| s.state == ServiceStatus::Stopped)
        .await
        .unwrap();
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(500) && took < Duration::from_secs(3),
        "stop took {took:?}"
    );
    assert_eq!(
        group(pid),
        Vec::<u32>::new(),
        "no process of the group is left"
    );
    let reaped = || !Path::new(&format!("/proc/{pid}")).exists();
    assert!(
        eventually(Duration::from_secs(1), reaped).await,
        "the child must be reaped, not left a zombie"
    );
    assert!(
        eventually(Duration::from_secs(1), || h.log("stubborn").iter().any(
            |l| l.contains("did not stop within 500 ms of SIGTERM; killed")
        ))
        .await,
        "{:?}",
        h.log("stubborn")
    );
    sup_shutdown(h.sup).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grandchild_dies_with_its_group() {
    let plain = r#"sleep 300 &
echo $! > "$DATA/grandchild"
wait"#;
    let h = harness(&[
        Fixture::new("plain", plain),
        Fixture::new("crashing", plain).template(|t| t.restart_policy = policy(2, 100)),
    ])
    .await;
    for id in ["plain", "crashing"] {
        h.sup.start_service(id).await.unwrap();
        h.running(id).await;
    }
    let plain_gc = read_pid(&h.data("plain", "grandchild")).await;
    let crashing_gc = read_pid(&h.data("crashing", "grandchild")).await;
    assert!(alive(plain_gc) && alive(crashing_gc));

    h.sup.stop_service("plain").await.unwrap();
    h.sup
        .wait_for("plain", WAIT, |s| s.state == ServiceStatus::Stopped)
        .await
        .unwrap();
    assert!(!alive(plain_gc), "the grandchild must die with its group");

    // The main process of a crashing service takes its group along before the restart.
    let crashing = h.sup.state("crashing").unwrap().pid.unwrap();
    std::fs::remove_file(h.data("crashing", "grandchild")).unwrap();
    kill(crashing, 9);
    let again = h
        .sup
        .wait_for("crashing", WAIT, |s| {
            s.state == ServiceStatus::Running && s.pid.is_some_and(|p| p != crashing)
        })
        .await
        .unwrap();
    assert!(
        eventually(Duration::from_secs(2), || !alive(crashing_gc)).await,
        "the crashed service's grandchild {crashing_gc} must not outlive it"
    );
    let new_gc = read_pid(&h.data("crashing", "grandchild")).await;
    assert!(alive(new_gc) && again.pid != Some(crashing));
    sup_shutdown(h.sup).await;
    assert!(!alive(new_gc));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopped_means_nothing_of_the_group_is_left() {
    // The main process stops at once on SIGTERM; its child ignores it.
    let deaf = r#"(trap '' TERM; exec sleep 300) &
echo $! > "$DATA/grandchild"
wait"#;
    let deaf = Fixture::new("deaf", deaf).template(|t| t.stop_timeout_ms = Some(1000));
    let h = harness(&[deaf]).await;
    h.sup.start_service("deaf").await.unwrap();
    h.running("deaf").await;
    let deaf_gc = read_pid(&h.data("deaf", "grandchild")).await;
    assert!(alive(deaf_gc));

    let started = Instant::now();
    h.sup.stop_service("deaf").await.unwrap();
    h.sup
        .wait_for("deaf", WAIT, |s| s.state == ServiceStatus::Stopped)
        .await
        .unwrap();
    let alive_when_stopped = alive(deaf_gc);
    let stopped_after = started.elapsed();
    assert!(
        eventually(Duration::from_secs(3), || !alive(deaf_gc)).await,
        "the SIGTERM-deaf grandchild must be killed after the stop timeout"
    );
    assert!(
        !alive_when_stopped,
        "deaf was reported stopped after {stopped_after:?} while its grandchild {deaf_gc} (which \
         ignores SIGTERM) still ran; it was killed only later, at the stop timeout"
    );
    sup_shutdown(h.sup).await;
}
