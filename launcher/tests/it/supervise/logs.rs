//! `services.logs`: each output line becomes a `LogEntry` (stream, pid, inferred level) in the
//! tail, in `app/logs/<id>.jsonl` and on the bus; a chatty child is not slowed down.

use std::time::{Duration, Instant};

use kojibox_manifests::event::Event;
use kojibox_manifests::model::{LogEntry, LogLevel};
use launcher::supervisor::logs::TAIL_LINES;

use super::{WAIT, eventually, harness, read_ns, sup_shutdown};
use crate::support::Fixture;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn output_lines_become_log_entries_with_stream_pid_and_level() {
    let script = r#"echo "hello from stdout"
echo "ERROR: something broke" >&2
echo "WARNING: disk almost full" >&2
echo "debug: tick"
exec sleep 300"#;
    let h = harness(&[Fixture::new("talker", script)]).await;
    h.sup.start_service("talker").await.unwrap();
    let pid = h.running("talker").await.pid.unwrap();
    let expected = [
        ("hello from stdout", "stdout", LogLevel::Info),
        ("ERROR: something broke", "stderr", LogLevel::Error),
        ("WARNING: disk almost full", "stderr", LogLevel::Warn),
        ("debug: tick", "stdout", LogLevel::Debug),
    ];
    let find = |entries: &[LogEntry], message: &str| {
        entries.iter().find(|e| e.message == message).cloned()
    };
    assert!(
        eventually(WAIT, || {
            let tail = h.sup.logs("talker", None).unwrap();
            expected.iter().all(|(m, ..)| find(&tail, m).is_some())
        })
        .await,
        "{:?}",
        h.log("talker")
    );
    let tail = h.sup.logs("talker", None).unwrap();
    for (message, stream, level) in expected {
        let entry = find(&tail, message).unwrap();
        assert_eq!(entry.service, "talker");
        assert_eq!(entry.fields["stream"], stream, "{entry:?}");
        assert_eq!(entry.fields["pid"], pid.to_string(), "{entry:?}");
        assert_eq!(entry.level, level, "{entry:?}");
    }
    // `tail` counts from the newest. The supervisor's own entries (health) may still land
    // between two reads, so compare once the log is quiet: the child is asleep by now.
    assert!(
        eventually(WAIT, || {
            let all = h.sup.logs("talker", None).unwrap();
            let two = h.sup.logs("talker", Some(2)).unwrap();
            let last_two: Vec<_> = all[all.len().saturating_sub(2)..]
                .iter()
                .map(|e| (&e.message, &e.ts))
                .collect();
            two.len() == 2
                && two.iter().map(|e| (&e.message, &e.ts)).collect::<Vec<_>>() == last_two
        })
        .await,
        "{:?}",
        h.sup.logs("talker", None)
    );

    // The same entries in app/logs/talker.jsonl (written through a buffer: poll).
    let file = h.env.at("app/logs/talker.jsonl");
    let in_file = || -> Vec<LogEntry> {
        std::fs::read_to_string(&file)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    assert!(
        eventually(WAIT, || expected
            .iter()
            .all(|(m, ..)| find(&in_file(), m).is_some()))
        .await,
        "{:?}",
        in_file()
    );
    let entry = find(&in_file(), "ERROR: something broke").unwrap();
    assert_eq!(
        (entry.fields["stream"].as_str(), entry.level),
        ("stderr", LogLevel::Error)
    );
    // And on the bus, as service:logLine.
    assert!(
        h.saw(|e| matches!(e, Event::ServiceLogLine(l)
            if l.message == "WARNING: disk almost full" && l.fields["stream"] == "stderr"))
            .await
    );
    sup_shutdown(h.sup).await;
}

/// 200 000 lines as fast as `seq` writes them; the script times itself.
const CHATTY: &str = r#"t0=$(date +%s%N)
seq -f 'chatty line %g' 1 200000
t1=$(date +%s%N)
echo "$t0 $t1" > "$DATA/timing"
exec sleep 300"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chatty_child_is_not_slowed_down() {
    // The reference: the same script with its output going to /dev/null (best of 3).
    let reference = (0..3)
        .map(|_| {
            let started = Instant::now();
            let status = std::process::Command::new("sh")
                .arg("-c")
                .arg(CHATTY.replace("exec sleep 300", "true"))
                .env("DATA", std::env::temp_dir())
                .stdout(std::process::Stdio::null())
                .status()
                .unwrap();
            assert!(status.success());
            started.elapsed()
        })
        .min()
        .unwrap();

    let h = harness(&[Fixture::new("chatty", CHATTY)]).await;
    // A subscriber that never reads: it must not hold anything up.
    let _slow = h.bus.subscribe();
    h.sup.start_service("chatty").await.unwrap();
    let timing = h.data("chatty", "timing");
    assert!(
        eventually(Duration::from_secs(30), || read_ns(&timing).len() == 2).await,
        "the chatty child did not finish within 30 s"
    );
    let [t0, t1] = read_ns(&timing)[..] else {
        panic!()
    };
    let took = Duration::from_nanos(t1 - t0);
    eprintln!("chatty: 200000 lines in {took:?} under the supervisor, {reference:?} to /dev/null");
    assert!(
        took <= reference * 3 + Duration::from_millis(300),
        "200 000 lines took {took:?} under the supervisor but {reference:?} to /dev/null"
    );

    // Every line is stored or counted as dropped (one warning per gap), the newest are kept,
    // and the tail stays bounded.
    let last = "chatty line 200000";
    assert!(
        eventually(WAIT, || h
            .sup
            .logs("chatty", Some(u32::MAX))
            .unwrap()
            .iter()
            .any(|e| e.message == last))
        .await
    );
    let tail = h.sup.logs("chatty", Some(u32::MAX)).unwrap();
    assert_eq!(tail.len(), TAIL_LINES, "the tail is bounded");
    assert!(tail.iter().any(|e| e.message == "chatty line 199000"));
    assert!(!tail.iter().any(|e| e.message == "chatty line 1"));
    sup_shutdown(h.sup).await;
    let (mut lines, mut dropped) = (0u64, 0u64);
    for segment in std::fs::read_dir(h.env.at("app/logs")).unwrap() {
        let path = segment.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if !name.starts_with("chatty.") {
            continue;
        }
        for line in std::fs::read_to_string(&path).unwrap().lines() {
            let entry: LogEntry = serde_json::from_str(line).unwrap();
            if entry.message.starts_with("chatty line ") {
                lines += 1;
            } else if let Some(n) = entry.fields.get("dropped") {
                assert_eq!(entry.level, LogLevel::Warn);
                dropped += n.parse::<u64>().unwrap();
            }
        }
    }
    eprintln!("chatty: {lines} lines stored, {dropped} dropped");
    assert_eq!(lines + dropped, 200_000, "every line is stored or counted");
}
