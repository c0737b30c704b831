//! The secret store, from files to values: at rest, under a passphrase, concurrently.

use std::path::{Path, PathBuf};

use kojibox_home::Home;
use kojibox_manifests::model::SecretScope;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;

use crate::crypto::{DataKey, KDF_COST, KDF_COST_DEFAULT, KDF_COST_MAX, KdfCost, Locked, Sealed};
use crate::key_source::{KeyringMarker, write_key_file};
use crate::os_keyring;
use crate::os_keyring::KEYRING_SERVICE;
use crate::{Error, KeySource, SecretStore, SecretValue, check_key};

const VALUE: &str = "hunter2-correct-horse";
const NAME: &str = "DB_PASSWORD_NAME";

fn home() -> (tempfile::TempDir, Home) {
    let dir = tempfile::tempdir().unwrap();
    let home = Home::at(dir.path()).unwrap();
    (dir, home)
}

fn value(text: &str) -> SecretValue {
    SecretValue::new(text.to_owned())
}

fn store_file(home: &Home) -> PathBuf {
    home.join("app/secrets/secrets.json")
}

/// Every file under `app/`, as (path, bytes).
fn files(home: &Home) -> Vec<(PathBuf, Vec<u8>)> {
    fn walk(dir: &Path, out: &mut Vec<(PathBuf, Vec<u8>)>) {
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, out);
            } else {
                out.push((path.clone(), std::fs::read(&path).unwrap()));
            }
        }
    }
    let mut out = Vec::new();
    walk(&home.join("app"), &mut out);
    out
}

/// Whether `bytes`, or a base64 string field of it read as JSON, contains `needle`.
fn contains(bytes: &[u8], needle: &str) -> bool {
    let raw = |b: &[u8]| b.windows(needle.len()).any(|w| w == needle.as_bytes());
    let fields = serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(bytes)
        .unwrap_or_default();
    raw(bytes)
        || fields
            .values()
            .filter_map(|v| B64.decode(v.as_str()?).ok())
            .any(|decoded| raw(&decoded))
}

#[test]
fn values_persist_across_open() {
    let (_dir, home) = home();
    let store = SecretStore::open(&home, None).unwrap();
    store.set(SecretScope::App, NAME, &value(VALUE)).unwrap();
    store
        .set(SecretScope::Project, NAME, &value("other"))
        .unwrap();
    drop(store);
    let store = SecretStore::open(&home, None).unwrap();
    assert_eq!(store.get(SecretScope::App, NAME).unwrap().expose(), VALUE);
    assert_eq!(
        store.get(SecretScope::Project, NAME).unwrap().expose(),
        "other"
    );
    assert_eq!(store.key_source(), KeySource::KeyFile);
}

#[test]
fn unknown_key_is_not_found_and_names_no_value() {
    let (_dir, home) = home();
    let store = SecretStore::open(&home, None).unwrap();
    store.set(SecretScope::App, NAME, &value(VALUE)).unwrap();
    let err = store.get(SecretScope::Service, NAME).unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.contains(NAME) && text.contains("service"), "{text}");
    assert!(!text.contains(VALUE), "{text}");
    assert!(!format!("{err:?}").contains(VALUE));
}

#[test]
fn nothing_is_readable_at_rest() {
    let (_dir, home) = home();
    let store = SecretStore::open(&home, None).unwrap();
    store
        .set(SecretScope::Service, NAME, &value(VALUE))
        .unwrap();
    let check = |home: &Home| {
        let files = files(home);
        assert!(files.iter().any(|(p, _)| p == &store_file(home)));
        for (path, bytes) in files {
            assert!(
                !contains(&bytes, VALUE),
                "{} holds the value",
                path.display()
            );
            assert!(!contains(&bytes, NAME), "{} holds the name", path.display());
        }
    };
    check(&home);
    assert!(contains(
        br#"{"data":"aHVudGVyMi1jb3JyZWN0LWhvcnNl"}"#,
        VALUE
    ));
    store.set_passphrase(Some(&value("pass phrase"))).unwrap();
    check(&home);
    let text = std::fs::read_to_string(store_file(&home)).unwrap();
    let sealed: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(sealed["version"], 1);
    assert_eq!(sealed["cipher"], "xchacha20poly1305");
}

#[test]
fn every_write_draws_a_fresh_nonce() {
    let (_dir, home) = home();
    let store = SecretStore::open(&home, None).unwrap();
    let nonce = || {
        let text = std::fs::read_to_string(store_file(&home)).unwrap();
        serde_json::from_str::<Sealed>(&text).unwrap().nonce
    };
    store.set(SecretScope::App, NAME, &value(VALUE)).unwrap();
    let first = nonce();
    store.set(SecretScope::App, NAME, &value(VALUE)).unwrap();
    assert_ne!(first, nonce());
}

#[cfg(unix)]
#[test]
fn key_file_is_0600_and_folder_0700() {
    use std::os::unix::fs::PermissionsExt;
    let (_dir, home) = home();
    // A folder made too open by someone else is tightened.
    std::fs::create_dir_all(home.join("app/secrets")).unwrap();
    std::fs::set_permissions(
        home.join("app/secrets"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    let store = SecretStore::open(&home, None).unwrap();
    store.set(SecretScope::App, NAME, &value(VALUE)).unwrap();
    let mode = |rel: &str| {
        std::fs::metadata(home.join(rel))
            .unwrap()
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(mode("app/secrets"), 0o700);
    assert_eq!(mode("app/secrets/key"), 0o600);
    assert_eq!(mode("app/secrets/secrets.json"), 0o600);
    // A loosened key file is tightened at the next open.
    std::fs::set_permissions(
        home.join("app/secrets/key"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    SecretStore::open(&home, None).unwrap();
    assert_eq!(mode("app/secrets/key"), 0o600);
}

#[test]
fn resolve_prefers_service_then_project_then_app() {
    let (_dir, home) = home();
    let store = SecretStore::open(&home, None).unwrap();
    let get = |name: &str| store.resolve(name).unwrap().map(|v| v.expose().to_owned());
    assert_eq!(get("k"), None);
    store.set(SecretScope::App, "k", &value("app")).unwrap();
    assert_eq!(get("k").as_deref(), Some("app"));
    store
        .set(SecretScope::Project, "k", &value("project"))
        .unwrap();
    assert_eq!(get("k").as_deref(), Some("project"));
    store
        .set(SecretScope::Service, "k", &value("service"))
        .unwrap();
    assert_eq!(get("k").as_deref(), Some("service"));
    assert_eq!(get("app.k").as_deref(), Some("app"));
    assert_eq!(get("project.k").as_deref(), Some("project"));
    assert_eq!(get("service.k").as_deref(), Some("service"));
    store
        .set(SecretScope::App, "only.app", &value("a"))
        .unwrap();
    assert_eq!(get("only.app").as_deref(), Some("a"));
    assert_eq!(get("service.only.app"), None);
    assert!(matches!(store.resolve("app."), Err(Error::Invalid { .. })));
}

#[test]
fn remove_and_list() {
    let (_dir, home) = home();
    let store = SecretStore::open(&home, None).unwrap();
    store.set(SecretScope::Project, "b", &value(VALUE)).unwrap();
    store.set(SecretScope::Project, "a", &value(VALUE)).unwrap();
    store.set(SecretScope::Service, "c", &value(VALUE)).unwrap();
    let list = store.list().unwrap();
    assert_eq!(
        list,
        vec![
            (SecretScope::App, vec![]),
            (SecretScope::Project, vec!["a".to_owned(), "b".to_owned()]),
            (SecretScope::Service, vec!["c".to_owned()]),
        ]
    );
    assert!(store.remove(SecretScope::Project, "a").unwrap());
    assert!(!store.remove(SecretScope::Project, "a").unwrap());
    assert!(!store.remove(SecretScope::App, "c").unwrap());
    let store = SecretStore::open(&home, None).unwrap();
    assert!(matches!(
        store.get(SecretScope::Project, "a"),
        Err(Error::NotFound { .. })
    ));
    assert_eq!(
        store.get(SecretScope::Project, "b").unwrap().expose(),
        VALUE
    );
}

#[test]
fn passphrase_locks_changes_and_unlocks() {
    let (_dir, home) = home();
    let key_file = home.join("app/secrets/key");
    let store = SecretStore::open(&home, None).unwrap();
    store.set(SecretScope::App, NAME, &value(VALUE)).unwrap();
    assert!(key_file.exists());
    assert!(!SecretStore::is_locked(&home));

    let pass = value("first pass");
    store.set_passphrase(Some(&pass)).unwrap();
    assert!(SecretStore::is_locked(&home));
    assert!(!key_file.exists());
    assert_eq!(store.key_source(), KeySource::Passphrase);
    // The open store keeps working.
    assert_eq!(store.get(SecretScope::App, NAME).unwrap().expose(), VALUE);

    let err = SecretStore::open(&home, None).unwrap_err();
    assert!(matches!(err, Error::PermissionDenied { .. }), "{err:?}");
    assert!(err.to_string().contains("give the passphrase"), "{err}");
    let err = SecretStore::open(&home, Some(&value("wrong"))).unwrap_err();
    assert!(matches!(err, Error::PermissionDenied { .. }), "{err:?}");
    assert!(!err.to_string().contains("first pass"));
    assert!(!key_file.exists(), "a failed open made a key");

    let unlocked = SecretStore::open(&home, Some(&pass)).unwrap();
    assert_eq!(
        unlocked.get(SecretScope::App, NAME).unwrap().expose(),
        VALUE
    );

    let second = value("second pass");
    unlocked.set_passphrase(Some(&second)).unwrap();
    assert!(SecretStore::open(&home, Some(&pass)).is_err());
    let unlocked = SecretStore::open(&home, Some(&second)).unwrap();
    assert_eq!(
        unlocked.get(SecretScope::App, NAME).unwrap().expose(),
        VALUE
    );

    unlocked.set_passphrase(None).unwrap();
    assert!(!SecretStore::is_locked(&home));
    assert!(key_file.exists());
    let store = SecretStore::open(&home, None).unwrap();
    assert_eq!(store.get(SecretScope::App, NAME).unwrap().expose(), VALUE);
    assert_eq!(store.key_source(), KeySource::KeyFile);
}

#[test]
fn empty_passphrase_is_refused() {
    let (_dir, home) = home();
    let store = SecretStore::open(&home, None).unwrap();
    let err = store.set_passphrase(Some(&value(""))).unwrap_err();
    assert!(matches!(err, Error::Invalid { .. }), "{err:?}");
    assert!(!SecretStore::is_locked(&home));
    assert!(home.join("app/secrets/key").exists());
}

#[test]
fn open_finishes_an_interrupted_set_passphrase() {
    let (_dir, home) = home();
    let key_file = home.join("app/secrets/key");
    let store = SecretStore::open(&home, None).unwrap();
    store.set(SecretScope::App, NAME, &value(VALUE)).unwrap();
    let saved = std::fs::read(&key_file).unwrap();
    let pass = value("pass");
    store.set_passphrase(Some(&pass)).unwrap();
    // As if the process died between writing key.locked and deleting the key file.
    std::fs::write(&key_file, &saved).unwrap();
    assert!(matches!(
        SecretStore::open(&home, None),
        Err(Error::PermissionDenied { .. })
    ));
    let store = SecretStore::open(&home, Some(&pass)).unwrap();
    assert!(!key_file.exists());
    assert_eq!(store.get(SecretScope::App, NAME).unwrap().expose(), VALUE);
}

#[test]
fn corrupt_store_is_reported_and_never_overwritten() {
    let (_dir, home) = home();
    let store = SecretStore::open(&home, None).unwrap();
    store.set(SecretScope::App, NAME, &value(VALUE)).unwrap();
    let path = store_file(&home);
    let mut sealed: Sealed =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let mut data = B64.decode(&sealed.data).unwrap();
    data[3] ^= 0x01;
    sealed.data = B64.encode(&data);
    kojibox_home::fs::write_json(&home, &path, &sealed).unwrap();
    let before = std::fs::read(&path).unwrap();

    let err = store.get(SecretScope::App, NAME).unwrap_err();
    assert!(
        matches!(&err, Error::Corrupt { path: p, .. } if p == &path),
        "{err:?}"
    );
    let err = store
        .set(SecretScope::App, "other", &value("x"))
        .unwrap_err();
    assert!(matches!(err, Error::Corrupt { .. }), "{err:?}");
    assert!(matches!(
        store.remove(SecretScope::App, NAME),
        Err(Error::Corrupt { .. })
    ));
    assert!(matches!(store.list(), Err(Error::Corrupt { .. })));
    assert_eq!(std::fs::read(&path).unwrap(), before);
}

#[test]
fn a_lost_key_is_an_error_not_a_new_key() {
    let (_dir, home) = home();
    let store = SecretStore::open(&home, None).unwrap();
    store.set(SecretScope::App, NAME, &value(VALUE)).unwrap();
    drop(store);
    let key_file = home.join("app/secrets/key");
    std::fs::remove_file(&key_file).unwrap();
    let before = std::fs::read(store_file(&home)).unwrap();
    let err = SecretStore::open(&home, None).unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err:?}");
    assert!(err.to_string().contains("secrets.json"), "{err}");
    assert!(!key_file.exists());
    assert_eq!(std::fs::read(store_file(&home)).unwrap(), before);
}

#[test]
fn a_different_key_cannot_read_the_store() {
    let (_dir, home) = home();
    let store = SecretStore::open(&home, None).unwrap();
    store.set(SecretScope::App, NAME, &value(VALUE)).unwrap();
    let other = DataKey::generate().unwrap();
    write_key_file(&home, &home.join("app/secrets/key"), &other).unwrap();
    let store = SecretStore::open(&home, None).unwrap();
    assert!(matches!(
        store.get(SecretScope::App, NAME),
        Err(Error::Corrupt { .. })
    ));
}

#[test]
fn a_key_in_a_keyring_this_platform_lacks_is_an_error() {
    if os_keyring::AVAILABLE {
        return;
    }
    let (_dir, home) = home();
    let marker = KeyringMarker {
        version: 1,
        service: KEYRING_SERVICE.to_owned(),
        user: "/Users/someone/kojibox".to_owned(),
    };
    kojibox_home::fs::write_json(&home, &home.join("app/secrets/keyring.json"), &marker).unwrap();
    let err = SecretStore::open(&home, None).unwrap_err();
    assert!(matches!(err, Error::PermissionDenied { .. }), "{err:?}");
    assert!(err.to_string().contains("OS keyring"), "{err}");
    assert!(!home.join("app/secrets/key").exists());
}

#[test]
fn concurrent_sets_lose_no_update() {
    let (_dir, home) = home();
    SecretStore::open(&home, None).unwrap();
    let barrier = std::sync::Barrier::new(16);
    std::thread::scope(|s| {
        for i in 0..16 {
            let (home, barrier) = (&home, &barrier);
            s.spawn(move || {
                let store = SecretStore::open(home, None).unwrap();
                barrier.wait();
                let v = value(&format!("value-{i}"));
                store
                    .set(SecretScope::App, &format!("key-{i}"), &v)
                    .unwrap();
            });
        }
    });
    let store = SecretStore::open(&home, None).unwrap();
    for i in 0..16 {
        let got = store.get(SecretScope::App, &format!("key-{i}")).unwrap();
        assert_eq!(got.expose(), format!("value-{i}"));
    }
}

#[test]
fn debug_and_display_redact() {
    let (_dir, home) = home();
    let secret = value(VALUE);
    assert!(!format!("{secret:?}").contains(VALUE));
    assert!(!format!("{secret}").contains(VALUE));
    assert_eq!(format!("{secret}"), "<redacted>");
    let store = SecretStore::open(&home, None).unwrap();
    store.set(SecretScope::App, NAME, &secret).unwrap();
    let debug = format!("{store:?}");
    assert!(!debug.contains(VALUE), "{debug}");
    let key = std::fs::read_to_string(home.join("app/secrets/key")).unwrap();
    assert!(!debug.contains(key.trim()), "{debug}");
    let resolved = store.resolve(NAME).unwrap();
    assert!(!format!("{resolved:?}").contains(VALUE));
}

#[test]
fn key_names_are_checked() {
    for good in [
        "a",
        "DB_PASSWORD",
        "x.y-z_1",
        "application.key",
        &"k".repeat(128),
    ] {
        assert!(check_key(good).is_ok(), "{good}");
    }
    for bad in [
        "",
        ".hidden",
        "app.key",
        "project.key",
        "service.key",
        "has space",
        "slash/no",
        "ünï",
        "dollar$",
        &"k".repeat(129),
    ] {
        let err = check_key(bad).unwrap_err();
        assert!(matches!(&err, Error::Invalid { detail, .. } if detail.contains("`key`")));
    }
    let (_dir, home) = home();
    let store = SecretStore::open(&home, None).unwrap();
    assert!(matches!(
        store.set(SecretScope::App, "app.x", &value(VALUE)),
        Err(Error::Invalid { .. })
    ));
    assert!(!store_file(&home).exists());
}

#[test]
fn production_kdf_cost_is_64_mib_3_passes() {
    assert_eq!(
        KDF_COST_DEFAULT,
        KdfCost {
            m: 65536,
            t: 3,
            p: 1
        }
    );
    let (_dir, home) = home();
    let store = SecretStore::open(&home, None).unwrap();
    store.set_passphrase(Some(&value("p"))).unwrap();
    let mut locked: Locked = kojibox_home::fs::read_json(&home.join("app/secrets/key.locked"))
        .unwrap()
        .unwrap();
    assert_eq!((locked.kdf.as_str(), locked.m), ("argon2id", KDF_COST.m));
    // An altered file cannot ask for unbounded work.
    locked.m = KDF_COST_MAX.m + 1;
    kojibox_home::fs::write_json(&home, &home.join("app/secrets/key.locked"), &locked).unwrap();
    assert!(matches!(
        SecretStore::open(&home, Some(&value("p"))),
        Err(Error::Corrupt { .. })
    ));
}
