//! The launcher's errors: every crate's, and the few of its own (the API's listener, methods not
//! served yet). Each knows its contract code through [`ToApi`]: the one mapping to the error
//! envelope is the crates' own, delegated to here.

use std::borrow::Cow;

use kojibox_home::ToApi;
use kojibox_manifests::error::ErrorCode;

/// Everything that can go wrong in the daemon and the commands that run without one.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The home.
    #[error(transparent)]
    Home(#[from] kojibox_home::Error),
    /// Installs, verification, updates.
    #[error(transparent)]
    Runtime(#[from] kojibox_runtime::Error),
    /// The configuration.
    #[error(transparent)]
    Config(#[from] kojibox_config::Error),
    /// The secret store.
    #[error(transparent)]
    Secrets(#[from] kojibox_secrets::Error),
    /// The supervisor.
    #[error(transparent)]
    Supervisor(#[from] kojibox_supervisor::Error),
    /// A method of the contract this build does not serve yet.
    #[error("{detail}")]
    Unavailable {
        /// Which one.
        detail: String,
    },
    /// The API cannot listen where it was asked (not a loopback address, not an address).
    #[error("{message}: {detail}")]
    Invalid {
        /// One sentence.
        message: String,
        /// What exactly.
        detail: String,
    },
    /// The API's address is taken.
    #[error("{detail}")]
    PortConflict {
        /// Which address.
        detail: String,
    },
    /// An unexpected internal failure (a result that could not be encoded).
    #[error("Internal failure: {detail}")]
    Internal {
        /// What failed.
        detail: String,
    },
}

/// Shorthand for results in the launcher.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A file operation failed: `map_err(Error::io("read", &path))`.
    pub fn io(
        action: &'static str,
        path: impl Into<std::path::PathBuf>,
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

    /// Whether the named object does not exist.
    pub fn is_not_found(&self) -> bool {
        self.code() == ErrorCode::NotFound
    }

    fn inner(&self) -> Option<&dyn ToApi> {
        match self {
            Error::Home(e) => Some(e),
            Error::Runtime(e) => Some(e),
            Error::Config(e) => Some(e),
            Error::Secrets(e) => Some(e),
            Error::Supervisor(e) => Some(e),
            _ => None,
        }
    }
}

impl ToApi for Error {
    fn code(&self) -> ErrorCode {
        match self {
            Error::Unavailable { .. } => ErrorCode::MethodNotFound,
            Error::Invalid { .. } => ErrorCode::ValidationFailed,
            Error::Internal { .. } => ErrorCode::Internal,
            Error::PortConflict { .. } => ErrorCode::PortConflict,
            other => other.inner().map_or(ErrorCode::Internal, ToApi::code),
        }
    }

    fn message(&self) -> Cow<'_, str> {
        match self {
            Error::Unavailable { .. } => "Method not available".into(),
            Error::Invalid { message, .. } => message.as_str().into(),
            Error::PortConflict { .. } => "Requested port is already in use".into(),
            Error::Internal { .. } => "Could not encode the result".into(),
            other => other
                .inner()
                .map_or("Internal failure".into(), ToApi::message),
        }
    }

    fn detail(&self) -> String {
        match self {
            Error::Invalid { detail, .. } | Error::Internal { detail } => detail.clone(),
            other => other
                .inner()
                .map_or_else(|| other.to_string(), ToApi::detail),
        }
    }

    fn retryable(&self) -> bool {
        self.inner()
            .map_or_else(|| self.code().default_retryable(), ToApi::retryable)
    }
}
