//! The store's cryptography: XChaCha20-Poly1305 under a random data key, and argon2id to wrap
//! that key under a passphrase. The stored shapes (`secrets.json`, `key.locked`) are here too.

use std::path::Path;

use argon2::{Algorithm, Argon2, Params, Version};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use kojibox_manifests::model::SecretScope;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::value::SecretValue;

pub(crate) const STORE_AAD: &[u8] = b"kojibox-secrets-v1";
pub(crate) const WRAP_AAD: &[u8] = b"kojibox-secrets-key-v1";
pub(crate) const CIPHER: &str = "xchacha20poly1305";
pub(crate) const KDF: &str = "argon2id";
pub(crate) const KEY_LEN: usize = 32;
pub(crate) const NONCE_LEN: usize = 24;
pub(crate) const SALT_LEN: usize = 16;

/// argon2id cost: memory in KiB, passes, lanes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct KdfCost {
    pub(crate) m: u32,
    pub(crate) t: u32,
    pub(crate) p: u32,
}

/// The cost written into new `key.locked` files.
pub(crate) const KDF_COST_DEFAULT: KdfCost = KdfCost {
    m: 64 * 1024,
    t: 3,
    p: 1,
};
/// Unit tests wrap keys cheaply; reading honours whatever cost the file names.
pub(crate) const KDF_COST: KdfCost = if cfg!(test) {
    KdfCost { m: 64, t: 1, p: 1 }
} else {
    KDF_COST_DEFAULT
};
/// The most a `key.locked` may ask for (1 GiB, 16 passes, 16 lanes), so an altered file
/// cannot make `open` allocate or spin without bound.
pub(crate) const KDF_COST_MAX: KdfCost = KdfCost {
    m: 1024 * 1024,
    t: 16,
    p: 16,
};

/// The stored form of the store file.
#[derive(Serialize, Deserialize)]
pub(crate) struct Sealed {
    pub(crate) version: u32,
    pub(crate) cipher: String,
    pub(crate) nonce: String,
    pub(crate) data: String,
}

/// The decrypted store. Unknown scopes make it unreadable rather than dropped on rewrite.
#[derive(Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Plain {
    #[serde(default)]
    app: std::collections::BTreeMap<String, Zeroizing<String>>,
    #[serde(default)]
    project: std::collections::BTreeMap<String, Zeroizing<String>>,
    #[serde(default)]
    service: std::collections::BTreeMap<String, Zeroizing<String>>,
}

impl Plain {
    pub(crate) fn scope(
        &self,
        scope: SecretScope,
    ) -> &std::collections::BTreeMap<String, Zeroizing<String>> {
        match scope {
            SecretScope::App => &self.app,
            SecretScope::Project => &self.project,
            SecretScope::Service => &self.service,
        }
    }

    pub(crate) fn scope_mut(
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
pub(crate) struct Locked {
    pub(crate) version: u32,
    pub(crate) kdf: String,
    pub(crate) m: u32,
    pub(crate) t: u32,
    pub(crate) p: u32,
    pub(crate) salt: String,
    pub(crate) nonce: String,
    pub(crate) wrapped: String,
}

/// A 32-byte key (the data key, or a key derived from a passphrase); zeroized on drop.
#[derive(PartialEq, Eq)]
pub(crate) struct DataKey(pub(crate) Zeroizing<[u8; KEY_LEN]>);

impl DataKey {
    pub(crate) fn generate() -> Result<DataKey> {
        Ok(DataKey(random::<KEY_LEN>()?))
    }

    pub(crate) fn from_slice(bytes: &[u8]) -> Option<DataKey> {
        let mut key = Zeroizing::new([0u8; KEY_LEN]);
        (bytes.len() == KEY_LEN).then(|| {
            key.copy_from_slice(bytes);
            DataKey(key)
        })
    }

    pub(crate) fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new((&*self.0).into())
    }

    /// Encrypts; `path` is only for the (impossible in practice) error.
    pub(crate) fn seal(
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
    pub(crate) fn open(
        &self,
        nonce: &[u8; NONCE_LEN],
        msg: &[u8],
        aad: &[u8],
    ) -> Option<Zeroizing<Vec<u8>>> {
        self.cipher()
            .decrypt(<&XNonce>::from(nonce), Payload { msg, aad })
            .ok()
            .map(Zeroizing::new)
    }
}

pub(crate) fn random<const N: usize>() -> Result<Zeroizing<[u8; N]>> {
    let mut bytes = Zeroizing::new([0u8; N]);
    getrandom::fill(&mut bytes[..]).map_err(|e| {
        Error::io("generate", "random bytes for the secret store")(std::io::Error::other(e))
    })?;
    Ok(bytes)
}

pub(crate) fn decode_nonce(text: &str) -> Option<[u8; NONCE_LEN]> {
    B64.decode(text).ok()?.try_into().ok()
}

/// Derives the key that wraps the data key.
pub(crate) fn derive(
    pass: &SecretValue,
    salt: &[u8],
    cost: KdfCost,
    path: &Path,
) -> Result<DataKey> {
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
