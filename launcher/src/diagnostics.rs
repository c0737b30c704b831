//! `diagnostics.create`: a zip for support, free of secrets.
//!
//! The zip is `app/cache/diag-<stamp>.zip` (mode 0600), `stamp` the UTC time in a form every OS
//! takes in a file name (`20261202T081500Z`; `20261202T081500Z-2`, `-3`, … when a zip of that
//! second exists). The newest [`KEEP`] zips are kept; older ones are removed after a new one is
//! written. It holds one folder per section, and `includes` names exactly the folders present:
//!
//! - `logs/`: each service's newest [`LOG_ENTRIES`] entries (`<id>.jsonl`), the daemon's own
//!   (`kojibox.jsonl`), and the end of `app/logs/daemon.log` when there is one;
//! - `config/`: every JSON file of `app/config/` as stored (app, settings, ports, services,
//!   projects, and domains and proxy once they exist);
//! - `manifest/`: the installed manifest, and the versions: kojibox's, the bundle's, each
//!   service's, the rollback watermark, the last install and update;
//! - `services/`: every service's state (`states.json`) and its definition as installed and
//!   configured, placeholders unexpanded (`<id>.json`: the manifest's entry, the template, the
//!   settings);
//! - `ports/`: the port registry and who listens on each registered port now;
//! - `system/`: OS, kernel, CPU, memory, free disk, kojibox's version and uptime;
//! - `summary.json`, always, outside the sections: when, what, every file and its size, and
//!   notes (a secret store that could not be read, a file that could not be).
//!
//! The result of `kojibox doctor tls` (`trust/`) is to come (the `trust` function here).
//!
//! Never inside: secret values, the secret store and its key files (`app/secrets/`), the API
//! token, the passphrase, private keys (`app/certs/*key*`). Belt and braces, every file put
//! into the zip goes through two filters:
//!
//! 1. in JSON, a string whose key looks secret ([`looks_secret`]: `*PASSWORD*`, `*SECRET*`,
//!    `*TOKEN*`, `*KEY*`, …, in any case) is replaced by [`MASKED`], and so is the value of an
//!    argument such as `--db-password=…` or the one after `--api-key`; a value made only of
//!    placeholders (`${secret.app.DB_PASSWORD}`) is kept, since it names a secret and is not
//!    one. Credentials in URLs (`https://user:pass@host/?token=…`) are masked too;
//! 2. then everything, JSON or text, goes through a [`Redactor`] built from every value of the
//!    secret store (all scopes), every value masked in step 1, and the API token, each also in
//!    its encoded forms (base64 standard and URL-safe, hex, percent-encoding, JSON escapes).
//!
//! A secret store that cannot be read (locked by a passphrase the daemon was not given, or
//! broken) is said so in the summary; step 1 and the token still apply. The browser sessions'
//! secrets live in the daemon's memory only and nothing that goes into the zip can hold them.
//!
//! The zip is built in memory and written with [`kojibox_home::fs::write_atomic`] (a temporary
//! file in `app/cache/`, fsync, rename; the temporary file removed on any error): a zip that
//! cannot be written (a full disk, a folder that cannot be written) leaves no file and answers
//! an error naming the zip.

use std::borrow::Cow;
use std::io::{Read as _, Seek as _, Write as _};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use kojibox_home::Home;
use kojibox_home::task::blocking;
use kojibox_manifests::model::{DiagnosticsBundle, LogEntry, RuntimeManifest, ServiceState};
use kojibox_secrets::{SecretStore, Vault};
use kojibox_supervisor::Supervisor;
use kojibox_supervisor::logs::Redactor;
use kojibox_supervisor::logs::query::{Query, query};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::api::state::AppState;
use crate::error::{Error, Result};

/// Zips kept in `app/cache/`: writing a new one removes all but the newest this many.
pub const KEEP: usize = 5;
/// The newest entries of each service's log put into the zip.
pub const LOG_ENTRIES: usize = 1000;
/// The file, at the zip's root, saying what the zip holds.
pub const SUMMARY: &str = "summary.json";
/// What replaces a value whose name looks secret.
pub const MASKED: &str = "[masked]";
/// The service id the daemon's own log entries have.
pub const DAEMON_ID: &str = "kojibox";
/// The sections a zip may hold, in the order `includes` lists them.
pub const SECTIONS: [&str; 7] = [
    "logs", "config", "manifest", "services", "ports", "system", "trust",
];
/// Parts of a name (compared in upper case) that make its value a secret.
pub const SECRET_NAMES: [&str; 8] = [
    "PASSWORD",
    "PASSWD",
    "PASSPHRASE",
    "SECRET",
    "TOKEN",
    "KEY",
    "CREDENTIAL",
    "PRIVATE",
];

/// The end of `app/logs/daemon.log` put into the zip.
const DAEMON_LOG_TAIL: u64 = 256 << 10;
/// A configuration file larger than this is left out (and the summary says so).
const MAX_FILE: u64 = 4 << 20;
/// How deep below `app/config/` files are looked for.
const CONFIG_DEPTH: usize = 4;
/// One zip at a time, so two calls in the same second never pick the same name.
static WRITING: Mutex<()> = Mutex::new(());

/// `diagnostics.create`.
pub async fn create(state: &AppState) -> Result<DiagnosticsBundle> {
    let job = Job {
        home: state.home.clone(),
        supervisor: Arc::clone(&state.supervisor),
        vault: Arc::clone(&state.vault),
        token: state.token.clone(),
        api_port: state.port,
    };
    blocking(move || job.run()).await
}

/// What `summary.json` says.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    /// When the zip was made (RFC 3339, UTC).
    pub created_at: String,
    /// The kojibox version that made it.
    pub kojibox: String,
    /// The sections it holds (as `DiagnosticsBundle.includes`).
    pub includes: Vec<String>,
    /// Every file but this one, with its size before compression.
    pub files: Vec<FileInfo>,
    /// How secrets were kept out.
    pub redaction: Redaction,
    /// What the reader should know: what could not be read, what was left out.
    pub notes: Vec<String>,
}

/// One file of the zip.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FileInfo {
    /// Its name in the zip (`logs/web.jsonl`).
    pub name: String,
    /// Its size before compression.
    pub bytes: u64,
}

/// How secrets were kept out of a zip (counts only, never a name or a value).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Redaction {
    /// The secret store: `read`, `none` (the home has none), `locked` or `unreadable`.
    pub secret_store: String,
    /// Values of the secret store redacted.
    pub secret_values: usize,
    /// Values masked because of their names.
    pub masked_by_name: usize,
    /// Whether the API token was among the values redacted.
    pub api_token: bool,
}

/// The summary of the zip at `path` (for `kojibox diagnose`).
pub fn read_summary(path: &Path) -> Result<Summary> {
    let file = std::fs::File::open(path).map_err(Error::io("open", path))?;
    let bad = |e: String| Error::Internal {
        detail: format!("{} is not a diagnostics zip: {e}", path.display()),
    };
    let mut archive = zip::ZipArchive::new(file).map_err(|e| bad(e.to_string()))?;
    let mut entry = archive.by_name(SUMMARY).map_err(|e| bad(e.to_string()))?;
    let mut text = String::new();
    entry
        .read_to_string(&mut text)
        .map_err(Error::io("read", path))?;
    serde_json::from_str(&text).map_err(|e| bad(e.to_string()))
}

/// What a zip is made from: the daemon's state, taken by value onto a blocking thread.
struct Job {
    home: Home,
    supervisor: Arc<Supervisor>,
    vault: Arc<Vault>,
    token: String,
    api_port: u16,
}

impl Job {
    fn run(self) -> Result<DiagnosticsBundle> {
        let _one = WRITING
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = jiff::Timestamp::now();
        let created_at = now.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string();
        let stamp = now.strftime("%Y%m%dT%H%M%SZ").to_string();
        let home = &self.home;

        let mut out = Collected::default();
        let states = self.supervisor.list();
        let manifest = read_manifest(home, &mut out);
        self.logs(&mut out);
        config(home, &mut out);
        manifest_section(home, manifest.as_ref(), &mut out);
        services(
            home,
            manifest.as_ref(),
            &states,
            &self.supervisor.ids(),
            &mut out,
        );
        ports(home, &states, self.api_port, &mut out);
        out.json("system/system.json", system(home));
        if let Some(files) = trust(home) {
            for (name, value) in files {
                out.json(name, value);
            }
        }

        let store = secret_values(home, &self.vault);
        if let Some(note) = &store.note {
            out.notes.push(note.clone());
        }
        let mut values: Vec<String> = store.values.clone();
        values.extend(out.masked.iter().filter(|v| worth_redacting(v)).cloned());
        values.push(self.token.clone());
        let redactor = Redactor::new(values.iter().flat_map(|v| encodings(v)));

        let mut files: Vec<(String, Vec<u8>)> = out
            .files
            .iter()
            .map(|(name, doc)| (redactor.line(name).into_owned(), doc.render(&redactor)))
            .collect();
        let includes: Vec<String> = SECTIONS
            .iter()
            .filter(|s| files.iter().any(|(name, _)| section(name) == Some(**s)))
            .map(|s| (*s).to_owned())
            .collect();
        let summary = Summary {
            created_at: created_at.clone(),
            kojibox: env!("CARGO_PKG_VERSION").to_owned(),
            includes: includes.clone(),
            files: files
                .iter()
                .map(|(name, bytes)| FileInfo {
                    name: name.clone(),
                    bytes: bytes.len() as u64,
                })
                .collect(),
            redaction: Redaction {
                secret_store: store.status.to_owned(),
                secret_values: store.values.len(),
                masked_by_name: out.masked.len(),
                api_token: !self.token.is_empty(),
            },
            notes: out.notes.clone(),
        };
        let summary = serde_json::to_value(&summary).map_err(|e| Error::Internal {
            detail: format!("the diagnostics summary: {e}"),
        })?;
        files.insert(
            0,
            (SUMMARY.to_owned(), Doc::Json(summary).render(&redactor)),
        );

        let bytes = zip(&files, zip_time(now)).map_err(|e| Error::Internal {
            detail: format!("could not build the diagnostics zip: {e}"),
        })?;
        let dir = home.diagnostics_dir();
        kojibox_home::fs::remove_stale_temporaries(&dir);
        let path = free_name(home, &stamp);
        kojibox_home::fs::write_atomic(home, &path, &bytes).map_err(|e| naming(&path, e))?;
        prune(&dir, KEEP);
        Ok(DiagnosticsBundle {
            path: home.rel(&path),
            created_at,
            includes,
        })
    }

    /// `logs/`: each service's newest entries and the daemon's, from the log store, else (a
    /// service whose store answers nothing) the in-memory tail; the end of `daemon.log`.
    fn logs(&self, out: &mut Collected) {
        let home = &self.home;
        let mut ids = self.supervisor.ids();
        ids.push(DAEMON_ID.to_owned());
        for id in ids {
            let mut entries: Vec<LogEntry> =
                match query(home, &Query::newest(Some(vec![id.clone()]), LOG_ENTRIES)) {
                    Ok(page) => {
                        if page.skipped > 0 {
                            out.notes.push(format!(
                                "logs/{id}.jsonl: {} lines of the log store that are not entries \
                                 were skipped",
                                page.skipped
                            ));
                        }
                        page.hits.into_iter().map(|hit| hit.entry).collect()
                    }
                    Err(e) => {
                        out.notes.push(format!(
                            "logs/{id}.jsonl: the log store could not be read: {e}"
                        ));
                        Vec::new()
                    }
                };
            if entries.is_empty()
                && let Ok(tail) = self.supervisor.logs(&id, Some(LOG_ENTRIES as u32))
            {
                entries = tail;
            }
            if entries.is_empty() && id == DAEMON_ID {
                continue;
            }
            out.files
                .push((format!("logs/{id}.jsonl"), Doc::Entries(entries)));
        }
        let daemon_log = home.daemon_log();
        match tail_of(&daemon_log, DAEMON_LOG_TAIL) {
            Ok(Some(text)) => out.text("logs/daemon.log", text),
            Ok(None) => {}
            Err(e) => out.notes.push(format!(
                "logs/daemon.log: could not read {}: {e}",
                daemon_log.display()
            )),
        }
    }
}

/// A file of the zip, before it is redacted.
enum Doc {
    /// Written as pretty JSON.
    Json(Value),
    /// Written as it is.
    Text(String),
    /// Written as JSON lines.
    Entries(Vec<LogEntry>),
}

impl Doc {
    /// The bytes that go into the zip: every string through `redactor`, then the whole text.
    fn render(&self, redactor: &Redactor) -> Vec<u8> {
        let text = match self {
            Doc::Json(value) => {
                let mut value = value.clone();
                redact_value(&mut value, redactor);
                let mut text = serde_json::to_string_pretty(&value).unwrap_or_default();
                text.push('\n');
                text
            }
            Doc::Text(text) => text.clone(),
            Doc::Entries(entries) => {
                let mut text = String::new();
                for entry in entries {
                    let mut entry = entry.clone();
                    entry.message = redactor.line(&entry.message).into_owned();
                    for value in entry.fields.values_mut() {
                        *value = redactor.line(value).into_owned();
                    }
                    text.push_str(&serde_json::to_string(&entry).unwrap_or_default());
                    text.push('\n');
                }
                text
            }
        };
        redactor.text(&text).into_owned().into_bytes()
    }
}

/// What was gathered: the files, the notes, and the values masked by name.
#[derive(Default)]
struct Collected {
    files: Vec<(String, Doc)>,
    notes: Vec<String>,
    /// Values masked because of their names (or taken out of URLs), to redact wherever else
    /// they appear.
    masked: Vec<String>,
}

impl Collected {
    /// Adds a JSON file, its secret-looking values masked.
    fn json(&mut self, name: impl Into<String>, mut value: Value) {
        mask(&mut value, &mut self.masked);
        self.files.push((name.into(), Doc::Json(value)));
    }

    /// Adds a text file.
    fn text(&mut self, name: impl Into<String>, text: String) {
        self.files.push((name.into(), Doc::Text(text)));
    }

    /// Adds the JSON file at `path` as `name` when it exists; one that does not parse is added
    /// as text (still redacted), with a note.
    fn file(&mut self, name: &str, path: &Path) {
        match read_file(path) {
            Ok(None) => {}
            Ok(Some(Stored::Json(value))) => self.json(name, value),
            Ok(Some(Stored::Text(text, why))) => {
                self.notes.push(format!(
                    "{name}: {} is not valid JSON ({why}): included as text",
                    path.display()
                ));
                self.text(name, text);
            }
            Err(why) => self.notes.push(format!("{name}: left out: {why}")),
        }
    }
}

/// A file read from the home.
enum Stored {
    Json(Value),
    /// The text, and why it is not JSON.
    Text(String, String),
}

/// Reads the file at `path`: `None` when it does not exist; an error (as text) when it cannot be
/// read, is too large, is not a regular file (a link is never followed) or must never leave
/// the home.
fn read_file(path: &Path) -> std::result::Result<Option<Stored>, String> {
    if never_inside(path) {
        return Err(format!("{} must never leave the home", path.display()));
    }
    let meta = match std::fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("could not inspect {}: {e}", path.display())),
    };
    if !meta.is_file() {
        return Err(format!("{} is not a regular file", path.display()));
    }
    if meta.len() > MAX_FILE {
        return Err(format!(
            "{} is {} bytes, more than the {MAX_FILE} put into a zip",
            path.display(),
            meta.len()
        ));
    }
    let bytes =
        std::fs::read(path).map_err(|e| format!("could not read {}: {e}", path.display()))?;
    Ok(Some(match serde_json::from_slice::<Value>(&bytes) {
        Ok(value) => Stored::Json(value),
        Err(e) => Stored::Text(String::from_utf8_lossy(&bytes).into_owned(), e.to_string()),
    }))
}

/// Whether `path` is one of the files that never go into a zip, whatever links or names say:
/// anything under `app/secrets/` (the store, its key), the API token, private keys under
/// `app/certs/`.
fn never_inside(path: &Path) -> bool {
    let text = path.to_string_lossy().replace('\\', "/");
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    text.contains("/app/secrets/")
        || text.ends_with("/app/state/api-token")
        || (text.contains("/app/certs/") && name.contains("key"))
}

/// The section a zip entry belongs to (its first folder).
fn section(name: &str) -> Option<&str> {
    name.split_once('/').map(|(first, _)| first)
}

/// `runtime/manifest.json`, parsed, when it is installed (a note when it cannot be read).
fn read_manifest(home: &Home, out: &mut Collected) -> Option<RuntimeManifest> {
    match kojibox_home::fs::read_json::<RuntimeManifest>(&home.manifest()) {
        Ok(manifest) => manifest,
        Err(e) => {
            out.notes.push(format!(
                "manifest: the installed manifest could not be read: {e}"
            ));
            None
        }
    }
}

/// `config/`: every JSON file below `app/config/` (no link followed, no temporary file).
fn config(home: &Home, out: &mut Collected) {
    let mut found = Vec::new();
    json_files(&home.config(), "", 0, &mut found);
    for (rel, path) in found {
        out.file(&format!("config/{rel}"), &path);
    }
}

/// The `*.json` regular files below `dir` (as `rel`-prefixed names), sorted, links not
/// followed, temporary and hidden files skipped.
fn json_files(dir: &Path, rel: &str, depth: usize, found: &mut Vec<(String, PathBuf)>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<_> = entries.flatten().collect();
    entries.sort_by_key(std::fs::DirEntry::file_name);
    for entry in entries {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        let inner = format!("{rel}{name}");
        if kind.is_dir() && depth < CONFIG_DEPTH {
            json_files(&entry.path(), &format!("{inner}/"), depth + 1, found);
        } else if kind.is_file() && name.ends_with(".json") {
            found.push((inner, entry.path()));
        }
    }
}

/// `manifest/`: the installed manifest, the versions, the last install and update.
fn manifest_section(home: &Home, manifest: Option<&RuntimeManifest>, out: &mut Collected) {
    out.file("manifest/manifest.json", &home.manifest());
    let indexes: Vec<String> = std::fs::read_dir(home.indexes())
        .map(|entries| {
            let mut names: Vec<String> = entries
                .flatten()
                .filter_map(|e| {
                    let name = e.file_name().to_string_lossy().into_owned();
                    name.strip_suffix(".json").map(str::to_owned)
                })
                .collect();
            names.sort();
            names
        })
        .unwrap_or_default();
    let versions = json!({
        "kojibox": env!("CARGO_PKG_VERSION"),
        "bundle": manifest.map(|m| json!({
            "version": m.version,
            "createdAt": m.bundle.created_at,
            "source": m.bundle.source,
        })),
        "services": manifest.map(|m| m.services.iter().map(|s| json!({
            "name": s.name,
            "version": s.version,
            "target": s.target(),
        })).collect::<Vec<_>>()),
        "installedIndexes": indexes,
    });
    out.json("manifest/versions.json", versions);
    out.file("manifest/watermark.json", &home.watermark_file());
    out.file("manifest/installer.json", &home.installer_status());
    out.file("manifest/update-journal.json", &home.update_journal());
    out.file("manifest/last-update.json", &home.last_update());
    out.file(
        "manifest/self-update-failed.json",
        &home.self_update_failed(),
    );
}

/// `services/`: every state, and each service's definition as installed and configured, with
/// its placeholders unexpanded.
fn services(
    home: &Home,
    manifest: Option<&RuntimeManifest>,
    states: &[ServiceState],
    supervised: &[String],
    out: &mut Collected,
) {
    out.json(
        "services/states.json",
        serde_json::to_value(states).unwrap_or_default(),
    );
    let installed: Vec<_> = manifest
        .map(|m| kojibox_runtime::installed::host_services(m).collect())
        .unwrap_or_default();
    let mut ids: Vec<String> = installed.iter().map(|b| b.name.clone()).collect();
    for id in supervised {
        if !ids.contains(id) {
            ids.push(id.clone());
        }
    }
    for id in ids {
        if !kojibox_manifests::recipe::is_service_id(&id) {
            continue;
        }
        let mut notes = Vec::new();
        let mut stored = |path: &Path| match read_file(path) {
            Ok(Some(Stored::Json(value))) => value,
            Ok(Some(Stored::Text(_, why))) => {
                notes.push(format!(
                    "services/{id}.json: {} is not valid JSON ({why})",
                    path.display()
                ));
                Value::Null
            }
            Ok(None) => Value::Null,
            Err(why) => {
                notes.push(format!("services/{id}.json: {why}"));
                Value::Null
            }
        };
        let template = stored(&home.service_template(&id));
        let settings = stored(&home.service_config(&id));
        let binary = installed
            .iter()
            .find(|b| b.name == id)
            .and_then(|b| serde_json::to_value(b).ok())
            .unwrap_or_default();
        let definition = json!({
            "id": id,
            "binary": binary,
            "template": template,
            "settings": settings,
        });
        out.notes.extend(notes);
        out.json(format!("services/{id}.json"), definition);
    }
}

/// `ports/`: the registry, the API's port, who listens on each registered port now and what
/// each running service listens on.
fn ports(home: &Home, states: &[ServiceState], api_port: u16, out: &mut Collected) {
    let registry = match read_file(&home.port_registry()) {
        Ok(Some(Stored::Json(value))) => value,
        Ok(Some(Stored::Text(_, why))) => {
            out.notes.push(format!(
                "ports: the port registry is not valid JSON ({why})"
            ));
            Value::Null
        }
        Ok(None) => Value::Null,
        Err(why) => {
            out.notes.push(format!("ports: {why}"));
            Value::Null
        }
    };
    let trees: Vec<(&str, Vec<u32>)> = states
        .iter()
        .filter_map(|s| Some((s.id.as_str(), kojibox_proc::usage::process_tree(s.pid?))))
        .collect();
    let me = std::process::id();
    let owner_of = |pid: u32| -> Option<&str> {
        if pid == me {
            return Some(DAEMON_ID);
        }
        trees
            .iter()
            .find(|(_, tree)| tree.contains(&pid))
            .map(|(id, _)| *id)
    };
    let mut wanted: Vec<(String, u16)> = vec![(format!("{DAEMON_ID}.api"), api_port)];
    if let Some(assigned) = registry.get("assigned").and_then(Value::as_object) {
        for (key, port) in assigned {
            if let Some(port) = port.as_u64().and_then(|p| u16::try_from(p).ok()) {
                wanted.push((key.clone(), port));
            }
        }
    }
    let live: Vec<Value> = wanted
        .iter()
        .map(|(key, port)| {
            let owner = kojibox_proc::port_owner(*port);
            json!({
                "key": key,
                "service": kojibox_config::ports::owner(key),
                "port": port,
                "ownerPid": owner,
                "ownerService": owner.and_then(owner_of),
            })
        })
        .collect();
    let listening: serde_json::Map<String, Value> = trees
        .iter()
        .map(|(id, tree)| {
            (
                (*id).to_owned(),
                json!(kojibox_proc::usage::listening_ports(tree)),
            )
        })
        .collect();
    if !cfg!(target_os = "linux") {
        out.notes
            .push("ports: live owners are found on Linux only".to_owned());
    }
    out.json(
        "ports/ports.json",
        json!({
            "registry": registry,
            "live": live,
            "listening": listening,
        }),
    );
}

/// `system/system.json`: what this machine is, and how long kojibox has run.
fn system(home: &Home) -> Value {
    json!({
        "kojibox": {
            "version": env!("CARGO_PKG_VERSION"),
            "executable": std::env::current_exe().ok(),
            "pid": std::process::id(),
            "uptimeSec": daemon_uptime(),
            "home": home.root(),
        },
        "os": {
            "family": std::env::consts::OS,
            "arch": std::env::consts::ARCH,
            "name": os_name(),
            "kernel": kernel(),
        },
        "cpu": {
            "model": cpu_model(),
            "count": kojibox_proc::usage::cpu_count(),
        },
        "memory": {
            "totalMB": meminfo("MemTotal:").map(|kb| kb / 1024),
            "availableMB": meminfo("MemAvailable:").map(|kb| kb / 1024),
        },
        "disk": disk(home.root()),
        "uptimeSec": system_uptime().map(|s| s as u64),
        "user": user(),
    })
}

/// The seam for `trust/`: the result of `kojibox doctor tls` (the local CA, its trust in the
/// system and browser stores, the name-constraint self-test) once that command exists. Until
/// then there is nothing, and `includes` does not name `trust`.
fn trust(home: &Home) -> Option<Vec<(String, Value)>> {
    let _ = home;
    None
}

/// The secret store's values, to redact, and what to say about them.
struct StoreValues {
    values: Vec<String>,
    status: &'static str,
    note: Option<String>,
}

/// Every value of the secret store, in every scope. A home without a store file has none (the
/// store is not opened, so no key is made for it); a locked or broken store says why.
fn secret_values(home: &Home, vault: &Vault) -> StoreValues {
    if !home.secret_store().exists() {
        return StoreValues {
            values: Vec::new(),
            status: "none",
            note: None,
        };
    }
    let cannot = |status: &'static str, why: String| StoreValues {
        values: Vec::new(),
        status,
        note: Some(format!(
            "secrets: {why}; its values could not be read, so they were not looked for: only \
             values whose names look secret ({}) and the API token were masked",
            SECRET_NAMES.map(|n| format!("*{n}*")).join(", ")
        )),
    };
    let store = match vault.store() {
        Ok(store) => store,
        Err(_) if SecretStore::is_locked(home) => {
            return cannot(
                "locked",
                "the secret store is protected by a passphrase this daemon was not given".into(),
            );
        }
        Err(e) => {
            return cannot(
                "unreadable",
                format!("the secret store could not be opened: {e}"),
            );
        }
    };
    let scopes = match store.list() {
        Ok(scopes) => scopes,
        Err(e) => {
            return cannot(
                "unreadable",
                format!("the secret store could not be read: {e}"),
            );
        }
    };
    let mut values = Vec::new();
    let mut failed = 0;
    for (scope, keys) in scopes {
        for key in keys {
            match store.get(scope, &key) {
                Ok(value) => values.push(value.expose().to_owned()),
                Err(_) => failed += 1,
            }
        }
    }
    StoreValues {
        values,
        status: "read",
        note: (failed > 0).then(|| {
            format!("secrets: {failed} values of the secret store could not be read (the store changed meanwhile?)")
        }),
    }
}

/// Whether a value masked by name is also worth redacting everywhere else: not one that ordinary
/// text is full of (`true`, `1234`), which would garble every file.
fn worth_redacting(value: &str) -> bool {
    let lower = value.trim().to_ascii_lowercase();
    lower.chars().count() >= 6
        && !lower.chars().all(|c| c.is_ascii_digit())
        && !["true", "false", "null", "none", "changeme"].contains(&lower.as_str())
}

/// `value` and the forms it may be found in when a program encoded it: base64 (standard and
/// URL-safe, padded or not, and the part that does not depend on what comes before it in a
/// longer stream), hex (any case: the redactor ignores case), percent-encoded, JSON-escaped.
fn encodings(value: &str) -> Vec<String> {
    let bytes = value.as_bytes();
    let mut out = vec![value.to_owned(), hex::encode(bytes)];
    for url in [false, true] {
        out.push(base64(bytes, url, true));
        out.push(base64(bytes, url, false));
        // Inside a longer base64 stream the value starts at any of 3 offsets: from the first
        // whole 3-byte group on, its characters are the same whatever came before.
        for skip in 1..3 {
            if let Some(rest) = bytes.get(skip..) {
                let whole = rest.len() / 3 * 3;
                if whole >= 6 {
                    out.push(base64(&rest[..whole], url, false));
                }
            }
        }
    }
    if bytes.len() >= 6 {
        let whole = bytes.len() / 3 * 3;
        out.push(base64(&bytes[..whole], false, false));
        out.push(base64(&bytes[..whole], true, false));
    }
    out.push(percent(bytes));
    if let Ok(quoted) = serde_json::to_string(value)
        && let Some(inner) = quoted.strip_prefix('"').and_then(|q| q.strip_suffix('"'))
    {
        out.push(inner.to_owned());
    }
    out.sort();
    out.dedup();
    out
}

/// Base64 of `bytes`: the standard alphabet or the URL-safe one, with or without padding.
fn base64(bytes: &[u8], url: bool, pad: bool) -> String {
    const STANDARD: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let symbol = |i: u32| -> char {
        match (i & 63, url) {
            (62, true) => '-',
            (63, true) => '_',
            (i, _) => char::from(STANDARD[i as usize]),
        }
    };
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let at = |i: usize| u32::from(chunk.get(i).copied().unwrap_or(0));
        let n = (at(0) << 16) | (at(1) << 8) | at(2);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(symbol(n >> (18 - 6 * i)));
            } else if pad {
                out.push('=');
            }
        }
    }
    out
}

/// `bytes` percent-encoded (everything but letters, digits and `-._~`).
fn percent(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for &b in bytes {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Whether `name` (an env var, a JSON key, an argument) looks like it holds a secret.
pub fn looks_secret(name: &str) -> bool {
    // kojibox's own field `key` (a port's key in the registry, `kojibox.api`) names a thing,
    // it never holds a secret.
    if name == "key" {
        return false;
    }
    let upper = name.to_ascii_uppercase();
    SECRET_NAMES.iter().any(|part| upper.contains(part))
}

/// Whether `value` is made only of placeholders (`${secret.app.KEY}`): it names a secret, and
/// shows how the service gets it, but holds none.
fn only_placeholders(value: &str) -> bool {
    let mut rest = value;
    if rest.is_empty() {
        return false;
    }
    while !rest.is_empty() {
        let Some(inner) = rest.strip_prefix("${") else {
            return false;
        };
        let Some(end) = inner.find('}') else {
            return false;
        };
        rest = &inner[end + 1..];
    }
    true
}

/// Masks `s` (its value kept in `found`) unless it holds no secret.
fn hide(s: &mut String, found: &mut Vec<String>) {
    if s.is_empty() || only_placeholders(s) || s == MASKED {
        return;
    }
    found.push(std::mem::replace(s, MASKED.to_owned()));
}

/// Masks, in a JSON value, every string whose key looks secret, secret-looking arguments
/// (`--password=…`, the value after `--api-key`) and credentials in URLs; the values masked go
/// to `found`.
fn mask(value: &mut Value, found: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, v) in map.iter_mut() {
                match v {
                    Value::String(s) if looks_secret(key) => hide(s, found),
                    other => mask(other, found),
                }
            }
        }
        Value::Array(items) => {
            mask_args(items, found);
            items.iter_mut().for_each(|item| mask(item, found));
        }
        Value::String(s) => mask_url(s, found),
        _ => {}
    }
}

/// In a list of arguments: `NAME=VALUE` and `--name=value` with a secret-looking name, and the
/// argument after a secret-looking flag (`--api-key VALUE`).
fn mask_args(items: &mut [Value], found: &mut Vec<String>) {
    let mut after_flag = false;
    for item in items.iter_mut() {
        let Value::String(s) = item else {
            after_flag = false;
            continue;
        };
        if after_flag && !s.starts_with('-') {
            hide(s, found);
            after_flag = false;
            continue;
        }
        after_flag = false;
        if let Some((name, rest)) = s.split_once('=') {
            let bare = name.trim_start_matches('-');
            if looks_secret(bare) && !bare.contains(char::is_whitespace) && !rest.is_empty() {
                let mut rest = rest.to_owned();
                hide(&mut rest, found);
                *s = format!("{name}={rest}");
            }
        } else if s.starts_with('-') && looks_secret(s) {
            after_flag = true;
        }
    }
}

/// A URL with credentials (`scheme://user:pass@host/…?token=…`) loses them, as
/// [`kojibox_home::settings::redact_url`] shows it; the password and the query values go to
/// `found`.
fn mask_url(s: &mut String, found: &mut Vec<String>) {
    let Some((scheme, rest)) = s.split_once("://") else {
        return;
    };
    let scheme_ok = !scheme.is_empty()
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+.-".contains(c));
    if !scheme_ok || s.contains(char::is_whitespace) {
        return;
    }
    let shown = kojibox_home::settings::redact_url(s);
    if shown == *s {
        return;
    }
    let before_path = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if let Some((user, _)) = before_path.rsplit_once('@') {
        let secret = user.split_once(':').map_or(user, |(_, pass)| pass);
        if !secret.is_empty() {
            found.push(secret.to_owned());
        }
    }
    if let Some((_, query)) = rest.split('#').next().unwrap_or_default().split_once('?') {
        for pair in query.split('&') {
            if let Some((_, v)) = pair.split_once('=')
                && !v.is_empty()
            {
                found.push(v.to_owned());
            }
        }
    }
    *s = shown;
}

/// Every string of `value` (keys too) through `redactor`.
fn redact_value(value: &mut Value, redactor: &Redactor) {
    match value {
        Value::String(s) => {
            if let Cow::Owned(t) = redactor.text(s) {
                *s = t;
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| redact_value(v, redactor)),
        Value::Object(map) => {
            let entries = std::mem::take(map);
            for (key, mut v) in entries {
                redact_value(&mut v, redactor);
                map.insert(redactor.line(&key).into_owned(), v);
            }
        }
        _ => {}
    }
}

/// The last `limit` bytes of the file at `path`, from its first whole line; `None` when there
/// is no such file.
fn tail_of(path: &Path, limit: u64) -> std::io::Result<Option<String>> {
    let mut file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    if !file.metadata()?.is_file() {
        return Err(std::io::Error::other("not a regular file"));
    }
    let len = file.metadata()?.len();
    let start = len.saturating_sub(limit);
    file.seek(std::io::SeekFrom::Start(start))?;
    let mut bytes = Vec::new();
    file.take(limit).read_to_end(&mut bytes)?;
    if start > 0
        && let Some(at) = bytes.iter().position(|b| *b == b'\n')
    {
        bytes.drain(..=at);
    }
    Ok(Some(String::from_utf8_lossy(&bytes).into_owned()))
}

/// The zip of `files`, each 0600, compressed.
fn zip(files: &[(String, Vec<u8>)], mtime: zip::DateTime) -> zip::result::ZipResult<Vec<u8>> {
    let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .unix_permissions(0o600)
        .last_modified_time(mtime);
    for (name, bytes) in files {
        writer.start_file(name.as_str(), options)?;
        writer.write_all(bytes)?;
    }
    Ok(writer.finish()?.into_inner())
}

/// `now` as a zip entry's time (UTC; zip has no time zone).
fn zip_time(now: jiff::Timestamp) -> zip::DateTime {
    let t = now.to_zoned_datetime(jiff::tz::TimeZone::UTC);
    let part = |v: i8| u8::try_from(v).unwrap_or(0);
    u16::try_from(t.year())
        .ok()
        .and_then(|year| {
            zip::DateTime::from_date_and_time(
                year,
                part(t.month()),
                part(t.day()),
                part(t.hour()),
                part(t.minute()),
                part(t.second()),
            )
            .ok()
        })
        .unwrap_or_default()
}

/// `app/cache/diag-<stamp>.zip`, or `-2`, `-3`, … after the highest of the same stamp there is:
/// never a name an earlier zip had, even one pruned since (a name is one zip's).
fn free_name(home: &Home, stamp: &str) -> PathBuf {
    let highest = std::fs::read_dir(home.diagnostics_dir())
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| zip_order(&e.file_name().to_string_lossy()))
        .filter(|(s, _)| s == stamp)
        .map(|(_, n)| n)
        .max();
    let mut n = highest.map_or(1, |n| n + 1);
    loop {
        let path = if n == 1 {
            home.diagnostics_zip(stamp)
        } else {
            home.diagnostics_zip(&format!("{stamp}-{n}"))
        };
        if std::fs::symlink_metadata(&path).is_err() {
            return path;
        }
        n += 1;
    }
}

/// A zip's name as (stamp, number): `diag-20261202T081500Z.zip` is number 1, `…-2.zip` 2.
fn zip_order(name: &str) -> Option<(String, u32)> {
    let rest = name.strip_prefix("diag-")?.strip_suffix(".zip")?;
    let (stamp, n) = match rest.split_once('-') {
        Some((stamp, n)) => (stamp, n.parse().ok()?),
        None => (rest, 1),
    };
    let well_formed = stamp.len() == 16
        && stamp.char_indices().all(|(i, c)| match i {
            8 => c == 'T',
            15 => c == 'Z',
            _ => c.is_ascii_digit(),
        });
    well_formed.then(|| (stamp.to_owned(), n))
}

/// Removes all but the newest `keep` zips of `dir` (best effort: one that cannot be removed
/// stays).
fn prune(dir: &Path, keep: usize) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut zips: Vec<((String, u32), PathBuf)> = entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .filter_map(|e| Some((zip_order(&e.file_name().to_string_lossy())?, e.path())))
        .collect();
    zips.sort();
    let old = zips.len().saturating_sub(keep);
    for (_, path) in zips.drain(..old) {
        let _ = std::fs::remove_file(path);
    }
}

/// An error writing the zip, naming the zip (the home's error may name only its folder).
fn naming(path: &Path, e: kojibox_home::Error) -> Error {
    if e.to_string().contains(&path.display().to_string()) {
        return e.into();
    }
    let kind = match &e {
        kojibox_home::Error::Io { source, .. } => source.kind(),
        kojibox_home::Error::Planted { .. } | kojibox_home::Error::UnsafeHome { .. } => {
            std::io::ErrorKind::PermissionDenied
        }
        _ => std::io::ErrorKind::Other,
    };
    Error::Home(kojibox_home::Error::Io {
        action: "write the diagnostics zip",
        path: path.to_owned(),
        source: std::io::Error::new(kind, e.to_string()),
    })
}

// --- system facts (Linux reads `/proc`; elsewhere most are unknown) ------------------------

/// The first line of a file, trimmed, when it has one.
fn first_line(path: &str) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    let line = text.lines().next()?.trim();
    (!line.is_empty()).then(|| line.to_owned())
}

/// `/etc/os-release`'s `PRETTY_NAME`.
fn os_name() -> Option<String> {
    let text = std::fs::read_to_string("/etc/os-release").ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("PRETTY_NAME="))
        .map(|v| v.trim_matches('"').to_owned())
}

/// The kernel's name and release (`Linux 6.8.0-45-generic`).
fn kernel() -> Option<String> {
    let release = first_line("/proc/sys/kernel/osrelease")?;
    let name = first_line("/proc/sys/kernel/ostype").unwrap_or_else(|| "Linux".to_owned());
    Some(format!("{name} {release}"))
}

/// The CPU's model name.
fn cpu_model() -> Option<String> {
    let text = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    text.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        matches!(
            key.trim(),
            "model name" | "Model" | "Hardware" | "cpu model"
        )
        .then(|| value.trim().to_owned())
    })
}

/// A `/proc/meminfo` figure, in kB.
fn meminfo(field: &str) -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(field))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Seconds since boot.
fn system_uptime() -> Option<f64> {
    first_line("/proc/uptime")?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Seconds since this process (the daemon) started: its start time in clock ticks after boot,
/// at Linux's fixed 100 ticks a second (`USER_HZ`).
fn daemon_uptime() -> Option<u64> {
    let started = kojibox_proc::process_start_time(std::process::id())? as f64 / 100.0;
    Some((system_uptime()? - started).max(0.0) as u64)
}

/// Free and total space where the home is.
fn disk(path: &Path) -> Value {
    #[cfg(unix)]
    {
        match rustix::fs::statvfs(path) {
            Ok(st) => {
                let mb = |blocks: u64| blocks.saturating_mul(st.f_frsize) / (1 << 20);
                json!({"freeMB": mb(st.f_bavail), "totalMB": mb(st.f_blocks)})
            }
            Err(e) => json!({"error": e.to_string()}),
        }
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        Value::Null
    }
}

/// Who runs the daemon (by uid only).
fn user() -> Value {
    #[cfg(unix)]
    {
        let uid = rustix::process::geteuid().as_raw();
        json!({"uid": uid, "root": uid == 0})
    }
    #[cfg(not(unix))]
    {
        Value::Null
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_the_usual_encoders() {
        assert_eq!(base64(b"", false, true), "");
        assert_eq!(base64(b"f", false, true), "Zg==");
        assert_eq!(base64(b"fo", false, true), "Zm8=");
        assert_eq!(base64(b"foo", false, true), "Zm9v");
        assert_eq!(base64(b"foob", false, false), "Zm9vYg");
        assert_eq!(base64(b"\xfb\xff\xbf", false, true), "+/+/");
        assert_eq!(base64(b"\xfb\xff\xbf", true, true), "-_-_");
    }

    #[test]
    fn secret_looking_values_are_masked_and_placeholders_kept() {
        let mut value = json!({
            "env": {
                "DB_PASSWORD": "hunter2-literal",
                "API_TOKEN": "${secret.app.token}",
                "db_key": "k-123456",
                "PORT": "5432",
            },
            "args": ["--api-key", "abc-123456", "--password=xyz-98765", "--port", "80", "SECRET=s3cr3t-v"],
            "url": "https://bob:pw-4242@example.test/repo?token=tk-777",
        });
        let mut found = Vec::new();
        mask(&mut value, &mut found);
        assert_eq!(value["env"]["DB_PASSWORD"], MASKED);
        assert_eq!(value["env"]["API_TOKEN"], "${secret.app.token}");
        assert_eq!(value["env"]["db_key"], MASKED);
        assert_eq!(value["env"]["PORT"], "5432");
        assert_eq!(
            value["args"],
            json!([
                "--api-key",
                MASKED,
                "--password=[masked]",
                "--port",
                "80",
                "SECRET=[masked]"
            ])
        );
        assert_eq!(value["url"], "https://***@example.test/repo?token=***");
        for v in [
            "hunter2-literal",
            "k-123456",
            "abc-123456",
            "xyz-98765",
            "s3cr3t-v",
            "pw-4242",
            "tk-777",
        ] {
            assert!(found.iter().any(|f| f == v), "{v} in {found:?}");
        }
    }

    #[test]
    fn encoded_forms_are_redacted() {
        let secret = "Zq9-canary-??~~-0123456789";
        let redactor = Redactor::new(encodings(secret));
        let b64 = base64(secret.as_bytes(), false, true);
        let shifted = base64(format!("x{secret}").as_bytes(), false, true);
        for text in [
            secret.to_uppercase(),
            hex::encode_upper(secret),
            b64.clone(),
            base64(secret.as_bytes(), true, false),
            percent(secret.as_bytes()),
        ] {
            let line = format!("value: {text} end");
            assert_eq!(redactor.line(&line), "value: [redacted] end", "{text}");
        }
        let redacted = redactor.line(&shifted);
        assert!(redacted.contains("[redacted]"), "{shifted} -> {redacted}");
    }

    #[test]
    fn zip_names_sort_by_time_then_number() {
        assert_eq!(
            zip_order("diag-20261202T081500Z.zip"),
            Some(("20261202T081500Z".into(), 1))
        );
        assert_eq!(
            zip_order("diag-20261202T081500Z-12.zip"),
            Some(("20261202T081500Z".into(), 12))
        );
        assert_eq!(zip_order("diag-2026-01-01.zip"), None);
        assert_eq!(zip_order("other.zip"), None);
        assert!(only_placeholders("${secret.a}${port.b}"));
        assert!(!only_placeholders("x${secret.a}"));
        assert!(!only_placeholders(""));
    }
}
