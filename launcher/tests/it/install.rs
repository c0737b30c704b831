//! `kojibox install` as a user runs it: keys, versions, targets, what is written and what is not.

use kojibox_manifests::bundle::BundleIndex;
use kojibox_signing::{PublicKey, Signature};
use launcher::install::{InstallOptions, status};

use crate::support::{self, Env, Spec, diff, foreign, host, mode_of, root, stderr, stdout, text};

#[test]
fn a_first_install_without_pubkey_is_refused_and_writes_no_runtime() {
    let env = Env::new();
    let v1 = env.bundle("v1", &Spec::demo("1.0.0", "1.0"));
    let out = env.kojibox(&env.install_args(&v1, None, &[]), None);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let err = stderr(&out);
    assert!(
        err.contains("pass --pubkey KEY.pub") && err.contains("no pinned key"),
        "{err}"
    );
    assert!(!env.at("runtime").exists(), "runtime/ was created");
    assert!(!env.at("app/keys").exists(), "a key was pinned");
}

#[test]
fn a_first_install_pins_the_key_and_writes_the_runtime() {
    let env = Env::new();
    let v1 = env.bundle("v1", &Spec::demo("1.0.0", "1.0"));
    let out = env.cli_install(&v1, Some(1), &[]);
    let key_id = support::key(1).key_id().to_string();
    let said = stdout(&out);
    assert!(
        said.contains("installed bundle 1.0.0 into")
            && said.contains(&format!("signed by key {key_id}"))
            && said.contains(&format!("+ demo 1.0 {}", host()))
            && said.contains(&format!("pinned key {key_id}")),
        "{said}"
    );

    // The key is pinned under its id.
    let pinned = PublicKey::read(env.at(&format!("app/keys/{key_id}.pub"))).unwrap();
    assert_eq!(pinned, support::key(1).public_key());

    // The manifest carries the signature; the stored index is the exact signed bytes.
    let manifest = env.manifest();
    assert_eq!(manifest.version, "1.0.0");
    assert!(
        manifest
            .bundle
            .signature
            .starts_with(&format!("ed25519:{key_id}:")),
        "{}",
        manifest.bundle.signature
    );
    let index_bytes = std::fs::read(env.at("runtime/indexes/1.0.0.json")).unwrap();
    let signature = std::fs::read_to_string(env.at("runtime/indexes/1.0.0.sig")).unwrap();
    assert_eq!(signature.trim(), manifest.bundle.signature);
    let signature: Signature = signature.trim().parse().unwrap();
    pinned.verify(&index_bytes, &signature).unwrap();
    let bundle_bytes = std::fs::read(&v1).unwrap();
    assert_eq!(index_bytes, crate::craft::members(&bundle_bytes)[0].data);
    let index: BundleIndex = serde_json::from_slice(&index_bytes).unwrap();
    assert_eq!(manifest.services, index.manifest.services);
    let template: serde_json::Value =
        serde_json::from_slice(&std::fs::read(env.at("runtime/services/demo.json")).unwrap())
            .unwrap();
    assert!(template.is_object(), "{template}");

    // Every payload entry, with the index's mode, and the symlink as a symlink.
    let base = env.at(&root("demo", "1.0", &host()));
    for entry in &index.files {
        let rel = entry
            .path
            .strip_prefix(&format!("{}/", root("demo", "1.0", &host())));
        let path = base.join(rel.unwrap());
        match entry.kind {
            kojibox_manifests::bundle::EntryKind::File => {
                assert_eq!(mode_of(&path), entry.mode, "{}", entry.path);
                assert_eq!(std::fs::metadata(&path).unwrap().len(), entry.size);
            }
            kojibox_manifests::bundle::EntryKind::Symlink => {
                let target = std::fs::read_link(&path).unwrap();
                assert_eq!(target.to_str(), entry.target.as_deref());
            }
        }
    }
    assert_eq!(mode_of(&base.join("bin/demo")), 0o755);
    assert_eq!(mode_of(&base.join("README.txt")), 0o644);
    assert_eq!(
        std::fs::read_link(base.join("lib/libdemo.so.1")).unwrap(),
        std::path::Path::new("libdemo.so.1.2")
    );
    assert_eq!(
        std::fs::read_to_string(base.join("bin/demo")).unwrap(),
        "#!/bin/sh\necho demo 1.0\n"
    );
    assert!(!env.at("runtime/.staging").exists());
    let verify = env.kojibox(&["verify"], None);
    assert!(verify.status.success(), "{}", text(&verify));
}

#[test]
fn installing_the_same_bundle_again_changes_nothing() {
    let env = Env::new();
    let v1 = env.bundle("v1", &Spec::demo("1.0.0", "1.0"));
    env.cli_install(&v1, Some(1), &[]);
    let before = env.snapshot();
    let out = env.cli_install(&v1, None, &[]);
    assert!(
        stdout(&out).contains("bundle 1.0.0 is already installed"),
        "{}",
        text(&out)
    );
    let changes: Vec<String> = diff(&before, &env.snapshot())
        .into_iter()
        .filter(|c| c != "changed app/state/installer.json")
        .collect();
    assert!(changes.is_empty(), "a re-install changed: {changes:?}");
    // With the key given again it is the same no-op.
    let out = env.cli_install(&v1, Some(1), &[]);
    assert!(stdout(&out).contains("already installed"), "{}", text(&out));
}

#[test]
fn a_newer_version_installs_beside_the_old_one() {
    let env = Env::new();
    let v1 = env.bundle("v1", &Spec::demo("1.0.0", "1.0"));
    let v2 = env.bundle("v2", &Spec::demo("2.0.0", "2.0").display("Demo 2"));
    env.cli_install(&v1, Some(1), &[]);
    let old = support::subtree(&env.snapshot(), &root("demo", "1.0", &host()));
    let out = env.cli_install(&v2, None, &[]);
    assert!(
        stdout(&out).contains(&format!("+ demo 2.0 {}", host())),
        "{}",
        text(&out)
    );
    let manifest = env.manifest();
    assert_eq!(manifest.version, "2.0.0");
    assert_eq!(manifest.services.len(), 1);
    assert_eq!(manifest.services[0].version, "2.0");
    assert!(
        env.at(&root("demo", "2.0", &host()))
            .join("bin/demo")
            .is_file()
    );
    let now = support::subtree(&env.snapshot(), &root("demo", "1.0", &host()));
    assert_eq!(old, now, "the old payload changed");
    assert!(env.at("runtime/indexes/1.0.0.json").is_file());
    assert!(env.at("runtime/indexes/2.0.0.json").is_file());
    let template = std::fs::read_to_string(env.at("runtime/services/demo.json")).unwrap();
    assert!(template.contains("Demo 2"), "{template}");
    let verify = env.kojibox(&["verify"], None);
    assert!(verify.status.success(), "{}", text(&verify));
}

#[test]
fn a_shared_payload_is_kept_and_a_conflicting_one_refused() {
    let env = Env::new();
    env.cli_install(&env.bundle("v1", &Spec::demo("1.0.0", "1.0")), Some(1), &[]);
    // 1.1.0 carries the same demo 1.0 payload and a new service.
    let v11 = env.bundle(
        "v11",
        &Spec::demo("1.1.0", "1.0").with("cache", "7.2", &host()),
    );
    let out = env.cli_install(&v11, None, &[]);
    let said = stdout(&out);
    assert!(
        said.contains(&format!("= demo 1.0 {} (already installed)", host()))
            && said.contains(&format!("+ cache 7.2 {}", host())),
        "{said}"
    );
    assert_eq!(env.manifest().services.len(), 2);
    // A bundle whose demo 1.0 has other bytes may not replace it in place.
    let mut spec = Spec::demo("1.2.0", "1.0");
    spec.services[0].big_mib = 1;
    let v12 = env.bundle("v12", &spec);
    let before = env.snapshot();
    let out = env.kojibox(&env.install_args(&v12, None, &[]), None);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        stderr(&out).contains("already installed with different content"),
        "{}",
        text(&out)
    );
    let changes = diff(&before, &env.snapshot());
    assert_eq!(changes, vec!["changed app/state/installer.json".to_owned()]);
}

#[test]
fn an_older_bundle_needs_allow_downgrade() {
    let env = Env::new();
    let v1 = env.bundle("v1", &Spec::demo("1.0.0", "1.0"));
    let v2 = env.bundle("v2", &Spec::demo("2.0.0", "2.0"));
    env.cli_install(&v1, Some(1), &[]);
    env.cli_install(&v2, None, &[]);
    let out = env.kojibox(&env.install_args(&v1, None, &[]), None);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        stderr(&out).contains("bundle 1.0.0 is older than the installed 2.0.0")
            && stderr(&out).contains("--allow-downgrade"),
        "{}",
        text(&out)
    );
    assert_eq!(env.manifest().version, "2.0.0");
    env.cli_install(&v1, None, &["--allow-downgrade"]);
    assert_eq!(env.manifest().version, "1.0.0");
    assert_eq!(env.manifest().services[0].version, "1.0");
    let verify = env.kojibox(&["verify"], None);
    assert!(verify.status.success(), "{}", text(&verify));
}

#[test]
fn another_key_is_refused_until_it_is_given() {
    let env = Env::new();
    env.cli_install(&env.bundle("v1", &Spec::demo("1.0.0", "1.0")), Some(1), &[]);
    let v2 = env.bundle("v2", &Spec::demo("2.0.0", "2.0").signed_by(2));
    let key2 = support::key(2).key_id().to_string();
    let before = env.snapshot();
    let out = env.kojibox(&env.install_args(&v2, None, &[]), None);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        stderr(&out).contains(&format!(
            "signed by key {key2}, which is not in the trust store"
        )),
        "{}",
        text(&out)
    );
    assert_eq!(
        diff(&before, &env.snapshot()),
        vec!["changed app/state/installer.json".to_owned()]
    );
    let out = env.cli_install(&v2, Some(2), &[]);
    assert!(
        stdout(&out).contains(&format!("pinned key {key2}")),
        "{}",
        text(&out)
    );
    assert!(env.at(&format!("app/keys/{key2}.pub")).is_file());
    assert_eq!(env.manifest().version, "2.0.0");
    // Both keys are pinned now: verify checks every stored index.
    let verify = env.kojibox(&["verify"], None);
    assert!(verify.status.success(), "{}", text(&verify));
}

fn two_targets() -> Spec {
    Spec::demo("1.0.0", "1.0").with("demo", "1.0", &foreign())
}

#[test]
fn only_the_hosts_target_is_installed_by_default() {
    let env = Env::new();
    let bundle = env.bundle("multi", &two_targets());
    env.cli_install(&bundle, Some(1), &[]);
    assert!(env.at(&root("demo", "1.0", &host())).is_dir());
    assert!(!env.at(&root("demo", "1.0", &foreign())).exists());
    let manifest = env.manifest();
    let targets: Vec<String> = manifest
        .services
        .iter()
        .map(|s| format!("{}-{}", s.os, s.arch))
        .collect();
    assert_eq!(targets, vec![host()]);
}

#[test]
fn all_targets_installs_every_payload() {
    let env = Env::new();
    let bundle = env.bundle("multi", &two_targets());
    env.cli_install(&bundle, Some(1), &["--all-targets"]);
    assert!(
        env.at(&root("demo", "1.0", &host()))
            .join("bin/demo")
            .is_file()
    );
    assert!(
        env.at(&root("demo", "1.0", &foreign()))
            .join("bin/demo")
            .is_file()
    );
    assert_eq!(env.manifest().services.len(), 2);
    let verify = env.kojibox(&["verify"], None);
    assert!(verify.status.success(), "{}", text(&verify));
}

#[test]
fn a_bundle_without_a_payload_for_this_machine_is_refused() {
    let env = Env::new();
    let mut spec = Spec::demo("1.0.0", "1.0");
    spec.services[0].target = foreign();
    let bundle = env.bundle("foreign", &spec);
    let out = env.kojibox(&env.install_args(&bundle, Some(1), &[]), None);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let err = stderr(&out);
    assert!(
        err.contains(&format!(
            "the bundle has no payload for {} (it has: {})",
            host(),
            foreign()
        )) && err.contains("--all-targets"),
        "{err}"
    );
    assert!(!env.at("runtime/bin").exists());
    assert!(!env.at("runtime/manifest.json").exists());
}

#[test]
fn service_data_is_never_touched() {
    let env = Env::new();
    let data = env.at("runtime/data/demo");
    std::fs::create_dir_all(data.join("base")).unwrap();
    std::fs::write(data.join("PG_VERSION"), "16\n").unwrap();
    std::fs::write(data.join("base/1"), support::noise(5000, 9)).unwrap();
    support::set_mode(&data.join("base/1"), 0o600);
    std::os::unix::fs::symlink("../../../elsewhere", data.join("link")).unwrap();
    let before = support::subtree(&env.snapshot(), "runtime/data");
    env.cli_install(&env.bundle("v1", &Spec::demo("1.0.0", "1.0")), Some(1), &[]);
    env.cli_install(&env.bundle("v2", &Spec::demo("2.0.0", "2.0")), None, &[]);
    let after = support::subtree(&env.snapshot(), "runtime/data");
    assert_eq!(before, after);
}

#[test]
fn installer_status_follows_the_phases() {
    let env = Env::new();
    let home = env.home();
    assert_eq!(status(&home).unwrap().phase, "idle");
    let v1 = env.bundle("v1", &Spec::demo("1.0.0", "1.0"));
    let mut seen = Vec::new();
    let options = InstallOptions {
        pubkey: Some(env.pubkey(1)),
        ..InstallOptions::default()
    };
    launcher::install::install(&home, &v1, &options, &mut |p| seen.push(p.clone())).unwrap();
    let phases: Vec<&str> = seen.iter().map(|p| p.phase.as_str()).collect();
    let mut order = phases.clone();
    order.dedup();
    assert_eq!(order, ["verify", "extract", "finalize", "done"], "{seen:?}");
    assert!(
        seen.windows(2).all(|w| w[0].progress <= w[1].progress),
        "progress went back: {seen:?}"
    );
    let last = seen.last().unwrap();
    assert_eq!((last.phase.as_str(), last.progress), ("done", 100));
    let persisted = status(&home).unwrap();
    assert_eq!(
        (persisted.phase.as_str(), persisted.progress),
        ("done", 100)
    );

    // A refused install ends in `failed`.
    let v2 = env.bundle("v2", &Spec::demo("2.0.0", "2.0").signed_by(3));
    env.install(&v2, None).unwrap_err();
    assert_eq!(status(&home).unwrap().phase, "failed");
    // And the next good one in `done` again.
    let v3 = env.bundle("v3", &Spec::demo("3.0.0", "3.0"));
    env.install(&v3, None).unwrap();
    let persisted = status(&home).unwrap();
    assert_eq!(
        (persisted.phase.as_str(), persisted.progress),
        ("done", 100)
    );
}

#[test]
fn a_pubkey_that_did_not_sign_the_bundle_is_refused() {
    let env = Env::new();
    let v1 = env.bundle("v1", &Spec::demo("1.0.0", "1.0"));
    let out = env.kojibox(&env.install_args(&v1, Some(2), &[]), None);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let (key1, key2) = (support::key(1).key_id(), support::key(2).key_id());
    assert!(
        stderr(&out).contains(&format!(
            "data was signed by key {key1}, not by this key {key2}"
        )),
        "{}",
        text(&out)
    );
    assert!(!env.at("runtime").exists());
    assert!(!env.at("app/keys").exists());
}

#[test]
fn a_second_install_at_the_same_time_is_refused() {
    let env = Env::new();
    let v1 = env.bundle("v1", &Spec::demo("1.0.0", "1.0"));
    let home = env.home();
    let lock = home.lock(kojibox_home::LockName::Install).unwrap();
    let out = env.kojibox(&env.install_args(&v1, Some(1), &[]), None);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        stderr(&out).contains("another install is running"),
        "{}",
        text(&out)
    );
    assert!(!env.at("runtime").exists());
    drop(lock);
    env.cli_install(&v1, Some(1), &[]);
}

#[test]
fn a_payload_folder_no_signed_index_vouches_for_is_not_trusted() {
    // Something left runtime/bin/demo/2.0/<host> behind (a manual copy, a damaged home): the
    // install of 2.0.0 must not adopt it unverified as "already installed".
    let env = Env::new();
    env.install(&env.bundle("v1", &Spec::demo("1.0.0", "1.0")), Some(1))
        .unwrap();
    let stray = env.at(&root("demo", "2.0", &host()));
    std::fs::create_dir_all(stray.join("bin")).unwrap();
    std::fs::write(
        stray.join("bin/demo"),
        "#!/bin/sh\necho not the signed one\n",
    )
    .unwrap();
    let v2 = env.bundle("v2", &Spec::demo("2.0.0", "2.0"));
    match env.install(&v2, None) {
        Ok(report) => {
            let ensured = launcher::runtime::ensure_service(&env.home(), "demo", "2.0");
            assert!(
                ensured.is_ok(),
                "installed {report:?}, but the active payload is not the signed one: {ensured:?}"
            );
        }
        Err(e) => {
            assert!(e.to_string().contains(&root("demo", "2.0", &host())), "{e}");
            assert_eq!(env.manifest().version, "1.0.0");
        }
    }
}

#[test]
fn an_error_names_its_cause_once() {
    let env = Env::new();
    let bundle = env.bundle("v1", &Spec::demo("1.0.0", "1.0"));
    let missing = env.root().join("no-such.pub");
    let out = env.kojibox(
        &[
            "install".as_ref(),
            bundle.as_os_str(),
            "--pubkey".as_ref(),
            missing.as_os_str(),
        ],
        None,
    );
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("could not read public key file") && err.contains(&*missing.to_string_lossy()),
        "{err}"
    );
    assert_eq!(
        err.matches("No such file or directory").count(),
        1,
        "the cause is said once: {err}"
    );
}

#[test]
fn a_damaged_copy_of_the_installed_bundle_is_refused_not_called_already_installed() {
    let env = Env::new();
    let v1 = env.bundle("v1", &Spec::demo("1.0.0", "1.0").big(2));
    env.cli_install(&v1, Some(1), &[]);
    let bytes = std::fs::read(&v1).unwrap();
    // A USB copy cut short, and one with a flipped byte late in the payload.
    let truncated = env.write_bundle("cut", &bytes[..bytes.len() * 3 / 4]);
    let mut flipped = bytes.clone();
    let at = bytes.len() - 64;
    flipped[at] ^= 0x40;
    let flipped = env.write_bundle("flipped", &flipped);
    let before = env.snapshot();
    for bad in [&truncated, &flipped] {
        let out = env.kojibox(&env.install_args(bad, None, &[]), None);
        assert!(!out.status.success(), "{}: {}", bad.display(), text(&out));
        assert!(
            !text(&out).contains("already installed"),
            "{}: {}",
            bad.display(),
            text(&out)
        );
    }
    let changes: Vec<String> = diff(&before, &env.snapshot())
        .into_iter()
        .filter(|c| c != "changed app/state/installer.json")
        .collect();
    assert!(changes.is_empty(), "a refused copy changed: {changes:?}");
    // The intact copy is still the installed one.
    let out = env.cli_install(&v1, None, &[]);
    assert!(stdout(&out).contains("already installed"), "{}", text(&out));
}

#[test]
fn a_different_bundle_with_the_installed_version_is_refused_naming_what_changes() {
    let env = Env::new();
    let v1 = env.bundle(
        "v1",
        &Spec::demo("1.0.0", "1.0").with("cache", "7.2", &host()),
    );
    env.cli_install(&v1, Some(1), &[]);
    let manifest = std::fs::read(env.at("runtime/manifest.json")).unwrap();
    // A rebuild that kept the version: `cache` dropped, `queue` added.
    let rebuild = env.bundle(
        "rebuild",
        &Spec::demo("1.0.0", "1.0").with("queue", "3.1", &host()),
    );
    let out = env.kojibox(&env.install_args(&rebuild, None, &[]), None);
    assert!(!out.status.success(), "{}", text(&out));
    let said = text(&out);
    assert!(
        said.contains("remove cache 7.2") && said.contains("add queue 3.1"),
        "{said}"
    );
    assert!(said.contains("--replace"), "{said}");
    assert_eq!(
        std::fs::read(env.at("runtime/manifest.json")).unwrap(),
        manifest,
        "the manifest was replaced"
    );
    // Asked for, it replaces.
    let out = env.kojibox(&env.install_args(&rebuild, None, &["--replace"]), None);
    assert!(out.status.success(), "{}", text(&out));
    let now = std::fs::read_to_string(env.at("runtime/manifest.json")).unwrap();
    assert!(now.contains("queue") && !now.contains("\"cache\""), "{now}");
}

#[test]
fn a_missing_bundle_is_not_found_and_a_fifo_or_folder_is_refused_at_once() {
    let env = Env::new();
    let missing = env.root().join("nope.kbx");
    let out = env.kojibox(&env.install_args(&missing, Some(1), &[]), None);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("no bundle at") && stderr(&out).contains("nope.kbx"),
        "{}",
        text(&out)
    );
    let error =
        launcher::installer::start(&env.home(), Some(missing.to_str().unwrap()), &mut |_| {})
            .unwrap_err();
    assert_eq!(
        kojibox_home::ToApi::code(&error),
        kojibox_manifests::error::ErrorCode::NotFound,
        "{error}"
    );

    // A FIFO nobody writes: opening it for reading would block for ever, holding the lock.
    let fifo = env.root().join("pipe.kbx");
    assert!(
        std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    for odd in [&fifo, &env.root().to_path_buf()] {
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_kojibox"))
            .arg("--home")
            .arg(env.home_dir())
            .args(["install", odd.to_str().unwrap(), "--pubkey"])
            .arg(env.pubkey(1))
            .env_remove("KOJIBOX_HOME")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let started = std::time::Instant::now();
        while child.try_wait().unwrap().is_none() {
            if started.elapsed() > std::time::Duration::from_secs(10) {
                let _ = child.kill();
                let _ = child.wait();
                panic!("install of {} hangs", odd.display());
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let out = child.wait_with_output().unwrap();
        assert!(!out.status.success());
        assert!(
            stderr(&out).contains("is not a regular file"),
            "{}: {}",
            odd.display(),
            text(&out)
        );
    }
    // The install lock was let go: a real bundle installs.
    env.cli_install(&env.bundle("v1", &Spec::demo("1.0.0", "1.0")), Some(1), &[]);
}
