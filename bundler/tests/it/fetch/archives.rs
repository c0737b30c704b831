//! Archive unpacking through `path` sources: formats, strip, links, modes and refusals.

use std::path::PathBuf;

use bundler::fetch::FetchError;
use kojibox_manifests::recipe::Source;

use super::fixtures::{Item, tar, tar_gz, tar_xz, tar_zst, tree, tree_of, zip};
use super::{Env, put, set_mode};

fn archive_source(name: &str, strip: u32) -> Source {
    Source {
        path: Some(name.to_owned()),
        strip: Some(strip),
        ..Source::default()
    }
}

/// Unpacks `bytes` saved as `name`; the environment must outlive any use of the result.
fn unpack(name: &str, bytes: &[u8], strip: u32) -> (Env, Result<PathBuf, FetchError>) {
    let env = Env::new();
    put(&env, name, bytes);
    let result = env.resolve(&archive_source(name, strip)).map(|r| r.root);
    (env, result)
}

/// Asserts a refusal that names `needles`, with nothing published in the cache.
fn assert_refused(name: &str, bytes: &[u8], strip: u32, needles: &[&str]) {
    let (env, result) = unpack(name, bytes, strip);
    let err = result.expect_err(name);
    assert!(matches!(err, FetchError::UnsafeEntry { .. }), "{err:?}");
    let message = err.to_string();
    for needle in needles {
        assert!(
            message.contains(needle),
            "{message:?} should mention {needle:?}"
        );
    }
    env.assert_cache_empty();
}

#[test]
fn tar_gz_keeps_symlinks_inside_the_payload() {
    let archive = tar_gz(&[
        Item::Dir("pg/"),
        Item::File("pg/lib/libpq.so.5.16", b"elf", 0o755),
        Item::Symlink("pg/lib/libpq.so.5", "libpq.so.5.16"),
        Item::Symlink("pg/bin/libpq", "../lib/libpq.so.5"),
        Item::Symlink("pg/bin/top", ".."),
    ]);
    let (_env, root) = unpack("pg.tar.gz", &archive, 1);
    let root = root.unwrap();
    assert_eq!(
        tree(&root),
        tree_of(&[
            ("bin", "dir"),
            ("bin/libpq", "link -> ../lib/libpq.so.5"),
            ("bin/top", "link -> .."),
            ("lib", "dir"),
            ("lib/libpq.so.5", "link -> libpq.so.5.16"),
            ("lib/libpq.so.5.16", "file 755 elf"),
        ])
    );
}

#[test]
fn tar_gz_refuses_a_symlink_leaving_the_payload() {
    let archive = tar_gz(&[
        Item::File("pkg/ok", b"ok", 0o644),
        Item::Symlink("pkg/evil", "../../etc/passwd"),
    ]);
    assert_refused(
        "evil.tar.gz",
        &archive,
        1,
        &["pkg/evil", "../../etc/passwd", "outside"],
    );
    // `..` from the payload root leaves it even without strip.
    let absolute = tar_gz(&[Item::Symlink("abs", "/etc/passwd")]);
    assert_refused("abs.tgz", &absolute, 0, &["abs", "/etc/passwd"]);
}

#[test]
fn tar_refuses_parent_components_devices_and_writes_through_links() {
    let dotdot = tar_gz(&[Item::RawFile("../x", b"boom")]);
    assert_refused("dotdot.tar.gz", &dotdot, 0, &["../x", "`..`"]);
    let absolute = tar(&[Item::RawFile("/tmp/x", b"boom")]);
    assert_refused("absolute.tar", &absolute, 0, &["/tmp/x", "absolute"]);
    let fifo = tar(&[Item::Fifo("pkg/pipe")]);
    assert_refused("fifo.tar", &fifo, 1, &["pkg/pipe", "FIFO"]);
    // The link itself stays inside, but a later entry must not be written through it.
    let through = tar(&[Item::Symlink("lib", "."), Item::File("lib/x", b"x", 0o644)]);
    assert_refused("through.tar", &through, 0, &["lib/x", "symlink `lib`"]);
    let duplicate = tar(&[Item::File("a", b"1", 0o644), Item::File("a", b"2", 0o644)]);
    assert_refused("dup.tar", &duplicate, 0, &["duplicate"]);
}

#[test]
fn tar_hard_links_become_copies_inside_the_payload() {
    let archive = tar(&[
        Item::File("p/bin/postgres", b"binary", 0o755),
        Item::Hardlink("p/bin/postmaster", "p/bin/postgres"),
    ]);
    let (_env, root) = unpack("hl.tar", &archive, 1);
    let root = root.unwrap();
    assert_eq!(
        tree(&root),
        tree_of(&[
            ("bin", "dir"),
            ("bin/postgres", "file 755 binary"),
            ("bin/postmaster", "file 755 binary"),
        ])
    );
    let outside = tar(&[Item::Hardlink("p/passwd", "../etc/passwd")]);
    assert_refused("hl-out.tar", &outside, 1, &["p/passwd", "../etc/passwd"]);
}

#[test]
fn zip_is_unpacked_with_modes_and_symlinks() {
    let archive = zip(&[
        Item::Dir("app/"),
        Item::File("app/bin/run", b"#!/bin/sh\n", 0o755),
        Item::File("app/doc.txt", b"doc", 0o600),
        Item::Symlink("app/bin/alias", "run"),
    ]);
    let (_env, root) = unpack("app.zip", &archive, 1);
    let root = root.unwrap();
    assert_eq!(
        tree(&root),
        tree_of(&[
            ("bin", "dir"),
            ("bin/alias", "link -> run"),
            ("bin/run", "file 755 #!/bin/sh\n"),
            ("doc.txt", "file 644 doc"),
        ])
    );
    let evil = zip(&[Item::Symlink("evil", "../outside")]);
    assert_refused("evil.zip", &evil, 0, &["evil", "../outside"]);
}

#[test]
fn tar_zst_and_tar_xz_are_unpacked() {
    let items = [
        Item::File("./d/bin/redis-server", b"redis", 0o755),
        Item::File("./d/redis.conf", b"port 6379", 0o644),
    ];
    let expected = tree_of(&[
        ("bin", "dir"),
        ("bin/redis-server", "file 755 redis"),
        ("redis.conf", "file 644 port 6379"),
    ]);
    let (_env, zst) = unpack("r.tar.zst", &tar_zst(&items), 1);
    assert_eq!(tree(&zst.unwrap()), expected);
    // Suffixes are matched without regard to case.
    let (_env, xz) = unpack("R.TAR.XZ", &tar_xz(&items), 1);
    assert_eq!(tree(&xz.unwrap()), expected);
}

#[test]
fn plain_file_keeps_its_name_and_executable_bit() {
    let env = Env::new();
    put(&env, "mailpit", b"\x7fELF");
    set_mode(&env.ctx.recipe_dir.join("mailpit"), 0o750);
    put(&env, "notes.md", b"# notes");

    let tool = env.resolve(&archive_source("mailpit", 0)).unwrap();
    assert_eq!(
        tree(&tool.root),
        tree_of(&[("mailpit", "file 755 \u{7f}ELF")])
    );
    assert!(tool.root.starts_with(env.cache("unpacked")));
    let notes = env.resolve(&archive_source("notes.md", 0)).unwrap();
    assert_eq!(
        tree(&notes.root),
        tree_of(&[("notes.md", "file 644 # notes")])
    );

    let err = env.resolve(&archive_source("notes.md", 1)).unwrap_err();
    assert!(matches!(err, FetchError::StripNotArchive { .. }), "{err:?}");
}

#[test]
fn an_archive_expanding_far_beyond_its_size_is_refused_at_the_cap() {
    // 70 MiB of zeros: a few KB compressed, over the default cap of max(64 MiB, 100x).
    let zeros = vec![0u8; 70 << 20];
    let bomb = tar_zst(&[Item::File("bomb/zeros", &zeros, 0o644)]);
    assert!(bomb.len() < 1 << 20, "{} bytes", bomb.len());
    let (env, result) = unpack("bomb.tar.zst", &bomb, 1);
    let err = result.expect_err("a bomb");
    assert!(matches!(err, FetchError::BadArchive { .. }), "{err:?}");
    let message = err.to_string();
    assert!(
        message.contains("expands to more than 67108864 bytes")
            && message.contains("KOJIBOX_BUNDLE_MAX_UNPACKED"),
        "{message}"
    );
    env.assert_cache_empty();
    // Just under the cap unpacks.
    let fine = vec![0u8; 60 << 20];
    let ok = tar_zst(&[Item::File("ok/zeros", &fine, 0o644)]);
    let (_env, root) = unpack("ok.tar.zst", &ok, 1);
    assert_eq!(
        std::fs::metadata(root.unwrap().join("zeros"))
            .unwrap()
            .len(),
        60 << 20
    );
}
