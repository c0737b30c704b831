//! The home: the one folder everything kojibox writes lives in, and the paths inside it.
//!
//! Chosen by `--home DIR`, else `KOJIBOX_HOME`, else portable mode (a file named
//! `kojibox.portable` beside the executable makes the executable's folder the home), else the
//! platform's user data folder (`~/.local/share/kojibox` on Linux). Every path stored inside the
//! home is relative to it, so a home can be moved or renamed.

use std::fs::File;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// A kojibox home.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Home {
    root: PathBuf,
}

/// How the home was chosen (for messages).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HomeSource {
    /// `--home`.
    Flag,
    /// `KOJIBOX_HOME`.
    Env,
    /// `kojibox.portable` beside the executable.
    Portable,
    /// The platform's data folder.
    Platform,
}

impl Home {
    /// Resolves the home from the flag, the environment, portable mode or the platform.
    pub fn resolve(flag: Option<&Path>) -> Result<(Home, HomeSource)> {
        if let Some(dir) = flag {
            return Ok((Home::at(dir)?, HomeSource::Flag));
        }
        if let Some(dir) = std::env::var_os("KOJIBOX_HOME").filter(|v| !v.is_empty()) {
            return Ok((Home::at(Path::new(&dir))?, HomeSource::Env));
        }
        if let Some(dir) = std::env::current_exe()
            .ok()
            .and_then(|exe| exe.parent().map(Path::to_owned))
            && dir.join("kojibox.portable").is_file()
        {
            return Ok((Home::at(&dir)?, HomeSource::Portable));
        }
        let data = dirs::data_dir().ok_or_else(|| {
            Error::invalid(
                "No home folder",
                "this platform has no user data folder: pass --home DIR or set KOJIBOX_HOME",
            )
        })?;
        Ok((Home::at(&data.join("kojibox"))?, HomeSource::Platform))
    }

    /// The home at `dir` (made absolute; not created).
    pub fn at(dir: &Path) -> Result<Home> {
        let root = std::path::absolute(dir).map_err(Error::io("resolve", dir))?;
        Ok(Home { root })
    }

    /// The home folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `<home>/<rel>`.
    pub fn join(&self, rel: impl AsRef<Path>) -> PathBuf {
        self.root.join(rel)
    }

    /// `runtime/manifest.json`.
    pub fn manifest(&self) -> PathBuf {
        self.join("runtime/manifest.json")
    }

    /// `runtime/indexes/`: the signed index of every bundle installed, as `<version>.json` and
    /// `<version>.sig`, so an install can be re-verified.
    pub fn indexes(&self) -> PathBuf {
        self.join("runtime/indexes")
    }

    /// `runtime/.staging/`: where an install extracts before anything is switched.
    pub fn staging(&self) -> PathBuf {
        self.join("runtime/.staging")
    }

    /// `runtime/services/`.
    pub fn services(&self) -> PathBuf {
        self.join("runtime/services")
    }

    /// `app/keys/`: pinned public keys.
    pub fn keys(&self) -> PathBuf {
        self.join("app/keys")
    }

    /// `app/state/`.
    pub fn state(&self) -> PathBuf {
        self.join("app/state")
    }

    /// `app/config/`.
    pub fn config(&self) -> PathBuf {
        self.join("app/config")
    }

    /// A home-relative, `/`-separated form of a path inside the home.
    pub fn rel(&self, path: &Path) -> String {
        path.strip_prefix(&self.root)
            .unwrap_or(path)
            .to_string_lossy()
            .replace('\\', "/")
    }

    /// Takes the exclusive lock `app/state/<name>.lock`, or says who holds it.
    pub fn lock(&self, name: &str, what: &str) -> Result<Lock> {
        let (path, file) = self.lock_file(name)?;
        match file.try_lock() {
            Ok(()) => Ok(Lock { _file: file }),
            Err(std::fs::TryLockError::WouldBlock) => Err(Error::Busy(format!(
                "another {what} is running in {} (lock {})",
                self.root.display(),
                path.display()
            ))),
            Err(std::fs::TryLockError::Error(e)) => Err(Error::io("lock", &path)(e)),
        }
    }

    /// Takes the exclusive lock `app/state/<name>.lock`, waiting for its holder (another
    /// thread or process) to let go. For short read-modify-write sections (a config file, the
    /// port registry, the secret store); blocks, so async code calls it off the workers.
    pub fn lock_wait(&self, name: &str) -> Result<Lock> {
        let (path, file) = self.lock_file(name)?;
        file.lock().map_err(Error::io("lock", &path))?;
        Ok(Lock { _file: file })
    }

    fn lock_file(&self, name: &str) -> Result<(PathBuf, File)> {
        let state = self.state();
        std::fs::create_dir_all(&state).map_err(Error::io("create folder", &state))?;
        let path = state.join(format!("{name}.lock"));
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(Error::io("open", &path))?;
        Ok((path, file))
    }
}

/// Held while an exclusive operation runs; released on drop (and by the OS if the process dies).
#[derive(Debug)]
pub struct Lock {
    _file: File,
}
