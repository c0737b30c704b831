//! What the daemon has to say while it runs, as values: the binary prints them (`kojibox
//! serve`'s terminal, or `app/logs/daemon.log` under `kojibox up`), a test reads them. The
//! library itself prints nothing.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use kojibox_manifests::event::Event;
use kojibox_manifests::model::ServiceStatus;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use crate::bus::{Batches, Next};

/// One thing the daemon tells whoever watches it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// Something found and done at start (recovery, cleanup, the secret store).
    Note(String),
    /// The API listens.
    Serving {
        /// The home.
        home: PathBuf,
        /// `http://127.0.0.1:PORT`.
        url: String,
        /// The supervised services, dependencies first.
        services: Vec<String>,
    },
    /// `--up` could not start a service.
    CouldNotStart {
        /// The service.
        id: String,
        /// Why.
        error: String,
    },
    /// After a self-update restart, a service that ran before could not start again.
    CouldNotResume {
        /// The service.
        id: String,
        /// Why.
        error: String,
    },
    /// A service changed state or health (`web: running (pid 42)`).
    Service(String),
    /// The narration fell behind and skipped events.
    Skipped(u64),
    /// The daemon stops its services.
    Stopping,
    /// Every service stopped; the daemon is about to exit.
    Stopped,
    /// kojibox replaced itself: the daemon restarts on the new executable.
    Restarting {
        /// The new executable.
        exe: PathBuf,
    },
}

impl fmt::Display for Notice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Notice::Note(note) => write!(f, "note: {note}"),
            Notice::Serving {
                home,
                url,
                services,
            } => write!(
                f,
                "kojibox serving {} on {url} ({} service(s): {}); Ctrl-C stops",
                home.display(),
                services.len(),
                if services.is_empty() {
                    "none installed".to_owned()
                } else {
                    services.join(", ")
                }
            ),
            Notice::CouldNotStart { id, error } => write!(f, "{id}: could not start: {error}"),
            Notice::CouldNotResume { id, error } => {
                write!(f, "{id}: could not start again after the restart: {error}")
            }
            Notice::Service(line) => f.write_str(line),
            Notice::Skipped(n) => write!(f, "({n} events skipped)"),
            Notice::Stopping => f.write_str("stopping services..."),
            Notice::Stopped => f.write_str("all services stopped"),
            Notice::Restarting { exe } => {
                write!(f, "kojibox was updated: restarting as {}", exe.display())
            }
        }
    }
}

/// Where notices go.
pub type Notices = Arc<dyn Fn(Notice) + Send + Sync>;

/// Tells `notices` each state change and health verdict on the bus, for a person watching the
/// terminal, until `stop`; then tells what is already on the bus and ends.
pub(crate) async fn narrate(
    rx: broadcast::Receiver<Event>,
    notices: Notices,
    stop: CancellationToken,
) {
    let tell = |events: Vec<Event>| {
        for event in &events {
            if let Some(line) = line(event) {
                notices(Notice::Service(line));
            }
        }
    };
    let mut batches = Batches::new(rx);
    loop {
        match batches.next(&stop).await {
            Next::Events { events, lagged } => {
                if lagged > 0 {
                    notices(Notice::Skipped(lagged));
                }
                tell(events);
            }
            Next::Stopped => return tell(batches.drain()),
            Next::Closed => return,
        }
    }
}

/// `web: running (pid 42)`, `web: error: exited with status 1`, `web: health healthy`.
fn line(event: &Event) -> Option<String> {
    match event {
        Event::ServiceStateChanged(s) => {
            let pid = s.pid.map(|p| format!(" (pid {p})")).unwrap_or_default();
            let why = match (s.state, &s.last_error) {
                (ServiceStatus::Error | ServiceStatus::Starting, Some(e)) => format!(": {e}"),
                _ => String::new(),
            };
            let why = if s.flapping {
                format!(" (flapping, restart {}){why}", s.restarts)
            } else {
                why
            };
            Some(format!("{}: {}{pid}{why}", s.id, s.state.as_str()))
        }
        Event::ServiceHealth(h) => Some(format!("{}: health {:?}", h.id, h.status).to_lowercase()),
        _ => None,
    }
}
