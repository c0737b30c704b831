//! The commands of `kojibox`, one file per family. Only the binary prints; everything here turns
//! the library's values into lines for a person (or JSON for a script) and exit codes.

pub(crate) mod backend;
pub(crate) mod config;
pub(crate) mod daemon;
pub(crate) mod dashboard;
pub(crate) mod diagnose;
pub(crate) mod events;
pub(crate) mod exec;
pub(crate) mod install;
pub(crate) mod logs;
pub(crate) mod metrics;
pub(crate) mod passphrase;
pub(crate) mod projects;
pub(crate) mod rpc;
pub(crate) mod secrets;
pub(crate) mod service;
pub(crate) mod update;
pub(crate) mod verify;

use anyhow::{Result, bail};
use kojibox_home::{EditKind, Home, Lock, LockName};

pub(crate) fn print_json<T: serde::Serialize>(value: &T) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// Held while a command reads, changes and writes back one object, so two such commands on
/// the same object do not lose each other's change (the last write wins whole, never half).
pub(crate) fn edit_lock(home: &Home, kind: EditKind, id: &str) -> Result<Option<Lock>> {
    if !kojibox_manifests::recipe::is_service_id(id) {
        return Ok(None); // refused by validation, with a message naming the id
    }
    Ok(Some(home.lock_wait(LockName::Edit(kind, id))?))
}

/// Splits `KEY=VALUE` arguments.
pub(crate) fn pairs(items: &[String], flag: &str, form: &str) -> Result<Vec<(String, String)>> {
    items
        .iter()
        .map(|item| match item.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
            _ => bail!("{flag} {item}: expected {form}"),
        })
        .collect()
}
