//! Non-contract settings (`app/config/settings.json`), re-read whenever they are used.

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::layout::Home;

/// Launcher settings that are not part of the contract's `AppConfig`. Unknown keys are kept
/// out of the way of older launchers by being ignored.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Settings {
    /// Where updates come from: a repository folder (absolute or home-relative: a USB stick, a
    /// mounted share) or an `http://` / `https://` URL (any static server), as written by
    /// `kojibox-bundle publish`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub update_source: Option<String>,
    /// The bundle `installer.start` installs (a path, absolute or home-relative).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub install_source: Option<String>,
    /// The one user every service runs as when kojibox runs as root. Default: none, each
    /// service gets a user of its own (see `kojibox_proc::own_service_user`); a user named here
    /// is shared by every service, so they can read each other's environment and data.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_user: Option<String>,
    /// Accepts `serviceUser` `root` (or any uid 0 user): services then run with every privilege.
    /// Refused without it.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub allow_root_services: bool,
    /// Where the API listens (a loopback `address:port`; default `127.0.0.1:0`, any free port).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<String>,
}

impl Settings {
    /// Reads the settings; missing file = defaults.
    pub fn load(home: &Home) -> Result<Settings> {
        Ok(crate::fs::read_json(&home.settings_file())?.unwrap_or_default())
    }
}
