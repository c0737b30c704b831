//! Integration tests of the .kbx format: write a real bundle from files on disk, then read it
//! back strictly, intact and tampered with.
// Test helpers unwrap, print and are `pub` across the test modules.
#![allow(
    clippy::unwrap_used,
    clippy::print_stdout,
    clippy::print_stderr,
    unreachable_pub
)]

mod roundtrip;
mod support;
mod tamper;
