//! `kojibox` as a library: the home, the installer, the installed runtime, the supervisor and
//! the daemon.
//!
//! The binary (`src/main.rs`) parses arguments and calls in here, so tests drive the same code.
#![deny(missing_docs)]

pub mod api;
pub mod client;
pub mod clock;
pub mod config;
pub mod daemon;
pub mod error;
mod fault;
pub mod fsutil;
pub mod home;
pub mod install;
pub mod installer;
pub mod ports;
pub mod runtime;
pub mod secrets;
pub mod settings;
pub mod supervisor;
pub mod task;
pub mod updater;
pub mod vault;
pub mod watchdog;

pub use error::{Error, Result};
pub use home::Home;
