//! Installing a bundle offline, safely and atomically.
//!
//! # Theory of operation
//!
//! 1. **Lock and recover.** One install at a time (`app/state/install.lock`). Whatever an
//!    interrupted install left is dealt with first ([`recover`]).
//! 2. **Verify.** The bundle's signed index is read and its signature checked against the pinned
//!    keys (`app/keys/`) plus the key given with `--pubkey`, before any payload byte is read.
//! 3. **Extract.** The archive is streamed through the strict reader of `kojibox-kbx`: every member
//!    must be one the index names, and is hashed as it is written into a fresh staging folder,
//!    `runtime/.staging/<id>/`, with the mode the index gives. Nothing is written anywhere else.
//! 4. **Finalize.** Only when the whole archive verified: the signed index is stored
//!    (`runtime/indexes/<version>.json` + `.sig`), each payload folder is renamed into its
//!    version-addressed place (`runtime/bin/<name>/<version>/<os>-<arch>`), and
//!    `runtime/manifest.json` is switched atomically: that rename is the commit point. Service
//!    templates (`runtime/services/<name>.json`) are written from the active index afterwards.
//!
//! A crash before the switch leaves the old install in force (new payload folders are complete
//! but unused); after it, the new one. [`recover`] removes staging leftovers and rewrites the
//! templates from the active index, so the next run always finds one consistent install.
//! `runtime/data/` is never touched; in `app/` only the pinned keys, the installer status and the
//! version watermark are written.

use std::cell::{Cell, RefCell};
use std::collections::HashSet;
use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use kojibox_kbx::read::{Limits, Signed, Trust};
use kojibox_manifests::api::Progress;
use kojibox_manifests::bundle::{EntryKind, IndexEntry};
use kojibox_manifests::model::RuntimeManifest;
use kojibox_signing::{PublicKey, TrustStore};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::fsutil::{read_json, write_atomic, write_json};
use crate::home::Home;

/// What to install and how.
#[derive(Debug, Clone, Default)]
pub struct InstallOptions {
    /// A public key to trust (and pin) for this bundle.
    pub pubkey: Option<PathBuf>,
    /// Install every target's payloads, not only this machine's.
    pub all_targets: bool,
    /// Allow a bundle older than the installed one.
    pub allow_downgrade: bool,
    /// Leave the rollback watermark alone (an update raises it once the new version is
    /// healthy, with [`raise_watermark`]).
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

/// The installer's persisted status (`app/state/installer.json`), for `installer.status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct StatusFile {
    phase: String,
    progress: u8,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

/// The highest bundle version ever installed (`app/state/versions.json`): the rollback watermark.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Watermark {
    /// Highest version installed by `install` or an update.
    pub highest_installed: Option<String>,
}

/// `installer.status`: the last install's phase and progress (`idle`/0 when none ran).
pub fn status(home: &Home) -> Result<Progress> {
    let status: Option<StatusFile> = read_json(&home.state().join("installer.json"))?;
    Ok(status.map_or(
        Progress {
            phase: "idle".into(),
            progress: 0,
        },
        |s| Progress {
            phase: s.phase,
            progress: s.progress,
        },
    ))
}

/// Installs `bundle` into `home`. `progress` sees every phase change and percent.
pub fn install(
    home: &Home,
    bundle: &Path,
    options: &InstallOptions,
    progress: &mut dyn FnMut(&Progress),
) -> Result<InstallReport> {
    let _lock = home.lock("install", "install")?;
    let recovered = recover(home)?;
    let mut reporter = Reporter {
        home,
        last: None,
        sink: progress,
    };
    reporter.phase("verify", 0);
    let result = install_locked(home, bundle, options, &mut reporter);
    match &result {
        Ok(_) => reporter.phase("done", 100),
        Err(e) => reporter.failed(e),
    }
    let _ = crate::fsutil::sync_dir(&home.state());
    result.map(|mut report| {
        report.recovered = recovered;
        report
    })
}

struct Reporter<'a> {
    home: &'a Home,
    last: Option<Progress>,
    sink: &'a mut dyn FnMut(&Progress),
}

impl Reporter<'_> {
    fn phase(&mut self, phase: &str, progress: u8) {
        let update = Progress {
            phase: phase.into(),
            progress,
        };
        if self.last.as_ref() == Some(&update) {
            return;
        }
        // Persisted at phase changes and every 10 percent: another process reading
        // `installer.status` sees it move, without a file write per percent.
        let new_phase = self
            .last
            .as_ref()
            .is_none_or(|l| l.phase != phase || l.progress / 10 != progress / 10);
        (self.sink)(&update);
        self.last = Some(update);
        if new_phase {
            let _ = write_json(
                &self.home.state().join("installer.json"),
                &StatusFile {
                    phase: phase.into(),
                    progress,
                    error: None,
                },
            );
        }
    }

    fn failed(&mut self, error: &Error) {
        let progress = self.last.as_ref().map_or(0, |l| l.progress);
        let update = Progress {
            phase: "failed".into(),
            progress,
        };
        (self.sink)(&update);
        let _ = write_json(
            &self.home.state().join("installer.json"),
            &StatusFile {
                phase: "failed".into(),
                progress,
                error: Some(error.to_string()),
            },
        );
    }
}

/// One payload the bundle carries, and what to do with it.
#[derive(Debug, Clone)]
struct Payload {
    label: String,
    root: String,
    install: bool,
}

/// Why the reader was stopped from inside a callback.
enum Stop {
    Already,
    Refused(Error),
}

fn install_locked(
    home: &Home,
    bundle: &Path,
    options: &InstallOptions,
    reporter: &mut Reporter<'_>,
) -> Result<InstallReport> {
    let mut store = TrustStore::open(home.keys())?;
    let given = options.pubkey.as_deref().map(PublicKey::read).transpose()?;
    if store.is_empty() && given.is_none() {
        return Err(Error::invalid(
            "No trusted key",
            format!(
                "{} has no pinned key yet: pass --pubkey KEY.pub (the bundle publisher's public key) for the first install",
                home.root().display()
            ),
        ));
    }
    let trust = Trust {
        key: given.as_ref(),
        store: (!store.is_empty()).then_some(&store),
    };
    let file = File::open(bundle).map_err(Error::io("open bundle", bundle))?;
    let total = file
        .metadata()
        .map_err(Error::io("read", bundle))?
        .len()
        .max(1);
    let current: Option<RuntimeManifest> = read_json(&home.manifest())?;
    let host = kojibox_kbx::paths::host_target();

    let staging = home.staging().join(format!(
        "{}-{}",
        std::process::id(),
        jiff::Timestamp::now().as_nanosecond()
    ));
    // Whatever happens below, this install's staging folder (and the parent, when empty) goes.
    let _guard = StagingGuard {
        home,
        dir: staging.clone(),
    };
    let read = Arc::new(AtomicU64::new(0));
    let stop: RefCell<Option<Stop>> = RefCell::new(None);
    let payloads: RefCell<Vec<Payload>> = RefCell::new(Vec::new());
    let created: RefCell<HashSet<PathBuf>> = RefCell::new(HashSet::new());
    let progress = Cell::new(0u8);
    let reporter = RefCell::new(reporter);
    let fault_at = crate::fault::armed("install:extract");

    let reader = CountingReader {
        inner: BufReader::with_capacity(1 << 20, file),
        count: Arc::clone(&read),
    };
    let on_index = |signed: &Signed| -> Result<(), kojibox_kbx::Error> {
        match plan(home, signed, current.as_ref(), host.as_deref(), options) {
            Ok(list) => {
                *payloads.borrow_mut() = list;
                reporter.borrow_mut().phase("extract", 5);
                Ok(())
            }
            Err(stop_reason) => {
                *stop.borrow_mut() = Some(stop_reason);
                Err(kojibox_kbx::Error::InvalidIndex("install stopped".into()))
            }
        }
    };
    let on_member = |entry: &IndexEntry, data: Option<&mut dyn Read>| -> io::Result<()> {
        let percent = 5 + (85 * read.load(Ordering::Relaxed) / total).min(85) as u8;
        if percent != progress.get() {
            progress.set(percent);
            reporter.borrow_mut().phase("extract", percent);
        }
        let wanted = payloads
            .borrow()
            .iter()
            .any(|p| p.install && entry.path.starts_with(&format!("{}/", p.root)));
        if !wanted {
            return Ok(());
        }
        let dest = staging.join(&entry.path);
        if let Some(parent) = dest.parent()
            && created.borrow_mut().insert(parent.to_owned())
        {
            std::fs::create_dir_all(parent)?;
        }
        let written = match (entry.kind, data) {
            (EntryKind::File, Some(data)) => write_file(&dest, data, entry.mode),
            (EntryKind::Symlink, _) => {
                make_symlink(entry.target.as_deref().unwrap_or_default(), &dest)
            }
            (EntryKind::File, None) => Err(io::Error::other("file member without data")),
        };
        // Mid-extract, with at least this member in staging (however the reads were buffered).
        if fault_at && percent >= 45 {
            crate::fault::fire("install:extract");
        }
        written
    };
    let limits = Limits::default();
    let outcome = kojibox_kbx::read::read_verified(reader, trust, &limits, on_index, on_member);
    let signed = match (outcome, stop.into_inner()) {
        (_, Some(Stop::Already)) => {
            let version = current.map(|m| m.version).unwrap_or_default();
            return Ok(InstallReport {
                version,
                changed: false,
                installed: vec![],
                kept: vec![],
                key_id: String::new(),
                pinned: false,
                recovered: vec![],
            });
        }
        (_, Some(Stop::Refused(e))) => return Err(e),
        (Err(e), None) => return Err(e.into()),
        (Ok(signed), None) => signed,
    };
    let reporter = reporter.into_inner();
    reporter.phase("finalize", 90);
    // Pin the signing key when the user named it (the first install, or an explicit --pubkey),
    // before anything is switched: an install that becomes active must never depend on a key
    // that is not pinned.
    let signer = signed
        .signature
        .split(':')
        .nth(1)
        .unwrap_or_default()
        .to_owned();
    let mut pinned = false;
    if let Some(key) = given.as_ref().filter(|k| k.key_id().to_string() == signer)
        && store.get(key.key_id()).is_none()
    {
        store.add(key)?;
        pinned = true;
    }
    let payloads = payloads.into_inner();
    finalize(home, &signed, &payloads, &staging, !options.defer_watermark)?;
    Ok(InstallReport {
        version: signed.index.manifest.version.clone(),
        changed: true,
        installed: payloads
            .iter()
            .filter(|p| p.install)
            .map(|p| p.label.clone())
            .collect(),
        kept: payloads
            .iter()
            .filter(|p| !p.install)
            .map(|p| p.label.clone())
            .collect(),
        key_id: signer,
        pinned,
        recovered: vec![],
    })
}

/// Decides, once the index is verified, what to extract; or why not to go on.
fn plan(
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
    let selected: Vec<_> = manifest
        .services
        .iter()
        .filter(|s| options.all_targets || host == Some(format!("{}-{}", s.os, s.arch).as_str()))
        .collect();
    if selected.is_empty() {
        let targets: Vec<String> = manifest
            .services
            .iter()
            .map(|s| format!("{}-{}", s.os, s.arch))
            .collect();
        return Err(Stop::Refused(Error::invalid(
            "No payload for this machine",
            format!(
                "the bundle has no payload for {} (it has: {}); pass --all-targets to install them anyway",
                host.unwrap_or("this platform"),
                targets.join(", ")
            ),
        )));
    }
    let stored = stored_checksums(home).map_err(Stop::Refused)?;
    let mut out = Vec::new();
    for service in selected {
        let root = kojibox_kbx::paths::payload_root(
            &service.name,
            &service.version,
            &service.os,
            &service.arch,
        );
        let label = format!(
            "{} {} {}-{}",
            service.name, service.version, service.os, service.arch
        );
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
                    crate::runtime::scan_payload(&home.join(&root)).map_err(Stop::Refused)?;
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

/// `(payload root, checksum)` of every payload named by a stored index.
fn stored_checksums(home: &Home) -> Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    for (_, index) in crate::runtime::stored_indexes(home)? {
        for s in &index.manifest.services {
            out.push((
                kojibox_kbx::paths::payload_root(&s.name, &s.version, &s.os, &s.arch),
                s.checksum.clone(),
            ));
        }
    }
    Ok(out)
}

/// Moves verified payloads into place and switches the manifest.
fn finalize(
    home: &Home,
    signed: &Signed,
    payloads: &[Payload],
    staging: &Path,
    watermark: bool,
) -> Result<()> {
    if payloads.iter().any(|p| p.install) {
        sync_tree(staging)?;
    }
    let version = &signed.index.manifest.version;
    let indexes = home.indexes();
    write_atomic(
        &indexes.join(format!("{version}.json")),
        &signed.index_bytes,
    )?;
    write_atomic(
        &indexes.join(format!("{version}.sig")),
        signed.signature.as_bytes(),
    )?;
    for payload in payloads.iter().filter(|p| p.install) {
        let from = staging.join(&payload.root);
        let to = home.join(&payload.root);
        let parent = to.parent().unwrap_or(home.root());
        std::fs::create_dir_all(parent).map_err(Error::io("create folder", parent))?;
        std::fs::rename(&from, &to).map_err(Error::io("move payload into", &to))?;
        crate::fsutil::sync_dir(parent)?;
    }
    crate::fault::point("install:before-switch");
    let mut manifest = signed.installed_manifest();
    let roots: HashSet<&str> = payloads.iter().map(|p| p.root.as_str()).collect();
    manifest.services.retain(|s| {
        roots.contains(
            kojibox_kbx::paths::payload_root(&s.name, &s.version, &s.os, &s.arch).as_str(),
        )
    });
    write_json(&home.manifest(), &manifest)?;
    crate::fault::point("install:after-switch");
    write_templates(home, signed)?;
    if watermark {
        raise_watermark(home, version)?;
    }
    Ok(())
}

/// Makes `manifest` (a version whose payloads and signed index are still in the home) the
/// installed one again: the manifest is switched atomically, then its service templates are
/// written from its stored index. Used to roll an update back.
pub fn reactivate(home: &Home, manifest: &RuntimeManifest) -> Result<()> {
    let signed = crate::runtime::load_index(home, &manifest.version)?.ok_or_else(|| {
        Error::RuntimeMissing {
            detail: format!(
                "the signed index of {} is no longer in {}",
                manifest.version,
                home.indexes().display()
            ),
        }
    })?;
    write_json(&home.manifest(), manifest)?;
    write_templates(home, &signed)?;
    Ok(())
}

/// The highest version ever installed (the rollback watermark), if any.
pub fn watermark(home: &Home) -> Result<Option<String>> {
    Ok(read_json::<Watermark>(&home.state().join("versions.json"))?
        .and_then(|w| w.highest_installed))
}

/// Writes `runtime/services/<name>.json` from an index's templates (only those that differ).
fn write_templates(home: &Home, signed: &Signed) -> Result<bool> {
    let mut changed = false;
    for (name, template) in &signed.index.templates {
        if !kojibox_manifests::recipe::is_service_id(name) {
            return Err(Error::invalid(
                "Invalid template name",
                format!("{name:?} is not a service id"),
            ));
        }
        let path = home.services().join(format!("{name}.json"));
        let mut bytes = serde_json::to_vec_pretty(template)
            .map_err(|e| Error::io("serialize", &path)(e.into()))?;
        bytes.push(b'\n');
        if std::fs::read(&path).ok().as_deref() != Some(bytes.as_slice()) {
            write_atomic(&path, &bytes)?;
            changed = true;
        }
    }
    Ok(changed)
}

/// Raises the rollback watermark to `version` when it is higher.
pub fn raise_watermark(home: &Home, version: &str) -> Result<()> {
    let path = home.state().join("versions.json");
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
        write_json(&path, &mark)?;
    }
    Ok(())
}

/// Cleans up after an interrupted install: removes staging leftovers and rewrites the service
/// templates from the active index. Returns what it found, for the user.
pub fn recover(home: &Home) -> Result<Vec<String>> {
    // An interrupted update decides which version is installed: it goes first.
    let mut found = crate::updater::recover(home)?;
    let staging = home.staging();
    if staging.exists() {
        let files = count_files(&staging);
        std::fs::remove_dir_all(&staging).map_err(Error::io("remove", &staging))?;
        found.push(format!("removed the staging folder of an interrupted install ({files} files); the installed version is unchanged"));
    }
    if let Some(manifest) = read_json::<RuntimeManifest>(&home.manifest())? {
        let active = crate::runtime::load_index(home, &manifest.version)?;
        if let Some(signed) = active
            && write_templates(home, &signed)?
        {
            found.push(format!(
                "finished an interrupted install of {}: wrote its service templates",
                manifest.version
            ));
        }
        // An unproven update's version never becomes the watermark.
        if !crate::updater::interrupted(home) {
            raise_watermark(home, &manifest.version)?;
        }
    }
    Ok(found)
}

/// [`recover`], unless an install is running right now (its staging is live): then nothing is
/// touched and the note says so.
pub fn recover_if_idle(home: &Home) -> Result<Vec<String>> {
    match home.lock("install", "install") {
        Ok(_lock) => recover(home),
        Err(Error::Busy(_)) => Ok(vec![
            "an install is running; its staging folder was left alone".into(),
        ]),
        Err(e) => Err(e),
    }
}

/// Removes an install's staging folder on every way out of it.
struct StagingGuard<'a> {
    home: &'a Home,
    dir: PathBuf,
}

impl Drop for StagingGuard<'_> {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
        let _ = std::fs::remove_dir(self.home.staging());
    }
}

fn count_files(dir: &Path) -> usize {
    std::fs::read_dir(dir).map_or(0, |entries| {
        entries
            .flatten()
            .map(|e| {
                if e.path().is_dir() && !e.path().is_symlink() {
                    count_files(&e.path())
                } else {
                    1
                }
            })
            .sum()
    })
}

/// Makes everything written under `dir` durable with one `syncfs` (far cheaper than an fsync per
/// file), then syncs the folder itself.
fn sync_tree(dir: &Path) -> Result<()> {
    let handle = File::open(dir).map_err(Error::io("open", dir))?;
    #[cfg(target_os = "linux")]
    rustix::fs::syncfs(&handle).map_err(|e| Error::io("sync", dir)(e.into()))?;
    #[cfg(not(target_os = "linux"))]
    handle.sync_all().map_err(Error::io("sync", dir))?;
    Ok(())
}

fn write_file(dest: &Path, data: &mut dyn Read, mode: u32) -> io::Result<()> {
    let mut file = File::create_new(dest)?;
    let written = io::copy(data, &mut file)?;
    // Start writing the file back to disk now, while the rest of the bundle is decompressed,
    // so the one `syncfs` before the switch has little left to wait for.
    #[cfg(target_os = "linux")]
    if written >= 64 << 10 {
        let _ = rustix::fs::fadvise(&file, 0, None, rustix::fs::Advice::DontNeed);
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(std::fs::Permissions::from_mode(mode & 0o777))?;
    }
    #[cfg(not(unix))]
    let _ = mode;
    Ok(())
}

fn make_symlink(target: &str, dest: &Path) -> io::Result<()> {
    #[cfg(unix)]
    return std::os::unix::fs::symlink(target, dest);
    #[cfg(windows)]
    return std::os::windows::fs::symlink_file(target.replace('/', "\\"), dest);
}

struct CountingReader<R> {
    inner: R,
    count: Arc<AtomicU64>,
}

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}
