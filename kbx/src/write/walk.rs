//! Reading a payload folder for packing: its files and in-payload links, sorted by path.

use std::path::Path;

use super::{InputEntry, InputKind};
use crate::Error;

/// Entries of a payload folder on disk, for packing: files, and symlinks that stay inside.
/// Folders are implied; anything else (a device, a FIFO, a socket) is an error.
pub fn walk_payload(root: &Path) -> Result<Vec<InputEntry>, Error> {
    let mut out = Vec::new();
    let mut stack = vec![(root.to_owned(), String::new())];
    while let Some((dir, rel_dir)) = stack.pop() {
        let read = std::fs::read_dir(&dir).map_err(|source| Error::Io {
            action: "read folder",
            path: dir.clone(),
            source,
        })?;
        for item in read {
            let item = item.map_err(|source| Error::Io {
                action: "read folder",
                path: dir.clone(),
                source,
            })?;
            let name = item.file_name();
            let name = name.to_str().ok_or_else(|| Error::Pack {
                path: item.path(),
                problem: "file name is not UTF-8".into(),
            })?;
            let rel = if rel_dir.is_empty() {
                name.to_owned()
            } else {
                format!("{rel_dir}/{name}")
            };
            let path = item.path();
            let meta = std::fs::symlink_metadata(&path).map_err(|source| Error::Io {
                action: "read",
                path: path.clone(),
                source,
            })?;
            let kind = meta.file_type();
            if kind.is_dir() {
                stack.push((path, rel));
            } else if kind.is_file() {
                out.push(InputEntry {
                    rel,
                    kind: InputKind::File {
                        source: path,
                        executable: is_executable(&meta),
                    },
                });
            } else if kind.is_symlink() {
                let target = std::fs::read_link(&path).map_err(|source| Error::Io {
                    action: "read link",
                    path: path.clone(),
                    source,
                })?;
                let target = target
                    .to_str()
                    .ok_or_else(|| Error::Pack {
                        path: path.clone(),
                        problem: "link target is not UTF-8".into(),
                    })?
                    .replace('\\', "/");
                if crate::paths::resolve_link(&rel, &target).is_none() {
                    return Err(Error::Pack {
                        path,
                        problem: format!("symlink to `{target}` leaves the payload"),
                    });
                }
                out.push(InputEntry {
                    rel,
                    kind: InputKind::Symlink { target },
                });
            } else {
                return Err(Error::Pack {
                    path,
                    problem: "not a regular file, folder or symlink".into(),
                });
            }
        }
    }
    out.sort_by(|a, b| a.rel.as_bytes().cmp(b.rel.as_bytes()));
    Ok(out)
}

#[cfg(unix)]
fn is_executable(meta: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::PermissionsExt;
    meta.permissions().mode() & 0o111 != 0
}

#[cfg(not(unix))]
fn is_executable(_meta: &std::fs::Metadata) -> bool {
    false
}
