//! The installed runtime: `runtime.getManifest`, `runtime.ensureService`, and re-verifying what
//! is on disk against the signed indexes (`kojibox verify`).

use std::collections::BTreeMap;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

use kojibox_kbx::digest::{PayloadEntry, payload_digest};
use kojibox_kbx::read::Signed;
use kojibox_manifests::bundle::{BundleIndex, EntryKind};
use kojibox_manifests::model::{RuntimeManifest, ServiceBinary};
use kojibox_signing::{Signature, TrustStore};

use crate::error::{Error, Result};
use crate::fsutil::read_json;
use crate::home::Home;

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
    kojibox_kbx::paths::host_target()
        .is_some_and(|host| host == format!("{}-{}", binary.os, binary.arch))
}

/// The services this machine runs: its own payloads, kojibox itself (a self-update payload)
/// excluded.
pub fn host_services(manifest: &RuntimeManifest) -> impl Iterator<Item = &ServiceBinary> {
    manifest
        .services
        .iter()
        .filter(|s| s.name != crate::updater::LAUNCHER && on_this_machine(s))
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
    let root = home.join(kojibox_kbx::paths::payload_root(
        &binary.name,
        &binary.version,
        &binary.os,
        &binary.arch,
    ));
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
                let (content, _) = crate::fsutil::sha256_of(&mut file, &mut buf)
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
        let path = home.indexes().join(format!("{version}.json"));
        if let Some(index) = read_json::<BundleIndex>(&path)? {
            out.push((path, index));
        }
    }
    Ok(out)
}

/// The stored index of bundle `version` with its signature, when present (not verified).
pub fn load_index(home: &Home, version: &str) -> Result<Option<Signed>> {
    let json = home.indexes().join(format!("{version}.json"));
    let sig = home.indexes().join(format!("{version}.sig"));
    let (Ok(index_bytes), Ok(signature)) = (std::fs::read(&json), std::fs::read_to_string(&sig))
    else {
        return Ok(None);
    };
    let index = kojibox_manifests::from_json_slice(&index_bytes).map_err(|e| Error::Corrupt {
        path: json.clone(),
        detail: e.to_string(),
    })?;
    Ok(Some(Signed {
        index,
        signature: signature.trim().to_owned(),
        index_bytes,
    }))
}

/// The state of one installed payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PayloadCheck {
    /// `postgres 16.14 linux-x64`.
    pub label: String,
    /// Home-relative folder.
    pub root: String,
    /// Each difference from the signed index (`changed: native/bin/postgres`); empty = intact.
    pub drift: Vec<String>,
}

/// What `kojibox verify` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    /// Every installed payload, checked.
    pub payloads: Vec<PayloadCheck>,
    /// Problems beyond single payloads: an index whose signature no longer verifies, a missing
    /// index, a manifest that differs from its signed index.
    pub problems: Vec<String>,
}

impl VerifyReport {
    /// True when nothing drifted.
    pub fn is_clean(&self) -> bool {
        self.problems.is_empty() && self.payloads.iter().all(|p| p.drift.is_empty())
    }
}

/// Re-verifies the install: the active manifest against its signed index (which must exist and
/// verify against the pinned keys), every payload the manifest names (which must be present),
/// and every other stored index's payloads still on disk, file by file.
pub fn verify_installed(home: &Home) -> Result<VerifyReport> {
    let store = TrustStore::open(home.keys())?;
    let manifest = get_manifest(home)?;
    let mut report = VerifyReport {
        payloads: vec![],
        problems: vec![],
    };
    let verify = |signed: &Signed| -> std::result::Result<(), String> {
        let signature: Signature = signed
            .signature
            .parse()
            .map_err(|e: kojibox_signing::Error| e.to_string())?;
        store
            .verify(&signed.index_bytes, &signature)
            .map_err(|e| e.to_string())
    };

    // The active install: its index must be there and signed, and the manifest must be what it
    // signs (restricted to the payloads installed here).
    let active = load_index(home, &manifest.version)?;
    match &active {
        None => report.problems.push(format!(
            "runtime/indexes/{}.json or .sig is missing: the active install cannot be verified",
            manifest.version
        )),
        Some(signed) => match verify(signed) {
            Err(e) => report
                .problems
                .push(format!("runtime/indexes/{}.json: {e}", manifest.version)),
            Ok(()) => {
                let signed_manifest = signed.installed_manifest();
                let meta_ok = manifest.version == signed_manifest.version
                    && manifest.bundle == signed_manifest.bundle;
                let services_ok = manifest
                    .services
                    .iter()
                    .all(|s| signed_manifest.services.contains(s));
                if !meta_ok || !services_ok {
                    report
                        .problems
                        .push("runtime/manifest.json differs from its signed index".into());
                }
            }
        },
    }
    for service in &manifest.services {
        let root = kojibox_kbx::paths::payload_root(
            &service.name,
            &service.version,
            &service.os,
            &service.arch,
        );
        if !home.join(&root).is_dir() {
            let label = format!(
                "{} {} {}-{}",
                service.name, service.version, service.os, service.arch
            );
            report.payloads.push(PayloadCheck {
                label,
                root: root.clone(),
                drift: vec![format!("missing payload folder: {root}")],
            });
        }
    }

    for version in stored_versions(home)? {
        let path = home.indexes().join(format!("{version}.json"));
        let Some(signed) = load_index(home, &version)? else {
            continue;
        };
        if let Err(e) = verify(&signed) {
            if version != manifest.version {
                report.problems.push(format!("{}: {e}", home.rel(&path)));
            }
            continue;
        }
        for service in &signed.index.manifest.services {
            let root = kojibox_kbx::paths::payload_root(
                &service.name,
                &service.version,
                &service.os,
                &service.arch,
            );
            let dir = home.join(&root);
            if !dir.is_dir() || report.payloads.iter().any(|p| p.root == root) {
                continue;
            }
            let expected: BTreeMap<String, PayloadEntry> =
                kojibox_kbx::digest::payload_entries(&root, &signed.index.files)
                    .into_iter()
                    .map(|e| (e.path.clone(), e))
                    .collect();
            let found: BTreeMap<String, PayloadEntry> = scan_payload(&dir)?
                .into_iter()
                .map(|e| (e.path.clone(), e))
                .collect();
            let mut drift = Vec::new();
            for (path, want) in &expected {
                match found.get(path) {
                    None => drift.push(format!("missing: {path}")),
                    Some(have)
                        if have.content != want.content
                            || have.kind != want.kind
                            || have.size != want.size =>
                    {
                        drift.push(format!("changed: {path}"));
                    }
                    Some(have) if have.mode != want.mode => drift.push(format!(
                        "mode {:04o} (signed {:04o}): {path}",
                        have.mode, want.mode
                    )),
                    Some(_) => {}
                }
            }
            drift.extend(
                found
                    .keys()
                    .filter(|p| !expected.contains_key(*p))
                    .map(|p| format!("added: {p}")),
            );
            let label = format!(
                "{} {} {}-{}",
                service.name, service.version, service.os, service.arch
            );
            report.payloads.push(PayloadCheck { label, root, drift });
        }
    }
    Ok(report)
}
