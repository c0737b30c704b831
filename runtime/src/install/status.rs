//! The installer's persisted status (`app/state/installer.json`), for `installer.status`, and
//! the reporter that keeps it and the caller's progress display up to date.

use std::time::{Duration, Instant};

use kojibox_home::Home;
use kojibox_home::fs::{read_json, write_json};
use kojibox_manifests::api::Progress;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct StatusFile {
    phase: String,
    progress: u8,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

/// `installer.status`: the last install's phase and progress (`idle`/0 when none ran).
pub fn status(home: &Home) -> Result<Progress> {
    let status: Option<StatusFile> = read_json(&home.installer_status())?;
    Ok(status.map_or(
        Progress {
            phase: "idle".into(),
            progress: 0,
        },
        |s| Progress {
            phase: s.phase,
            progress: s.progress,
        },
    ))
}

/// Tells the caller each phase change and percent, and persists them.
pub(crate) struct Reporter<'a> {
    home: &'a Home,
    last: Option<Progress>,
    sink: &'a mut dyn FnMut(&Progress),
    /// When the status file was last written.
    persisted: Option<Instant>,
}

/// Least time between two writes of the status file within one phase.
const PERSIST_EVERY: Duration = Duration::from_secs(1);

impl<'a> Reporter<'a> {
    pub(crate) fn new(home: &'a Home, sink: &'a mut dyn FnMut(&Progress)) -> Self {
        Reporter {
            home,
            last: None,
            sink,
            persisted: None,
        }
    }

    pub(crate) fn phase(&mut self, phase: &str, progress: u8) {
        let update = Progress {
            phase: phase.into(),
            progress,
        };
        if self.last.as_ref() == Some(&update) {
            return;
        }
        // Persisted at phase changes, and within a phase at most once a second and every 10
        // percent: another process reading `installer.status` sees it move. Each write is
        // fsynced, and an fsync while payload files are being written back waits for them
        // (ext4's ordered mode), stalling the extraction: so not one per percent, nor one per
        // 10 percent of a fast install.
        let persist = match &self.last {
            None => true,
            Some(l) if l.phase != phase => true,
            Some(l) => {
                l.progress / 10 != progress / 10
                    && self.persisted.is_none_or(|t| t.elapsed() >= PERSIST_EVERY)
            }
        };
        (self.sink)(&update);
        self.last = Some(update);
        if persist {
            self.persisted = Some(Instant::now());
            let _ = write_json(
                self.home,
                &self.home.installer_status(),
                &StatusFile {
                    phase: phase.into(),
                    progress,
                    error: None,
                },
            );
        }
    }

    pub(crate) fn failed(&mut self, error: &Error) {
        let progress = self.last.as_ref().map_or(0, |l| l.progress);
        let update = Progress {
            phase: "failed".into(),
            progress,
        };
        (self.sink)(&update);
        let _ = write_json(
            self.home,
            &self.home.installer_status(),
            &StatusFile {
                phase: "failed".into(),
                progress,
                error: Some(error.to_string()),
            },
        );
    }
}
