//! The launcher's errors, and their mapping to the contract's error envelope, in one place.

use std::path::PathBuf;

use kojibox_manifests::error::{ApiError, ErrorCode, ErrorSource};

/// Everything that can go wrong in the launcher.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file operation failed.
    #[error("could not {action} {}: {source}", path.display())]
    Io {
        /// What was being done ("read", "create folder", ...).
        action: &'static str,
        /// On what.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A bundle is unsigned, badly signed, malformed or hostile.
    #[error(transparent)]
    Bundle(#[from] kojibox_kbx::Error),
    /// A key or the trust store could not be used.
    #[error(transparent)]
    Key(#[from] kojibox_signing::Error),
    /// The request or its input is invalid.
    #[error("{message}: {detail}")]
    Invalid {
        /// One sentence.
        message: String,
        /// What exactly.
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
    /// Another operation holds the lock.
    #[error("{0}")]
    Busy(String),
    /// The named object does not exist.
    #[error("{detail}")]
    NotFound {
        /// What was looked for.
        detail: String,
    },
    /// A port is taken.
    #[error("{detail}")]
    PortConflict {
        /// Which port, and its owner when known.
        detail: String,
    },
    /// The OS (or the service user's rights) forbids it.
    #[error("{detail}")]
    PermissionDenied {
        /// Why, and how to fix it.
        detail: String,
    },
    /// A method of the contract this build does not serve yet.
    #[error("{detail}")]
    Unavailable {
        /// Which one.
        detail: String,
    },
    /// A dependency failed.
    #[error("{detail}")]
    DependencyFailed {
        /// Which one, and why.
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
    /// A stored file is corrupt.
    #[error("{} is corrupt: {detail}", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
}

/// Shorthand for results in the launcher.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An `Io` error.
    pub fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io {
            action,
            path,
            source,
        }
    }

    /// An `Invalid` error.
    pub fn invalid(message: impl Into<String>, detail: impl Into<String>) -> Error {
        Error::Invalid {
            message: message.into(),
            detail: detail.into(),
        }
    }

    /// The contract's envelope for this error, as raised by `source`.
    pub fn to_api(&self, source: ErrorSource, ts: impl Into<String>) -> ApiError {
        let (code, message) = match self {
            Error::Io { source, .. } if source.kind() == std::io::ErrorKind::PermissionDenied => {
                (ErrorCode::PermissionDenied, "Insufficient permission")
            }
            Error::Io { .. } => (ErrorCode::Internal, "A file operation failed"),
            Error::Bundle(_) => (ErrorCode::BundleInvalid, "The bundle was refused"),
            Error::Key(_) => (
                ErrorCode::BundleInvalid,
                "The bundle's signature was refused",
            ),
            Error::Invalid { .. } => (ErrorCode::ValidationFailed, "Invalid request"),
            Error::RuntimeMissing { .. } => (
                ErrorCode::RuntimeMissing,
                "Required runtime binary not found",
            ),
            Error::ChecksumMismatch { .. } => {
                (ErrorCode::ChecksumMismatch, "Installed files were altered")
            }
            Error::Busy(_) => (ErrorCode::Busy, "Another operation is in progress"),
            Error::NotFound { .. } => (ErrorCode::NotFound, "Not found"),
            Error::Unavailable { .. } => (ErrorCode::MethodNotFound, "Method not available"),
            Error::PortConflict { .. } => {
                (ErrorCode::PortConflict, "Requested port is already in use")
            }
            Error::PermissionDenied { .. } => {
                (ErrorCode::PermissionDenied, "Insufficient permission")
            }
            Error::DependencyFailed { .. } => (ErrorCode::DependencyFailed, "A dependency failed"),
            Error::Corrupt { .. } => (ErrorCode::Internal, "A stored file is corrupt"),
            Error::UpdateSignatureInvalid { .. } => (
                ErrorCode::UpdateSignatureInvalid,
                "Update package signature mismatch",
            ),
            Error::UpdateRollbackRejected { .. } => (
                ErrorCode::UpdateRollbackRejected,
                "Update older than the installed version",
            ),
            Error::UpdateFailed { .. } => (ErrorCode::UpdateFailed, "The update failed"),
        };
        let message = match self {
            Error::Invalid { message, .. } => message.clone(),
            _ => message.to_owned(),
        };
        let detail = match self {
            Error::Invalid { detail, .. } => detail.clone(),
            other => other.to_string(),
        };
        ApiError::new(code, source, message, detail, ts)
    }
}
