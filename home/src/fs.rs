//! Writes into the home: durable, private, and never through a link planted in it.
//!
//! Every function that writes takes the [`Home`] the path is in, so that it can (on Unix):
//!
//! - refuse a home someone else could change ([`Home::check_permissions`], as ssh's
//!   `StrictModes`);
//! - open every folder below the home's root one name at a time without following links
//!   (`O_NOFOLLOW`, and `openat2` with `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS` on Linux): a
//!   planted link is [`Error::Planted`] naming it, never followed and never removed;
//! - create missing folders with the layout's mode ([`crate::perms::dir_mode`]: 0700 for
//!   `app/state`, `app/config`, `app/keys`, `app/secrets`, `app/logs`, 0755 otherwise) and files
//!   with 0600, exactly, whatever the umask.
//!
//! [`write_atomic`] writes a temporary file, fsyncs it, renames it over the target and fsyncs
//! the folder: a reader sees the old file or the new one, never a torn one, even after a crash.

#[cfg(unix)]
mod beneath;

use std::path::Path;

use crate::error::{Error, Result};
use crate::layout::Home;

/// Writes `bytes` to `path` (inside `home`) atomically and durably, creating its folders if
/// needed. The file is 0600; a link anywhere below the home's root is refused.
pub fn write_atomic(home: &Home, path: &Path, bytes: &[u8]) -> Result<()> {
    #[cfg(unix)]
    return beneath::write_atomic(home, path, bytes);
    #[cfg(not(unix))]
    {
        use std::io::Write;
        let dir = path.parent().unwrap_or(Path::new("."));
        create_dir(home, dir)?;
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
}

/// Creates the folder `dir` inside `home` and the missing folders above it (up to the home,
/// which is created too), each with its layout mode whatever the umask; an existing folder of
/// the current user's that is looser than its mode is tightened. A link below the home's root
/// is refused, as is a home [`Home::check_permissions`] refuses.
pub fn create_dir(home: &Home, dir: &Path) -> Result<()> {
    #[cfg(unix)]
    return beneath::open_dir(home, dir, true).map(drop);
    #[cfg(not(unix))]
    {
        refuse_links(home, dir)?;
        std::fs::create_dir_all(dir).map_err(Error::io("create folder", dir))
    }
}

/// Opens `path` inside `home` for appending (a log), creating it 0600 (its folders as
/// [`create_dir`] does): never through a link, a hard link or anything but a regular file; an
/// existing file looser than 0600 is tightened.
pub fn open_append_private(home: &Home, path: &Path) -> Result<std::fs::File> {
    #[cfg(unix)]
    return beneath::open_file(
        home,
        path,
        rustix::fs::OFlags::WRONLY | rustix::fs::OFlags::APPEND,
    );
    #[cfg(not(unix))]
    {
        create_dir(home, path.parent().unwrap_or(Path::new(".")))?;
        refuse_links(home, path)?;
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(Error::io("open", path))
    }
}

/// Opens `path` inside `home` for reading and writing without truncating it (a lock file),
/// as [`open_append_private`] does.
pub(crate) fn open_private(home: &Home, path: &Path) -> Result<std::fs::File> {
    #[cfg(unix)]
    return beneath::open_file(home, path, rustix::fs::OFlags::RDWR);
    #[cfg(not(unix))]
    {
        create_dir(home, path.parent().unwrap_or(Path::new(".")))?;
        refuse_links(home, path)?;
        std::fs::File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .map_err(Error::io("open", path))
    }
}

/// Without `O_NOFOLLOW`: refuses a link at `path` or at any folder between the home and it.
#[cfg(not(unix))]
fn refuse_links(home: &Home, path: &Path) -> Result<()> {
    let Ok(rel) = path.strip_prefix(home.root()) else {
        return Err(Error::invalid(
            "Path outside the home",
            format!(
                "{} is not inside the home {}",
                path.display(),
                home.root().display()
            ),
        ));
    };
    let mut at = home.root().to_owned();
    for part in rel.components() {
        at.push(part);
        if std::fs::symlink_metadata(&at).is_ok_and(|m| m.file_type().is_symlink()) {
            return Err(Error::Planted {
                path: at,
                what: "a symbolic link",
            });
        }
    }
    Ok(())
}

/// Writes a value as pretty JSON, atomically (see [`write_atomic`]).
pub fn write_json<T: serde::Serialize>(home: &Home, path: &Path, value: &T) -> Result<()> {
    let mut bytes = serde_json::to_vec_pretty(value).map_err(|e| Error::Io {
        action: "serialize",
        path: path.to_owned(),
        source: e.into(),
    })?;
    bytes.push(b'\n');
    write_atomic(home, path, &bytes)
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
pub fn read_config<T: serde::de::DeserializeOwned>(home: &Home, path: &Path) -> Result<Option<T>> {
    match read_json(path) {
        Err(Error::Corrupt { path, detail }) => {
            let kept = keep_aside(home, &path);
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
fn keep_aside(home: &Home, path: &Path) -> std::io::Result<std::path::PathBuf> {
    use sha2::Digest;
    let bytes = std::fs::read(path)?;
    let hash = hex::encode(&sha2::Sha256::digest(&bytes)[..4]);
    let mut name = path.file_name().unwrap_or_default().to_owned();
    name.push(format!(".corrupt-{hash}"));
    let copy = path.with_file_name(name);
    if !copy.exists() {
        write_atomic(home, &copy, &bytes).map_err(std::io::Error::other)?;
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
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(Error::io("sync folder", dir))?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// The name of rotated file number `n` of `path`: `svc.jsonl` → `svc.1.jsonl`, `daemon.log` →
/// `daemon.1.log`.
pub fn rotated(path: &Path, n: u32) -> std::path::PathBuf {
    match path.extension() {
        Some(ext) => path.with_extension(format!("{n}.{}", ext.to_string_lossy())),
        None => path.with_extension(n.to_string()),
    }
}

/// Rotates a log file: `path` becomes rotated file 1, file 1 becomes 2, and so on; the oldest
/// beyond `keep` is removed. Missing files are skipped; the caller opens a new `path`.
pub fn rotate(path: &Path, keep: u32) {
    let _ = std::fs::remove_file(rotated(path, keep));
    for n in (1..keep).rev() {
        let _ = std::fs::rename(rotated(path, n), rotated(path, n + 1));
    }
    let _ = std::fs::rename(path, rotated(path, 1));
}

#[cfg(test)]
#[cfg(unix)]
mod tests {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    use super::*;

    fn mode(path: &Path) -> u32 {
        std::fs::symlink_metadata(path)
            .unwrap()
            .permissions()
            .mode()
            & 0o7777
    }

    #[test]
    fn loosened_folders_and_logs_of_ours_are_tightened() {
        let dir = tempfile::tempdir().unwrap();
        let home = Home::at(dir.path()).unwrap();
        drop(open_append_private(&home, &home.service_log("svc")).unwrap());
        std::fs::set_permissions(home.logs_dir(), std::fs::Permissions::from_mode(0o777)).unwrap();
        std::fs::set_permissions(
            home.service_log("svc"),
            std::fs::Permissions::from_mode(0o644),
        )
        .unwrap();
        drop(open_append_private(&home, &home.service_log("svc")).unwrap());
        assert_eq!(mode(&home.logs_dir()), 0o700);
        assert_eq!(mode(&home.service_log("svc")), 0o600);
    }

    #[test]
    fn a_link_planted_in_the_home_is_refused_and_its_target_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let home = Home::at(&dir.path().join("home")).unwrap();
        let elsewhere = dir.path().join("elsewhere");
        std::fs::create_dir(&elsewhere).unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "untouched").unwrap();
        create_dir(&home, &home.config()).unwrap();
        create_dir(&home, &home.logs_dir()).unwrap();
        // A folder link below the root, and file links at the end.
        std::os::unix::fs::symlink(&elsewhere, home.projects()).unwrap();
        std::os::unix::fs::symlink(&victim, home.service_log("svc")).unwrap();
        std::os::unix::fs::symlink(&victim, home.app_config()).unwrap();
        let planted = |e: Error, path: &Path| match e {
            Error::Planted { path: p, what } => {
                assert_eq!(p, path);
                assert_eq!(what, "a symbolic link");
            }
            other => panic!("{other}"),
        };
        planted(
            write_json(&home, &home.project_config("app"), &1).unwrap_err(),
            &home.projects(),
        );
        planted(
            create_dir(&home, &home.projects().join("sub")).unwrap_err(),
            &home.projects(),
        );
        planted(
            read_config::<u32>(&home, &home.project_config("x"))
                .map(|_| ())
                .and_then(|()| write_atomic(&home, &home.project_config("x"), b"{"))
                .unwrap_err(),
            &home.projects(),
        );
        planted(
            open_append_private(&home, &home.service_log("svc")).unwrap_err(),
            &home.service_log("svc"),
        );
        planted(
            write_json(&home, &home.app_config(), &1).unwrap_err(),
            &home.app_config(),
        );
        let err = open_append_private(&home, &home.service_log("svc"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("app/logs/svc.jsonl is a symbolic link") && err.contains("remove it"),
            "{err}"
        );
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "untouched");
        assert_eq!(std::fs::read_dir(&elsewhere).unwrap().count(), 0);
        assert!(
            std::fs::symlink_metadata(home.projects())
                .unwrap()
                .is_symlink()
        );
        // A hard link to a file elsewhere is not appended to either.
        std::fs::remove_file(home.service_log("svc")).unwrap();
        std::fs::hard_link(&victim, home.service_log("svc")).unwrap();
        assert!(matches!(
            open_append_private(&home, &home.service_log("svc")),
            Err(Error::Planted {
                what: "a hard link to another file",
                ..
            })
        ));
        // A path outside the home is refused.
        assert!(write_atomic(&home, &victim, b"x").is_err());
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "untouched");
    }

    #[test]
    fn a_home_others_can_write_or_another_user_owns_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("home");
        let home = Home::at(&root).unwrap();
        create_dir(&home, &home.state()).unwrap();
        home.check_permissions().unwrap();
        std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o777)).unwrap();
        let err = write_json(&home, &home.app_config(), &1).unwrap_err();
        assert!(matches!(err, Error::UnsafeHome { .. }), "{err}");
        let text = err.to_string();
        assert!(
            text.contains(&format!(
                "{} is writable by its group and others",
                root.display()
            )) && text.contains("chmod go-w"),
            "{text}"
        );
        assert!(home.lock(crate::LockName::Daemon).is_err());
        assert!(!home.app_config().exists());
        // Group-writable is refused as ssh refuses it; a parent too.
        std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o770)).unwrap();
        let err = home.check_permissions().unwrap_err().to_string();
        assert!(
            err.contains(&format!(
                "{} is writable by its group",
                dir.path().display()
            )),
            "{err}"
        );
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        home.check_permissions().unwrap();
        // Owned by someone else (only root can hand a folder over).
        if rustix::process::geteuid().is_root() {
            std::os::unix::fs::chown(&root, Some(65534), Some(65534)).unwrap();
            let err = create_dir(&home, &home.config()).unwrap_err();
            assert!(
                err.to_string()
                    .contains("is owned by uid 65534, neither you"),
                "{err}"
            );
            assert_eq!(std::fs::metadata(&root).unwrap().uid(), 65534);
            assert!(!home.config().exists());
        }
        // Reading still works: diagnostics can report the problem.
        assert_eq!(read_json::<u32>(&home.app_config()).unwrap(), None);
    }
}
