//! The installer's persisted status (`app/state/installer.json`), for `installer.status`, and
//! the reporter that keeps it and the caller's progress display up to date.

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
    pub(crate) home: &'a Home,
    pub(crate) last: Option<Progress>,
    pub(crate) sink: &'a mut dyn FnMut(&Progress),
}

impl Reporter<'_> {
    pub(crate) fn phase(&mut self, phase: &str, progress: u8) {
        let update = Progress {
            phase: phase.into(),
            progress,
        };
        if self.last.as_ref() == Some(&update) {
            return;
        }
        // Persisted at phase changes and every 10 percent: another process reading
        // `installer.status` sees it move, without a file write per percent.
        let new_phase = self
            .last
            .as_ref()
            .is_none_or(|l| l.phase != phase || l.progress / 10 != progress / 10);
        (self.sink)(&update);
        self.last = Some(update);
        if new_phase {
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
