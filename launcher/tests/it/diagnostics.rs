//! `diagnostics.create` and `kojibox diagnose` as a user meets them: a real daemon with fixture
//! services, a secret put everywhere a careless user would put it ([`canary_home`]), then the
//! zip unpacked and searched for it in every form a program might print it.
//!
//! - [`the_canary_secret_is_in_no_file_of_the_zip_in_any_form`]: the issue's canary;
//! - [`includes_names_exactly_the_sections_present_and_the_zip_is_private`]: the answer, the
//!   name, the mode, the sections, the summary;
//! - [`only_the_newest_five_zips_are_kept`]: pruning, and `-N` names within one second;
//! - [`a_cache_that_cannot_be_written_answers_an_error_naming_the_zip_and_leaves_nothing`] and
//!   [`a_zip_cut_short_by_the_file_size_limit_leaves_no_partial_file`]: bad input;
//! - [`a_locked_secret_store_is_said_so_and_names_still_mask`];
//! - [`kojibox_diagnose_prints_the_path_and_what_the_zip_holds`]: the real CLI.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::{Path, PathBuf};

use kojibox_manifests::api::methods;
use kojibox_manifests::model::{DiagnosticsBundle, LogEntry, ServiceStatus};
use serde_json::{Value, json};

use crate::api::contract::error;
use crate::api::{Api, WAIT, eventually, kojibox_with_input};
use crate::support::{Fixture, mode_of, stderr, stdout, text};

/// The secret store key the canary's secret is stored under (scope `app`).
pub(crate) const CANARY_KEY: &str = "canary-key";

/// A home served by a daemon, with a secret everywhere it can be.
pub(crate) struct Canary {
    /// The home and its daemon.
    pub api: Api,
    /// The secret: random, 30 characters, in the secret store (app `canary-key`). Its base64
    /// standard and URL-safe forms differ (it holds `??>~~~`).
    pub secret: String,
    /// The literal value of the service's env var `DB_PASSWORD` (not in the store).
    pub db_password: String,
}

/// Prints its secret as careless services do: plain (the log redacts it at ingest), in upper
/// case, as base64 (standard and URL-safe) and as hex (which no ingest redaction catches), its
/// argument, and its `DB_PASSWORD`.
fn canary_fixture() -> Fixture {
    Fixture::new(
        "canary",
        r#"echo "token: $API_TOKEN"
echo "arg: $2"
echo "upper: $(printf %s "$API_TOKEN" | tr a-z A-Z)"
echo "b64: $(printf %s "$API_TOKEN" | base64 -w0)"
echo "b64url: $(printf %s "$API_TOKEN" | base64 -w0 | tr '/+' '_-')"
echo "hex: $(printf %s "$API_TOKEN" | od -An -tx1 | tr -d ' \n')"
echo "db: $DB_PASSWORD"
echo "canary ready"
exec sleep 300"#,
    )
}

/// A served home where a random secret is stored in the secret store (scope app, key
/// [`CANARY_KEY`]) and used by service `canary` in its env (`API_TOKEN=${secret.app.…}`) and
/// args (`--token ${secret.app.…}`); the service is running and has printed it in every form
/// (see [`canary_fixture`]); the secret is also a literal value in a project's settings
/// (`overrides.NOTE` and `overrides.API_TOKEN`); and the service has `DB_PASSWORD` set to
/// another literal value.
pub(crate) fn canary_home() -> Canary {
    let mut api = Api::home(&[canary_fixture()]);
    api.serve(&[]);
    let secret = format!("canary-{:016x}-??>~~~", rand_u64());
    let db_password = format!("dbpw-{:016x}", rand_u64());
    let set = json!({"key": CANARY_KEY, "scope": "app", "value": secret});
    assert_eq!(api.rpc("secrets.set", set)["result"], "ok");
    let placeholder = format!("${{secret.app.{CANARY_KEY}}}");
    let config = json!({
        "id": "canary",
        "enabled": true,
        "ports": {},
        "env": {"API_TOKEN": placeholder, "DB_PASSWORD": db_password},
        "args": ["--token", placeholder],
    });
    assert_eq!(api.rpc("config.setService", config)["result"], "ok");
    let project = json!({
        "id": "canary-app",
        "name": "Canary app",
        "path": api.env.home_dir(),
        "domain": "canary.test",
        "stack": "static",
        "overrides": {"NOTE": format!("the key is {secret}"), "API_TOKEN": secret},
    });
    assert_eq!(api.rpc("config.setProject", project)["result"], "ok");
    api.call::<methods::ServicesStart>(json!({"id": "canary"}));
    api.wait_for("canary", ServiceStatus::Running);
    let printed = |api: &Api| {
        api.call::<methods::ServicesLogs>(json!({"id": "canary", "tail": 50}))
            .iter()
            .any(|e| e.message == "canary ready")
    };
    assert!(
        eventually(WAIT, || printed(&api)),
        "the canary printed its lines: {:#}",
        api.rpc("services.logs", json!({"id": "canary"}))
    );
    Canary {
        api,
        secret,
        db_password,
    }
}

/// Every form of `secret` that must not be found: plain, lower and upper case, base64
/// (standard and URL-safe, unpadded so a padded copy is found too) and hex (both cases).
pub(crate) fn forms(secret: &str) -> Vec<(&'static str, String)> {
    let bytes = secret.as_bytes();
    vec![
        ("plain", secret.to_owned()),
        ("lowercase", secret.to_lowercase()),
        ("uppercase", secret.to_uppercase()),
        ("base64", base64(bytes, false)),
        ("base64url", base64(bytes, true)),
        ("hex", hex::encode(bytes)),
        ("HEX", hex::encode_upper(bytes)),
    ]
}

/// Every file of the zip at `path`, by name.
pub(crate) fn unzip(path: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut archive = zip::ZipArchive::new(std::fs::File::open(path).unwrap()).unwrap();
    let mut out = BTreeMap::new();
    for i in 0..archive.len() {
        let mut file = archive.by_index(i).unwrap();
        let name = file.name().unwrap().into_owned();
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).unwrap();
        assert!(out.insert(name, bytes).is_none(), "one entry per name");
    }
    out
}

/// The names of the files of `files` that hold `needle`.
pub(crate) fn holding(files: &BTreeMap<String, Vec<u8>>, needle: &str) -> Vec<String> {
    files
        .iter()
        .filter(|(_, bytes)| bytes.windows(needle.len()).any(|w| w == needle.as_bytes()))
        .map(|(name, _)| name.clone())
        .collect()
}

/// Asserts that no file of `files` holds `secret` in any of its [`forms`].
pub(crate) fn assert_nowhere(files: &BTreeMap<String, Vec<u8>>, what: &str, secret: &str) {
    for (form, needle) in forms(secret) {
        let found = holding(files, &needle);
        assert!(
            found.is_empty(),
            "{what} ({form}: {needle}) is in {found:?}"
        );
    }
}

/// `diagnostics.create`, checked, and the zip's files.
fn create(api: &Api) -> (DiagnosticsBundle, BTreeMap<String, Vec<u8>>) {
    let bundle = api.call::<methods::DiagnosticsCreate>(json!({}));
    let files = unzip(&api.env.at(&bundle.path));
    (bundle, files)
}

fn json_of(files: &BTreeMap<String, Vec<u8>>, name: &str) -> Value {
    let bytes = files
        .get(name)
        .unwrap_or_else(|| panic!("no {name} in {:?}", files.keys().collect::<Vec<_>>()));
    serde_json::from_slice(bytes).unwrap_or_else(|e| panic!("{name} is not JSON: {e}"))
}

fn text_of(files: &BTreeMap<String, Vec<u8>>, name: &str) -> String {
    String::from_utf8_lossy(&files[name]).into_owned()
}

#[test]
fn the_canary_secret_is_in_no_file_of_the_zip_or_an_export_in_any_form() {
    let canary = canary_home();
    let api = &canary.api;
    let forms = forms(&canary.secret);
    assert_ne!(forms[3].1, forms[4].1, "base64 and base64url differ");

    // The service printed the secret plain, base64 and hex encoded: ingest redacted each.
    let logs = api.call::<methods::ServicesLogs>(json!({"id": "canary", "tail": 50}));
    let logged = |needle: &str| logs.iter().any(|e: &LogEntry| e.message.contains(needle));
    assert!(!logged(&forms[3].1) && !logged(&forms[5].1), "{logs:?}");
    for line in ["token: [redacted]", "b64: [redacted]", "hex: [redacted]"] {
        assert!(logged(line), "{line}: {logs:?}");
    }

    // An export of every log holds none of it either.
    let export = api.call::<methods::LogsExport>(json!({}));
    let exported = BTreeMap::from([(export.clone(), std::fs::read(api.env.at(&export)).unwrap())]);
    assert!(
        holding(&exported, "canary ready").len() == 1,
        "the export has the log"
    );
    assert_nowhere(&exported, "the canary secret", &canary.secret);
    let jsonl = api.call::<methods::LogsExport>(json!({"service": "canary", "format": "jsonl"}));
    let exported = BTreeMap::from([(jsonl.clone(), std::fs::read(api.env.at(&jsonl)).unwrap())]);
    assert_nowhere(&exported, "the canary secret", &canary.secret);

    let (bundle, files) = create(api);
    assert_nowhere(&files, "the canary secret", &canary.secret);
    assert_nowhere(&files, "the literal DB_PASSWORD", &canary.db_password);
    assert_nowhere(&files, "the API token", &api.token);

    // It is there, redacted: the log lines, the settings, the project.
    let log = text_of(&files, "logs/canary.jsonl");
    for line in [
        "token: [redacted]",
        "b64: [redacted]",
        "hex: [redacted]",
        "canary ready",
    ] {
        assert!(log.contains(line), "{line} in {log}");
    }
    let settings = json_of(&files, "config/services/canary.json");
    assert_eq!(settings["env"]["DB_PASSWORD"], "[masked]", "{settings:#}");
    assert_eq!(
        settings["env"]["API_TOKEN"],
        format!("${{secret.app.{CANARY_KEY}}}"),
        "a placeholder names a secret and is kept"
    );
    assert_eq!(settings["args"][1], format!("${{secret.app.{CANARY_KEY}}}"));
    let project = json_of(&files, "config/projects/canary-app.json");
    assert_eq!(project["overrides"]["API_TOKEN"], "[masked]", "{project:#}");
    assert_eq!(project["overrides"]["NOTE"], "the key is [redacted]");
    let definition = json_of(&files, "services/canary.json");
    assert_eq!(definition["settings"]["env"]["DB_PASSWORD"], "[masked]");
    assert_eq!(definition["binary"]["name"], "canary");

    // Nothing of the store, its key or the token file.
    for name in files.keys() {
        assert!(
            !name.contains("secrets") && !name.contains("api-token"),
            "{name}"
        );
    }
    let summary = json_of(&files, "summary.json");
    assert_eq!(summary["redaction"]["secretStore"], "read", "{summary:#}");
    assert_eq!(summary["redaction"]["secretValues"], 1, "{summary:#}");
    assert_eq!(summary["includes"], json!(bundle.includes));
}

#[test]
fn includes_names_exactly_the_sections_present_and_the_zip_is_private() {
    let api = Api::boot(&[]);
    let project = json!({"id": "p1", "name": "p1", "path": api.env.home_dir(), "domain": "p1.test", "stack": "php", "overrides": {}});
    assert_eq!(api.rpc("config.setProject", project)["result"], "ok");
    api.call::<methods::ServicesStart>(json!({"id": "worker"}));
    api.wait_for("worker", ServiceStatus::Running);
    assert!(eventually(WAIT, || !api
        .call::<methods::ServicesLogs>(json!({"id": "worker"}))
        .is_empty()));

    let (bundle, files) = create(&api);
    // The name: app/cache/diag-<UTC stamp>.zip, safe on every OS.
    let name = bundle
        .path
        .strip_prefix("app/cache/diag-")
        .and_then(|n| n.strip_suffix(".zip"))
        .unwrap_or_else(|| panic!("{}", bundle.path));
    assert_eq!(name.len(), 16, "{name}");
    assert!(
        name.chars().all(|c| c.is_ascii_alphanumeric()),
        "file-name safe: {name}"
    );
    let created: jiff::Timestamp = bundle.created_at.parse().unwrap();
    assert_eq!(created.strftime("%Y%m%dT%H%M%SZ").to_string(), name);
    let path = api.env.at(&bundle.path);
    assert_eq!(mode_of(&path) & 0o777, 0o600, "{}", path.display());

    // `includes`: exactly the folders present, in order; no `trust` yet.
    let present: BTreeSet<&str> = files
        .keys()
        .filter_map(|n| n.split_once('/').map(|(s, _)| s))
        .collect();
    let includes: BTreeSet<&str> = bundle.includes.iter().map(String::as_str).collect();
    assert_eq!(present, includes, "{:?}", files.keys());
    assert_eq!(
        bundle.includes,
        ["logs", "config", "manifest", "services", "ports", "system"],
        "{:?}",
        files.keys()
    );
    for expected in [
        "summary.json",
        "logs/web.jsonl",
        "logs/worker.jsonl",
        "config/projects/p1.json",
        "manifest/manifest.json",
        "manifest/versions.json",
        "services/states.json",
        "services/web.json",
        "services/worker.json",
        "ports/ports.json",
        "system/system.json",
    ] {
        assert!(
            files.contains_key(expected),
            "{expected} in {:?}",
            files.keys()
        );
    }
    let worker = text_of(&files, "logs/worker.jsonl");
    let first: LogEntry = worker
        .lines()
        .map(|l| serde_json::from_str::<LogEntry>(l).unwrap())
        .find(|e| e.fields["stream"] != "kojibox")
        .unwrap();
    assert_eq!(first.service, "worker");
    assert!(first.message.starts_with("tick "), "{first:?}");
    let states = json_of(&files, "services/states.json");
    assert!(
        states
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["id"] == "worker" && s["state"] == "running"),
        "{states:#}"
    );
    let template = json_of(&files, "services/web.json");
    assert_eq!(
        template["template"]["healthCheck"]["target"], "127.0.0.1:${port.http}",
        "placeholders unexpanded: {template:#}"
    );
    assert_eq!(template["binary"]["env"]["PORT_HTTP"], "${port.http}");
    let ports = json_of(&files, "ports/ports.json");
    let api_port = ports["live"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["key"] == "kojibox.api")
        .unwrap_or_else(|| panic!("{ports:#}"));
    assert_eq!(api_port["port"], api.port);
    assert_eq!(api_port["ownerPid"], api.pid, "{ports:#}");
    assert_eq!(api_port["ownerService"], "kojibox");
    assert_eq!(
        ports["registry"]["assigned"]["web"], api.web_port,
        "{ports:#}"
    );
    let system = json_of(&files, "system/system.json");
    assert_eq!(system["kojibox"]["version"], env!("CARGO_PKG_VERSION"));
    for field in ["kernel", "family", "arch"] {
        assert!(system["os"][field].is_string(), "{field}: {system:#}");
    }
    assert!(
        system["memory"]["totalMB"].as_u64().unwrap() > 0,
        "{system:#}"
    );
    assert!(system["disk"]["freeMB"].is_u64(), "{system:#}");
    assert!(system["kojibox"]["uptimeSec"].is_u64(), "{system:#}");
    let versions = json_of(&files, "manifest/versions.json");
    assert_eq!(versions["bundle"]["version"], "1.0.0", "{versions:#}");

    let summary = json_of(&files, "summary.json");
    assert_eq!(summary["createdAt"], bundle.created_at);
    assert_eq!(summary["includes"], json!(bundle.includes));
    let listed: BTreeSet<String> = summary["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap().to_owned())
        .collect();
    let inside: BTreeSet<String> = files
        .keys()
        .filter(|n| *n != "summary.json")
        .cloned()
        .collect();
    assert_eq!(listed, inside);
    assert_nowhere(&files, "the API token", &api.token);
}

#[test]
fn only_the_newest_five_zips_are_kept() {
    let api = Api::boot(&[]);
    let made: Vec<String> = (0..7)
        .map(|_| api.call::<methods::DiagnosticsCreate>(json!({})).path)
        .collect();
    let distinct: BTreeSet<&String> = made.iter().collect();
    assert_eq!(distinct.len(), 7, "a new name each time: {made:?}");
    let kept = zips(&api);
    let newest: Vec<String> = made[2..]
        .iter()
        .map(|p| p.rsplit('/').next().unwrap().to_owned())
        .collect();
    assert_eq!(
        kept.iter().cloned().collect::<BTreeSet<_>>(),
        newest.iter().cloned().collect::<BTreeSet<_>>(),
        "the newest five: made {made:?}"
    );
    for old in &made[..2] {
        assert!(!api.env.at(old).exists(), "{old} was removed");
    }
    // Other files in app/cache are left alone.
    let other = api.env.at("app/cache/keep-me.txt");
    std::fs::write(&other, "mine").unwrap();
    api.call::<methods::DiagnosticsCreate>(json!({}));
    assert_eq!(zips(&api).len(), 5);
    assert!(other.exists());
}

/// The diagnostics zips in `app/cache/`, by name.
fn zips(api: &Api) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(api.env.at("app/cache")) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("diag-") && n.ends_with(".zip"))
        .collect();
    names.sort();
    names
}

/// Everything in `dir` (names), or nothing when it is not a folder.
fn listing(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn a_cache_that_cannot_be_written_answers_an_error_naming_the_zip_and_leaves_nothing() {
    let api = Api::boot(&[]);
    let cache = api.env.at("app/cache");
    let _ = std::fs::remove_dir_all(&cache);
    std::fs::write(&cache, "not a folder").unwrap();
    let e = error(&api.rpc("diagnostics.create", json!({})));
    assert_eq!(
        serde_json::to_value(e.source).unwrap(),
        "diagnostics",
        "{e:?}"
    );
    let named = format!("{}/diag-", cache.display());
    assert!(
        e.detail.contains(&named) && e.detail.contains(".zip"),
        "{e:?}"
    );
    assert_eq!(std::fs::read_to_string(&cache).unwrap(), "not a folder");

    // Fixed, it works again, and nothing is left over from the failure.
    std::fs::remove_file(&cache).unwrap();
    let bundle = api.call::<methods::DiagnosticsCreate>(json!({}));
    let names = listing(&cache);
    assert_eq!(
        names,
        [bundle.path.rsplit('/').next().unwrap()],
        "{names:?}"
    );
}

#[test]
fn a_zip_cut_short_by_the_file_size_limit_leaves_no_partial_file() {
    let mut api = Api::home(&[]);
    // A project too big to fit under the daemon's file size limit once zipped (random, so it
    // does not compress away), written before the daemon runs (the test has no limit).
    let mut noise = vec![0u8; 160 << 10];
    getrandom::fill(&mut noise).unwrap();
    let project = json!({"id": "big", "name": "big", "path": api.env.home_dir(), "domain": "", "stack": "static", "overrides": {"BLOB": hex::encode(noise)}});
    let file = api.env.at("app/config/projects/big.json");
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    std::fs::write(&file, project.to_string()).unwrap();
    // 64 KiB (128 blocks of 512 bytes in dash, 128 KiB in bash), SIGXFSZ ignored so that a
    // write past it fails with EFBIG instead of killing the daemon.
    api.prelude = Some("trap '' XFSZ && ulimit -f 128".into());
    api.serve(&[]);
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", api.pid)).unwrap();
    assert!(
        limits
            .lines()
            .any(|l| l.starts_with("Max file size") && !l.contains("unlimited")),
        "{limits}"
    );

    let e = error(&api.rpc("diagnostics.create", json!({})));
    let cache = api.env.at("app/cache");
    let named = format!("{}/diag-", cache.display());
    assert!(
        e.detail.contains(&named) && e.detail.contains(".zip"),
        "{e:?}"
    );
    assert!(e.detail.contains("ulimit -f"), "says why: {e:?}");
    assert_eq!(
        listing(&cache),
        Vec::<String>::new(),
        "no zip, no temporary file"
    );
}

#[test]
fn a_locked_secret_store_is_said_so_and_names_still_mask() {
    let mut api = Api::home(&[]);
    let secret = format!("locked-{:016x}", rand_u64());
    let out = kojibox_with_input(&api, &["secrets", "set", "locked-one"], &secret);
    assert!(out.status.success(), "{}", text(&out));
    let out = kojibox_with_input(
        &api,
        &["secrets", "passphrase", "--stdin"],
        "correct horse\n",
    );
    assert!(out.status.success(), "{}", text(&out));
    api.serve(&[]);
    let password = format!("pw-{:016x}", rand_u64());
    let config = json!({"id": "worker", "enabled": true, "ports": {}, "env": {"SERVICE_PASSWORD": password, "MODE": "dev"}, "args": []});
    assert_eq!(api.rpc("config.setService", config)["result"], "ok");

    let (_, files) = create(&api);
    let summary = json_of(&files, "summary.json");
    assert_eq!(summary["redaction"]["secretStore"], "locked", "{summary:#}");
    let notes = summary["notes"].to_string();
    assert!(notes.contains("protected by a passphrase"), "{summary:#}");
    let settings = json_of(&files, "config/services/worker.json");
    assert_eq!(settings["env"]["SERVICE_PASSWORD"], "[masked]");
    assert_eq!(settings["env"]["MODE"], "dev");
    assert_nowhere(&files, "a value masked by its name", &password);
    assert_nowhere(&files, "the API token", &api.token);
    for name in files.keys() {
        assert!(!name.contains("secrets"), "{name}");
    }
}

#[test]
fn kojibox_diagnose_prints_the_path_and_what_the_zip_holds() {
    let api = Api::boot(&[]);
    let out = api.env.kojibox(&["diagnose"], None);
    assert!(out.status.success(), "{}", text(&out));
    let printed = stdout(&out);
    let path = PathBuf::from(printed.lines().next().unwrap());
    assert!(
        path.starts_with(api.env.at("app/cache")) && path.is_file(),
        "{printed}"
    );
    for part in ["holds:", "logs", "config", "system", "size:", "newest 5"] {
        assert!(printed.contains(part), "{part} in {printed}");
    }
    assert!(stderr(&out).is_empty(), "{}", text(&out));

    let out = api.env.kojibox(&["--json", "diagnose"], None);
    assert!(out.status.success(), "{}", text(&out));
    let bundle: DiagnosticsBundle = serde_json::from_str(&stdout(&out)).unwrap();
    assert!(api.env.at(&bundle.path).is_file(), "{bundle:?}");
    assert!(bundle.includes.contains(&"logs".to_owned()), "{bundle:?}");

    // Without a daemon it says how to get one.
    let env = crate::support::Env::new();
    let out = env.kojibox(&["diagnose"], None);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("kojibox up"), "{}", text(&out));
}

/// Base64, unpadded, standard or URL-safe alphabet (written here, not shared with the code
/// under test).
fn base64(bytes: &[u8], url: bool) -> String {
    let alphabet: Vec<char> = if url {
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    } else {
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    }
    .chars()
    .collect();
    let mut bits = 0u32;
    let mut count = 0;
    let mut out = String::new();
    for &b in bytes {
        bits = (bits << 8) | u32::from(b);
        count += 8;
        while count >= 6 {
            count -= 6;
            out.push(alphabet[((bits >> count) & 63) as usize]);
        }
    }
    if count > 0 {
        out.push(alphabet[((bits << (6 - count)) & 63) as usize]);
    }
    out
}

fn rand_u64() -> u64 {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).unwrap();
    u64::from_le_bytes(bytes)
}

#[test]
fn the_test_base64_is_the_usual_one() {
    assert_eq!(base64(b"foobar", false), "Zm9vYmFy");
    assert_eq!(base64(b"fo", false), "Zm8");
    assert_eq!(base64(b"\xfb\xff", false), "+/8");
    assert_eq!(base64(b"\xfb\xff", true), "-_8");
}
