//! `kojibox-bundle publish`: puts a bundle into an update repository and signs its channel index.
//!
//! A repository is a plain folder (copy it to a USB stick, or serve it with any static HTTP
//! server):
//!
//! ```text
//! bundles/kojibox-<version>.kbx   the bundles, one per version (never replaced in place)
//! channels/<channel>.json         {"index": ChannelIndex, "signature"}: the channel's newest
//! ```
//!
//! The bundle is verified against the publishing key before anything is written. A channel's
//! version never goes down unless `force`; a version's bundle is never replaced by other bytes.
//! Files are written to a temporary name and renamed, so a reader sees the old index or the new.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use kojibox_manifests::channel::{ChannelIndex, SignedChannel};
use sha2::{Digest, Sha256};

use crate::Error;

/// What to publish.
#[derive(Debug, Clone)]
pub struct Publish<'a> {
    /// The bundle.
    pub bundle: &'a Path,
    /// The repository folder (created if needed).
    pub repo: &'a Path,
    /// `stable` or `beta`.
    pub channel: &'a str,
    /// How long the index is trusted, in seconds.
    pub expires_in: u64,
    /// Publish even when the channel names a newer version.
    pub force: bool,
}

/// What was published.
#[derive(Debug, Clone)]
pub struct Published {
    /// The channel index written.
    pub index: ChannelIndex,
    /// `channels/<channel>.json`.
    pub channel_file: PathBuf,
    /// The version the channel named before, if any.
    pub previous: Option<String>,
}

/// The channels a repository may have.
pub const CHANNELS: &[&str] = &["stable", "beta"];

/// Publishes `what`, signed with `key`.
pub fn publish(what: &Publish<'_>, key: &kojibox_signing::SecretKey) -> Result<Published, Error> {
    if !CHANNELS.contains(&what.channel) {
        return Err(Error::Plan(format!(
            "unknown channel `{}` (use {})",
            what.channel,
            CHANNELS.join(" or ")
        )));
    }
    let signed = crate::verify_bundle(what.bundle, &key.public_key()).map_err(|e| {
        Error::Plan(format!(
            "{} does not verify with key {}: {e}",
            what.bundle.display(),
            key.key_id()
        ))
    })?;
    let version = signed.index.manifest.version.clone();
    let parsed = semver::Version::parse(&version)
        .map_err(|e| Error::Plan(format!("bundle version `{version}` is not semver: {e}")))?;

    let channel_file = what
        .repo
        .join("channels")
        .join(format!("{}.json", what.channel));
    let previous = match std::fs::read(&channel_file) {
        Ok(bytes) => {
            let old: SignedChannel = serde_json::from_slice(&bytes).map_err(|e| {
                Error::Plan(format!(
                    "{} is not a channel index ({e}); move it away to start the channel again",
                    channel_file.display()
                ))
            })?;
            Some(old.index.version)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(source) => {
            return Err(Error::OpenBundle {
                path: channel_file,
                source,
            });
        }
    };
    if let Some(old) = &previous
        && let Ok(old_version) = semver::Version::parse(old)
        && old_version > parsed
        && !what.force
    {
        return Err(Error::Plan(format!(
            "the {} channel names {old}, newer than {version}: pass --force to publish an older version",
            what.channel
        )));
    }

    let rel = format!("bundles/kojibox-{version}.kbx");
    let dest = what.repo.join(&rel);
    let (sha256, size) = copy_hashed(what.bundle, &dest, what.force)?;
    let now = jiff::Timestamp::now();
    let expires = now
        .checked_add(jiff::SignedDuration::from_secs(
            i64::try_from(what.expires_in).unwrap_or(i64::MAX),
        ))
        .map_err(|e| Error::Plan(format!("expiry too far away: {e}")))?;
    let index = ChannelIndex {
        channel: what.channel.to_owned(),
        version,
        bundle: rel,
        sha256,
        size,
        published_at: now.round(jiff::Unit::Second).unwrap_or(now).to_string(),
        expires_at: expires
            .round(jiff::Unit::Second)
            .unwrap_or(expires)
            .to_string(),
    };
    let signature = key.sign(&index.message()).to_string();
    let file = SignedChannel {
        index: index.clone(),
        signature,
    };
    let mut bytes = serde_json::to_vec_pretty(&file).map_err(|e| Error::Plan(e.to_string()))?;
    bytes.push(b'\n');
    write_atomic(&channel_file, &bytes)?;
    Ok(Published {
        index,
        channel_file,
        previous,
    })
}

/// Copies `from` to `to` (atomically), returning its sha256 and size. An existing `to` with the
/// same bytes is kept; with other bytes it is refused unless `force`.
fn copy_hashed(from: &Path, to: &Path, force: bool) -> Result<(String, u64), Error> {
    let (sha256, size) = hash_file(from)?;
    if to.exists() {
        let (existing, _) = hash_file(to)?;
        if existing == sha256 {
            return Ok((sha256, size));
        }
        if !force {
            return Err(Error::Plan(format!(
                "{} already holds other bytes for this version: a published version is never \
                 replaced (give the new build a new version, or pass --force)",
                to.display()
            )));
        }
    }
    let bytes = std::fs::read(from).map_err(|source| Error::OpenBundle {
        path: from.to_owned(),
        source,
    })?;
    write_atomic(to, &bytes)?;
    Ok((sha256, size))
}

fn hash_file(path: &Path) -> Result<(String, u64), Error> {
    let mut file = crate::open_bundle(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = file.read(&mut buf).map_err(|source| Error::OpenBundle {
            path: path.to_owned(),
            source,
        })?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        size += n as u64;
    }
    Ok((hex::encode(hasher.finalize()), size))
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    let io = |source| Error::OpenBundle {
        path: path.to_owned(),
        source,
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(io)?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".publish-")
        .tempfile_in(dir)
        .map_err(io)?;
    tmp.write_all(bytes).map_err(io)?;
    tmp.as_file().sync_all().map_err(io)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        // Served by static servers and read by other users: world-readable.
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o644))
            .map_err(io)?;
    }
    tmp.persist(path).map_err(|e| io(e.error))?;
    Ok(())
}
