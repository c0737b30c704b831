//! `kojibox verify`: re-hashing what is on disk against the signed indexes.

use std::collections::BTreeMap;

use kojibox_home::Home;
use kojibox_kbx::digest::PayloadEntry;
use kojibox_kbx::read::Signed;
use kojibox_signing::TrustStore;

use crate::error::Result;
use crate::installed::{get_manifest, load_index, scan_payload, stored_versions};

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
        let signature = signed.parsed_signature().map_err(|e| e.to_string())?;
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
        let root = service.payload_root();
        if !home.join(&root).is_dir() {
            report.payloads.push(PayloadCheck {
                label: service.label(),
                root: root.clone(),
                drift: vec![format!("missing payload folder: {root}")],
            });
        }
    }

    for version in stored_versions(home)? {
        let path = home.index_file(&version);
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
            let root = service.payload_root();
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
            report.payloads.push(PayloadCheck {
                label: service.label(),
                root,
                drift,
            });
        }
    }
    Ok(report)
}
