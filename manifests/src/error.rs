//! The error envelope: `{"error": {code, message, detail, retryable, source, ts}}`.
//!
//! `code` holds the contract's five codes plus the additions listed in `docs/design.md` ("Errors").
//! `source` names the module that failed. Every API failure, whatever its cause, is one of these;
//! the launcher maps its internal errors to it in one place.

use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The body of an error response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApiError {
    /// Machine-readable code.
    pub code: ErrorCode,
    /// One sentence for a person.
    pub message: String,
    /// What exactly went wrong (names the port, the field, the file...).
    pub detail: String,
    /// Whether the same request may succeed later without any change.
    pub retryable: bool,
    /// The module that failed.
    pub source: ErrorSource,
    /// When it failed (RFC 3339, UTC).
    pub ts: String,
}

impl ApiError {
    /// Builds an error with `retryable` taken from [`ErrorCode::default_retryable`].
    pub fn new(
        code: ErrorCode,
        source: ErrorSource,
        message: impl Into<String>,
        detail: impl Into<String>,
        ts: impl Into<String>,
    ) -> Self {
        ApiError {
            code,
            message: message.into(),
            detail: detail.into(),
            retryable: code.default_retryable(),
            source,
            ts: ts.into(),
        }
    }

    /// Overrides `retryable`.
    #[must_use]
    pub fn retryable(mut self, retryable: bool) -> Self {
        self.retryable = retryable;
        self
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({}): {}", self.message, self.code, self.detail)
    }
}

impl std::error::Error for ApiError {}

/// Error codes: the contract's five, then documented additions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ErrorCode {
    /// A port is already in use (contract).
    PortConflict,
    /// A runtime binary or the whole runtime is not installed (contract).
    RuntimeMissing,
    /// The request or the data it names is invalid (contract).
    ValidationFailed,
    /// The OS refused an operation (contract).
    PermissionDenied,
    /// An update's signature does not verify (contract).
    UpdateSignatureInvalid,
    /// Addition: the named object does not exist.
    NotFound,
    /// Addition: no such API method.
    MethodNotFound,
    /// Addition: no or wrong API token.
    Unauthorized,
    /// Addition: installed files do not match their signed checksums.
    ChecksumMismatch,
    /// Addition: a bundle is malformed, unsigned or hostile.
    BundleInvalid,
    /// Addition: a service's dependency failed.
    DependencyFailed,
    /// Addition: an update would go below the highest version installed.
    UpdateRollbackRejected,
    /// Addition: an update failed and was rolled back.
    UpdateFailed,
    /// Addition: the request's Host or Origin was refused.
    Forbidden,
    /// Addition: the request body is over the size cap.
    PayloadTooLarge,
    /// Addition: an unexpected internal failure (never a bad request).
    Internal,
    /// Addition: not now: another operation holds the resource (an install, an update), a wait
    /// timed out, or kojibox is shutting down; try again.
    Busy,
}

impl ErrorCode {
    /// Every code, in declaration order.
    pub const ALL: [ErrorCode; 17] = [
        ErrorCode::PortConflict,
        ErrorCode::RuntimeMissing,
        ErrorCode::ValidationFailed,
        ErrorCode::PermissionDenied,
        ErrorCode::UpdateSignatureInvalid,
        ErrorCode::NotFound,
        ErrorCode::MethodNotFound,
        ErrorCode::Unauthorized,
        ErrorCode::ChecksumMismatch,
        ErrorCode::BundleInvalid,
        ErrorCode::DependencyFailed,
        ErrorCode::UpdateRollbackRejected,
        ErrorCode::UpdateFailed,
        ErrorCode::Forbidden,
        ErrorCode::PayloadTooLarge,
        ErrorCode::Internal,
        ErrorCode::Busy,
    ];

    /// The wire string (`PORT_CONFLICT`).
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::PortConflict => "PORT_CONFLICT",
            ErrorCode::RuntimeMissing => "RUNTIME_MISSING",
            ErrorCode::ValidationFailed => "VALIDATION_FAILED",
            ErrorCode::PermissionDenied => "PERMISSION_DENIED",
            ErrorCode::UpdateSignatureInvalid => "UPDATE_SIGNATURE_INVALID",
            ErrorCode::NotFound => "NOT_FOUND",
            ErrorCode::MethodNotFound => "METHOD_NOT_FOUND",
            ErrorCode::Unauthorized => "UNAUTHORIZED",
            ErrorCode::ChecksumMismatch => "CHECKSUM_MISMATCH",
            ErrorCode::BundleInvalid => "BUNDLE_INVALID",
            ErrorCode::DependencyFailed => "DEPENDENCY_FAILED",
            ErrorCode::UpdateRollbackRejected => "UPDATE_ROLLBACK_REJECTED",
            ErrorCode::UpdateFailed => "UPDATE_FAILED",
            ErrorCode::Forbidden => "FORBIDDEN",
            ErrorCode::PayloadTooLarge => "PAYLOAD_TOO_LARGE",
            ErrorCode::Internal => "INTERNAL",
            ErrorCode::Busy => "BUSY",
        }
    }

    /// Whether an error of this code is usually worth retrying unchanged: true for conditions
    /// that can clear by themselves (a port freed, a runtime installed, a dependency recovered).
    pub fn default_retryable(self) -> bool {
        matches!(
            self,
            ErrorCode::PortConflict
                | ErrorCode::RuntimeMissing
                | ErrorCode::DependencyFailed
                | ErrorCode::UpdateFailed
                | ErrorCode::Internal
                | ErrorCode::Busy
        )
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The module an error comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ErrorSource {
    /// `runtime.*`: the installed runtime.
    Runtime,
    /// `services.*`: the supervisor.
    Services,
    /// `config.*`.
    Config,
    /// `secrets.*`.
    Secrets,
    /// `domains.*`, `proxy.*`, `certs.*`.
    Tooling,
    /// `installer.*`.
    Installer,
    /// `updater.*`.
    Updater,
    /// `logs.*`.
    Logs,
    /// `diagnostics.*`.
    Diagnostics,
    /// `metrics.*`.
    Metrics,
    /// The API layer itself (auth, parsing, routing).
    Api,
}
