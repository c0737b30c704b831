//! `installer.start` and the bundle it picks: an explicit path, else settings `installSource`;
//! it trusts only keys already pinned.

use launcher::installer::{source, start};

use crate::support::{Env, Spec};

fn write_settings(env: &Env, json: &str) {
    let dir = env.at("app/config");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("settings.json"), json).unwrap();
}

#[test]
fn source_takes_an_explicit_path_home_relative_or_absolute() {
    let env = Env::new();
    let home = env.home();
    assert_eq!(
        source(&home, Some("bundles/x.kbx")).unwrap(),
        env.at("bundles/x.kbx")
    );
    let absolute = env.root().join("elsewhere/y.kbx");
    assert_eq!(
        source(&home, Some(absolute.to_str().unwrap())).unwrap(),
        absolute
    );
    // The explicit path wins over the settings.
    write_settings(&env, r#"{"installSource": "bundles/from-settings.kbx"}"#);
    assert_eq!(
        source(&home, Some("bundles/x.kbx")).unwrap(),
        env.at("bundles/x.kbx")
    );
}

#[test]
fn source_reads_install_source_from_the_settings() {
    let env = Env::new();
    write_settings(&env, r#"{"installSource": "bundles/x.kbx"}"#);
    assert_eq!(source(&env.home(), None).unwrap(), env.at("bundles/x.kbx"));
    // Re-read at each use, no restart needed.
    let absolute = env.root().join("usb/z.kbx");
    write_settings(
        &env,
        &serde_json::json!({ "installSource": absolute }).to_string(),
    );
    assert_eq!(source(&env.home(), None).unwrap(), absolute);
}

/// Copies a bundle into `<home>/bundles/<name>.kbx` and names it in the settings.
fn offer(env: &Env, bundle: &std::path::Path, name: &str) {
    let dest = env.at(&format!("bundles/{name}.kbx"));
    std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
    std::fs::copy(bundle, dest).unwrap();
    write_settings(
        env,
        &format!(r#"{{"installSource": "bundles/{name}.kbx"}}"#),
    );
}

#[test]
fn start_installs_the_settings_bundle_with_the_pinned_key() {
    let env = Env::new();
    env.install(&env.bundle("v1", &Spec::demo("1.0.0", "1.0")), Some(1))
        .unwrap();
    offer(&env, &env.bundle("v2", &Spec::demo("2.0.0", "2.0")), "v2");
    let mut phases = Vec::new();
    let report = start(&env.home(), None, &mut |p| phases.push(p.phase.clone())).unwrap();
    assert!(report.changed);
    assert_eq!(report.version, "2.0.0");
    assert_eq!(env.manifest().version, "2.0.0");
    assert_eq!(phases.last().map(String::as_str), Some("done"));
    // Again: a no-op.
    let report = start(&env.home(), None, &mut |_| {}).unwrap();
    assert!(!report.changed);
}

#[test]
fn start_takes_an_explicit_path() {
    let env = Env::new();
    env.install(&env.bundle("v1", &Spec::demo("1.0.0", "1.0")), Some(1))
        .unwrap();
    let v2 = env.bundle("v2", &Spec::demo("2.0.0", "2.0"));
    let report = start(&env.home(), Some(v2.to_str().unwrap()), &mut |_| {}).unwrap();
    assert_eq!(report.version, "2.0.0");
    assert_eq!(env.manifest().version, "2.0.0");
}

#[test]
fn start_refuses_when_no_key_is_pinned() {
    let env = Env::new();
    offer(&env, &env.bundle("v1", &Spec::demo("1.0.0", "1.0")), "v1");
    let err = start(&env.home(), None, &mut |_| {}).unwrap_err();
    assert!(err.to_string().contains("no pinned key"), "{err}");
    assert!(!env.at("runtime/manifest.json").exists());
    assert!(!env.at("app/keys").exists());
}

#[test]
fn start_refuses_a_bundle_signed_by_a_key_that_is_not_pinned() {
    let env = Env::new();
    env.install(&env.bundle("v1", &Spec::demo("1.0.0", "1.0")), Some(1))
        .unwrap();
    // The key file lies beside the bundle: start must not pick it up.
    env.pubkey(2);
    offer(
        &env,
        &env.bundle("v2", &Spec::demo("2.0.0", "2.0").signed_by(2)),
        "v2",
    );
    let err = start(&env.home(), None, &mut |_| {}).unwrap_err();
    let key2 = crate::support::key(2).key_id().to_string();
    assert!(
        err.to_string().contains(&format!(
            "signed by key {key2}, which is not in the trust store"
        )),
        "{err}"
    );
    assert_eq!(env.manifest().version, "1.0.0");
    assert!(!env.at(&format!("app/keys/{key2}.pub")).exists());
}

#[test]
fn start_without_a_bundle_says_so() {
    let env = Env::new();
    write_settings(&env, r#"{"installSource": "bundles/missing.kbx"}"#);
    env.install(&env.bundle("v1", &Spec::demo("1.0.0", "1.0")), Some(1))
        .unwrap();
    let err = start(&env.home(), None, &mut |_| {}).unwrap_err();
    assert!(err.to_string().contains("bundles/missing.kbx"), "{err}");
    assert_eq!(env.manifest().version, "1.0.0");
}

#[test]
fn start_during_an_update_is_busy_and_changes_nothing() {
    let env = Env::new();
    env.cli_install(&env.bundle("v1", &Spec::demo("1.0.0", "1.0")), Some(1), &[]);
    let v2 = env.bundle("v2", &Spec::demo("2.0.0", "2.0"));
    let home = env.home();
    let before = env.snapshot();
    // What `update apply` holds from its plan to its commit.
    let update = home.lock(kojibox_home::LockName::Update).unwrap();
    let error = start(&home, Some(v2.to_str().unwrap()), &mut |_| {}).unwrap_err();
    assert_eq!(
        kojibox_home::ToApi::code(&error),
        kojibox_manifests::error::ErrorCode::Busy,
        "{error}"
    );
    assert!(error.to_string().contains("update"), "{error}");
    let changes: Vec<String> = crate::support::diff(&before, &env.snapshot())
        .into_iter()
        .filter(|c| !c.contains("app/state"))
        .collect();
    assert!(changes.is_empty(), "{changes:?}");
    drop(update);
    let report = start(&home, Some(v2.to_str().unwrap()), &mut |_| {}).unwrap();
    assert_eq!(report.version, "2.0.0");
}
