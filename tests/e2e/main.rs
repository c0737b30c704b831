//! The whole path a user runs, with the real binaries and the real PostgreSQL of the default
//! recipe, in one fresh home: `kojibox-bundle keygen` and `build` (from the npm tarball
//! `ci/setup` fetched: no network), `kojibox install`, `config service`, `up`, a `psql` query,
//! `kojibox-bundle publish` of 1.1.0, `update check` and `apply` (PostgreSQL restarts on the new
//! payload with its data), `rollback`, `down` and `verify`.
//!
//! `postgres_supervised` drives the supervisor in-process instead: PostgreSQL survives `kill -9`
//! and a stop leaves nothing behind.
//!
//! The binaries are built first (`cargo build -p launcher -p bundler`, a no-op when they are
//! fresh) and run from the workspace's target folder.
// Test helpers unwrap, print and are `pub` across the test modules.
#![allow(
    clippy::unwrap_used,
    clippy::print_stdout,
    clippy::print_stderr,
    unreachable_pub
)]

mod postgres;
mod postgres_supervised;
mod support;
mod user_path;
