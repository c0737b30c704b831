//! The cache folder: where each kind of entry lives, and how entries appear atomically.
//!
//! Work happens under `tmp/` in uniquely named files and folders (random names from
//! `tempfile`, which also deletes them when dropped, so a failed fetch leaves nothing). A
//! finished, verified entry is then renamed into place. Renames within one file system are
//! atomic, so a reader sees either nothing or the complete entry; when two threads publish the
//! same entry, the second finds it present and discards its own copy.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use tempfile::{NamedTempFile, TempDir};

use super::error::FetchError;

/// The cache root and its layout (see the module docs of `fetch`).
#[derive(Debug)]
pub(crate) struct Cache {
    root: PathBuf,
}

impl Cache {
    /// Opens the cache, creating its folders when missing.
    pub(crate) fn open(root: &Path) -> Result<Cache, FetchError> {
        for sub in ["blobs/sha256", "npm", "deb", "unpacked", "tmp"] {
            let dir = root.join(sub);
            fs::create_dir_all(&dir).map_err(|e| FetchError::io("create cache folder", dir, e))?;
        }
        Ok(Cache {
            root: root.to_owned(),
        })
    }

    /// The blob with this sha256.
    pub(crate) fn blob(&self, sha256: &str) -> PathBuf {
        self.root.join("blobs").join("sha256").join(sha256)
    }

    /// An unpacked payload folder.
    pub(crate) fn unpacked(&self, key: &str) -> PathBuf {
        self.root.join("unpacked").join(key)
    }

    /// The record of which blob an npm package version is. `/` cannot appear in a file name
    /// and `+` cannot appear in an npm package name, so the mapping is one to one.
    pub(crate) fn npm_record(&self, package: &str, version: &str) -> PathBuf {
        let name = format!("{}@{version}.json", package.replace('/', "+"));
        self.root.join("npm").join(name)
    }

    /// The record of a `deb` source's closure (`key`: its packages and architecture, hashed).
    pub(crate) fn deb_record(&self, key: &str) -> PathBuf {
        self.root.join("deb").join(format!("{key}.json"))
    }

    /// npm's own cache, kept apart from the user's.
    pub(crate) fn npm_cache(&self) -> PathBuf {
        self.root.join("npm-cache")
    }

    /// A fresh `tmp/<unique>.partial` file, deleted when dropped.
    pub(crate) fn temp_file(&self) -> Result<NamedTempFile, FetchError> {
        let tmp = self.root.join("tmp");
        tempfile::Builder::new()
            .prefix("dl-")
            .suffix(".partial")
            .tempfile_in(&tmp)
            .map_err(|e| FetchError::io("create a temporary file in", tmp, e))
    }

    /// A fresh `tmp/<prefix><unique>` folder, deleted (with its contents) when dropped.
    pub(crate) fn temp_dir(&self, prefix: &str) -> Result<TempDir, FetchError> {
        let tmp = self.root.join("tmp");
        tempfile::Builder::new()
            .prefix(prefix)
            .tempdir_in(&tmp)
            .map_err(|e| FetchError::io("create a temporary folder in", tmp, e))
    }

    /// Moves a verified file into `blobs/` and hands back its open handle, so the caller keeps
    /// reading the very bytes that were verified instead of re-opening a path.
    pub(crate) fn store_blob(&self, file: NamedTempFile, sha256: &str) -> Result<File, FetchError> {
        let dest = self.blob(sha256);
        match file.persist(&dest) {
            Ok(file) => Ok(file),
            // Some platforms refuse to replace a file that is in use; the blob is there anyway
            // (same name, same content), so carry on with our copy of it.
            Err(err) if dest.is_file() => err
                .file
                .reopen()
                .map_err(|e| FetchError::io("reopen", err.file.path(), e)),
            Err(err) => Err(FetchError::io("store the download as", dest, err.error)),
        }
    }

    /// The cached blob with this sha256, opened and verified; `None` when absent. A blob whose
    /// bytes no longer match its name (a disk error, a manual edit) is deleted, so it is
    /// fetched again rather than trusted.
    pub(crate) fn verified_blob(&self, sha256: &str) -> Result<Option<File>, FetchError> {
        let path = self.blob(sha256);
        let mut file = match File::open(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(FetchError::io("open", path, e)),
        };
        let actual = sha256_hex(&mut file).map_err(|e| FetchError::io("read", &path, e))?;
        if actual == sha256 {
            return Ok(Some(file));
        }
        // Best effort: if it cannot be removed, the download's rename replaces it.
        let _ = fs::remove_file(&path);
        Ok(None)
    }

    /// Renames a finished folder into place. When `dest` already exists, another thread or an
    /// earlier run published the same content: ours is deleted and theirs is kept.
    pub(crate) fn publish_dir(&self, dir: TempDir, dest: &Path) -> Result<(), FetchError> {
        // `tempfile` creates folders as 0o700; a payload root should look like any folder.
        set_mode(dir.path(), 0o755)?;
        match fs::rename(dir.path(), dest) {
            Ok(()) => {
                // Already moved: only disarm the delete-on-drop.
                let _moved = dir.keep();
                Ok(())
            }
            Err(_) if dest.is_dir() => Ok(()),
            Err(e) => Err(FetchError::io("move an unpacked payload to", dest, e)),
        }
    }

    /// Writes a small file by rename, so readers never see it half-written.
    pub(crate) fn write_atomic(&self, dest: &Path, bytes: &[u8]) -> Result<(), FetchError> {
        let mut file = self.temp_file()?;
        file.write_all(bytes)
            .map_err(|e| FetchError::io("write", file.path(), e))?;
        file.persist(dest)
            .map(drop)
            .map_err(|err| FetchError::io("write", dest, err.error))
    }
}

/// Lowercase hex sha256 of everything `reader` yields.
pub(crate) fn sha256_hex(mut reader: impl Read) -> io::Result<String> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0; 64 * 1024];
    loop {
        let n = reader.read(&mut buf)?;
        if n == 0 {
            return Ok(hex::encode(hasher.finalize()));
        }
        hasher.update(&buf[..n]);
    }
}

/// Sets permission bits (a no-op where there are none).
pub(crate) fn set_mode(path: &Path, mode: u32) -> Result<(), FetchError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(path, fs::Permissions::from_mode(mode))
            .map_err(|e| FetchError::io("set permissions of", path, e))?;
    }
    #[cfg(not(unix))]
    let _ = (path, mode);
    Ok(())
}

/// The payload mode of a file: 0o755 when any execute bit is set, else 0o644. Never setuid or
/// setgid, whatever the source says.
pub(crate) fn payload_mode(mode: u32) -> u32 {
    if mode & 0o111 != 0 { 0o755 } else { 0o644 }
}
