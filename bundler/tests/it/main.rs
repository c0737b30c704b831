//! Integration tests of the `kojibox-bundle` binary, run as a user runs it.
// Test helpers unwrap, print and are `pub` across the test modules.
#![allow(
    clippy::unwrap_used,
    clippy::print_stdout,
    clippy::print_stderr,
    unreachable_pub
)]

mod build;
mod cli;
mod deb;
mod fetch;
