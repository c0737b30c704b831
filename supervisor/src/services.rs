//! The supervisor as an update sees it: [`kojibox_runtime::update::Services`].

use std::time::Duration;

use kojibox_manifests::model::{ServiceState, ServiceStatus};
use kojibox_runtime::update::Services;

use crate::Supervisor;

fn to_runtime(e: crate::Error) -> kojibox_runtime::Error {
    kojibox_runtime::Error::Services(Box::new(e))
}

impl Services for Supervisor {
    fn state(&self, id: &str) -> Option<ServiceState> {
        Supervisor::state(self, id).ok()
    }

    async fn restart(&self, id: &str) -> kojibox_runtime::Result<ServiceState> {
        self.restart_service(id).await.map_err(to_runtime)
    }

    async fn start(&self, id: &str) -> kojibox_runtime::Result<ServiceState> {
        self.start_service(id).await.map_err(to_runtime)
    }

    async fn reload(&self) -> kojibox_runtime::Result<Vec<String>> {
        let before = self.list();
        let reloaded = Supervisor::reload(self).await.map_err(to_runtime)?;
        Ok(reloaded
            .removed
            .into_iter()
            .filter(|id| {
                before.iter().any(|s| {
                    &s.id == id
                        && matches!(s.state, ServiceStatus::Running | ServiceStatus::Starting)
                })
            })
            .collect())
    }

    async fn settled(&self, id: &str, timeout: Duration) -> kojibox_runtime::Result<ServiceState> {
        self.wait_for(id, timeout, |s| {
            matches!(s.state, ServiceStatus::Running | ServiceStatus::Error)
        })
        .await
        .map_err(to_runtime)
    }
}
