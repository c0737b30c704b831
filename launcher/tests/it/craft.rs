//! Crafting hostile bundles from good ones.
//!
//! Two ways, so that the check under test is the one that refuses:
//! - [`with_payload`] keeps a good bundle's signed index frame and re-encodes a changed payload
//!   frame: the signature still verifies, the members do not match;
//! - [`resigned`] changes the index and/or the members, then signs the new index with a test key
//!   and records the new payload frame's digest in it: everything verifies except what was
//!   changed on purpose.
//!
//! Members are written with raw tar headers (no path sanitizing), so `..`, absolute paths and
//! odd entry types go into the archive exactly as given.

use std::io::{Read, Write};

use kojibox_kbx::digest::{payload_digest, payload_entries};
use kojibox_manifests::bundle::{BundleIndex, FrameDigest};
use sha2::{Digest, Sha256};

use crate::support::{MTIME, key};

/// One tar member, raw.
#[derive(Debug, Clone)]
pub struct Member {
    pub path: String,
    pub kind: tar::EntryType,
    pub mode: u32,
    pub link: Option<String>,
    pub data: Vec<u8>,
    /// A header size other than `data.len()`.
    pub header_size: Option<u64>,
}

impl Member {
    /// A regular file member.
    pub fn file(path: &str, data: &[u8]) -> Member {
        Member {
            path: path.into(),
            kind: tar::EntryType::Regular,
            mode: 0o644,
            link: None,
            data: data.to_vec(),
            header_size: None,
        }
    }

    /// A symlink member.
    pub fn symlink(path: &str, target: &str) -> Member {
        Member {
            kind: tar::EntryType::Symlink,
            mode: 0o777,
            link: Some(target.into()),
            ..Member::file(path, b"")
        }
    }
}

/// Every tar member of a bundle (the index and the signature first).
pub fn members(bundle: &[u8]) -> Vec<Member> {
    let tar_bytes = zstd::decode_all(bundle).unwrap();
    let mut archive = tar::Archive::new(tar_bytes.as_slice());
    let mut out = Vec::new();
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let mut data = Vec::new();
        entry.read_to_end(&mut data).unwrap();
        out.push(Member {
            path: String::from_utf8(entry.path_bytes().into_owned()).unwrap(),
            kind: entry.header().entry_type(),
            mode: entry.header().mode().unwrap(),
            link: entry
                .link_name_bytes()
                .map(|l| String::from_utf8(l.into_owned()).unwrap()),
            data,
            header_size: None,
        });
    }
    out
}

/// A tar archive of `members`, with its end marker.
pub fn tar(members: &[Member]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for m in members {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(m.kind);
        header.set_mode(m.mode);
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(MTIME);
        header.set_size(m.header_size.unwrap_or(m.data.len() as u64));
        let raw = header.as_old_mut();
        assert!(m.path.len() <= raw.name.len(), "keep paths short");
        raw.name[..m.path.len()].copy_from_slice(m.path.as_bytes());
        if let Some(link) = &m.link {
            assert!(link.len() <= raw.linkname.len(), "keep link targets short");
            raw.linkname[..link.len()].copy_from_slice(link.as_bytes());
        }
        header.set_cksum();
        builder.append(&header, m.data.as_slice()).unwrap();
    }
    builder.into_inner().unwrap()
}

/// An ordinary zstd frame.
pub fn frame(tar: &[u8]) -> Vec<u8> {
    zstd::encode_all(tar, 3).unwrap()
}

/// A zstd frame with a 1 GiB window (window log 30, long distance matching): a decoder needs
/// 1 GiB of memory for it.
pub fn wide_frame(tar: &[u8]) -> Vec<u8> {
    let mut encoder = zstd::stream::write::Encoder::new(Vec::new(), 3).unwrap();
    encoder.window_log(30).unwrap();
    encoder.long_distance_matching(true).unwrap();
    encoder.write_all(tar).unwrap();
    let out = encoder.finish().unwrap();
    assert_eq!(
        window_log(&out),
        Some(30),
        "the crafted frame declares the wide window"
    );
    out
}

/// The window log a zstd frame header declares (`None` for a single-segment frame).
pub fn window_log(frame: &[u8]) -> Option<u32> {
    let descriptor = frame[4];
    (descriptor & 0b0010_0000 == 0).then(|| 10 + u32::from(frame[5] >> 3))
}

/// The signed index frame of a bundle (its exact prefix).
pub fn index_frame(bundle: &[u8]) -> Vec<u8> {
    let all = members(bundle);
    let signature = String::from_utf8(all[1].data.clone()).unwrap();
    let frame = kojibox_kbx::write::header_frame(&all[0].data, &signature, MTIME);
    assert!(bundle.starts_with(&frame), "the index frame is the prefix");
    frame
}

/// A good bundle's signed index frame followed by its payload members changed by `change`.
pub fn with_payload(bundle: &[u8], change: impl FnOnce(&mut Vec<Member>)) -> Vec<u8> {
    let mut payload = members(bundle).split_off(2);
    change(&mut payload);
    [index_frame(bundle), frame(&tar(&payload))].concat()
}

/// The bundle with its index and members changed by `change`, the payload frame encoded by
/// `encode`, and the index re-signed by key `seed` with the new frame's digest.
pub fn resigned(
    bundle: &[u8],
    seed: u8,
    change: impl FnOnce(&mut BundleIndex, &mut Vec<Member>),
    encode: fn(&[u8]) -> Vec<u8>,
) -> Vec<u8> {
    let all = members(bundle);
    let mut index: BundleIndex = serde_json::from_slice(&all[0].data).unwrap();
    let mut payload = all[2..].to_vec();
    change(&mut index, &mut payload);
    let payload_frame = encode(&tar(&payload));
    index.payload_frame = FrameDigest {
        sha256: hex::encode(Sha256::digest(&payload_frame)),
        bytes: payload_frame.len() as u64,
    };
    let mut index_bytes = serde_json::to_vec_pretty(&index).unwrap();
    index_bytes.push(b'\n');
    let signature = key(seed).sign(&index_bytes).to_string();
    let header = kojibox_kbx::write::header_frame(&index_bytes, &signature, MTIME);
    [header, payload_frame].concat()
}

/// Recomputes every service's checksum and size from the index's entries (after editing them),
/// and sorts the entries, so only the edit itself is wrong.
pub fn fix_checksums(index: &mut BundleIndex) {
    index
        .files
        .sort_by(|a, b| a.path.as_bytes().cmp(b.path.as_bytes()));
    for service in &mut index.manifest.services {
        let root = kojibox_kbx::paths::payload_root(
            &service.name,
            &service.version,
            &service.os,
            &service.arch,
        );
        let (checksum, size) = payload_digest(&payload_entries(&root, &index.files));
        service.checksum = checksum;
        service.size = size;
    }
}
