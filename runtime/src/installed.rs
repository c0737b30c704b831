//! What is installed: `runtime.getManifest`, `runtime.ensureService`, this machine's services,
//! the stored signed indexes, and hashing a payload folder as it is on disk.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

use kojibox_home::Home;
use kojibox_home::fs::read_json;
use kojibox_kbx::digest::{PayloadEntry, payload_digest};
use kojibox_kbx::read::Signed;
use kojibox_manifests::bundle::{BundleIndex, EntryKind, LAUNCHER_PAYLOAD};
use kojibox_manifests::model::{RuntimeManifest, ServiceBinary};

use crate::error::{Error, Result};

/// `runtime.getManifest`: the installed manifest.
pub fn get_manifest(home: &Home) -> Result<RuntimeManifest> {
    read_json(&home.manifest())?.ok_or_else(|| Error::RuntimeMissing {
        detail: format!(
            "nothing is installed in {}: run `kojibox install BUNDLE.kbx --pubkey KEY.pub`",
            home.root().display()
        ),
    })
}

/// Whether `binary` is this machine's payload (its `<os>-<arch>` is the host's).
pub fn on_this_machine(binary: &ServiceBinary) -> bool {
    kojibox_kbx::paths::host_target().is_some_and(|host| host == binary.target())
}

/// The services this machine runs: its own payloads, kojibox itself (a self-update payload)
/// excluded.
pub fn host_services(manifest: &RuntimeManifest) -> impl Iterator<Item = &ServiceBinary> {
    manifest
        .services
        .iter()
        .filter(|s| s.name != LAUNCHER_PAYLOAD && on_this_machine(s))
}

/// `runtime.ensureService`: this machine's payload of `name` `version`, re-hashed on disk.
pub fn ensure_service(home: &Home, name: &str, version: &str) -> Result<ServiceBinary> {
    let missing = || Error::RuntimeMissing {
        detail: format!("{name} {version} not present in runtime/bin"),
    };
    let manifest = get_manifest(home).map_err(|_| missing())?;
    let binary = manifest
        .services
        .into_iter()
        .find(|s| s.name == name && s.version == version && on_this_machine(s))
        .ok_or_else(missing)?;
    let root = home.payload(&binary);
    if !root.is_dir() {
        return Err(missing());
    }
    let (checksum, size) = payload_digest(&scan_payload(&root)?);
    if checksum != binary.checksum || size != binary.size {
        return Err(Error::ChecksumMismatch {
            detail: format!(
                "{name} {version} in {} differs from its signed checksum (expected {}, found {checksum}); run `kojibox verify` for the files that changed",
                home.rel(&root),
                binary.checksum
            ),
        });
    }
    Ok(binary)
}

/// Lists a payload folder on disk as payload entries, hashing every file.
pub fn scan_payload(root: &Path) -> Result<Vec<PayloadEntry>> {
    let entries = kojibox_kbx::write::walk_payload(root)?;
    let mut out = Vec::with_capacity(entries.len());
    let mut buf = vec![0u8; 1 << 20];
    for entry in entries {
        match entry.kind {
            kojibox_kbx::write::InputKind::File { source, .. } => {
                let mut file = File::open(&source).map_err(Error::io("read", &source))?;
                let meta = file.metadata().map_err(Error::io("read", &source))?;
                let (content, _) = kojibox_home::fs::sha256_of(&mut file, &mut buf)
                    .map_err(Error::io("read", &source))?;
                out.push(PayloadEntry {
                    path: entry.rel,
                    kind: EntryKind::File,
                    mode: file_mode(&meta),
                    size: meta.len(),
                    content,
                });
            }
            kojibox_kbx::write::InputKind::Symlink { target } => {
                out.push(PayloadEntry {
                    path: entry.rel,
                    kind: EntryKind::Symlink,
                    mode: 0,
                    size: 0,
                    content: target,
                });
            }
        }
    }
    Ok(out)
}

#[cfg(unix)]
fn file_mode(meta: &std::fs::Metadata) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    meta.permissions().mode() & 0o777
}

#[cfg(not(unix))]
fn file_mode(_meta: &std::fs::Metadata) -> u32 {
    0o644
}

/// The versions of every stored index (`runtime/indexes/<version>.json`), sorted.
pub fn stored_versions(home: &Home) -> Result<Vec<String>> {
    let dir = home.indexes();
    let entries = match std::fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(vec![]),
        Err(e) => return Err(Error::io("read folder", &dir)(e)),
    };
    let mut out = Vec::new();
    for entry in entries {
        let path = entry.map_err(Error::io("read folder", &dir))?.path();
        if path.extension().is_some_and(|e| e == "json") {
            out.push(
                path.file_stem()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .into_owned(),
            );
        }
    }
    out.sort();
    Ok(out)
}

/// Every stored index, parsed, without verifying signatures.
pub fn stored_indexes(home: &Home) -> Result<Vec<(PathBuf, BundleIndex)>> {
    let mut out = Vec::new();
    for version in stored_versions(home)? {
        let path = home.index_file(&version);
        if let Some(index) = read_json::<BundleIndex>(&path)? {
            out.push((path, index));
        }
    }
    Ok(out)
}

/// The stored index of bundle `version` with its signature, when present (not verified).
pub fn load_index(home: &Home, version: &str) -> Result<Option<Signed>> {
    let json = home.index_file(version);
    let sig = home.index_signature(version);
    let (Ok(index_bytes), Ok(signature)) = (std::fs::read(&json), std::fs::read_to_string(&sig))
    else {
        return Ok(None);
    };
    let index = kojibox_manifests::from_json_slice(&index_bytes)
        .map_err(|e| Error::corrupt(&json, e.to_string()))?;
    Ok(Some(Signed {
        index,
        signature: signature.trim().to_owned(),
        index_bytes,
    }))
}
