//! The event hub behind `GET /events`.
//!
//! One hub task takes every event off the daemon's bus, gives it the next id, keeps it in a
//! bounded replay buffer, and hands it to each connected client through that client's own
//! bounded queue. An event is serialized once, when a client first sends it: a flood of log
//! lines nobody watches costs the hub no JSON. A client whose queue is full (a slow or stalled consumer) is
//! dropped, never waited for; it can reconnect with `Last-Event-ID` and get what it missed, as
//! long as the buffer still holds it.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, OnceLock};

use kojibox_manifests::event::Event;
use tokio::sync::{broadcast, mpsc};

use crate::bus::{Batches, Next};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Events kept for replay.
pub const REPLAY: usize = 4096;
/// Events queued per client before it counts as stalled and is dropped.
pub const CLIENT_QUEUE: usize = 1024;

/// One numbered event.
#[derive(Debug)]
pub struct Entry {
    /// Increasing id.
    pub id: u64,
    /// The contract's event name.
    pub name: &'static str,
    event: Event,
    /// The payload as JSON, made on first use.
    data: OnceLock<String>,
}

impl Entry {
    /// The payload as JSON (serialized once, whoever asks first).
    pub fn data(&self) -> &str {
        self.data
            .get_or_init(|| self.event.data_json().unwrap_or_else(|_| "null".into()))
    }
}

/// The hub.
#[derive(Default)]
pub struct EventHub {
    state: Mutex<HubState>,
}

#[derive(Default)]
struct HubState {
    next_id: u64,
    ring: VecDeque<Arc<Entry>>,
    clients: Vec<mpsc::Sender<Arc<Entry>>>,
}

impl EventHub {
    /// Starts a hub fed by `bus`, its feeder a task of `tasks` (it ends when the bus closes or
    /// `stop` is cancelled).
    pub fn start(
        bus: broadcast::Receiver<Event>,
        tasks: &TaskTracker,
        stop: CancellationToken,
    ) -> Arc<EventHub> {
        let hub = Arc::new(EventHub::default());
        // Ids start from the clock (microseconds), so they keep increasing across daemon
        // restarts: a client reconnecting to a new daemon with an old `Last-Event-ID` is
        // replayed everything the new one buffered, never handed ids it has already seen.
        if let Ok(mut state) = hub.state.lock() {
            state.next_id = u64::try_from(jiff::Timestamp::now().as_microsecond()).unwrap_or(0);
        }
        let feeder = Arc::clone(&hub);
        tasks.spawn(async move {
            let mut batches = Batches::new(bus);
            // Lost events (the bus outran us) are gone; ids stay increasing.
            while let Next::Events { events, .. } = batches.next(&stop).await {
                for event in events {
                    feeder.publish(event);
                }
            }
        });
        hub
    }

    /// Numbers, buffers and fans out one event.
    pub fn publish(&self, event: Event) {
        let Ok(mut state) = self.state.lock() else {
            return;
        };
        state.next_id += 1;
        let entry = Arc::new(Entry {
            id: state.next_id,
            name: event.name(),
            event,
            data: OnceLock::new(),
        });
        if state.ring.len() == REPLAY {
            state.ring.pop_front();
        }
        state.ring.push_back(Arc::clone(&entry));
        state
            .clients
            .retain(|client| client.try_send(Arc::clone(&entry)).is_ok());
    }

    /// Registers a client: the events after `last_id` still buffered, then a live queue.
    pub fn subscribe(&self, last_id: Option<u64>) -> (Vec<Arc<Entry>>, mpsc::Receiver<Arc<Entry>>) {
        let (tx, rx) = mpsc::channel(CLIENT_QUEUE);
        let Ok(mut state) = self.state.lock() else {
            return (vec![], rx);
        };
        let replay = match last_id {
            Some(last) => state.ring.iter().filter(|e| e.id > last).cloned().collect(),
            None => vec![],
        };
        state.clients.push(tx);
        (replay, rx)
    }

    /// Ends every client's stream (the daemon is stopping).
    pub fn close(&self) {
        if let Ok(mut state) = self.state.lock() {
            state.clients.clear();
        }
    }

    /// Connected clients (for tests and diagnostics).
    pub fn clients(&self) -> usize {
        self.state
            .lock()
            .map(|s| s.clients.iter().filter(|c| !c.is_closed()).count())
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kojibox_manifests::event::UpdateAvailable;

    fn event(n: u32) -> Event {
        Event::UpdateAvailable(UpdateAvailable {
            version: format!("1.0.{n}"),
        })
    }

    #[test]
    fn ids_increase_and_replay_starts_after_the_last_seen() {
        let hub = EventHub::default();
        for n in 0..5 {
            hub.publish(event(n));
        }
        let (replay, _rx) = hub.subscribe(Some(3));
        let ids: Vec<u64> = replay.iter().map(|e| e.id).collect();
        assert_eq!(ids, [4, 5]);
        assert_eq!(replay[0].name, "update:available");
        assert_eq!(replay[0].data(), r#"{"version":"1.0.3"}"#);
        let (replay, _rx) = hub.subscribe(None);
        assert!(replay.is_empty());
    }

    #[test]
    fn a_stalled_client_is_dropped_and_the_rest_keep_receiving() {
        let hub = EventHub::default();
        let (_, stalled) = hub.subscribe(None);
        let (_, mut live) = hub.subscribe(None);
        for n in 0..(CLIENT_QUEUE as u32 + 5) {
            hub.publish(event(n));
            while let Ok(e) = live.try_recv() {
                assert!(e.id > 0);
            }
        }
        assert_eq!(hub.clients(), 1, "the stalled client was dropped");
        drop(stalled);
    }

    #[test]
    fn replay_is_bounded() {
        let hub = EventHub::default();
        for n in 0..(REPLAY as u32 + 10) {
            hub.publish(event(n));
        }
        let (replay, _rx) = hub.subscribe(Some(0));
        assert_eq!(replay.len(), REPLAY);
        assert_eq!(replay[0].id, 11);
    }
}
