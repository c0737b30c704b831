//! Builds small real bundles for the tests.

use std::collections::BTreeMap;
use std::io::{self, Read};
use std::ops::ControlFlow;
use std::path::Path;

use kojibox_kbx::read::{Limits, Signed, Trust, Visit};
use kojibox_kbx::write::{BundleSpec, PackOptions, PayloadSpec};
use kojibox_manifests::bundle::IndexEntry;
use kojibox_manifests::model::ServiceBinary;
use kojibox_manifests::recipe::ServiceTemplate;
use kojibox_signing::{PublicKey, SecretKey};

pub const ROOT: &str = "runtime/bin/demo/1.0/linux-x64";

/// Writes a payload folder: an executable, a text file, incompressible bytes, a nested file and
/// a symlink inside.
pub fn payload(dir: &Path) {
    std::fs::create_dir_all(dir.join("bin")).unwrap();
    std::fs::create_dir_all(dir.join("lib/deep/er")).unwrap();
    std::fs::write(dir.join("bin/demo"), b"#!/bin/sh\necho demo\n").unwrap();
    set_mode(&dir.join("bin/demo"), 0o755);
    std::fs::write(dir.join("README.txt"), "hello\n".repeat(1000)).unwrap();
    let noise: Vec<u8> = (0..200_000u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    std::fs::write(dir.join("lib/libdemo.so.1.2"), noise).unwrap();
    std::fs::write(dir.join("lib/deep/er/a-very-long-file-name-that-goes-past-the-hundred-byte-ustar-limit-of-tar-headers.txt"), b"long").unwrap();
    std::os::unix::fs::symlink("libdemo.so.1.2", dir.join("lib/libdemo.so.1")).unwrap();
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

pub fn key(seed: u8) -> SecretKey {
    SecretKey::from_seed(&[seed; 32])
}

/// Packs `dir` as the payload of service `demo` and writes a signed bundle to `out`.
pub fn build(dir: &Path, out: &Path, key: &SecretKey, threads: u32) {
    let options = PackOptions {
        level: 3,
        threads,
        mtime: 1_700_000_000,
    };
    let spec = BundleSpec {
        version: "1.0.0".into(),
        source: "test".into(),
        created_at: "2023-11-14T22:13:20Z".into(),
        payloads: vec![PayloadSpec {
            binary: ServiceBinary {
                name: "demo".into(),
                version: "1.0".into(),
                os: "linux".into(),
                arch: "x64".into(),
                checksum: String::new(),
                size: 0,
                bin_path: format!("{ROOT}/bin/demo"),
                default_ports: vec![],
                env: BTreeMap::new(),
                args: vec![],
            },
            entries: kojibox_kbx::write::walk_payload(dir).unwrap(),
        }],
        templates: [("demo".to_owned(), ServiceTemplate::default())].into(),
        provenance: vec![],
    };
    kojibox_kbx::write::build(spec, key, &options, out, &mut |_| {}).unwrap();
}

/// Reads `bytes` strictly, collecting each member's content.
pub fn read(
    bytes: &[u8],
    key: &PublicKey,
) -> Result<(Signed, BTreeMap<String, Vec<u8>>), kojibox_kbx::Error> {
    struct Collect(BTreeMap<String, Vec<u8>>);
    impl Visit for Collect {
        type Stop = std::convert::Infallible;
        fn index(&mut self, _: &Signed) -> ControlFlow<Self::Stop> {
            ControlFlow::Continue(())
        }
        fn member(&mut self, entry: &IndexEntry, reader: Option<&mut dyn Read>) -> io::Result<()> {
            let mut data = Vec::new();
            if let Some(reader) = reader {
                reader.read_to_end(&mut data)?;
            }
            self.0.insert(entry.path.clone(), data);
            Ok(())
        }
    }
    let mut seen = Collect(BTreeMap::new());
    match kojibox_kbx::read::read_verified(bytes, Trust::key(key), &Limits::default(), &mut seen)? {
        ControlFlow::Continue(signed) => Ok((signed, seen.0)),
        ControlFlow::Break(never) => match never {},
    }
}

/// One tar member of a bundle, decoded.
#[derive(Debug, Clone)]
pub struct Member {
    pub path: String,
    pub kind: tar::EntryType,
    pub mode: u32,
    pub link: Option<String>,
    pub data: Vec<u8>,
}

/// The tar members inside a bundle (index and signature first).
pub fn members(bundle: &[u8]) -> Vec<Member> {
    let tar_bytes = zstd::decode_all(bundle).unwrap();
    let mut archive = tar::Archive::new(tar_bytes.as_slice());
    archive
        .entries()
        .unwrap()
        .map(|e| {
            let mut e = e.unwrap();
            let mut data = Vec::new();
            std::io::Read::read_to_end(&mut e, &mut data).unwrap();
            Member {
                path: String::from_utf8(e.path_bytes().into_owned()).unwrap(),
                kind: e.header().entry_type(),
                mode: e.header().mode().unwrap(),
                link: e
                    .link_name_bytes()
                    .map(|l| String::from_utf8(l.into_owned()).unwrap()),
                data,
            }
        })
        .collect()
}

/// The index frame of a bundle, rebuilt from its members: must be the bundle's prefix.
pub fn index_frame(bundle: &[u8]) -> Vec<u8> {
    let members = members(bundle);
    let signature = String::from_utf8(members[1].data.clone()).unwrap();
    let frame = kojibox_kbx::write::header_frame(&members[0].data, &signature, 1_700_000_000);
    assert!(bundle.starts_with(&frame), "the index frame is canonical");
    frame
}

/// A payload frame holding `members` (a tar with its end marker, in one zstd frame).
pub fn payload_frame(members: &[Member]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for m in members {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(m.kind);
        header.set_mode(m.mode);
        header.set_size(m.data.len() as u64);
        match &m.link {
            Some(link) => builder.append_link(&mut header, &m.path, link).unwrap(),
            None => builder
                .append_data(&mut header, &m.path, m.data.as_slice())
                .unwrap(),
        }
    }
    zstd::encode_all(builder.into_inner().unwrap().as_slice(), 3).unwrap()
}

/// The bundle with its payload members changed by `change` (the signed index frame is kept).
pub fn edit_payload(bundle: &[u8], change: impl FnOnce(&mut Vec<Member>)) -> Vec<u8> {
    let mut payload = members(bundle).split_off(2);
    change(&mut payload);
    [index_frame(bundle), payload_frame(&payload)].concat()
}
