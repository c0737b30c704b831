//! What every actor shares: the home, the spawner thread, the event bus, the service user, the
//! other services' states (for dependencies), the watchdog, the secrets, the helper tasks.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use kojibox_home::Home;
use kojibox_manifests::event::Event;
use kojibox_manifests::model::ServiceState;
use kojibox_proc::Watchdog;
use kojibox_secrets::Vault;
use tokio::sync::{broadcast, watch};
use tokio_util::task::TaskTracker;

/// What every actor shares.
pub(crate) struct Context {
    /// The home.
    pub(crate) home: Home,
    /// Spawns every child from one long-lived thread.
    pub(crate) spawner: kojibox_proc::Spawner,
    /// The event bus.
    pub(crate) events: broadcast::Sender<Event>,
    /// Where running services are recorded for leftover cleanup.
    pub(crate) records: PathBuf,
    /// The user services run as (when the daemon is root).
    pub(crate) user: Option<kojibox_proc::User>,
    /// Why services cannot run as that user, when they cannot.
    pub(crate) user_problem: Option<String>,
    /// Every service's state, for dependencies to watch.
    pub(crate) states: OnceLock<BTreeMap<String, watch::Receiver<ServiceState>>>,
    /// Ends the service groups if the daemon dies.
    pub(crate) watchdog: Option<Arc<Watchdog>>,
    /// Secret values for `${secret.*}`, looked up at spawn time.
    pub(crate) vault: Arc<Vault>,
    /// Helper tasks (log pumps, the end of a cancelled spawn), awaited at shutdown.
    pub(crate) tasks: TaskTracker,
}
