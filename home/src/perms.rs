//! Who may change a home, and the modes of the folders kojibox creates in it.
//!
//! **Strict modes.** A home is refused, as ssh's `StrictModes` refuses a `~/.ssh`, when it or any
//! folder above it is owned by someone other than the user running kojibox and root, or is
//! writable by its group or by others: whoever can write there can replace what kojibox reads,
//! runs and serves. A folder above the home that is owned by root and sticky (`/tmp`) is fine:
//! others can add entries to it but cannot rename or remove the home. The home itself must never
//! be writable by others, sticky or not, since they could create `app/` in it first. A folder on
//! a filesystem without Unix modes (a FAT or exFAT stick shows every file as 0777, owned by
//! whoever mounted it) cannot be judged this way and is skipped.
//!
//! The check runs whenever kojibox is about to write into the home (every folder, file and lock
//! it opens for writing goes through [`crate::fs`]), so every command that changes a home
//! refuses an unsafe one, and read-only commands still work and can report it
//! ([`Home::check_permissions`]).
//!
//! **Folder modes.** Every folder kojibox creates gets its mode explicitly, whatever the umask:
//! `app/state`, `app/config`, `app/keys`, `app/secrets` and `app/logs` (and everything below
//! them) 0700; every other folder 0755, because services running as other users must traverse
//! the home to reach `runtime/` payloads and `runtime/data/<id>`.

use std::path::{Component, Path};

use crate::error::Result;
use crate::layout::Home;

/// Folders (under `app/`) that only the user running kojibox may enter.
const PRIVATE: [&str; 5] = ["state", "config", "keys", "secrets", "logs"];

/// Mode of a private folder.
pub const PRIVATE_DIR_MODE: u32 = 0o700;
/// Mode of every other folder kojibox creates (the home itself included).
pub const DIR_MODE: u32 = 0o755;
/// Mode of every file kojibox writes into the home.
pub const FILE_MODE: u32 = 0o600;

/// The mode kojibox gives the folder at `rel` (relative to the home; empty for the home).
pub fn dir_mode(rel: &Path) -> u32 {
    let mut parts = rel.components().filter_map(|c| match c {
        Component::Normal(name) => Some(name),
        _ => None,
    });
    match (parts.next(), parts.next()) {
        (Some(app), Some(second))
            if app == "app" && PRIVATE.iter().any(|p| second == std::ffi::OsStr::new(p)) =>
        {
            PRIVATE_DIR_MODE
        }
        _ => DIR_MODE,
    }
}

impl Home {
    /// Refuses a home that someone other than the current user and root could change: the home,
    /// or any folder above it, owned by another user or writable by its group or others (a
    /// root-owned sticky folder above it, such as `/tmp`, is fine). A home that does not exist
    /// yet is judged by the folders above it. The error names the folder and the fix.
    pub fn check_permissions(&self) -> Result<()> {
        #[cfg(unix)]
        return unix::check(self.root());
        #[cfg(not(unix))]
        Ok(())
    }
}

#[cfg(unix)]
pub(crate) mod unix {
    use std::os::unix::fs::MetadataExt;
    use std::path::Path;

    use crate::error::{Error, Result};

    pub(crate) fn check(root: &Path) -> Result<()> {
        let mut existing = root;
        while std::fs::symlink_metadata(existing).is_err() {
            match existing.parent() {
                Some(parent) => existing = parent,
                None => return Ok(()),
            }
        }
        let real = std::fs::canonicalize(existing).map_err(Error::io("resolve", existing))?;
        for (i, dir) in real.ancestors().enumerate() {
            let meta = std::fs::metadata(dir).map_err(Error::io("inspect", dir))?;
            if !has_unix_modes(dir) {
                continue;
            }
            judge(
                root,
                dir,
                meta.uid(),
                meta.mode(),
                i == 0 && existing == root,
            )?;
        }
        Ok(())
    }

    /// Whether `uid`/`mode` of `dir` (the home itself when `is_home`) are safe for `root`.
    pub(crate) fn judge(root: &Path, dir: &Path, uid: u32, mode: u32, is_home: bool) -> Result<()> {
        let me = rustix::process::geteuid().as_raw();
        let unsafe_home = |detail: String, fix: String| Error::UnsafeHome {
            home: root.to_owned(),
            path: dir.to_owned(),
            detail,
            fix,
        };
        if uid != 0 && uid != me {
            let fix = if is_home {
                format!(
                    "someone else may have created it first: choose a home in a folder of your own \
                     (for example ~/kojibox), or, if it is yours, `chown -R {me} {}`",
                    dir.display()
                )
            } else {
                "choose a home whose every parent folder belongs to you or root (for example \
                 ~/kojibox)"
                    .to_owned()
            };
            return Err(unsafe_home(
                format!("is owned by uid {uid}, neither you (uid {me}) nor root"),
                fix,
            ));
        }
        let sticky_root = mode & 0o1000 != 0 && uid == 0;
        if mode & 0o022 != 0 && (is_home || !sticky_root) {
            let who = match (mode & 0o020 != 0, mode & 0o002 != 0) {
                (true, true) => "its group and others",
                (true, false) => "its group",
                _ => "others",
            };
            return Err(unsafe_home(
                format!("is writable by {who} (mode {:04o})", mode & 0o7777),
                format!(
                    "anyone who can write there can replace what kojibox runs: `chmod go-w {}`, \
                     or choose a private home (for example ~/kojibox)",
                    dir.display()
                ),
            ));
        }
        Ok(())
    }

    /// Whether `dir`'s filesystem keeps Unix owners and modes (a FAT or exFAT stick does not).
    pub(crate) fn has_unix_modes(dir: &Path) -> bool {
        #[cfg(any(target_os = "linux", target_os = "android"))]
        {
            const MSDOS_SUPER_MAGIC: i64 = 0x4d44;
            const EXFAT_SUPER_MAGIC: i64 = 0x2011_bab0;
            match rustix::fs::statfs(dir) {
                #[allow(clippy::useless_conversion, clippy::unnecessary_cast)]
                Ok(fs) => !matches!(fs.f_type as i64, MSDOS_SUPER_MAGIC | EXFAT_SUPER_MAGIC),
                Err(_) => true,
            }
        }
        #[cfg(not(any(target_os = "linux", target_os = "android")))]
        {
            let _ = dir;
            true
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_folders_are_0700_and_the_rest_0755() {
        for (rel, mode) in [
            ("", 0o755),
            ("app", 0o755),
            ("app/state", 0o700),
            ("app/state/services", 0o700),
            ("app/config/projects", 0o700),
            ("app/keys", 0o700),
            ("app/secrets", 0o700),
            ("app/logs", 0o700),
            ("app/cache/updates", 0o755),
            ("runtime", 0o755),
            ("runtime/data/postgres", 0o755),
            ("runtime/app/state", 0o755),
        ] {
            assert_eq!(dir_mode(Path::new(rel)), mode, "{rel}");
        }
    }

    #[cfg(unix)]
    #[test]
    fn strict_modes_judge_owner_group_others_and_sticky() {
        use std::path::Path;
        let me = rustix::process::geteuid().as_raw();
        let other = if me == 65534 { 65533 } else { 65534 };
        let (root, dir) = (Path::new("/h/home"), Path::new("/h"));
        let ok = |uid, mode, is_home| unix::judge(root, dir, uid, mode, is_home).is_ok();
        assert!(ok(me, 0o40755, true));
        assert!(ok(0, 0o40700, true));
        assert!(
            ok(0, 0o41777, false),
            "a root-owned sticky parent (/tmp) is fine"
        );
        assert!(!ok(0, 0o41777, true), "the home itself never is");
        if me != 0 {
            assert!(
                !ok(me, 0o41777, false),
                "a sticky parent that is not root's is not"
            );
        }
        assert!(!ok(me, 0o40777, true));
        assert!(!ok(me, 0o40775, false));
        assert!(!ok(other, 0o40755, true));
        let err = unix::judge(root, dir, me, 0o40777, true)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("/h is writable by its group and others (mode 0777)")
                && err.contains("chmod go-w /h"),
            "{err}"
        );
        let err = unix::judge(root, dir, other, 0o40755, true)
            .unwrap_err()
            .to_string();
        assert!(err.contains(&format!("is owned by uid {other}")), "{err}");
    }
}
