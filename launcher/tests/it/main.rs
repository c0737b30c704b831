//! Integration tests of the launcher: `kojibox install` and `kojibox verify` as a user runs them
//! (the real binary, a fresh home per test), and the library functions behind the API.
// Test helpers unwrap, print and are `pub` across the test modules.
#![allow(
    clippy::unwrap_used,
    clippy::print_stdout,
    clippy::print_stderr,
    unreachable_pub
)]

mod adversarial;
mod api;
mod craft;
mod crash;
mod daemon;
mod diagnostics;
mod home_safety;
mod install;
mod installer;
mod messages;
mod metrics;
mod runtime;
mod supervise;
mod support;
mod tamper;
mod update;
mod update_errors;
