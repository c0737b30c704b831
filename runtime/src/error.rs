//! The runtime's errors: installs, verification and updates.

use std::borrow::Cow;
use std::path::PathBuf;

use kojibox_home::ToApi;
use kojibox_manifests::error::ErrorCode;

/// What can go wrong installing, verifying or updating the runtime.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The home failed: a file operation, a corrupt file, a lock held by another operation.
    #[error(transparent)]
    Home(#[from] kojibox_home::Error),
    /// A bundle is unsigned, badly signed, malformed or hostile.
    #[error(transparent)]
    Bundle(#[from] kojibox_kbx::Error),
    /// A key or the trust store could not be used.
    #[error(transparent)]
    Key(#[from] kojibox_signing::Error),
    /// The request or the bundle is not acceptable (an older version, no payload for this
    /// machine, a payload in the way...).
    #[error("{message}: {detail}")]
    Invalid {
        /// One sentence.
        message: String,
        /// What exactly, and what to do.
        detail: String,
    },
    /// Nothing (or not this) is installed.
    #[error("{detail}")]
    RuntimeMissing {
        /// What is missing (`php 8.3.2 not present in runtime/bin`).
        detail: String,
    },
    /// Installed files differ from their signed checksums.
    #[error("{detail}")]
    ChecksumMismatch {
        /// Which payload, and how it drifted.
        detail: String,
    },
    /// The named version or record does not exist.
    #[error("{detail}")]
    NotFound {
        /// What was looked for.
        detail: String,
    },
    /// An update (its channel index or its bundle) is not signed by a pinned key, or does not
    /// match what was signed.
    #[error("{detail}")]
    UpdateSignatureInvalid {
        /// Which version, and what failed.
        detail: String,
    },
    /// An update would go below the highest version ever installed.
    #[error("{detail}")]
    UpdateRollbackRejected {
        /// The versions.
        detail: String,
    },
    /// An update could not be fetched or applied (the previous version stays or is back).
    #[error("{detail}")]
    UpdateFailed {
        /// What failed, and what runs now.
        detail: String,
    },
    /// The running services refused what an update asked of them (a restart, a start).
    #[error("{0}")]
    Services(Box<dyn ToApi>),
}

/// Shorthand for results of the runtime.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A file operation failed: `map_err(Error::io("read", &path))`.
    pub fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> Error {
        let io = kojibox_home::Error::io(action, path);
        move |source| Error::Home(io(source))
    }

    /// An `Invalid` error.
    pub fn invalid(message: impl Into<String>, detail: impl Into<String>) -> Error {
        Error::Invalid {
            message: message.into(),
            detail: detail.into(),
        }
    }

    /// A stored file is corrupt.
    pub fn corrupt(path: impl Into<PathBuf>, detail: impl Into<String>) -> Error {
        Error::Home(kojibox_home::Error::Corrupt {
            path: path.into(),
            detail: detail.into(),
        })
    }
}

/// The I/O failure behind a key error, when it is one.
fn key_io(e: &kojibox_signing::Error) -> Option<&std::io::Error> {
    match e {
        kojibox_signing::Error::ReadKey { source, .. }
        | kojibox_signing::Error::WriteKey { source, .. }
        | kojibox_signing::Error::ReadTrustStore { source, .. }
        | kojibox_signing::Error::WriteTrustStore { source, .. } => Some(source),
        _ => None,
    }
}

impl ToApi for Error {
    fn code(&self) -> ErrorCode {
        match self {
            Error::Home(e) => e.code(),
            Error::Services(e) => e.code(),
            // Reading or writing a key file or the trust store failed: nothing is wrong with
            // the bundle (a full disk, a missing file).
            Error::Key(e) if key_io(e).is_some() => match key_io(e).map(std::io::Error::kind) {
                Some(std::io::ErrorKind::PermissionDenied) => ErrorCode::PermissionDenied,
                Some(std::io::ErrorKind::NotFound) => ErrorCode::NotFound,
                _ => ErrorCode::Internal,
            },
            Error::Bundle(_) | Error::Key(_) => ErrorCode::BundleInvalid,
            Error::Invalid { .. } => ErrorCode::ValidationFailed,
            Error::RuntimeMissing { .. } => ErrorCode::RuntimeMissing,
            Error::ChecksumMismatch { .. } => ErrorCode::ChecksumMismatch,
            Error::NotFound { .. } => ErrorCode::NotFound,
            Error::UpdateSignatureInvalid { .. } => ErrorCode::UpdateSignatureInvalid,
            Error::UpdateRollbackRejected { .. } => ErrorCode::UpdateRollbackRejected,
            Error::UpdateFailed { .. } => ErrorCode::UpdateFailed,
        }
    }

    fn message(&self) -> Cow<'_, str> {
        Cow::Borrowed(match self {
            Error::Home(e) => return e.message(),
            Error::Services(e) => return e.message(),
            Error::Bundle(_) => "The bundle was refused",
            Error::Key(e) if key_io(e).is_some() => "A key file operation failed",
            Error::Key(_) => "The bundle's signature was refused",
            Error::Invalid { message, .. } => message,
            Error::RuntimeMissing { .. } => "Required runtime binary not found",
            Error::ChecksumMismatch { .. } => "Installed files were altered",
            Error::NotFound { .. } => "Not found",
            Error::UpdateSignatureInvalid { .. } => "Update package signature mismatch",
            Error::UpdateRollbackRejected { .. } => "Update older than the installed version",
            Error::UpdateFailed { .. } => "The update failed",
        })
    }

    fn detail(&self) -> String {
        match self {
            Error::Home(e) => e.detail(),
            Error::Services(e) => e.detail(),
            Error::Invalid { detail, .. } => detail.clone(),
            other => other.to_string(),
        }
    }

    fn retryable(&self) -> bool {
        match self {
            Error::Home(e) => e.retryable(),
            Error::Services(e) => e.retryable(),
            other => other.code().default_retryable(),
        }
    }
}
