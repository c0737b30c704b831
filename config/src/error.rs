//! The configuration's errors. Each refusal of a value names its field first (`ports.db: …`).

use std::borrow::Cow;
use std::path::PathBuf;

use kojibox_home::ToApi;
use kojibox_manifests::error::ErrorCode;

/// What can go wrong reading, validating or writing the configuration.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The home failed: a file operation, a corrupt file, a lock.
    #[error(transparent)]
    Home(#[from] kojibox_home::Error),
    /// A value is invalid (the detail starts with the field).
    #[error("{message}: {detail}")]
    Invalid {
        /// One sentence.
        message: String,
        /// `field: why`.
        detail: String,
    },
    /// The named service or project does not exist.
    #[error("{detail}")]
    NotFound {
        /// What was looked for, and what there is.
        detail: String,
    },
    /// A port is another service's, or held by another process.
    #[error("{detail}")]
    PortConflict {
        /// Which port, and its holder.
        detail: String,
    },
    /// The OS (or the service user's rights) forbids it.
    #[error("{detail}")]
    PermissionDenied {
        /// Why, and how to fix it.
        detail: String,
    },
}

/// Shorthand for results of the configuration.
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
}

impl ToApi for Error {
    fn code(&self) -> ErrorCode {
        match self {
            Error::Home(e) => e.code(),
            Error::Invalid { .. } => ErrorCode::ValidationFailed,
            Error::NotFound { .. } => ErrorCode::NotFound,
            Error::PortConflict { .. } => ErrorCode::PortConflict,
            Error::PermissionDenied { .. } => ErrorCode::PermissionDenied,
        }
    }

    fn message(&self) -> Cow<'_, str> {
        Cow::Borrowed(match self {
            Error::Home(e) => return e.message(),
            Error::Invalid { message, .. } => message,
            Error::NotFound { .. } => "Not found",
            Error::PortConflict { .. } => "Requested port is already in use",
            Error::PermissionDenied { .. } => "Insufficient permission",
        })
    }

    fn detail(&self) -> String {
        match self {
            Error::Home(e) => e.detail(),
            Error::Invalid { detail, .. } => detail.clone(),
            other => other.to_string(),
        }
    }

    fn retryable(&self) -> bool {
        match self {
            Error::Home(e) => e.retryable(),
            other => other.code().default_retryable(),
        }
    }
}
