//! The [`TrustStore`]: a folder of pinned public key files.
//!
//! Opening reads every `*.pub` file of the folder (other names are ignored, so temporary files
//! and notes can sit beside the keys); a corrupt key file is an error naming it rather than a
//! key silently dropped. Adding writes `<key id>.pub` through a temporary file in the same folder,
//! fsynced, renamed into place and the folder fsynced, so a reader or a crash sees either no file
//! or the whole key.

use std::collections::BTreeMap;
use std::collections::btree_map::Entry;
use std::ffi::OsStr;
use std::fs;
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};

use crate::keyfile::sync_dir;
use crate::{Error, KeyId, KeyKind, PublicKey, Result, Signature};

/// A set of trusted public keys kept as `*.pub` files in one folder.
#[derive(Clone, Debug)]
pub struct TrustStore {
    dir: PathBuf,
    keys: BTreeMap<KeyId, Pinned>,
}

#[derive(Clone, Debug)]
struct Pinned {
    key: PublicKey,
    path: PathBuf,
}

impl TrustStore {
    /// Reads the trust store in `dir`. A missing folder is an empty store (it is created by the
    /// first [`add`](Self::add)).
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self> {
        let dir = dir.into();
        let mut store = TrustStore {
            dir,
            keys: BTreeMap::new(),
        };
        let entries = match fs::read_dir(&store.dir) {
            Ok(entries) => entries,
            Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(store),
            Err(source) => return Err(store.read_error(source)),
        };
        let mut paths = Vec::new();
        for entry in entries {
            let path = entry.map_err(|source| store.read_error(source))?.path();
            if path.extension() == Some(OsStr::new("pub")) {
                paths.push(path);
            }
        }
        // Sorted, so which of two files holding the same key is reported is stable.
        paths.sort();
        for path in paths {
            // Follows symlinks: a pinned key may be a link to a key kept elsewhere.
            match fs::metadata(&path) {
                Ok(meta) if meta.is_dir() => continue,
                Ok(_) => {}
                Err(source) => {
                    return Err(Error::ReadKey {
                        kind: KeyKind::Public,
                        path,
                        source,
                    });
                }
            }
            let key = PublicKey::read(&path)?;
            store.insert(key, path)?;
        }
        Ok(store)
    }

    fn read_error(&self, source: io::Error) -> Error {
        Error::ReadTrustStore {
            path: self.dir.clone(),
            source,
        }
    }

    /// Records `key` as found in `path`; the same key twice is fine, two keys sharing an id are
    /// not.
    fn insert(&mut self, key: PublicKey, path: PathBuf) -> Result<()> {
        match self.keys.entry(key.key_id()) {
            Entry::Vacant(slot) => {
                slot.insert(Pinned { key, path });
                Ok(())
            }
            Entry::Occupied(pinned) if pinned.get().key == key => Ok(()),
            Entry::Occupied(pinned) => Err(Error::KeyIdCollision {
                key_id: key.key_id(),
                path: pinned.get().path.clone(),
            }),
        }
    }

    /// The store's folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The trusted keys, in key id order.
    pub fn keys(&self) -> impl Iterator<Item = &PublicKey> {
        self.keys.values().map(|pinned| &pinned.key)
    }

    /// The trusted key with this id, if any.
    pub fn get(&self, key_id: KeyId) -> Option<&PublicKey> {
        self.keys.get(&key_id).map(|pinned| &pinned.key)
    }

    /// How many keys the store trusts.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether the store trusts no key.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Pins `key`: writes `<key id>.pub` into the folder (creating the folder if needed) and
    /// returns its path. Atomic (temporary file, fsync, rename, fsync of the folder) and
    /// idempotent: a key already in the store is not written again, and the path of the file
    /// holding it is returned.
    pub fn add(&mut self, key: &PublicKey) -> Result<PathBuf> {
        let key_id = key.key_id();
        if let Some(pinned) = self.keys.get(&key_id) {
            if pinned.key == *key {
                return Ok(pinned.path.clone());
            }
            return Err(Error::KeyIdCollision {
                key_id,
                path: pinned.path.clone(),
            });
        }
        let path = self.dir.join(format!("{key_id}.pub"));
        // The folder may have changed since it was opened (another process pinned the key).
        if fs::symlink_metadata(&path).is_ok() {
            let existing = PublicKey::read(&path)?;
            self.insert(existing, path.clone())?;
            return Ok(path);
        }
        let write_error = |path: &Path, source| Error::WriteTrustStore {
            key_id,
            path: path.to_owned(),
            source,
        };
        fs::create_dir_all(&self.dir).map_err(|source| write_error(&self.dir, source))?;
        let mut builder = tempfile::Builder::new();
        // A dot prefix and no `.pub` suffix: a leftover from a crash is never read as a key.
        builder.prefix(".").suffix(".pub-tmp");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            builder.permissions(fs::Permissions::from_mode(0o644));
        }
        let mut tmp = builder
            .tempfile_in(&self.dir)
            .map_err(|source| write_error(&path, without_temp_path(source)))?;
        // Through the plain file: an error names the key's file, not the temporary one.
        tmp.as_file_mut()
            .write_all(key.to_file_text().as_bytes())
            .and_then(|()| tmp.as_file().sync_all())
            .map_err(|source| write_error(&path, source))?;
        tmp.persist(&path)
            .map_err(|err| write_error(&path, err.error))?;
        sync_dir(&self.dir).map_err(|source| write_error(&self.dir, source))?;
        self.keys.insert(
            key_id,
            Pinned {
                key: key.clone(),
                path: path.clone(),
            },
        );
        Ok(path)
    }

    /// Checks `signature` over `msg` with the trusted key it names.
    ///
    /// A key id the store does not hold is [`Error::UnknownKey`]; otherwise the result is that of
    /// [`PublicKey::verify`].
    pub fn verify(&self, msg: &[u8], signature: &Signature) -> Result<()> {
        let key = self
            .get(signature.key_id())
            .ok_or_else(|| Error::UnknownKey {
                key_id: signature.key_id(),
                store: self.dir.clone(),
            })?;
        key.verify(msg, signature)
    }
}

/// tempfile's errors end in `at path <the temporary file>`, a name the user never sees again:
/// keep only the cause.
fn without_temp_path(e: io::Error) -> io::Error {
    let cause = e
        .get_ref()
        .and_then(|inner| inner.source())
        .and_then(|s| s.downcast_ref::<io::Error>());
    match cause {
        Some(cause) => match cause.raw_os_error() {
            Some(code) => io::Error::from_raw_os_error(code),
            None => io::Error::new(cause.kind(), cause.to_string()),
        },
        None => e,
    }
}
