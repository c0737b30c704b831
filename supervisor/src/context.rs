//! What every actor shares: the home, the spawner thread, the event bus, the service user, the
//! other services' states (for dependencies), the watchdog, the secrets, the helper tasks.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use kojibox_config::user::ServiceUsers;
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
    /// Who runs the services (when the daemon is root: a user of their own, or one shared).
    pub(crate) users: ServiceUsers,
    /// Every service's state, for dependencies to watch (changed when the installed set of
    /// services does).
    pub(crate) states: RwLock<BTreeMap<String, watch::Receiver<ServiceState>>>,
    /// Ends the service groups if the daemon dies.
    pub(crate) watchdog: Option<Arc<Watchdog>>,
    /// Secret values for `${secret.*}`, looked up at spawn time.
    pub(crate) vault: Arc<Vault>,
    /// Helper tasks (log pumps, the end of a cancelled spawn), awaited at shutdown.
    pub(crate) tasks: TaskTracker,
}

impl Context {
    /// The state of service `id`, to watch, while it is supervised.
    pub(crate) fn state_of(&self, id: &str) -> Option<watch::Receiver<ServiceState>> {
        self.states
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(id)
            .cloned()
    }

    /// The user service `id` runs as (`None`: the daemon's own), made at its first start when
    /// each service has its own; `Err`: why it cannot run (a message naming the fix). Blocking.
    pub(crate) fn user_for(&self, id: &str) -> Result<Option<kojibox_proc::User>, String> {
        let (user, problem) = match &self.users {
            ServiceUsers::Daemon => (None, None),
            ServiceUsers::Shared { user, problem } => (Some(user.clone()), problem.clone()),
            ServiceUsers::Own => kojibox_config::user::own_user(&self.home, id)
                .map(|(user, problem)| (Some(user), problem))
                .map_err(|e| e.to_string())?,
        };
        problem.map_or(Ok(user), Err)
    }
}
