//! Who runs the services: kojibox's own user, or under root the settings' `serviceUser` (default
//! `nobody`), who must be able to reach the home and every project folder.

use kojibox_home::{Home, Settings};

use crate::error::{Error, Result};

/// The user services run as (`None`: kojibox's own, when it is not root) and, when that user
/// cannot reach the home, why.
pub fn service_user(home: &Home) -> Result<(Option<kojibox_proc::User>, Option<String>)> {
    if !kojibox_proc::current_is_root() {
        return Ok((None, None));
    }
    let name = Settings::load(home)?
        .service_user
        .unwrap_or_else(|| "nobody".to_owned());
    let user = kojibox_proc::lookup_user(&name).map_err(|e| Error::PermissionDenied {
        detail: e.to_string(),
    })?;
    let problem = kojibox_proc::check_traversable(home.root(), &user).err().map(|e| {
        format!("services run as `{name}` when kojibox runs as root, and {name} cannot use this home: {e}")
    });
    Ok((Some(user), problem))
}

/// Whether the mode bits let `user` list a folder (read and search).
pub(crate) fn readable_by(meta: &std::fs::Metadata, user: &kojibox_proc::User) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let mode = meta.mode();
        let bits = if meta.uid() == user.uid {
            mode >> 6
        } else if meta.gid() == user.gid {
            mode >> 3
        } else {
            mode
        };
        user.uid == 0 || bits & 0o5 == 0o5
    }
    #[cfg(not(unix))]
    {
        let _ = (meta, user);
        true
    }
}

pub(crate) fn mode_of(meta: &std::fs::Metadata) -> u32 {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        meta.mode() & 0o7777
    }
    #[cfg(not(unix))]
    {
        let _ = meta;
        0
    }
}
