//! The home: the one folder everything kojibox writes lives in, and every path inside it.
//!
//! Chosen by `--home DIR`, else `KOJIBOX_HOME`, else portable mode (a file named
//! `kojibox.portable` beside the executable makes the executable's folder the home), else the
//! platform's user data folder (`~/.local/share/kojibox` on Linux). Every path stored inside the
//! home is relative to it, so a home can be moved or renamed.
//!
//! Each file and folder kojibox writes has one method here, so the layout is written down once:
//!
//! ```text
//! runtime/manifest.json              the installed RuntimeManifest (the commit point of installs)
//! runtime/indexes/<v>.json, <v>.sig  the signed index of every bundle installed
//! runtime/.staging/                  where an install extracts before anything is switched
//! runtime/services/<id>.json         service templates from the active index
//! runtime/config/<id>/<file>         their config file templates (rendered at each start into
//!                                    runtime/data/.<id>.config/)
//! runtime/bin/<name>/<v>/<os>-<arch>/  payloads (read-only once installed)
//! runtime/data/<id>/                 service data (never touched by install or update)
//! app/keys/                          pinned public keys
//! app/config/                        app.json, settings.json, ports.json, services/, projects/
//! app/secrets/                       secrets.json, key | key.locked | keyring.json
//! app/logs/                          <id>.jsonl (rotated <id>.N.jsonl), daemon.log
//! app/cache/updates/                 kojibox-<v>.kbx (.part while downloading)
//! app/cache/diag-<stamp>.zip         diagnostics zips (the newest 5 kept)
//! app/state/                         locks, api.json, api-token, installer.json, versions.json,
//!                                    resume.json, services/ (pid records), update/
//! ```

use std::path::{Path, PathBuf};

use kojibox_manifests::model::ServiceBinary;

use crate::error::{Error, Result};

/// A kojibox home.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Home {
    root: PathBuf,
}

/// How the home was chosen (for messages).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HomeSource {
    /// `--home`.
    Flag,
    /// `KOJIBOX_HOME`.
    Env,
    /// `kojibox.portable` beside the executable.
    Portable,
    /// The platform's data folder.
    Platform,
}

/// The file whose presence makes a folder a portable home (beside the executable, or in the home
/// itself).
pub const PORTABLE_MARKER: &str = "kojibox.portable";

impl Home {
    /// Resolves the home from the flag, the environment, portable mode or the platform.
    pub fn resolve(flag: Option<&Path>) -> Result<(Home, HomeSource)> {
        if let Some(dir) = flag {
            return Ok((Home::at(dir)?, HomeSource::Flag));
        }
        if let Some(dir) = std::env::var_os("KOJIBOX_HOME").filter(|v| !v.is_empty()) {
            return Ok((Home::at(Path::new(&dir))?, HomeSource::Env));
        }
        if let Some(dir) = std::env::current_exe()
            .ok()
            .and_then(|exe| exe.parent().map(Path::to_owned))
            && dir.join(PORTABLE_MARKER).is_file()
        {
            return Ok((Home::at(&dir)?, HomeSource::Portable));
        }
        let data = dirs::data_dir().ok_or_else(|| {
            Error::invalid(
                "No home folder",
                "this platform has no user data folder: pass --home DIR or set KOJIBOX_HOME",
            )
        })?;
        Ok((Home::at(&data.join("kojibox"))?, HomeSource::Platform))
    }

    /// The home at `dir` (made absolute; not created).
    pub fn at(dir: &Path) -> Result<Home> {
        let root = std::path::absolute(dir).map_err(Error::io("resolve", dir))?;
        Ok(Home { root })
    }

    /// The home folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `<home>/<rel>`: resolves a home-relative path (one a manifest or a setting names).
    pub fn join(&self, rel: impl AsRef<Path>) -> PathBuf {
        self.root.join(rel)
    }

    /// A home-relative, `/`-separated form of a path inside the home.
    pub fn rel(&self, path: &Path) -> String {
        path.strip_prefix(&self.root)
            .unwrap_or(path)
            .to_string_lossy()
            .replace('\\', "/")
    }

    /// `kojibox.portable` in the home itself: a portable home (keys stay in files).
    pub fn portable_marker(&self) -> PathBuf {
        self.join(PORTABLE_MARKER)
    }

    // --- runtime/ --------------------------------------------------------------------------

    /// `runtime/manifest.json`.
    pub fn manifest(&self) -> PathBuf {
        self.join("runtime/manifest.json")
    }

    /// `runtime/indexes/`: the signed index of every bundle installed, as `<version>.json` and
    /// `<version>.sig`, so an install can be re-verified.
    pub fn indexes(&self) -> PathBuf {
        self.join("runtime/indexes")
    }

    /// `runtime/indexes/<version>.json`: a bundle's signed index, byte for byte.
    pub fn index_file(&self, version: &str) -> PathBuf {
        self.indexes().join(format!("{version}.json"))
    }

    /// `runtime/indexes/<version>.sig`: its signature.
    pub fn index_signature(&self, version: &str) -> PathBuf {
        self.indexes().join(format!("{version}.sig"))
    }

    /// `runtime/.staging/`: where an install extracts before anything is switched.
    pub fn staging(&self) -> PathBuf {
        self.join("runtime/.staging")
    }

    /// `runtime/services/`: the service templates of the active index.
    pub fn services(&self) -> PathBuf {
        self.join("runtime/services")
    }

    /// `runtime/services/<id>.json`: one service's template.
    pub fn service_template(&self, id: &str) -> PathBuf {
        self.services().join(format!("{id}.json"))
    }

    /// `runtime/config/<id>/`: one service's config file templates, from the active index.
    pub fn config_templates(&self, id: &str) -> PathBuf {
        self.join("runtime/config").join(id)
    }

    /// `runtime/data/.<id>.config/`: one service's config files as rendered for its last start
    /// (`${config}`); beside its data folder, which setup programs want empty.
    pub fn rendered_config(&self, id: &str) -> PathBuf {
        self.join("runtime/data").join(format!(".{id}.config"))
    }

    /// `runtime/bin/<name>/<version>/<os>-<arch>/`: a payload folder.
    pub fn payload(&self, binary: &ServiceBinary) -> PathBuf {
        self.join(binary.payload_root())
    }

    /// `runtime/data/<id>/`: a service's data folder.
    pub fn data_dir(&self, id: &str) -> PathBuf {
        self.join("runtime/data").join(id)
    }

    // --- app/ ------------------------------------------------------------------------------

    /// `app/keys/`: pinned public keys.
    pub fn keys(&self) -> PathBuf {
        self.join("app/keys")
    }

    /// `app/config/`.
    pub fn config(&self) -> PathBuf {
        self.join("app/config")
    }

    /// `app/config/app.json`: the contract's `AppConfig`.
    pub fn app_config(&self) -> PathBuf {
        self.config().join("app.json")
    }

    /// `app/config/settings.json`: settings that are not the contract's.
    pub fn settings_file(&self) -> PathBuf {
        self.config().join("settings.json")
    }

    /// `app/config/ports.json`: the port registry.
    pub fn port_registry(&self) -> PathBuf {
        self.config().join("ports.json")
    }

    /// `app/config/services/`.
    pub fn service_configs(&self) -> PathBuf {
        self.config().join("services")
    }

    /// `app/config/services/<id>.json`: one service's settings.
    pub fn service_config(&self, id: &str) -> PathBuf {
        self.service_configs().join(format!("{id}.json"))
    }

    /// `app/config/projects/`.
    pub fn projects(&self) -> PathBuf {
        self.config().join("projects")
    }

    /// `app/config/projects/<id>.json`: one project.
    pub fn project_config(&self, id: &str) -> PathBuf {
        self.projects().join(format!("{id}.json"))
    }

    /// `app/secrets/` (mode 0700).
    pub fn secrets_dir(&self) -> PathBuf {
        self.join("app/secrets")
    }

    /// `app/secrets/secrets.json`: the encrypted store.
    pub fn secret_store(&self) -> PathBuf {
        self.secrets_dir().join("secrets.json")
    }

    /// `app/secrets/key`: the store's data key, when it is in a file (mode 0600).
    pub fn secret_key(&self) -> PathBuf {
        self.secrets_dir().join("key")
    }

    /// `app/secrets/key.locked`: the data key wrapped under a passphrase.
    pub fn secret_key_locked(&self) -> PathBuf {
        self.secrets_dir().join("key.locked")
    }

    /// `app/secrets/keyring.json`: which OS keyring entry holds the data key.
    pub fn secret_keyring_marker(&self) -> PathBuf {
        self.secrets_dir().join("keyring.json")
    }

    /// `app/logs/`.
    pub fn logs_dir(&self) -> PathBuf {
        self.join("app/logs")
    }

    /// `app/logs/<id>.jsonl`: one service's log (sealed segments `<id>.000001.jsonl` … beside
    /// it).
    pub fn service_log(&self, id: &str) -> PathBuf {
        self.logs_dir().join(format!("{id}.jsonl"))
    }

    /// `app/logs/exports/`: the files `logs.export` writes.
    pub fn logs_exports(&self) -> PathBuf {
        self.logs_dir().join("exports")
    }

    /// `app/logs/daemon.log`: what a daemon started by `kojibox up` prints.
    pub fn daemon_log(&self) -> PathBuf {
        self.logs_dir().join("daemon.log")
    }

    /// `app/cache/updates/`: downloaded update bundles.
    pub fn update_cache(&self) -> PathBuf {
        self.join("app/cache/updates")
    }

    /// `app/cache/updates/kojibox-<version>.kbx`: a complete, verified download.
    pub fn update_download(&self, version: &str) -> PathBuf {
        self.update_cache().join(format!("kojibox-{version}.kbx"))
    }

    /// `app/cache/updates/kojibox-<version>.kbx.part`: a download in progress.
    pub fn update_partial(&self, version: &str) -> PathBuf {
        self.update_cache()
            .join(format!("kojibox-{version}.kbx.part"))
    }

    /// `app/cache/`: where `diagnostics.create` writes its zips (the newest 5 are kept).
    pub fn diagnostics_dir(&self) -> PathBuf {
        self.join("app/cache")
    }

    /// `app/cache/diag-<stamp>.zip`: one diagnostics zip; `stamp` is file-name safe on every
    /// OS (`20261202T081500Z`, `20261202T081500Z-2` when that one exists).
    pub fn diagnostics_zip(&self, stamp: &str) -> PathBuf {
        self.diagnostics_dir().join(format!("diag-{stamp}.zip"))
    }

    /// `app/state/`.
    pub fn state(&self) -> PathBuf {
        self.join("app/state")
    }

    /// `app/state/installer.json`: the last install's phase and progress.
    pub fn installer_status(&self) -> PathBuf {
        self.state().join("installer.json")
    }

    /// `app/state/versions.json`: the rollback watermark.
    pub fn watermark_file(&self) -> PathBuf {
        self.state().join("versions.json")
    }

    /// `app/state/resume.json`: the services to start again after a self-update restart.
    pub fn resume_file(&self) -> PathBuf {
        self.state().join("resume.json")
    }

    /// `app/state/services/`: a record (pid, start time) per running service, for leftovers.
    pub fn service_records(&self) -> PathBuf {
        self.state().join("services")
    }

    /// `app/state/update/journal.json`: an update in progress.
    pub fn update_journal(&self) -> PathBuf {
        self.state().join("update/journal.json")
    }

    /// `app/state/update/last.json`: the last update that went through (for `rollback`).
    pub fn last_update(&self) -> PathBuf {
        self.state().join("update/last.json")
    }

    /// `app/state/update/kojibox.prev`: the kojibox executable a self-update replaced.
    pub fn previous_exe(&self) -> PathBuf {
        self.state().join("update/kojibox.prev")
    }

    /// `app/state/update/self-update-failed.json`: why the last self-update was undone.
    pub fn self_update_failed(&self) -> PathBuf {
        self.state().join("update/self-update-failed.json")
    }

    /// `app/state/api.json`: where the running daemon listens, and its pid.
    pub fn endpoint_file(&self) -> PathBuf {
        self.state().join("api.json")
    }

    /// `app/state/api-token`: the running daemon's bearer token (mode 0600).
    pub fn token_file(&self) -> PathBuf {
        self.state().join("api-token")
    }

    /// The folders kojibox writes with [`crate::fs::write_atomic`] and a daemon sweeps of the
    /// temporary files a killed writer left.
    pub fn temp_dirs(&self) -> Vec<PathBuf> {
        vec![
            self.config(),
            self.service_configs(),
            self.projects(),
            self.secrets_dir(),
        ]
    }
}
