//! The supervisor's errors.

use std::borrow::Cow;
use std::path::PathBuf;

use kojibox_home::ToApi;
use kojibox_manifests::error::ErrorCode;

/// What can go wrong supervising services.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The home failed: a file operation, a corrupt file, a lock.
    #[error(transparent)]
    Home(#[from] kojibox_home::Error),
    /// A service's settings or definition are invalid, or name what is not installed.
    #[error(transparent)]
    Config(#[from] kojibox_config::Error),
    /// A secret the service uses cannot be read.
    #[error(transparent)]
    Secrets(#[from] kojibox_secrets::Error),
    /// A request's parameters are wrong: the detail names the field.
    #[error("{detail}")]
    Invalid {
        /// Which field, what is wrong, what would do.
        detail: String,
    },
    /// No such service.
    #[error("{detail}")]
    NotFound {
        /// What was looked for, and what there is.
        detail: String,
    },
    /// A port the service needs is taken.
    #[error("{detail}")]
    PortConflict {
        /// Which port, and its owner when known.
        detail: String,
    },
    /// The service user cannot reach the home.
    #[error("{detail}")]
    PermissionDenied {
        /// Why, and how to fix it.
        detail: String,
    },
    /// A dependency could not start.
    #[error("{detail}")]
    DependencyFailed {
        /// Which one, and why.
        detail: String,
    },
    /// The supervisor is stopping its services: nothing starts any more (`BUSY`, retryable).
    #[error("kojibox is shutting down: its services are being stopped and none starts now")]
    ShuttingDown,
    /// A wait ran out of time (`BUSY`, retryable).
    #[error("Timed out: {detail}")]
    Timeout {
        /// What was awaited.
        detail: String,
    },
}

/// Shorthand for results of the supervisor.
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
}

impl ToApi for Error {
    fn code(&self) -> ErrorCode {
        match self {
            Error::Home(e) => e.code(),
            Error::Config(e) => e.code(),
            Error::Secrets(e) => e.code(),
            Error::Invalid { .. } => ErrorCode::ValidationFailed,
            Error::NotFound { .. } => ErrorCode::NotFound,
            Error::PortConflict { .. } => ErrorCode::PortConflict,
            Error::PermissionDenied { .. } => ErrorCode::PermissionDenied,
            Error::DependencyFailed { .. } => ErrorCode::DependencyFailed,
            Error::ShuttingDown | Error::Timeout { .. } => ErrorCode::Busy,
        }
    }

    fn message(&self) -> Cow<'_, str> {
        Cow::Borrowed(match self {
            Error::Home(e) => return e.message(),
            Error::Config(e) => return e.message(),
            Error::Secrets(e) => return e.message(),
            Error::Invalid { .. } => "Invalid request",
            Error::NotFound { .. } => "Not found",
            Error::PortConflict { .. } => "Requested port is already in use",
            Error::PermissionDenied { .. } => "Insufficient permission",
            Error::DependencyFailed { .. } => "A dependency failed",
            Error::ShuttingDown => "Shutting down",
            Error::Timeout { .. } => "Timed out",
        })
    }

    fn detail(&self) -> String {
        match self {
            Error::Home(e) => e.detail(),
            Error::Config(e) => e.detail(),
            Error::Secrets(e) => e.detail(),
            Error::ShuttingDown => {
                "kojibox is stopping its services and starts none now: try again once it runs \
                 again (kojibox up)"
                    .into()
            }
            Error::Timeout { detail } => detail.clone(),
            other => other.to_string(),
        }
    }

    fn retryable(&self) -> bool {
        match self {
            Error::Home(e) => e.retryable(),
            Error::Config(e) => e.retryable(),
            Error::Secrets(e) => e.retryable(),
            other => other.code().default_retryable(),
        }
    }
}
