//! The kojibox home: the one folder everything kojibox writes lives in.
//!
//! - [`layout`]: [`Home`], how it is chosen, and one method per file or folder inside it;
//! - [`lock`]: the home's named locks ([`LockName`]) and the order they are taken in;
//! - [`fs`]: durable writes (temporary file, fsync, rename, fsync of the folder) that never
//!   follow a link planted in the home, and reads that name a corrupt file instead of resetting
//!   it;
//! - [`perms`]: who may change a home (refused as ssh's `StrictModes` refuses) and the modes of
//!   the folders kojibox creates;
//! - [`settings`]: the settings that are not the contract's (`app/config/settings.json`);
//! - [`endpoint`]: how a CLI finds the running daemon (`app/state/api.json`, `api-token`);
//! - [`error`]: the home's [`Error`], and [`ToApi`], the one way any kojibox error becomes the
//!   contract's error envelope;
//! - [`clock`], [`fault`] (crash points for tests), [`task`] (blocking work off the async workers).
//!
//! Everything here is a library: it prints nothing but the message of an armed fault point.

pub mod clock;
pub mod endpoint;
pub mod error;
pub mod fault;
pub mod fs;
pub mod layout;
pub mod lock;
pub mod perms;
pub mod settings;
pub mod task;

pub use error::{Error, Result, ToApi};
pub use layout::{Home, HomeSource};
pub use lock::{EditKind, Lock, LockName};
pub use settings::Settings;
