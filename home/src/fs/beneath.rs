//! Opening folders and files inside the home without ever following a link below its root.
//!
//! The home's root is opened (following links: the home may legitimately be reached through
//! one, and [`crate::perms`] has judged the folders above it), then every folder below it is
//! opened one name at a time, relative to the previous one, with `O_NOFOLLOW` (and, on Linux,
//! `openat2` with `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS`): a planted link is an error naming
//! it, never followed and never removed. Missing folders are created with the layout's mode,
//! set exactly whatever the umask.

use std::ffi::{OsStr, OsString};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode, OFlags};
use rustix::io::Errno;

use crate::error::{Error, Result};
use crate::layout::Home;
use crate::perms;

/// A folder inside the home, opened without following links.
pub(crate) struct Dir {
    pub(crate) fd: OwnedFd,
    pub(crate) path: PathBuf,
}

/// The names of `path` below the home's root; an error when it is not inside the home.
fn below_root(home: &Home, path: &Path) -> Result<Vec<OsString>> {
    let outside = || {
        Error::invalid(
            "Path outside the home",
            format!(
                "{} is not inside the home {}",
                path.display(),
                home.root().display()
            ),
        )
    };
    let rel = path.strip_prefix(home.root()).map_err(|_| outside())?;
    rel.components()
        .map(|c| match c {
            Component::Normal(name) => Ok(name.to_owned()),
            Component::CurDir => Ok(OsString::new()),
            _ => Err(outside()),
        })
        .filter(|n| n.as_ref().map_or(true, |n| !n.is_empty()))
        .collect()
}

fn io(action: &'static str, path: &Path) -> impl FnOnce(Errno) -> Error + use<> {
    let path = path.to_owned();
    move |e| Error::io(action, path)(e.into())
}

/// Opens `name` in `dir` without following a link (`openat2` beneath `dir` where the kernel has
/// it, `openat` with `O_NOFOLLOW` otherwise).
pub(crate) fn open_at(
    dir: impl AsFd,
    name: &OsStr,
    flags: OFlags,
    mode: Mode,
) -> rustix::io::Result<OwnedFd> {
    let flags = flags | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NOCTTY;
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        use std::sync::atomic::{AtomicBool, Ordering};
        static NO_OPENAT2: AtomicBool = AtomicBool::new(false);
        if !NO_OPENAT2.load(Ordering::Relaxed) {
            use rustix::fs::ResolveFlags;
            let resolve =
                ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS;
            match rustix::fs::openat2(dir.as_fd(), name, flags, mode, resolve) {
                // No openat2 in this kernel, or a seccomp filter refusing it (containers).
                Err(Errno::NOSYS | Errno::PERM) => NO_OPENAT2.store(true, Ordering::Relaxed),
                other => return other,
            }
        }
    }
    rustix::fs::openat(dir.as_fd(), name, flags, mode)
}

/// What is at `name` in `dir` when opening it without following links failed: a planted link
/// (or something else that is not a folder) is [`Error::Planted`].
pub(crate) fn explain(
    dir: impl AsFd,
    name: &OsStr,
    path: &Path,
    errno: Errno,
    action: &'static str,
) -> Error {
    match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Symlink => Error::Planted {
            path: path.to_owned(),
            what: "a symbolic link",
        },
        _ if errno == Errno::LOOP || errno == Errno::XDEV => Error::Planted {
            path: path.to_owned(),
            what: "a symbolic link",
        },
        _ => io(action, path)(errno),
    }
}

/// Opens the home's root, creating it (and the folders above it) when `create`; refuses a home
/// [`Home::check_permissions`] refuses, judging the opened root again so that a home swapped in
/// between is refused too.
fn open_root(home: &Home, create: bool) -> Result<OwnedFd> {
    home.check_permissions()?;
    let root = home.root();
    if create && std::fs::symlink_metadata(root).is_err() {
        // The folders above the home are outside it: created like `mkdir -p`, mode 0755.
        let mut missing: Vec<&Path> = root
            .ancestors()
            .take_while(|p| std::fs::symlink_metadata(p).is_err())
            .collect();
        missing.reverse();
        for dir in missing {
            match rustix::fs::mkdir(dir, Mode::from_raw_mode(perms::DIR_MODE)) {
                Ok(()) => {
                    let _ = rustix::fs::chmod(dir, Mode::from_raw_mode(perms::DIR_MODE));
                }
                Err(Errno::EXIST) => {}
                Err(e) => return Err(io("create folder", dir)(e)),
            }
        }
    }
    let fd = rustix::fs::open(
        root,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(io("open", root))?;
    let st = rustix::fs::fstat(&fd).map_err(io("inspect", root))?;
    if perms::unix::has_unix_modes(root) {
        perms::unix::judge(root, root, st.st_uid, st.st_mode, true)?;
    }
    Ok(fd)
}

/// Opens the folder `dir` inside the home without following any link below the root; with
/// `create`, missing folders are created with their layout mode (and loosened ones of the
/// current user tightened back to it).
pub(crate) fn open_dir(home: &Home, dir: &Path, create: bool) -> Result<Dir> {
    let names = below_root(home, dir)?;
    let mut fd = open_root(home, create)?;
    let mut path = home.root().to_owned();
    let mut rel = PathBuf::new();
    let me = rustix::process::geteuid().as_raw();
    for name in names {
        path.push(&name);
        rel.push(&name);
        let mode = perms::dir_mode(&rel);
        let flags = OFlags::RDONLY | OFlags::DIRECTORY;
        let mut created = false;
        let next = match open_at(&fd, &name, flags, Mode::empty()) {
            Ok(next) => next,
            Err(Errno::NOENT) if create => {
                match rustix::fs::mkdirat(&fd, &name, Mode::from_raw_mode(mode)) {
                    Ok(()) => created = true,
                    Err(Errno::EXIST) => {}
                    Err(e) => return Err(io("create folder", &path)(e)),
                }
                open_at(&fd, &name, flags, Mode::empty())
                    .map_err(|e| explain(&fd, &name, &path, e, "open"))?
            }
            Err(e) => return Err(explain(&fd, &name, &path, e, "open")),
        };
        if created {
            // Exact, whatever the umask. A FAT stick refuses chmod; there the mount options
            // decide every mode.
            if let Err(e) = rustix::fs::fchmod(&next, Mode::from_raw_mode(mode))
                && perms::unix::has_unix_modes(&path)
            {
                return Err(io("set the mode of", &path)(e));
            }
        } else if create {
            // A folder of ours loosened (by an older kojibox under a lax umask, or by hand) is
            // tightened back to its layout mode; best effort.
            let st = rustix::fs::fstat(&next).map_err(io("inspect", &path))?;
            let current = st.st_mode & 0o7777;
            if st.st_uid == me && current & !mode & 0o777 != 0 {
                let _ = rustix::fs::fchmod(&next, Mode::from_raw_mode(current & (mode | 0o7000)));
            }
        }
        fd = next;
    }
    Ok(Dir { fd, path })
}

/// Opens the file `path` inside the home for writing, creating it with mode 0600 (and its
/// folders); refuses a link, a hard link to another file, or anything but a regular file.
pub(crate) fn open_file(home: &Home, path: &Path, flags: OFlags) -> Result<std::fs::File> {
    let (dir, name) = split(home, path)?;
    let dir = open_dir(home, dir, true)?;
    // O_NONBLOCK: a planted FIFO must not hang the writer (no effect on a regular file).
    let fd = open_at(
        &dir.fd,
        name,
        flags | OFlags::CREATE | OFlags::NONBLOCK,
        Mode::from_raw_mode(perms::FILE_MODE),
    )
    .map_err(|e| explain(&dir.fd, name, path, e, "open"))?;
    let st = rustix::fs::fstat(&fd).map_err(io("inspect", path))?;
    if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
        return Err(Error::Planted {
            path: path.to_owned(),
            what: "not a regular file",
        });
    }
    if st.st_nlink > 1 {
        return Err(Error::Planted {
            path: path.to_owned(),
            what: "a hard link to another file",
        });
    }
    if st.st_mode & 0o077 != 0 {
        // Best effort: a FAT stick has no modes to tighten.
        let _ = rustix::fs::fchmod(&fd, Mode::from_raw_mode(perms::FILE_MODE));
    }
    Ok(std::fs::File::from(fd))
}

/// `path`'s folder and its file name; an error when it has no file name.
pub(crate) fn split<'a>(home: &Home, path: &'a Path) -> Result<(&'a Path, &'a OsStr)> {
    match (path.parent(), path.file_name()) {
        (Some(dir), Some(name)) => Ok((dir, name)),
        _ => Err(Error::invalid(
            "Path outside the home",
            format!(
                "{} names no file inside the home {}",
                path.display(),
                home.root().display()
            ),
        )),
    }
}

/// Writes `bytes` to `path` inside the home: a temporary file created 0600 beside it (never
/// through a link), fsynced, renamed over it, the folder fsynced.
pub(crate) fn write_atomic(home: &Home, path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let (dir, name) = split(home, path)?;
    let dir = open_dir(home, dir, true)?;
    // The target itself: a link there would be replaced rather than followed, but it is
    // refused like any other planted link, so that it is noticed.
    if let Ok(st) = rustix::fs::statat(&dir.fd, name, AtFlags::SYMLINK_NOFOLLOW)
        && FileType::from_raw_mode(st.st_mode) == FileType::Symlink
    {
        return Err(Error::Planted {
            path: path.to_owned(),
            what: "a symbolic link",
        });
    }
    let mut random = [0u8; 8];
    getrandom::fill(&mut random)
        .map_err(|e| Error::io("generate a name in", &dir.path)(std::io::Error::other(e)))?;
    let tmp_name = OsString::from(format!(".kojibox-{}.tmp", hex::encode(random)));
    let tmp_path = dir.path.join(&tmp_name);
    let fd = open_at(
        &dir.fd,
        &tmp_name,
        OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL,
        Mode::from_raw_mode(perms::FILE_MODE),
    )
    .map_err(|e| explain(&dir.fd, &tmp_name, &tmp_path, e, "create"))?;
    let written = (|| {
        // Exact, whatever the umask.
        let _ = rustix::fs::fchmod(&fd, Mode::from_raw_mode(perms::FILE_MODE));
        let mut file = std::fs::File::from(fd);
        // Errors name the file being written, not its temporary name (which is gone by then).
        file.write_all(bytes).map_err(Error::io("write", path))?;
        file.sync_all().map_err(Error::io("sync", path))?;
        rustix::fs::renameat(&dir.fd, &tmp_name, &dir.fd, name).map_err(io("replace", path))
    })();
    if written.is_err() {
        let _ = rustix::fs::unlinkat(&dir.fd, &tmp_name, AtFlags::empty());
    }
    written?;
    rustix::fs::fsync(&dir.fd).map_err(io("sync folder", &dir.path))
}
