//! npm sources against a loopback registry: the real npm client talks to our test server,
//! which answers the packument (`GET /@scope%2fname`) and the tarball.

use std::process::Command;
use std::sync::{Arc, OnceLock};

use base64::Engine;
use bundler::fetch::FetchError;
use kojibox_manifests::recipe::Source;
use sha2::{Digest, Sha512};

use super::Env;
use super::fixtures::{Item, files_under, sha256_hex, tar_gz, tree, tree_of};
use super::server::{Reply, Request, Server};

const NAME: &str = "@kbx-test/payload";
const VERSION: &str = "1.2.3";

fn npm_available() -> bool {
    let found = Command::new("npm")
        .arg("--version")
        .output()
        .is_ok_and(|out| out.status.success());
    if !found {
        eprintln!("skipping: `npm` is not on PATH (CI installs Node.js and npm)");
    }
    found
}

fn integrity(bytes: &[u8]) -> String {
    format!(
        "sha512-{}",
        base64::engine::general_purpose::STANDARD.encode(Sha512::digest(bytes))
    )
}

fn tarball() -> Vec<u8> {
    let manifest = format!(r#"{{"name":"{NAME}","version":"{VERSION}"}}"#);
    tar_gz(&[
        Item::Dir("package/"),
        Item::File("package/package.json", manifest.as_bytes(), 0o644),
        Item::File("package/native/bin/postgres", b"\x7fELF pg", 0o755),
    ])
}

/// A registry serving one package version; `published(request)` picks the integrity that the
/// packument announces for that request.
fn registry(
    tarball: Vec<u8>,
    published: impl Fn(&Request) -> String + Send + Sync + 'static,
) -> Server {
    let tarball_path = "/tarballs/payload-1.2.3.tgz";
    // The packument names the tarball's URL, which needs the port, known only once started.
    let base = Arc::new(OnceLock::<String>::new());
    let server = Server::start({
        let base = base.clone();
        move |_, request| {
            let path = request.path.to_ascii_lowercase();
            if path == "/@kbx-test%2fpayload" {
                let base = base.get().expect("base URL set before any request");
                let packument = serde_json::json!({
                    "name": NAME,
                    "dist-tags": { "latest": VERSION },
                    "versions": { VERSION: {
                        "name": NAME,
                        "version": VERSION,
                        "dist": {
                            "tarball": format!("{base}{tarball_path}"),
                            "integrity": published(request),
                        },
                    }},
                });
                Reply::ok(packument.to_string()).header("Content-Type", "application/json")
            } else if path == tarball_path {
                Reply::ok(tarball.clone())
            } else {
                Reply::status(404)
            }
        }
    });
    base.set(server.url("")).unwrap();
    server
}

fn npm_source() -> Source {
    Source {
        npm: Some(format!("{NAME}@{VERSION}")),
        ..Source::default()
    }
}

#[test]
fn npm_package_is_fetched_from_the_registry_then_from_cache() {
    if !npm_available() {
        return;
    }
    let tgz = tarball();
    let expected_integrity = integrity(&tgz);
    let published = expected_integrity.clone();
    let server = registry(tgz.clone(), move |_| published.clone());
    let mut env = Env::new();
    env.ctx.npm_registry = Some(server.url("/"));

    let first = env.resolve(&npm_source()).unwrap();
    assert_eq!(
        tree(&first.root),
        tree_of(&[
            ("native", "dir"),
            ("native/bin", "dir"),
            ("native/bin/postgres", "file 755 \u{7f}ELF pg"),
            (
                "package.json",
                &format!(r#"file 644 {{"name":"{NAME}","version":"{VERSION}"}}"#)
            ),
        ])
    );
    assert_eq!(first.source, format!("npm:{NAME}@{VERSION}"));
    assert_eq!(
        first.upstream_digest.as_deref(),
        Some(expected_integrity.as_str())
    );
    assert_eq!(
        first.artifact_sha256,
        Some(format!("sha256:{}", sha256_hex(&tgz)))
    );
    assert!(!first.from_cache);
    let record = env.cache("npm").join("@kbx-test+payload@1.2.3.json");
    let record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(record).unwrap()).unwrap();
    assert_eq!(record["integrity"], expected_integrity);
    assert_eq!(record["sha256"], sha256_hex(&tgz));
    let seen = server.requests().len();
    assert!(
        seen >= 2,
        "npm asked for the packument and the tarball ({seen} requests)"
    );

    let second = env.resolve(&npm_source()).unwrap();
    assert!(second.from_cache);
    assert_eq!(second.root, first.root);
    assert_eq!(second.upstream_digest, first.upstream_digest);
    assert_eq!(
        server.requests().len(),
        seen,
        "a cached package needs no network"
    );
}

#[test]
fn npm_tarball_not_matching_the_published_integrity_is_refused() {
    if !npm_available() {
        return;
    }
    let tgz = tarball();
    let good = integrity(&tgz);
    let bogus = integrity(b"another tarball");
    // `npm view` reads the full packument (Accept: application/json); `npm pack` may read the
    // abbreviated one. Publishing a different integrity in the full one makes npm's own check
    // pass and leaves ours to catch the difference.
    let (good_for_pack, bogus_for_view) = (good.clone(), bogus.clone());
    let server = registry(tgz, move |request| {
        let accept = request.header("accept").unwrap_or_default();
        if accept.contains("application/vnd.npm.install-v1+json") {
            good_for_pack.clone()
        } else {
            bogus_for_view.clone()
        }
    });
    let mut env = Env::new();
    env.ctx.npm_registry = Some(server.url("/"));

    let err = env.resolve(&npm_source()).unwrap_err();
    let message = err.to_string();
    assert!(message.contains(&format!("{NAME}@{VERSION}")), "{message}");
    match &err {
        FetchError::ChecksumMismatch {
            expected, actual, ..
        } => {
            assert_eq!((expected, actual), (&bogus, &good));
        }
        // npm fetched the packument once and checked the tarball against the bogus digest
        // itself: its own refusal must reach the user.
        FetchError::Npm { why, .. } => assert!(why.contains("EINTEGRITY"), "{message}"),
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(files_under(&env.cache("blobs")), Vec::<String>::new());
    assert_eq!(files_under(&env.cache("npm")), Vec::<String>::new());
}
