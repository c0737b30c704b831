//! Downloading an update bundle into `app/cache/updates/`: resuming a `.part`, never taking more
//! bytes than the signed index declares, and checking the signed sha256 before the file gets its
//! final name.

use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use kojibox_home::Home;
use kojibox_manifests::channel::ChannelIndex;

use super::http::{self, Bounds};
use super::source::Source;
use crate::error::{Error, Result};

/// Downloads the bundle an index names into `app/cache/updates/`, resuming a partial download,
/// never taking more bytes than declared, and checking the signed sha256.
pub fn download(
    home: &Home,
    source: &Source,
    index: &ChannelIndex,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<PathBuf> {
    download_until(home, source, index, progress, &|| false)
}

/// [`download`], stopping between two reads once `cancelled` says so (the daemon is stopping):
/// what came down so far stays in the `.part` file, and the next download resumes from it.
pub fn download_until(
    home: &Home,
    source: &Source,
    index: &ChannelIndex,
    progress: &mut dyn FnMut(u64, u64),
    cancelled: &dyn Fn() -> bool,
) -> Result<PathBuf> {
    let invalid = |why: String| Error::UpdateSignatureInvalid {
        detail: format!(
            "Signature verification failed for version {}: {why}",
            index.version
        ),
    };
    if index.bundle.contains("..") || index.bundle.starts_with('/') {
        return Err(invalid(format!(
            "the index names `{}`, outside the repository",
            index.bundle
        )));
    }
    let dir = home.update_cache();
    kojibox_home::fs::create_dir(home, &dir)?;
    let done = home.update_download(&index.version);
    let part = home.update_partial(&index.version);
    if done.exists() && hash(&done)? == (index.sha256.clone(), index.size) {
        return Ok(done);
    }
    let mut offset = std::fs::metadata(&part).map_or(0, |m| m.len());
    if offset > index.size {
        offset = 0;
    }
    if offset == index.size {
        // All there already (killed before the rename): only the check is left.
        return finish(&part, &done, index).map_err(invalid);
    }
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(false)
        .write(true)
        .truncate(false)
        .open(&part)
        .map_err(Error::io("open", &part))?;
    file.set_len(offset).map_err(Error::io("write", &part))?;
    file.seek(std::io::SeekFrom::Start(offset))
        .map_err(Error::io("write", &part))?;
    let mut reader = match source {
        Source::Folder(repo) => {
            let path = repo.join(&index.bundle);
            let mut f = std::fs::File::open(&path).map_err(|e| Error::UpdateFailed {
                detail: format!("could not read {}: {e}", path.display()),
            })?;
            f.seek(std::io::SeekFrom::Start(offset))
                .map_err(Error::io("read", &path))?;
            Reader::Folder(f, path)
        }
        Source::Http(base) => {
            let url = Source::url(base, &index.bundle)?;
            let mut fetch = http::get(
                &url,
                offset,
                Bounds::Download {
                    expected: index.size - offset,
                },
            )?;
            let response = fetch.response();
            let resumed = response.status() == reqwest::StatusCode::PARTIAL_CONTENT
                && response
                    .headers()
                    .get(reqwest::header::CONTENT_RANGE)
                    .and_then(|v| v.to_str().ok())
                    .is_some_and(|v| v.starts_with(&format!("bytes {offset}-")));
            if offset > 0 && !resumed {
                // The server ignored the range and sends the whole: start over with it.
                offset = 0;
                fetch.expect(index.size);
                file.set_len(0).map_err(Error::io("write", &part))?;
                file.seek(std::io::SeekFrom::Start(0))
                    .map_err(Error::io("write", &part))?;
            }
            Reader::Http(Box::new(fetch))
        }
    };
    let mut buf = vec![0u8; 1 << 20];
    let mut have = offset;
    loop {
        let n = match &mut reader {
            Reader::Folder(f, path) => f.read(&mut buf).map_err(Error::io("read", path.clone()))?,
            Reader::Http(fetch) => fetch.read(&mut buf)?,
        };
        if n == 0 {
            break;
        }
        have += n as u64;
        if have > index.size {
            drop(file);
            let _ = std::fs::remove_file(&part);
            return Err(invalid(format!(
                "{} is larger than the {} bytes its signed index declares",
                index.bundle, index.size
            )));
        }
        file.write_all(&buf[..n])
            .map_err(Error::io("write", &part))?;
        progress(have, index.size);
        if cancelled() {
            file.sync_all().map_err(Error::io("sync", &part))?;
            return Err(Error::UpdateFailed {
                detail: format!(
                    "the update to {} was cancelled: kojibox is stopping; the {have} of {} bytes \
                     downloaded are kept, and the next `kojibox update apply` resumes from them",
                    index.version, index.size
                ),
            });
        }
    }
    file.sync_all().map_err(Error::io("sync", &part))?;
    drop(file);
    finish(&part, &done, index).map_err(invalid)
}

/// Where the bundle's bytes come from.
enum Reader {
    /// A repository folder's file (and its path, for messages).
    Folder(std::fs::File, PathBuf),
    /// An HTTP answer, read under the download's bounds.
    Http(Box<http::Fetch>),
}

/// Checks a complete download against the signed index and gives it its final name; a
/// mismatch removes it (the next try starts over).
fn finish(part: &Path, done: &Path, index: &ChannelIndex) -> std::result::Result<PathBuf, String> {
    let (sha256, size) = hash(part).map_err(|e| e.to_string())?;
    if size != index.size || sha256 != index.sha256 {
        let _ = std::fs::remove_file(part);
        return Err(format!(
            "the bundle's sha256 is {sha256} ({size} bytes); its signed index says {} ({} bytes)",
            index.sha256, index.size
        ));
    }
    std::fs::rename(part, done).map_err(|e| format!("could not rename {}: {e}", part.display()))?;
    Ok(done.to_owned())
}

/// The sha256 (hex) and size of a file.
pub(crate) fn hash(path: &Path) -> Result<(String, u64)> {
    let mut file = std::fs::File::open(path).map_err(Error::io("open", path))?;
    kojibox_home::fs::sha256_of(&mut file, &mut vec![0u8; 1 << 20]).map_err(Error::io("read", path))
}
