//! What a daemon cleans up before it serves: an interrupted install or update, and the
//! temporary files a killed writer left. Each finding is a note for the user.

use kojibox_home::Home;

use crate::error::Result;

/// Recovers the home (unless an install is running right now) and removes stale temporaries;
/// returns what it found. Blocking.
pub(crate) fn recover(home: &Home) -> Result<Vec<String>> {
    // (`recover_if_idle` recovers an interrupted update first.)
    let mut notes = kojibox_runtime::install::recover_if_idle(home)?;
    for dir in home.temp_dirs() {
        let removed = kojibox_home::fs::remove_stale_temporaries(&dir);
        if removed > 0 {
            notes.push(format!(
                "removed {removed} temporary file(s) an interrupted write left in {}",
                home.rel(&dir)
            ));
        }
    }
    Ok(notes)
}
