//! What an update asks of the running services, through [`Services`]: the supervisor implements
//! it (in `kojibox-supervisor`), [`NoServices`] stands for "no daemon runs". So the updater never
//! names the supervisor, and the supervisor depends on the runtime, not the other way round.

use std::future::Future;
use std::time::Duration;

use kojibox_manifests::model::{RuntimeManifest, ServiceState, ServiceStatus};

use crate::error::{Error, Result};

/// How long a restarted service has to become healthy.
pub const HEALTH_TIMEOUT: Duration = Duration::from_secs(90);
/// How long restarted services must stay running before the update counts as good.
pub const SETTLE: Duration = Duration::from_secs(1);

/// The running services, as an update sees them.
pub trait Services: Send + Sync {
    /// Whether services run at all. False when no daemon runs: then nothing is restarted or
    /// health-checked (nothing runs on the old version either).
    fn present(&self) -> bool {
        true
    }

    /// A service's state, if there is such a service.
    fn state(&self, id: &str) -> Option<ServiceState>;

    /// Restarts a service (`services.restart`).
    fn restart(&self, id: &str) -> impl Future<Output = Result<ServiceState>> + Send;

    /// Starts a service (`services.start`).
    fn start(&self, id: &str) -> impl Future<Output = Result<ServiceState>> + Send;

    /// Waits until a service is `running` or `error`, at most `timeout`.
    fn settled(
        &self,
        id: &str,
        timeout: Duration,
    ) -> impl Future<Output = Result<ServiceState>> + Send;

    /// The installed manifest was switched: supervise the services it adds (stopped), stop and
    /// drop those it no longer has. Answers the dropped services that were running or starting
    /// (a rollback starts them again).
    fn reload(&self) -> impl Future<Output = Result<Vec<String>>> + Send;
}

/// No daemon runs: the home is updated directly, and nothing is restarted.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoServices;

impl Services for NoServices {
    fn present(&self) -> bool {
        false
    }

    fn state(&self, _id: &str) -> Option<ServiceState> {
        None
    }

    async fn restart(&self, id: &str) -> Result<ServiceState> {
        Err(no_daemon(id))
    }

    async fn start(&self, id: &str) -> Result<ServiceState> {
        Err(no_daemon(id))
    }

    async fn settled(&self, id: &str, _timeout: Duration) -> Result<ServiceState> {
        Err(no_daemon(id))
    }

    async fn reload(&self) -> Result<Vec<String>> {
        Ok(Vec::new())
    }
}

fn no_daemon(id: &str) -> Error {
    Error::NotFound {
        detail: format!("no daemon runs: service `{id}` is not supervised"),
    }
}

/// Ids of this machine's services whose version differs between two manifests.
pub(crate) fn changed_services(old: &RuntimeManifest, new: &RuntimeManifest) -> Vec<String> {
    let on_host = |m: &RuntimeManifest| -> Vec<(String, String)> {
        crate::installed::host_services(m)
            .map(|s| (s.name.clone(), s.version.clone()))
            .collect()
    };
    let old = on_host(old);
    on_host(new)
        .into_iter()
        .filter(|(name, version)| !old.iter().any(|(n, v)| n == name && v == version))
        .map(|(name, _)| name)
        .collect()
}

/// Restarts those of `ids` that are running or starting, adding each to `restarted` as it is
/// asked (so that on an error, the ones already on the new version are known).
pub(crate) async fn restart(
    services: &impl Services,
    ids: &[String],
    restarted: &mut Vec<String>,
) -> Result<()> {
    for id in ids {
        let Some(state) = services.state(id) else {
            continue;
        };
        if matches!(
            state.state,
            ServiceStatus::Running | ServiceStatus::Starting
        ) {
            restarted.push(id.clone());
            services.restart(id).await?;
        }
    }
    Ok(())
}

/// Starts `ids` again on the (restored) installed version, whatever state the failed update
/// left them in.
pub(crate) async fn bring_back(services: &impl Services, ids: &[String]) -> Result<()> {
    for id in ids {
        let state = services.state(id).ok_or_else(|| Error::NotFound {
            detail: format!("service `{id}` is gone"),
        })?;
        match state.state {
            ServiceStatus::Running | ServiceStatus::Starting => {
                services.restart(id).await?;
            }
            ServiceStatus::Stopping | ServiceStatus::Stopped | ServiceStatus::Error => {
                services.start(id).await?;
            }
        }
    }
    Ok(())
}

/// Waits until every one of `ids` is running and still is after [`SETTLE`].
pub(crate) async fn healthy(
    services: &impl Services,
    ids: &[String],
) -> std::result::Result<(), String> {
    for id in ids {
        let state = services
            .settled(id, HEALTH_TIMEOUT)
            .await
            .map_err(|e| format!("{id} did not become healthy: {e}"))?;
        if state.state != ServiceStatus::Running {
            return Err(format!(
                "{id} did not become healthy: {}",
                state.last_error.unwrap_or_else(|| "it failed".into())
            ));
        }
    }
    tokio::time::sleep(SETTLE).await;
    for id in ids {
        let state = services
            .state(id)
            .ok_or_else(|| format!("service `{id}` is gone"))?;
        if state.state != ServiceStatus::Running {
            return Err(format!(
                "{id} stopped right after starting: {}",
                state.last_error.unwrap_or_else(|| "it failed".into())
            ));
        }
    }
    Ok(())
}
