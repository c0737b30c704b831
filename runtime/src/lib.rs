//! The installed runtime and how it changes: installing a bundle offline, verifying what is on
//! disk, the update journal, and signed updates.
//!
//! - [`installed`]: what is installed (`runtime.getManifest`, `runtime.ensureService`), this
//!   machine's services, the stored signed indexes;
//! - [`verify`]: `kojibox verify`, every payload re-hashed against its signed index;
//! - [`install`]: installing a `.kbx` atomically (verify, extract into staging, switch the
//!   manifest), and recovering from an interrupted one; [`installer`]: `installer.start`;
//! - [`activate`]: making a version the active one, and the rollback watermark;
//! - [`journal`]: the update journal, the installer's transaction log for an update;
//! - [`update`]: `updater.check`, `updater.apply` and `updater.rollback`, including self-update.
//!
//! Nothing here knows the supervisor: an update asks for restarts through
//! [`update::Services`], which the supervisor implements.

pub mod activate;
pub mod error;
pub mod install;
pub mod installed;
pub mod installer;
pub mod journal;
pub mod update;
pub mod verify;

pub use error::{Error, Result};
