//! Any change to a bundle makes strict reading fail, with its own error.

use crate::support::{self, Member, ROOT};
use kojibox_kbx::Error;

fn built(payload: impl FnOnce(&std::path::Path)) -> (tempfile::TempDir, Vec<u8>) {
    let dir = tempfile::tempdir().unwrap();
    payload(&dir.path().join("payload"));
    let out = dir.path().join("demo.kbx");
    support::build(&dir.path().join("payload"), &out, &support::key(1), 1);
    let bytes = std::fs::read(&out).unwrap();
    (dir, bytes)
}

fn tiny(dir: &std::path::Path) {
    std::fs::create_dir_all(dir.join("bin")).unwrap();
    std::fs::write(dir.join("bin/demo"), b"#!/bin/sh\necho tiny\n").unwrap();
    std::fs::write(dir.join("notes.txt"), b"small notes").unwrap();
}

fn refused(bytes: &[u8]) -> Error {
    match support::read(bytes, &support::key(1).public_key()) {
        Ok(_) => panic!("a tampered bundle was accepted"),
        Err(e) => e,
    }
}

#[test]
fn flipping_any_byte_fails() {
    let (_dir, bytes) = built(tiny);
    assert!(
        bytes.len() < 8192,
        "keep this bundle small: every byte is flipped"
    );
    support::read(&bytes, &support::key(1).public_key()).unwrap();
    let mut accepted = Vec::new();
    for position in 0..bytes.len() {
        let mut copy = bytes.clone();
        copy[position] ^= 0x01;
        if support::read(&copy, &support::key(1).public_key()).is_ok() {
            accepted.push(position);
        }
    }
    assert!(
        accepted.is_empty(),
        "flips at {accepted:?} of {} bytes were accepted",
        bytes.len()
    );
}

#[test]
fn another_key_fails() {
    let (_dir, bytes) = built(tiny);
    let err = support::read(&bytes, &support::key(2).public_key()).unwrap_err();
    assert!(
        matches!(
            err,
            Error::Signature(kojibox_signing::Error::WrongKey { .. })
        ),
        "{err}"
    );
}

fn edit(bytes: &[u8], change: impl FnOnce(&mut Vec<Member>)) -> Vec<u8> {
    support::edit_payload(bytes, change)
}

#[test]
fn an_added_entry_fails() {
    let (_dir, bytes) = built(support::payload);
    let err = refused(&edit(&bytes, |m| {
        let mut extra = m.last().unwrap().clone();
        extra.path = format!("{ROOT}/zz-extra");
        extra.link = None;
        extra.kind = tar::EntryType::Regular;
        m.push(extra);
    }));
    assert_eq!(
        err.to_string(),
        format!("bundle member {ROOT}/zz-extra: not in the signed index")
    );
}

#[test]
fn a_removed_entry_fails() {
    let (_dir, bytes) = built(support::payload);
    let err = refused(&edit(&bytes, |m| {
        m.retain(|m| !m.path.ends_with("README.txt"));
    }));
    assert_eq!(
        err.to_string(),
        format!("bundle is missing 1 member(s) named by its index, first {ROOT}/README.txt")
    );
}

#[test]
fn a_renamed_entry_fails() {
    let (_dir, bytes) = built(support::payload);
    let err = refused(&edit(&bytes, |m| {
        let readme = m
            .iter_mut()
            .find(|m| m.path.ends_with("README.txt"))
            .unwrap();
        readme.path = readme.path.replace("README.txt", "README.md");
    }));
    assert!(
        err.to_string()
            .ends_with("README.md: not in the signed index"),
        "{err}"
    );
}

#[test]
fn altered_content_of_the_same_size_fails() {
    let (_dir, bytes) = built(support::payload);
    let err = refused(&edit(&bytes, |m| {
        let readme = m
            .iter_mut()
            .find(|m| m.path.ends_with("README.txt"))
            .unwrap();
        readme.data[10] ^= 0x20;
    }));
    assert!(
        err.to_string()
            .contains("content differs from the signed sha256"),
        "{err}"
    );
}

#[test]
fn a_changed_link_target_fails() {
    let (_dir, bytes) = built(support::payload);
    let err = refused(&edit(&bytes, |m| {
        let link = m.iter_mut().find(|m| m.link.is_some()).unwrap();
        link.link = Some("../bin/demo".into());
    }));
    assert!(err.to_string().contains("symlink target differs"), "{err}");
}

#[test]
fn an_edited_index_fails_the_signature() {
    let (_dir, bytes) = built(support::payload);
    let members = support::members(&bytes);
    let index = String::from_utf8(members[0].data.clone())
        .unwrap()
        .replace("\"1.0.0\"", "\"9.0.0\"");
    let signature = String::from_utf8(members[1].data.clone()).unwrap();
    let frame_a = kojibox_kbx::write::header_frame(index.as_bytes(), &signature, 1_700_000_000);
    let rest = &bytes[support::index_frame(&bytes).len()..];
    let err = refused(&[frame_a, rest.to_vec()].concat());
    assert!(
        matches!(
            err,
            Error::Signature(kojibox_signing::Error::BadSignature { .. })
        ),
        "{err:?}"
    );
}

#[test]
fn an_unsigned_bundle_fails() {
    let (_dir, bytes) = built(support::payload);
    let members = support::members(&bytes);
    let only_index =
        kojibox_kbx::write::raw_member(kojibox_manifests::bundle::INDEX_PATH, &members[0].data, 0);
    let rest = &bytes[support::index_frame(&bytes).len()..];
    let err = refused(&[kojibox_kbx::write::raw_frame(&only_index), rest.to_vec()].concat());
    assert!(matches!(err, Error::Unsigned), "{err}");
    // A bundle whose first frame is ordinary compressed data is not a signed kojibox bundle.
    let err =
        refused(&zstd::encode_all(&zstd::decode_all(bytes.as_slice()).unwrap()[..], 3).unwrap());
    assert!(matches!(err, Error::Unsigned), "{err}");
}

#[test]
fn a_duplicate_entry_fails() {
    let (_dir, bytes) = built(support::payload);
    let err = refused(&edit(&bytes, |m| {
        let dup = m
            .iter()
            .find(|m| m.path.ends_with("README.txt"))
            .unwrap()
            .clone();
        m.push(dup);
    }));
    assert!(
        err.to_string().ends_with("README.txt: duplicate entry"),
        "{err}"
    );
}

#[test]
fn special_files_are_refused() {
    for (kind, why) in [
        (tar::EntryType::Link, "hardlinks are not allowed"),
        (tar::EntryType::Fifo, "FIFOs are not allowed"),
        (tar::EntryType::Char, "device files are not allowed"),
        (tar::EntryType::Directory, "folder entries are not allowed"),
    ] {
        let (_dir, bytes) = built(support::payload);
        let err = refused(&edit(&bytes, |m| {
            let readme = m
                .iter_mut()
                .find(|m| m.path.ends_with("README.txt"))
                .unwrap();
            readme.kind = kind;
            readme.data.clear();
            if kind == tar::EntryType::Link {
                readme.link = Some(format!("{ROOT}/bin/demo"));
            }
        }));
        assert!(err.to_string().ends_with(why), "{kind:?}: {err}");
    }
}

#[test]
fn a_truncated_bundle_fails() {
    let (_dir, bytes) = built(support::payload);
    for cut in [bytes.len() - 1, bytes.len() / 2, 100] {
        let err = refused(&bytes[..cut]);
        assert!(
            matches!(
                err,
                Error::Truncated(_) | Error::Corrupt(_) | Error::Missing { .. }
            ),
            "cut at {cut}: {err}"
        );
    }
}

#[test]
fn a_repacked_payload_frame_fails_even_with_the_same_members() {
    let (_dir, bytes) = built(support::payload);
    let err = refused(&edit(&bytes, |_| {}));
    assert!(
        err.to_string()
            .contains("the payload frame is not the signed one"),
        "{err}"
    );
}

#[test]
fn trailing_data_fails() {
    let (_dir, mut bytes) = built(tiny);
    bytes.extend(zstd::encode_all(&b"trailing garbage"[..], 3).unwrap());
    let err = refused(&bytes);
    assert!(
        err.to_string()
            .contains("data after the end of the archive"),
        "{err}"
    );
}

#[test]
fn a_link_through_another_link_is_refused_when_packing_and_reading() {
    // a/b/l -> ../../c is inside, and so is x -> a/b/l/../.. as text; on disk the second one
    // would resolve from c, one level above the payload.
    let dir = tempfile::tempdir().unwrap();
    let payload = dir.path().join("payload");
    std::fs::create_dir_all(payload.join("a/b")).unwrap();
    std::fs::create_dir_all(payload.join("c")).unwrap();
    std::fs::write(payload.join("c/file"), b"x").unwrap();
    std::fs::create_dir_all(payload.join("bin")).unwrap();
    std::fs::write(payload.join("bin/demo"), b"demo").unwrap();
    std::os::unix::fs::symlink("../../c", payload.join("a/b/l")).unwrap();
    std::os::unix::fs::symlink("a/b/l/../..", payload.join("x")).unwrap();
    let entries = kojibox_kbx::write::walk_payload(&payload).unwrap();
    let inputs = vec![kojibox_kbx::write::PackInput {
        root: ROOT.into(),
        entries,
    }];
    let options = kojibox_kbx::write::PackOptions {
        level: 1,
        threads: 1,
        mtime: 0,
    };
    let packed =
        kojibox_kbx::write::pack_payloads(&inputs, &options, std::io::sink(), &mut |_| {}).unwrap();
    let (checksum, size) = packed.digest(ROOT);
    let mut index: kojibox_manifests::bundle::BundleIndex = serde_json::from_value(serde_json::json!({
        "format": 1,
        "manifest": {"version": "1.0.0", "services": [{"name": "demo", "version": "1.0", "os": "linux", "arch": "x64",
            "checksum": checksum, "size": size, "binPath": format!("{ROOT}/bin/demo"), "defaultPorts": [], "env": {}, "args": []}],
            "bundle": {"createdAt": "t", "source": "s", "signature": ""}},
        "templates": {"demo": {}},
        "provenance": [],
        "files": [],
        "payloadFrame": {"sha256": "00", "bytes": 0}
    }))
    .unwrap();
    index.files = packed.files.clone();
    let err = kojibox_kbx::read::validate_index(&index).unwrap_err();
    assert!(
        err.to_string().contains(&format!(
            "{ROOT}/x: symlink target \"a/b/l/../..\" passes through another symlink"
        )),
        "{err}"
    );
    // Without the second link the same payload is fine.
    index.files.retain(|f| !f.path.ends_with("/x"));
    let (checksum, size) = kojibox_kbx::digest::payload_digest(
        &kojibox_kbx::digest::payload_entries(ROOT, &index.files),
    );
    index.manifest.services[0].checksum = checksum;
    index.manifest.services[0].size = size;
    kojibox_kbx::read::validate_index(&index).unwrap();
    // A config file's name becomes a file name under runtime/config/demo/: one plain name only.
    let template = index.templates.get_mut("demo").unwrap();
    template.config_files.insert("demo.conf".into(), "x".into());
    kojibox_kbx::read::validate_index(&index).unwrap();
    let template = index.templates.get_mut("demo").unwrap();
    template
        .config_files
        .insert("../../services/demo.json".into(), "x".into());
    let err = kojibox_kbx::read::validate_index(&index).unwrap_err();
    assert!(
        err.to_string().contains("is not a plain file name"),
        "{err}"
    );
}
