//! `kojibox-bundle keygen/build/verify/inspect` as a user runs them, on `path` sources (no
//! network): the bundle verifies, is reproducible, and any tampering fails `verify`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn bundle(dir: &Path, args: &[&str], envs: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kojibox-bundle"))
        .args(args)
        .current_dir(dir)
        .env("KOJIBOX_CACHE", dir.join("cache"))
        .envs(envs.iter().copied())
        .output()
        .expect("run kojibox-bundle")
}

fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn failed(out: Output) -> String {
    assert_eq!(
        out.status.code(),
        Some(1),
        "expected failure; stdout: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8(out.stderr).unwrap()
}

/// A recipe with two services, one from a folder and one from a tar.gz file, plus a key.
fn project() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir_all(d.join("web/bin")).unwrap();
    std::fs::write(d.join("web/bin/web"), b"#!/bin/sh\nexec sleep 1000\n").unwrap();
    set_exec(&d.join("web/bin/web"));
    std::fs::create_dir_all(d.join("web/lib")).unwrap();
    std::fs::write(d.join("web/lib/libweb.so.2.1"), vec![7u8; 50_000]).unwrap();
    std::fs::write(
        d.join("web/links.json"),
        r#"[{"source": "lib/libweb.so.2.1", "target": "lib/libweb.so.2"}]"#,
    )
    .unwrap();
    std::fs::create_dir_all(d.join("db-src/db-1.0/bin")).unwrap();
    std::fs::write(d.join("db-src/db-1.0/bin/db"), b"db binary").unwrap();
    set_exec(&d.join("db-src/db-1.0/bin/db"));
    let status = Command::new("tar")
        .args(["-czf", "db.tar.gz", "-C", "db-src", "db-1.0"])
        .current_dir(d)
        .status()
        .unwrap();
    assert!(status.success());
    std::fs::write(
        d.join("recipe.toml"),
        r#"version = "1.2.0"
source = "test"

[[service]]
name = "web"
version = "3.1"
defaultPorts = [{ name = "http", port = 8080, protocol = "tcp" }]
  [service.definition]
  dependsOn = ["db"]
  [[service.target]]
  os = "linux"
  arch = "x64"
  binPath = "bin/web"
  source = { path = "web" }
  symlinksFrom = "links.json"
  [[service.target]]
  os = "darwin"
  arch = "arm64"
  binPath = "bin/web"
  source = { path = "web" }

[[service]]
name = "db"
version = "1.0"
  [[service.target]]
  os = "linux"
  arch = "x64"
  binPath = "bin/db"
  source = { path = "db.tar.gz", strip = 1 }
"#,
    )
    .unwrap();
    ok(bundle(d, &["keygen", "--out", "release"], &[]));
    dir
}

fn set_exec(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

fn build(d: &Path, out: &str, extra: &[&str]) -> String {
    let mut args = vec!["build", "recipe.toml", "--key", "release.key", "--out", out];
    args.extend_from_slice(extra);
    ok(bundle(d, &args, &[("SOURCE_DATE_EPOCH", "1700000000")]))
}

#[test]
fn keygen_writes_a_private_key_and_a_public_key() {
    let dir = project();
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(dir.path().join("release.key"))
            .unwrap()
            .permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);
    assert!(dir.path().join("release.pub").is_file());
    let err = failed(bundle(dir.path(), &["keygen", "--out", "release"], &[]));
    assert!(
        err.contains("refusing to overwrite existing secret key file release.key"),
        "{err}"
    );
}

#[test]
fn the_bundle_sha256_is_printed_when_asked() {
    let dir = project();
    let d = dir.path();
    // Not by default: it costs a second read of the whole bundle.
    let plain = build(d, "plain.kbx", &[]);
    let hashed = build(d, "hashed.kbx", &["--sha256"]);
    let bytes = std::fs::read(d.join("hashed.kbx")).unwrap();
    assert_eq!(bytes, std::fs::read(d.join("plain.kbx")).unwrap());
    let line = format!(
        "\n  sha256:{}\n",
        hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&bytes))
    );
    assert!(hashed.contains(&line), "{hashed}");
    assert!(!plain.contains(&line), "{plain}");
    assert!(!plain.contains("\n  sha256:"), "{plain}");
}

#[test]
fn a_built_bundle_verifies_and_inspects() {
    let dir = project();
    let d = dir.path();
    let stdout = build(d, "stack.kbx", &[]);
    assert!(stdout.starts_with("wrote stack.kbx"), "{stdout}");
    assert!(stdout.contains("web 3.1 linux-x64"), "{stdout}");
    let verified = ok(bundle(
        d,
        &["verify", "stack.kbx", "--pubkey", "release.pub"],
        &[],
    ));
    assert!(
        verified.starts_with("OK: stack.kbx is bundle 1.2.0"),
        "{verified}"
    );

    let json: serde_json::Value =
        serde_json::from_str(&ok(bundle(d, &["inspect", "stack.kbx", "--json"], &[]))).unwrap();
    let services = json["manifest"]["services"].as_array().unwrap();
    assert_eq!(services.len(), 3);
    let web = &services[0];
    assert_eq!(web["binPath"], "runtime/bin/web/3.1/linux-x64/bin/web");
    let files = ["web/bin/web", "web/lib/libweb.so.2.1", "web/links.json"];
    let size: u64 = files
        .iter()
        .map(|f| std::fs::metadata(d.join(f)).unwrap().len())
        .sum();
    assert_eq!(web["size"], size);
    assert!(web["checksum"].as_str().unwrap().starts_with("sha256:"));
    assert_eq!(
        json["manifest"]["bundle"]["createdAt"],
        "2023-11-14T22:13:20Z"
    );
    assert!(
        json["manifest"]["bundle"]["signature"]
            .as_str()
            .unwrap()
            .starts_with("ed25519:")
    );
    // The symlinksFrom link was added for linux only; the darwin payload has none.
    assert_eq!(json["payloads"][0]["symlinks"], 1);
    assert_eq!(json["payloads"][1]["symlinks"], 0);
    // The archive's top folder was stripped.
    assert_eq!(
        services[2]["binPath"],
        "runtime/bin/db/1.0/linux-x64/bin/db"
    );
    assert_eq!(json["provenance"][2]["source"], "path:db.tar.gz");
    assert_eq!(json["templates"]["web"]["dependsOn"][0], "db");

    let human = ok(bundle(d, &["inspect", "stack.kbx"], &[]));
    assert!(
        human.contains("provenance:") && human.contains("path:web"),
        "{human}"
    );
}

#[test]
fn two_builds_are_byte_identical() {
    let dir = project();
    let d = dir.path();
    build(d, "a.kbx", &[]);
    build(d, "b.kbx", &["--threads", "1"]);
    let (a, b) = (
        std::fs::read(d.join("a.kbx")).unwrap(),
        std::fs::read(d.join("b.kbx")).unwrap(),
    );
    assert!(!a.is_empty());
    assert_eq!(a, b, "builds differ");
}

#[test]
fn only_the_selected_targets_are_packed() {
    let dir = project();
    let d = dir.path();
    build(d, "linux.kbx", &["--target", "linux-x64"]);
    let json: serde_json::Value =
        serde_json::from_str(&ok(bundle(d, &["inspect", "linux.kbx", "--json"], &[]))).unwrap();
    assert_eq!(json["payloads"].as_array().unwrap().len(), 2);
    let err = failed(bundle(
        d,
        &[
            "build",
            "recipe.toml",
            "--key",
            "release.key",
            "--out",
            "x.kbx",
            "--target",
            "darwin-arm64",
        ],
        &[],
    ));
    assert!(
        err.contains("service `db` has no target `darwin-arm64`"),
        "{err}"
    );
    assert!(!d.join("x.kbx").exists());
}

#[test]
fn dry_run_prints_the_plan_and_writes_nothing() {
    let dir = project();
    let d = dir.path();
    let plan = ok(bundle(
        d,
        &["build", "recipe.toml", "--out", "p.kbx", "--dry-run"],
        &[],
    ));
    assert!(
        plan.starts_with("plan for bundle 1.2.0 (3 payloads):"),
        "{plan}"
    );
    for step in [
        "fetch   web 3.1 linux-x64: path web",
        "stage   db 1.0 linux-x64 -> runtime/bin/db/1.0/linux-x64",
        "pack    3 payloads",
        "sign ",
        "write   p.kbx",
    ] {
        assert!(plan.contains(step), "missing {step:?} in\n{plan}");
    }
    assert!(!d.join("p.kbx").exists() && !d.join("p.key").exists() && !d.join("cache").exists());
}

#[test]
fn a_missing_key_is_generated_next_to_the_bundle_and_reused() {
    let dir = project();
    let d = dir.path();
    let out = bundle(d, &["build", "recipe.toml", "--out", "auto.kbx"], &[]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("generated signing key"));
    ok(bundle(
        d,
        &["verify", "auto.kbx", "--pubkey", "auto.pub"],
        &[],
    ));
    let again = bundle(d, &["build", "recipe.toml", "--out", "auto.kbx"], &[]);
    assert!(String::from_utf8_lossy(&again.stderr).contains("signing with auto.key"));
    ok(bundle(
        d,
        &["verify", "auto.kbx", "--pubkey", "auto.pub"],
        &[],
    ));
}

fn built(d: &Path) -> (PathBuf, Vec<u8>) {
    build(d, "t.kbx", &[]);
    let path = d.join("t.kbx");
    let bytes = std::fs::read(&path).unwrap();
    (path, bytes)
}

#[test]
fn verify_fails_on_a_flipped_byte_anywhere() {
    let dir = project();
    let d = dir.path();
    let (path, bytes) = built(d);
    // 40 positions spread over the whole file, first and last byte included.
    let positions: Vec<usize> = (0..40).map(|i| i * (bytes.len() - 1) / 39).collect();
    for position in positions {
        let mut copy = bytes.clone();
        copy[position] ^= 0x40;
        std::fs::write(&path, &copy).unwrap();
        let err = failed(bundle(
            d,
            &["verify", "t.kbx", "--pubkey", "release.pub"],
            &[],
        ));
        assert!(
            err.starts_with("error: t.kbx does not verify: "),
            "byte {position}: {err}"
        );
    }
}

#[test]
fn verify_fails_with_another_key_and_on_truncation() {
    let dir = project();
    let d = dir.path();
    let (path, bytes) = built(d);
    ok(bundle(d, &["keygen", "--out", "other"], &[]));
    let err = failed(bundle(
        d,
        &["verify", "t.kbx", "--pubkey", "other.pub"],
        &[],
    ));
    assert!(
        err.contains("signed by key") && err.contains("not"),
        "{err}"
    );
    std::fs::write(&path, &bytes[..bytes.len() - 100]).unwrap();
    let err = failed(bundle(
        d,
        &["verify", "t.kbx", "--pubkey", "release.pub"],
        &[],
    ));
    assert!(err.contains("does not verify"), "{err}");
}

#[test]
fn a_bad_payload_fails_the_build_and_leaves_no_output() {
    let dir = project();
    let d = dir.path();
    std::fs::write(
        d.join("recipe.toml"),
        std::fs::read_to_string(d.join("recipe.toml"))
            .unwrap()
            .replace("binPath = \"bin/db\"", "binPath = \"bin/nope\""),
    )
    .unwrap();
    let err = failed(bundle(
        d,
        &[
            "build",
            "recipe.toml",
            "--key",
            "release.key",
            "--out",
            "bad.kbx",
        ],
        &[],
    ));
    assert!(
        err.contains("db 1.0 linux-x64: binPath `bin/nope` is not in the payload"),
        "{err}"
    );
    assert!(!d.join("bad.kbx").exists() && !d.join("bad.kbx.partial").exists());
    // A symlink that leaves the payload is refused too.
    std::os::unix::fs::symlink("../../../etc/passwd", d.join("web/lib/escape")).unwrap();
    let err = failed(bundle(
        d,
        &[
            "build",
            "recipe.toml",
            "--key",
            "release.key",
            "--out",
            "bad.kbx",
        ],
        &[],
    ));
    assert!(err.contains("leaves the payload"), "{err}");
    assert!(!d.join("bad.kbx").exists());
}

#[test]
fn a_checksum_mismatch_names_both_digests_and_leaves_no_output() {
    use crate::fetch::server::{Reply, Server};
    let server = Server::start(|_, _| Reply::ok(b"not the promised bytes".to_vec()));
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let promised = "0".repeat(64);
    std::fs::write(
        d.join("recipe.toml"),
        format!(
            "version = \"1.0.0\"\nsource = \"t\"\n[[service]]\nname = \"svc\"\nversion = \"1\"\n  [[service.target]]\n  os = \"linux\"\n  arch = \"x64\"\n  binPath = \"svc\"\n  source = {{ url = \"{}\", sha256 = \"{promised}\" }}\n",
            server.url("/svc")
        ),
    )
    .unwrap();
    let err = failed(bundle(
        d,
        &["build", "recipe.toml", "--out", "svc.kbx"],
        &[],
    ));
    let actual = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(
        b"not the promised bytes",
    ));
    assert!(err.contains(&server.url("/svc")), "{err}");
    assert!(err.contains(&promised), "expected digest named: {err}");
    assert!(err.contains(&actual), "actual digest named: {err}");
    assert!(!d.join("svc.kbx").exists() && !d.join("svc.kbx.partial").exists());
    let blobs = d.join("cache/blobs/sha256");
    assert!(
        !blobs.exists() || std::fs::read_dir(&blobs).unwrap().next().is_none(),
        "nothing kept in the cache"
    );
}

/// Issue 14, item 9: a signature error and a refusal are each printed once, the cause not
/// repeated after a message that already quotes it.
#[test]
fn a_signature_error_and_a_refusal_are_printed_once() {
    let dir = project();
    let d = dir.path();
    built(d);
    ok(bundle(d, &["keygen", "--out", "other"], &[]));
    let err = failed(bundle(
        d,
        &["verify", "t.kbx", "--pubkey", "other.pub"],
        &[],
    ));
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with(
            "error: t.kbx does not verify: bundle signature is invalid: data was signed by key "
        ),
        "{err}"
    );
    assert_eq!(err.matches("signed by key").count(), 1, "{err}");
    // A refusal of the recipe: said once, with its line and column.
    std::fs::write(d.join("bad.toml"), "version = \"1.0.0\"\n").unwrap();
    let err = failed(bundle(d, &["check", "bad.toml"], &[]));
    assert_eq!(
        err,
        "error: recipe bad.toml is invalid: line 1, column 1: missing field `source`\n"
    );
    // A refusal to publish over a newer version.
    let repo = d.join("repo");
    let repo = repo.to_str().unwrap();
    ok(bundle(
        d,
        &["publish", "t.kbx", "--repo", repo, "--key", "release.key"],
        &[],
    ));
    std::fs::write(
        d.join("old.toml"),
        std::fs::read_to_string(d.join("recipe.toml"))
            .unwrap()
            .replace("version = \"1.2.0\"", "version = \"1.1.0\""),
    )
    .unwrap();
    ok(bundle(
        d,
        &[
            "build",
            "old.toml",
            "--key",
            "release.key",
            "--out",
            "old.kbx",
        ],
        &[],
    ));
    let err = failed(bundle(
        d,
        &["publish", "old.kbx", "--repo", repo, "--key", "release.key"],
        &[],
    ));
    assert_eq!(
        err,
        "error: the stable channel names 1.2.0, newer than 1.1.0: pass --force to publish an older version\n"
    );
}
