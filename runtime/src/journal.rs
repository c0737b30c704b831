//! The update journal: the installer's transaction log for an update.
//!
//! Before an update installs, [`begin`] writes `app/state/update/journal.json`, which holds the
//! manifest to go back to. A process killed at any point leaves it, and whatever runs next in
//! the home ([`recover_interrupted`], run first by every install, by `verify`, by the daemon's
//! start and by `kojibox update`) rolls a switched-but-unproven update back, so a home is always
//! on one version, never a mix. A proven update turns the journal into
//! `app/state/update/last.json` ([`prove`]), the record `rollback` uses; an update that never
//! switched drops it ([`abandon`]). Each file is written atomically, so the manifest to go back to
//! and the versions it belongs to never disagree.

use kojibox_home::fs::{read_json, write_json};
use kojibox_home::{Home, LockName};
use kojibox_manifests::model::RuntimeManifest;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// An update in progress (`journal.json`), or the last one that went through (`last.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Journal {
    /// The version updated from.
    pub from: String,
    /// The version updated to.
    pub to: String,
    /// When the update started.
    pub started_at: String,
    /// The manifest to go back to.
    pub previous: RuntimeManifest,
    /// The update replaced kojibox itself (the one before is `kojibox.prev`).
    #[serde(default)]
    pub replaced_kojibox: bool,
}

/// Whether an update was interrupted (its journal is there): until it is recovered, the
/// installed version is unproven (the installer then leaves the watermark alone).
pub fn interrupted(home: &Home) -> bool {
    home.update_journal().exists()
}

/// Starts an update from `previous` (the installed manifest) to `to`: writes the journal.
pub fn begin(home: &Home, previous: &RuntimeManifest, to: &str) -> Result<Journal> {
    let journal = Journal {
        from: previous.version.clone(),
        to: to.to_owned(),
        started_at: kojibox_home::clock::now(),
        previous: previous.clone(),
        replaced_kojibox: false,
    };
    write_json(home, &home.update_journal(), &journal)?;
    Ok(journal)
}

/// The update proved itself: the journal becomes the record `rollback` uses, then goes.
pub fn prove(home: &Home, journal: &Journal) -> Result<()> {
    write_json(home, &home.last_update(), journal)?;
    let path = home.update_journal();
    std::fs::remove_file(&path).map_err(Error::io("remove", &path))
}

/// Records in `last.json` that the proven update also replaced kojibox itself.
pub fn record_self_update(home: &Home, journal: &Journal) -> Result<()> {
    let journal = Journal {
        replaced_kojibox: true,
        ..journal.clone()
    };
    Ok(write_json(home, &home.last_update(), &journal)?)
}

/// The update is over without a switch to keep (nothing was switched, or it was switched back):
/// the journal goes.
pub fn abandon(home: &Home) {
    let _ = std::fs::remove_file(home.update_journal());
}

/// The last update that went through, if `rollback` may still undo it.
pub fn last(home: &Home) -> Result<Option<Journal>> {
    Ok(read_json(&home.last_update())?)
}

/// `rollback` went back: there is nothing left to roll back.
pub fn forget_last(home: &Home) {
    let _ = std::fs::remove_file(home.last_update());
}

/// Finishes what an interrupted update left: a switched but unproven update is rolled back to
/// the previous version. Returns notes for the user. Does nothing while an update runs.
pub fn recover_interrupted(home: &Home) -> Result<Vec<String>> {
    let path = home.update_journal();
    let Some(journal) = read_json::<Journal>(&path)? else {
        return Ok(vec![]);
    };
    let _lock = match home.lock(LockName::Update) {
        Ok(lock) => lock,
        Err(e) if e.is_busy() => return Ok(vec![]),
        Err(e) => return Err(e.into()),
    };
    let manifest = read_json::<RuntimeManifest>(&home.manifest())?;
    let back = |e: Error| Error::UpdateFailed {
        detail: format!(
            "an update from {} to {} was interrupted and switching back to {} failed: {e} \
             (the journal {} stays; every start tries again)",
            journal.from,
            journal.to,
            journal.from,
            path.display()
        ),
    };
    let note = match manifest {
        // Switched (or switching back when it was killed): the previous version, whole.
        Some(current) if current.version == journal.to || current.version == journal.from => {
            crate::activate::reactivate(home, &journal.previous).map_err(back)?;
            if current.version == journal.to {
                format!(
                    "an update from {} to {} was interrupted after the switch: rolled back to {}",
                    journal.from, journal.to, journal.from
                )
            } else {
                format!(
                    "an update from {} to {} was interrupted before the switch: {} is installed",
                    journal.from, journal.to, journal.from
                )
            }
        }
        Some(current) => format!(
            "an update from {} to {} was interrupted; {} is installed",
            journal.from, journal.to, current.version
        ),
        None => format!(
            "an update from {} to {} was interrupted",
            journal.from, journal.to
        ),
    };
    std::fs::remove_file(&path).map_err(Error::io("remove", &path))?;
    Ok(vec![note])
}
