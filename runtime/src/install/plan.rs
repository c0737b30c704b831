//! Deciding, once the index is verified, what an install extracts, or why it does not go on.

use kojibox_home::Home;
use kojibox_kbx::read::Signed;
use kojibox_manifests::bundle::EntryKind;
use kojibox_manifests::model::RuntimeManifest;

use super::options::InstallOptions;
use crate::error::{Error, Result};

/// One payload the bundle carries, and what to do with it.
#[derive(Debug, Clone)]
pub(crate) struct Payload {
    /// `postgres 16.14 linux-x64`.
    pub(crate) label: String,
    /// Its home-relative folder.
    pub(crate) root: String,
    /// Extract it (false: it is installed already, identical).
    pub(crate) install: bool,
}

/// Why an install stops at the index.
pub(crate) enum Stop {
    /// The same bundle is installed: nothing to do.
    Already,
    /// It may not be installed.
    Refused(Error),
}

/// What to extract from `signed`, or why not to go on.
pub(crate) fn plan(
    home: &Home,
    signed: &Signed,
    current: Option<&RuntimeManifest>,
    host: Option<&str>,
    options: &InstallOptions,
) -> Result<Vec<Payload>, Stop> {
    let manifest = &signed.index.manifest;
    let new_version = semver::Version::parse(&manifest.version).map_err(|e| {
        Stop::Refused(Error::invalid(
            "Invalid bundle version",
            format!("`{}`: {e}", manifest.version),
        ))
    })?;
    if let Some(current) = current
        && let Ok(installed) = semver::Version::parse(&current.version)
        && installed > new_version
        && !options.allow_downgrade
    {
        return Err(Stop::Refused(Error::invalid(
            "Older bundle",
            format!(
                "bundle {new_version} is older than the installed {installed}; pass --allow-downgrade to install it anyway"
            ),
        )));
    }
    if let Some(current) = current
        && current.version == manifest.version
        && current.bundle.signature != signed.signature
        && !options.replace
    {
        return Err(Stop::Refused(Error::invalid(
            "A different bundle with the installed version",
            format!(
                "{} is installed from another signed index than this bundle's; installing it would {}. Give the new build a new version, or pass --replace to install it anyway",
                manifest.version,
                changes(current, manifest)
            ),
        )));
    }
    let selected: Vec<_> = manifest
        .services
        .iter()
        .filter(|s| options.all_targets || host == Some(s.target().as_str()))
        .collect();
    if selected.is_empty() {
        let targets: Vec<String> = manifest.services.iter().map(|s| s.target()).collect();
        return Err(Stop::Refused(Error::invalid(
            "No payload for this machine",
            format!(
                "the bundle has no payload for {} (it has: {}); pass --all-targets to install them anyway",
                host.unwrap_or("this platform"),
                targets.join(", ")
            ),
        )));
    }
    // A file other users may write is one a service user could change under a service: refused
    // (the bundler packs only 0644 and 0755; the index validation refuses special bits).
    for service in &selected {
        let prefix = format!("{}/", service.payload_root());
        if let Some(entry) = signed.index.files.iter().find(|e| {
            e.kind == EntryKind::File && e.path.starts_with(&prefix) && e.mode & 0o022 != 0
        }) {
            return Err(Stop::Refused(Error::invalid(
                "Unsafe file mode",
                format!(
                    "{} in {} has mode {:04o}, writable by group or others: a payload file may not be writable by other users; the publisher must pack it without group/other write (0644 or 0755)",
                    entry.path,
                    service.label(),
                    entry.mode
                ),
            )));
        }
    }
    let stored = stored_checksums(home).map_err(Stop::Refused)?;
    let mut out = Vec::new();
    for service in selected {
        let root = service.payload_root();
        let label = service.label();
        let present = home.join(&root).is_dir();
        match stored.iter().find(|(r, _)| *r == root) {
            Some((_, checksum)) if present && *checksum != service.checksum => {
                return Err(Stop::Refused(Error::invalid(
                    "Conflicting payload",
                    format!(
                        "{label} is already installed with different content ({root}); a bundle may not replace a version in place: give the new build a new version"
                    ),
                )));
            }
            None if present => {
                // A folder no installed bundle vouches for: keep it only if it is exactly what
                // this bundle signs.
                let found =
                    crate::installed::scan_payload(&home.join(&root)).map_err(Stop::Refused)?;
                let (checksum, size) = kojibox_kbx::digest::payload_digest(&found);
                if checksum != service.checksum || size != service.size {
                    return Err(Stop::Refused(Error::invalid(
                        "Unknown files in the way",
                        format!(
                            "{root} exists but no installed bundle vouches for it and it differs from {label} in this bundle; move it away and install again"
                        ),
                    )));
                }
            }
            _ => {}
        }
        out.push(Payload {
            label,
            root,
            install: !present,
        });
    }
    if current.is_some_and(|c| c.bundle.signature == signed.signature)
        && out.iter().all(|p| !p.install)
    {
        return Err(Stop::Already);
    }
    Ok(out)
}

/// What replacing `old` by `new` would change, for a person: `remove postgres 16.14 linux-x64,
/// add redis 7.0 linux-x64`; `change only the index's signature` when no payload differs.
fn changes(old: &RuntimeManifest, new: &RuntimeManifest) -> String {
    let label = |s: &kojibox_manifests::model::ServiceBinary| s.label();
    let mut out = Vec::new();
    for s in &old.services {
        match new
            .services
            .iter()
            .find(|n| n.payload_root() == s.payload_root())
        {
            None => out.push(format!("remove {}", label(s))),
            Some(n) if n.checksum != s.checksum => out.push(format!("change {}", label(s))),
            Some(_) => {}
        }
    }
    for n in &new.services {
        if !old
            .services
            .iter()
            .any(|s| s.payload_root() == n.payload_root())
        {
            out.push(format!("add {}", label(n)));
        }
    }
    if out.is_empty() {
        "change only the index (same payloads, another signature)".to_owned()
    } else {
        out.join(", ")
    }
}

/// `(payload root, checksum)` of every payload named by a stored index.
fn stored_checksums(home: &Home) -> Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    for (_, index) in crate::installed::stored_indexes(home)? {
        for s in &index.manifest.services {
            out.push((s.payload_root(), s.checksum.clone()));
        }
    }
    Ok(out)
}
