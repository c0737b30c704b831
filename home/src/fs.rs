//! Durable file writes: write a temporary file, fsync it, rename it over the target, fsync the
//! folder. A reader sees the old file or the new one, never a torn one, even after a crash.

use std::fs::File;
use std::io::Write;
use std::path::Path;

use crate::error::{Error, Result};

/// Writes `bytes` to `path` atomically and durably, creating the parent folder if needed.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(Error::io("create folder", dir))?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".kojibox-")
        .suffix(".tmp")
        .tempfile_in(dir)
        .map_err(Error::io("create a temporary file in", dir))?;
    tmp.write_all(bytes)
        .map_err(Error::io("write", tmp.path()))?;
    tmp.as_file()
        .sync_all()
        .map_err(Error::io("sync", tmp.path()))?;
    tmp.persist(path).map_err(|e| Error::Io {
        action: "replace",
        path: path.to_owned(),
        source: e.error,
    })?;
    sync_dir(dir)
}

/// Writes a value as pretty JSON, atomically.
pub fn write_json<T: serde::Serialize>(path: &Path, value: &T) -> Result<()> {
    let mut bytes = serde_json::to_vec_pretty(value).map_err(|e| Error::Io {
        action: "serialize",
        path: path.to_owned(),
        source: e.into(),
    })?;
    bytes.push(b'\n');
    write_atomic(path, &bytes)
}

/// Reads a JSON file; `Ok(None)` when it does not exist; a corrupt file is an error naming it.
pub fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Option<T>> {
    match std::fs::read(path) {
        Ok(bytes) => kojibox_manifests::from_json_slice(&bytes)
            .map(Some)
            .map_err(|e| Error::Corrupt {
                path: path.to_owned(),
                detail: e.to_string(),
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io("read", path)(e)),
    }
}

/// [`read_json`] for a file the user owns (configuration): a corrupt file is copied aside once
/// (`<name>.corrupt-<hash>`, beside it) before the error, which names both, so that a later
/// write (which replaces the file) loses nothing. Never a silent reset.
pub fn read_config<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Option<T>> {
    match read_json(path) {
        Err(Error::Corrupt { path, detail }) => {
            let kept = keep_aside(&path);
            let detail = match kept {
                Ok(copy) => format!(
                    "{detail} (a copy is kept as {}; fix the file or set the value again)",
                    copy.display()
                ),
                Err(e) => format!("{detail} (could not keep a copy: {e})"),
            };
            Err(Error::Corrupt { path, detail })
        }
        other => other,
    }
}

/// Copies `path` to `<path>.corrupt-<first 8 hex of its sha256>` unless that copy exists.
fn keep_aside(path: &Path) -> std::io::Result<std::path::PathBuf> {
    use sha2::Digest;
    let bytes = std::fs::read(path)?;
    let hash = hex::encode(&sha2::Sha256::digest(&bytes)[..4]);
    let mut name = path.file_name().unwrap_or_default().to_owned();
    name.push(format!(".corrupt-{hash}"));
    let copy = path.with_file_name(name);
    if !copy.exists() {
        write_atomic(&copy, &bytes).map_err(std::io::Error::other)?;
    }
    Ok(copy)
}

/// Removes temporary files a killed writer left in `dir` (`.kojibox-*.tmp` older than a
/// minute, so a live writer's is left alone), returning how many.
pub fn remove_stale_temporaries(dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    let stale = |e: &std::fs::DirEntry| {
        e.metadata()
            .and_then(|m| m.modified())
            .is_ok_and(|t| t.elapsed().unwrap_or_default() > std::time::Duration::from_secs(60))
    };
    entries
        .flatten()
        .filter(|e| {
            let name = e.file_name();
            let name = name.to_string_lossy();
            name.starts_with(".kojibox-") && name.ends_with(".tmp") && stale(e)
        })
        .filter(|e| std::fs::remove_file(e.path()).is_ok())
        .count()
}

/// The sha256 (lowercase hex) and length of everything `reader` gives, read through `buf`.
pub fn sha256_of(reader: &mut dyn std::io::Read, buf: &mut [u8]) -> std::io::Result<(String, u64)> {
    use sha2::Digest;
    let mut hasher = sha2::Sha256::new();
    let mut size = 0u64;
    loop {
        let n = reader.read(buf)?;
        if n == 0 {
            return Ok((hex::encode(hasher.finalize()), size));
        }
        hasher.update(&buf[..n]);
        size += n as u64;
    }
}

/// fsyncs a folder so renames inside it are durable.
pub fn sync_dir(dir: &Path) -> Result<()> {
    #[cfg(unix)]
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(Error::io("sync folder", dir))?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}
