//! [`SecretStore`]: an open store, its reads and its locked read-modify-write updates.

use std::fmt;
use std::sync::Mutex;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use kojibox_home::{Home, LockName};
use kojibox_manifests::model::SecretScope;
use zeroize::Zeroizing;

use crate::crypto::{CIPHER, DataKey, NONCE_LEN, Plain, STORE_AAD, Sealed, decode_nonce, random};
use crate::error::{Error, Result};
use crate::key_source::{
    KeySource, KeyringMarker, Paths, ensure_dir, read_key_file, read_keyring, unwrap_key,
    write_key_file, write_locked,
};
use crate::names::{RESOLVE_ORDER, SCOPES, check_key, split_scope};
use crate::os_keyring::{self, KEYRING_SERVICE};
use crate::value::SecretValue;

const LOCKED_HELP: &str = "the secret store is protected by a passphrase: give the passphrase";

/// An open secret store: the home and its data key (zeroized on drop; `Debug` redacts it).
///
/// Every method is blocking (file I/O, a lock, argon2id): async code calls them from
/// `spawn_blocking`. Reads see changes made by other processes since `open`.
pub struct SecretStore {
    home: Home,
    key: DataKey,
    /// Why the OS keyring was not used or not cleaned up (never secret).
    keyring_notice: Mutex<Option<String>>,
}

impl fmt::Debug for SecretStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretStore")
            .field("home", &self.home.root())
            .field("key", &"<redacted>")
            .finish()
    }
}

impl SecretStore {
    /// Opens the store of `home`, making its data key on first use (in the OS keyring on
    /// macOS and Windows outside portable mode, else in the key file).
    ///
    /// When the key is protected by a passphrase, `passphrase` must be it: `None` or a wrong
    /// one is [`Error::PermissionDenied`] saying to give the passphrase. An unprotected store
    /// ignores `passphrase`. A store file whose key is gone is an error; no new key is made.
    pub fn open(home: &Home, passphrase: Option<&SecretValue>) -> Result<SecretStore> {
        let paths = Paths::new(home);
        ensure_dir(home, &paths.dir)?;
        let _lock = home.lock_wait(LockName::Secrets)?;
        let store = |key| SecretStore {
            home: home.clone(),
            key,
            keyring_notice: Mutex::new(None),
        };
        if paths.locked.exists() {
            let pass = passphrase.ok_or_else(|| Error::PermissionDenied {
                detail: LOCKED_HELP.to_owned(),
            })?;
            let key = unwrap_key(&paths.locked, pass)?;
            let store = store(key);
            // A `set_passphrase` interrupted after writing `key.locked` left a plain copy.
            store.remove_plain_key(&paths, true)?;
            return Ok(store);
        }
        if let Some(key) = read_key_file(&paths.key)? {
            return Ok(store(key));
        }
        if let Some(marker) = kojibox_home::fs::read_json::<KeyringMarker>(&paths.keyring)? {
            return Ok(store(read_keyring(&paths, &marker)?));
        }
        if paths.store.exists() {
            return Err(Error::NotFound {
                detail: format!(
                    "the secret store's key {} is missing, so {} cannot be read: restore the key \
                     file from a backup, or move the store file away to start an empty store",
                    paths.key.display(),
                    paths.store.display()
                ),
            });
        }
        let store = store(DataKey::generate()?);
        store.save_plain_key(&paths)?;
        Ok(store)
    }

    /// Whether the home's data key is protected by a passphrase (`key.locked` exists).
    pub fn is_locked(home: &Home) -> bool {
        Paths::new(home).locked.exists()
    }

    /// Where the data key is kept now.
    pub fn key_source(&self) -> KeySource {
        let paths = Paths::new(&self.home);
        if paths.locked.exists() {
            KeySource::Passphrase
        } else if paths.key.exists() || !paths.keyring.exists() {
            KeySource::KeyFile
        } else {
            KeySource::Keyring
        }
    }

    /// Why the OS keyring was passed over for the key file, or why its entry could not be
    /// deleted, if that happened through this store: for the daemon to log. Never secret.
    pub fn keyring_notice(&self) -> Option<String> {
        self.keyring_notice
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The value of `key` in `scope`; [`Error::NotFound`] (naming scope and key) if absent.
    pub fn get(&self, scope: SecretScope, key: &str) -> Result<SecretValue> {
        check_key(key)?;
        self.read()?
            .scope(scope)
            .get(key)
            .map(|value| SecretValue(value.clone()))
            .ok_or_else(|| Error::NotFound {
                detail: format!("no secret `{key}` in scope `{}`", scope.as_str()),
            })
    }

    /// Sets `key` in `scope` to `value`.
    pub fn set(&self, scope: SecretScope, key: &str, value: &SecretValue) -> Result<()> {
        check_key(key)?;
        let _lock = self.home.lock_wait(LockName::Secrets)?;
        let mut plain = self.read()?;
        plain
            .scope_mut(scope)
            .insert(key.to_owned(), value.0.clone());
        self.write(&plain)
    }

    /// Removes `key` from `scope`; whether it was there.
    pub fn remove(&self, scope: SecretScope, key: &str) -> Result<bool> {
        check_key(key)?;
        let _lock = self.home.lock_wait(LockName::Secrets)?;
        let mut plain = self.read()?;
        if plain.scope_mut(scope).remove(key).is_none() {
            return Ok(false);
        }
        self.write(&plain)?;
        Ok(true)
    }

    /// The names in each scope, sorted; every scope appears, in the order app, project,
    /// service. (A list rather than a map keyed by scope: `SecretScope` has no `Ord`.)
    pub fn list(&self) -> Result<Vec<(SecretScope, Vec<String>)>> {
        let plain = self.read()?;
        Ok(SCOPES
            .iter()
            .map(|&scope| (scope, plain.scope(scope).keys().cloned().collect()))
            .collect())
    }

    /// Resolves the `<name>` of a `${secret.<name>}` placeholder: `<key>` is looked up in
    /// scope service, then project, then app (the first found); `<scope>.<key>`, with scope
    /// `app`, `project` or `service`, names the scope. `None` when absent; an invalid key is
    /// [`Error::Invalid`].
    pub fn resolve(&self, name: &str) -> Result<Option<SecretValue>> {
        let explicit;
        let (scopes, key): (&[SecretScope], &str) = match split_scope(name) {
            Some((scope, key)) => {
                explicit = [scope];
                (&explicit, key)
            }
            None => (&RESOLVE_ORDER, name),
        };
        check_key(key)?;
        let plain = self.read()?;
        Ok(scopes
            .iter()
            .find_map(|&scope| plain.scope(scope).get(key))
            .map(|value| SecretValue(value.clone())))
    }

    /// Protects the data key with `new` (deleting the key file or keyring entry), changes the
    /// passphrase when there is one, or with `None` removes the protection (the key goes back
    /// to the keyring or the key file). The data key itself does not change.
    pub fn set_passphrase(&self, new: Option<&SecretValue>) -> Result<()> {
        let paths = Paths::new(&self.home);
        ensure_dir(&self.home, &paths.dir)?;
        let _lock = self.home.lock_wait(LockName::Secrets)?;
        match new {
            Some(pass) => {
                if pass.expose().is_empty() {
                    return Err(Error::invalid(
                        "Invalid passphrase",
                        "`passphrase` must not be empty",
                    ));
                }
                write_locked(&self.home, &paths.locked, &self.key, pass)?;
                self.remove_plain_key(&paths, false)
            }
            None if paths.locked.exists() => {
                self.save_plain_key(&paths)?;
                std::fs::remove_file(&paths.locked).map_err(Error::io("remove", &paths.locked))?;
                Ok(kojibox_home::fs::sync_dir(&paths.dir)?)
            }
            None => Ok(()),
        }
    }

    /// Saves the data key in the keyring (macOS, Windows, not portable) or the key file.
    fn save_plain_key(&self, paths: &Paths) -> Result<()> {
        let portable = self.home.portable_marker().is_file();
        if os_keyring::AVAILABLE && !portable {
            let user = self.home.root().to_string_lossy().into_owned();
            match os_keyring::set(&user, &self.key.0[..]) {
                Ok(()) => {
                    let marker = KeyringMarker {
                        version: 1,
                        service: KEYRING_SERVICE.to_owned(),
                        user,
                    };
                    return Ok(kojibox_home::fs::write_json(
                        &self.home,
                        &paths.keyring,
                        &marker,
                    )?);
                }
                Err(e) => self.notice(format!(
                    "the OS keyring could not store the secret store's key ({e}); it is in {} \
                     instead",
                    paths.key.display()
                )),
            }
        }
        write_key_file(&self.home, &paths.key, &self.key)
    }

    /// Deletes the key file and the keyring entry. With `only_same`, only copies that hold
    /// this store's key (cleaning up after an interrupted `set_passphrase`).
    fn remove_plain_key(&self, paths: &Paths, only_same: bool) -> Result<()> {
        let same_file = match read_key_file(&paths.key) {
            Ok(Some(key)) => !only_same || key == self.key,
            Ok(None) => false,
            // Unreadable: not provably this store's key, so leave it when cleaning up.
            Err(_) => !only_same,
        };
        if same_file {
            std::fs::remove_file(&paths.key).map_err(Error::io("remove", &paths.key))?;
        }
        if let Some(marker) = kojibox_home::fs::read_json::<KeyringMarker>(&paths.keyring)? {
            let same = match os_keyring::get(&marker.user) {
                Ok(Some(bytes)) => DataKey::from_slice(&bytes).is_some_and(|k| k == self.key),
                Ok(None) => true,
                Err(_) => !only_same,
            };
            if same {
                if let Err(e) = os_keyring::delete(&marker.user) {
                    self.notice(format!(
                        "the OS keyring entry {KEYRING_SERVICE} / {} could not be deleted ({e}): \
                         delete it by hand",
                        marker.user
                    ));
                }
                std::fs::remove_file(&paths.keyring)
                    .map_err(Error::io("remove", &paths.keyring))?;
            }
        }
        Ok(kojibox_home::fs::sync_dir(&paths.dir)?)
    }

    fn notice(&self, text: String) {
        *self
            .keyring_notice
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(text);
    }

    /// The decrypted store; empty when the file does not exist.
    fn read(&self) -> Result<Plain> {
        let path = Paths::new(&self.home).store;
        let Some(sealed) = kojibox_home::fs::read_json::<Sealed>(&path)? else {
            return Ok(Plain::default());
        };
        let corrupt = |detail: String| Error::Corrupt {
            path: path.clone(),
            detail,
        };
        if sealed.version != 1 || sealed.cipher != CIPHER {
            return Err(corrupt(format!(
                "version {} with cipher {:?} is not one this kojibox reads (version 1, {CIPHER})",
                sealed.version, sealed.cipher
            )));
        }
        let nonce = decode_nonce(&sealed.nonce).ok_or_else(|| corrupt("bad nonce".into()))?;
        let data = B64
            .decode(&sealed.data)
            .map_err(|_| corrupt("`data` is not base64".into()))?;
        let bytes = self.key.open(&nonce, &data, STORE_AAD).ok_or_else(|| {
            corrupt(
                "it does not decrypt with this home's key: the file was altered or damaged, or \
                 the key is not the one it was written with"
                    .into(),
            )
        })?;
        // serde's messages can quote the input, so only the position is reported.
        serde_json::from_slice(&bytes).map_err(|e| {
            corrupt(format!(
                "its decrypted contents are not a secret store (line {}, column {})",
                e.line(),
                e.column()
            ))
        })
    }

    /// Encrypts `plain` under a fresh nonce and replaces the store file.
    fn write(&self, plain: &Plain) -> Result<()> {
        let path = Paths::new(&self.home).store;
        // Sized up front so no reallocation leaves a plaintext copy behind.
        let size = 64
            + SCOPES
                .iter()
                .flat_map(|&s| plain.scope(s))
                .map(|(k, v)| 8 + k.len() + 6 * v.len())
                .sum::<usize>();
        let mut bytes = Zeroizing::new(Vec::with_capacity(size));
        serde_json::to_writer(&mut *bytes, plain)
            .map_err(|e| Error::io("serialize", &path)(e.into()))?;
        let nonce = random::<NONCE_LEN>()?;
        let data = self.key.seal(&nonce, &bytes, STORE_AAD, &path)?;
        let sealed = Sealed {
            version: 1,
            cipher: CIPHER.to_owned(),
            nonce: B64.encode(&nonce[..]),
            data: B64.encode(data),
        };
        Ok(kojibox_home::fs::write_json(&self.home, &path, &sealed)?)
    }
}
