//! `updater.check`: fetching a channel index and proving it (signature by a pinned key, the right
//! channel, not expired), then comparing its version with the installed one.

use std::io::Read;
use std::str::FromStr;

use kojibox_home::Home;
use kojibox_home::fs::read_json;
use kojibox_home::task::blocking;
use kojibox_manifests::api::UpdateCheck;
use kojibox_manifests::channel::{ChannelIndex, MAX_CHANNEL_FILE, SignedChannel};
use kojibox_manifests::event::{Event, UpdateAvailable};
use kojibox_manifests::model::{RuntimeManifest, UpdateChannel};

use super::http::{self, Bounds};
use super::progress::Emit;
use super::source::{Source, source};
use crate::error::{Error, Result};

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

/// `updater.check`: fetches and verifies the index of `channel` (the app's, `AppConfig.updateChannel`).
pub fn check(home: &Home, channel: UpdateChannel) -> Result<Offer> {
    let channel = channel.as_str();
    let source = source(home)?;
    let rel = format!("channels/{channel}.json");
    let bytes = fetch_small(&source, &rel, MAX_CHANNEL_FILE)?;
    if bytes.is_empty() {
        return Err(Error::UpdateFailed {
            detail: format!("{source}/{rel} is empty: not a channel index"),
        });
    }
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

/// Reads a small file of the repository, refusing more than `cap` bytes; over HTTP, the whole
/// fetch has [`CHANNEL_DEADLINE`](super::http::CHANNEL_DEADLINE).
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
            let url = Source::url(base, rel)?;
            out = http::get(&url, 0, Bounds::Total(http::CHANNEL_DEADLINE))?
                .read_to_end(cap, too_big)?;
        }
    }
    if out.len() as u64 > cap {
        return Err(too_big());
    }
    Ok(out)
}

/// `updater.check`, announcing `update:available` when there is one.
pub async fn check_and_announce(
    home: &Home,
    channel: UpdateChannel,
    emit: &Emit,
) -> Result<UpdateCheck> {
    // The daemon recovered any interrupted update when it started.
    let h = home.clone();
    let offer = blocking(move || check(&h, channel)).await?;
    if offer.available {
        emit(Event::UpdateAvailable(UpdateAvailable {
            version: offer.index.version.clone(),
        }));
    }
    Ok(offer.to_check())
}
