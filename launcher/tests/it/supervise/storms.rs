//! Restart storms are damped: a service that exits at once with `backoffMs: 0` is not respawned
//! in a tight loop, shows as flapping, and its `lastError` tells of its last run only.

use std::time::Duration;

use kojibox_manifests::event::Event;
use kojibox_manifests::model::ServiceStatus;

use super::{WAIT, harness, policy, read_ns};
use crate::support::Fixture;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_zero_backoff_crash_loop_is_damped_and_shows_as_flapping() {
    let script = r#"date +%s%N >> "$DATA/spawns"; exit 1"#;
    let looping = Fixture::new("looping", script).template(|t| t.restart_policy = policy(1000, 0));
    let h = harness(&[looping]).await;
    h.sup.start_service("looping").await.unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let spawns = read_ns(&h.data("looping", "spawns"));
    // A floor of 250 ms doubling: spawns at about 0, 0.25, 0.75 and 1.75 s. Without one, a
    // process that exits at once is spawned well over a hundred times a second.
    assert!(
        (3..=5).contains(&spawns.len()),
        "{} spawns in 2 s with backoffMs 0",
        spawns.len()
    );
    let gaps: Vec<u64> = spawns
        .windows(2)
        .map(|w| (w[1] - w[0]) / 1_000_000)
        .collect();
    assert!(gaps.iter().all(|gap| *gap >= 200), "gaps in ms: {gaps:?}");
    let state = h.sup.state("looping").unwrap();
    assert_eq!(state.state, ServiceStatus::Starting);
    assert!(
        state.flapping && state.restarts >= 3,
        "after {} restarts in a row: {state:?}",
        state.restarts
    );
    assert!(
        h.saw(|e| matches!(e, Event::ServiceStateChanged(s) if s.id == "looping" && s.flapping))
            .await,
        "no service:stateChanged says it is flapping"
    );
    assert!(
        h.log("looping")
            .iter()
            .any(|l| l.starts_with("flapping: failed 3 times in a row")),
        "{:#?}",
        h.log("looping")
    );
    // A manual stop and start begins afresh.
    h.sup.stop_service("looping").await.unwrap();
    h.sup
        .wait_for("looping", WAIT, |s| s.state == ServiceStatus::Stopped)
        .await
        .unwrap();
    let again = h.sup.start_service("looping").await.unwrap();
    assert!(!again.flapping && again.restarts == 0, "{again:?}");
    h.sup.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn last_error_tells_of_the_last_run_only() {
    // The first run explains itself and fails; the second fails without a word.
    let script = r#"if [ ! -e "$DATA/ran" ]; then
  touch "$DATA/ran"
  echo "first run: config missing" >&2
  exit 1
fi
exit 2"#;
    let twice = Fixture::new("twice", script).template(|t| t.restart_policy = policy(1, 0));
    let h = harness(&[twice]).await;
    h.sup.start_service("twice").await.unwrap();
    let end = h
        .sup
        .wait_for("twice", WAIT, |s| s.state == ServiceStatus::Error)
        .await
        .unwrap();
    let why = end.last_error.unwrap();
    assert_eq!(
        why,
        "exited with status 2; last output: (no output) (gave up after 1 restart(s) in a row)"
    );
    // The first run's words are still in its log.
    assert!(
        h.log("twice")
            .iter()
            .any(|l| l == "first run: config missing"),
        "{:#?}",
        h.log("twice")
    );
    h.sup.shutdown().await;
}
