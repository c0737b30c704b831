//! Start times and the services a previous daemon left behind.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use kojibox_proc::{
    LeftoverOutcome, Record, Spawner, forget, process_start_time, reap_leftovers, record,
};

use crate::helpers::{cleanup, is_dead, lines, next_line, sh, stat_field, wait_dead};

#[test]
fn start_time_of_a_process_whose_name_has_spaces_and_parens() {
    let dir = tempfile::tempdir().unwrap();
    let odd = dir.path().join("a (b) c");
    std::fs::copy("/bin/sleep", &odd).unwrap();
    let mut plain = Command::new("/bin/sleep").arg("30").spawn().unwrap();
    let mut weird = Command::new(&odd).arg("30").spawn().unwrap();
    // The kernel renames the task a moment after the spawning parent resumes: wait for it.
    let comm_path = format!("/proc/{}/comm", weird.id());
    let deadline = std::time::Instant::now() + Duration::from_secs(3);
    let mut comm = String::new();
    while std::time::Instant::now() < deadline {
        comm = std::fs::read_to_string(&comm_path).unwrap();
        if comm == "a (b) c\n" {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(
        comm, "a (b) c\n",
        "the premise: comm holds spaces and parentheses"
    );

    let plain_start = process_start_time(plain.id()).unwrap();
    let weird_start = process_start_time(weird.id()).unwrap();
    // Started back to back: within a second (100 ticks at the usual USER_HZ) of each other, and
    // after this test process. A parser that splits at the first ')' reads another field here.
    assert!(
        weird_start.abs_diff(plain_start) < 100,
        "{weird_start} vs {plain_start}"
    );
    assert!(weird_start >= process_start_time(std::process::id()).unwrap());
    assert_eq!(weird_start.to_string(), stat_field(weird.id(), 22).unwrap());

    for child in [&mut plain, &mut weird] {
        child.kill().unwrap();
        child.wait().unwrap();
    }
    assert_eq!(
        process_start_time(weird.id()),
        None,
        "no process, no start time"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reaping_ends_recorded_groups_and_spares_reused_pids() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state/services");
    let spawner = Spawner::new().unwrap();

    // A leftover service with a grandchild, recorded exactly.
    let mut service = spawner
        .spawn(sh("sleep 60 & echo $!; wait", Path::new("/")))
        .await
        .unwrap();
    let (mut out, _err) = lines(&mut service);
    let grandchild: u32 = next_line(&mut out).await.parse().unwrap();
    let exact = Record {
        id: "db".into(),
        pid: service.pid,
        pgid: service.pid,
        start_time: service.start_time,
    };
    record(&state, &exact).unwrap();

    // A live process whose pid matches a record but whose start time does not: a reused pid.
    let stranger = spawner
        .spawn(sh("exec sleep 60", Path::new("/")))
        .await
        .unwrap();
    let reused = Record {
        id: "cache".into(),
        pid: stranger.pid,
        pgid: stranger.pid,
        start_time: stranger.start_time + 1,
    };
    record(&state, &reused).unwrap();

    // A service that is gone, a record that is garbage, and one forgotten again.
    let mut gone = Command::new("/bin/true").spawn().unwrap();
    let gone_pid = gone.id();
    gone.wait().unwrap();
    let gone_record = Record {
        id: "mail".into(),
        pid: gone_pid,
        pgid: gone_pid,
        start_time: 1,
    };
    record(&state, &gone_record).unwrap();
    std::fs::write(state.join("junk.pid"), "pid=twelve\n\0\u{1}").unwrap();
    std::fs::write(state.join(".db.pid.77.tmp"), "id=db\npid=").unwrap(); // a crash mid-write
    record(
        &state,
        &Record {
            id: "old".into(),
            ..exact.clone()
        },
    )
    .unwrap();
    forget(&state, "old").unwrap();

    let found = reap_leftovers(&state, Duration::from_secs(3)).await;
    let ids: Vec<&str> = found.iter().map(|l| l.id.as_str()).collect();
    assert_eq!(ids, ["cache", "db", "junk", "mail"], "{found:#?}");

    assert_eq!(
        found[0].outcome,
        LeftoverOutcome::PidReused {
            start_time: stranger.start_time
        }
    );
    assert!(
        !is_dead(stranger.pid),
        "a process with another start time is never touched"
    );

    let LeftoverOutcome::Terminated(done) = &found[1].outcome else {
        panic!("the recorded service was not ended: {found:#?}");
    };
    assert!(!done.needed_kill && done.remaining.is_empty(), "{done:?}");
    assert_eq!(found[1].record.as_ref(), Some(&exact));
    assert!(
        wait_dead(grandchild, Duration::from_secs(1)).await,
        "its group went with it"
    );
    let _ = service.child.wait().await;

    assert!(
        matches!(found[2].outcome, LeftoverOutcome::Unreadable { .. }),
        "{found:#?}"
    );
    assert_eq!(
        found[3].outcome,
        LeftoverOutcome::Gone { group_left: vec![] }
    );
    assert_eq!(
        std::fs::read_dir(&state).unwrap().count(),
        0,
        "every record is removed"
    );

    assert!(
        reap_leftovers(&dir.path().join("missing"), Duration::ZERO)
            .await
            .is_empty()
    );
    cleanup(stranger).await;
}
