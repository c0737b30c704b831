//! What the daemon checks every few seconds while it serves: that its watchdog still runs
//! (started again if it died), and that its own log (`app/logs/daemon.log`, where `kojibox up`
//! sends its output) stays as small as a service log, rotated the same way.

use std::sync::Arc;
use std::time::Duration;

use kojibox_home::Home;
use kojibox_proc::Watchdog;
use kojibox_supervisor::logs::{ROTATE_BYTES, ROTATE_KEEP};
use tokio_util::sync::CancellationToken;

use super::notice::{Notice, Notices};

/// How often the checks run.
const EVERY: Duration = Duration::from_secs(2);

/// Runs the checks until `stop` is cancelled.
pub(crate) async fn run(
    home: Home,
    watchdog: Option<Arc<Watchdog>>,
    notices: Notices,
    stop: CancellationToken,
) {
    loop {
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
