//! `kojibox verify`: re-hashing what is on disk against the signed indexes; and
//! [`check_spawnable`], the cheaper check the supervisor makes before it spawns a service.
//!
//! Both read a payload folder without ever following a link and without stopping at the first
//! odd entry: every difference from the signed index is listed. They see
//!
//! - a file, link or folder added, and a signed one missing;
//! - a file whose size or content changed, a link whose target changed, an entry of another kind
//!   (a file where a link was signed, a FIFO...);
//! - a mode other than the signed one, and always a setuid, setgid or sticky bit;
//! - a link leaving the payload (absolute, or `..` past its root);
//! - a folder writable by group or others (anyone who may write a folder may swap its files).
//!
//! On a file system without Unix modes (FAT, exFAT, NTFS: every file shows 0777) modes say
//! nothing: the mode checks are skipped with a note, and [`check_spawnable`] re-hashes the payload
//! against its signed sha256 instead.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::path::{Path, PathBuf};

use kojibox_home::Home;
use kojibox_kbx::digest::PayloadEntry;
use kojibox_kbx::read::Signed;
use kojibox_manifests::bundle::EntryKind;
use kojibox_manifests::model::{RuntimeManifest, ServiceBinary};
use kojibox_manifests::recipe::ServiceTemplate;
use kojibox_signing::TrustStore;

use crate::error::{Error, Result};
use crate::installed::{get_manifest, host_services, load_index, stored_versions};

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
    /// index, a manifest or a service template that differs from its signed index.
    pub problems: Vec<String>,
    /// What could not be judged, and why (a payload on a file system without Unix modes).
    pub notes: Vec<String>,
}

impl VerifyReport {
    /// True when nothing drifted.
    pub fn is_clean(&self) -> bool {
        self.problems.is_empty() && self.payloads.iter().all(|p| p.drift.is_empty())
    }
}

/// Re-verifies the install: the active manifest against its signed index (which must exist and
/// verify against the pinned keys), the service templates against the same index, every payload
/// the manifest names (which must be present), and every other stored index's payloads still on
/// disk, file by file (each file re-hashed). A bad entry is listed, never the end of the report.
pub fn verify_installed(home: &Home) -> Result<VerifyReport> {
    let store = TrustStore::open(home.keys())?;
    let manifest = get_manifest(home)?;
    let mut report = VerifyReport {
        payloads: vec![],
        problems: vec![],
        notes: vec![],
    };

    // The active install: its index must be there and signed, and the manifest must be what it
    // signs (restricted to the payloads installed here).
    match active_index(home, &store, &manifest) {
        Err(problem) => report.problems.push(problem),
        Ok(signed) => {
            report.problems.extend(manifest_drift(&manifest, &signed));
            report.problems.extend(template_drift(home, &signed));
        }
    }
    for service in &manifest.services {
        let root = service.payload_root();
        if std::fs::symlink_metadata(home.join(&root)).is_err() {
            report.payloads.push(PayloadCheck {
                label: service.label(),
                root: root.clone(),
                drift: vec![format!("missing payload folder: {root}")],
            });
        }
    }

    let versions = match stored_versions(home) {
        Ok(versions) => versions,
        Err(e) => {
            report.problems.push(e.to_string());
            vec![]
        }
    };
    for version in versions {
        let path = home.index_file(&version);
        let signed = match load_index(home, &version) {
            Ok(Some(signed)) => signed,
            Ok(None) => continue,
            Err(e) => {
                report.problems.push(e.to_string());
                continue;
            }
        };
        if let Err(e) = verify_signature(&store, &signed) {
            if version != manifest.version {
                report.problems.push(format!("{}: {e}", home.rel(&path)));
            }
            continue;
        }
        for service in &signed.index.manifest.services {
            let root = service.payload_root();
            let dir = home.join(&root);
            if std::fs::symlink_metadata(&dir).is_err()
                || report.payloads.iter().any(|p| p.root == root)
            {
                continue;
            }
            let expected = Expected::of(&root, &signed);
            let scan = scan(&dir, Hash::Every(&expected));
            let modes = mode_support(&dir, &scan);
            if let Some(why) = &modes {
                report.notes.push(format!(
                    "{root}: {why}: modes are not checked there (contents are)"
                ));
            }
            let mut drift = check_parents(home, &root);
            drift.extend(compare(
                &expected,
                &scan,
                &Checks {
                    modes: modes.is_none(),
                    contents: true,
                    owners: None,
                },
            ));
            report.payloads.push(PayloadCheck {
                label: service.label(),
                root,
                drift,
            });
        }
    }
    Ok(report)
}

/// The check the supervisor makes before it spawns service `service_id` (its setup commands
/// included): nothing it would run was changed behind kojibox's back.
///
/// - the active `runtime/manifest.json` matches its stored index, whose signature verifies
///   against the pinned keys (the comparison [`verify_installed`] makes), and the service's
///   template `runtime/services/<id>.json` is the one that index signs;
/// - the service's `binPath` is inside its payload folder, signed as a file or a link there, and
///   resolves (links followed) inside that folder;
/// - the payload folder and its parents in the home are real folders (no links), not writable by
///   group or others; every signed entry is there, nothing else is; sizes and link targets are
///   the signed ones; every file has its signed mode, with no setuid, setgid or sticky bit and no
///   write bit for group or others; when kojibox runs as root, everything is owned by root
///   (otherwise by root or kojibox's own user).
///
/// Cheap on a normal file system: no file is read, only `lstat`ed. On a file system without Unix
/// modes (FAT, exFAT, NTFS, where every file shows 0777) the mode and owner checks are skipped
/// and every file of the payload is re-hashed against its signed sha256 instead; the returned
/// note says so (`Ok(Some(note))`, for the service's log). `Ok(None)`: all checked, all intact.
///
/// Errors: [`Error::RuntimeMissing`] when nothing, or no payload of `service_id` for this
/// machine, is installed; [`Error::ChecksumMismatch`] (`CHECKSUM_MISMATCH`) naming every
/// difference found, with what to do, when anything differs or cannot be verified.
pub fn check_spawnable(home: &Home, service_id: &str) -> Result<Option<String>> {
    check_spawnable_with(home, service_id, mode_support)
}

/// [`check_spawnable`], judging the file system with `mode_support` (tests stand in for a FAT
/// stick with it).
fn check_spawnable_with(
    home: &Home,
    service_id: &str,
    mode_support: fn(&Path, &Scan) -> Option<String>,
) -> Result<Option<String>> {
    let manifest = get_manifest(home)?;
    let binary = host_services(&manifest)
        .find(|s| s.name == service_id)
        .cloned()
        .ok_or_else(|| Error::RuntimeMissing {
            detail: format!(
                "no payload of `{service_id}` for this machine in runtime/manifest.json: install a bundle that has it"
            ),
        })?;
    let store = TrustStore::open(home.keys())?;
    let refuse = |problems: Vec<String>| Error::ChecksumMismatch {
        detail: format!(
            "{} was not started: {}; run `kojibox verify` for the whole picture, and reinstall the bundle (or restore the files) before starting it",
            binary.label(),
            problems.join("; ")
        ),
    };
    let signed = active_index(home, &store, &manifest).map_err(|p| refuse(vec![p]))?;
    let mut problems = manifest_drift(&manifest, &signed);
    problems.extend(
        template_drift(home, &signed)
            .into_iter()
            .filter(|p| p.contains(&format!("runtime/services/{service_id}.json"))),
    );
    if !problems.is_empty() {
        return Err(refuse(problems));
    }
    let root = binary.payload_root();
    let dir = home.join(&root);
    let mut problems = check_bin_path(home, &binary, &signed);
    problems.extend(check_parents(home, &root));
    let expected = Expected::of(&root, &signed);
    let quick = scan(&dir, Hash::None);
    let modes = mode_support(&dir, &quick);
    let (scan, note) = match &modes {
        None => (quick, None),
        Some(why) => (
            scan(&dir, Hash::Every(&expected)),
            Some(format!(
                "{root}: {why}: modes cannot be checked there; every file was re-hashed against its signed sha256 instead"
            )),
        ),
    };
    problems.extend(compare(
        &expected,
        &scan,
        &Checks {
            modes: modes.is_none(),
            contents: modes.is_some(),
            owners: if modes.is_none() { owners() } else { None },
        },
    ));
    if problems.is_empty() {
        Ok(note)
    } else {
        Err(refuse(problems))
    }
}

/// The active version's stored index, its signature verified; or the problem, said for a user.
fn active_index(
    home: &Home,
    store: &TrustStore,
    manifest: &RuntimeManifest,
) -> std::result::Result<Signed, String> {
    let version = &manifest.version;
    match load_index(home, version) {
        Err(e) => Err(e.to_string()),
        Ok(None) => Err(format!(
            "runtime/indexes/{version}.json or .sig is missing: the active install cannot be verified"
        )),
        Ok(Some(signed)) => match verify_signature(store, &signed) {
            Err(e) => Err(format!("runtime/indexes/{version}.json: {e}")),
            Ok(()) => Ok(signed),
        },
    }
}

fn verify_signature(store: &TrustStore, signed: &Signed) -> std::result::Result<(), String> {
    let signature = signed.parsed_signature().map_err(|e| e.to_string())?;
    store
        .verify(&signed.index_bytes, &signature)
        .map_err(|e| e.to_string())
}

/// How `manifest` differs from what `signed` signs (its services may be a subset: the payloads
/// installed here).
fn manifest_drift(manifest: &RuntimeManifest, signed: &Signed) -> Vec<String> {
    let want = signed.installed_manifest();
    let mut out = Vec::new();
    if manifest.version != want.version {
        out.push(format!(
            "runtime/manifest.json differs from its signed index: version `{}` (signed `{}`)",
            manifest.version, want.version
        ));
    }
    if manifest.bundle != want.bundle {
        out.push("runtime/manifest.json differs from its signed index: bundle".into());
    }
    for service in &manifest.services {
        if want.services.contains(service) {
            continue;
        }
        let Some(signed) = want.services.iter().find(|s| {
            s.name == service.name
                && s.version == service.version
                && s.os == service.os
                && s.arch == service.arch
        }) else {
            out.push(format!(
                "runtime/manifest.json differs from its signed index: it names {}, which the index does not",
                service.label()
            ));
            continue;
        };
        let mut fields = Vec::new();
        if service.bin_path != signed.bin_path {
            fields.push(format!(
                "binPath `{}` (signed `{}`)",
                service.bin_path, signed.bin_path
            ));
        }
        for (name, differs) in [
            ("checksum", service.checksum != signed.checksum),
            ("size", service.size != signed.size),
            (
                "defaultPorts",
                service.default_ports != signed.default_ports,
            ),
            ("env", service.env != signed.env),
            ("args", service.args != signed.args),
        ] {
            if differs {
                fields.push(name.to_owned());
            }
        }
        out.push(format!(
            "runtime/manifest.json differs from its signed index: {}: {}",
            service.label(),
            fields.join(", ")
        ));
    }
    out
}

/// Every `runtime/services/<name>.json` (and `runtime/config/<name>/<file>`) that is not what
/// `signed` signs.
fn template_drift(home: &Home, signed: &Signed) -> Vec<String> {
    let mut out = Vec::new();
    for (name, want) in &signed.index.templates {
        let path = home.service_template(name);
        let rel = home.rel(&path);
        match std::fs::read(&path) {
            Err(e) => out.push(format!("{rel}: cannot be read ({e})")),
            Ok(bytes) => {
                let have: std::result::Result<ServiceTemplate, _> =
                    kojibox_manifests::from_json_slice(&bytes);
                if have.as_ref().ok() != Some(want) {
                    out.push(format!("{rel} differs from its signed index"));
                }
            }
        }
        for (file, text) in &want.config_files {
            let path = home.config_templates(name).join(file);
            let rel = home.rel(&path);
            match std::fs::read(&path) {
                Err(e) => out.push(format!("{rel}: cannot be read ({e})")),
                Ok(bytes) if bytes != text.as_bytes() => {
                    out.push(format!("{rel} differs from its signed index"));
                }
                Ok(_) => {}
            }
        }
    }
    out
}

/// `binPath` is a path inside the payload that the index signs, and resolves inside it.
fn check_bin_path(home: &Home, binary: &ServiceBinary, signed: &Signed) -> Vec<String> {
    let root = binary.payload_root();
    let bin = &binary.bin_path;
    if kojibox_kbx::paths::check_relative(bin).is_err() || !bin.starts_with(&format!("{root}/")) {
        return vec![format!("binPath `{bin}` is not inside its payload {root}")];
    }
    if !signed.index.files.iter().any(|e| &e.path == bin) {
        return vec![format!(
            "binPath `{bin}` is not a file its signed index names"
        )];
    }
    let (Ok(real), Ok(real_root)) = (
        std::fs::canonicalize(home.join(bin)),
        std::fs::canonicalize(home.join(&root)),
    ) else {
        return vec![format!("binPath `{bin}` does not exist")];
    };
    if !real.starts_with(&real_root) || real == real_root {
        return vec![format!(
            "binPath `{bin}` leads to {}, outside its payload",
            real.display()
        )];
    }
    vec![]
}

/// The folders from the home down to the payload's parent: real folders, not writable by group
/// or others (whoever may write one may swap the payload folder).
fn check_parents(home: &Home, root: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rel = PathBuf::new();
    let parts: Vec<&str> = root.split('/').collect();
    for part in &parts[..parts.len().saturating_sub(1)] {
        rel.push(part);
        let path = home.join(&rel);
        match std::fs::symlink_metadata(&path) {
            Err(e) => out.push(format!("{}: {e}", rel.display())),
            Ok(meta) if !meta.file_type().is_dir() => {
                out.push(format!("{} is not a folder (a link?)", rel.display()));
            }
            Ok(meta) => {
                let mode = mode_bits(&meta);
                if mode & 0o022 != 0 {
                    out.push(format!(
                        "folder mode {mode:04o} (at most 0755): {}/",
                        rel.display()
                    ));
                }
            }
        }
    }
    out
}

/// What the signed index says a payload holds: entries by payload-relative path, and the folders
/// they imply.
struct Expected {
    entries: BTreeMap<String, PayloadEntry>,
    dirs: BTreeSet<String>,
}

impl Expected {
    fn of(root: &str, signed: &Signed) -> Expected {
        let entries: BTreeMap<String, PayloadEntry> =
            kojibox_kbx::digest::payload_entries(root, &signed.index.files)
                .into_iter()
                .map(|e| (e.path.clone(), e))
                .collect();
        let mut dirs = BTreeSet::from([String::new()]);
        for path in entries.keys() {
            let mut at = path.as_str();
            while let Some((parent, _)) = at.rsplit_once('/') {
                dirs.insert(parent.to_owned());
                at = parent;
            }
        }
        Expected { entries, dirs }
    }
}

/// One entry found on disk, by `lstat` (never through a link).
#[derive(Debug)]
enum Found {
    File {
        /// Permission bits, setuid/setgid/sticky included.
        mode: u32,
        size: u64,
        uid: Option<u32>,
        /// sha256 hex, when it was hashed; or why it could not be read.
        sha256: Option<std::result::Result<String, String>>,
    },
    Symlink {
        target: std::result::Result<String, String>,
    },
    Dir {
        mode: u32,
        uid: Option<u32>,
    },
    /// A FIFO, a socket, a device.
    Other,
}

/// A payload folder as found on disk: entries by payload-relative path (the folder itself is
/// `""`), and what could not be read at all.
#[derive(Debug, Default)]
struct Scan {
    found: BTreeMap<String, Found>,
    unreadable: Vec<String>,
}

/// Which files a scan hashes.
enum Hash<'a> {
    None,
    /// Those the index signs as files (others are drift whatever they hold).
    Every(&'a Expected),
}

/// Lists `dir` without following any link; a folder that cannot be read is listed as such and
/// the rest goes on.
fn scan(dir: &Path, hash: Hash<'_>) -> Scan {
    let mut out = Scan::default();
    let mut buf = vec![0u8; 1 << 20];
    let mut stack = vec![(dir.to_owned(), String::new())];
    while let Some((path, rel)) = stack.pop() {
        let meta = match std::fs::symlink_metadata(&path) {
            Ok(meta) => meta,
            Err(e) => {
                out.unreadable
                    .push(format!("unreadable: {} ({e})", shown(&rel)));
                continue;
            }
        };
        let kind = meta.file_type();
        let found = if kind.is_dir() {
            match std::fs::read_dir(&path) {
                Err(e) => out
                    .unreadable
                    .push(format!("unreadable: {}/ ({e})", shown(&rel))),
                Ok(entries) => {
                    for entry in entries {
                        match entry {
                            Err(e) => out
                                .unreadable
                                .push(format!("unreadable: {}/ ({e})", shown(&rel))),
                            Ok(entry) => {
                                let name = entry.file_name();
                                let Some(name) = name.to_str() else {
                                    out.unreadable.push(format!(
                                        "added: {} (a name that is not UTF-8)",
                                        shown(&join(&rel, &name.to_string_lossy()))
                                    ));
                                    continue;
                                };
                                stack.push((entry.path(), join(&rel, name)));
                            }
                        }
                    }
                }
            }
            Found::Dir {
                mode: mode_bits(&meta),
                uid: uid_of(&meta),
            }
        } else if kind.is_symlink() {
            Found::Symlink {
                target: std::fs::read_link(&path)
                    .map_err(|e| e.to_string())
                    .and_then(|t| {
                        t.to_str()
                            .map(|t| t.replace('\\', "/"))
                            .ok_or_else(|| "a target that is not UTF-8".to_owned())
                    }),
            }
        } else if kind.is_file() {
            let wanted = match &hash {
                Hash::None => false,
                Hash::Every(expected) => expected
                    .entries
                    .get(&rel)
                    .is_some_and(|e| e.kind == EntryKind::File && e.size == meta.len()),
            };
            Found::File {
                mode: mode_bits(&meta),
                size: meta.len(),
                uid: uid_of(&meta),
                sha256: wanted.then(|| hash_file(&path, &mut buf)),
            }
        } else {
            Found::Other
        };
        out.found.insert(rel, found);
    }
    out
}

/// sha256 hex of a regular file, opened without following a link (nor blocking on a FIFO put in
/// its place since it was listed).
fn hash_file(path: &Path, buf: &mut [u8]) -> std::result::Result<String, String> {
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        let flags = rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::NONBLOCK;
        options.custom_flags(flags.bits() as i32);
    }
    let mut file: File = options.open(path).map_err(|e| e.to_string())?;
    kojibox_home::fs::sha256_of(&mut file, buf)
        .map(|(hex, _)| hex)
        .map_err(|e| e.to_string())
}

fn join(rel: &str, name: &str) -> String {
    if rel.is_empty() {
        name.to_owned()
    } else {
        format!("{rel}/{name}")
    }
}

/// How drift names an entry (the payload folder itself is `./`).
fn shown(rel: &str) -> &str {
    if rel.is_empty() { "./" } else { rel }
}

/// What [`compare`] looks at besides paths, kinds, sizes and link targets.
struct Checks {
    /// File modes against the signed ones, special bits, folder modes.
    modes: bool,
    /// File contents against the signed sha256 (the scan hashed them).
    contents: bool,
    /// The owners allowed (`None`: not checked).
    owners: Option<Owners>,
}

/// Who may own payload files: root, and kojibox's own user.
#[derive(Debug, Clone, Copy)]
struct Owners {
    euid: u32,
}

impl Owners {
    fn allows(self, uid: Option<u32>) -> bool {
        uid.is_none_or(|uid| uid == 0 || uid == self.euid)
    }
}

/// The owners a payload may have here (Unix), or `None` (not checked).
fn owners() -> Option<Owners> {
    #[cfg(unix)]
    return Some(Owners {
        euid: rustix::process::geteuid().as_raw(),
    });
    #[cfg(not(unix))]
    return None;
}

/// Every difference between what `expected` signs and what `scan` found.
fn compare(expected: &Expected, scan: &Scan, checks: &Checks) -> Vec<String> {
    let mut drift = scan.unreadable.clone();
    match scan.found.get("") {
        Some(Found::Dir { .. }) | None => {}
        Some(Found::Symlink { target }) => {
            drift.push(format!(
                "the payload folder is a link (to `{}`), not a folder",
                target.as_deref().unwrap_or("?")
            ));
            return drift;
        }
        Some(other) => {
            drift.push(format!(
                "the payload folder is {}, not a folder",
                found_name(other)
            ));
            return drift;
        }
    }
    for (path, want) in &expected.entries {
        let Some(have) = scan.found.get(path) else {
            drift.push(format!("missing: {path}"));
            continue;
        };
        match (want.kind, have) {
            (
                EntryKind::File,
                Found::File {
                    mode,
                    size,
                    uid,
                    sha256,
                },
            ) => {
                if *size != want.size {
                    drift.push(format!("changed: {path}"));
                } else if checks.contents {
                    match sha256 {
                        Some(Ok(hex)) if *hex == want.content => {}
                        Some(Err(e)) => drift.push(format!("unreadable: {path} ({e})")),
                        _ => drift.push(format!("changed: {path}")),
                    }
                }
                let special = special_bits(*mode);
                if !special.is_empty() {
                    // Whatever the file system: a setuid file is never what a payload signs.
                    drift.push(format!(
                        "mode {mode:04o} (signed {:04o}; {special} set): {path}",
                        want.mode
                    ));
                } else if checks.modes && *mode != want.mode {
                    drift.push(format!(
                        "mode {mode:04o} (signed {:04o}): {path}",
                        want.mode
                    ));
                } else if checks.modes && mode & 0o022 != 0 {
                    drift.push(format!(
                        "mode {mode:04o} (writable by group or others): {path}"
                    ));
                }
                if let Some(owners) = checks.owners
                    && !owners.allows(*uid)
                {
                    drift.push(format!(
                        "owned by uid {} (not root{}): {path}",
                        uid.unwrap_or_default(),
                        if owners.euid == 0 {
                            String::new()
                        } else {
                            format!(" or uid {}", owners.euid)
                        }
                    ));
                }
            }
            (EntryKind::Symlink, Found::Symlink { target }) => match target {
                Ok(target) if *target == want.content => {}
                Ok(target) => {
                    drift.push(format!(
                        "changed: {path} (links to `{target}`, signed `{}`)",
                        want.content
                    ));
                    if kojibox_kbx::paths::resolve_link(path, target).is_none() {
                        drift.push(format!("link leaves the payload: {path} -> {target}"));
                    }
                }
                Err(e) => drift.push(format!("unreadable: {path} ({e})")),
            },
            (_, have) => drift.push(format!(
                "changed: {path} ({} signed, {} found)",
                kind_name(want.kind),
                found_name(have)
            )),
        }
    }
    for (path, have) in &scan.found {
        if expected.entries.contains_key(path) {
            continue;
        }
        match have {
            Found::Dir { mode, uid } => {
                if !expected.dirs.contains(path) {
                    drift.push(format!("added: {path}/"));
                } else if checks.modes && (mode & 0o022 != 0 || !special_bits(*mode).is_empty()) {
                    drift.push(format!(
                        "folder mode {mode:04o} (at most 0755): {}",
                        if path.is_empty() {
                            "./".to_owned()
                        } else {
                            format!("{path}/")
                        }
                    ));
                }
                if let Some(owners) = checks.owners
                    && !owners.allows(*uid)
                {
                    drift.push(format!(
                        "owned by uid {}: {}",
                        uid.unwrap_or_default(),
                        if path.is_empty() {
                            "./".to_owned()
                        } else {
                            format!("{path}/")
                        }
                    ));
                }
            }
            Found::Symlink { target } => {
                let target = target.as_deref().unwrap_or("?");
                drift.push(format!("added: {path} (a link to `{target}`)"));
                if kojibox_kbx::paths::resolve_link(path, target).is_none() {
                    drift.push(format!("link leaves the payload: {path} -> {target}"));
                }
            }
            Found::File { mode, .. } => {
                drift.push(format!("added: {path}"));
                let special = special_bits(*mode);
                if !special.is_empty() {
                    drift.push(format!("mode {mode:04o} ({special} set): {path}"));
                }
            }
            Found::Other => drift.push(format!("added: {path} (not a file, folder or link)")),
        }
    }
    drift
}

fn kind_name(kind: EntryKind) -> &'static str {
    match kind {
        EntryKind::File => "a file",
        EntryKind::Symlink => "a link",
    }
}

fn found_name(found: &Found) -> &'static str {
    match found {
        Found::File { .. } => "a file",
        Found::Symlink { .. } => "a link",
        Found::Dir { .. } => "a folder",
        Found::Other => "a FIFO, socket or device",
    }
}

/// `setuid`, `setgid`, `sticky`, as set in `mode`, or empty.
fn special_bits(mode: u32) -> String {
    [(0o4000, "setuid"), (0o2000, "setgid"), (0o1000, "sticky")]
        .iter()
        .filter(|(bit, _)| mode & bit != 0)
        .map(|(_, name)| *name)
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(unix)]
fn mode_bits(meta: &std::fs::Metadata) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    meta.permissions().mode() & 0o7777
}

#[cfg(not(unix))]
fn mode_bits(meta: &std::fs::Metadata) -> u32 {
    if meta.is_dir() { 0o755 } else { 0o644 }
}

#[cfg(unix)]
fn uid_of(meta: &std::fs::Metadata) -> Option<u32> {
    use std::os::unix::fs::MetadataExt;
    Some(meta.uid())
}

#[cfg(not(unix))]
fn uid_of(_meta: &std::fs::Metadata) -> Option<u32> {
    None
}

/// `None` when `dir`'s file system keeps Unix modes; else why not (`a vfat file system`).
///
/// Linux asks the file system's type (`statfs`): FAT (`MSDOS_SUPER_MAGIC`), exFAT and NTFS have
/// no modes; a FUSE mount (exfat-fuse, ntfs-3g, but also sshfs) is judged by what it shows. Other
/// systems judge by what the files show: every file 0777 (no one packs a payload so).
fn mode_support(dir: &Path, scan: &Scan) -> Option<String> {
    #[cfg(not(unix))]
    {
        let _ = (dir, scan);
        Some("this system has no Unix modes".into())
    }
    #[cfg(unix)]
    {
        let all_0777 = || {
            let mut files = scan.found.values().filter_map(|f| match f {
                Found::File { mode, .. } => Some(*mode),
                _ => None,
            });
            files.next().is_some_and(|m| m & 0o777 == 0o777) && files.all(|m| m & 0o777 == 0o777)
        };
        #[cfg(any(target_os = "linux", target_os = "android"))]
        {
            const MSDOS: u64 = 0x4d44;
            const EXFAT: u64 = 0x2011_bab0;
            const NTFS: u64 = 0x5346_544e;
            const NTFS3: u64 = 0x7366_746e;
            const FUSE: u64 = 0x6573_5546;
            let magic = rustix::fs::statfs(dir)
                .ok()
                .map(|s| (s.f_type as u64) & 0xffff_ffff);
            match magic {
                Some(MSDOS) => Some("a FAT file system (no Unix modes)".into()),
                Some(EXFAT) => Some("an exFAT file system (no Unix modes)".into()),
                Some(NTFS | NTFS3) => Some("an NTFS file system (no Unix modes)".into()),
                Some(FUSE) if all_0777() => {
                    Some("a FUSE file system that shows every file as 0777".into())
                }
                _ => None,
            }
        }
        #[cfg(not(any(target_os = "linux", target_os = "android")))]
        {
            let _ = dir;
            all_0777().then(|| "a file system that shows every file as 0777".into())
        }
    }
}

#[cfg(test)]
#[cfg(unix)]
mod spawn_tests;

#[cfg(test)]
#[cfg(unix)]
mod tests {
    use super::spawn_tests::TempDir;
    use super::*;

    fn entry(path: &str, kind: EntryKind, mode: u32, size: u64, content: &str) -> PayloadEntry {
        PayloadEntry {
            path: path.into(),
            kind,
            mode,
            size,
            content: content.into(),
        }
    }

    fn expected(entries: Vec<PayloadEntry>) -> Expected {
        let entries: BTreeMap<_, _> = entries.into_iter().map(|e| (e.path.clone(), e)).collect();
        let mut dirs = BTreeSet::from([String::new()]);
        for p in entries.keys() {
            if let Some((parent, _)) = p.rsplit_once('/') {
                dirs.insert(parent.to_owned());
            }
        }
        Expected { entries, dirs }
    }

    fn sha(bytes: &[u8]) -> String {
        let (hex, _) = kojibox_home::fs::sha256_of(&mut &bytes[..], &mut [0u8; 64]).unwrap();
        hex
    }

    /// A payload `bin/tool` (0755) + `lib/a` (0644) + `lib/b -> a`, and what signs it.
    fn payload() -> (TempDir, Expected) {
        use std::os::unix::fs::PermissionsExt;
        let dir = TempDir::new();
        let root = dir.path();
        std::fs::create_dir_all(root.join("bin")).unwrap();
        std::fs::create_dir_all(root.join("lib")).unwrap();
        for d in [root, &root.join("bin"), &root.join("lib")] {
            std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        std::fs::write(root.join("bin/tool"), b"#!/bin/sh\n").unwrap();
        std::fs::set_permissions(
            root.join("bin/tool"),
            std::fs::Permissions::from_mode(0o755),
        )
        .unwrap();
        std::fs::write(root.join("lib/a"), b"aaaa").unwrap();
        std::fs::set_permissions(root.join("lib/a"), std::fs::Permissions::from_mode(0o644))
            .unwrap();
        std::os::unix::fs::symlink("a", root.join("lib/b")).unwrap();
        let exp = expected(vec![
            entry("bin/tool", EntryKind::File, 0o755, 10, &sha(b"#!/bin/sh\n")),
            entry("lib/a", EntryKind::File, 0o644, 4, &sha(b"aaaa")),
            entry("lib/b", EntryKind::Symlink, 0, 0, "a"),
        ]);
        (dir, exp)
    }

    const QUICK: Checks = Checks {
        modes: true,
        contents: false,
        owners: None,
    };

    const NO_MODES: Checks = Checks {
        modes: false,
        contents: true,
        owners: None,
    };

    #[test]
    fn an_intact_payload_has_no_drift() {
        let (dir, exp) = payload();
        assert_eq!(
            compare(&exp, &scan(dir.path(), Hash::None), &QUICK),
            Vec::<String>::new()
        );
        let full = Checks {
            modes: true,
            contents: true,
            owners: owners(),
        };
        assert_eq!(
            compare(&exp, &scan(dir.path(), Hash::Every(&exp)), &full),
            Vec::<String>::new()
        );
        assert_eq!(
            mode_support(dir.path(), &scan(dir.path(), Hash::None)),
            None
        );
    }

    #[test]
    fn every_kind_of_drift_is_listed_at_once() {
        use std::os::unix::fs::PermissionsExt;
        let (dir, exp) = payload();
        let root = dir.path();
        std::fs::set_permissions(
            root.join("bin/tool"),
            std::fs::Permissions::from_mode(0o4755),
        )
        .unwrap();
        std::fs::remove_file(root.join("lib/a")).unwrap();
        std::fs::write(root.join("lib/evil.so"), b"x").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", root.join("passwd")).unwrap();
        std::os::unix::fs::symlink("../../../etc", root.join("lib/up")).unwrap();
        std::fs::remove_file(root.join("lib/b")).unwrap();
        std::os::unix::fs::symlink("/etc/shadow", root.join("lib/b")).unwrap();
        std::fs::set_permissions(root.join("lib"), std::fs::Permissions::from_mode(0o777)).unwrap();
        let drift = compare(&exp, &scan(root, Hash::None), &QUICK);
        for want in [
            "mode 4755 (signed 0755; setuid set): bin/tool",
            "missing: lib/a",
            "added: lib/evil.so",
            "added: passwd (a link to `/etc/passwd`)",
            "link leaves the payload: passwd -> /etc/passwd",
            "link leaves the payload: lib/up -> ../../../etc",
            "changed: lib/b (links to `/etc/shadow`, signed `a`)",
            "link leaves the payload: lib/b -> /etc/shadow",
            "folder mode 0777 (at most 0755): lib/",
        ] {
            assert!(
                drift.iter().any(|d| d == want),
                "{want:?} not in {drift:#?}"
            );
        }
    }

    #[test]
    fn setgid_and_group_write_are_drift_and_special_bits_even_without_modes() {
        use std::os::unix::fs::PermissionsExt;
        let (dir, exp) = payload();
        std::fs::set_permissions(
            dir.path().join("lib/a"),
            std::fs::Permissions::from_mode(0o2644),
        )
        .unwrap();
        std::fs::set_permissions(
            dir.path().join("bin/tool"),
            std::fs::Permissions::from_mode(0o775),
        )
        .unwrap();
        let drift = compare(&exp, &scan(dir.path(), Hash::Every(&exp)), &QUICK);
        assert!(
            drift.contains(&"mode 2644 (signed 0644; setgid set): lib/a".to_owned()),
            "{drift:?}"
        );
        assert!(
            drift.contains(&"mode 0775 (signed 0755): bin/tool".to_owned()),
            "{drift:?}"
        );
        let drift = compare(&exp, &scan(dir.path(), Hash::Every(&exp)), &NO_MODES);
        assert_eq!(
            drift,
            vec!["mode 2644 (signed 0644; setgid set): lib/a".to_owned()]
        );
    }

    #[test]
    fn without_modes_contents_are_re_hashed_and_modes_ignored() {
        use std::os::unix::fs::PermissionsExt;
        let (dir, exp) = payload();
        let root = dir.path();
        for f in ["bin/tool", "lib/a"] {
            std::fs::set_permissions(root.join(f), std::fs::Permissions::from_mode(0o777)).unwrap();
        }
        // What a FAT stick shows: no drift from modes alone.
        assert_eq!(
            compare(&exp, &scan(root, Hash::Every(&exp)), &NO_MODES),
            Vec::<String>::new()
        );
        // The heuristic sees a file system that shows every file as 0777 (off Linux; on Linux
        // `statfs` decides, and this is a real file system).
        let quick = scan(root, Hash::None);
        if cfg!(target_os = "linux") {
            assert_eq!(mode_support(root, &quick), None);
        } else {
            assert!(mode_support(root, &quick).is_some());
        }
        // Same size, one byte changed: only a re-hash sees it.
        std::fs::write(root.join("lib/a"), b"aaab").unwrap();
        assert_eq!(
            compare(
                &exp,
                &scan(root, Hash::None),
                &Checks {
                    modes: false,
                    contents: false,
                    owners: None
                }
            ),
            Vec::<String>::new()
        );
        assert_eq!(
            compare(&exp, &scan(root, Hash::Every(&exp)), &NO_MODES),
            vec!["changed: lib/a".to_owned()]
        );
    }

    #[test]
    fn a_fifo_and_an_unreadable_folder_do_not_stop_the_listing() {
        let (dir, exp) = payload();
        let root = dir.path();
        let status = std::process::Command::new("mkfifo")
            .arg(root.join("lib/pipe"))
            .status();
        if status.is_ok_and(|s| s.success()) {
            let drift = compare(&exp, &scan(root, Hash::Every(&exp)), &QUICK);
            assert!(
                drift.contains(&"added: lib/pipe (not a file, folder or link)".to_owned()),
                "{drift:?}"
            );
        }
        // A FIFO where a file was signed: hashing it never blocks.
        std::fs::remove_file(root.join("lib/a")).unwrap();
        if std::process::Command::new("mkfifo")
            .arg(root.join("lib/a"))
            .status()
            .is_ok_and(|s| s.success())
        {
            let drift = compare(&exp, &scan(root, Hash::Every(&exp)), &NO_MODES);
            assert!(
                drift.contains(
                    &"changed: lib/a (a file signed, a FIFO, socket or device found)".to_owned()
                ),
                "{drift:?}"
            );
        }
    }

    #[test]
    fn special_bits_are_named() {
        assert_eq!(special_bits(0o755), "");
        assert_eq!(special_bits(0o6755), "setuid, setgid");
        assert_eq!(special_bits(0o1777), "sticky");
    }
}
