//! The home's locks: `app/state/<name>.lock`, one exclusive `flock` each, released on drop and
//! by the OS when the holder dies. A CLI and a daemon of different builds exclude each other as
//! long as the names stay the same, so the names are part of the on-disk format.

use std::fs::File;
use std::path::PathBuf;

use crate::error::{Error, Result};
use crate::layout::Home;

/// The locks of a home.
///
/// **Order.** When one operation holds several, it takes them in this order, and never the
/// other way round: [`Daemon`](LockName::Daemon) (held by the daemon for its whole life, or by a
/// CLI updating a home directly), then [`Update`](LockName::Update), then
/// [`Install`](LockName::Install). An [`Edit`](LockName::Edit) lock (a CLI's read-change-write of
/// one object) comes before the short write locks [`Ports`](LockName::Ports),
/// [`Config`](LockName::Config), [`Projects`](LockName::Projects) and
/// [`Secrets`](LockName::Secrets), and no two of those are ever held at once. Recovery at the
/// start of an install only *tries* the update lock (and leaves an update that holds it alone),
/// so it cannot wait against that order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockName<'a> {
    /// `daemon`: one daemon per home (or one direct update, which must not run beside one).
    Daemon,
    /// `update`: one update or rollback at a time.
    Update,
    /// `install`: one install at a time; its staging folder is live while this is held.
    Install,
    /// `ports`: the port registry's read-modify-write.
    Ports,
    /// `config`: `app/config/app.json`'s write.
    Config,
    /// `projects`: the projects' writes (a domain is checked against every other project).
    Projects,
    /// `secrets`: the secret store's read-modify-write.
    Secrets,
    /// `edit-<kind>-<id>`: a CLI reading, changing and writing back one object.
    Edit(EditKind, &'a str),
}

/// What an [`LockName::Edit`] lock protects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EditKind {
    /// A service's settings.
    Service,
    /// A project.
    Project,
}

impl LockName<'_> {
    /// The lock file's name without `.lock` (`install`, `edit-service-postgres`).
    pub fn file_stem(&self) -> String {
        match self {
            LockName::Daemon => "daemon".into(),
            LockName::Update => "update".into(),
            LockName::Install => "install".into(),
            LockName::Ports => "ports".into(),
            LockName::Config => "config".into(),
            LockName::Projects => "projects".into(),
            LockName::Secrets => "secrets".into(),
            LockName::Edit(EditKind::Service, id) => format!("edit-service-{id}"),
            LockName::Edit(EditKind::Project, id) => format!("edit-project-{id}"),
        }
    }

    /// What holds it, for "another … is running".
    pub fn what(&self) -> &'static str {
        match self {
            LockName::Daemon => "kojibox daemon (or direct update)",
            LockName::Update => "update",
            LockName::Install => "install",
            LockName::Ports => "port registry change",
            LockName::Config => "app settings change",
            LockName::Projects => "project change",
            LockName::Secrets => "secret store change",
            LockName::Edit(..) => "edit of the same object",
        }
    }
}

/// Held while an exclusive operation runs; released on drop (and by the OS if the process dies).
#[derive(Debug)]
pub struct Lock {
    _file: File,
}

impl Home {
    /// `app/state/<name>.lock`.
    pub fn lock_file(&self, name: LockName<'_>) -> PathBuf {
        self.state().join(format!("{}.lock", name.file_stem()))
    }

    /// Takes `name` now, or answers [`Error::Busy`] saying who holds it.
    pub fn lock(&self, name: LockName<'_>) -> Result<Lock> {
        let (path, file) = self.open_lock(name)?;
        match file.try_lock() {
            Ok(()) => Ok(Lock { _file: file }),
            Err(std::fs::TryLockError::WouldBlock) => Err(Error::Busy(format!(
                "another {} is running in {} (lock {})",
                name.what(),
                self.root().display(),
                path.display()
            ))),
            Err(std::fs::TryLockError::Error(e)) => Err(Error::io("lock", &path)(e)),
        }
    }

    /// Takes `name`, waiting for its holder (another thread or process) to let go. For short
    /// read-modify-write sections (a config file, the port registry, the secret store); blocks,
    /// so async code calls it off the runtime's workers.
    pub fn lock_wait(&self, name: LockName<'_>) -> Result<Lock> {
        let (path, file) = self.open_lock(name)?;
        file.lock().map_err(Error::io("lock", &path))?;
        Ok(Lock { _file: file })
    }

    fn open_lock(&self, name: LockName<'_>) -> Result<(PathBuf, File)> {
        // Through the home's checks: every command that changes a home takes a lock first, so an
        // unsafe home is refused here before anything is written.
        let path = self.lock_file(name);
        let file = crate::fs::open_private(self, &path)?;
        Ok((path, file))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_files_keep_their_names_and_exclude_each_other() {
        let dir = tempfile::tempdir().unwrap();
        let home = Home::at(dir.path()).unwrap();
        let names = [
            (LockName::Daemon, "daemon"),
            (LockName::Update, "update"),
            (LockName::Install, "install"),
            (LockName::Ports, "ports"),
            (LockName::Config, "config"),
            (LockName::Projects, "projects"),
            (LockName::Secrets, "secrets"),
            (LockName::Edit(EditKind::Service, "pg"), "edit-service-pg"),
            (LockName::Edit(EditKind::Project, "app"), "edit-project-app"),
        ];
        for (name, stem) in names {
            assert_eq!(
                home.lock_file(name),
                dir.path().join(format!("app/state/{stem}.lock"))
            );
        }
        let held = home.lock(LockName::Install).unwrap();
        let err = home.lock(LockName::Install).unwrap_err();
        assert!(err.is_busy(), "{err}");
        assert!(
            err.to_string().starts_with("another install is running in"),
            "{err}"
        );
        // Another lock is independent.
        drop(home.lock(LockName::Update).unwrap());
        drop(held);
        drop(home.lock(LockName::Install).unwrap());
    }
}
