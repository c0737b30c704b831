//! The secret store's errors. None of them ever carries a secret value.

use std::borrow::Cow;
use std::path::PathBuf;

use kojibox_home::ToApi;
use kojibox_manifests::error::ErrorCode;

/// What can go wrong with the secret store.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The home failed: a file operation or a lock.
    #[error(transparent)]
    Home(kojibox_home::Error),
    /// The store file, the key file or `key.locked` is corrupt (it is never written over).
    #[error("{} is corrupt: {detail}", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong (never a value).
        detail: String,
    },
    /// A key name or a passphrase is invalid.
    #[error("{message}: {detail}")]
    Invalid {
        /// One sentence.
        message: String,
        /// What exactly (names the field).
        detail: String,
    },
    /// No such secret, or the store's key is gone.
    #[error("{detail}")]
    NotFound {
        /// What was looked for.
        detail: String,
    },
    /// The store needs a passphrase (or the right one), or the OS keyring refused.
    #[error("{detail}")]
    PermissionDenied {
        /// Why, and what to do.
        detail: String,
    },
}

/// Shorthand for results of the secret store.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<kojibox_home::Error> for Error {
    fn from(e: kojibox_home::Error) -> Error {
        match e {
            // A corrupt file of the store is the store's: say so the same way wherever it is read.
            kojibox_home::Error::Corrupt { path, detail } => Error::Corrupt { path, detail },
            other => Error::Home(other),
        }
    }
}

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
            Error::Corrupt { .. } => ErrorCode::Internal,
            Error::Invalid { .. } => ErrorCode::ValidationFailed,
            Error::NotFound { .. } => ErrorCode::NotFound,
            Error::PermissionDenied { .. } => ErrorCode::PermissionDenied,
        }
    }

    fn message(&self) -> Cow<'_, str> {
        match self {
            Error::Home(e) => e.message(),
            Error::Corrupt { .. } => "A stored file is corrupt".into(),
            Error::Invalid { message, .. } => message.as_str().into(),
            Error::NotFound { .. } => "Not found".into(),
            Error::PermissionDenied { .. } => "Insufficient permission".into(),
        }
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
            Error::Corrupt { .. } => false,
            other => other.code().default_retryable(),
        }
    }
}
