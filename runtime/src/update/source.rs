//! Where updates come from: settings `updateSource`, a repository folder or an HTTP(S) URL.

use std::path::{Path, PathBuf};

use kojibox_home::{Home, Settings};

use crate::error::{Error, Result};

/// Where updates come from.
#[derive(Debug, Clone, PartialEq, Eq)]
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
            Source::Http(u) => f.write_str(u),
        }
    }
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
    if text.starts_with("http://") || text.starts_with("https://") {
        return Ok(Source::Http(text.trim_end_matches('/').to_owned()));
    }
    let path = Path::new(&text);
    Ok(Source::Folder(if path.is_absolute() {
        path.to_owned()
    } else {
        home.join(path)
    }))
}
