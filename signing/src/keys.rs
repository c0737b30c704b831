//! Key types: [`SecretKey`], [`PublicKey`], and making new key pairs ([`KeyId`] is parsed here).
//!
//! The types wrap ed25519-dalek's keys and carry their key id, computed once. A [`SecretKey`]
//! wipes its seed on drop (ed25519-dalek's `zeroize` feature) and never formats it.

use std::ffi::OsString;
use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use ed25519_dalek::{SECRET_KEY_LENGTH, Signer as _, SigningKey, VerifyingKey};
use zeroize::Zeroizing;

use crate::key_id::KeyId;
use crate::keyfile;
use crate::text::excerpt;
use crate::{Error, KeyKind, Result, Signature};

impl FromStr for KeyId {
    type Err = Error;

    /// Parses exactly 16 lowercase hex characters: the one spelling [`KeyId`]'s `Display` gives,
    /// so that a key id names one file and one string only.
    fn from_str(s: &str) -> Result<Self> {
        KeyId::from_canonical_hex(s).ok_or_else(|| Error::MalformedKeyId { input: excerpt(s) })
    }
}

/// An Ed25519 public (verifying) key.
#[derive(Clone, PartialEq, Eq)]
pub struct PublicKey {
    key: VerifyingKey,
    id: KeyId,
}

impl PublicKey {
    /// A public key from its 32 raw bytes. Refuses bytes that are not a curve point and weak
    /// (small-order) keys, for which signatures would prove nothing.
    pub fn from_bytes(bytes: &[u8; 32]) -> Result<Self> {
        let key = VerifyingKey::from_bytes(bytes).map_err(|_| Error::InvalidPublicKey)?;
        if key.is_weak() {
            return Err(Error::InvalidPublicKey);
        }
        Ok(Self::from_dalek(key))
    }

    fn from_dalek(key: VerifyingKey) -> Self {
        let id = KeyId::of_public_key_bytes(key.as_bytes());
        PublicKey { key, id }
    }

    /// The 32 raw bytes of the key.
    pub fn to_bytes(&self) -> [u8; 32] {
        self.key.to_bytes()
    }

    /// The key in standard base64 with padding, as written in a public key file.
    pub fn to_base64(&self) -> String {
        BASE64.encode(self.key.as_bytes())
    }

    /// The key's id.
    pub fn key_id(&self) -> KeyId {
        self.id
    }

    /// Checks that `signature` was made over exactly `msg` by this key.
    ///
    /// A signature naming another key id fails with [`Error::WrongKey`] without any
    /// cryptography; otherwise Ed25519 `verify_strict` decides, and a failure is
    /// [`Error::BadSignature`].
    pub fn verify(&self, msg: &[u8], signature: &Signature) -> Result<()> {
        if signature.key_id() != self.id {
            return Err(Error::WrongKey {
                signed_by: signature.key_id(),
                key: self.id,
            });
        }
        let sig = ed25519_dalek::Signature::from_bytes(&signature.to_bytes());
        self.key
            .verify_strict(msg, &sig)
            .map_err(|_| Error::BadSignature { key_id: self.id })
    }

    /// Reads a public key file (format in the crate docs), checking that its key hashes to the
    /// key id its header names.
    pub fn read(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let text = keyfile::read_key_file(KeyKind::Public, path)?;
        let parsed = keyfile::parse_public(&text, path)?;
        let key = PublicKey::from_bytes(&parsed.key)
            .map_err(|_| Error::InvalidPublicKeyFile { path: path.into() })?;
        if key.id != parsed.named {
            return Err(Error::KeyIdMismatch {
                path: path.into(),
                named: parsed.named,
                actual: key.id,
            });
        }
        Ok(key)
    }

    /// Writes this key as a public key file at `path`, which must not exist yet.
    pub fn write(&self, path: impl AsRef<Path>) -> Result<()> {
        let text = self.to_file_text();
        keyfile::write_new_key_file(KeyKind::Public, path.as_ref(), text.as_bytes())
    }

    /// The contents of this key's public key file.
    pub(crate) fn to_file_text(&self) -> String {
        keyfile::encode_public(self.id, &self.to_base64())
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PublicKey")
            .field("key_id", &self.id)
            .field("key", &self.to_base64())
            .finish()
    }
}

/// An Ed25519 secret (signing) key.
///
/// Its `Debug` shows only the key id; the seed is wiped from memory when the key is dropped.
pub struct SecretKey {
    key: SigningKey,
    id: KeyId,
}

impl SecretKey {
    /// The secret key with this 32-byte seed. Meant for tests and for keys kept elsewhere;
    /// new keys come from [`generate`].
    pub fn from_seed(seed: &[u8; SECRET_KEY_LENGTH]) -> Self {
        let key = SigningKey::from_bytes(seed);
        let id = KeyId::of_public_key_bytes(key.verifying_key().as_bytes());
        SecretKey { key, id }
    }

    /// Signs `msg`.
    pub fn sign(&self, msg: &[u8]) -> Signature {
        let sig = self.key.sign(msg);
        Signature::from_parts(self.id, sig.to_bytes())
    }

    /// The matching public key.
    pub fn public_key(&self) -> PublicKey {
        PublicKey::from_dalek(self.key.verifying_key())
    }

    /// The key id of the matching public key.
    pub fn key_id(&self) -> KeyId {
        self.id
    }

    /// Reads a secret key file (format in the crate docs). On unix, refuses a file that group or
    /// others may access with [`Error::InsecureKeyFile`].
    pub fn read(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let text = keyfile::read_key_file(KeyKind::Secret, path)?;
        let seed = keyfile::parse_secret(&text, path)?;
        Ok(SecretKey::from_seed(&seed))
    }

    /// Writes this key as a secret key file at `path`, which must not exist yet. On unix the file
    /// is created with mode 0600.
    pub fn write(&self, path: impl AsRef<Path>) -> Result<()> {
        let text = keyfile::encode_secret(self.key.as_bytes());
        keyfile::write_new_key_file(KeyKind::Secret, path.as_ref(), text.as_bytes())
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretKey")
            .field("key_id", &self.id)
            .field("seed", &format_args!("<redacted>"))
            .finish()
    }
}

/// Makes a new secret key from the operating system's random number generator.
///
/// # Panics
///
/// If the operating system cannot provide random bytes, which does not happen on supported
/// platforms once booted; use [`try_generate`] to get an error instead.
pub fn generate() -> SecretKey {
    match try_generate() {
        Ok(key) => key,
        Err(err) => panic!("{err}"),
    }
}

/// Makes a new secret key, reporting a failure of the operating system's random number
/// generator as [`Error::Random`].
pub fn try_generate() -> Result<SecretKey> {
    let mut seed = Zeroizing::new([0u8; SECRET_KEY_LENGTH]);
    getrandom::fill(seed.as_mut_slice()).map_err(Error::Random)?;
    Ok(SecretKey::from_seed(&seed))
}

/// Makes a new key pair and writes it as `PREFIX.key` and `PREFIX.pub` (the suffixes are
/// appended to `prefix`, so `keys/release` gives `keys/release.key`), creating the folder when it
/// is missing. Refuses to overwrite either file; if writing the public key fails, the secret key
/// file just written is removed.
pub fn write_keypair(prefix: &Path) -> Result<KeyId> {
    let secret_path = with_suffix(prefix, ".key");
    let public_path = with_suffix(prefix, ".pub");
    // Check both before writing anything, so a refusal never leaves half a pair behind.
    for (kind, path) in [
        (KeyKind::Secret, &secret_path),
        (KeyKind::Public, &public_path),
    ] {
        if fs::symlink_metadata(path).is_ok() {
            return Err(Error::KeyFileExists {
                kind,
                path: path.clone(),
            });
        }
    }
    if let Some(dir) = secret_path.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::create_dir_all(dir).map_err(|source| Error::WriteKey {
            kind: KeyKind::Secret,
            path: secret_path.clone(),
            source,
        })?;
    }
    let secret = try_generate()?;
    secret.write(&secret_path)?;
    if let Err(err) = secret.public_key().write(&public_path) {
        // We created the secret file with create_new, so it is ours to remove.
        let _ = fs::remove_file(&secret_path);
        return Err(err);
    }
    Ok(secret.key_id())
}

fn with_suffix(prefix: &Path, suffix: &str) -> PathBuf {
    // `components()` drops a trailing slash, so `keys/` gives `keys.key`, not `keys/.key`.
    let mut name = OsString::from(prefix.components().as_path());
    name.push(suffix);
    PathBuf::from(name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::{Digest as _, Sha256};

    #[test]
    fn key_id_is_the_sha256_prefix_of_the_public_key() {
        let key = SecretKey::from_seed(&[7; 32]).public_key();
        let digest = Sha256::digest(key.to_bytes());
        assert_eq!(key.key_id().to_string(), hex::encode(&digest[..8]));
        assert_eq!(key.key_id().to_string().len(), KeyId::HEX_LEN);
    }

    #[test]
    fn key_id_parses_only_its_canonical_spelling() {
        let id = SecretKey::from_seed(&[1; 32]).key_id();
        assert_eq!(id.to_string().parse::<KeyId>().unwrap(), id);
        for bad in [
            "",
            "0123456789abcde",
            "0123456789abcdef0",
            "0123456789ABCDEF",
            "0123456789abcdeg",
            " 123456789abcdef",
        ] {
            let err = bad.parse::<KeyId>().unwrap_err();
            assert!(
                matches!(&err, Error::MalformedKeyId { input } if input == bad),
                "{bad:?}: {err}"
            );
        }
    }

    #[test]
    fn weak_public_keys_are_refused() {
        // The identity point (y = 1) has order 1: every signature would verify under it.
        let mut identity = [0u8; 32];
        identity[0] = 1;
        assert!(matches!(
            PublicKey::from_bytes(&identity),
            Err(Error::InvalidPublicKey)
        ));
        let good = SecretKey::from_seed(&[9; 32]).public_key();
        assert_eq!(PublicKey::from_bytes(&good.to_bytes()).unwrap(), good);
    }

    #[test]
    fn seeds_give_stable_keys() {
        let a = SecretKey::from_seed(&[3; 32]);
        let b = SecretKey::from_seed(&[3; 32]);
        assert_eq!(a.public_key(), b.public_key());
        assert_eq!(
            a.sign(b"m"),
            b.sign(b"m"),
            "Ed25519 signing is deterministic"
        );
        assert_ne!(a.key_id(), SecretKey::from_seed(&[4; 32]).key_id());
    }

    #[test]
    fn generated_keys_differ() {
        assert_ne!(generate().key_id(), generate().key_id());
    }

    #[test]
    fn suffix_is_appended_not_substituted() {
        assert_eq!(
            with_suffix(Path::new("k/rel.v2"), ".key"),
            Path::new("k/rel.v2.key")
        );
        assert_eq!(
            with_suffix(Path::new("keys/"), ".pub"),
            Path::new("keys.pub")
        );
    }
}
