//! Checks shared by every kind of setting: ids, local domain names, stacks.

use kojibox_manifests::recipe::is_service_id;

use crate::error::{Error, Result};

/// The stacks a project can have.
pub const STACKS: &[&str] = &["php", "node", "static"];

/// The top-level domains a project's domain may use (the local CA signs only these).
pub const LOCAL_SUFFIXES: &[&str] = &[".test", ".localhost"];

/// A lowercase DNS name under a local top-level domain (`my-app.test`).
pub fn check_domain(domain: &str) -> Result<()> {
    let refuse = |why: String| invalid("domain", format!("`{domain}` {why}"));
    if domain.len() > 253 {
        return Err(refuse("is longer than 253 characters".into()));
    }
    for label in domain.split('.') {
        if label.is_empty() || label.len() > 63 {
            return Err(refuse(
                "is not a domain name: each dot-separated label has 1 to 63 characters".into(),
            ));
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            || label.starts_with('-')
            || label.ends_with('-')
        {
            return Err(refuse(format!(
                "is not a domain name: label `{label}` may hold only a-z, 0-9 and inner `-`"
            )));
        }
    }
    if !LOCAL_SUFFIXES
        .iter()
        .any(|s| domain.ends_with(s) && domain.len() > s.len())
    {
        return Err(refuse(format!(
            "is not a local name: use a name ending in {} (kojibox routes and certifies local \
             names only)",
            LOCAL_SUFFIXES.join(" or ")
        )));
    }
    Ok(())
}

/// An id (of a service, a project): 1 to 64 of a-z, 0-9, `-`, `_`, not starting with `-`, and
/// not a Windows device name ([`is_device_name`]): ids become file names, and a home may be
/// carried to Windows, where `app/config/projects/con.json` names the console, not a file.
pub fn check_id(field: &str, id: &str) -> Result<()> {
    if !is_service_id(id) {
        return Err(invalid(
            field,
            format!(
                "`{id}` is not an id: use 1 to 64 of a-z, 0-9, `-`, `_`, not starting with `-`"
            ),
        ));
    }
    if is_device_name(id) {
        return Err(invalid(
            field,
            format!(
                "`{id}` is a reserved device name on Windows (CON, PRN, AUX, NUL, COM0-COM9, \
                 LPT0-LPT9, with or without an extension) and cannot be a file name there: \
                 choose another id (e.g. `{id}-1`)"
            ),
        ));
    }
    Ok(())
}

/// Whether `name` is a Windows reserved device name (`con`, `prn`, `aux`, `nul`, `com0`..`com9`,
/// `lpt0`..`lpt9`), in any case and with any extension (`CON.txt`): Windows opens the device
/// for such a file name in every folder.
pub fn is_device_name(name: &str) -> bool {
    // `con.txt` and `con .txt` are the device too: Windows ignores the extension and trailing
    // spaces.
    let stem = name.split('.').next().unwrap_or(name).trim_end_matches(' ');
    let stem = stem.to_ascii_lowercase();
    match stem.as_str() {
        "con" | "prn" | "aux" | "nul" => true,
        _ => {
            let b = stem.as_bytes();
            b.len() == 4
                && (stem.starts_with("com") || stem.starts_with("lpt"))
                && b[3].is_ascii_digit()
        }
    }
}

/// Folders a project may never be, nor be inside: the operating system's own (serving or
/// writing them would hand a service the system). `/` itself is refused apart, as are
/// [`SYSTEM_ROOTS`] exactly.
#[cfg(unix)]
pub const SYSTEM_FOLDERS: &[&str] = &[
    "/bin",
    "/boot",
    "/dev",
    "/etc",
    "/lib",
    "/lib32",
    "/lib64",
    "/libx32",
    "/proc",
    "/run",
    "/sbin",
    "/sys",
    "/usr",
    // macOS
    "/System",
    "/Library",
    "/private/etc",
    "/private/var/db",
    "/cores",
];

/// Folders a project may be inside of but never be: they hold everyone's files (`/home`, `/var`,
/// `/tmp`...).
#[cfg(unix)]
pub const SYSTEM_ROOTS: &[&str] = &[
    "/home",
    "/media",
    "/mnt",
    "/opt",
    "/private",
    "/private/tmp",
    "/private/var",
    "/root",
    "/srv",
    "/tmp",
    "/Users",
    "/var",
    "/Volumes",
];

/// Folders a project may never be, nor be inside (any drive): Windows' own.
#[cfg(windows)]
pub const SYSTEM_FOLDERS: &[&str] = &["\\Windows"];

/// Folders a project may be inside of but never be (any drive).
#[cfg(windows)]
pub const SYSTEM_ROOTS: &[&str] = &[
    "\\Program Files",
    "\\Program Files (x86)",
    "\\ProgramData",
    "\\Users",
];

/// A project folder: absolute, normalized (no `.` or `..` component, no empty one, no trailing
/// separator) and not `/`, a drive root, a system folder ([`SYSTEM_FOLDERS`], or inside one) or
/// a shared root ([`SYSTEM_ROOTS`]). `field` names it in the refusal.
pub fn check_folder(field: &str, path: &str) -> Result<()> {
    let refuse = |why: String| invalid(field, why);
    let p = std::path::Path::new(path);
    if path.is_empty() {
        return Err(refuse("is empty: give the project's full path".into()));
    }
    if path.chars().any(char::is_control) {
        return Err(refuse(format!(
            "`{}` has a control character: give the project's plain full path",
            path.escape_debug()
        )));
    }
    if !p.is_absolute() {
        return Err(refuse(format!(
            "`{path}` is not absolute: give the project's full path"
        )));
    }
    let normal = normalized(path);
    if let Some(bad) = path_components(path).find(|c| *c == "." || *c == "..") {
        return Err(refuse(format!(
            "`{path}` is not normalized (it has a `{bad}` component): give the real full path, \
             without `.` or `..` (as `realpath` prints it)"
        )));
    }
    if normal != path && !is_root(path) {
        return Err(refuse(format!(
            "`{path}` is not normalized (doubled or trailing separators): give it as `{normal}`"
        )));
    }
    if is_root(path) {
        return Err(refuse(format!(
            "`{path}` is the root of the file system: give the project's own folder"
        )));
    }
    if let Some(system) = system_folder(path) {
        return Err(refuse(format!(
            "`{path}` is {}: give a folder of your own (e.g. under your home folder)",
            system
        )));
    }
    Ok(())
}

/// The components of `path` after its root, between separators (empty ones included).
fn path_components(path: &str) -> impl Iterator<Item = &str> {
    strip_root(path).split(is_separator)
}

fn is_separator(c: char) -> bool {
    c == '/' || (cfg!(windows) && c == '\\')
}

/// `path` without its root (`/`, `C:\`, `\\server\share\`).
fn strip_root(path: &str) -> &str {
    #[cfg(windows)]
    {
        let b = path.as_bytes();
        if b.len() >= 3 && b[1] == b':' && (b[2] == b'\\' || b[2] == b'/') {
            return &path[3..];
        }
        if b.len() >= 2 && b[1] == b':' {
            return &path[2..];
        }
    }
    path.trim_start_matches(is_separator)
}

fn is_root(path: &str) -> bool {
    strip_root(path).chars().all(is_separator)
}

/// `path` with doubled and trailing separators removed (its `.` and `..` kept).
fn normalized(path: &str) -> String {
    let root = &path[..path.len() - strip_root(path).len()];
    let root = if cfg!(windows) {
        root.to_owned()
    } else {
        "/".to_owned()
    };
    let body: Vec<&str> = strip_root(path)
        .split(is_separator)
        .filter(|c| !c.is_empty())
        .collect();
    format!(
        "{root}{}",
        body.join(if cfg!(windows) { "\\" } else { "/" })
    )
}

/// What system folder `path` (absolute, normalized) is or is in, when it is one.
fn system_folder(path: &str) -> Option<String> {
    let fold = |s: &str| {
        let s = if cfg!(windows) {
            s.replace('\\', "/")
        } else {
            s.to_owned()
        };
        // Windows and (by default) macOS compare names without case.
        if cfg!(any(windows, target_os = "macos")) {
            s.to_lowercase()
        } else {
            s
        }
    };
    let body = fold(&format!("/{}", strip_root(path)));
    for folder in SYSTEM_FOLDERS {
        let f = fold(folder);
        if body == f || body.starts_with(&format!("{f}/")) {
            return Some(format!("the system folder {folder} or inside it"));
        }
    }
    #[cfg(windows)]
    if let Ok(system_root) = std::env::var("SystemRoot") {
        let f = fold(&format!("/{}", strip_root(&system_root)));
        if f.len() > 1 && (body == f || body.starts_with(&format!("{f}/"))) {
            return Some(format!("the system folder {system_root} or inside it"));
        }
    }
    SYSTEM_ROOTS
        .iter()
        .find(|root| fold(root) == body)
        .map(|root| format!("the shared folder {root}, which holds other people's files"))
}

/// A refusal of `field`: `VALIDATION_FAILED`, "Invalid configuration", `field: why`.
pub(crate) fn invalid(field: &str, why: impl std::fmt::Display) -> Error {
    Error::Invalid {
        message: "Invalid configuration".into(),
        detail: format!("{field}: {why}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_names_are_not_ids() {
        for bad in [
            "con", "nul", "aux", "prn", "com1", "com9", "com0", "lpt1", "lpt9",
        ] {
            let err = check_id("id", bad).unwrap_err();
            let text = err.to_string();
            assert!(
                text.contains("id: `")
                    && text.contains("device name")
                    && text.contains("choose another id"),
                "{bad}: {text}"
            );
            assert_eq!(
                kojibox_home::ToApi::code(&err),
                kojibox_manifests::error::ErrorCode::ValidationFailed
            );
        }
        for device in ["CON", "Nul", "con.txt", "COM1.log", "lpt3.tar.gz", "aux "] {
            assert!(is_device_name(device), "{device}");
        }
        for ok in [
            "console", "com", "com10", "lpt", "nul1", "icon", "my-con", "aux_db", "comx",
        ] {
            assert!(!is_device_name(ok), "{ok}");
            check_id("id", ok).unwrap();
        }
    }

    #[cfg(unix)]
    #[test]
    fn project_folders() {
        for ok in [
            "/home/u/app",
            "/var/www/site",
            "/srv/app",
            "/tmp/x",
            "/opt/a/b",
            "/root/dev",
        ] {
            check_folder("path", ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        for (bad, says) in [
            ("", "is empty"),
            ("app", "not absolute"),
            ("./app", "not absolute"),
            ("/", "root of the file system"),
            ("//", "root of the file system"),
            ("/etc", "system folder /etc"),
            ("/etc/nginx", "system folder /etc"),
            ("/proc", "system folder /proc"),
            ("/proc/self/root", "system folder /proc"),
            ("/sys", "system folder"),
            ("/dev", "system folder"),
            ("/usr", "system folder"),
            ("/usr/share/www", "system folder"),
            ("/bin", "system folder"),
            ("/sbin", "system folder"),
            ("/lib", "system folder"),
            ("/boot", "system folder"),
            ("/var", "shared folder /var"),
            ("/home", "shared folder /home"),
            ("/tmp", "shared folder /tmp"),
            ("/home/u/../../etc", "`..` component"),
            ("/home/u/./app", "`.` component"),
            ("/home/u/app/..", "`..` component"),
            ("/home//u", "give it as `/home/u`"),
            ("/home/u/app/", "give it as `/home/u/app`"),
            ("/home/u\napp", "control character"),
        ] {
            let text = check_folder("path", bad).unwrap_err().to_string();
            assert!(
                text.contains("path: ") && text.contains(says),
                "{bad:?}: {text}"
            );
        }
    }

    #[test]
    fn domains() {
        for ok in ["my-app.test", "a.b.localhost", "x1.test"] {
            check_domain(ok).unwrap();
        }
        for bad in [
            "test",
            ".test",
            "my_app.test",
            "My-App.test",
            "-a.test",
            "a-.test",
            "a..test",
            "example.com",
            "a.test.",
        ] {
            let err = check_domain(bad).unwrap_err().to_string();
            assert!(err.contains("domain:"), "{bad}: {err}");
        }
    }
}
