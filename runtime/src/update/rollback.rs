//! `updater.rollback` (`kojibox update rollback`): back to the version before the last update.

use kojibox_home::task::blocking;
use kojibox_home::{Home, LockName};
use kojibox_manifests::event::Event;

use super::progress::{Emit, phase};
use super::services::{Services, changed_services, healthy, restart};
use crate::error::{Error, Result};
use crate::journal;

/// What `rollback` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RolledBack {
    /// The version installed now.
    pub version: String,
    /// kojibox itself was put back: the running process must restart to use it.
    pub self_updated: bool,
}

/// Back to the version before the last update (its payloads and signed index are still in the
/// home), restarting the services whose version changes. The watermark stays: the channel will
/// offer the newer version again. When that update replaced kojibox itself, the previous
/// executable comes back too.
pub async fn rollback(home: &Home, services: &impl Services, emit: &Emit) -> Result<RolledBack> {
    let h = home.clone();
    blocking(move || journal::recover_interrupted(&h).map(drop)).await?;
    let _lock = home.lock(LockName::Update)?;
    let h = home.clone();
    let last = blocking(move || journal::last(&h))
        .await?
        .ok_or_else(|| Error::NotFound {
            detail: "no update to roll back: none went through since the last rollback".into(),
        })?;
    let previous = last.previous.clone();
    let h = home.clone();
    let current = blocking(move || crate::installed::get_manifest(&h)).await?;
    if current.version != last.to {
        return Err(Error::NotFound {
            detail: format!(
                "{} is installed, not {}, the last update's version: nothing to roll back",
                current.version, last.to
            ),
        });
    }
    phase(emit, "rollback", 10);
    let (h, p) = (home.clone(), previous.clone());
    blocking(move || {
        crate::activate::reactivate(&h, &p)?;
        journal::forget_last(&h);
        Ok::<_, Error>(())
    })
    .await?;
    if services.present() {
        let mut ids = Vec::new();
        // Services only the newer version had are stopped and dropped; those only the older one
        // has are supervised again (stopped).
        services.reload().await?;
        restart(services, &changed_services(&current, &previous), &mut ids).await?;
        healthy(services, &ids)
            .await
            .map_err(|detail| Error::UpdateFailed {
                detail: format!("rolled back to {}, but {detail}", last.from),
            })?;
    }
    // The update replaced kojibox too: the one before comes back.
    let self_updated = if last.replaced_kojibox {
        let h = home.clone();
        blocking(move || super::self_replace::restore_previous(&h)).await?
    } else {
        false
    };
    if self_updated {
        phase(emit, "self-update", 100);
    }
    phase(emit, "done", 100);
    emit(Event::RuntimeUpdated(previous));
    Ok(RolledBack {
        version: last.from,
        self_updated,
    })
}
