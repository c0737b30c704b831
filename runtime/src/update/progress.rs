//! Where an update's progress and events go: the daemon's event bus, or a CLI's printer.

use std::sync::Arc;

use kojibox_manifests::api::Progress;
use kojibox_manifests::event::Event;

/// Where progress and events go (the daemon's event bus; a progress display in the CLI).
pub type Emit = Arc<dyn Fn(Event) + Send + Sync>;

/// Announces a phase (`update:progress`).
pub(crate) fn phase(emit: &Emit, phase: &str, progress: u8) {
    emit(Event::UpdateProgress(Progress {
        phase: phase.to_owned(),
        progress,
    }));
}
