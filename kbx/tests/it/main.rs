//! Integration tests of the .kbx format: write a real bundle from files on disk, then read it
//! back strictly, intact and tampered with.

mod roundtrip;
mod support;
mod tamper;
