//! The OS keyring: macOS Keychain and Windows Credential Manager, through the `keyring` crate;
//! elsewhere, none (the key file holds the data key).

/// The service name of kojibox's OS keyring entry.
pub(crate) const KEYRING_SERVICE: &str = "kojibox";

/// The OS keyring: macOS Keychain and Windows Credential Manager, through the `keyring` crate.
///
/// Untested: this compiles only on macOS and Windows, which neither the development machine
/// nor CI builds, so it is kept to three direct calls. Errors are the crate's messages, which
/// carry no secret.
#[cfg(any(target_os = "macos", target_os = "windows"))]
mod imp {
    use zeroize::Zeroizing;

    pub(crate) const AVAILABLE: bool = true;

    fn entry(user: &str) -> Result<keyring::Entry, String> {
        keyring::Entry::new(super::KEYRING_SERVICE, user).map_err(|e| e.to_string())
    }

    pub(crate) fn get(user: &str) -> Result<Option<Zeroizing<Vec<u8>>>, String> {
        match entry(user)?.get_secret() {
            Ok(bytes) => Ok(Some(Zeroizing::new(bytes))),
            Err(keyring::Error::NoEntry) => Ok(None),
            Err(e) => Err(e.to_string()),
        }
    }

    pub(crate) fn set(user: &str, key: &[u8]) -> Result<(), String> {
        entry(user)?.set_secret(key).map_err(|e| e.to_string())
    }

    pub(crate) fn delete(user: &str) -> Result<(), String> {
        match entry(user)?.delete_credential() {
            Ok(()) | Err(keyring::Error::NoEntry) => Ok(()),
            Err(e) => Err(e.to_string()),
        }
    }
}

/// No OS keyring is used on this platform: the key file holds the data key.
#[cfg(not(any(target_os = "macos", target_os = "windows")))]
mod imp {
    use zeroize::Zeroizing;

    pub(crate) const AVAILABLE: bool = false;
    const NONE: &str = "kojibox uses no OS keyring on this platform";

    pub(crate) fn get(_user: &str) -> Result<Option<Zeroizing<Vec<u8>>>, String> {
        Err(NONE.to_owned())
    }

    pub(crate) fn set(_user: &str, _key: &[u8]) -> Result<(), String> {
        Err(NONE.to_owned())
    }

    pub(crate) fn delete(_user: &str) -> Result<(), String> {
        Err(NONE.to_owned())
    }
}

pub(crate) use imp::{AVAILABLE, delete, get, set};
