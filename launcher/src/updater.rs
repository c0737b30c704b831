//! Signed updates: `updater.check`, `updater.apply`, and `kojibox update rollback`.
//!
//! # Theory of operation
//!
//! An update repository (written by `kojibox-bundle publish`) is a folder or a static HTTP
//! server with `channels/<channel>.json` (a signed [`ChannelIndex`]) and `bundles/*.kbx`.
//! Settings `updateSource` says where it is; `AppConfig.updateChannel` which channel to follow.
//!
//! **Check.** The channel file is fetched (at most 64 KiB, with a timeout), its signature
//! verified against the pinned keys (`app/keys/`), its channel and expiry checked, and its
//! version compared (semver) with the installed one.
//!
//! **Apply.** After a fresh check: the version asked must be the channel's, and not below the
//! rollback watermark (the highest version ever installed). The bundle is downloaded into
//! `app/cache/updates/` (resuming a `.part`, never more bytes than the index declares) and its
//! sha256 compared with the signed one; then it is installed by the installer (which verifies
//! its signature against the pinned keys, extracts beside the current version and switches the
//! manifest atomically). The services whose version changed and were running are restarted and
//! must become healthy; if one does not, the previous manifest is switched back and they are
//! restarted on the old version, and the answer is `UPDATE_FAILED`. Only a healthy update raises
//! the watermark and emits `runtime:updated`. Phases go out as `update:progress`. Last, when
//! the bundle carries kojibox itself for this machine (a payload named `kojibox`) and it
//! differs from the running executable, the executable is replaced ([`replace_self`]) and the
//! daemon restarts itself on it.
//!
//! **Journal.** Before the install, the previous manifest is saved
//! (`app/state/update/previous.json`) and a journal written (`app/state/update/journal.json`).
//! A process killed at any point leaves the journal; [`recover`] (run before anything else at
//! daemon start and by `kojibox update`) rolls a switched-but-unproven update back, so a home
//! is always on one version, never a mix. Data folders are never touched.

use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use kojibox_manifests::api::{Progress, UpdateCheck};
use kojibox_manifests::channel::{ChannelIndex, MAX_CHANNEL_FILE, SignedChannel};
use kojibox_manifests::event::{Event, UpdateAvailable};
use kojibox_manifests::model::{RuntimeManifest, ServiceStatus, UpdateChannel};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::fsutil::{read_json, write_json};
use crate::home::Home;
use crate::supervisor::Supervisor;
use crate::task::blocking;

/// The payload name of kojibox itself: a bundle may carry the launcher for each target under
/// this name (`runtime/bin/kojibox/<version>/<os>-<arch>/kojibox`). It is never supervised.
pub const LAUNCHER: &str = "kojibox";

/// What a good update did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Applied {
    /// kojibox itself was replaced: the running process must restart to use it.
    pub self_updated: bool,
}

/// How long a restarted service has to become healthy.
pub const HEALTH_TIMEOUT: Duration = Duration::from_secs(90);
/// How long restarted services must stay running before the update counts as good.
pub const SETTLE: Duration = Duration::from_secs(1);

/// Where updates come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A repository folder.
    Folder(PathBuf),
    /// A repository served over HTTP(S) (the base URL, without a trailing `/`).
    Http(String),
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Folder(p) => write!(f, "{}", p.display()),
            Source::Http(u) => f.write_str(u),
        }
    }
}

/// The configured source (settings `updateSource`).
pub fn source(home: &Home) -> Result<Source> {
    let settings = crate::settings::Settings::load(home)?;
    let Some(text) = settings.update_source.filter(|s| !s.trim().is_empty()) else {
        return Err(Error::UpdateFailed {
            detail: format!(
                "no update source is set: put \"updateSource\": \"/path/to/repo\" (a folder) or \
                 \"https://host/repo\" in {}",
                home.config().join("settings.json").display()
            ),
        });
    };
    if text.starts_with("http://") || text.starts_with("https://") {
        return Ok(Source::Http(text.trim_end_matches('/').to_owned()));
    }
    let path = Path::new(&text);
    Ok(Source::Folder(if path.is_absolute() {
        path.to_owned()
    } else {
        home.join(path)
    }))
}

/// What the channel offers, verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offer {
    /// The verified index.
    pub index: ChannelIndex,
    /// The installed version, if any.
    pub installed: Option<String>,
    /// Whether the channel's version is newer than the installed one.
    pub available: bool,
}

impl Offer {
    /// The contract's answer to `updater.check`.
    pub fn to_check(&self) -> UpdateCheck {
        UpdateCheck {
            available: self.available,
            version: self.index.version.clone(),
        }
    }
}

fn channel_name(channel: UpdateChannel) -> &'static str {
    match channel {
        UpdateChannel::Stable => "stable",
        UpdateChannel::Beta => "beta",
    }
}

/// `updater.check`: fetches and verifies the channel index of the app's channel.
pub fn check(home: &Home) -> Result<Offer> {
    let channel = channel_name(crate::config::get_app(home)?.update_channel);
    let source = source(home)?;
    let rel = format!("channels/{channel}.json");
    let bytes = fetch_small(&source, &rel, MAX_CHANNEL_FILE)?;
    let file: SignedChannel =
        kojibox_manifests::from_json_slice(&bytes).map_err(|e| Error::UpdateFailed {
            detail: format!("{source}/{rel} is not a channel index: {e}"),
        })?;
    let index = file.index;
    let refused = |why: String| Error::UpdateSignatureInvalid {
        detail: format!(
            "Signature verification failed for the {channel} channel index (version {}): {why}",
            index.version
        ),
    };
    let signature = kojibox_signing::Signature::from_str(&file.signature)
        .map_err(|e| refused(e.to_string()))?;
    let store = kojibox_signing::TrustStore::open(home.keys())?;
    store
        .verify(&index.message(), &signature)
        .map_err(|e| refused(e.to_string()))?;
    if index.channel != channel {
        return Err(Error::UpdateFailed {
            detail: format!(
                "{source}/{rel} is signed for the {} channel, not {channel}: refused",
                index.channel
            ),
        });
    }
    let expires: jiff::Timestamp = index.expires_at.parse().map_err(|e| Error::UpdateFailed {
        detail: format!(
            "the index's expiry `{}` is not a time: {e}",
            index.expires_at
        ),
    })?;
    if expires <= jiff::Timestamp::now() {
        return Err(Error::UpdateFailed {
            detail: format!(
                "the {channel} channel index (version {}) expired at {}: an expired index is \
                 never trusted; the publisher must publish it again (kojibox-bundle publish), \
                 or point updateSource at a fresh copy",
                index.version, index.expires_at
            ),
        });
    }
    let offered = semver::Version::parse(&index.version).map_err(|e| Error::UpdateFailed {
        detail: format!(
            "the channel's version `{}` is not semver: {e}",
            index.version
        ),
    })?;
    let installed = read_json::<RuntimeManifest>(&home.manifest())?.map(|m| m.version);
    let available = match installed.as_deref().map(semver::Version::parse) {
        Some(Ok(current)) => offered > current,
        _ => true,
    };
    Ok(Offer {
        index,
        installed,
        available,
    })
}

/// Reads a small file of the repository, refusing more than `cap` bytes.
fn fetch_small(source: &Source, rel: &str, cap: u64) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    let too_big = || Error::UpdateFailed {
        detail: format!("{source}/{rel} is larger than {} KiB: refused", cap >> 10),
    };
    match source {
        Source::Folder(dir) => {
            let path = dir.join(rel);
            let file = std::fs::File::open(&path).map_err(|e| Error::UpdateFailed {
                detail: if e.kind() == std::io::ErrorKind::NotFound {
                    format!(
                        "{} does not exist: is updateSource ({source}) an update repository \
                         (kojibox-bundle publish), and does it have this channel?",
                        path.display()
                    )
                } else {
                    format!("could not read {}: {e}", path.display())
                },
            })?;
            file.take(cap + 1)
                .read_to_end(&mut out)
                .map_err(Error::io("read", &path))?;
        }
        Source::Http(base) => {
            let url = format!("{base}/{rel}");
            let response = http()?
                .get(&url)
                .send()
                .and_then(reqwest::blocking::Response::error_for_status)
                .map_err(|e| Error::UpdateFailed {
                    detail: format!("could not fetch {url}: {e}"),
                })?;
            if response.content_length().is_some_and(|n| n > cap) {
                return Err(too_big());
            }
            response
                .take(cap + 1)
                .read_to_end(&mut out)
                .map_err(|e| Error::UpdateFailed {
                    detail: format!("could not fetch {url}: {e}"),
                })?;
        }
    }
    if out.len() as u64 > cap {
        return Err(too_big());
    }
    Ok(out)
}

fn http() -> Result<reqwest::blocking::Client> {
    reqwest::blocking::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(60))
        // A repository is static files: a redirect is not followed anywhere else.
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| Error::UpdateFailed {
            detail: format!("could not start the HTTP client: {e}"),
        })
}

/// Downloads the bundle an index names into `app/cache/updates/`, resuming a partial download,
/// never taking more bytes than declared, and checking the signed sha256.
pub fn download(
    home: &Home,
    source: &Source,
    index: &ChannelIndex,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<PathBuf> {
    let invalid = |why: String| Error::UpdateSignatureInvalid {
        detail: format!(
            "Signature verification failed for version {}: {why}",
            index.version
        ),
    };
    if index.bundle.contains("..") || index.bundle.starts_with('/') {
        return Err(invalid(format!(
            "the index names `{}`, outside the repository",
            index.bundle
        )));
    }
    let dir = home.join("app/cache/updates");
    std::fs::create_dir_all(&dir).map_err(Error::io("create folder", &dir))?;
    let done = dir.join(format!("kojibox-{}.kbx", index.version));
    let part = dir.join(format!("kojibox-{}.kbx.part", index.version));
    if done.exists() && hash(&done)? == (index.sha256.clone(), index.size) {
        return Ok(done);
    }
    let mut offset = std::fs::metadata(&part).map_or(0, |m| m.len());
    if offset > index.size {
        offset = 0;
    }
    if offset == index.size {
        // All there already (killed before the rename): only the check is left.
        return finish(&part, &done, index).map_err(invalid);
    }
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(false)
        .write(true)
        .truncate(false)
        .open(&part)
        .map_err(Error::io("open", &part))?;
    file.set_len(offset).map_err(Error::io("write", &part))?;
    file.seek(std::io::SeekFrom::Start(offset))
        .map_err(Error::io("write", &part))?;
    let mut reader: Box<dyn Read> = match source {
        Source::Folder(repo) => {
            let path = repo.join(&index.bundle);
            let mut f = std::fs::File::open(&path).map_err(|e| Error::UpdateFailed {
                detail: format!("could not read {}: {e}", path.display()),
            })?;
            f.seek(std::io::SeekFrom::Start(offset))
                .map_err(Error::io("read", &path))?;
            Box::new(f)
        }
        Source::Http(base) => {
            let url = format!("{base}/{}", index.bundle);
            let mut request = http()?.get(&url);
            if offset > 0 {
                request = request.header("Range", format!("bytes={offset}-"));
            }
            let response = request
                .send()
                .and_then(reqwest::blocking::Response::error_for_status)
                .map_err(|e| Error::UpdateFailed {
                    detail: format!("could not fetch {url}: {e}"),
                })?;
            let resumed = response.status() == reqwest::StatusCode::PARTIAL_CONTENT
                && response
                    .headers()
                    .get(reqwest::header::CONTENT_RANGE)
                    .and_then(|v| v.to_str().ok())
                    .is_some_and(|v| v.starts_with(&format!("bytes {offset}-")));
            if offset > 0 && !resumed {
                // The server ignored the range: start over.
                offset = 0;
                file.set_len(0).map_err(Error::io("write", &part))?;
                file.seek(std::io::SeekFrom::Start(0))
                    .map_err(Error::io("write", &part))?;
            }
            Box::new(response)
        }
    };
    let mut buf = vec![0u8; 1 << 20];
    let mut have = offset;
    loop {
        let n = reader.read(&mut buf).map_err(|e| Error::UpdateFailed {
            detail: format!(
                "downloading {} stopped at {have} bytes ({e}); run the update again to resume",
                index.bundle
            ),
        })?;
        if n == 0 {
            break;
        }
        have += n as u64;
        if have > index.size {
            drop(file);
            let _ = std::fs::remove_file(&part);
            return Err(invalid(format!(
                "{} is larger than the {} bytes its signed index declares",
                index.bundle, index.size
            )));
        }
        file.write_all(&buf[..n])
            .map_err(Error::io("write", &part))?;
        progress(have, index.size);
    }
    file.sync_all().map_err(Error::io("sync", &part))?;
    drop(file);
    finish(&part, &done, index).map_err(invalid)
}

/// Checks a complete download against the signed index and gives it its final name; a
/// mismatch removes it (the next try starts over).
fn finish(part: &Path, done: &Path, index: &ChannelIndex) -> std::result::Result<PathBuf, String> {
    let (sha256, size) = hash(part).map_err(|e| e.to_string())?;
    if size != index.size || sha256 != index.sha256 {
        let _ = std::fs::remove_file(part);
        return Err(format!(
            "the bundle's sha256 is {sha256} ({size} bytes); its signed index says {} ({} bytes)",
            index.sha256, index.size
        ));
    }
    std::fs::rename(part, done).map_err(|e| format!("could not rename {}: {e}", part.display()))?;
    Ok(done.to_owned())
}

fn hash(path: &Path) -> Result<(String, u64)> {
    let mut file = std::fs::File::open(path).map_err(Error::io("open", path))?;
    crate::fsutil::sha256_of(&mut file, &mut vec![0u8; 1 << 20]).map_err(Error::io("read", path))
}

/// `app/state/update/journal.json`: an update in progress, with the manifest to go back to.
/// `app/state/update/last.json` has the same shape: the last update that went through, for
/// `rollback`. Each is one file written atomically, so the manifest to go back to and the
/// versions it belongs to never disagree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Journal {
    from: String,
    to: String,
    started_at: String,
    previous: RuntimeManifest,
    /// The update replaced kojibox itself (the one before is `kojibox.prev`).
    #[serde(default)]
    replaced_kojibox: bool,
}

/// Whether an update was interrupted (its journal is there): until it is recovered, the
/// installed version is unproven (the installer then leaves the watermark alone).
pub fn interrupted(home: &Home) -> bool {
    journal_path(home).exists()
}

fn journal_path(home: &Home) -> PathBuf {
    home.state().join("update/journal.json")
}

fn last_path(home: &Home) -> PathBuf {
    home.state().join("update/last.json")
}

/// The kojibox executable a self-update replaced, kept for `rollback`.
fn previous_exe_path(home: &Home) -> PathBuf {
    home.state().join("update/kojibox.prev")
}

/// Finishes what an interrupted update left: a switched but unproven update is rolled back to
/// the previous version. Returns notes for the user. Does nothing while an update runs.
pub fn recover(home: &Home) -> Result<Vec<String>> {
    let Some(journal) = read_json::<Journal>(&journal_path(home))? else {
        return Ok(vec![]);
    };
    let _lock = match home.lock("update", "update") {
        Ok(lock) => lock,
        Err(Error::Busy(_)) => return Ok(vec![]),
        Err(e) => return Err(e),
    };
    let manifest = read_json::<RuntimeManifest>(&home.manifest())?;
    let back = |e: Error| Error::UpdateFailed {
        detail: format!(
            "an update from {} to {} was interrupted and switching back to {} failed: {e} \
             (the journal {} stays; every start tries again)",
            journal.from,
            journal.to,
            journal.from,
            journal_path(home).display()
        ),
    };
    let note = match manifest {
        // Switched (or switching back when it was killed): the previous version, whole.
        Some(current) if current.version == journal.to || current.version == journal.from => {
            crate::install::reactivate(home, &journal.previous).map_err(back)?;
            if current.version == journal.to {
                format!(
                    "an update from {} to {} was interrupted after the switch: rolled back to {}",
                    journal.from, journal.to, journal.from
                )
            } else {
                format!(
                    "an update from {} to {} was interrupted before the switch: {} is installed",
                    journal.from, journal.to, journal.from
                )
            }
        }
        Some(current) => format!(
            "an update from {} to {} was interrupted; {} is installed",
            journal.from, journal.to, current.version
        ),
        None => format!(
            "an update from {} to {} was interrupted",
            journal.from, journal.to
        ),
    };
    std::fs::remove_file(journal_path(home)).map_err(Error::io("remove", journal_path(home)))?;
    Ok(vec![note])
}

/// Where progress and events go (the daemon's event bus; a progress bar in the CLI).
pub type Emit = Arc<dyn Fn(Event) + Send + Sync>;

fn phase(emit: &Emit, phase: &str, progress: u8) {
    emit(Event::UpdateProgress(Progress {
        phase: phase.to_owned(),
        progress,
    }));
}

/// `updater.check`, announcing `update:available` when there is one.
pub async fn check_and_announce(home: &Home, emit: &Emit) -> Result<UpdateCheck> {
    // The daemon recovered any interrupted update when it started.
    let h = home.clone();
    let offer = blocking(move || check(&h)).await?;
    if offer.available {
        emit(Event::UpdateAvailable(UpdateAvailable {
            version: offer.index.version.clone(),
        }));
    }
    Ok(offer.to_check())
}

/// `updater.apply(version)`: see the module documentation. `supervisor`: the running services
/// (none when no daemon runs: then nothing is restarted, and the caller holds the daemon lock).
pub async fn apply(
    home: &Home,
    version: &str,
    supervisor: Option<&Arc<Supervisor>>,
    emit: &Emit,
) -> Result<Applied> {
    if supervisor.is_none() {
        // A daemon recovers at its start; without one, recover here.
        let h = home.clone();
        blocking(move || recover(&h).map(drop)).await?;
    }
    let _lock = home.lock("update", "update")?;
    phase(emit, "check", 0);
    let h = home.clone();
    let offer = blocking(move || check(&h)).await?;
    if offer.index.version != version {
        return Err(Error::NotFound {
            detail: format!("the channel offers {}, not {version}", offer.index.version),
        });
    }
    let Some(from) = offer.installed.clone() else {
        return Err(Error::RuntimeMissing {
            detail: "nothing is installed: install a bundle first (kojibox install)".into(),
        });
    };
    if from == version {
        // Already on it: only kojibox itself may still lag (a self-update that failed).
        let h = home.clone();
        let self_updated = blocking(move || {
            let manifest = crate::runtime::get_manifest(&h)?;
            replace_self(&h, &manifest)
        })
        .await?;
        phase(emit, "done", 100);
        return Ok(Applied { self_updated });
    }
    let wanted = semver::Version::parse(version).map_err(|e| Error::UpdateFailed {
        detail: format!("`{version}` is not semver: {e}"),
    })?;
    if let Some(mark) = crate::install::watermark(home)?
        && let Ok(mark) = semver::Version::parse(&mark)
        && wanted < mark
    {
        return Err(Error::UpdateRollbackRejected {
            detail: format!(
                "{version} is older than {mark}, the highest version ever installed here: an \
                 update never goes back"
            ),
        });
    }

    phase(emit, "download", 5);
    let (h, index, e) = (home.clone(), offer.index.clone(), Arc::clone(emit));
    let source = source(home)?;
    let bundle = blocking(move || {
        let mut last = 5;
        download(&h, &source, &index, &mut |have, total| {
            let percent = 5 + (45 * have / total.max(1)).min(45) as u8;
            if percent != last {
                last = percent;
                phase(&e, "download", percent);
            }
        })
    })
    .await?;
    phase(emit, "verify", 50);

    let h = home.clone();
    let old_manifest = blocking(move || crate::runtime::get_manifest(&h)).await?;
    let journal = Journal {
        from: from.clone(),
        to: version.to_owned(),
        started_at: crate::clock::now(),
        previous: old_manifest.clone(),
        replaced_kojibox: false,
    };
    write_json(&journal_path(home), &journal)?;
    crate::fault::point("update:before-install");
    phase(emit, "install", 60);
    let (h, b, v) = (home.clone(), bundle.clone(), version.to_owned());
    let installed = blocking(move || {
        let options = crate::install::InstallOptions {
            defer_watermark: true,
            ..Default::default()
        };
        crate::install::install(&h, &b, &options, &mut |_| {}).map_err(|e| match e {
            Error::Bundle(_) | Error::Key(_) => Error::UpdateSignatureInvalid {
                detail: format!("Signature verification failed for version {v}: {e}"),
            },
            other => other,
        })
    })
    .await;
    if let Err(e) = installed {
        // Nothing was switched (the installer commits with one rename, last).
        let _ = std::fs::remove_file(journal_path(home));
        return Err(e);
    }
    crate::fault::point("update:after-switch");
    let h = home.clone();
    let new_manifest = blocking(move || crate::runtime::get_manifest(&h)).await?;
    let changed = changed_services(&old_manifest, &new_manifest);

    phase(emit, "restart", 75);
    let mut restarted = Vec::new();
    let health = if new_manifest.version != version {
        Err(format!(
            "the bundle the index names installs version {}, not {version}",
            new_manifest.version
        ))
    } else if let Some(sup) = supervisor {
        match restart(sup, &changed, &mut restarted).await {
            Ok(()) => {
                phase(emit, "health", 90);
                healthy(sup, &restarted).await
            }
            Err(e) => Err(e.to_string()),
        }
    } else {
        Ok(())
    };
    crate::fault::point("update:after-health");
    if let Err(why) = health {
        phase(emit, "rollback", 95);
        let (h, old) = (home.clone(), old_manifest.clone());
        if let Err(e) = blocking(move || crate::install::reactivate(&h, &old)).await {
            return Err(Error::UpdateFailed {
                detail: format!(
                    "{why}; switching back to {from} failed too: {e} (the journal stays: the \
                     next start tries again)"
                ),
            });
        }
        // Every service restarted on the new version (even if another then failed) goes back.
        let back = match supervisor {
            Some(sup) if !restarted.is_empty() => match bring_back(sup, &restarted).await {
                Ok(()) => healthy(sup, &restarted).await,
                Err(e) => Err(e.to_string()),
            },
            _ => Ok(()),
        };
        let _ = std::fs::remove_file(journal_path(home));
        phase(emit, "failed", 100);
        return Err(Error::UpdateFailed {
            detail: match back {
                Ok(()) => format!(
                    "{why}; rolled back: {from} is running again (update to {version} refused)"
                ),
                Err(again) => format!(
                    "{why}; rolled back to {from}, but it did not come back either: {again}"
                ),
            },
        });
    }
    // Proven: the journal becomes the record `rollback` uses, then goes (each step atomic).
    write_json(&last_path(home), &journal)?;
    std::fs::remove_file(journal_path(home)).map_err(Error::io("remove", journal_path(home)))?;
    crate::install::raise_watermark(home, version)?;
    let _ = std::fs::remove_file(&bundle);
    // Last, once everything else verified and runs: kojibox itself.
    let (h, m) = (home.clone(), new_manifest.clone());
    let self_updated = blocking(move || replace_self(&h, &m)).await.map_err(|e| {
        Error::UpdateFailed {
            detail: format!(
                "the runtime is on {version} and healthy, but kojibox could not replace itself: {e}"
            ),
        }
    })?;
    if self_updated {
        write_json(
            &last_path(home),
            &Journal {
                replaced_kojibox: true,
                ..journal
            },
        )?;
        phase(emit, "self-update", 100);
    }
    phase(emit, "done", 100);
    emit(Event::RuntimeUpdated(new_manifest));
    Ok(Applied { self_updated })
}

/// Replaces the running executable with the launcher the manifest carries for this machine,
/// when it carries one that differs. Returns whether it did.
pub fn replace_self(home: &Home, manifest: &RuntimeManifest) -> Result<bool> {
    let Some(binary) = manifest
        .services
        .iter()
        .find(|s| s.name == LAUNCHER && crate::runtime::on_this_machine(s))
    else {
        return Ok(false);
    };
    // Re-hashed against the signed checksum: nothing altered on disk since the install runs.
    crate::runtime::ensure_service(home, LAUNCHER, &binary.version)?;
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
    let keep = previous_exe_path(home);
    let bytes = std::fs::read(&current).map_err(Error::io("read", &current))?;
    crate::fsutil::write_atomic(&keep, &bytes)?;
    self_replace::self_replace(&new).map_err(Error::io("replace the executable with", &new))?;
    Ok(true)
}

/// `kojibox update rollback`: back to the version before the last update (its payloads and
/// signed index are still in the home), restarting the services whose version changes. The
/// watermark stays: the channel will offer the newer version again.
pub async fn rollback(
    home: &Home,
    supervisor: Option<&Arc<Supervisor>>,
    emit: &Emit,
) -> Result<RolledBack> {
    let h = home.clone();
    blocking(move || recover(&h).map(drop)).await?;
    let _lock = home.lock("update", "update")?;
    let last: Journal = read_json(&last_path(home))?.ok_or_else(|| Error::NotFound {
        detail: "no update to roll back: none went through since the last rollback".into(),
    })?;
    let previous = last.previous.clone();
    let h = home.clone();
    let current = blocking(move || crate::runtime::get_manifest(&h)).await?;
    if current.version != last.to {
        return Err(Error::NotFound {
            detail: format!(
                "{} is installed, not {}, the last update's version: nothing to roll back",
                current.version, last.to
            ),
        });
    }
    phase(emit, "rollback", 10);
    let (h, p) = (home.clone(), previous.clone());
    blocking(move || crate::install::reactivate(&h, &p)).await?;
    let _ = std::fs::remove_file(last_path(home));
    if let Some(sup) = supervisor {
        let mut ids = Vec::new();
        restart(sup, &changed_services(&current, &previous), &mut ids).await?;
        healthy(sup, &ids)
            .await
            .map_err(|detail| Error::UpdateFailed {
                detail: format!("rolled back to {}, but {detail}", last.from),
            })?;
    }
    // The update replaced kojibox too: the one before comes back.
    let keep = previous_exe_path(home);
    let self_updated = last.replaced_kojibox && keep.exists();
    if self_updated {
        let k = keep.clone();
        blocking(move || {
            self_replace::self_replace(&k).map_err(Error::io("put back the executable", &k))
        })
        .await?;
        let _ = std::fs::remove_file(&keep);
        phase(emit, "self-update", 100);
    }
    phase(emit, "done", 100);
    emit(Event::RuntimeUpdated(previous));
    Ok(RolledBack {
        version: last.from,
        self_updated,
    })
}

/// What `rollback` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RolledBack {
    /// The version installed now.
    pub version: String,
    /// kojibox itself was put back: the running process must restart to use it.
    pub self_updated: bool,
}

/// Ids of this machine's services whose version differs between two manifests.
fn changed_services(old: &RuntimeManifest, new: &RuntimeManifest) -> Vec<String> {
    let on_host = |m: &RuntimeManifest| -> Vec<(String, String)> {
        crate::runtime::host_services(m)
            .map(|s| (s.name.clone(), s.version.clone()))
            .collect()
    };
    let old = on_host(old);
    on_host(new)
        .into_iter()
        .filter(|(name, version)| !old.iter().any(|(n, v)| n == name && v == version))
        .map(|(name, _)| name)
        .collect()
}

/// Restarts those of `ids` that are running or starting, adding each to `restarted` as it is
/// asked (so that on an error, the ones already on the new version are known).
async fn restart(sup: &Supervisor, ids: &[String], restarted: &mut Vec<String>) -> Result<()> {
    for id in ids {
        let Ok(state) = sup.state(id) else { continue };
        if matches!(
            state.state,
            ServiceStatus::Running | ServiceStatus::Starting
        ) {
            restarted.push(id.clone());
            sup.restart_service(id).await?;
        }
    }
    Ok(())
}

/// Starts `ids` again on the (restored) installed version, whatever state the failed update
/// left them in.
async fn bring_back(sup: &Supervisor, ids: &[String]) -> Result<()> {
    for id in ids {
        match sup.state(id)?.state {
            ServiceStatus::Running | ServiceStatus::Starting => {
                sup.restart_service(id).await?;
            }
            ServiceStatus::Stopping | ServiceStatus::Stopped | ServiceStatus::Error => {
                sup.start_service(id).await?;
            }
        }
    }
    Ok(())
}

/// Waits until every one of `ids` is running and still is after [`SETTLE`].
async fn healthy(sup: &Supervisor, ids: &[String]) -> std::result::Result<(), String> {
    for id in ids {
        let state = sup
            .wait_for(id, HEALTH_TIMEOUT, |s| {
                matches!(s.state, ServiceStatus::Running | ServiceStatus::Error)
            })
            .await
            .map_err(|e| format!("{id} did not become healthy: {e}"))?;
        if state.state != ServiceStatus::Running {
            return Err(format!(
                "{id} did not become healthy: {}",
                state.last_error.unwrap_or_else(|| "it failed".into())
            ));
        }
    }
    tokio::time::sleep(SETTLE).await;
    for id in ids {
        let state = sup.state(id).map_err(|e| e.to_string())?;
        if state.state != ServiceStatus::Running {
            return Err(format!(
                "{id} stopped right after starting: {}",
                state.last_error.unwrap_or_else(|| "it failed".into())
            ));
        }
    }
    Ok(())
}
