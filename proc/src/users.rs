//! The root case: finding the service user, checking it can reach the home, giving it its data.
//!
//! Users come from `/etc/passwd`, parsed directly (no `getpwnam`, so no NSS modules run inside the
//! daemon): users that exist only in LDAP/SSSD or, on macOS, only in Directory Services are not
//! found. Reachability is judged from mode bits alone (owner, then the user's *primary* group,
//! then other), the way the kernel picks the class; supplementary groups and ACLs are ignored,
//! so the check can refuse a path that an ACL would open, never the other way round for plain
//! mode bits. On Windows none of this applies (services run as the daemon's user).

use std::path::{Path, PathBuf};

use crate::Error;

/// A user services can run as.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    /// Login name.
    pub name: String,
    /// User id.
    pub uid: u32,
    /// Primary group id.
    pub gid: u32,
    /// Home folder from the user database (often `/nonexistent` for system users; services get
    /// `HOME=<cwd>` anyway).
    pub home: PathBuf,
}

/// The user database this crate reads.
pub const PASSWD: &str = "/etc/passwd";

/// Whether the daemon runs with effective uid 0.
pub fn current_is_root() -> bool {
    #[cfg(unix)]
    {
        rustix::process::geteuid().is_root()
    }
    #[cfg(not(unix))]
    {
        false
    }
}

/// Looks `name` up in `/etc/passwd`.
pub fn lookup_user(name: &str) -> Result<User, Error> {
    if cfg!(unix) {
        lookup_user_in(Path::new(PASSWD), name)
    } else {
        Err(Error::Unsupported {
            what: "running services as another user",
        })
    }
}

/// Looks `name` up in a passwd-format file (`name:password:uid:gid:gecos:home:shell`). Comments,
/// blank, NIS (`+`/`-`) and malformed lines are skipped.
pub fn lookup_user_in(database: &Path, name: &str) -> Result<User, Error> {
    let text = std::fs::read_to_string(database).map_err(|source| Error::Io {
        path: database.to_owned(),
        source,
    })?;
    text.lines()
        .filter_map(parse_passwd_line)
        .find(|u| u.name == name)
        .ok_or_else(|| Error::UnknownUser {
            name: name.to_owned(),
            database: database.to_owned(),
        })
}

fn parse_passwd_line(line: &str) -> Option<User> {
    if line.starts_with(['#', '+', '-']) {
        return None;
    }
    let fields: Vec<&str> = line.split(':').collect();
    if fields.len() < 7 || fields[0].is_empty() {
        return None;
    }
    Some(User {
        name: fields[0].to_owned(),
        uid: fields[2].parse().ok()?,
        gid: fields[3].parse().ok()?,
        home: PathBuf::from(fields[5]),
    })
}

/// Checks that `user` can reach `path`: every folder from `/` down to `path` (including `path`
/// itself when it is a folder) must be searchable (`x`) by it. Both the path as written and, when
/// symlinks are involved, its resolved form are checked, since the kernel walks both. Folders that
/// do not exist yet are not judged. Root passes. The error names the first folder that blocks.
pub fn check_traversable(path: &Path, user: &User) -> Result<(), Error> {
    if user.uid == 0 || !cfg!(unix) {
        return Ok(());
    }
    let absolute = if path.is_absolute() {
        path.to_owned()
    } else {
        std::env::current_dir()
            .map_err(|source| Error::Io {
                path: path.to_owned(),
                source,
            })?
            .join(path)
    };
    check_chain(&absolute, path, user)?;
    let existing = absolute
        .ancestors()
        .find(|p| p.exists())
        .unwrap_or(Path::new("/"));
    if let Ok(real) = existing.canonicalize()
        && real != existing
    {
        check_chain(&real, path, user)?;
    }
    Ok(())
}

fn check_chain(absolute: &Path, asked: &Path, user: &User) -> Result<(), Error> {
    let mut chain: Vec<&Path> = absolute.ancestors().collect();
    chain.reverse();
    for dir in chain {
        let meta = match std::fs::metadata(dir) {
            Ok(meta) => meta,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(source) => {
                return Err(Error::Io {
                    path: dir.to_owned(),
                    source,
                });
            }
        };
        if meta.is_dir() && !allows(&meta, user, 0o1) {
            return Err(Error::NotTraversable {
                path: asked.to_owned(),
                user: user.name.clone(),
                blocking: dir.to_owned(),
            });
        }
    }
    Ok(())
}

/// Whether the mode bits of `meta` grant `user` the permission `perm` (0o1 execute/search,
/// 0o4 read), judged from the owner class, else the primary group class, else other.
#[cfg(unix)]
pub(crate) fn allows(meta: &std::fs::Metadata, user: &User, perm: u32) -> bool {
    use std::os::unix::fs::MetadataExt;
    let mode = meta.mode();
    if user.uid == 0 {
        // Root reads and searches anything, but executes a file only if some x bit is set.
        return perm != 0o1 || meta.is_dir() || mode & 0o111 != 0;
    }
    let shift = if meta.uid() == user.uid {
        6
    } else if meta.gid() == user.gid {
        3
    } else {
        0
    };
    mode & (perm << shift) != 0
}

#[cfg(not(unix))]
pub(crate) fn allows(_meta: &std::fs::Metadata, _user: &User, _perm: u32) -> bool {
    true
}

/// Gives `path` and everything below it to `user` (uid and primary gid). Symlinks are changed
/// themselves, never followed, so a link inside a data folder cannot hand out a file elsewhere.
pub fn chown_tree(path: &Path, user: &User) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        let mut stack = vec![path.to_owned()];
        while let Some(current) = stack.pop() {
            let context = |e: std::io::Error| {
                std::io::Error::new(
                    e.kind(),
                    format!("could not give {} to {}: {e}", current.display(), user.name),
                )
            };
            let meta = std::fs::symlink_metadata(&current).map_err(context)?;
            std::os::unix::fs::lchown(&current, Some(user.uid), Some(user.gid)).map_err(context)?;
            if meta.is_dir() {
                for entry in std::fs::read_dir(&current).map_err(context)? {
                    stack.push(entry.map_err(context)?.path());
                }
            }
        }
        Ok(())
    }
    #[cfg(not(unix))]
    {
        let _ = (path, user);
        Err(std::io::Error::new(
            std::io::ErrorKind::Unsupported,
            "changing owners is unsupported on this platform",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwd_lines() {
        let user = parse_passwd_line("pg:x:110:120:PostgreSQL,,,:/var/lib/pg:/bin/bash").unwrap();
        assert_eq!(
            user,
            User {
                name: "pg".into(),
                uid: 110,
                gid: 120,
                home: "/var/lib/pg".into()
            }
        );
        for bad in [
            "",
            "# comment",
            "+nis",
            "a:x:1:2",
            "a:x:one:2:g:/h:/s",
            ":x:1:2:g:/h:/s",
        ] {
            assert_eq!(parse_passwd_line(bad), None, "{bad:?}");
        }
    }
}
