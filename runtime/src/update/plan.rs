//! Planning an update: every check that needs no download, done before anything is fetched.

use kojibox_home::Home;
use kojibox_manifests::channel::ChannelIndex;
use kojibox_manifests::model::UpdateChannel;

use super::channel::check;
use super::source::{Source, source};
use crate::error::{Error, Result};

/// What an update will do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpdatePlan {
    /// The installed version.
    pub from: String,
    /// The version asked for (the channel's).
    pub to: String,
    /// The channel's verified index.
    pub index: ChannelIndex,
    /// Where the bundle comes from.
    pub source: Source,
    /// Whether there is a runtime to install at all.
    pub kind: PlanKind,
}

/// The two kinds of update.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlanKind {
    /// Download, install, prove (restart and health), commit, then replace kojibox if it changed.
    Full,
    /// Already on this version: only kojibox itself may still lag (a self-update that failed
    /// is retried this way).
    SelfOnly,
}

/// Checks an update of `home` to `version` on `channel`: the channel's index is fetched fresh and
/// verified and must offer exactly `version`, something must be installed, and `version` must
/// not be below the rollback watermark. Blocking (it reads the channel file).
pub fn plan(home: &Home, channel: UpdateChannel, version: &str) -> Result<UpdatePlan> {
    let offer = check(home, channel)?;
    if offer.index.version != version {
        return Err(Error::NotFound {
            detail: format!("the channel offers {}, not {version}", offer.index.version),
        });
    }
    let Some(from) = offer.installed.clone() else {
        return Err(Error::RuntimeMissing {
            detail: "nothing is installed: install a bundle first (kojibox install)".into(),
        });
    };
    let plan = |kind| {
        Ok(UpdatePlan {
            from: from.clone(),
            to: version.to_owned(),
            index: offer.index.clone(),
            source: source(home)?,
            kind,
        })
    };
    if from == version {
        return plan(PlanKind::SelfOnly);
    }
    let wanted = semver::Version::parse(version).map_err(|e| Error::UpdateFailed {
        detail: format!("`{version}` is not semver: {e}"),
    })?;
    if let Some(mark) = crate::activate::watermark(home)?
        && let Ok(mark) = semver::Version::parse(&mark)
        && wanted < mark
    {
        return Err(Error::UpdateRollbackRejected {
            detail: format!(
                "{version} is older than {mark}, the highest version ever installed here: an \
                 update never goes back"
            ),
        });
    }
    plan(PlanKind::Full)
}
