//! The secret store's passphrase: from `KOJIBOX_PASSPHRASE`, a silent prompt, or standard input.

use std::io::IsTerminal;
use std::sync::OnceLock;

use anyhow::{Context, Result};
use kojibox_home::Home;
use kojibox_secrets::{SecretStore, SecretValue};

/// Opens the store of `home` from this process, asking for the passphrase when it has one.
pub(crate) fn open_store(home: &Home) -> Result<SecretStore> {
    let passphrase = if SecretStore::is_locked(home) {
        passphrase_for(home)?
    } else {
        None
    };
    Ok(SecretStore::open(home, passphrase.as_ref())?)
}

/// The variable a passphrase may come in.
const VARIABLE: &str = "KOJIBOX_PASSPHRASE";

/// `KOJIBOX_PASSPHRASE`, taken out of the environment by [`take_from_environment`].
static FROM_ENVIRONMENT: OnceLock<Option<SecretValue>> = OnceLock::new();

/// Reads `KOJIBOX_PASSPHRASE` once and removes it from this process's environment, so that no
/// child (the watchdog, a service, a restarted daemon) inherits it. Must run first thing in
/// `main`, before any thread exists.
///
/// The kernel's copy of the initial environment (`/proc/<pid>/environ`) still holds it; that
/// file is readable by root only once the process is not dumpable
/// (`kojibox_proc::limits::forbid_core_dumps`, called just before).
pub(crate) fn take_from_environment() {
    let value = std::env::var(VARIABLE).ok().map(SecretValue::new);
    if value.is_some() {
        // SAFETY: called at the start of `main`, while this process has one thread: nothing can
        // read the environment concurrently.
        #[allow(unsafe_code)]
        unsafe {
            std::env::remove_var(VARIABLE);
        }
    }
    let _ = FROM_ENVIRONMENT.set(value);
}

/// The passphrase of a protected store: `KOJIBOX_PASSPHRASE`, else a prompt on a terminal,
/// else none.
pub(crate) fn passphrase_for(home: &Home) -> Result<Option<SecretValue>> {
    if !SecretStore::is_locked(home) {
        return Ok(None);
    }
    if let Some(Some(value)) = FROM_ENVIRONMENT.get() {
        return Ok(Some(value.clone()));
    }
    if std::io::stdin().is_terminal() {
        return Ok(Some(prompt("passphrase of the secret store: ")?));
    }
    Ok(None)
}

/// A passphrase from the first line of standard input (its line ending removed).
pub(crate) fn passphrase_from_stdin() -> Result<SecretValue> {
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .context("could not read the passphrase from standard input")?;
    Ok(SecretValue::new(
        line.trim_end_matches(['\n', '\r']).to_owned(),
    ))
}

pub(crate) fn prompt(label: &str) -> Result<SecretValue> {
    Ok(SecretValue::new(
        rpassword::prompt_password(label).context("could not read from the terminal")?,
    ))
}
