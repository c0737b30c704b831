//! The fetch layer: url downloads against a scripted loopback server, local paths, archives
//! (in `fetch/archives.rs`) and npm against a loopback registry (in `fetch/npm.rs`).
#![cfg(unix)]

mod archives;
mod fixtures;
mod npm;
pub mod server;

use std::path::Path;
use std::time::Duration;

use bundler::fetch::{FetchContext, FetchError, HttpOptions, Resolved, resolve};
use indicatif::ProgressBar;
use kojibox_manifests::recipe::Source;
use tempfile::TempDir;

use fixtures::{Item, files_under, noise, sha256_hex, tar_gz, tree, tree_of};
use server::{Reply, Server};

/// A fresh cache and recipe folder, with fast timeouts and backoffs.
struct Env {
    /// Owns the temporary folders; deleted with the test's `Env`.
    _dir: TempDir,
    ctx: FetchContext,
}

impl Env {
    fn new() -> Env {
        let dir = tempfile::tempdir().unwrap();
        let recipe_dir = dir.path().join("recipe");
        std::fs::create_dir(&recipe_dir).unwrap();
        let mut ctx = FetchContext::new(dir.path().join("cache"), recipe_dir);
        ctx.http = HttpOptions {
            connect_timeout: Duration::from_secs(2),
            read_timeout: Duration::from_secs(5),
            retries: 2,
            backoff: Duration::from_millis(10),
            max_size: 1 << 20,
        };
        Env { _dir: dir, ctx }
    }

    fn cache(&self, sub: &str) -> std::path::PathBuf {
        self.ctx.cache_dir.join(sub)
    }

    fn resolve(&self, source: &Source) -> Result<Resolved, FetchError> {
        resolve(source, "x64", &self.ctx, &ProgressBar::hidden())
    }

    /// Asserts that no blob, partial download or unpacked folder was left behind.
    fn assert_cache_empty(&self) {
        for sub in ["blobs", "tmp", "unpacked"] {
            assert_eq!(
                files_under(&self.cache(sub)),
                Vec::<String>::new(),
                "{sub}/"
            );
        }
    }
}

fn url_source(url: &str, sha256: &str, strip: Option<u32>) -> Source {
    Source {
        url: Some(url.to_owned()),
        sha256: Some(sha256.to_owned()),
        strip,
        ..Source::default()
    }
}

fn path_source(path: &str, sha256: Option<&str>) -> Source {
    Source {
        path: Some(path.to_owned()),
        sha256: sha256.map(str::to_owned),
        ..Source::default()
    }
}

/// Serves `body` as the answer to every request.
fn serve_always(body: Vec<u8>) -> Server {
    Server::start(move |_, _| Reply::ok(body.clone()))
}

/// Answers a `Range: bytes=N-` request with a 206 for the rest of `body`.
fn partial_reply(body: &[u8], range: Option<&str>) -> Reply {
    let start: usize = range
        .and_then(|r| r.strip_prefix("bytes="))
        .and_then(|r| r.strip_suffix('-'))
        .and_then(|n| n.parse().ok())
        .expect("a `Range: bytes=N-` request");
    Reply::status(206)
        .header(
            "Content-Range",
            format!("bytes {start}-{}/{}", body.len() - 1, body.len()),
        )
        .body(body[start..].to_vec())
}

#[test]
fn url_tar_gz_is_unpacked_with_strip_then_served_from_cache() {
    let env = Env::new();
    let archive = tar_gz(&[
        Item::Dir("tool-1.0/"),
        Item::File("tool-1.0/bin/tool", b"#!/bin/sh\necho hi\n", 0o755),
        Item::File("tool-1.0/share/readme.txt", b"hello", 0o644),
    ]);
    let sha = sha256_hex(&archive);
    let server = serve_always(archive);
    let url = server.url("/dl/tool-1.0.tar.gz?token=x");
    let source = url_source(&url, &sha, Some(1));

    let first = env.resolve(&source).unwrap();
    assert_eq!(
        tree(&first.root),
        tree_of(&[
            ("bin", "dir"),
            ("bin/tool", "file 755 #!/bin/sh\necho hi\n"),
            ("share", "dir"),
            ("share/readme.txt", "file 644 hello"),
        ])
    );
    assert_eq!(first.source, format!("url:{url}"));
    assert_eq!(
        first.upstream_digest.as_deref(),
        Some(&*format!("sha256:{sha}"))
    );
    assert_eq!(
        first.artifact_sha256.as_deref(),
        Some(&*format!("sha256:{sha}"))
    );
    assert!(!first.from_cache);
    assert!(env.cache("blobs/sha256").join(&sha).is_file());
    assert!(first.root.starts_with(env.cache("unpacked")));
    assert_eq!(files_under(&env.cache("tmp")), Vec::<String>::new());

    // Without the unpacked folder, the cached blob spares the network: it is unpacked again.
    let blob = env.cache("blobs/sha256").join(&sha);
    std::fs::remove_dir_all(&first.root).unwrap();
    let second = env.resolve(&source).unwrap();
    assert!(second.from_cache);
    assert_eq!(second.root, first.root);
    assert_eq!(tree(&second.root).len(), 4);

    // Without the blob, the unpacked folder alone is enough: reused, not unpacked again.
    std::fs::remove_file(&blob).unwrap();
    let third = env.resolve(&source).unwrap();
    assert!(third.from_cache);
    assert_eq!(third.root, first.root);
    let requests = server.requests();
    assert_eq!(requests.len(), 1, "only the first resolve downloads");
    assert_eq!(requests[0].method, "GET");
    assert_eq!(requests[0].path, "/dl/tool-1.0.tar.gz?token=x");
}

#[test]
fn url_checksum_mismatch_names_both_digests_and_keeps_nothing() {
    let env = Env::new();
    let body = b"not what the recipe pinned".to_vec();
    let actual = sha256_hex(&body);
    let expected = sha256_hex(b"the real thing");
    let server = serve_always(body);
    let url = server.url("/file.tar.gz");

    let err = env.resolve(&url_source(&url, &expected, None)).unwrap_err();
    assert!(
        matches!(err, FetchError::ChecksumMismatch { .. }),
        "{err:?}"
    );
    let message = err.to_string();
    assert!(message.contains(&url), "{message}");
    assert!(message.contains(&format!("sha256:{expected}")), "{message}");
    assert!(message.contains(&format!("sha256:{actual}")), "{message}");
    env.assert_cache_empty();
}

#[test]
fn url_dropped_mid_body_resumes_with_range() {
    let env = Env::new();
    let body = noise(10_000);
    let sha = sha256_hex(&body);
    let served = body.clone();
    let server = Server::start(move |index, request| match index {
        0 => Reply::ok(served.clone()).cut_after(4_000),
        _ => partial_reply(&served, request.header("range")),
    });

    let resolved = env
        .resolve(&url_source(&server.url("/blob.bin"), &sha, None))
        .unwrap();
    let requests = server.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[0].header("range"), None);
    assert_eq!(requests[1].header("range"), Some("bytes=4000-"));
    assert_eq!(resolved.artifact_sha256, Some(format!("sha256:{sha}")));
    assert_eq!(std::fs::read(resolved.root.join("blob.bin")).unwrap(), body);
    assert_eq!(files_under(&env.cache("tmp")), Vec::<String>::new());
}

#[test]
fn url_resume_restarts_when_the_server_ignores_range() {
    let env = Env::new();
    let body = noise(10_000);
    let sha = sha256_hex(&body);
    let served = body.clone();
    let server = Server::start(move |index, _| match index {
        0 => Reply::ok(served.clone()).cut_after(3_000),
        _ => Reply::ok(served.clone()),
    });

    let resolved = env
        .resolve(&url_source(&server.url("/blob.bin"), &sha, None))
        .unwrap();
    let requests = server.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[1].header("range"), Some("bytes=3000-"));
    // Appending the full body to the first 3000 bytes would break the digest.
    assert_eq!(std::fs::read(resolved.root.join("blob.bin")).unwrap(), body);
}

#[test]
fn url_5xx_is_retried_with_backoff() {
    let env = Env::new();
    let body = b"payload".to_vec();
    let sha = sha256_hex(&body);
    let served = body.clone();
    let server = Server::start(move |index, _| match index {
        0 => Reply::status(503),
        1 => Reply::status(500),
        _ => Reply::ok(served.clone()),
    });
    let resolved = env
        .resolve(&url_source(&server.url("/tool"), &sha, None))
        .unwrap();
    assert_eq!(server.requests().len(), 3);
    assert_eq!(
        tree(&resolved.root),
        tree_of(&[("tool", "file 755 payload")])
    );

    // A server that keeps failing exhausts the budget: 1 attempt + `retries` (2).
    let failing = Server::start(|_, _| Reply::status(502));
    let other = sha256_hex(b"never served");
    let err = env
        .resolve(&url_source(&failing.url("/x"), &other, None))
        .unwrap_err();
    assert!(
        matches!(err, FetchError::Download { attempts: 3, .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("HTTP 502"), "{err}");
    assert_eq!(failing.requests().len(), 3);
}

#[test]
fn url_404_is_final() {
    let env = Env::new();
    let server = Server::start(|_, _| Reply::status(404));
    let url = server.url("/missing.tar.gz");
    let err = env
        .resolve(&url_source(&url, &sha256_hex(b"x"), None))
        .unwrap_err();
    let message = err.to_string();
    assert!(message.contains("not found (HTTP 404)"), "{message}");
    assert!(message.contains(&url), "{message}");
    assert_eq!(server.requests().len(), 1, "4xx is never retried");
    env.assert_cache_empty();
}

#[test]
fn url_size_cap_is_enforced() {
    let mut env = Env::new();
    env.ctx.http.max_size = 1_000;
    let body = noise(5_000);
    let sha = sha256_hex(&body);

    // Announced too large: refused before reading the body.
    let announced = Server::start(|_, _| Reply::ok(*b"tiny").content_length(5_000_000));
    let err = env
        .resolve(&url_source(&announced.url("/big"), &sha, None))
        .unwrap_err();
    assert!(
        matches!(
            err,
            FetchError::TooLarge {
                size: 5_000_000,
                max: 1_000,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(announced.requests().len(), 1);

    // Not announced: stopped as the body grows past the cap.
    let served = body.clone();
    let growing = Server::start(move |_, _| Reply::ok(served.clone()).no_length());
    let err = env
        .resolve(&url_source(&growing.url("/big"), &sha, None))
        .unwrap_err();
    assert!(
        matches!(err, FetchError::TooLarge { max: 1_000, .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("too large"), "{err}");
    env.assert_cache_empty();
}

#[test]
fn url_concurrent_resolves_of_one_artifact_all_succeed() {
    let env = Env::new();
    let archive = tar_gz(&[Item::File("pkg/bin/run", b"run", 0o755)]);
    let sha = sha256_hex(&archive);
    let server = serve_always(archive);
    let source = url_source(&server.url("/pkg.tgz"), &sha, Some(1));

    let results: Vec<Resolved> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..4)
            .map(|_| scope.spawn(|| env.resolve(&source)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap().unwrap())
            .collect()
    });
    for resolved in &results {
        assert_eq!(resolved.root, results[0].root);
    }
    assert_eq!(
        tree(&results[0].root),
        tree_of(&[("bin", "dir"), ("bin/run", "file 755 run")])
    );
    assert_eq!(files_under(&env.cache("tmp")), Vec::<String>::new());
    assert_eq!(files_under(&env.cache("blobs")).len(), 1);
}

#[test]
fn path_folder_is_used_in_place() {
    let env = Env::new();
    let folder = env.ctx.recipe_dir.join("payload");
    std::fs::create_dir_all(folder.join("bin")).unwrap();
    std::fs::write(folder.join("bin/tool"), "x").unwrap();

    let resolved = env.resolve(&path_source("payload", None)).unwrap();
    assert_eq!(resolved.root, folder);
    assert_eq!(resolved.source, "path:payload");
    assert_eq!(resolved.upstream_digest, None);
    assert_eq!(resolved.artifact_sha256, None);
    assert!(
        !env.ctx.cache_dir.exists(),
        "a folder is neither copied nor cached"
    );

    let absolute = folder.to_str().unwrap();
    assert_eq!(
        env.resolve(&path_source(absolute, None)).unwrap().root,
        folder
    );

    let err = env
        .resolve(&path_source("payload", Some(&sha256_hex(b"x"))))
        .unwrap_err();
    assert!(matches!(err, FetchError::DigestForFolder { .. }), "{err:?}");
}

#[test]
fn path_file_is_verified_against_its_sha256() {
    let env = Env::new();
    let file = env.ctx.recipe_dir.join("tool");
    std::fs::write(&file, "#!/bin/sh\n").unwrap();
    let actual = sha256_hex(b"#!/bin/sh\n");
    let wrong = sha256_hex(b"something else");

    let err = env.resolve(&path_source("tool", Some(&wrong))).unwrap_err();
    let message = err.to_string();
    assert!(
        matches!(err, FetchError::ChecksumMismatch { .. }),
        "{err:?}"
    );
    assert!(
        message.contains(&format!("expected sha256:{wrong}")),
        "{message}"
    );
    assert!(
        message.contains(&format!("got sha256:{actual}")),
        "{message}"
    );
    assert!(message.contains(&file.display().to_string()), "{message}");
    env.assert_cache_empty();

    let resolved = env.resolve(&path_source("tool", Some(&actual))).unwrap();
    assert_eq!(resolved.upstream_digest, Some(format!("sha256:{actual}")));
    assert_eq!(resolved.artifact_sha256, Some(format!("sha256:{actual}")));

    let missing = env.resolve(&path_source("nope", None)).unwrap_err();
    assert!(
        matches!(missing, FetchError::PathMissing { .. }),
        "{missing:?}"
    );
}

/// Writes `bytes` as `name` in the recipe folder.
fn put(env: &Env, name: &str, bytes: &[u8]) {
    std::fs::write(env.ctx.recipe_dir.join(name), bytes).unwrap();
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}
