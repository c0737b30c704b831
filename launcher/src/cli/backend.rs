//! Through the daemon, else on the files: one [`Backend::call`] for every `config.*` and
//! `secrets.*` method. The daemon arm is the API client; the files arm dispatches the same
//! request in-process through [`launcher::local::dispatch`], the function the API itself
//! serves those methods with, so the two paths cannot drift apart.

use kojibox_home::Home;
use kojibox_manifests::api::{IdParams, Method, Request, methods};
use kojibox_manifests::model::ProjectConfig;
use kojibox_secrets::Vault;
use launcher::client::{Client, ClientError};

use super::passphrase::passphrase_for;

/// Where the settings are read and written.
pub(crate) enum Backend {
    /// The running daemon (so the dashboard hears `config:changed`).
    Daemon(Client),
    /// The home's files (no daemon runs).
    Files(Home),
}

/// A call that failed, through either arm.
#[derive(Debug, thiserror::Error)]
pub(crate) enum BackendError {
    /// The daemon refused it, or could not be reached.
    #[error(transparent)]
    Daemon(#[from] ClientError),
    /// Refused on the files.
    #[error(transparent)]
    Files(#[from] launcher::Error),
    /// Anything else (the request could not be made, the passphrase could not be read).
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

impl BackendError {
    /// Whether the answer was `NOT_FOUND`.
    pub(crate) fn is_not_found(&self) -> bool {
        match self {
            BackendError::Daemon(e) => e.is_not_found(),
            BackendError::Files(e) => e.is_not_found(),
            BackendError::Other(_) => false,
        }
    }
}

impl Backend {
    /// The daemon when one answers, else the files.
    pub(crate) fn open(home: &Home) -> Backend {
        match Client::connect(home) {
            Ok(client) => Backend::Daemon(client),
            Err(_) => Backend::Files(home.clone()),
        }
    }

    /// Calls `M` with `params`.
    pub(crate) fn call<M: Method>(&self, params: &M::Params) -> Result<M::Output, BackendError> {
        match self {
            Backend::Daemon(client) => Ok(client.call::<M>(params)?),
            Backend::Files(home) => {
                let envelope = serde_json::json!({ "method": M::NAME, "params": params });
                let bytes = serde_json::to_vec(&envelope).map_err(anyhow::Error::from)?;
                let request = Request::from_slice(&bytes).map_err(anyhow::Error::from)?;
                // Only a secret needs the store open, and so its passphrase.
                let passphrase = if M::NAME.starts_with("secrets.") {
                    passphrase_for(home)?
                } else {
                    None
                };
                let vault = Vault::new(home.clone(), passphrase);
                let value = launcher::local::dispatch(home, &vault, request)?;
                Ok(serde_json::from_value(value).map_err(anyhow::Error::from)?)
            }
        }
    }

    /// A project, or `None` when there is no such project.
    pub(crate) fn get_project(&self, id: &str) -> Result<Option<ProjectConfig>, BackendError> {
        match self.call::<methods::ConfigGetProject>(&IdParams { id: id.to_owned() }) {
            Ok(project) => Ok(Some(project)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Says where a change was saved.
    pub(crate) fn saved(&self, what: &str) {
        self.done("saved", what);
    }

    /// Says where something was removed.
    pub(crate) fn removed(&self, what: &str) {
        self.done("removed", what);
    }

    fn done(&self, verb: &str, what: &str) {
        match self {
            Backend::Daemon(c) => println!("{verb} {what} (daemon pid {})", c.pid()),
            Backend::Files(h) => {
                let on = if verb == "removed" { "from" } else { "in" };
                println!("{verb} {what} {on} {} (no daemon runs)", h.root().display());
            }
        }
    }
}
