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

mod extract;
mod options;
mod plan;
mod status;

use std::collections::HashSet;
use std::fs::File;
use std::io::BufReader;
use std::ops::ControlFlow;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use kojibox_home::fs::{read_json, write_atomic, write_json};
use kojibox_home::{Home, LockName};
use kojibox_kbx::read::{Limits, Signed, Trust};
use kojibox_manifests::api::Progress;
use kojibox_manifests::model::RuntimeManifest;
use kojibox_signing::{PublicKey, TrustStore};

use crate::activate::{raise_watermark, write_templates};
use crate::error::{Error, Result};
use extract::{CountingReader, Extraction, StagingGuard, sync_tree};
pub use options::{InstallOptions, InstallReport};
use plan::Payload;
use status::Reporter;
pub use status::status;

/// Installs `bundle` into `home`. `progress` sees every phase change and percent.
pub fn install(
    home: &Home,
    bundle: &Path,
    options: &InstallOptions,
    progress: &mut dyn FnMut(&Progress),
) -> Result<InstallReport> {
    let _lock = home.lock(LockName::Install)?;
    let recovered = recover(home)?;
    let mut reporter = Reporter::new(home, progress);
    reporter.phase("verify", 0);
    let result = install_locked(home, bundle, options, &mut reporter);
    match &result {
        Ok(_) => reporter.phase("done", 100),
        Err(e) => reporter.failed(e),
    }
    let _ = kojibox_home::fs::sync_dir(&home.state());
    result.map(|mut report| {
        report.recovered = recovered;
        report
    })
}

fn install_locked(
    home: &Home,
    bundle: &Path,
    options: &InstallOptions,
    reporter: &mut Reporter<'_>,
) -> Result<InstallReport> {
    // The file first: a wrong path says so before anything about keys.
    let file = open_bundle(bundle)?;
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
    let reader = CountingReader {
        inner: BufReader::with_capacity(1 << 20, file),
        count: Arc::clone(&read),
    };
    let mut extraction = Extraction::new(
        home,
        current.as_ref(),
        host.as_deref(),
        options,
        &staging,
        reporter,
        read,
        total,
    );
    let outcome =
        kojibox_kbx::read::read_verified(reader, trust, &Limits::default(), &mut extraction)?;
    let signed = match outcome {
        ControlFlow::Continue(signed) => signed,
        ControlFlow::Break(e) => return Err(e),
    };
    if extraction.already {
        return Ok(InstallReport {
            version: signed.index.manifest.version.clone(),
            changed: false,
            installed: vec![],
            kept: vec![],
            key_id: String::new(),
            pinned: false,
            recovered: vec![],
        });
    }
    let payloads = std::mem::take(&mut extraction.payloads);
    reporter.phase("finalize", 90);
    // Pin the signing key when the user named it (the first install, or an explicit --pubkey),
    // before anything is switched: an install that becomes active must never depend on a key
    // that is not pinned.
    let signer = signed.parsed_signature()?.key_id();
    let mut pinned = false;
    if let Some(key) = given.as_ref().filter(|k| k.key_id() == signer)
        && store.get(key.key_id()).is_none()
    {
        // `app/keys` 0700 whatever the umask, never through a link, before a key is pinned.
        kojibox_home::fs::create_dir(home, &home.keys())?;
        store.add(key)?;
        pinned = true;
    }
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
        key_id: signer.to_string(),
        pinned,
        recovered: vec![],
    })
}

/// Opens the bundle file: a missing one is `NOT_FOUND`; anything but a regular file (a FIFO, a
/// device, a folder) is refused without blocking (opened non-blocking, then checked), so the
/// install lock is never held waiting on a pipe nobody writes.
fn open_bundle(bundle: &Path) -> Result<File> {
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32);
    }
    let file = options.open(bundle).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => Error::NotFound {
            detail: format!("no bundle at {}: check the path", bundle.display()),
        },
        _ => Error::io("open bundle", bundle)(e),
    })?;
    let meta = file.metadata().map_err(Error::io("read", bundle))?;
    if !meta.is_file() {
        return Err(Error::invalid(
            "Not a bundle file",
            format!(
                "{} is not a regular file (a folder, a pipe or a device): give the path of a .kbx file",
                bundle.display()
            ),
        ));
    }
    Ok(file)
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
    write_atomic(home, &home.index_file(version), &signed.index_bytes)?;
    write_atomic(
        home,
        &home.index_signature(version),
        signed.signature.as_bytes(),
    )?;
    for payload in payloads.iter().filter(|p| p.install) {
        let from = staging.join(&payload.root);
        let to = home.join(&payload.root);
        let parent = to.parent().unwrap_or(home.root());
        kojibox_home::fs::create_dir(home, parent)?;
        std::fs::rename(&from, &to).map_err(Error::io("move payload into", &to))?;
        kojibox_home::fs::sync_dir(parent)?;
    }
    kojibox_home::fault::point("install:before-switch");
    let mut manifest = signed.installed_manifest();
    let roots: HashSet<&str> = payloads.iter().map(|p| p.root.as_str()).collect();
    manifest
        .services
        .retain(|s| roots.contains(s.payload_root().as_str()));
    write_json(home, &home.manifest(), &manifest)?;
    kojibox_home::fault::point("install:after-switch");
    write_templates(home, signed)?;
    if watermark {
        raise_watermark(home, version)?;
    }
    Ok(())
}

/// Cleans up after an interrupted install: removes staging leftovers and rewrites the service
/// templates from the active index. Returns what it found, for the user.
pub fn recover(home: &Home) -> Result<Vec<String>> {
    // An interrupted update decides which version is installed: it goes first.
    let mut found = crate::journal::recover_interrupted(home)?;
    let staging = home.staging();
    if staging.exists() {
        let files = count_files(&staging);
        std::fs::remove_dir_all(&staging).map_err(Error::io("remove", &staging))?;
        match found.last_mut() {
            // The update's install left it: one event, one note (never "unchanged" beside
            // "rolled back").
            Some(update) => update.push_str(&format!(
                "; removed the staging folder it left ({files} files)"
            )),
            None => found.push(format!("removed the staging folder of an interrupted install ({files} files); the installed version is unchanged")),
        }
    }
    if let Some(manifest) = read_json::<RuntimeManifest>(&home.manifest())? {
        let active = crate::installed::load_index(home, &manifest.version)?;
        if let Some(signed) = active
            && write_templates(home, &signed)?
        {
            found.push(format!(
                "finished an interrupted install of {}: wrote its service templates",
                manifest.version
            ));
        }
        // An unproven update's version never becomes the watermark.
        if !crate::journal::interrupted(home) {
            raise_watermark(home, &manifest.version)?;
        }
    }
    Ok(found)
}

/// [`recover`], unless an install is running right now (its staging is live): then nothing is
/// touched and the note says so.
pub fn recover_if_idle(home: &Home) -> Result<Vec<String>> {
    match home.lock(LockName::Install) {
        Ok(_lock) => recover(home),
        Err(e) if e.is_busy() => Ok(vec![
            "an install is running; its staging folder was left alone".into(),
        ]),
        Err(e) => Err(e.into()),
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
