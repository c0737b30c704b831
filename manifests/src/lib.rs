//! The kojibox contract as Rust types: data only, no I/O.
//!
//! Everything that crosses a module boundary lives here, shaped exactly as
//! the contract puts it on the wire (`docs/api.md`; the user's contract is committed verbatim as
//! `manifests/tests/fixtures/contract.md`):
//!
//! - [`model`]: the shared data models (`RuntimeManifest` … `MetricsSnapshot`);
//! - [`api`]: the request envelope with typed params and results for every method, and the
//!   response envelope;
//! - [`error`]: the error envelope and its codes;
//! - [`event`]: the seven events and their envelope;
//! - [`recipe`]: the bundle recipe (TOML) that `kojibox-bundle` builds from;
//! - [`bundle`]: the signed content index inside a `.kbx` bundle;
//! - [`channel`]: the signed index of an update channel;
//! - [`schema`]: JSON Schemas of all of the above, as committed under `manifests/schema/`.
//!
//! The wire format only grows by addition: new fields are optional and skipped when absent, so
//! files and clients written against an older version keep working.

pub mod api;
pub mod bundle;
pub mod channel;
pub mod error;
pub mod event;
pub mod model;
pub mod recipe;
pub mod schema;
pub mod strict;

pub use api::{Method, Request, RequestError, Response};
pub use error::{ApiError, ErrorCode, ErrorSource};
pub use event::{Event, EventEnvelope};

/// A JSON document that does not fit its type, with the path of the offending field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{message}", if path.is_empty() || path == "." { String::new() } else { format!("field `{path}`: ") })]
pub struct DecodeError {
    /// The offending field's path (`services[0].defaultPorts[1].protocol`); `.` for the root.
    pub path: String,
    /// What is wrong with it.
    pub message: String,
}

/// Parses JSON into a contract type; the error names the offending field.
pub fn from_json_slice<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, DecodeError> {
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(de).map_err(|e| DecodeError {
        path: e.path().to_string(),
        message: e.into_inner().to_string(),
    })?;
    Ok(value)
}
