//! Integration tests of the `kojibox-bundle` binary, run as a user runs it.

mod build;
mod cli;
mod fetch;
