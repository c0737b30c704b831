//! The one error type of this crate. Every variant says what was being done and to which path,
//! so that a message read alone (in a log, in an API error envelope) tells the user what to fix.

use std::fmt;
use std::io;
use std::path::PathBuf;

use crate::key_id::KeyId;

/// Which half of a key pair a key file holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyKind {
    /// A secret (signing) key file, `*.key`.
    Secret,
    /// A public (verifying) key file, `*.pub`.
    Public,
}

impl fmt::Display for KeyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            KeyKind::Secret => "secret",
            KeyKind::Public => "public",
        })
    }
}

/// What is wrong with a signature string; see [`Error::MalformedSignature`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SignatureProblem {
    /// The text before the first `:` is not `ed25519`.
    WrongScheme {
        /// The scheme that was found (possibly empty, truncated when long).
        found: String,
    },
    /// The string does not have exactly three `:`-separated parts.
    WrongPartCount {
        /// How many parts were found.
        found: usize,
    },
    /// The key id part is not 16 lowercase hex characters.
    BadKeyId {
        /// The key id part that was found (truncated when long).
        found: String,
    },
    /// The signature part is not standard base64 with padding.
    BadBase64 {
        /// What the base64 decoder reported.
        detail: String,
    },
    /// The signature part decodes to the wrong number of bytes.
    WrongLength {
        /// How many bytes it decodes to.
        actual: usize,
    },
}

impl fmt::Display for SignatureProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SignatureProblem::WrongScheme { found } => {
                write!(f, "it must start with `ed25519:`, found scheme `{found}`")
            }
            SignatureProblem::WrongPartCount { found } => {
                write!(f, "expected 3 parts separated by `:`, found {found}")
            }
            SignatureProblem::BadKeyId { found } => write!(
                f,
                "the key id `{found}` is not {} lowercase hex characters",
                KeyId::HEX_LEN
            ),
            SignatureProblem::BadBase64 { detail } => write!(
                f,
                "the signature part is not standard base64 with padding ({detail})"
            ),
            SignatureProblem::WrongLength { actual } => write!(
                f,
                "the signature part decodes to {actual} bytes, expected {}",
                ed25519_dalek::SIGNATURE_LENGTH
            ),
        }
    }
}

/// Everything that can go wrong while handling keys and signatures.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A key file could not be opened or read.
    #[error("could not read {kind} key file {}: {source}", path.display())]
    ReadKey {
        /// Which kind of key file.
        kind: KeyKind,
        /// The key file.
        path: PathBuf,
        /// The underlying failure.
        source: io::Error,
    },

    /// A key file could not be created or written.
    #[error("could not write {kind} key file {}: {source}", path.display())]
    WriteKey {
        /// Which kind of key file.
        kind: KeyKind,
        /// The key file.
        path: PathBuf,
        /// The underlying failure.
        source: io::Error,
    },

    /// Writing a key file was refused because the path already exists.
    #[error(
        "refusing to overwrite existing {kind} key file {}: move it away or choose another name",
        path.display()
    )]
    KeyFileExists {
        /// Which kind of key file.
        kind: KeyKind,
        /// The existing path.
        path: PathBuf,
    },

    /// A key file does not follow its format (header, base64, line structure).
    #[error("{kind} key file {} is corrupt: {reason}", path.display())]
    CorruptKeyFile {
        /// Which kind of key file.
        kind: KeyKind,
        /// The key file.
        path: PathBuf,
        /// What is wrong and what was expected. Never quotes secret key material.
        reason: String,
    },

    /// A key file's key decodes to the wrong number of bytes.
    #[error(
        "key in {} has wrong length: expected {expected} bytes, got {actual}",
        path.display()
    )]
    KeyLength {
        /// Which kind of key file.
        kind: KeyKind,
        /// The key file.
        path: PathBuf,
        /// The length a key must have.
        expected: usize,
        /// The length found.
        actual: usize,
    },

    /// Public key bytes that are not a usable Ed25519 key.
    #[error(
        "not a usable ed25519 public key: not a valid curve point, or a weak (small-order) key"
    )]
    InvalidPublicKey,

    /// A public key file whose bytes are not a usable Ed25519 key.
    #[error(
        "public key file {} does not hold a usable ed25519 public key: \
         not a valid curve point, or a weak (small-order) key",
        path.display()
    )]
    InvalidPublicKeyFile {
        /// The key file.
        path: PathBuf,
    },

    /// A public key file's header names a key id that its key does not hash to.
    #[error(
        "public key file {} names key id {named} but its key hashes to {actual}",
        path.display()
    )]
    KeyIdMismatch {
        /// The key file.
        path: PathBuf,
        /// The key id written in the header.
        named: KeyId,
        /// The key id of the key in the file.
        actual: KeyId,
    },

    /// A secret key file that other users may access (unix only).
    #[error(
        "secret key file {} can be accessed by other users (mode {mode:04o}); \
         run `chmod 600 {}` and try again",
        path.display(),
        path.display()
    )]
    InsecureKeyFile {
        /// The key file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },

    /// A string that is not a key id.
    #[error(
        "`{input}` is not a key id: expected {} lowercase hex characters",
        KeyId::HEX_LEN
    )]
    MalformedKeyId {
        /// The string (truncated when long).
        input: String,
    },

    /// A string that is not a signature.
    #[error(
        "malformed signature `{input}`: {problem}; \
         a signature looks like `ed25519:<16 hex key id>:<base64 of 64 bytes>`"
    )]
    MalformedSignature {
        /// The string (truncated when long).
        input: String,
        /// What is wrong with it.
        problem: SignatureProblem,
    },

    /// The signature names another key than the one it was checked with.
    #[error("data was signed by key {signed_by}, not by this key {key}")]
    WrongKey {
        /// The key id the signature names.
        signed_by: KeyId,
        /// The key id of the key used to check.
        key: KeyId,
    },

    /// The signature is well formed and names the right key, but does not verify.
    #[error(
        "signature by key {key_id} does not match the data: the data or the signature was \
         altered, or they do not belong together"
    )]
    BadSignature {
        /// The key that was used to check.
        key_id: KeyId,
    },

    /// A trust store has no key with the signature's key id.
    #[error(
        "data was signed by key {key_id}, which is not in the trust store {}; \
         if you trust that key, pass its public key file explicitly (for example `--pubkey KEY.pub`)",
        store.display()
    )]
    UnknownKey {
        /// The key id the signature names.
        key_id: KeyId,
        /// The trust store's folder.
        store: PathBuf,
    },

    /// A trust store's folder could not be listed.
    #[error("could not read trust store {}: {source}", path.display())]
    ReadTrustStore {
        /// The trust store's folder.
        path: PathBuf,
        /// The underlying failure.
        source: io::Error,
    },

    /// A key could not be written into a trust store.
    #[error("could not add key {key_id} to trust store {}: {source}", path.display())]
    WriteTrustStore {
        /// The key being added.
        key_id: KeyId,
        /// The path being written (the store's folder or the key's file in it).
        path: PathBuf,
        /// The underlying failure.
        source: io::Error,
    },

    /// Two different keys with the same key id met in a trust store.
    #[error(
        "trust store file {} holds a different key with the same key id {key_id}; \
         remove one of them",
        path.display()
    )]
    KeyIdCollision {
        /// The key id.
        key_id: KeyId,
        /// The file holding the other key.
        path: PathBuf,
    },

    /// The operating system's random number generator failed.
    #[error("could not get random bytes from the operating system: {0}")]
    Random(#[source] getrandom::Error),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insecure_key_file_message_tells_how_to_fix_it() {
        let err = Error::InsecureKeyFile {
            path: "/k/release.key".into(),
            mode: 0o644,
        };
        let msg = err.to_string();
        assert!(msg.contains("mode 0644"), "{msg}");
        assert!(msg.contains("chmod 600 /k/release.key"), "{msg}");
    }
}
