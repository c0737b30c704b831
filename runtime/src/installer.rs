//! `installer.start`: installs the bundle the settings name, else the newest `*.kbx` beside the
//! executable (the USB-stick case), trusting only keys already pinned.

use std::path::{Path, PathBuf};

use kojibox_manifests::api::Progress;

use kojibox_home::{Home, Settings};

use crate::error::{Error, Result};
use crate::install::{InstallOptions, InstallReport, install};

/// The bundle `installer.start` would install: `path` when given, else settings
/// `installSource`, else the newest `*.kbx` beside the executable. Relative paths are
/// home-relative.
pub fn source(home: &Home, path: Option<&str>) -> Result<PathBuf> {
    let named = match path {
        Some(path) => Some(path.to_owned()),
        None => Settings::load(home)?.install_source,
    };
    if let Some(named) = named {
        let path = Path::new(&named);
        return Ok(if path.is_absolute() {
            path.to_owned()
        } else {
            home.join(path)
        });
    }
    let exe = std::env::current_exe().map_err(Error::io("locate", "the kojibox executable"))?;
    let dir = exe.parent().unwrap_or(Path::new("."));
    let newest = std::fs::read_dir(dir)
        .map_err(Error::io("read folder", dir))?
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "kbx"))
        .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
        .max();
    newest.map(|(_, path)| path).ok_or_else(|| {
        Error::invalid(
            "No bundle to install",
            format!(
                "no installSource in settings and no *.kbx beside {}",
                exe.display()
            ),
        )
    })
}

/// `installer.start`: installs [`source`] with the pinned keys. While an update runs it answers
/// `BUSY` at once: it holds the update lock for the install's length (in the lock order, before
/// the install lock), so an install never lands between an update's switch and its health gate.
pub fn start(
    home: &Home,
    path: Option<&str>,
    progress: &mut dyn FnMut(&Progress),
) -> Result<InstallReport> {
    let bundle = source(home, path)?;
    let _update = home.lock(kojibox_home::LockName::Update)?;
    install(home, &bundle, &InstallOptions::default(), progress)
}
