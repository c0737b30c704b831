//! `runtime.getManifest`, `runtime.ensureService` and `kojibox verify` on an installed home.

use kojibox_home::ToApi;
use kojibox_manifests::error::{ErrorCode, ErrorSource};
use kojibox_runtime::Error;
use launcher::runtime::{ensure_service, get_manifest};

use crate::support::{Env, Spec, host, root, set_mode, stdout, text};

/// A home with 1.0.0 installed; returns it and the payload folder.
fn installed() -> (Env, std::path::PathBuf) {
    let env = Env::new();
    env.install(&env.bundle("v1", &Spec::demo("1.0.0", "1.0")), Some(1))
        .unwrap();
    let payload = env.at(&root("demo", "1.0", &host()));
    (env, payload)
}

#[test]
fn get_manifest_on_an_empty_home_is_runtime_missing() {
    let env = Env::new();
    let err = get_manifest(&env.home()).unwrap_err();
    assert!(matches!(err, Error::RuntimeMissing { .. }), "{err:?}");
    let api = err.to_api(ErrorSource::Runtime, "2024-01-01T00:00:00Z");
    assert_eq!(api.code, ErrorCode::RuntimeMissing);
    assert!(api.retryable);
    assert!(api.detail.contains("kojibox install"), "{}", api.detail);
}

#[test]
fn get_manifest_returns_the_installed_manifest() {
    let (env, _) = installed();
    let manifest = get_manifest(&env.home()).unwrap();
    assert_eq!(manifest.version, "1.0.0");
    assert!(manifest.bundle.signature.starts_with("ed25519:"));
}

#[test]
fn ensure_service_of_something_absent_is_runtime_missing() {
    for env in [Env::new(), installed().0] {
        for (name, version) in [("nosuch", "1"), ("demo", "9.9")] {
            let err = ensure_service(&env.home(), name, version).unwrap_err();
            match &err {
                Error::RuntimeMissing { detail } => {
                    assert_eq!(
                        detail,
                        &format!("{name} {version} not present in runtime/bin")
                    );
                }
                other => panic!("{other:?}"),
            }
            let api = err.to_api(ErrorSource::Runtime, "2024-01-01T00:00:00Z");
            assert_eq!(api.code, ErrorCode::RuntimeMissing);
            assert!(api.retryable, "RUNTIME_MISSING is retryable");
            assert_eq!(
                api.detail,
                format!("{name} {version} not present in runtime/bin")
            );
            assert_eq!(
                serde_json::to_value(&api).unwrap()["code"],
                "RUNTIME_MISSING"
            );
        }
    }
}

#[test]
fn ensure_service_returns_the_hosts_binary() {
    let (env, _) = installed();
    let binary = ensure_service(&env.home(), "demo", "1.0").unwrap();
    assert_eq!(format!("{}-{}", binary.os, binary.arch), host());
    assert_eq!(binary, get_manifest(&env.home()).unwrap().services[0]);
    assert_eq!(
        binary.bin_path,
        format!("{}/bin/demo", root("demo", "1.0", &host()))
    );
    assert!(env.at(&binary.bin_path).is_file());
    assert!(binary.checksum.starts_with("sha256:"));
}

#[test]
fn ensure_service_notices_a_changed_byte() {
    let (env, payload) = installed();
    let lib = payload.join("lib/libdemo.so.1.2");
    let mut bytes = std::fs::read(&lib).unwrap();
    bytes[1234] ^= 0x01;
    std::fs::write(&lib, bytes).unwrap();
    let err = ensure_service(&env.home(), "demo", "1.0").unwrap_err();
    assert!(matches!(err, Error::ChecksumMismatch { .. }), "{err:?}");
    let api = err.to_api(ErrorSource::Runtime, "2024-01-01T00:00:00Z");
    assert_eq!(api.code, ErrorCode::ChecksumMismatch);
    assert_eq!(
        serde_json::to_value(&api).unwrap()["code"],
        "CHECKSUM_MISMATCH"
    );
    assert!(api.detail.contains("demo 1.0"), "{}", api.detail);
}

#[test]
fn ensure_service_notices_a_mode_change() {
    let (env, payload) = installed();
    set_mode(&payload.join("bin/demo"), 0o644);
    let err = ensure_service(&env.home(), "demo", "1.0").unwrap_err();
    assert!(matches!(err, Error::ChecksumMismatch { .. }), "{err:?}");
}

/// `kojibox verify` output (it must exit 1).
fn drifted(env: &Env) -> String {
    let out = env.kojibox(&["verify"], None);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let said = stdout(&out);
    assert!(
        said.contains(&format!("DRIFTED  demo 1.0 {}", host())),
        "{said}"
    );
    said
}

#[test]
fn verify_is_clean_after_an_install() {
    let (env, _) = installed();
    let out = env.kojibox(&["verify"], None);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        stdout(&out).contains(&format!("ok       demo 1.0 {}", host())),
        "{}",
        text(&out)
    );
    let out = env.kojibox(&["verify", "--json"], None);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["clean"], true, "{json}");
    assert_eq!(json["payloads"][0]["intact"], true, "{json}");
}

#[test]
fn verify_names_a_changed_file() {
    let (env, payload) = installed();
    let mut bytes = std::fs::read(payload.join("README.txt")).unwrap();
    bytes[0] ^= 0x20;
    std::fs::write(payload.join("README.txt"), bytes).unwrap();
    assert!(drifted(&env).contains("changed: README.txt"));
}

#[test]
fn verify_names_an_added_file() {
    let (env, payload) = installed();
    std::fs::write(payload.join("bin/trojan"), b"#!/bin/sh\n").unwrap();
    assert!(drifted(&env).contains("added: bin/trojan"));
}

#[test]
fn verify_names_a_missing_file() {
    let (env, payload) = installed();
    std::fs::remove_file(payload.join("lib/libdemo.so.1")).unwrap();
    assert!(drifted(&env).contains("missing: lib/libdemo.so.1"));
}

#[test]
fn verify_names_a_mode_change() {
    let (env, payload) = installed();
    set_mode(&payload.join("bin/demo"), 0o700);
    assert!(drifted(&env).contains("mode 0700 (signed 0755): bin/demo"));
}

#[test]
fn verify_json_reports_the_drift() {
    let (env, payload) = installed();
    std::fs::remove_file(payload.join("README.txt")).unwrap();
    let out = env.kojibox(&["verify", "--json"], None);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["clean"], false, "{json}");
    assert_eq!(json["payloads"][0]["intact"], false, "{json}");
    assert_eq!(
        json["payloads"][0]["drift"][0], "missing: README.txt",
        "{json}"
    );
}

#[test]
fn verify_reports_a_removed_payload_folder() {
    // The manifest's payload is gone altogether: that is drift, not a clean install.
    let (env, payload) = installed();
    std::fs::remove_dir_all(&payload).unwrap();
    let out = env.kojibox(&["verify"], None);
    assert_eq!(
        out.status.code(),
        Some(1),
        "verify passes with the active payload deleted:\n{}",
        text(&out)
    );
    assert!(stdout(&out).contains("demo 1.0"), "{}", text(&out));
}

#[test]
fn verify_reports_a_missing_stored_index() {
    // Without its signed index the active payload cannot be checked: that is not "clean".
    let (env, _) = installed();
    std::fs::remove_file(env.at("runtime/indexes/1.0.0.json")).unwrap();
    let out = env.kojibox(&["verify"], None);
    assert_eq!(
        out.status.code(),
        Some(1),
        "verify passes without the active index:\n{}",
        text(&out)
    );
}

#[test]
fn verify_reports_a_manifest_that_differs_from_its_signed_index() {
    let (env, _) = installed();
    let path = env.at("runtime/manifest.json");
    let mut manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    manifest["services"][0]["binPath"] = "runtime/bin/demo/1.0/elsewhere/evil".into();
    std::fs::write(&path, serde_json::to_vec_pretty(&manifest).unwrap()).unwrap();
    let out = env.kojibox(&["verify"], None);
    assert_eq!(
        out.status.code(),
        Some(1),
        "verify passes with an altered runtime/manifest.json:\n{}",
        text(&out)
    );
}
