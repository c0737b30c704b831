//! `kojibox` as a library: the composition root over the workspace's crates. It wires them into
//! the daemon and the API, and owns what faces the user's programs: the HTTP server, the event
//! stream, the CLI's client. It holds no domain rules of its own.
//!
//! - [`daemon`]: [`daemon::Daemon::start`] (a daemon in-process, on any port) and
//!   [`daemon::serve`] (`kojibox serve`);
//! - [`api`]: `POST /rpc`, `GET /events`, the guard in front of them;
//! - [`bus`]: the daemon's event bus read in batches (a log flood costs its readers few
//!   wake-ups);
//! - [`local`]: `config.*` and `secrets.*`, served the same way with or without a daemon;
//! - [`client`]: the CLI's side of the API;
//! - [`logs`]: `logs.query` and `logs.export`, with or without a daemon;
//! - [`metrics`] and [`diagnostics`]: `metrics.snapshot` and `diagnostics.create`;
//! - [`error`]: every crate's error in one enum, each knowing its contract code.
//!
//! The modules of the crates this one is made of are re-exported here at the paths they had
//! when they were the launcher's own (`launcher::install`, `launcher::supervisor`, …).

pub mod api;
pub mod bus;
pub mod client;
pub mod daemon;
pub mod diagnostics;
pub mod error;
pub mod local;
pub mod logs;
pub mod metrics;

pub use error::{Error, Result};
pub use kojibox_home::{Home, clock, endpoint, fs as fsutil, settings, task};
pub use kojibox_runtime::{install, installer, update as updater};
pub use kojibox_secrets as secrets;
pub use kojibox_supervisor as supervisor;

/// What is installed: `runtime.getManifest`, `runtime.ensureService`, `kojibox verify`.
pub mod runtime {
    pub use kojibox_runtime::installed::*;
    pub use kojibox_runtime::verify::*;
}

pub use kojibox_config::{self as config, ports};
