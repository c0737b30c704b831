//! Signed updates: `updater.check`, `updater.apply` and `updater.rollback`.
//!
//! # Theory of operation
//!
//! An update repository (written by `kojibox-bundle publish`) is a folder or a static HTTP
//! server with `channels/<channel>.json` (a signed [`ChannelIndex`](kojibox_manifests::channel::ChannelIndex)) and `bundles/*.kbx`.
//! Settings `updateSource` says where it is; `AppConfig.updateChannel` which channel to follow
//! (the caller reads it and passes it in: the runtime knows nothing of the app's configuration).
//!
//! **Check.** The channel file is fetched (at most 64 KiB; over HTTP within a total deadline,
//! [`CHANNEL_DEADLINE`]), its signature
//! verified against the pinned keys (`app/keys/`), its channel and expiry checked, and its
//! version compared (semver) with the installed one.
//!
//! **Apply** ([`apply`]). A [`plan`] first: after a fresh check, the version asked must be the
//! channel's, and not below the
//! rollback watermark (the highest version ever installed). The bundle is downloaded into
//! `app/cache/updates/` (resuming a `.part`, never more bytes than the index declares; over HTTP
//! with an idle timeout, a minimum throughput and a deadline scaled to its size) and its
//! sha256 compared with the signed one; then it is installed by the installer (which verifies
//! its signature against the pinned keys, extracts beside the current version and switches the
//! manifest atomically). The services whose version changed and were running are restarted
//! (through [`Services`], which the supervisor implements) and
//! must become healthy; if one does not, the previous manifest is switched back and they are
//! restarted on the old version, and the answer is `UPDATE_FAILED`. Only a healthy update raises
//! the watermark and emits `runtime:updated`. Phases go out as `update:progress`. Last, when
//! the bundle carries kojibox itself for this machine (a payload named `kojibox`) and it
//! differs from the running executable, the executable is replaced ([`replace_self`]) and the
//! daemon restarts itself on it.
//!
//! **Journal.** Before the install, a journal holding the previous manifest is written
//! (`app/state/update/journal.json`, see [`crate::journal`]). A process killed at any point
//! leaves it; [`crate::journal::recover_interrupted`] (run before anything else at daemon start,
//! by every install and by `kojibox update`) rolls a switched-but-unproven update back, so a
//! home is always on one version, never a mix. Data folders are never touched.

mod apply;
mod channel;
mod download;
mod http;
mod plan;
mod progress;
mod rollback;
mod self_replace;
mod services;
mod source;

pub use apply::{Applied, apply, apply_until};
pub use channel::{Offer, check, check_and_announce};
pub use download::{download, download_until};
pub use http::{
    CHANNEL_DEADLINE, CONNECT_TIMEOUT, DEADLINE_SLACK, IDLE_TIMEOUT, MIN_RATE, RATE_WINDOW,
};
pub use plan::{PlanKind, UpdatePlan, plan};
pub use progress::Emit;
pub use rollback::{RolledBack, rollback};
pub use self_replace::{replace_self, restore_previous, restore_previous_to};
pub use services::{HEALTH_TIMEOUT, NoServices, SETTLE, Services};
pub use source::{Source, redact, source};
