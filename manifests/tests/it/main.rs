//! Integration tests of the contract types: one binary, a module per concern.

mod contract;
mod events;
mod parse_errors;
mod recipe;
mod schema;

/// The workspace's `manifests/` folder.
fn crate_dir() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}
