//! Killing the installer: `KOJIBOX_FAULT` aborts the real binary at a point (as `kill -9` would);
//! the home must hold the old install or the new one, and the next run must clean up, say what
//! it found, and let the install complete.

use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::Output;

use crate::support::{self, Env, Spec, diff, host, root, stderr, stdout, subtree, text};

const SIGABRT: i32 = 6;

/// A home with 1.0.0 installed by the CLI, and a bundle 2.0.0 (8 MiB of incompressible payload,
/// so extraction takes several reads; other templates, so finishing them shows).
fn setup() -> (Env, PathBuf) {
    let env = Env::new();
    env.cli_install(&env.bundle("v1", &Spec::demo("1.0.0", "1.0")), Some(1), &[]);
    let v2 = env.bundle("v2", &Spec::demo("2.0.0", "2.0").display("Demo 2").big(8));
    (env, v2)
}

/// Runs `kojibox install v2` with `fault` armed; it must die by SIGABRT at that point.
fn crash(env: &Env, v2: &std::path::Path, fault: &str) -> Output {
    let out = env.kojibox(&env.install_args(v2, None, &[]), Some(fault));
    assert_eq!(out.status.code(), None, "not killed:\n{}", text(&out));
    assert_eq!(out.status.signal(), Some(SIGABRT), "{}", text(&out));
    assert!(
        stderr(&out).contains(&format!("fault point {fault} reached")),
        "{}",
        text(&out)
    );
    out
}

/// `kojibox verify` must succeed; returns its stderr (the notes).
fn verify_ok(env: &Env) -> String {
    let out = env.kojibox(&["verify"], None);
    assert!(out.status.success(), "verify failed:\n{}", text(&out));
    stderr(&out)
}

/// What must not change while 1.0.0 stays installed.
fn v1_state(env: &Env) -> (Vec<u8>, support::Tree) {
    let manifest = std::fs::read(env.at("runtime/manifest.json")).unwrap();
    (
        manifest,
        subtree(&env.snapshot(), &root("demo", "1.0", &host())),
    )
}

#[test]
fn a_crash_during_extract_keeps_the_old_install() {
    let (env, v2) = setup();
    let before = v1_state(&env);
    crash(&env, &v2, "install:extract");
    assert_eq!(v1_state(&env), before);
    assert_eq!(env.manifest().version, "1.0.0");
    assert!(!env.at(&root("demo", "2.0", &host())).exists());
    let staged = subtree(&env.snapshot(), "runtime/.staging");
    assert!(
        staged
            .values()
            .any(|n| matches!(n, support::Node::File { .. })),
        "the crash should leave extracted files in staging: {staged:?}"
    );

    let notes = verify_ok(&env);
    assert!(
        notes.contains("note: removed the staging folder of an interrupted install")
            && notes.contains("the installed version is unchanged"),
        "{notes}"
    );
    assert!(!env.at("runtime/.staging").exists());
    assert_eq!(v1_state(&env), before);

    let out = env.cli_install(&v2, None, &[]);
    assert!(
        stdout(&out).contains("installed bundle 2.0.0"),
        "{}",
        text(&out)
    );
    assert_eq!(env.manifest().version, "2.0.0");
    verify_ok(&env);
}

#[test]
fn a_crash_before_the_switch_keeps_the_old_install() {
    let (env, v2) = setup();
    let before = v1_state(&env);
    crash(&env, &v2, "install:before-switch");
    assert_eq!(v1_state(&env), before);
    assert_eq!(env.manifest().version, "1.0.0");
    let template = std::fs::read_to_string(env.at("runtime/services/demo.json")).unwrap();
    assert!(!template.contains("Demo 2"), "{template}");

    // The next run cleans up and completes the install.
    let out = env.cli_install(&v2, None, &[]);
    assert!(
        stderr(&out).contains("note: removed the staging folder of an interrupted install"),
        "{}",
        text(&out)
    );
    assert!(
        stdout(&out).contains("installed bundle 2.0.0"),
        "{}",
        text(&out)
    );
    assert!(!env.at("runtime/.staging").exists());
    assert_eq!(env.manifest().version, "2.0.0");
    let template = std::fs::read_to_string(env.at("runtime/services/demo.json")).unwrap();
    assert!(template.contains("Demo 2"), "{template}");
    verify_ok(&env);
    assert!(
        launcher::runtime::ensure_service(&env.home(), "demo", "2.0").is_ok(),
        "demo 2.0 does not verify"
    );
}

#[test]
fn a_crash_after_the_switch_gives_the_new_install() {
    let (env, v2) = setup();
    let v1_payload = v1_state(&env).1;
    crash(&env, &v2, "install:after-switch");
    let manifest = env.manifest();
    assert_eq!(manifest.version, "2.0.0");
    assert_eq!(manifest.services[0].version, "2.0");
    assert_eq!(
        subtree(&env.snapshot(), &root("demo", "1.0", &host())),
        v1_payload
    );

    let notes = verify_ok(&env);
    assert!(
        notes.contains(
            "note: finished an interrupted install of 2.0.0: wrote its service templates"
        ),
        "{notes}"
    );
    let template = std::fs::read_to_string(env.at("runtime/services/demo.json")).unwrap();
    assert!(template.contains("Demo 2"), "{template}");
    assert!(!env.at("runtime/.staging").exists());

    let before = env.snapshot();
    let out = env.cli_install(&v2, None, &[]);
    assert!(
        stdout(&out).contains("bundle 2.0.0 is already installed"),
        "{}",
        text(&out)
    );
    let changes: Vec<String> = diff(&before, &env.snapshot())
        .into_iter()
        .filter(|c| !c.starts_with("changed app/state/"))
        .collect();
    assert!(changes.is_empty(), "{changes:?}");
    verify_ok(&env);
    launcher::runtime::ensure_service(&env.home(), "demo", "2.0").unwrap();
}

#[test]
fn recovery_after_a_crash_after_the_switch_raises_the_watermark() {
    // The watermark is the highest version ever installed; 2.0.0 is installed once the manifest
    // names it, so the recovery (or the no-op re-install) must record it.
    let (env, v2) = setup();
    crash(&env, &v2, "install:after-switch");
    verify_ok(&env);
    env.cli_install(&v2, None, &[]);
    assert_eq!(env.manifest().version, "2.0.0");
    let mark: serde_json::Value =
        serde_json::from_slice(&std::fs::read(env.at("app/state/versions.json")).unwrap()).unwrap();
    assert_eq!(mark["highestInstalled"], "2.0.0", "{mark}");
}

#[test]
fn a_crash_after_the_first_switch_keeps_the_key_pinned() {
    // A first install killed right after its manifest switch: the home runs 1.0.0, so the key
    // that signed it must be pinned, or nothing verifies and no later install is accepted.
    let env = Env::new();
    let v1 = env.bundle("v1", &Spec::demo("1.0.0", "1.0"));
    let out = env.kojibox(
        &env.install_args(&v1, Some(1), &[]),
        Some("install:after-switch"),
    );
    assert_eq!(out.status.signal(), Some(SIGABRT), "{}", text(&out));
    assert_eq!(env.manifest().version, "1.0.0");
    let key_id = support::key(1).key_id().to_string();
    assert!(
        env.at(&format!("app/keys/{key_id}.pub")).is_file(),
        "the running install's key is not pinned"
    );
    verify_ok(&env);
    let out = env.cli_install(&v1, None, &[]);
    assert!(stdout(&out).contains("already installed"), "{}", text(&out));
}

#[test]
fn verify_leaves_a_running_installs_staging_alone() {
    // While an install holds the lock, its staging folder is live: `kojibox verify` must not
    // "recover" it from under the install.
    let env = Env::new();
    env.cli_install(&env.bundle("v1", &Spec::demo("1.0.0", "1.0")), Some(1), &[]);
    let home = env.home();
    let _lock = home.lock(kojibox_home::LockName::Install).unwrap();
    let live = env.at("runtime/.staging/123-456/runtime/bin/demo/2.0");
    std::fs::create_dir_all(&live).unwrap();
    std::fs::write(live.join("half-written"), b"...").unwrap();
    let out = env.kojibox(&["verify"], None);
    assert!(
        live.join("half-written").is_file(),
        "verify removed a running install's staging folder:\n{}",
        text(&out)
    );
}
