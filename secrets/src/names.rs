//! Secret key names, and the scopes a `${secret.<name>}` placeholder looks in.

use kojibox_manifests::model::SecretScope;

use crate::error::{Error, Result};

const MAX_KEY_LEN: usize = 128;
/// Every scope, in the order they are listed.
pub(crate) const SCOPES: [SecretScope; 3] =
    [SecretScope::App, SecretScope::Project, SecretScope::Service];
/// `${secret.<key>}` looks in these scopes, in this order.
pub(crate) const RESOLVE_ORDER: [SecretScope; 3] =
    [SecretScope::Service, SecretScope::Project, SecretScope::App];

/// Checks a secret key name: 1 to 128 characters of `A-Z a-z 0-9 _ . -`, not starting with
/// `.`, nor with `app.`, `project.` or `service.` (those name a scope in
/// `${secret.<scope>.<key>}`). An invalid name is [`Error::Invalid`] naming the field `key`.
pub fn check_key(key: &str) -> Result<()> {
    let invalid = |detail: String| Error::invalid("Invalid secret key", detail);
    if key.is_empty() {
        return Err(invalid("`key` must not be empty".into()));
    }
    if let Some(c) = key
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')))
    {
        return Err(invalid(format!(
            "`key` may hold only A-Z a-z 0-9 _ . - (found {c:?})"
        )));
    }
    if key.len() > MAX_KEY_LEN {
        return Err(invalid(format!(
            "`key` is {} characters long, more than {MAX_KEY_LEN}",
            key.len()
        )));
    }
    if key.starts_with('.') {
        return Err(invalid("`key` must not start with `.`".into()));
    }
    if let Some((scope, _)) = split_scope(key) {
        let scope = scope.as_str();
        return Err(invalid(format!(
            "`key` must not start with `{scope}.`: `${{secret.{scope}.<key>}}` names the scope"
        )));
    }
    Ok(())
}

/// `("app" | "project" | "service") "." rest` -> the scope and the rest.
pub(crate) fn split_scope(name: &str) -> Option<(SecretScope, &str)> {
    let (head, rest) = name.split_once('.')?;
    SCOPES
        .into_iter()
        .find(|&s| s.as_str() == head)
        .map(|s| (s, rest))
}
