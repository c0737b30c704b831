//! Non-contract settings (`app/config/settings.json`), re-read whenever they are used.

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::home::Home;

/// Launcher settings that are not part of the contract's `AppConfig`. Unknown keys are kept
/// out of the way of older launchers by being ignored.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Settings {
    /// The bundle `installer.start` installs (a path, absolute or home-relative).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub install_source: Option<String>,
}

impl Settings {
    /// Reads the settings; missing file = defaults.
    pub fn load(home: &Home) -> Result<Settings> {
        Ok(crate::fsutil::read_json(&home.config().join("settings.json"))?.unwrap_or_default())
    }
}
