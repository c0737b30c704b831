//! Where the data key lives: the key file (`app/secrets/key`, 0600), the OS keyring (named by
//! `keyring.json`), or `key.locked` (wrapped under a passphrase).

use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::crypto::{
    DataKey, KDF, KDF_COST, KDF_COST_MAX, KdfCost, Locked, NONCE_LEN, SALT_LEN, WRAP_AAD,
    decode_nonce, derive, random,
};
use crate::error::{Error, Result};
use crate::os_keyring;
use crate::value::SecretValue;
use kojibox_home::Home;

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

/// `keyring.json`: which OS keyring entry holds the data key.
#[derive(Serialize, Deserialize)]
pub(crate) struct KeyringMarker {
    pub(crate) version: u32,
    pub(crate) service: String,
    pub(crate) user: String,
}

/// Creates `app/secrets/` (mode 0700 on unix) and tightens an existing one.
pub(crate) fn ensure_dir(home: &Home, dir: &Path) -> Result<()> {
    // The home's own folder creation: the layout's mode (0700) exactly, whatever the umask, a
    // loosened folder tightened (best effort: a FAT stick has no modes), never through a link.
    Ok(kojibox_home::fs::create_dir(home, dir)?)
}

/// Reads the key file; `None` when it does not exist. Tightens a loosened mode back to 0600.
pub(crate) fn read_key_file(path: &Path) -> Result<Option<DataKey>> {
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
pub(crate) fn write_key_file(home: &Home, path: &Path, key: &DataKey) -> Result<()> {
    let mut text = Zeroizing::new(B64.encode(&key.0[..]));
    text.push('\n');
    Ok(kojibox_home::fs::write_atomic(home, path, text.as_bytes())?)
}

/// Writes `key.locked`: `key` wrapped under a key derived from `pass` with a fresh salt.
pub(crate) fn write_locked(
    home: &Home,
    path: &Path,
    key: &DataKey,
    pass: &SecretValue,
) -> Result<()> {
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
    Ok(kojibox_home::fs::write_json(home, path, &locked)?)
}

/// Unwraps the data key from `key.locked`; a wrong passphrase is `PermissionDenied`.
pub(crate) fn unwrap_key(path: &Path, pass: &SecretValue) -> Result<DataKey> {
    let corrupt = |detail: &str| Error::Corrupt {
        path: path.to_owned(),
        detail: detail.to_owned(),
    };
    let locked: Locked = kojibox_home::fs::read_json(path)?
        .ok_or_else(|| corrupt("it disappeared while being read"))?;
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
pub(crate) fn read_keyring(paths: &Paths, marker: &KeyringMarker) -> Result<DataKey> {
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

/// The files of `app/secrets/`.
pub(crate) struct Paths {
    pub(crate) dir: PathBuf,
    pub(crate) store: PathBuf,
    pub(crate) key: PathBuf,
    pub(crate) locked: PathBuf,
    pub(crate) keyring: PathBuf,
}

impl Paths {
    pub(crate) fn new(home: &Home) -> Paths {
        Paths {
            dir: home.secrets_dir(),
            store: home.secret_store(),
            key: home.secret_key(),
            locked: home.secret_key_locked(),
            keyring: home.secret_keyring_marker(),
        }
    }
}
