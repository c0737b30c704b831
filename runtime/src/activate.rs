//! Making an installed version the active one: the manifest switch, the service templates that
//! follow it, and the rollback watermark (the highest version ever installed).

use kojibox_home::Home;
use kojibox_home::fs::{read_json, write_atomic, write_json};
use kojibox_kbx::read::Signed;
use kojibox_manifests::model::RuntimeManifest;
use kojibox_manifests::recipe::ServiceTemplate;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The highest bundle version ever installed (`app/state/versions.json`): the rollback watermark.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Watermark {
    /// Highest version installed by `install` or an update.
    pub highest_installed: Option<String>,
}

/// Makes `manifest` (a version whose payloads and signed index are still in the home) the
/// installed one again: the manifest is switched atomically, then its service templates are
/// written from its stored index. Used to roll an update back.
pub fn reactivate(home: &Home, manifest: &RuntimeManifest) -> Result<()> {
    let signed = crate::installed::load_index(home, &manifest.version)?.ok_or_else(|| {
        Error::RuntimeMissing {
            detail: format!(
                "the signed index of {} is no longer in {}",
                manifest.version,
                home.indexes().display()
            ),
        }
    })?;
    write_json(home, &home.manifest(), manifest)?;
    write_templates(home, &signed)?;
    Ok(())
}

/// The highest version ever installed (the rollback watermark), if any.
pub fn watermark(home: &Home) -> Result<Option<String>> {
    Ok(read_json::<Watermark>(&home.watermark_file())?.and_then(|w| w.highest_installed))
}

/// Writes `runtime/services/<name>.json` from an index's templates (only those that differ).
pub(crate) fn write_templates(home: &Home, signed: &Signed) -> Result<bool> {
    let mut changed = false;
    for (name, template) in &signed.index.templates {
        // The reader refused such a name when the bundle was installed: here it can only be a
        // stored index altered since.
        if !kojibox_manifests::recipe::is_service_id(name) {
            return Err(Error::corrupt(
                home.index_file(&signed.index.manifest.version),
                format!("template {name:?} is not a service id"),
            ));
        }
        let path = home.service_template(name);
        let mut bytes = serde_json::to_vec_pretty(template)
            .map_err(|e| Error::io("serialize", &path)(e.into()))?;
        bytes.push(b'\n');
        if std::fs::read(&path).ok().as_deref() != Some(bytes.as_slice()) {
            write_atomic(home, &path, &bytes)?;
            changed = true;
        }
        changed |= write_config_templates(home, name, template)?;
    }
    Ok(changed)
}

/// Writes `runtime/config/<name>/<file>` for each of a template's config files (only those
/// that differ) and removes the files of that folder it no longer names.
fn write_config_templates(home: &Home, name: &str, template: &ServiceTemplate) -> Result<bool> {
    let dir = home.config_templates(name);
    let mut changed = false;
    if let Ok(entries) = std::fs::read_dir(&dir) {
        for entry in entries.flatten() {
            let file = entry.file_name();
            if !template
                .config_files
                .contains_key(file.to_string_lossy().as_ref())
            {
                std::fs::remove_file(entry.path())
                    .map_err(|e| Error::io("remove", entry.path())(e))?;
                changed = true;
            }
        }
    }
    if template.config_files.is_empty() {
        let _ = std::fs::remove_dir(&dir);
        return Ok(changed);
    }
    for (file, text) in &template.config_files {
        // The reader refused any other name; a stored index altered since is refused here.
        if !kojibox_manifests::recipe::is_config_file_name(file) {
            return Err(Error::corrupt(
                home.service_template(name),
                format!("config file {file:?} is not a plain file name"),
            ));
        }
        let path = dir.join(file);
        if std::fs::read(&path).ok().as_deref() != Some(text.as_bytes()) {
            write_atomic(home, &path, text.as_bytes())?;
            changed = true;
        }
    }
    Ok(changed)
}

/// Raises the rollback watermark to `version` when it is higher.
pub fn raise_watermark(home: &Home, version: &str) -> Result<()> {
    let path = home.watermark_file();
    let mut mark: Watermark = read_json(&path)?.unwrap_or_default();
    let newer = match mark
        .highest_installed
        .as_deref()
        .map(semver::Version::parse)
    {
        Some(Ok(old)) => semver::Version::parse(version).is_ok_and(|new| new > old),
        _ => true,
    };
    if newer {
        mark.highest_installed = Some(version.to_owned());
        write_json(home, &path, &mark)?;
    }
    Ok(())
}
