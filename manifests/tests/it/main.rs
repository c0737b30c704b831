//! Integration tests of the contract types: one binary, a module per concern.
// Test helpers unwrap, print and are `pub` across the test modules.
#![allow(
    clippy::unwrap_used,
    clippy::print_stdout,
    clippy::print_stderr,
    unreachable_pub
)]

mod api_docs;
mod contract;
mod events;
mod parse_errors;
mod recipe;
mod schema;

/// The workspace's `manifests/` folder.
fn crate_dir() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}
