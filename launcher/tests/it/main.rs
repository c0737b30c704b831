//! Integration tests of the launcher: `kojibox install` and `kojibox verify` as a user runs them
//! (the real binary, a fresh home per test), and the library functions behind the API.

mod adversarial;
mod api;
mod craft;
mod crash;
mod e2e_postgres;
mod install;
mod installer;
mod runtime;
mod supervise;
mod support;
mod update;
