//! An intact bundle reads back exactly, is reproducible, and is plain tar + zstd.

use crate::support::{self, ROOT};
use kojibox_manifests::bundle::EntryKind;

#[test]
fn a_bundle_reads_back_every_file_and_link() {
    let dir = tempfile::tempdir().unwrap();
    support::payload(&dir.path().join("payload"));
    let out = dir.path().join("demo.kbx");
    let key = support::key(1);
    support::build(&dir.path().join("payload"), &out, &key, 2);
    let bytes = std::fs::read(&out).unwrap();

    let (signed, seen) = support::read(&bytes, &key.public_key()).unwrap();
    assert_eq!(signed.index.files.len(), 5);
    assert_eq!(seen[&format!("{ROOT}/bin/demo")], b"#!/bin/sh\necho demo\n");
    assert_eq!(seen[&format!("{ROOT}/README.txt")].len(), 6000);
    let link = signed
        .index
        .files
        .iter()
        .find(|f| f.path.ends_with("libdemo.so.1"))
        .unwrap();
    assert_eq!(
        (link.kind, link.target.as_deref()),
        (EntryKind::Symlink, Some("libdemo.so.1.2"))
    );
    let exe = signed
        .index
        .files
        .iter()
        .find(|f| f.path.ends_with("bin/demo"))
        .unwrap();
    assert_eq!(exe.mode, 0o755);
    assert!(
        signed
            .installed_manifest()
            .bundle
            .signature
            .starts_with("ed25519:")
    );
    // The partial file is gone.
    assert!(!dir.path().join("demo.kbx.partial").exists());
}

#[test]
fn builds_are_byte_identical_whatever_the_thread_count() {
    let dir = tempfile::tempdir().unwrap();
    support::payload(&dir.path().join("payload"));
    let key = support::key(1);
    let outs: Vec<Vec<u8>> = [1, 2, 4]
        .iter()
        .map(|threads| {
            let out = dir.path().join(format!("t{threads}.kbx"));
            support::build(&dir.path().join("payload"), &out, &key, *threads);
            std::fs::read(out).unwrap()
        })
        .collect();
    assert_eq!(outs[0], outs[1]);
    assert_eq!(outs[1], outs[2]);
}

#[test]
fn plain_zstd_and_tar_unpack_it() {
    if std::process::Command::new("zstd")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("zstd CLI not installed (ci/setup installs it); skipping");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    support::payload(&dir.path().join("payload"));
    let out = dir.path().join("demo.kbx");
    support::build(&dir.path().join("payload"), &out, &support::key(1), 2);
    let unpack = dir.path().join("unpacked");
    std::fs::create_dir(&unpack).unwrap();
    let status = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "zstd -dc '{}' | tar -xf - -C '{}'",
            out.display(),
            unpack.display()
        ))
        .status()
        .unwrap();
    assert!(status.success());
    assert!(unpack.join("kojibox/index.json").is_file());
    assert!(unpack.join("kojibox/index.sig").is_file());
    let original = std::fs::read(dir.path().join("payload/lib/libdemo.so.1.2")).unwrap();
    assert_eq!(
        std::fs::read(unpack.join(ROOT).join("lib/libdemo.so.1.2")).unwrap(),
        original
    );
    assert_eq!(
        std::fs::read_link(unpack.join(ROOT).join("lib/libdemo.so.1"))
            .unwrap()
            .to_str(),
        Some("libdemo.so.1.2")
    );
}

#[test]
fn an_index_padded_to_fill_its_gap_reads_back() {
    // The index frame's room is set aside before packing, from an index whose frame byte count
    // has more digits than the real one; when the real index then ends in an earlier tar
    // block, it is padded with spaces. Vary a file name's length until that happens: the
    // bundle must still be one valid, fully verified stream.
    let dir = tempfile::tempdir().unwrap();
    let key = support::key(1);
    let payload = dir.path().join("payload");
    support::payload(&payload);
    let mut padded = 0;
    for len in 1..=520 {
        // `n/xxx…/xxx…/x`: one more byte of path each time, in components a file system takes.
        let parts: Vec<String> = "x"
            .repeat(len)
            .into_bytes()
            .chunks(100)
            .map(|c| String::from_utf8(c.to_vec()).unwrap())
            .collect();
        let name = payload.join("n").join(parts.join("/"));
        std::fs::create_dir_all(name.parent().unwrap()).unwrap();
        std::fs::write(&name, b"n").unwrap();
        let out = dir.path().join("demo.kbx");
        support::build(&payload, &out, &key, 1);
        std::fs::remove_dir_all(payload.join("n")).unwrap();
        let bytes = std::fs::read(&out).unwrap();
        let (signed, seen) = support::read(&bytes, &key.public_key()).unwrap();
        assert_eq!(seen.len(), 6, "{len}");
        if signed.index_bytes.ends_with(b" \n") {
            padded += 1;
            assert_eq!(signed.index_bytes.len() % 512, 1, "{len}");
            let plain = zstd::decode_all(bytes.as_slice()).unwrap();
            let mut archive = tar::Archive::new(plain.as_slice());
            assert_eq!(archive.entries().unwrap().count(), 8, "{len}");
        }
    }
    assert!(padded > 0, "no name length needed padding");
}
