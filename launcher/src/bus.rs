//! Reading the daemon's event bus in batches.
//!
//! A service that floods its output puts hundreds of thousands of `service:logLine` events a
//! second on the bus. A receiver that woke for each one would spend a core on wake-ups alone, on
//! the same cores as the service. [`Batches`] hands out everything already waiting (up to
//! [`BATCH`] events) per wake-up, and after a full batch waits [`PAUSE`] before the next one, so
//! that under a flood a receiver wakes a few hundred times a second and events arrive at most
//! [`PAUSE`] late. The bus holds 4096 events, more than arrive in a pause at any rate measured
//! (`bench/logs.sh`); past that a receiver is told how many it lost, as before.

use std::time::Duration;

use kojibox_manifests::event::Event;
use tokio::sync::broadcast::{self, error::RecvError, error::TryRecvError};
use tokio_util::sync::CancellationToken;

/// Most events handed out at once.
pub const BATCH: usize = 256;
/// Wait after a full batch.
pub const PAUSE: Duration = Duration::from_millis(2);

/// What [`Batches::next`] found.
#[derive(Debug)]
pub enum Next {
    /// At least one event.
    Events {
        /// The events, in bus order.
        events: Vec<Event>,
        /// How many were lost (the bus outran the receiver) before them.
        lagged: u64,
    },
    /// The bus is closed: every sender is gone.
    Closed,
    /// `stop` was cancelled.
    Stopped,
}

/// A bus receiver read in batches.
pub struct Batches {
    rx: broadcast::Receiver<Event>,
    full: bool,
}

impl Batches {
    /// Reads `rx`.
    pub fn new(rx: broadcast::Receiver<Event>) -> Batches {
        Batches { rx, full: false }
    }

    /// The next events: waits for one (or `stop`), then takes what else is waiting.
    pub async fn next(&mut self, stop: &CancellationToken) -> Next {
        if self.full {
            tokio::select! {
                biased;
                () = stop.cancelled() => return Next::Stopped,
                () = tokio::time::sleep(PAUSE) => {}
            }
        }
        let mut lagged = 0;
        let first = loop {
            let received = tokio::select! {
                biased;
                () = stop.cancelled() => return Next::Stopped,
                received = self.rx.recv() => received,
            };
            match received {
                Ok(event) => break event,
                Err(RecvError::Lagged(n)) => lagged += n,
                Err(RecvError::Closed) => return Next::Closed,
            }
        };
        let mut events = vec![first];
        while events.len() < BATCH {
            match self.rx.try_recv() {
                Ok(event) => events.push(event),
                Err(TryRecvError::Lagged(n)) => lagged += n,
                Err(TryRecvError::Empty | TryRecvError::Closed) => break,
            }
        }
        self.full = events.len() == BATCH;
        Next::Events { events, lagged }
    }

    /// Whatever is still waiting, without waiting (after `stop`).
    pub fn drain(&mut self) -> Vec<Event> {
        let mut events = Vec::new();
        loop {
            match self.rx.try_recv() {
                Ok(event) => events.push(event),
                Err(TryRecvError::Lagged(_)) => {}
                Err(TryRecvError::Empty | TryRecvError::Closed) => return events,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kojibox_manifests::event::UpdateAvailable;

    fn event(n: usize) -> Event {
        Event::UpdateAvailable(UpdateAvailable {
            version: format!("1.0.{n}"),
        })
    }

    fn versions(events: &[Event]) -> Vec<String> {
        events
            .iter()
            .map(|e| match e {
                Event::UpdateAvailable(u) => u.version.clone(),
                other => panic!("{other:?}"),
            })
            .collect()
    }

    #[tokio::test]
    async fn waiting_events_come_in_order_in_batches_of_at_most_batch() {
        let (tx, rx) = broadcast::channel(4096);
        let mut batches = Batches::new(rx);
        let stop = CancellationToken::new();
        for n in 0..BATCH + 10 {
            tx.send(event(n)).unwrap();
        }
        let Next::Events { events, lagged } = batches.next(&stop).await else {
            panic!()
        };
        assert_eq!((events.len(), lagged), (BATCH, 0));
        let Next::Events { events: rest, .. } = batches.next(&stop).await else {
            panic!()
        };
        let all: Vec<String> = versions(&events)
            .into_iter()
            .chain(versions(&rest))
            .collect();
        let expected: Vec<String> = (0..BATCH + 10).map(|n| format!("1.0.{n}")).collect();
        assert_eq!(all, expected);
        drop(tx);
        assert!(matches!(batches.next(&stop).await, Next::Closed));
    }

    #[tokio::test]
    async fn lost_events_are_counted_and_stop_ends_a_wait() {
        let (tx, rx) = broadcast::channel(4);
        let mut batches = Batches::new(rx);
        let stop = CancellationToken::new();
        for n in 0..10 {
            tx.send(event(n)).unwrap();
        }
        let Next::Events { events, lagged } = batches.next(&stop).await else {
            panic!()
        };
        assert_eq!(lagged, 6);
        assert_eq!(versions(&events), ["1.0.6", "1.0.7", "1.0.8", "1.0.9"]);
        stop.cancel();
        assert!(matches!(batches.next(&stop).await, Next::Stopped));
        tx.send(event(10)).unwrap();
        assert_eq!(versions(&batches.drain()), ["1.0.10"]);
    }
}
