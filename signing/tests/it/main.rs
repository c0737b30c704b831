//! Integration tests of kojibox-signing: one test binary, one module per area.
// Test helpers unwrap, print and are `pub` across the test modules.
#![allow(
    clippy::unwrap_used,
    clippy::print_stdout,
    clippy::print_stderr,
    unreachable_pub
)]

mod keyfiles;
mod sign_verify;
mod signatures;
mod support;
mod trust_store;
