//! Who runs the services: kojibox's own user when it is not root; under root a user of its own
//! for each service ([`kojibox_proc::own_service_user`], recorded in `app/state/service-users`),
//! or, when the settings name one, the `serviceUser` shared by every service. Either must be
//! able to reach the home and every project folder. `serviceUser` `root` (any uid 0 user) is
//! refused unless the settings also say `"allowRootServices": true`.

use std::path::PathBuf;

use kojibox_home::{Home, Settings};
use kojibox_proc::User;

use crate::error::{Error, Result};

/// Who runs a home's services.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServiceUsers {
    /// kojibox is not root: every service runs as kojibox's own user.
    Daemon,
    /// The settings' `serviceUser`, shared by every service; and, when it cannot reach the home,
    /// why.
    Shared {
        /// The user.
        user: User,
        /// Why it cannot use the home, when it cannot.
        problem: Option<String>,
    },
    /// Each service a user of its own, made at its first start ([`user_for`]).
    Own,
}

/// The record of the users made for this home's services (`<service> <uid>` lines).
pub fn record_file(home: &Home) -> PathBuf {
    home.state().join("service-users")
}

/// Who runs `home`'s services (reads the settings and `/etc/passwd`; makes no user).
pub fn service_users(home: &Home) -> Result<ServiceUsers> {
    if !kojibox_proc::current_is_root() {
        return Ok(ServiceUsers::Daemon);
    }
    let settings = Settings::load(home)?;
    let name = match settings.service_user {
        Some(name) => name,
        None if cfg!(target_os = "linux") => return Ok(ServiceUsers::Own),
        // Elsewhere the users are not made yet: one shared user, as configured.
        None => "nobody".to_owned(),
    };
    let user = kojibox_proc::lookup_user(&name).map_err(|e| Error::PermissionDenied {
        detail: e.to_string(),
    })?;
    if user.uid == 0 && !settings.allow_root_services {
        return Err(Error::PermissionDenied {
            detail: format!(
                "{} sets `serviceUser` to `{name}` (uid 0): every service would run with all \
                 privileges, so any of them could take the machine. Remove `serviceUser` (each \
                 service then runs as a user of its own) or name an unprivileged user; to accept \
                 the risk, add `\"allowRootServices\": true` there",
                home.settings_file().display()
            ),
        });
    }
    let problem = traversal_problem(home, &user, &format!("`{name}`"));
    Ok(ServiceUsers::Shared { user, problem })
}

/// The user service `id` runs as (`None`: kojibox's own), made on first use under root, and,
/// when it cannot reach the home, why.
pub fn user_for(home: &Home, id: &str) -> Result<(Option<User>, Option<String>)> {
    Ok(match service_users(home)? {
        ServiceUsers::Daemon => (None, None),
        ServiceUsers::Shared { user, problem } => (Some(user), problem),
        ServiceUsers::Own => {
            let (user, problem) = own_user(home, id)?;
            (Some(user), problem)
        }
    })
}

/// The user of its own service `id` runs as under root, made on first use, and, when it cannot
/// reach the home, why.
pub fn own_user(home: &Home, id: &str) -> Result<(User, Option<String>)> {
    let user = kojibox_proc::own_service_user(&record_file(home), id).map_err(|e| {
        Error::PermissionDenied {
            detail: format!(
                "could not make the user service {id} runs as: {e} (or set `serviceUser` in {} \
                 to run every service as one existing user)",
                home.settings_file().display()
            ),
        }
    })?;
    let problem = traversal_problem(home, &user, &user.name);
    Ok((user, problem))
}

/// A user standing for whoever runs the services, to judge what they can reach (`None`:
/// kojibox's own), and, when it cannot reach the home, why. With a user for each service, one
/// that owns nothing: what the mode bits give "other".
pub fn service_user(home: &Home) -> Result<(Option<User>, Option<String>)> {
    Ok(match service_users(home)? {
        ServiceUsers::Daemon => (None, None),
        ServiceUsers::Shared { user, problem } => (Some(user), problem),
        ServiceUsers::Own => {
            let user = User {
                name: "each service's own user".to_owned(),
                uid: u32::MAX - 1,
                gid: u32::MAX - 1,
                home: PathBuf::from("/nonexistent"),
            };
            let problem = traversal_problem(home, &user, "their own users");
            (Some(user), problem)
        }
    })
}

fn traversal_problem(home: &Home, user: &User, who: &str) -> Option<String> {
    kojibox_proc::check_traversable(home.root(), user)
        .err()
        .map(|e| {
            format!(
                "services run as {who} when kojibox runs as root, and {who} cannot use this home: {e}"
            )
        })
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
