//! [`KeyId`]: the short name of a public key. A leaf: errors and keys both name it.

use std::fmt;

use sha2::{Digest as _, Sha256};

/// Short identifier of a public key: the first 8 bytes of SHA-256 over the 32 public key bytes,
/// shown as 16 lowercase hex characters.
///
/// It names a key (in signatures, file names, messages); it never stands in for the key when
/// verifying.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId([u8; 8]);

impl KeyId {
    /// Length of a key id's text form.
    pub const HEX_LEN: usize = 16;

    /// The key id of raw Ed25519 public key bytes.
    pub fn of_public_key_bytes(bytes: &[u8; 32]) -> Self {
        let digest = Sha256::digest(bytes);
        let mut id = [0; 8];
        id.copy_from_slice(&digest[..8]);
        KeyId(id)
    }

    /// Exactly 16 lowercase hex characters (the one spelling `Display` gives), else `None`.
    pub(crate) fn from_canonical_hex(s: &str) -> Option<Self> {
        let canonical = s.len() == Self::HEX_LEN
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if !canonical {
            return None;
        }
        let mut id = [0; 8];
        hex::decode_to_slice(s, &mut id).ok()?;
        Some(KeyId(id))
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({self})")
    }
}
