//! Integration tests of kojibox-signing: one test binary, one module per area.

mod keyfiles;
mod sign_verify;
mod signatures;
mod support;
mod trust_store;
