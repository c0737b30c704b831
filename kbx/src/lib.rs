//! The `.kbx` bundle format: payload digests, writing, and strict, verified reading.
//!
//! # Theory of operation
//!
//! A bundle is one tar archive compressed as zstd, so plain `zstd -d | tar -x` unpacks it. Its
//! first two members are the signed index (`kojibox/index.json`, a
//! [`BundleIndex`](kojibox_manifests::bundle::BundleIndex)) and its signature
//! (`kojibox/index.sig`); the payload files follow, sorted by path. The index lists every payload
//! entry with its kind, mode, size and sha256 (or link target), so the one signature covers every
//! byte that gets installed.
//!
//! Writing ([`mod@write`]) takes a single pass over the input files: each file is hashed while the tar
//! stream that carries it is compressed by zstd's worker threads. Because the hashes are only known
//! at the end, the payload frame is written first, into the bundle file after a gap whose size
//! is known in advance; then the index frame is written into the gap. Concatenated zstd frames
//! are one valid zstd stream, and the tar of the first frame has no end marker, so the two frames
//! decode to one tar archive.
//!
//! Reading ([`read`]) is strict and streaming: the index and signature are read and verified
//! before any payload byte is handed out; then each member is checked against the index as it
//! streams by (path, kind, size, sha256, link target, order, duplicates, anything extra or
//! missing), with limits on the zstd window and on sizes. A consumer (the installer, or
//! `kojibox-bundle verify` discarding the bytes) sees only members that the index names, and
//! learns of a failure before it may use anything.

pub mod digest;
mod frame;
mod index;
pub mod paths;
pub mod read;
pub mod write;

use std::path::PathBuf;

/// The format's errors.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading or writing a file failed.
    #[error("could not {action} {path}: {source}")]
    Io {
        /// What was being done ("read", "create", ...).
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The bundle stream could not be decoded.
    #[error("bundle is corrupt: {0}")]
    Corrupt(String),
    /// The stream ended early.
    #[error("bundle is truncated: {0}")]
    Truncated(String),
    /// The bundle has no signature member.
    #[error(
        "bundle is not signed: its first members must be {} and {}",
        kojibox_manifests::bundle::INDEX_PATH,
        kojibox_manifests::bundle::SIGNATURE_PATH
    )]
    Unsigned,
    /// The signature does not verify.
    #[error("bundle signature is invalid: {0}")]
    Signature(#[from] kojibox_signing::Error),
    /// The signed index itself is unusable.
    #[error("bundle index is invalid: {0}")]
    InvalidIndex(String),
    /// A member is not what the index says, or the archive holds something it must not.
    #[error("bundle member {path}: {problem}")]
    Member {
        /// The member's path as the archive names it.
        path: String,
        /// What is wrong.
        problem: String,
    },
    /// A member the index names is not in the archive.
    #[error("bundle is missing {count} member(s) named by its index, first {first}")]
    Missing {
        /// How many.
        count: usize,
        /// The first one, by path.
        first: String,
    },
    /// A payload is not fit for packing.
    #[error("cannot pack {path}: {problem}")]
    Pack {
        /// The offending file.
        path: PathBuf,
        /// Why.
        problem: String,
    },
}

impl Error {
    pub(crate) fn member(path: impl Into<String>, problem: impl Into<String>) -> Error {
        Error::Member {
            path: path.into(),
            problem: problem.into(),
        }
    }
}
