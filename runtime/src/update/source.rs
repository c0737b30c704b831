//! Where updates come from: settings `updateSource`, a repository folder or an HTTP(S) URL.
//!
//! An HTTP source may carry credentials (`https://user:pass@host/repo`, or a token in its query,
//! `https://host/repo?token=T`): they are sent (basic auth, the query kept on every file's
//! address) but never shown. Every message names the source through [`Source`]'s `Display` or
//! [`redact`], which replace them with `***`.

use std::path::{Path, PathBuf};

use kojibox_home::{Home, Settings};

use crate::error::{Error, Result};

/// Where updates come from.
#[derive(Clone, PartialEq, Eq)]
pub enum Source {
    /// A repository folder.
    Folder(PathBuf),
    /// A repository served over HTTP(S) (the base URL, without a trailing `/`).
    Http(String),
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Folder(p) => write!(f, "{}", p.display()),
            Source::Http(u) => f.write_str(&redact(u)),
        }
    }
}

/// Redacting, like `Display`: a source's credentials never reach a log line.
impl std::fmt::Debug for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Folder(p) => f.debug_tuple("Folder").field(p).finish(),
            Source::Http(u) => f.debug_tuple("Http").field(&redact(u)).finish(),
        }
    }
}

impl Source {
    /// The address of `rel` (`channels/stable.json`) in an HTTP repository at `base`: the path
    /// goes below the base's, its query (an access token) is kept.
    pub(crate) fn url(base: &str, rel: &str) -> Result<reqwest::Url> {
        let mut url = reqwest::Url::parse(base).map_err(|e| not_a_url(base, &e))?;
        let path = format!("{}/{rel}", url.path().trim_end_matches('/'));
        url.set_path(&path);
        url.set_fragment(None);
        Ok(url)
    }
}

/// `url` with its user name, password and query values replaced by `***`
/// (`http://***@host/repo?token=***`), without a trailing `/`. Text that is not a URL is
/// returned as it is.
pub fn redact(url: &str) -> String {
    let shown = kojibox_home::settings::redact_url(url);
    match shown.strip_suffix('/') {
        Some(trimmed) if !trimmed.ends_with(':') && !trimmed.ends_with('/') => trimmed.to_owned(),
        _ => shown,
    }
}

/// [`redact`] for a parsed URL.
pub(crate) fn redact_url(url: &reqwest::Url) -> String {
    redact(url.as_str())
}

fn not_a_url(text: &str, e: &dyn std::fmt::Display) -> Error {
    Error::invalid(
        "Invalid update source",
        format!(
            "updateSource `{}` is not a valid address ({e}): give a folder path or an \
             http(s)://host/repo address",
            redact(text)
        ),
    )
}

/// The scheme of `text` when it is written as `scheme://…`.
fn scheme_of(text: &str) -> Option<&str> {
    let (scheme, _) = text.split_once("://")?;
    let mut chars = scheme.chars();
    let first = chars.next()?;
    (first.is_ascii_alphabetic()
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')))
    .then_some(scheme)
}

/// The configured source (settings `updateSource`).
pub fn source(home: &Home) -> Result<Source> {
    let settings = Settings::load(home)?;
    let Some(text) = settings.update_source.filter(|s| !s.trim().is_empty()) else {
        return Err(Error::UpdateFailed {
            detail: format!(
                "no update source is set: put \"updateSource\": \"/path/to/repo\" (a folder) or \
                 \"https://host/repo\" in {}",
                home.settings_file().display()
            ),
        });
    };
    let text = text.trim();
    match scheme_of(text).map(str::to_ascii_lowercase).as_deref() {
        Some("http" | "https") => {
            // Refused now, with the setting named, rather than at the first request.
            Source::url(text, "")?;
            return Ok(Source::Http(text.trim_end_matches('/').to_owned()));
        }
        Some(scheme) => {
            return Err(Error::invalid(
                "Unsupported update source",
                format!(
                    "updateSource `{}` uses the unsupported scheme `{scheme}:`: kojibox reads a \
                     repository from a folder (give its path, e.g. /mnt/usb/repo, without \
                     file://) or over http:// or https:// (set it in {})",
                    redact(text),
                    home.settings_file().display()
                ),
            ));
        }
        None => {}
    }
    let path = Path::new(text);
    Ok(Source::Folder(if path.is_absolute() {
        path.to_owned()
    } else {
        home.join(path)
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_and_query_values_are_redacted() {
        assert_eq!(
            redact("https://alice:s3cret@example.invalid:8443/repo?token=abc&x=1"),
            "https://***@example.invalid:8443/repo?token=***&x=***"
        );
        assert_eq!(
            redact("http://127.0.0.1:9/repo/"),
            "http://127.0.0.1:9/repo"
        );
        let source = Source::Http("http://u:p@127.0.0.1/r?token=t".into());
        for shown in [source.to_string(), format!("{source:?}")] {
            assert!(!shown.contains(":p@"), "{shown}");
            assert!(!shown.contains("=t"), "{shown}");
            assert!(shown.contains("***@127.0.0.1/r?token=***"), "{shown}");
        }
    }

    #[test]
    fn a_file_path_goes_below_the_base_and_keeps_its_query() {
        let url = Source::url("http://127.0.0.1:9/repo?token=t", "channels/stable.json").unwrap();
        assert_eq!(
            url.as_str(),
            "http://127.0.0.1:9/repo/channels/stable.json?token=t"
        );
        let url = Source::url("http://127.0.0.1:9", "bundles/a.kbx").unwrap();
        assert_eq!(url.as_str(), "http://127.0.0.1:9/bundles/a.kbx");
    }

    #[test]
    fn only_a_scheme_written_as_scheme_colon_slash_slash_is_one() {
        assert_eq!(scheme_of("file:///srv/repo"), Some("file"));
        assert_eq!(scheme_of("ftp://host/repo"), Some("ftp"));
        assert_eq!(scheme_of("/srv/repo"), None);
        assert_eq!(scheme_of("C:\\repo"), None);
        assert_eq!(scheme_of("repo"), None);
    }
}
