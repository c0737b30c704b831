//! `path` sources: local folders and files.
//!
//! A folder is the payload as it stands: returned in place, never copied or modified, which is
//! why it cannot carry a `sha256`. A file is hashed on an open handle, checked against the
//! recipe's `sha256` when there is one, and made into a payload from that same handle, exactly
//! like a download (unpacked if its name says archive, else copied alone, mode kept).

use std::fs::{self, File};
use std::io;
use std::path::PathBuf;

use indicatif::ProgressBar;

use super::archive::Artifact;
use super::cache::{Cache, sha256_hex};
use super::context::FetchContext;
use super::error::FetchError;

/// The payload folder and, for a file, its sha256.
pub(crate) fn resolve(
    written: &str,
    sha256: Option<&str>,
    strip: u32,
    ctx: &FetchContext,
    progress: &ProgressBar,
) -> Result<(PathBuf, Option<String>), FetchError> {
    // `join` keeps an absolute path as it is.
    let path = ctx.recipe_dir.join(written);
    let label = path.display().to_string();
    let meta = fs::metadata(&path).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => FetchError::PathMissing { path: path.clone() },
        _ => FetchError::io("read", &path, e),
    })?;
    if meta.is_dir() {
        if sha256.is_some() {
            return Err(FetchError::DigestForFolder { path });
        }
        if strip != 0 {
            return Err(FetchError::StripNotArchive { artifact: label });
        }
        return Ok((path, None));
    }

    let cache = Cache::open(&ctx.cache_dir)?;
    progress.set_message(format!("hashing {label}"));
    let mut file = File::open(&path).map_err(|e| FetchError::io("open", &path, e))?;
    let actual = sha256_hex(&mut file).map_err(|e| FetchError::io("read", &path, e))?;
    if let Some(expected) = sha256
        && expected != actual
    {
        return Err(FetchError::ChecksumMismatch {
            artifact: label,
            expected: format!("sha256:{expected}"),
            actual: format!("sha256:{actual}"),
        });
    }
    let name =
        path.file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| FetchError::InvalidSource {
                why: format!("{label}: the file name must be UTF-8"),
            })?;
    let artifact = Artifact {
        label: &label,
        name,
        sha256: &actual,
        strip,
        mode: file.metadata().map_or(0o644, |m| mode_of(&m)),
    };
    let root = artifact.materialize(&cache, &mut file)?;
    Ok((root, Some(actual)))
}

fn mode_of(meta: &fs::Metadata) -> u32 {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        meta.permissions().mode()
    }
    #[cfg(not(unix))]
    {
        let _ = meta;
        0o644
    }
}
