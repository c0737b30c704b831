//! Path rules shared by packing and extraction: what a payload path and a link target may be.

/// Checks a `/`-separated relative path: no empty, `.` or `..` components, no absolute or drive
/// path, no backslash, no control characters. Returns why not.
pub fn check_relative(path: &str) -> Result<(), String> {
    if path.is_empty() {
        return Err("empty path".into());
    }
    if path.starts_with('/') {
        return Err("absolute path".into());
    }
    if path.len() >= 2 && path.as_bytes()[1] == b':' {
        return Err("drive-letter path".into());
    }
    if path.contains('\\') {
        return Err("backslash in path".into());
    }
    if path.chars().any(char::is_control) {
        return Err("control character in path".into());
    }
    for component in path.split('/') {
        match component {
            "" => return Err("empty path component".into()),
            "." => return Err("`.` component".into()),
            ".." => return Err("`..` component".into()),
            _ => {}
        }
    }
    Ok(())
}

/// Whether `value` is one plain path component: not empty, `.` or `..`, no separator, drive
/// colon or control character, at most 128 bytes.
pub fn is_component(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= 128
        && value != "."
        && value != ".."
        && !value.contains(['/', '\\', ':'])
        && !value.chars().any(char::is_control)
}

/// Resolves a symlink `target` written in the folder of `link` (both relative to one root) and
/// returns the root-relative path it points to, or `None` when it leaves the root or is absolute.
pub fn resolve_link(link: &str, target: &str) -> Option<String> {
    if target.is_empty() || target.starts_with('/') || target.contains('\\') {
        return None;
    }
    if target.len() >= 2 && target.as_bytes()[1] == b':' {
        return None;
    }
    let mut parts: Vec<&str> = link.split('/').collect();
    parts.pop();
    for component in target.split('/') {
        match component {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            other => parts.push(other),
        }
    }
    if parts.is_empty() {
        None
    } else {
        Some(parts.join("/"))
    }
}

pub use kojibox_manifests::bundle::payload_root;

/// This machine's target in the bundle's terms (`linux-x64`), when it is one bundles know.
pub fn host_target() -> Option<String> {
    let os = match std::env::consts::OS {
        "linux" => "linux",
        "macos" => "darwin",
        "windows" => "windows",
        _ => return None,
    };
    let arch = match std::env::consts::ARCH {
        "x86_64" => "x64",
        "aarch64" => "arm64",
        _ => return None,
    };
    Some(format!("{os}-{arch}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths() {
        assert!(check_relative("a/b/c").is_ok());
        for bad in [
            "",
            "/etc/passwd",
            "C:/x",
            "a/../b",
            "..",
            "a//b",
            "./a",
            "a\\b",
            "a\nb",
        ] {
            assert!(check_relative(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn components() {
        assert!(is_component("16.14") && is_component("linux") && is_component("x64"));
        for bad in ["", ".", "..", "a/b", "a\\b", "c:", "a\nb", &"x".repeat(129)] {
            assert!(!is_component(bad), "{bad:?}");
        }
    }

    #[test]
    fn links() {
        assert_eq!(
            resolve_link("lib/libpq.so.5", "libpq.so.5.16").as_deref(),
            Some("lib/libpq.so.5.16")
        );
        assert_eq!(resolve_link("bin/x", "../lib/y").as_deref(), Some("lib/y"));
        assert_eq!(resolve_link("bin/x", "../../y"), None);
        assert_eq!(resolve_link("x", ".."), None);
        assert_eq!(resolve_link("bin/x", "/etc/passwd"), None);
    }
}
