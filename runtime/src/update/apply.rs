//! `updater.apply`: a [plan](super::plan), then its steps, each keeping its fault point:
//! [`fetch`] the bundle, [`switch`] to it (journal, install), [`prove`] it (restart and health),
//! [`roll_back`] when it does not prove itself, else [`commit`] it and [`replace_kojibox`].

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use kojibox_home::fault;
use kojibox_home::task::blocking;
use kojibox_home::{Home, LockName};
use kojibox_manifests::event::Event;
use kojibox_manifests::model::{RuntimeManifest, UpdateChannel};

use super::download::download_until;
use super::plan::{PlanKind, UpdatePlan, plan};
use super::progress::{Emit, phase};
use super::self_replace::replace_self;
use super::services::{Services, bring_back, changed_services, healthy, restart};
use crate::error::{Error, Result};
use crate::journal::{self, Journal};

/// What a good update did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Applied {
    /// kojibox itself was replaced: the running process must restart to use it.
    pub self_updated: bool,
}

/// `updater.apply(version)`: see the module documentation of [`crate::update`]. `services`: the
/// running services ([`super::NoServices`] when no daemon runs: then nothing is restarted, and
/// the caller holds the daemon lock and has recovered an interrupted update first).
pub async fn apply(
    home: &Home,
    channel: UpdateChannel,
    version: &str,
    services: &impl Services,
    emit: &Emit,
) -> Result<Applied> {
    apply_until(home, channel, version, services, emit, Arc::default()).await
}

/// [`apply`], whose download stops once `cancelled` is set (the daemon received SIGTERM): an
/// update that has not switched yet is given up, its partial download kept. Once the bundle is
/// downloaded the update goes to its end (its later steps are bounded).
pub async fn apply_until(
    home: &Home,
    channel: UpdateChannel,
    version: &str,
    services: &impl Services,
    emit: &Emit,
    cancelled: Arc<AtomicBool>,
) -> Result<Applied> {
    let _lock = home.lock(LockName::Update)?;
    phase(emit, "check", 0);
    let (h, v) = (home.clone(), version.to_owned());
    let plan = blocking(move || plan(&h, channel, &v)).await?;
    if plan.kind == PlanKind::SelfOnly {
        let h = home.clone();
        let self_updated = blocking(move || {
            let manifest = crate::installed::get_manifest(&h)?;
            replace_self(&h, &manifest)
        })
        .await?;
        phase(emit, "done", 100);
        return Ok(Applied { self_updated });
    }
    let bundle = fetch(home, &plan, emit, cancelled).await?;
    phase(emit, "verify", 50);
    let (journal, old) = switch(home, &plan, &bundle, emit).await?;
    let h = home.clone();
    let new = blocking(move || crate::installed::get_manifest(&h)).await?;
    let mut restarted = Vec::new();
    let proven = prove(&plan, &old, &new, services, &mut restarted, emit).await;
    fault::point("update:after-health");
    if let Err(why) = proven {
        return Err(roll_back(home, &plan, &old, services, &restarted, why, emit).await);
    }
    commit(home, &journal, &bundle).await?;
    let self_updated = replace_kojibox(home, &plan, &journal, &new, emit).await?;
    phase(emit, "done", 100);
    emit(Event::RuntimeUpdated(new));
    Ok(Applied { self_updated })
}

/// Downloads the bundle (5 to 50 percent), checking it against the signed index.
async fn fetch(
    home: &Home,
    plan: &UpdatePlan,
    emit: &Emit,
    cancelled: Arc<AtomicBool>,
) -> Result<PathBuf> {
    phase(emit, "download", 5);
    let (h, source, index, e) = (
        home.clone(),
        plan.source.clone(),
        plan.index.clone(),
        Arc::clone(emit),
    );
    blocking(move || {
        let mut last = 5;
        let mut progress = |have: u64, total: u64| {
            let percent = 5 + (45 * have / total.max(1)).min(45) as u8;
            if percent != last {
                last = percent;
                phase(&e, "download", percent);
            }
        };
        download_until(&h, &source, &index, &mut progress, &|| {
            cancelled.load(Ordering::SeqCst)
        })
    })
    .await
}

/// Writes the journal, then installs the bundle beside the current version (the installer
/// verifies its signature against the pinned keys and switches the manifest with one rename).
/// Returns the journal and the manifest switched from.
async fn switch(
    home: &Home,
    plan: &UpdatePlan,
    bundle: &std::path::Path,
    emit: &Emit,
) -> Result<(Journal, RuntimeManifest)> {
    let (h, to) = (home.clone(), plan.to.clone());
    let (journal, old) = blocking(move || {
        let old = crate::installed::get_manifest(&h)?;
        let journal = journal::begin(&h, &old, &to)?;
        Ok::<_, Error>((journal, old))
    })
    .await?;
    fault::point("update:before-install");
    phase(emit, "install", 60);
    let (h, b, v) = (home.clone(), bundle.to_owned(), plan.to.clone());
    let installed = blocking(move || {
        let options = crate::install::InstallOptions {
            defer_watermark: true,
            ..Default::default()
        };
        crate::install::install(&h, &b, &options, &mut |_| {}).map_err(|e| match e {
            Error::Bundle(_) | Error::Key(_) => Error::UpdateSignatureInvalid {
                detail: format!("Signature verification failed for version {v}: {e}"),
            },
            other => other,
        })
    })
    .await;
    if let Err(e) = installed {
        // Nothing was switched (the installer commits with one rename, last).
        journal::abandon(home);
        return Err(e);
    }
    fault::point("update:after-switch");
    Ok((journal, old))
}

/// Supervises the services the new version adds and stops those it drops, restarts the
/// services whose version changed and that were running, and waits until they are healthy (75
/// to 90 percent). `Err` says why the update does not count as good. `restarted` gets every
/// service that must run again if the update is rolled back.
async fn prove(
    plan: &UpdatePlan,
    old: &RuntimeManifest,
    new: &RuntimeManifest,
    services: &impl Services,
    restarted: &mut Vec<String>,
    emit: &Emit,
) -> std::result::Result<(), String> {
    phase(emit, "restart", 75);
    if new.version != plan.to {
        return Err(format!(
            "the bundle the index names installs version {}, not {}",
            new.version, plan.to
        ));
    }
    if !services.present() {
        return Ok(());
    }
    // Dropped services that ran come back on a rollback.
    let dropped = services
        .reload()
        .await
        .map_err(|e| format!("the services of {} cannot be supervised: {e}", plan.to))?;
    restarted.extend(dropped.iter().cloned());
    let changed = changed_services(old, new);
    match restart(services, &changed, restarted).await {
        Ok(()) => {
            phase(emit, "health", 90);
            let running: Vec<String> = restarted
                .iter()
                .filter(|id| !dropped.contains(id))
                .cloned()
                .collect();
            healthy(services, &running).await
        }
        Err(e) => Err(e.to_string()),
    }
}

/// Switches back to `old` and starts the services restarted on the new version again on it.
/// Returns the error the update answers (`UPDATE_FAILED`).
async fn roll_back(
    home: &Home,
    plan: &UpdatePlan,
    old: &RuntimeManifest,
    services: &impl Services,
    restarted: &[String],
    why: String,
    emit: &Emit,
) -> Error {
    phase(emit, "rollback", 95);
    let (h, o) = (home.clone(), old.clone());
    if let Err(e) = blocking(move || crate::activate::reactivate(&h, &o)).await {
        return Error::UpdateFailed {
            detail: format!(
                "{why}; switching back to {} failed too: {e} (the journal stays: the next start \
                 tries again)",
                plan.from
            ),
        };
    }
    // The old version's services are supervised again (a dropped one comes back), then every
    // service restarted on the new version (even if another then failed) goes back.
    if let Err(e) = services.reload().await {
        journal::abandon(home);
        phase(emit, "failed", 100);
        return Error::UpdateFailed {
            detail: format!(
                "{why}; rolled back to {}, but its services cannot be supervised again: {e} \
                 (restart the daemon)",
                plan.from
            ),
        };
    }
    let back = if restarted.is_empty() {
        Ok(())
    } else {
        match bring_back(services, restarted).await {
            Ok(()) => healthy(services, restarted).await,
            Err(e) => Err(e.to_string()),
        }
    };
    journal::abandon(home);
    phase(emit, "failed", 100);
    Error::UpdateFailed {
        detail: match back {
            Ok(()) => format!(
                "{why}; rolled back: {} is running again (update to {} refused)",
                plan.from, plan.to
            ),
            Err(again) => format!(
                "{why}; rolled back to {}, but it did not come back either: {again}",
                plan.from
            ),
        },
    }
}

/// The update proved itself: the journal becomes the record `rollback` uses, the watermark
/// rises, the download goes.
async fn commit(home: &Home, journal: &Journal, bundle: &std::path::Path) -> Result<()> {
    let (h, j, b) = (home.clone(), journal.clone(), bundle.to_owned());
    blocking(move || {
        journal::prove(&h, &j)?;
        crate::activate::raise_watermark(&h, &j.to)?;
        let _ = std::fs::remove_file(&b);
        Ok(())
    })
    .await
}

/// Last, once everything else verified and runs: kojibox itself, when the bundle carries a
/// different one for this machine.
async fn replace_kojibox(
    home: &Home,
    plan: &UpdatePlan,
    journal: &Journal,
    new: &RuntimeManifest,
    emit: &Emit,
) -> Result<bool> {
    let (h, m) = (home.clone(), new.clone());
    let version = plan.to.clone();
    let self_updated = blocking(move || replace_self(&h, &m)).await.map_err(|e| {
        Error::UpdateFailed {
            detail: format!(
                "the runtime is on {version} and healthy, but kojibox could not replace itself: {e}"
            ),
        }
    })?;
    if self_updated {
        let (h, j) = (home.clone(), journal.clone());
        blocking(move || journal::record_self_update(&h, &j)).await?;
        phase(emit, "self-update", 100);
    }
    Ok(self_updated)
}
