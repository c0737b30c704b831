//! `GET /events`: Server-Sent Events with increasing integer ids, the contract's event names and
//! payloads; `Last-Event-ID` replays exactly what a client missed; a consumer that stops reading
//! is dropped and never slows the daemon down.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use kojibox_manifests::api::methods;
use kojibox_manifests::event::Event;
use serde_json::json;

use super::{Api, Sse, WAIT, eventually, python};
use crate::support::Fixture;

/// Fails unless every event has a contract name and a payload of the contract's type, and the
/// ids count up by one (a reader that keeps up misses nothing).
fn well_formed(events: &[Sse]) {
    for event in events {
        assert!(Event::NAMES.contains(&event.name.as_str()), "{event:?}");
        let typed = Event::from_parts(&event.name, event.data.clone())
            .unwrap_or_else(|e| panic!("not the contract's payload: {e}: {event:?}"));
        assert_eq!(typed.data().unwrap(), event.data, "extra fields: {event:?}");
    }
    for pair in events.windows(2) {
        assert_eq!(pair[1].id, pair[0].id + 1, "ids must count up: {pair:#?}");
    }
}

/// The states `id` went through, in order (a state published again with a new pid counts once).
fn states_of<'a>(events: &'a [Sse], id: &str) -> Vec<&'a str> {
    let mut states: Vec<&str> = events
        .iter()
        .filter(|e| e.name == "service:stateChanged" && e.data["id"] == id)
        .map(|e| e.data["state"].as_str().unwrap())
        .collect();
    states.dedup();
    states
}

#[test]
fn state_changes_and_log_lines_stream_and_a_reconnect_gets_exactly_what_it_missed() {
    let api = Api::boot(&[]);
    let mut witness = api.events(None);
    let mut stream = api.events(None);
    assert_eq!(stream.status, 200, "{}", stream.head);
    let head = stream.head.to_ascii_lowercase();
    assert!(head.contains("content-type: text/event-stream"), "{head}");

    let answer = api.rpc("services.start", json!({"id": "worker"}));
    assert_eq!(answer["result"]["state"], "starting", "{answer}");
    let (mut running, mut lines) = (false, 0);
    let seen = stream.until("worker running, then 3 of its lines", |e| {
        running |= e.is_state("worker", "running");
        lines += usize::from(running && e.is_line_of("worker"));
        lines == 3
    });
    well_formed(&seen);
    assert_eq!(
        states_of(&seen, "worker"),
        ["starting", "running"],
        "{seen:#?}"
    );
    let pid = seen
        .iter()
        .find(|e| e.is_state("worker", "running"))
        .unwrap()
        .data["pid"]
        .clone();
    assert!(pid.is_u64(), "running with a pid: {pid}");
    let ticks: Vec<&Sse> = seen
        .iter()
        .filter(|e| e.is_line_of("worker") && e.data["fields"]["stream"] == "stdout")
        .collect();
    assert!(ticks.len() >= 3, "{seen:#?}");
    for tick in &ticks {
        assert!(
            tick.data["message"].as_str().unwrap().starts_with("tick "),
            "{tick:?}"
        );
        assert_eq!(tick.data["level"], "info", "{tick:?}");
        assert_eq!(tick.data["fields"]["pid"], pid.to_string(), "{tick:?}");
    }

    // Disconnect, act, reconnect from the last id seen.
    let last = seen.last().unwrap().id;
    drop(stream);
    let answer = api.rpc("services.stop", json!({"id": "worker"}));
    assert_eq!(answer["result"]["state"], "stopping", "{answer}");
    let stopped = witness.until("worker stopped", |e| e.is_state("worker", "stopped"));
    well_formed(&stopped);
    let missed: Vec<Sse> = stopped.into_iter().filter(|e| e.id > last).collect();
    assert_eq!(
        states_of(&missed, "worker"),
        ["stopping", "stopped"],
        "{missed:#?}"
    );

    let mut again = api.events(Some(last));
    assert_eq!(again.status, 200, "{}", again.head);
    let replay = again.until("worker stopped", |e| e.is_state("worker", "stopped"));
    assert_eq!(
        replay.first().map(|e| e.id),
        Some(last + 1),
        "ids continue: {replay:#?}"
    );
    assert_eq!(replay, missed, "the replay is exactly what was missed");
}

/// A service that prints `BURST` lines of 2 kB at once, then `burst done`, then sleeps.
fn chatty() -> Fixture {
    let script = r#"PYTHON -c '
pad = "x" * 2000
for i in range(12000):
    print("burst", i, pad)
print("burst done")
'
exec sleep 300"#
        .replace("PYTHON", python());
    Fixture::new("chatty", &script)
}

#[test]
fn a_stalled_consumer_is_dropped_and_never_slows_the_daemon() {
    let api = Api::boot(&[chatty()]);
    // Connected, then never read until the end: its socket and queue fill up.
    let mut stalled = api.events(None);
    assert_eq!(stalled.status, 200, "{}", stalled.head);
    let done = AtomicBool::new(false);
    std::thread::scope(|scope| {
        let probe = scope.spawn(|| {
            let mut slowest = (Duration::ZERO, "");
            let mut calls = 0;
            while !done.load(Ordering::Relaxed) {
                let started = Instant::now();
                api.list();
                slowest = slowest.max((started.elapsed(), "services.list"));
                let started = Instant::now();
                api.call::<methods::ServicesLogs>(json!({"id": "chatty", "tail": 5}));
                slowest = slowest.max((started.elapsed(), "services.logs"));
                calls += 2;
                std::thread::sleep(Duration::from_millis(10));
            }
            (slowest, calls)
        });

        let started = Instant::now();
        api.rpc("services.start", json!({"id": "chatty"}));
        // The last line of the burst, or a note of kojibox's (its health verdict) after it.
        let last_lines = || {
            let tail = api.call::<methods::ServicesLogs>(json!({"id": "chatty", "tail": 3}));
            tail.into_iter().map(|e| e.message).collect::<Vec<_>>()
        };
        let ended = eventually(WAIT, || last_lines().iter().any(|m| m == "burst done"));
        if !ended {
            done.store(true, Ordering::Relaxed);
        }
        assert!(ended, "the burst did not end: {:?}", last_lines());
        let burst = started.elapsed();

        // Events still flow at once to a reader that reads.
        let mut fresh = api.events(None);
        api.rpc("services.stop", json!({"id": "chatty"}));
        let seen = fresh.until("chatty stopped", |e| e.is_state("chatty", "stopped"));
        assert_eq!(
            states_of(&seen, "chatty"),
            ["stopping", "stopped"],
            "{:#?}",
            seen.iter().map(|e| (e.id, &e.name)).collect::<Vec<_>>()
        );
        let newest = seen.last().unwrap().id;

        // The stalled stream holds what was buffered for it, then ends: it was dropped.
        let mut got: Vec<Sse> = Vec::new();
        loop {
            match stalled.read_event() {
                Ok(Some(event)) => got.push(event),
                Ok(None) => break,
                Err(e) => panic!(
                    "the stalled consumer was never dropped: after {} buffered events (last id {:?}) \
                     its stream neither went on nor ended ({e})",
                    got.len(),
                    got.last().map(|e| e.id)
                ),
            }
        }
        assert!(stalled.ended(), "the server ended the chunked body");
        assert!(!got.is_empty(), "it was connected before the burst");
        for pair in got.windows(2) {
            assert_eq!(pair[1].id, pair[0].id + 1, "a gapless prefix, then nothing");
        }
        assert!(
            got.last().unwrap().id < newest,
            "it missed what came after it was dropped"
        );
        assert!(
            !got.iter().any(|e| e.data["message"] == "burst done"),
            "it was dropped during the burst"
        );

        done.store(true, Ordering::Relaxed);
        let ((slowest, method), calls) = probe.join().unwrap();
        eprintln!(
            "burst of 12000 lines took {burst:?}; the stalled stream got {} events before it was dropped; {calls} calls, slowest {method} {slowest:?}",
            got.len()
        );
        assert!(calls >= 10, "only {calls} calls went through");
        assert!(
            slowest < Duration::from_secs(1),
            "{method} took {slowest:?} while a consumer stalled"
        );
    });
}
