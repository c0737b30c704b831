//! The secret store: `${secret.<key>}` values, encrypted at rest in `app/secrets/`.
//!
//! # Theory of operation
//!
//! One random 32-byte *data key* encrypts the whole store, which is one file,
//! `app/secrets/secrets.json`:
//! `{"version":1,"cipher":"xchacha20poly1305","nonce":"<b64>","data":"<b64>"}`. The plaintext
//! is `{"app":{name:value},"project":{..},"service":{..}}`, so key names are as unreadable at
//! rest as the values; the associated data is the fixed string `kojibox-secrets-v1` and every
//! write draws a fresh 24-byte nonce. Writes take the `secrets` lock of the home
//! ([`Home::lock_wait`]), read, decrypt, change, encrypt and replace the file atomically, so
//! concurrent writers (threads or processes) never lose an update. Reads take no lock: a
//! reader sees the old file or the new one. A store file that does not decrypt or parse is
//! [`Error::Corrupt`] and is never written over: the user's secrets are never silently reset.
//!
//! The data key lives in exactly one *key source* ([`KeySource`]):
//! - the key file `app/secrets/key` (base64, mode 0600 from creation): the default on Linux,
//!   and always in portable mode (a file `kojibox.portable` in the home root);
//! - the OS keyring on macOS and Windows (entry service `kojibox`, user the home's absolute
//!   path when the key was made). `app/secrets/keyring.json` records that entry, so a moved
//!   home still finds it (a *copied* home shares it: protecting one copy with a passphrase
//!   deletes the entry the other reads). If the keyring cannot store the key, the key file
//!   is used instead and [`SecretStore::keyring_notice`] says why;
//! - a passphrase: `app/secrets/key.locked` holds the data key wrapped with
//!   XChaCha20-Poly1305 under a key derived from the passphrase with argon2id (64 MiB, 3
//!   passes). While it exists there is no plain copy of the key (file or keyring entry).
//!
//! The data key never changes: setting, changing or removing a passphrase re-wraps the same
//! key, so a store opened elsewhere stays valid. The store file is never written before its
//! key is saved, and a store whose key is gone is an error, never a reason to make a new key.
//!
//! # Threat model
//!
//! With a passphrase, a home on a lost USB stick reveals nothing about the secrets (not even
//! their names) to whoever finds it, short of guessing the passphrase against argon2id. The
//! key file (0600, folder 0700) only keeps *other users* of the machine out: anything running
//! as the same user can read it, as it can read the keyring entry; on a FAT or exFAT stick
//! there are no modes at all, so a stick that may be lost wants a passphrase. Setting a
//! passphrase after a key file existed deletes the file but cannot scrub it from flash
//! media, and old copies of `key.locked` still open with the passphrase they were made with:
//! set the passphrase before storing secrets on such a stick. In memory, values and keys are
//! zeroized when dropped ([`zeroize`]) on a best-effort basis: the allocator and serde may
//! leave copies. Values never appear in `Debug`/`Display` output or error messages.

use std::fmt;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use argon2::{Algorithm, Argon2, Params, Version};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use kojibox_manifests::model::SecretScope;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::fsutil;
use crate::home::Home;

/// The name of the home lock that serializes writes to `app/secrets/`.
const LOCK: &str = "secrets";
const STORE_AAD: &[u8] = b"kojibox-secrets-v1";
const WRAP_AAD: &[u8] = b"kojibox-secrets-key-v1";
const CIPHER: &str = "xchacha20poly1305";
const KDF: &str = "argon2id";
const KEY_LEN: usize = 32;
const NONCE_LEN: usize = 24;
const SALT_LEN: usize = 16;
const KEYRING_SERVICE: &str = "kojibox";
const MAX_KEY_LEN: usize = 128;
const SCOPES: [SecretScope; 3] = [SecretScope::App, SecretScope::Project, SecretScope::Service];
/// `${secret.<key>}` looks in these scopes, in this order.
const RESOLVE_ORDER: [SecretScope; 3] =
    [SecretScope::Service, SecretScope::Project, SecretScope::App];
const LOCKED_HELP: &str = "the secret store is protected by a passphrase: give the passphrase";

/// argon2id cost: memory in KiB, passes, lanes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct KdfCost {
    m: u32,
    t: u32,
    p: u32,
}

/// The cost written into new `key.locked` files.
const KDF_COST_DEFAULT: KdfCost = KdfCost {
    m: 64 * 1024,
    t: 3,
    p: 1,
};
/// Unit tests wrap keys cheaply; reading honours whatever cost the file names.
const KDF_COST: KdfCost = if cfg!(test) {
    KdfCost { m: 64, t: 1, p: 1 }
} else {
    KDF_COST_DEFAULT
};
/// The most a `key.locked` may ask for (1 GiB, 16 passes, 16 lanes), so an altered file
/// cannot make `open` allocate or spin without bound.
const KDF_COST_MAX: KdfCost = KdfCost {
    m: 1024 * 1024,
    t: 16,
    p: 16,
};

/// A secret's value. `Debug` and `Display` print `<redacted>`; the memory is zeroized on drop.
#[derive(Clone)]
pub struct SecretValue(Zeroizing<String>);

impl SecretValue {
    /// Wraps a value.
    pub fn new(value: String) -> SecretValue {
        SecretValue(Zeroizing::new(value))
    }

    /// The value itself: for the one place that needs it (an env var, a config file), never a
    /// log line.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretValue(<redacted>)")
    }
}

impl fmt::Display for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Where the data key of a home's secret store lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeySource {
    /// `app/secrets/key` (mode 0600).
    KeyFile,
    /// The OS keyring (macOS, Windows).
    Keyring,
    /// `app/secrets/key.locked`, wrapped under a passphrase.
    Passphrase,
}

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
        ensure_dir(&paths.dir)?;
        let _lock = home.lock_wait(LOCK)?;
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
        if let Some(marker) = fsutil::read_json::<KeyringMarker>(&paths.keyring)? {
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
                detail: format!("no secret `{key}` in scope `{}`", scope_name(scope)),
            })
    }

    /// Sets `key` in `scope` to `value`.
    pub fn set(&self, scope: SecretScope, key: &str, value: &SecretValue) -> Result<()> {
        check_key(key)?;
        let _lock = self.home.lock_wait(LOCK)?;
        let mut plain = self.read()?;
        plain
            .scope_mut(scope)
            .insert(key.to_owned(), value.0.clone());
        self.write(&plain)
    }

    /// Removes `key` from `scope`; whether it was there.
    pub fn remove(&self, scope: SecretScope, key: &str) -> Result<bool> {
        check_key(key)?;
        let _lock = self.home.lock_wait(LOCK)?;
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
        ensure_dir(&paths.dir)?;
        let _lock = self.home.lock_wait(LOCK)?;
        match new {
            Some(pass) => {
                if pass.expose().is_empty() {
                    return Err(Error::invalid(
                        "Invalid passphrase",
                        "`passphrase` must not be empty",
                    ));
                }
                write_locked(&paths.locked, &self.key, pass)?;
                self.remove_plain_key(&paths, false)
            }
            None if paths.locked.exists() => {
                self.save_plain_key(&paths)?;
                std::fs::remove_file(&paths.locked).map_err(Error::io("remove", &paths.locked))?;
                fsutil::sync_dir(&paths.dir)
            }
            None => Ok(()),
        }
    }

    /// Saves the data key in the keyring (macOS, Windows, not portable) or the key file.
    fn save_plain_key(&self, paths: &Paths) -> Result<()> {
        let portable = self.home.root().join("kojibox.portable").is_file();
        if os_keyring::AVAILABLE && !portable {
            let user = self.home.root().to_string_lossy().into_owned();
            match os_keyring::set(&user, &self.key.0[..]) {
                Ok(()) => {
                    let marker = KeyringMarker {
                        version: 1,
                        service: KEYRING_SERVICE.to_owned(),
                        user,
                    };
                    return fsutil::write_json(&paths.keyring, &marker);
                }
                Err(e) => self.notice(format!(
                    "the OS keyring could not store the secret store's key ({e}); it is in {} \
                     instead",
                    paths.key.display()
                )),
            }
        }
        write_key_file(&paths.key, &self.key)
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
        if let Some(marker) = fsutil::read_json::<KeyringMarker>(&paths.keyring)? {
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
        fsutil::sync_dir(&paths.dir)
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
        let Some(sealed) = fsutil::read_json::<Sealed>(&path)? else {
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
        serde_json::to_writer(&mut *bytes, plain).map_err(|e| Error::Io {
            action: "serialize",
            path: path.clone(),
            source: e.into(),
        })?;
        let nonce = random::<NONCE_LEN>()?;
        let data = self.key.seal(&nonce, &bytes, STORE_AAD, &path)?;
        let sealed = Sealed {
            version: 1,
            cipher: CIPHER.to_owned(),
            nonce: B64.encode(&nonce[..]),
            data: B64.encode(data),
        };
        fsutil::write_json(&path, &sealed)
    }
}

/// Checks a secret key name: 1 to 128 characters of `A-Z a-z 0-9 _ . -`, not starting with
/// `.`, nor with `app.`, `project.` or `service.` (those name a scope in
/// `${secret.<scope>.<key>}`). An invalid name is [`Error::Invalid`] naming the field `key`.
pub fn check_key(key: &str) -> Result<()> {
    let invalid = |detail: String| Error::invalid("Invalid secret key", detail);
    if key.is_empty() {
        return Err(invalid("`key` must not be empty".into()));
    }
    if let Some(c) = key
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')))
    {
        return Err(invalid(format!(
            "`key` may hold only A-Z a-z 0-9 _ . - (found {c:?})"
        )));
    }
    if key.len() > MAX_KEY_LEN {
        return Err(invalid(format!(
            "`key` is {} characters long, more than {MAX_KEY_LEN}",
            key.len()
        )));
    }
    if key.starts_with('.') {
        return Err(invalid("`key` must not start with `.`".into()));
    }
    if let Some((scope, _)) = split_scope(key) {
        let scope = scope_name(scope);
        return Err(invalid(format!(
            "`key` must not start with `{scope}.`: `${{secret.{scope}.<key>}}` names the scope"
        )));
    }
    Ok(())
}

/// `("app" | "project" | "service") "." rest` -> the scope and the rest.
fn split_scope(name: &str) -> Option<(SecretScope, &str)> {
    let (head, rest) = name.split_once('.')?;
    SCOPES
        .into_iter()
        .find(|&s| scope_name(s) == head)
        .map(|s| (s, rest))
}

fn scope_name(scope: SecretScope) -> &'static str {
    match scope {
        SecretScope::App => "app",
        SecretScope::Project => "project",
        SecretScope::Service => "service",
    }
}

/// The files of `app/secrets/`.
struct Paths {
    dir: PathBuf,
    store: PathBuf,
    key: PathBuf,
    locked: PathBuf,
    keyring: PathBuf,
}

impl Paths {
    fn new(home: &Home) -> Paths {
        let dir = home.join("app/secrets");
        Paths {
            store: dir.join("secrets.json"),
            key: dir.join("key"),
            locked: dir.join("key.locked"),
            keyring: dir.join("keyring.json"),
            dir,
        }
    }
}

/// Creates `app/secrets/` (mode 0700 on unix) and tightens an existing one.
fn ensure_dir(dir: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
        if let Some(parent) = dir.parent() {
            std::fs::create_dir_all(parent).map_err(Error::io("create folder", parent))?;
        }
        match std::fs::DirBuilder::new().mode(0o700).create(dir) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
            Err(e) => return Err(Error::io("create folder", dir)(e)),
        }
        // Best effort: FAT and exFAT sticks (portable homes) refuse chmod; there the mount
        // options decide every mode, and failing would make the store unusable.
        let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
        Ok(())
    }
    #[cfg(not(unix))]
    std::fs::create_dir_all(dir).map_err(Error::io("create folder", dir))
}

/// The stored form of the store file.
#[derive(Serialize, Deserialize)]
struct Sealed {
    version: u32,
    cipher: String,
    nonce: String,
    data: String,
}

/// The decrypted store. Unknown scopes make it unreadable rather than dropped on rewrite.
#[derive(Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Plain {
    #[serde(default)]
    app: std::collections::BTreeMap<String, Zeroizing<String>>,
    #[serde(default)]
    project: std::collections::BTreeMap<String, Zeroizing<String>>,
    #[serde(default)]
    service: std::collections::BTreeMap<String, Zeroizing<String>>,
}

impl Plain {
    fn scope(&self, scope: SecretScope) -> &std::collections::BTreeMap<String, Zeroizing<String>> {
        match scope {
            SecretScope::App => &self.app,
            SecretScope::Project => &self.project,
            SecretScope::Service => &self.service,
        }
    }

    fn scope_mut(
        &mut self,
        scope: SecretScope,
    ) -> &mut std::collections::BTreeMap<String, Zeroizing<String>> {
        match scope {
            SecretScope::App => &mut self.app,
            SecretScope::Project => &mut self.project,
            SecretScope::Service => &mut self.service,
        }
    }
}

/// `key.locked`: the data key wrapped under an argon2id-derived key.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Locked {
    version: u32,
    kdf: String,
    m: u32,
    t: u32,
    p: u32,
    salt: String,
    nonce: String,
    wrapped: String,
}

/// `keyring.json`: which OS keyring entry holds the data key.
#[derive(Serialize, Deserialize)]
struct KeyringMarker {
    version: u32,
    service: String,
    user: String,
}

/// A 32-byte key (the data key, or a key derived from a passphrase); zeroized on drop.
#[derive(PartialEq, Eq)]
struct DataKey(Zeroizing<[u8; KEY_LEN]>);

impl DataKey {
    fn generate() -> Result<DataKey> {
        Ok(DataKey(random::<KEY_LEN>()?))
    }

    fn from_slice(bytes: &[u8]) -> Option<DataKey> {
        let mut key = Zeroizing::new([0u8; KEY_LEN]);
        (bytes.len() == KEY_LEN).then(|| {
            key.copy_from_slice(bytes);
            DataKey(key)
        })
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new((&*self.0).into())
    }

    /// Encrypts; `path` is only for the (impossible in practice) error.
    fn seal(
        &self,
        nonce: &[u8; NONCE_LEN],
        msg: &[u8],
        aad: &[u8],
        path: &Path,
    ) -> Result<Vec<u8>> {
        self.cipher()
            .encrypt(<&XNonce>::from(nonce), Payload { msg, aad })
            .map_err(|_| Error::io("encrypt", path)(std::io::Error::other("encryption failed")))
    }

    /// Decrypts and authenticates; `None` when the key, nonce, data or `aad` do not match.
    fn open(&self, nonce: &[u8; NONCE_LEN], msg: &[u8], aad: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
        self.cipher()
            .decrypt(<&XNonce>::from(nonce), Payload { msg, aad })
            .ok()
            .map(Zeroizing::new)
    }
}

fn random<const N: usize>() -> Result<Zeroizing<[u8; N]>> {
    let mut bytes = Zeroizing::new([0u8; N]);
    getrandom::fill(&mut bytes[..]).map_err(|e| {
        Error::io("generate", "random bytes for the secret store")(std::io::Error::other(e))
    })?;
    Ok(bytes)
}

fn decode_nonce(text: &str) -> Option<[u8; NONCE_LEN]> {
    B64.decode(text).ok()?.try_into().ok()
}

/// Reads the key file; `None` when it does not exist. Tightens a loosened mode back to 0600.
fn read_key_file(path: &Path) -> Result<Option<DataKey>> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => Zeroizing::new(text),
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io("read", path)(e)),
    };
    let bytes = Zeroizing::new(B64.decode(text.trim()).unwrap_or_default());
    let key = DataKey::from_slice(&bytes).ok_or_else(|| Error::Corrupt {
        path: path.to_owned(),
        detail: "it does not hold a base64-encoded 32-byte key".into(),
    })?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        // Best effort, as for the folder: a FAT stick has no modes to tighten.
        let loose = std::fs::metadata(path).is_ok_and(|m| m.permissions().mode() & 0o077 != 0);
        if loose {
            let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600));
        }
    }
    Ok(Some(key))
}

/// Writes the key file: a temporary file (created 0600) in the same folder, fsynced, renamed.
fn write_key_file(path: &Path, key: &DataKey) -> Result<()> {
    let mut text = Zeroizing::new(B64.encode(&key.0[..]));
    text.push('\n');
    fsutil::write_atomic(path, text.as_bytes())
}

/// Derives the key that wraps the data key.
fn derive(pass: &SecretValue, salt: &[u8], cost: KdfCost, path: &Path) -> Result<DataKey> {
    let params =
        Params::new(cost.m, cost.t, cost.p, Some(KEY_LEN)).map_err(|e| Error::Corrupt {
            path: path.to_owned(),
            detail: format!("bad argon2id parameters: {e}"),
        })?;
    let mut out = Zeroizing::new([0u8; KEY_LEN]);
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password_into(pass.expose().as_bytes(), salt, &mut out[..])
        .map_err(|e| Error::Corrupt {
            path: path.to_owned(),
            detail: format!("argon2id failed: {e}"),
        })?;
    Ok(DataKey(out))
}

/// Writes `key.locked`: `key` wrapped under a key derived from `pass` with a fresh salt.
fn write_locked(path: &Path, key: &DataKey, pass: &SecretValue) -> Result<()> {
    let salt = random::<SALT_LEN>()?;
    let nonce = random::<NONCE_LEN>()?;
    let kek = derive(pass, &salt[..], KDF_COST, path)?;
    let wrapped = kek.seal(&nonce, &key.0[..], WRAP_AAD, path)?;
    let locked = Locked {
        version: 1,
        kdf: KDF.to_owned(),
        m: KDF_COST.m,
        t: KDF_COST.t,
        p: KDF_COST.p,
        salt: B64.encode(&salt[..]),
        nonce: B64.encode(&nonce[..]),
        wrapped: B64.encode(wrapped),
    };
    fsutil::write_json(path, &locked)
}

/// Unwraps the data key from `key.locked`; a wrong passphrase is `PermissionDenied`.
fn unwrap_key(path: &Path, pass: &SecretValue) -> Result<DataKey> {
    let corrupt = |detail: &str| Error::Corrupt {
        path: path.to_owned(),
        detail: detail.to_owned(),
    };
    let locked: Locked =
        fsutil::read_json(path)?.ok_or_else(|| corrupt("it disappeared while being read"))?;
    if locked.version != 1 || locked.kdf != KDF {
        return Err(corrupt("it is not version 1 with kdf argon2id"));
    }
    let cost = KdfCost {
        m: locked.m,
        t: locked.t,
        p: locked.p,
    };
    if cost.m > KDF_COST_MAX.m || cost.t > KDF_COST_MAX.t || cost.p > KDF_COST_MAX.p {
        return Err(corrupt("its argon2id cost is beyond what kojibox allows"));
    }
    let salt = B64
        .decode(&locked.salt)
        .map_err(|_| corrupt("`salt` is not base64"))?;
    let nonce = decode_nonce(&locked.nonce).ok_or_else(|| corrupt("bad nonce"))?;
    let wrapped = B64
        .decode(&locked.wrapped)
        .map_err(|_| corrupt("`wrapped` is not base64"))?;
    let kek = derive(pass, &salt, cost, path)?;
    let bytes = kek
        .open(&nonce, &wrapped, WRAP_AAD)
        .ok_or_else(|| Error::PermissionDenied {
            detail: format!(
                "wrong passphrase for the secret store (or {} was altered): give the right \
                 passphrase",
                path.display()
            ),
        })?;
    DataKey::from_slice(&bytes).ok_or_else(|| corrupt("the wrapped key is not 32 bytes"))
}

/// Reads the data key from the OS keyring entry `marker` names.
fn read_keyring(paths: &Paths, marker: &KeyringMarker) -> Result<DataKey> {
    let entry = format!("{} / {}", marker.service, marker.user);
    match os_keyring::get(&marker.user) {
        Ok(Some(bytes)) => DataKey::from_slice(&bytes).ok_or_else(|| Error::Corrupt {
            path: paths.keyring.clone(),
            detail: format!("the OS keyring entry {entry} does not hold a 32-byte key"),
        }),
        Ok(None) => Err(Error::NotFound {
            detail: format!(
                "the secret store's key is missing from the OS keyring (entry {entry}, named by \
                 {}), so {} cannot be read",
                paths.keyring.display(),
                paths.store.display()
            ),
        }),
        Err(e) => Err(Error::PermissionDenied {
            detail: format!(
                "the secret store's key is in the OS keyring (entry {entry}), which could not be \
                 read: {e}"
            ),
        }),
    }
}

/// The OS keyring: macOS Keychain and Windows Credential Manager, through the `keyring` crate.
///
/// Untested: this compiles only on macOS and Windows, which neither the development machine
/// nor CI builds, so it is kept to three direct calls. Errors are the crate's messages, which
/// carry no secret.
#[cfg(any(target_os = "macos", target_os = "windows"))]
mod os_keyring {
    use zeroize::Zeroizing;

    pub(super) const AVAILABLE: bool = true;

    fn entry(user: &str) -> Result<keyring::Entry, String> {
        keyring::Entry::new(super::KEYRING_SERVICE, user).map_err(|e| e.to_string())
    }

    pub(super) fn get(user: &str) -> Result<Option<Zeroizing<Vec<u8>>>, String> {
        match entry(user)?.get_secret() {
            Ok(bytes) => Ok(Some(Zeroizing::new(bytes))),
            Err(keyring::Error::NoEntry) => Ok(None),
            Err(e) => Err(e.to_string()),
        }
    }

    pub(super) fn set(user: &str, key: &[u8]) -> Result<(), String> {
        entry(user)?.set_secret(key).map_err(|e| e.to_string())
    }

    pub(super) fn delete(user: &str) -> Result<(), String> {
        match entry(user)?.delete_credential() {
            Ok(()) | Err(keyring::Error::NoEntry) => Ok(()),
            Err(e) => Err(e.to_string()),
        }
    }
}

/// No OS keyring is used on this platform: the key file holds the data key.
#[cfg(not(any(target_os = "macos", target_os = "windows")))]
mod os_keyring {
    use zeroize::Zeroizing;

    pub(super) const AVAILABLE: bool = false;
    const NONE: &str = "kojibox uses no OS keyring on this platform";

    pub(super) fn get(_user: &str) -> Result<Option<Zeroizing<Vec<u8>>>, String> {
        Err(NONE.to_owned())
    }

    pub(super) fn set(_user: &str, _key: &[u8]) -> Result<(), String> {
        Err(NONE.to_owned())
    }

    pub(super) fn delete(_user: &str) -> Result<(), String> {
        Err(NONE.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALUE: &str = "hunter2-correct-horse";
    const NAME: &str = "DB_PASSWORD_NAME";

    fn home() -> (tempfile::TempDir, Home) {
        let dir = tempfile::tempdir().unwrap();
        let home = Home::at(dir.path()).unwrap();
        (dir, home)
    }

    fn value(text: &str) -> SecretValue {
        SecretValue::new(text.to_owned())
    }

    fn store_file(home: &Home) -> PathBuf {
        home.join("app/secrets/secrets.json")
    }

    /// Every file under `app/`, as (path, bytes).
    fn files(home: &Home) -> Vec<(PathBuf, Vec<u8>)> {
        fn walk(dir: &Path, out: &mut Vec<(PathBuf, Vec<u8>)>) {
            for entry in std::fs::read_dir(dir).unwrap().flatten() {
                let path = entry.path();
                if path.is_dir() {
                    walk(&path, out);
                } else {
                    out.push((path.clone(), std::fs::read(&path).unwrap()));
                }
            }
        }
        let mut out = Vec::new();
        walk(&home.join("app"), &mut out);
        out
    }

    /// Whether `bytes`, or a base64 string field of it read as JSON, contains `needle`.
    fn contains(bytes: &[u8], needle: &str) -> bool {
        let raw = |b: &[u8]| b.windows(needle.len()).any(|w| w == needle.as_bytes());
        let fields = serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(bytes)
            .unwrap_or_default();
        raw(bytes)
            || fields
                .values()
                .filter_map(|v| B64.decode(v.as_str()?).ok())
                .any(|decoded| raw(&decoded))
    }

    #[test]
    fn values_persist_across_open() {
        let (_dir, home) = home();
        let store = SecretStore::open(&home, None).unwrap();
        store.set(SecretScope::App, NAME, &value(VALUE)).unwrap();
        store
            .set(SecretScope::Project, NAME, &value("other"))
            .unwrap();
        drop(store);
        let store = SecretStore::open(&home, None).unwrap();
        assert_eq!(store.get(SecretScope::App, NAME).unwrap().expose(), VALUE);
        assert_eq!(
            store.get(SecretScope::Project, NAME).unwrap().expose(),
            "other"
        );
        assert_eq!(store.key_source(), KeySource::KeyFile);
    }

    #[test]
    fn unknown_key_is_not_found_and_names_no_value() {
        let (_dir, home) = home();
        let store = SecretStore::open(&home, None).unwrap();
        store.set(SecretScope::App, NAME, &value(VALUE)).unwrap();
        let err = store.get(SecretScope::Service, NAME).unwrap_err();
        assert!(matches!(err, Error::NotFound { .. }), "{err:?}");
        let text = err.to_string();
        assert!(text.contains(NAME) && text.contains("service"), "{text}");
        assert!(!text.contains(VALUE), "{text}");
        assert!(!format!("{err:?}").contains(VALUE));
    }

    #[test]
    fn nothing_is_readable_at_rest() {
        let (_dir, home) = home();
        let store = SecretStore::open(&home, None).unwrap();
        store
            .set(SecretScope::Service, NAME, &value(VALUE))
            .unwrap();
        let check = |home: &Home| {
            let files = files(home);
            assert!(files.iter().any(|(p, _)| p == &store_file(home)));
            for (path, bytes) in files {
                assert!(
                    !contains(&bytes, VALUE),
                    "{} holds the value",
                    path.display()
                );
                assert!(!contains(&bytes, NAME), "{} holds the name", path.display());
            }
        };
        check(&home);
        assert!(contains(
            br#"{"data":"aHVudGVyMi1jb3JyZWN0LWhvcnNl"}"#,
            VALUE
        ));
        store.set_passphrase(Some(&value("pass phrase"))).unwrap();
        check(&home);
        let text = std::fs::read_to_string(store_file(&home)).unwrap();
        let sealed: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(sealed["version"], 1);
        assert_eq!(sealed["cipher"], "xchacha20poly1305");
    }

    #[test]
    fn every_write_draws_a_fresh_nonce() {
        let (_dir, home) = home();
        let store = SecretStore::open(&home, None).unwrap();
        let nonce = || {
            let text = std::fs::read_to_string(store_file(&home)).unwrap();
            serde_json::from_str::<Sealed>(&text).unwrap().nonce
        };
        store.set(SecretScope::App, NAME, &value(VALUE)).unwrap();
        let first = nonce();
        store.set(SecretScope::App, NAME, &value(VALUE)).unwrap();
        assert_ne!(first, nonce());
    }

    #[cfg(unix)]
    #[test]
    fn key_file_is_0600_and_folder_0700() {
        use std::os::unix::fs::PermissionsExt;
        let (_dir, home) = home();
        // A folder made too open by someone else is tightened.
        std::fs::create_dir_all(home.join("app/secrets")).unwrap();
        std::fs::set_permissions(
            home.join("app/secrets"),
            std::fs::Permissions::from_mode(0o755),
        )
        .unwrap();
        let store = SecretStore::open(&home, None).unwrap();
        store.set(SecretScope::App, NAME, &value(VALUE)).unwrap();
        let mode = |rel: &str| {
            std::fs::metadata(home.join(rel))
                .unwrap()
                .permissions()
                .mode()
                & 0o777
        };
        assert_eq!(mode("app/secrets"), 0o700);
        assert_eq!(mode("app/secrets/key"), 0o600);
        assert_eq!(mode("app/secrets/secrets.json"), 0o600);
        // A loosened key file is tightened at the next open.
        std::fs::set_permissions(
            home.join("app/secrets/key"),
            std::fs::Permissions::from_mode(0o644),
        )
        .unwrap();
        SecretStore::open(&home, None).unwrap();
        assert_eq!(mode("app/secrets/key"), 0o600);
    }

    #[test]
    fn resolve_prefers_service_then_project_then_app() {
        let (_dir, home) = home();
        let store = SecretStore::open(&home, None).unwrap();
        let get = |name: &str| store.resolve(name).unwrap().map(|v| v.expose().to_owned());
        assert_eq!(get("k"), None);
        store.set(SecretScope::App, "k", &value("app")).unwrap();
        assert_eq!(get("k").as_deref(), Some("app"));
        store
            .set(SecretScope::Project, "k", &value("project"))
            .unwrap();
        assert_eq!(get("k").as_deref(), Some("project"));
        store
            .set(SecretScope::Service, "k", &value("service"))
            .unwrap();
        assert_eq!(get("k").as_deref(), Some("service"));
        assert_eq!(get("app.k").as_deref(), Some("app"));
        assert_eq!(get("project.k").as_deref(), Some("project"));
        assert_eq!(get("service.k").as_deref(), Some("service"));
        store
            .set(SecretScope::App, "only.app", &value("a"))
            .unwrap();
        assert_eq!(get("only.app").as_deref(), Some("a"));
        assert_eq!(get("service.only.app"), None);
        assert!(matches!(store.resolve("app."), Err(Error::Invalid { .. })));
    }

    #[test]
    fn remove_and_list() {
        let (_dir, home) = home();
        let store = SecretStore::open(&home, None).unwrap();
        store.set(SecretScope::Project, "b", &value(VALUE)).unwrap();
        store.set(SecretScope::Project, "a", &value(VALUE)).unwrap();
        store.set(SecretScope::Service, "c", &value(VALUE)).unwrap();
        let list = store.list().unwrap();
        assert_eq!(
            list,
            vec![
                (SecretScope::App, vec![]),
                (SecretScope::Project, vec!["a".to_owned(), "b".to_owned()]),
                (SecretScope::Service, vec!["c".to_owned()]),
            ]
        );
        assert!(store.remove(SecretScope::Project, "a").unwrap());
        assert!(!store.remove(SecretScope::Project, "a").unwrap());
        assert!(!store.remove(SecretScope::App, "c").unwrap());
        let store = SecretStore::open(&home, None).unwrap();
        assert!(matches!(
            store.get(SecretScope::Project, "a"),
            Err(Error::NotFound { .. })
        ));
        assert_eq!(
            store.get(SecretScope::Project, "b").unwrap().expose(),
            VALUE
        );
    }

    #[test]
    fn passphrase_locks_changes_and_unlocks() {
        let (_dir, home) = home();
        let key_file = home.join("app/secrets/key");
        let store = SecretStore::open(&home, None).unwrap();
        store.set(SecretScope::App, NAME, &value(VALUE)).unwrap();
        assert!(key_file.exists());
        assert!(!SecretStore::is_locked(&home));

        let pass = value("first pass");
        store.set_passphrase(Some(&pass)).unwrap();
        assert!(SecretStore::is_locked(&home));
        assert!(!key_file.exists());
        assert_eq!(store.key_source(), KeySource::Passphrase);
        // The open store keeps working.
        assert_eq!(store.get(SecretScope::App, NAME).unwrap().expose(), VALUE);

        let err = SecretStore::open(&home, None).unwrap_err();
        assert!(matches!(err, Error::PermissionDenied { .. }), "{err:?}");
        assert!(err.to_string().contains("give the passphrase"), "{err}");
        let err = SecretStore::open(&home, Some(&value("wrong"))).unwrap_err();
        assert!(matches!(err, Error::PermissionDenied { .. }), "{err:?}");
        assert!(!err.to_string().contains("first pass"));
        assert!(!key_file.exists(), "a failed open made a key");

        let unlocked = SecretStore::open(&home, Some(&pass)).unwrap();
        assert_eq!(
            unlocked.get(SecretScope::App, NAME).unwrap().expose(),
            VALUE
        );

        let second = value("second pass");
        unlocked.set_passphrase(Some(&second)).unwrap();
        assert!(SecretStore::open(&home, Some(&pass)).is_err());
        let unlocked = SecretStore::open(&home, Some(&second)).unwrap();
        assert_eq!(
            unlocked.get(SecretScope::App, NAME).unwrap().expose(),
            VALUE
        );

        unlocked.set_passphrase(None).unwrap();
        assert!(!SecretStore::is_locked(&home));
        assert!(key_file.exists());
        let store = SecretStore::open(&home, None).unwrap();
        assert_eq!(store.get(SecretScope::App, NAME).unwrap().expose(), VALUE);
        assert_eq!(store.key_source(), KeySource::KeyFile);
    }

    #[test]
    fn empty_passphrase_is_refused() {
        let (_dir, home) = home();
        let store = SecretStore::open(&home, None).unwrap();
        let err = store.set_passphrase(Some(&value(""))).unwrap_err();
        assert!(matches!(err, Error::Invalid { .. }), "{err:?}");
        assert!(!SecretStore::is_locked(&home));
        assert!(home.join("app/secrets/key").exists());
    }

    #[test]
    fn open_finishes_an_interrupted_set_passphrase() {
        let (_dir, home) = home();
        let key_file = home.join("app/secrets/key");
        let store = SecretStore::open(&home, None).unwrap();
        store.set(SecretScope::App, NAME, &value(VALUE)).unwrap();
        let saved = std::fs::read(&key_file).unwrap();
        let pass = value("pass");
        store.set_passphrase(Some(&pass)).unwrap();
        // As if the process died between writing key.locked and deleting the key file.
        std::fs::write(&key_file, &saved).unwrap();
        assert!(matches!(
            SecretStore::open(&home, None),
            Err(Error::PermissionDenied { .. })
        ));
        let store = SecretStore::open(&home, Some(&pass)).unwrap();
        assert!(!key_file.exists());
        assert_eq!(store.get(SecretScope::App, NAME).unwrap().expose(), VALUE);
    }

    #[test]
    fn corrupt_store_is_reported_and_never_overwritten() {
        let (_dir, home) = home();
        let store = SecretStore::open(&home, None).unwrap();
        store.set(SecretScope::App, NAME, &value(VALUE)).unwrap();
        let path = store_file(&home);
        let mut sealed: Sealed =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let mut data = B64.decode(&sealed.data).unwrap();
        data[3] ^= 0x01;
        sealed.data = B64.encode(&data);
        fsutil::write_json(&path, &sealed).unwrap();
        let before = std::fs::read(&path).unwrap();

        let err = store.get(SecretScope::App, NAME).unwrap_err();
        assert!(
            matches!(&err, Error::Corrupt { path: p, .. } if p == &path),
            "{err:?}"
        );
        let err = store
            .set(SecretScope::App, "other", &value("x"))
            .unwrap_err();
        assert!(matches!(err, Error::Corrupt { .. }), "{err:?}");
        assert!(matches!(
            store.remove(SecretScope::App, NAME),
            Err(Error::Corrupt { .. })
        ));
        assert!(matches!(store.list(), Err(Error::Corrupt { .. })));
        assert_eq!(std::fs::read(&path).unwrap(), before);
    }

    #[test]
    fn a_lost_key_is_an_error_not_a_new_key() {
        let (_dir, home) = home();
        let store = SecretStore::open(&home, None).unwrap();
        store.set(SecretScope::App, NAME, &value(VALUE)).unwrap();
        drop(store);
        let key_file = home.join("app/secrets/key");
        std::fs::remove_file(&key_file).unwrap();
        let before = std::fs::read(store_file(&home)).unwrap();
        let err = SecretStore::open(&home, None).unwrap_err();
        assert!(matches!(err, Error::NotFound { .. }), "{err:?}");
        assert!(err.to_string().contains("secrets.json"), "{err}");
        assert!(!key_file.exists());
        assert_eq!(std::fs::read(store_file(&home)).unwrap(), before);
    }

    #[test]
    fn a_different_key_cannot_read_the_store() {
        let (_dir, home) = home();
        let store = SecretStore::open(&home, None).unwrap();
        store.set(SecretScope::App, NAME, &value(VALUE)).unwrap();
        let other = DataKey::generate().unwrap();
        write_key_file(&home.join("app/secrets/key"), &other).unwrap();
        let store = SecretStore::open(&home, None).unwrap();
        assert!(matches!(
            store.get(SecretScope::App, NAME),
            Err(Error::Corrupt { .. })
        ));
    }

    #[test]
    fn a_key_in_a_keyring_this_platform_lacks_is_an_error() {
        if os_keyring::AVAILABLE {
            return;
        }
        let (_dir, home) = home();
        let marker = KeyringMarker {
            version: 1,
            service: KEYRING_SERVICE.to_owned(),
            user: "/Users/someone/kojibox".to_owned(),
        };
        fsutil::write_json(&home.join("app/secrets/keyring.json"), &marker).unwrap();
        let err = SecretStore::open(&home, None).unwrap_err();
        assert!(matches!(err, Error::PermissionDenied { .. }), "{err:?}");
        assert!(err.to_string().contains("OS keyring"), "{err}");
        assert!(!home.join("app/secrets/key").exists());
    }

    #[test]
    fn concurrent_sets_lose_no_update() {
        let (_dir, home) = home();
        SecretStore::open(&home, None).unwrap();
        let barrier = std::sync::Barrier::new(16);
        std::thread::scope(|s| {
            for i in 0..16 {
                let (home, barrier) = (&home, &barrier);
                s.spawn(move || {
                    let store = SecretStore::open(home, None).unwrap();
                    barrier.wait();
                    let v = value(&format!("value-{i}"));
                    store
                        .set(SecretScope::App, &format!("key-{i}"), &v)
                        .unwrap();
                });
            }
        });
        let store = SecretStore::open(&home, None).unwrap();
        for i in 0..16 {
            let got = store.get(SecretScope::App, &format!("key-{i}")).unwrap();
            assert_eq!(got.expose(), format!("value-{i}"));
        }
    }

    #[test]
    fn debug_and_display_redact() {
        let (_dir, home) = home();
        let secret = value(VALUE);
        assert!(!format!("{secret:?}").contains(VALUE));
        assert!(!format!("{secret}").contains(VALUE));
        assert_eq!(format!("{secret}"), "<redacted>");
        let store = SecretStore::open(&home, None).unwrap();
        store.set(SecretScope::App, NAME, &secret).unwrap();
        let debug = format!("{store:?}");
        assert!(!debug.contains(VALUE), "{debug}");
        let key = std::fs::read_to_string(home.join("app/secrets/key")).unwrap();
        assert!(!debug.contains(key.trim()), "{debug}");
        let resolved = store.resolve(NAME).unwrap();
        assert!(!format!("{resolved:?}").contains(VALUE));
    }

    #[test]
    fn key_names_are_checked() {
        for good in [
            "a",
            "DB_PASSWORD",
            "x.y-z_1",
            "application.key",
            &"k".repeat(128),
        ] {
            assert!(check_key(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            ".hidden",
            "app.key",
            "project.key",
            "service.key",
            "has space",
            "slash/no",
            "ünï",
            "dollar$",
            &"k".repeat(129),
        ] {
            let err = check_key(bad).unwrap_err();
            assert!(matches!(&err, Error::Invalid { detail, .. } if detail.contains("`key`")));
        }
        let (_dir, home) = home();
        let store = SecretStore::open(&home, None).unwrap();
        assert!(matches!(
            store.set(SecretScope::App, "app.x", &value(VALUE)),
            Err(Error::Invalid { .. })
        ));
        assert!(!store_file(&home).exists());
    }

    #[test]
    fn production_kdf_cost_is_64_mib_3_passes() {
        assert_eq!(
            KDF_COST_DEFAULT,
            KdfCost {
                m: 65536,
                t: 3,
                p: 1
            }
        );
        let (_dir, home) = home();
        let store = SecretStore::open(&home, None).unwrap();
        store.set_passphrase(Some(&value("p"))).unwrap();
        let mut locked: Locked = fsutil::read_json(&home.join("app/secrets/key.locked"))
            .unwrap()
            .unwrap();
        assert_eq!((locked.kdf.as_str(), locked.m), ("argon2id", KDF_COST.m));
        // An altered file cannot ask for unbounded work.
        locked.m = KDF_COST_MAX.m + 1;
        fsutil::write_json(&home.join("app/secrets/key.locked"), &locked).unwrap();
        assert!(matches!(
            SecretStore::open(&home, Some(&value("p"))),
            Err(Error::Corrupt { .. })
        ));
    }
}
