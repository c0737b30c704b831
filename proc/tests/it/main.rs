//! Integration tests for kojibox-proc: real processes, real signals, real ports on 127.0.0.1.
//! Linux only: they read `/proc` to check what the crate did.
// Test helpers unwrap, print and are `pub` across the test modules.
#![allow(
    clippy::unwrap_used,
    clippy::print_stdout,
    clippy::print_stderr,
    unreachable_pub
)]
#![cfg(target_os = "linux")]

mod helpers;
mod leftovers;
mod pdeathsig;
mod ports;
mod spawn;
mod terminate;
mod users;
