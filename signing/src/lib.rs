//! Ed25519 keys, signatures and the trust store of pinned public keys.
//!
//! # Theory of operation
//!
//! A publisher holds a [`SecretKey`] (made by [`generate`] or [`write_keypair`]) and signs bytes
//! with [`SecretKey::sign`]. The [`Signature`] travels as text, `ed25519:<key id>:<base64>`, and
//! names the key that made it. A consumer checks it either against one [`PublicKey`] it was handed
//! explicitly ([`PublicKey::verify`]) or against the pinned keys of a [`TrustStore`]
//! ([`TrustStore::verify`]), a folder of `*.pub` files in which the signature's key id selects the
//! key. The key id only *selects*: trust comes from the key being pinned, and the check itself is
//! always Ed25519 `verify_strict` over the whole message, which also rejects malleable signatures
//! and weak (small-order) keys. This crate signs opaque bytes; what they mean (a bundle's digest,
//! a channel index) is the caller's business.
//!
//! # Key id
//!
//! A [`KeyId`] is the first 8 bytes of SHA-256 over the 32 raw public key bytes, written as 16
//! lowercase hex characters, for example `3f2a9c0d41b7e856`. It is short enough to read aloud and
//! to use as a file name. It is a label, not a security boundary: nothing is accepted because its
//! key id matches, only because the full key verifies.
//!
//! # File formats
//!
//! Key files are text so that they survive copy/paste, e-mail and git. Each holds two lines ended
//! by `\n`; readers also accept `\r\n` and a missing final newline. Base64 is the standard alphabet
//! with padding (a 32-byte key is 44 characters).
//!
//! Secret key file, by convention `PREFIX.key` (the 32-byte Ed25519 seed):
//!
//! ```text
//! kojibox-secret-key v1
//! <base64 of the 32-byte seed>
//! ```
//!
//! Public key file, by convention `PREFIX.pub` (the header repeats the key id so that a human can
//! match files and signatures; a reader refuses a file whose key does not hash to that id):
//!
//! ```text
//! kojibox-public-key v1 <key id>
//! <base64 of the 32-byte public key>
//! ```
//!
//! Key files are never overwritten: writing onto an existing path is an error. On unix a secret
//! key file is created with mode 0600 from the first byte, and reading one that group or others
//! may access (any bit of 0o077) is refused with advice to `chmod 600` it. Both kinds of write are
//! fsynced, file and folder.
//!
//! The signature string is `ed25519:<key id>:<base64 of the 64-byte signature>`.

mod error;
mod key_id;
mod keyfile;
mod keys;
mod signature;
mod text;
mod trust;

pub use error::{Error, KeyKind, SignatureProblem};
pub use key_id::KeyId;
pub use keys::{PublicKey, SecretKey, generate, try_generate, write_keypair};
pub use signature::Signature;
pub use trust::TrustStore;

/// The result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
