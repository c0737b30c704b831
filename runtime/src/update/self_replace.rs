//! Self-update: replacing the running kojibox executable with the one a bundle carries for this
//! machine (a payload named [`LAUNCHER_PAYLOAD`]), and putting the previous one back.

use kojibox_home::Home;
use kojibox_manifests::bundle::LAUNCHER_PAYLOAD;
use kojibox_manifests::model::RuntimeManifest;

use super::download::hash;
use crate::error::{Error, Result};

/// Replaces the running executable with the launcher the manifest carries for this machine,
/// when it carries one that differs. Returns whether it did.
pub fn replace_self(home: &Home, manifest: &RuntimeManifest) -> Result<bool> {
    let Some(binary) = manifest
        .services
        .iter()
        .find(|s| s.name == LAUNCHER_PAYLOAD && crate::installed::on_this_machine(s))
    else {
        return Ok(false);
    };
    // Re-hashed against the signed checksum: nothing altered on disk since the install runs.
    crate::installed::ensure_service(home, LAUNCHER_PAYLOAD, &binary.version)?;
    let new = home.join(&binary.bin_path);
    let current = std::env::current_exe().map_err(Error::io("find", "the kojibox executable"))?;
    if hash(&new)?.0 == hash(&current)?.0 {
        return Ok(false);
    }
    // It must at least run here before it replaces the one that does.
    let tried = std::process::Command::new(&new)
        .arg("--version")
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(Error::io("run", &new))?;
    if !tried.status.success() {
        return Err(Error::UpdateFailed {
            detail: format!(
                "the bundle's kojibox ({}) does not run here ({}): the running one is kept",
                new.display(),
                tried.status
            ),
        });
    }
    // The one running now is kept, for `rollback`.
    let keep = home.previous_exe();
    let bytes = std::fs::read(&current).map_err(Error::io("read", &current))?;
    kojibox_home::fs::write_atomic(home, &keep, &bytes)?;
    self_replace::self_replace(&new).map_err(Error::io("replace the executable with", &new))?;
    Ok(true)
}

/// Puts the executable a self-update replaced (`app/state/update/kojibox.prev`) back in place.
/// Returns whether there was one.
pub fn restore_previous(home: &Home) -> Result<bool> {
    let keep = home.previous_exe();
    if !keep.exists() {
        return Ok(false);
    }
    self_replace::self_replace(&keep).map_err(Error::io("put back the executable", &keep))?;
    let _ = std::fs::remove_file(&keep);
    Ok(true)
}

/// Puts the previous executable (`app/state/update/kojibox.prev`) back at `target` (the path
/// the daemon ran from), for a guard that is not itself that executable. Atomic: a copy beside
/// `target`, made executable, renamed over it.
pub fn restore_previous_to(home: &Home, target: &std::path::Path) -> Result<()> {
    let keep = home.previous_exe();
    let bytes = std::fs::read(&keep).map_err(Error::io("read", &keep))?;
    let dir = target.parent().unwrap_or(std::path::Path::new("."));
    let temp = dir.join(format!(".kojibox-restore-{}.tmp", std::process::id()));
    std::fs::write(&temp, &bytes).map_err(Error::io("write", &temp))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&temp, std::fs::Permissions::from_mode(0o755))
            .map_err(Error::io("make executable", &temp))?;
    }
    std::fs::rename(&temp, target).map_err(|e| {
        let _ = std::fs::remove_file(&temp);
        Error::io("put back the executable", target)(e)
    })?;
    let _ = std::fs::remove_file(&keep);
    Ok(())
}
