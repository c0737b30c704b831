//! What an install is asked to do, and what it reports.

use std::path::PathBuf;

/// What to install and how.
#[derive(Debug, Clone, Default)]
pub struct InstallOptions {
    /// A public key to trust (and pin) for this bundle.
    pub pubkey: Option<PathBuf>,
    /// Install every target's payloads, not only this machine's.
    pub all_targets: bool,
    /// Allow a bundle older than the installed one.
    pub allow_downgrade: bool,
    /// Allow a bundle whose version is installed already but from a different signed index
    /// (a rebuild that kept its version): without it, such a bundle is refused, naming what
    /// would change.
    pub replace: bool,
    /// Leave the rollback watermark alone (an update raises it once the new version is
    /// healthy, with [`crate::activate::raise_watermark`]).
    pub defer_watermark: bool,
}

/// What an install did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstallReport {
    /// The bundle's version.
    pub version: String,
    /// False when the same bundle was already installed (nothing was written).
    pub changed: bool,
    /// Payloads extracted (`postgres 16.14 linux-x64`).
    pub installed: Vec<String>,
    /// Payloads already present and kept.
    pub kept: Vec<String>,
    /// The key that signed the bundle.
    pub key_id: String,
    /// True when that key was pinned by this install.
    pub pinned: bool,
    /// What recovery found and did before the install.
    pub recovered: Vec<String>,
}
