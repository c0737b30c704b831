//! What the daemon checks every few seconds while it serves: that its watchdog still runs
//! (started again if it died), that the services it supervises are those installed (a
//! `kojibox install` beside the daemon switched the manifest: new services are supervised,
//! dropped ones stopped, `runtime:updated` goes out), and that its own log
//! (`app/logs/daemon.log`, where `kojibox up` sends its output) stays as small as a service log,
//! rotated the same way.

use std::sync::Arc;
use std::time::Duration;

use kojibox_home::Home;
use kojibox_manifests::event::Event;
use kojibox_proc::Watchdog;
use kojibox_supervisor::Supervisor;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use super::notice::{Notice, Notices};

/// How often the checks run.
const EVERY: Duration = Duration::from_secs(2);

/// Size at which `daemon.log` is rotated.
pub const ROTATE_BYTES: u64 = 10 << 20;
/// Rotated `daemon.log` files kept (`daemon.1.log` … `daemon.N.log`).
const ROTATE_KEEP: u32 = 3;

/// What the checks look after.
pub(crate) struct Housekeeping {
    pub(crate) home: Home,
    pub(crate) supervisor: Arc<Supervisor>,
    pub(crate) watchdog: Option<Arc<Watchdog>>,
    pub(crate) events: broadcast::Sender<Event>,
    pub(crate) notices: Notices,
}

/// Runs the checks until `stop` is cancelled.
pub(crate) async fn run(keep: Housekeeping, stop: CancellationToken) {
    let Housekeeping {
        home,
        supervisor,
        watchdog,
        events,
        notices,
    } = keep;
    loop {
        follow_the_manifest(&home, &supervisor, &events, &notices).await;
        let (h, w) = (home.clone(), watchdog.clone());
        let notes = tokio::task::spawn_blocking(move || {
            let mut notes = Vec::new();
            notes.extend(w.and_then(|w| w.check()));
            notes.extend(rotate_own_log(&h));
            notes
        })
        .await
        .unwrap_or_default();
        for note in notes {
            notices(Notice::Note(note));
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(EVERY) => {}
        }
    }
}

/// Reloads the services when `runtime/manifest.json` changed under the daemon, unless an update
/// is in progress (it reloads them itself, and must know what it dropped).
async fn follow_the_manifest(
    home: &Home,
    supervisor: &Supervisor,
    events: &broadcast::Sender<Event>,
    notices: &Notices,
) {
    if kojibox_runtime::journal::interrupted(home) {
        return;
    }
    match supervisor.reload_if_changed().await {
        None => {}
        Some(Ok(reloaded)) => {
            if reloaded.changed() {
                let mut said = Vec::new();
                if !reloaded.added.is_empty() {
                    said.push(format!("now supervising {}", reloaded.added.join(", ")));
                }
                if !reloaded.removed.is_empty() {
                    said.push(format!(
                        "stopped and dropped {} (no longer installed)",
                        reloaded.removed.join(", ")
                    ));
                }
                notices(Notice::Note(format!(
                    "the installed runtime changed: {}",
                    said.join("; ")
                )));
            }
            let h = home.clone();
            let manifest =
                tokio::task::spawn_blocking(move || kojibox_runtime::installed::get_manifest(&h))
                    .await;
            if let Ok(Ok(manifest)) = manifest {
                let _ = events.send(Event::RuntimeUpdated(manifest));
            }
        }
        Some(Err(e)) => notices(Notice::Note(format!(
            "the installed runtime changed, but its services cannot be supervised: {e}"
        ))),
    }
}

/// When standard output is `daemon.log` of `home` and has grown past [`ROTATE_BYTES`]: rotates
/// it (`daemon.1.log` … `daemon.N.log`, [`ROTATE_KEEP`] kept) and points standard output and
/// error at a fresh file. Answers a note when that failed.
#[cfg(unix)]
fn rotate_own_log(home: &Home) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let path = home.daemon_log();
    let out = rustix::fs::fstat(std::io::stdout()).ok()?;
    let named = std::fs::symlink_metadata(&path).ok()?;
    let ours =
        named.is_file() && named.dev() == out.st_dev as u64 && named.ino() == out.st_ino as u64;
    if !ours || named.len() < ROTATE_BYTES {
        return None;
    }
    kojibox_home::fs::rotate(&path, ROTATE_KEEP);
    let fresh = match kojibox_home::fs::open_append_private(home, &path) {
        Ok(file) => file,
        Err(e) => return Some(format!("could not start a new {}: {e}", path.display())),
    };
    let pointed =
        rustix::stdio::dup2_stdout(&fresh).and_then(|()| rustix::stdio::dup2_stderr(&fresh));
    pointed.err().map(|e| {
        format!(
            "rotated {} but could not write to the new file ({e}); output goes to {}",
            path.display(),
            kojibox_home::fs::rotated(&path, 1).display()
        )
    })
}

#[cfg(not(unix))]
fn rotate_own_log(_home: &Home) -> Option<String> {
    // Untested: on Windows the daemon's output file is left as it is.
    None
}
