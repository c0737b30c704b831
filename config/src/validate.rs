//! Checks shared by every kind of setting: ids, local domain names, stacks.

use kojibox_manifests::recipe::is_service_id;

use crate::error::{Error, Result};

/// The stacks a project can have.
pub const STACKS: &[&str] = &["php", "node", "static"];

/// The top-level domains a project's domain may use (the local CA signs only these).
pub const LOCAL_SUFFIXES: &[&str] = &[".test", ".localhost"];

/// A lowercase DNS name under a local top-level domain (`my-app.test`).
pub fn check_domain(domain: &str) -> Result<()> {
    let refuse = |why: String| invalid("domain", format!("`{domain}` {why}"));
    if domain.len() > 253 {
        return Err(refuse("is longer than 253 characters".into()));
    }
    for label in domain.split('.') {
        if label.is_empty() || label.len() > 63 {
            return Err(refuse(
                "is not a domain name: each dot-separated label has 1 to 63 characters".into(),
            ));
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            || label.starts_with('-')
            || label.ends_with('-')
        {
            return Err(refuse(format!(
                "is not a domain name: label `{label}` may hold only a-z, 0-9 and inner `-`"
            )));
        }
    }
    if !LOCAL_SUFFIXES
        .iter()
        .any(|s| domain.ends_with(s) && domain.len() > s.len())
    {
        return Err(refuse(format!(
            "is not a local name: use a name ending in {} (kojibox routes and certifies local \
             names only)",
            LOCAL_SUFFIXES.join(" or ")
        )));
    }
    Ok(())
}

/// An id (of a service, a project): 1 to 64 of a-z, 0-9, `-`, `_`, not starting with `-`.
pub fn check_id(field: &str, id: &str) -> Result<()> {
    if is_service_id(id) {
        Ok(())
    } else {
        Err(invalid(
            field,
            format!(
                "`{id}` is not an id: use 1 to 64 of a-z, 0-9, `-`, `_`, not starting with `-`"
            ),
        ))
    }
}

/// A refusal of `field`: `VALIDATION_FAILED`, "Invalid configuration", `field: why`.
pub(crate) fn invalid(field: &str, why: impl std::fmt::Display) -> Error {
    Error::Invalid {
        message: "Invalid configuration".into(),
        detail: format!("{field}: {why}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains() {
        for ok in ["my-app.test", "a.b.localhost", "x1.test"] {
            check_domain(ok).unwrap();
        }
        for bad in [
            "test",
            ".test",
            "my_app.test",
            "My-App.test",
            "-a.test",
            "a-.test",
            "a..test",
            "example.com",
            "a.test.",
        ] {
            let err = check_domain(bad).unwrap_err().to_string();
            assert!(err.contains("domain:"), "{bad}: {err}");
        }
    }
}
