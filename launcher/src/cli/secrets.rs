//! `kojibox secrets set|get|remove|passphrase`.

use std::io::{IsTerminal, Read};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use kojibox_home::Home;
use kojibox_manifests::api::{SecretSetParams, methods};
use kojibox_manifests::model::{SecretRef, SecretScope};
use kojibox_secrets::SecretValue;

use super::backend::Backend;
use super::passphrase::{open_store, passphrase_from_stdin, prompt};

/// `kojibox secrets ...`.
#[derive(Subcommand)]
pub(crate) enum SecretsCommand {
    /// Store a secret. The value is read from standard input (all of it, one trailing newline
    /// removed) or, on a terminal, from a prompt that does not echo; never from the command line.
    Set {
        /// The secret's key (e.g. db-password).
        key: String,
        /// Its scope.
        #[arg(long, value_enum, default_value = "app")]
        scope: Scope,
    },
    /// Print a secret's value.
    Get {
        /// The secret's key.
        key: String,
        /// Its scope.
        #[arg(long, value_enum, default_value = "app")]
        scope: Scope,
    },
    /// Delete a secret from its scope. A service whose settings still name it
    /// (`${secret.KEY}`) will not start until it is set again.
    Remove {
        /// The secret's key.
        key: String,
        /// Its scope (the one it was set with).
        #[arg(long, value_enum, default_value = "app")]
        scope: Scope,
    },
    /// Protect the store's key with a passphrase (for a stick that may be lost), change it, or
    /// remove it. The daemon then needs the passphrase to start services that use secrets:
    /// `kojibox up` asks for it; `serve` takes --passphrase-stdin or KOJIBOX_PASSPHRASE.
    Passphrase {
        /// Remove the passphrase (the key goes back to a 0600 key file).
        #[arg(long, conflicts_with = "stdin")]
        remove: bool,
        /// Read the new passphrase from the first line of standard input instead of a prompt
        /// (the current one, if any, comes from KOJIBOX_PASSPHRASE or a prompt).
        #[arg(long)]
        stdin: bool,
    },
}

/// Secret scopes, for clap.
#[derive(Clone, Copy, clap::ValueEnum)]
pub(crate) enum Scope {
    /// Application-wide.
    App,
    /// Projects'.
    Project,
    /// Services'.
    Service,
}

impl From<Scope> for SecretScope {
    fn from(scope: Scope) -> SecretScope {
        match scope {
            Scope::App => SecretScope::App,
            Scope::Project => SecretScope::Project,
            Scope::Service => SecretScope::Service,
        }
    }
}

/// `kojibox secrets ...`.
pub(crate) fn secrets(home: &Home, command: SecretsCommand) -> Result<ExitCode> {
    match command {
        SecretsCommand::Set { key, scope } => {
            let backend = Backend::open(home);
            let value = read_secret(&format!("value of {key}: "))?;
            backend.call::<methods::SecretsSet>(&SecretSetParams {
                key: key.clone(),
                scope: scope.into(),
                value: value.expose().to_owned(),
            })?;
            backend.saved(&format!("secret {key}"));
        }
        SecretsCommand::Get { key, scope } => {
            let value =
                SecretValue::new(Backend::open(home).call::<methods::SecretsGet>(&SecretRef {
                    key,
                    scope: scope.into(),
                })?);
            println!("{}", value.expose());
        }
        SecretsCommand::Remove { key, scope } => {
            let backend = Backend::open(home);
            let scope = SecretScope::from(scope);
            match backend.call::<methods::SecretsRemove>(&SecretRef {
                key: key.clone(),
                scope,
            }) {
                Ok(_) => backend.removed(&format!("secret {key} (scope {})", scope.as_str())),
                Err(e) if e.is_not_found() => bail!(
                    "no secret `{key}` in scope {} (give --scope app, project or service, the \
                     one it was set with); nothing removed",
                    scope.as_str()
                ),
                Err(e) => return Err(e.into()),
            }
        }
        SecretsCommand::Passphrase { remove, stdin } => {
            let store = open_store(home)?;
            if remove {
                store.set_passphrase(None)?;
                println!("removed the passphrase: the store's key is in a 0600 key file again");
            } else {
                let first = if stdin {
                    passphrase_from_stdin()?
                } else {
                    let first = prompt("new passphrase: ")?;
                    let again = prompt("again: ")?;
                    if first.expose() != again.expose() {
                        bail!("the two passphrases differ; nothing changed");
                    }
                    first
                };
                if first.expose().is_empty() {
                    bail!("an empty passphrase protects nothing; nothing changed");
                }
                store.set_passphrase(Some(&first))?;
                println!(
                    "the secret store now needs this passphrase: `kojibox up` asks for it; \
                     `kojibox serve` takes --passphrase-stdin or KOJIBOX_PASSPHRASE"
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// A secret value from a prompt (terminal) or all of standard input (one trailing newline
/// removed).
fn read_secret(label: &str) -> Result<SecretValue> {
    if std::io::stdin().is_terminal() {
        return prompt(label);
    }
    let mut value = String::new();
    std::io::stdin()
        .read_to_string(&mut value)
        .context("could not read the value from standard input")?;
    if value.ends_with('\n') {
        value.pop();
        if value.ends_with('\r') {
            value.pop();
        }
    }
    if value.is_empty() {
        bail!("the value on standard input is empty; nothing stored");
    }
    Ok(SecretValue::new(value))
}
