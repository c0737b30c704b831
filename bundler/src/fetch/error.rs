//! The fetch layer's one error type: every variant names the artifact (URL, npm spec, path or
//! archive entry) and what was being done, so a message alone tells what to fix.

use std::path::PathBuf;

/// Why a source could not be fetched.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// A hand-built source that does not validate.
    #[error("invalid source: {why}")]
    InvalidSource {
        /// What is wrong.
        why: String,
    },
    /// A local file operation failed.
    #[error("could not {action} {}: {error}", path.display())]
    Io {
        /// What was being done (`create folder`, `read`, ...).
        action: &'static str,
        /// The file or folder.
        path: PathBuf,
        /// Why.
        error: std::io::Error,
    },
    /// A `path` source does not exist.
    #[error("path source {} does not exist", path.display())]
    PathMissing {
        /// The path, resolved against the recipe folder.
        path: PathBuf,
    },
    /// A `sha256` was given for a folder, which has no single digest.
    #[error("path source {} is a folder: `sha256` only applies to a file", path.display())]
    DigestForFolder {
        /// The folder.
        path: PathBuf,
    },
    /// `strip` was given for a file that is not an archive.
    #[error("{artifact} is not an archive (by its name), so `strip` cannot apply")]
    StripNotArchive {
        /// The URL or path.
        artifact: String,
    },
    /// The download failed after every retry (connection errors, timeouts, 5xx).
    #[error("could not download {url} after {attempts} attempt(s): {why}")]
    Download {
        /// The URL.
        url: String,
        /// How many requests were made.
        attempts: u32,
        /// The last failure.
        why: String,
    },
    /// The server answered with a final (4xx or unexpected) status.
    #[error("could not download {url}: {}", describe_status(*status))]
    HttpStatus {
        /// The URL.
        url: String,
        /// The HTTP status code.
        status: u16,
    },
    /// The artifact is larger than the configured cap.
    #[error("{artifact} is too large: {size} bytes or more, the limit is {max} bytes")]
    TooLarge {
        /// The URL.
        artifact: String,
        /// Bytes announced or received so far.
        size: u64,
        /// The cap (`HttpOptions::max_size`).
        max: u64,
    },
    /// The artifact's digest differs from the pinned or published one. Nothing was kept.
    #[error("checksum mismatch for {artifact}: expected {expected}, got {actual}")]
    ChecksumMismatch {
        /// The URL, npm spec or path.
        artifact: String,
        /// The expected digest (`sha256:<hex>` or `sha512-<base64>`).
        expected: String,
        /// The digest of what was received.
        actual: String,
    },
    /// npm is not installed.
    #[error(
        "cannot fetch npm package {spec}: `npm` was not found on PATH; install Node.js and npm"
    )]
    NpmMissing {
        /// `<package>@<version>`.
        spec: String,
    },
    /// apt or dpkg-deb could not give a `deb` source's package, or its closure does not
    /// resolve.
    #[error("deb {package}: {why}")]
    Deb {
        /// `name=version` (or the recipe's packages, for a closure).
        package: String,
        /// What went wrong and what to do.
        why: String,
    },
    /// An npm command failed or answered something unusable.
    #[error("npm could not {action} {spec}: {why}")]
    Npm {
        /// `<package>@<version>`.
        spec: String,
        /// What npm was asked (`look up the integrity of`, `download`).
        action: &'static str,
        /// What went wrong, with the last lines npm printed on stderr.
        why: String,
    },
    /// An archive entry that may not be unpacked (path escape, device, link leaving the payload).
    #[error("{archive}: refusing entry `{entry}`: {why}")]
    UnsafeEntry {
        /// The archive (URL, npm spec or path).
        archive: String,
        /// The entry's path as stored.
        entry: String,
        /// Why it is refused.
        why: String,
    },
    /// An archive that cannot be read.
    #[error("{archive} is not a readable archive: {why}")]
    BadArchive {
        /// The archive (URL, npm spec or path).
        archive: String,
        /// The decoder's complaint.
        why: String,
    },
}

impl FetchError {
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
        error: std::io::Error,
    ) -> Self {
        FetchError::Io {
            action,
            path: path.into(),
            error,
        }
    }
}

fn describe_status(status: u16) -> String {
    match status {
        404 => "not found (HTTP 404)".to_owned(),
        401 | 403 => format!("access denied (HTTP {status})"),
        410 => "gone (HTTP 410)".to_owned(),
        _ => format!("HTTP {status}"),
    }
}
