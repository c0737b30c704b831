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
//! ([`kojibox_home::Home::lock_wait`]), read, decrypt, change, encrypt and replace the file atomically, so
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

mod crypto;
mod error;
mod key_source;
mod names;
mod os_keyring;
mod store;
mod value;
mod vault;

#[cfg(test)]
mod tests;

pub use error::{Error, Result};
pub use key_source::KeySource;
pub use names::check_key;
pub use store::SecretStore;
pub use value::SecretValue;
pub use vault::Vault;
