//! The signed content index of a `.kbx` bundle.
//!
//! A bundle is one zstd stream of one tar archive. Its first two members are
//! `kojibox/index.json` (a [`BundleIndex`], the exact bytes that are signed) and
//! `kojibox/index.sig` (the signature string `ed25519:<keyid>:<base64>` over those bytes); the
//! payload files follow, at their home-relative paths (`runtime/bin/<name>/<version>/<os>-<arch>/…`).
//! Everything that gets installed is covered by the signature through the index: the manifest,
//! the service templates, the provenance, and every payload entry's path, kind, mode, size and
//! sha256 (or link target). Tar header fields (mode, mtime, owner) are ignored on install: the
//! signed index is authoritative.
//!
//! The archive is written as two zstd frames. The first holds just the index and signature members,
//! in a canonical form (raw zstd blocks, no checksum) that readers check byte for byte; the
//! second holds the payload members and the tar end marker, and the index records its sha256 and
//! size. So no byte of a bundle can change, not even one that zstd would ignore, without failing
//! verification.
//!
//! In the index, the manifest's `bundle.signature` is the empty string (a signature cannot sign
//! itself); the installed `runtime/manifest.json` carries the signature from `index.sig`.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::model::RuntimeManifest;
use crate::recipe::ServiceTemplate;

/// The tar member holding the signed index.
pub const INDEX_PATH: &str = "kojibox/index.json";
/// The tar member holding the index's signature.
pub const SIGNATURE_PATH: &str = "kojibox/index.sig";
/// The index format this build writes and reads.
pub const FORMAT: u32 = 1;

/// The payload name of kojibox itself: a bundle may carry the launcher for each target under this
/// name (`runtime/bin/kojibox/<version>/<os>-<arch>/kojibox`), for a self-update. It is never a
/// supervised service.
pub const LAUNCHER_PAYLOAD: &str = "kojibox";

pub use crate::model::payload_root;

/// The signed table of contents of a bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BundleIndex {
    /// Index format version ([`FORMAT`]).
    pub format: u32,
    /// The manifest, with an empty `bundle.signature`.
    pub manifest: RuntimeManifest,
    /// Service templates by service name (installed as `runtime/services/<name>.json`).
    pub templates: BTreeMap<String, ServiceTemplate>,
    /// Where each payload came from.
    pub provenance: Vec<Provenance>,
    /// Every payload entry, sorted by path, in the order they appear in the archive.
    pub files: Vec<IndexEntry>,
    /// The compressed payload frame that follows the index frame.
    pub payload_frame: FrameDigest,
}

/// Digest of a zstd frame's compressed bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FrameDigest {
    /// Lowercase hex sha256 of the compressed bytes.
    pub sha256: String,
    /// Compressed bytes.
    pub bytes: u64,
}

/// One payload entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IndexEntry {
    /// Home-relative path, `/`-separated.
    pub path: String,
    /// What it is.
    pub kind: EntryKind,
    /// Unix permission bits (`0o755` = 493); 0 for links.
    pub mode: u32,
    /// Bytes (0 for links).
    pub size: u64,
    /// Lowercase hex sha256 of the contents (files only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// Link target, relative to the link's folder (symlinks only); never leaves the payload.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
}

/// Kinds of payload entries. Folders are implied by the paths.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum EntryKind {
    /// A regular file.
    File,
    /// A symbolic link inside the payload.
    Symlink,
}

/// Where one service payload came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Provenance {
    /// Service name.
    pub service: String,
    /// Service version.
    pub version: String,
    /// `<os>-<arch>`.
    pub target: String,
    /// The recipe's source: `npm:<spec>`, `url:<url>` or `path:<path as written>`.
    pub source: String,
    /// The digest the upstream publishes or the recipe pins (`sha512-…` npm integrity,
    /// `sha256:<hex>`), or `null` for an unpinned local folder.
    pub upstream_digest: Option<String>,
    /// `sha256:<hex>` of the artifact as fetched (the archive or file), or `null` for a folder.
    pub artifact_sha256: Option<String>,
    /// Addition, `deb` sources: every Debian package in the payload, the recipe's first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub packages: Vec<ProvenancePackage>,
}

/// One Debian package of a payload (a `deb` source).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProvenancePackage {
    /// The package name.
    pub name: String,
    /// Its exact version.
    pub version: String,
    /// Its Debian architecture (`amd64`, `arm64`, `all`).
    pub arch: String,
    /// The sha256 (hex) the apt index lists for it, which the downloaded file had.
    pub sha256: String,
    /// `null` for a package the recipe names; else why it was added: the library and the
    /// payload file that needs it (`libssl.so.3 for usr/bin/redis-server`).
    #[serde(default)]
    pub needed_for: Option<String>,
}
