//! Non-contract settings (`app/config/settings.json`), re-read whenever they are used.

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::layout::Home;

/// Launcher settings that are not part of the contract's `AppConfig`. Unknown keys are ignored
/// (a newer launcher's settings do not stop an older one), but never silently: see
/// [`Settings::warnings`].
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Settings {
    /// Where updates come from: a repository folder (absolute or home-relative: a USB stick, a
    /// mounted share) or an `http://` / `https://` URL (any static server), as written by
    /// `kojibox-bundle publish`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub update_source: Option<String>,
    /// The bundle `installer.start` installs (a path, absolute or home-relative).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub install_source: Option<String>,
    /// The one user every service runs as when kojibox runs as root. Default: none, each
    /// service gets a user of its own (see `kojibox_proc::own_service_user`); a user named here
    /// is shared by every service, so they can read each other's environment and data.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_user: Option<String>,
    /// Accepts `serviceUser` `root` (or any uid 0 user): services then run with every privilege.
    /// Refused without it.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub allow_root_services: bool,
    /// Where the API listens (a loopback `address:port`; default `127.0.0.1:0`, any free port).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<String>,
    /// Cap of one service's log files in `app/logs/`, in MiB (default 100): the oldest segments
    /// are deleted beyond it.
    #[serde(rename = "logMaxMBPerService", skip_serializing_if = "Option::is_none")]
    pub log_max_mb_per_service: Option<u64>,
    /// Cap of all the log files in `app/logs/`, in MiB (default 1024).
    #[serde(rename = "logMaxMBTotal", skip_serializing_if = "Option::is_none")]
    pub log_max_mb_total: Option<u64>,
}

/// Redacting: `updateSource` may carry credentials (`https://user:pass@host/repo?token=T`).
impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field(
                "update_source",
                &self.update_source.as_deref().map(redact_url),
            )
            .field("install_source", &self.install_source)
            .field("service_user", &self.service_user)
            .field("allow_root_services", &self.allow_root_services)
            .field("listen", &self.listen)
            .field("log_max_mb_per_service", &self.log_max_mb_per_service)
            .field("log_max_mb_total", &self.log_max_mb_total)
            .finish()
    }
}

/// An address with its credentials replaced by `***`: the user name and password
/// (`https://***@host/repo`) and every query value (`?token=***`); a fragment is dropped. Text
/// that is not `scheme://...` is returned as it is. Used wherever `updateSource` is shown.
pub fn redact_url(text: &str) -> String {
    let Some((scheme, rest)) = text.split_once("://") else {
        return text.to_owned();
    };
    let rest = rest.split('#').next().unwrap_or_default();
    let (before_query, query) = match rest.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (rest, None),
    };
    let (authority, path) = match before_query.find('/') {
        Some(at) => before_query.split_at(at),
        None => (before_query, ""),
    };
    let host = match authority.rsplit_once('@') {
        Some((_, host)) => format!("***@{host}"),
        None => authority.to_owned(),
    };
    let mut out = format!("{scheme}://{host}{path}");
    if let Some(query) = query {
        let pairs: Vec<String> = query
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|p| format!("{}=***", p.split('=').next().unwrap_or_default()))
            .collect();
        out.push('?');
        out.push_str(&pairs.join("&"));
    }
    out
}

/// Every key `settings.json` may hold (the fields of [`Settings`], as written).
pub const KEYS: &[&str] = &[
    "updateSource",
    "installSource",
    "serviceUser",
    "allowRootServices",
    "listen",
    "logMaxMBPerService",
    "logMaxMBTotal",
];

impl Settings {
    /// Reads the settings; missing file = defaults.
    pub fn load(home: &Home) -> Result<Settings> {
        Ok(crate::fs::read_json(&home.settings_file())?.unwrap_or_default())
    }

    /// One warning per unknown key of `settings.json`, naming it and, when it looks like a typo
    /// of a known key, that key: "`<file>`: unknown key `updateSoruce` is ignored (did you mean
    /// `updateSource`?)". The settings still load; a missing or unreadable file has no warning
    /// here ([`Settings::load`] reports it).
    pub fn warnings(home: &Home) -> Vec<String> {
        let path = home.settings_file();
        let Ok(Some(serde_json::Value::Object(map))) =
            crate::fs::read_json::<serde_json::Value>(&path)
        else {
            return Vec::new();
        };
        map.keys()
            .filter(|key| !KEYS.contains(&key.as_str()))
            .map(|key| {
                let hint = closest(key).map_or_else(
                    || format!(" (known keys: {})", KEYS.join(", ")),
                    |known| format!(" (did you mean `{known}`?)"),
                );
                format!("{}: unknown key `{key}` is ignored{hint}", path.display())
            })
            .collect()
    }
}

/// The known key `key` is most likely a typo of: within a third of its length in edits (case
/// aside), at least one.
fn closest(key: &str) -> Option<&'static str> {
    let key = key.to_ascii_lowercase();
    KEYS.iter()
        .map(|known| (distance(&key, &known.to_ascii_lowercase()), *known))
        .filter(|(d, known)| *d <= (known.len() / 3).max(1))
        .min_by_key(|(d, _)| *d)
        .map(|(_, known)| known)
}

/// Edit distance (insertions, deletions, substitutions, and swaps of neighbours).
fn distance(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let mut rows = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in rows.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in rows[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut d = (rows[i - 1][j] + 1)
                .min(rows[i][j - 1] + 1)
                .min(rows[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                d = d.min(rows[i - 2][j - 2] + 1);
            }
            rows[i][j] = d;
        }
    }
    rows[a.len()][b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn home() -> (tempfile::TempDir, Home) {
        let dir = tempfile::tempdir().unwrap();
        let home = Home::at(dir.path()).unwrap();
        std::fs::create_dir_all(home.settings_file().parent().unwrap()).unwrap();
        (dir, home)
    }

    #[test]
    fn keys_are_the_fields() {
        let all = Settings {
            update_source: Some(String::new()),
            install_source: Some(String::new()),
            service_user: Some(String::new()),
            allow_root_services: true,
            listen: Some(String::new()),
            log_max_mb_per_service: Some(1),
            log_max_mb_total: Some(1),
        };
        let value = serde_json::to_value(all).unwrap();
        let mut written: Vec<&str> = value
            .as_object()
            .unwrap()
            .keys()
            .map(|k| k.as_str())
            .collect();
        let mut keys = KEYS.to_vec();
        written.sort_unstable();
        keys.sort_unstable();
        assert_eq!(written, keys);
    }

    #[test]
    fn an_unknown_key_is_named_with_the_key_it_looks_like() {
        let (_dir, home) = home();
        std::fs::write(
            home.settings_file(),
            r#"{"updateSoruce": "/mnt/usb", "listen": "127.0.0.1:0", "colour": "blue"}"#,
        )
        .unwrap();
        let settings = Settings::load(&home).unwrap();
        assert_eq!(settings.update_source, None);
        assert_eq!(settings.listen.as_deref(), Some("127.0.0.1:0"));
        let warnings = Settings::warnings(&home);
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        // In the file's order.
        assert!(
            warnings[1].contains("unknown key `colour` is ignored (known keys: updateSource"),
            "{warnings:?}"
        );
        assert!(
            warnings[0].contains("settings.json: unknown key `updateSoruce` is ignored (did you mean `updateSource`?)"),
            "{warnings:?}"
        );
    }

    #[test]
    fn known_keys_or_no_file_warn_nothing() {
        let (_dir, home) = home();
        assert!(Settings::warnings(&home).is_empty());
        std::fs::write(home.settings_file(), r#"{"updateSource": "/mnt/usb"}"#).unwrap();
        assert!(Settings::warnings(&home).is_empty());
    }

    #[test]
    fn typos_are_near_and_others_far() {
        assert_eq!(closest("updateSoruce"), Some("updateSource"));
        assert_eq!(closest("installsource"), Some("installSource"));
        assert_eq!(closest("lisen"), Some("listen"));
        assert_eq!(closest("allowRootService"), Some("allowRootServices"));
        assert_eq!(closest("colour"), None);
    }
}
