//! The daemon's (or one CLI command's) access to the secret store: opened at first use, with
//! the passphrase given at start when the store has one, then kept open.

use std::sync::{Arc, Mutex};

use kojibox_home::Home;

use crate::error::Result;
use crate::store::SecretStore;
use crate::value::SecretValue;

/// The secret store of a home, opened lazily.
pub struct Vault {
    home: Home,
    passphrase: Option<SecretValue>,
    store: Mutex<Option<Arc<SecretStore>>>,
}

impl std::fmt::Debug for Vault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vault")
            .field("home", &self.home)
            .field("passphrase", &self.passphrase.as_ref().map(|_| "<given>"))
            .finish_non_exhaustive()
    }
}

impl Vault {
    /// The vault of `home`; `passphrase` unlocks a passphrase-protected store.
    pub fn new(home: Home, passphrase: Option<SecretValue>) -> Vault {
        Vault {
            home,
            passphrase,
            store: Mutex::new(None),
        }
    }

    /// The open store (opening it, and creating its key, at first use). Blocking.
    pub fn store(&self) -> Result<Arc<SecretStore>> {
        let mut slot = self
            .store
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(store) = slot.as_ref() {
            return Ok(Arc::clone(store));
        }
        let store = Arc::new(SecretStore::open(&self.home, self.passphrase.as_ref())?);
        *slot = Some(Arc::clone(&store));
        Ok(store)
    }

    /// The value of `${secret.<name>}` (see [`SecretStore::resolve`]). Blocking.
    pub fn resolve(&self, name: &str) -> Result<Option<String>> {
        Ok(self.store()?.resolve(name)?.map(|v| v.expose().to_owned()))
    }
}
