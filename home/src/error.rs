//! The home's errors, and [`ToApi`]: how any kojibox error finds its place in the contract's
//! error envelope.
//!
//! Every library crate of the workspace has its own error enum. Each enum says, for each of its
//! variants, which contract code and one-sentence message it stands for, by implementing
//! [`ToApi`]; an enum that wraps another crate's error delegates to it. So the code of an error
//! is decided once, where the error is defined, and [`ToApi::to_api`] builds every envelope the
//! same way.

use std::borrow::Cow;
use std::path::PathBuf;

use kojibox_manifests::error::{ApiError, ErrorCode, ErrorSource};

/// What can go wrong with the home itself: its files, its locks, its background work.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file operation failed.
    #[error("could not {action} {}: {source}{}", path.display(), hint(source))]
    Io {
        /// What was being done ("read", "create folder", ...).
        action: &'static str,
        /// On what.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A stored file is corrupt.
    #[error("{} is corrupt: {detail}", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// Another operation holds the lock.
    #[error("{0}")]
    Busy(String),
    /// No home can be chosen, or the input naming it is invalid.
    #[error("{message}: {detail}")]
    Invalid {
        /// One sentence.
        message: String,
        /// What exactly.
        detail: String,
    },
    /// The home, or a folder above it, could be changed by someone other than the user running
    /// kojibox and root (as ssh's `StrictModes` judges a home): nothing is written into it.
    #[error("refusing to use the home {}: {} {detail}; {fix}", home.display(), path.display())]
    UnsafeHome {
        /// The home.
        home: PathBuf,
        /// The folder at fault (the home or one above it).
        path: PathBuf,
        /// What is wrong with it (`is writable by others (mode 0777)`).
        detail: String,
        /// How to fix it.
        fix: String,
    },
    /// A link, or anything but a plain folder or file, where kojibox writes inside its home:
    /// never followed, never removed.
    #[error(
        "{} is {what}: kojibox never writes through a link planted in its home; remove it (and \
         find out who put it there), then try again",
        path.display()
    )]
    Planted {
        /// The path found.
        path: PathBuf,
        /// What it is (`a symbolic link`, `a hard link to another file`, `not a folder`).
        what: &'static str,
    },
    /// A background task failed unexpectedly (it panicked or was cancelled).
    #[error("Internal failure: {detail}")]
    Internal {
        /// What failed.
        detail: String,
    },
}

/// What to do about an I/O failure whose cause alone does not say it (a full disk).
fn hint(e: &std::io::Error) -> &'static str {
    match e.kind() {
        std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded => {
            "; the disk is full: free some space, then try again"
        }
        std::io::ErrorKind::FileTooLarge => {
            "; the file would exceed the size this system allows a file (`ulimit -f`)"
        }
        _ => "",
    }
}

/// Shorthand for results of the home.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An `Io` error: `map_err(Error::io("read", &path))`.
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

    /// Whether this is a lock another operation holds.
    pub fn is_busy(&self) -> bool {
        matches!(self, Error::Busy(_))
    }
}

/// An error that knows its place in the contract's envelope: its code, its one-sentence message
/// and its detail. Implemented by every error enum of the workspace.
pub trait ToApi: std::error::Error + Send + Sync + 'static {
    /// The contract's code.
    fn code(&self) -> ErrorCode;

    /// One sentence for a person (`Invalid request`).
    fn message(&self) -> Cow<'_, str>;

    /// What exactly went wrong; by default the error's own text.
    fn detail(&self) -> String {
        self.to_string()
    }

    /// Whether the same request may succeed later without any change (the envelope's
    /// `retryable`); by default the code's [`ErrorCode::default_retryable`]. A corrupt or
    /// invalid file is never retryable, whatever its code: it stays so until someone fixes it.
    fn retryable(&self) -> bool {
        self.code().default_retryable()
    }

    /// The envelope for this error, as raised by `source` at `ts`.
    fn to_api(&self, source: ErrorSource, ts: impl Into<String>) -> ApiError
    where
        Self: Sized,
    {
        ApiError::new(self.code(), source, self.message(), self.detail(), ts)
            .retryable(self.retryable())
    }
}

impl ToApi for Error {
    fn code(&self) -> ErrorCode {
        match self {
            Error::Io { source, .. } if source.kind() == std::io::ErrorKind::PermissionDenied => {
                ErrorCode::PermissionDenied
            }
            Error::UnsafeHome { .. } | Error::Planted { .. } => ErrorCode::PermissionDenied,
            Error::Io { .. } | Error::Corrupt { .. } | Error::Internal { .. } => {
                ErrorCode::Internal
            }
            Error::Busy(_) => ErrorCode::Busy,
            Error::Invalid { .. } => ErrorCode::ValidationFailed,
        }
    }

    fn message(&self) -> Cow<'_, str> {
        Cow::Borrowed(match self {
            Error::Io { source, .. } if source.kind() == std::io::ErrorKind::PermissionDenied => {
                "Insufficient permission"
            }
            Error::Io { .. } => "A file operation failed",
            Error::UnsafeHome { .. } => "The home is not safe to use",
            Error::Planted { .. } => "A link was planted in the home",
            Error::Corrupt { .. } => "A stored file is corrupt",
            Error::Busy(_) => "Another operation is in progress",
            Error::Invalid { message, .. } => return Cow::Borrowed(message),
            Error::Internal { .. } => "Internal failure",
        })
    }

    fn detail(&self) -> String {
        match self {
            Error::Invalid { detail, .. } | Error::Internal { detail } => detail.clone(),
            other => other.to_string(),
        }
    }

    fn retryable(&self) -> bool {
        match self {
            // Reading it again gives the same bytes: someone must fix or remove the file.
            Error::Corrupt { .. } => false,
            other => other.code().default_retryable(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_disk_says_what_to_do_and_a_corrupt_file_is_not_retryable() {
        let full =
            Error::io("write", "/h/app/config/app.json")(std::io::Error::from_raw_os_error(28));
        assert_eq!(
            full.to_string(),
            "could not write /h/app/config/app.json: No space left on device (os error 28); the \
             disk is full: free some space, then try again"
        );
        let corrupt = Error::Corrupt {
            path: "/h/app/config/app.json".into(),
            detail: "EOF".into(),
        };
        let api = corrupt.to_api(ErrorSource::Config, "2026-01-01T00:00:00Z");
        assert_eq!(api.code, ErrorCode::Internal);
        assert!(!api.retryable);
    }
}
