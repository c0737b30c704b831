//! The secret store's passphrase: from `KOJIBOX_PASSPHRASE`, a silent prompt, or standard input.

use std::io::IsTerminal;

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

/// The passphrase of a protected store: `KOJIBOX_PASSPHRASE`, else a prompt on a terminal,
/// else none.
pub(crate) fn passphrase_for(home: &Home) -> Result<Option<SecretValue>> {
    if !SecretStore::is_locked(home) {
        return Ok(None);
    }
    if let Ok(value) = std::env::var("KOJIBOX_PASSPHRASE") {
        return Ok(Some(SecretValue::new(value)));
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
