//! What the handlers share.

use std::sync::Arc;

use kojibox_home::Home;
use kojibox_manifests::event::Event;
use kojibox_secrets::Vault;
use kojibox_supervisor::Supervisor;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::hub::EventHub;
use super::sessions::Sessions;

/// What the handlers share.
pub struct AppState {
    /// The home.
    pub home: Home,
    /// The services.
    pub supervisor: Arc<Supervisor>,
    /// The event stream.
    pub hub: Arc<EventHub>,
    /// The event bus (for `config:changed`).
    pub events: broadcast::Sender<Event>,
    /// The secret store.
    pub vault: Arc<Vault>,
    /// The bearer token.
    pub token: String,
    /// Browser sessions.
    pub sessions: Sessions,
    /// The port the daemon listens on (for the Host and Origin checks).
    pub port: u16,
    /// Cancelled to make the daemon restart itself (after kojibox replaced itself).
    pub restart: CancellationToken,
    /// Set when the daemon begins to stop: an update still downloading gives up.
    pub stopping: Arc<std::sync::atomic::AtomicBool>,
    /// The daemon's tasks: work a request starts that must not be cut short (an update), and
    /// must end before the daemon does.
    pub tasks: TaskTracker,
    /// The background sampler `metrics.snapshot` answers from.
    pub metrics: Arc<crate::metrics::Sampler>,
    /// The daemon's own log (`app/logs/kojibox.jsonl`).
    pub journal: Arc<kojibox_supervisor::logs::LogSink>,
}
