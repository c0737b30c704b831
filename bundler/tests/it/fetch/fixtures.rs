//! Archives built in memory for the fetch tests, including ones no honest tool would write
//! (entries with `..`, links leaving the payload), plus helpers to read a payload back.

use std::collections::BTreeMap;
use std::io::{Cursor, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use sha2::{Digest, Sha256};

/// One archive entry.
#[derive(Debug, Clone, Copy)]
pub enum Item<'a> {
    File(&'a str, &'a [u8], u32),
    Dir(&'a str),
    Symlink(&'a str, &'a str),
    Hardlink(&'a str, &'a str),
    /// A file whose name is written as is, bypassing the tar crate's own path checks.
    RawFile(&'a str, &'a [u8]),
    Fifo(&'a str),
}

pub fn tar(items: &[Item<'_>]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for item in items {
        let mut header = tar::Header::new_gnu();
        header.set_mode(0o644);
        header.set_size(0);
        let (path, data): (&str, &[u8]) = match *item {
            Item::File(path, data, mode) => {
                header.set_entry_type(tar::EntryType::Regular);
                header.set_mode(mode);
                (path, data)
            }
            Item::Dir(path) => {
                header.set_entry_type(tar::EntryType::Directory);
                header.set_mode(0o755);
                (path, &[])
            }
            Item::Symlink(path, target) | Item::Hardlink(path, target) => {
                let kind = match item {
                    Item::Symlink(..) => tar::EntryType::Symlink,
                    _ => tar::EntryType::Link,
                };
                header.set_entry_type(kind);
                header.set_link_name(target).unwrap();
                (path, &[])
            }
            Item::Fifo(path) => {
                header.set_entry_type(tar::EntryType::Fifo);
                (path, &[])
            }
            Item::RawFile(name, data) => {
                header.set_entry_type(tar::EntryType::Regular);
                header.set_size(data.len() as u64);
                header.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
                header.set_cksum();
                builder.append(&header, data).unwrap();
                continue;
            }
        };
        header.set_size(data.len() as u64);
        builder.append_data(&mut header, path, data).unwrap();
    }
    builder.into_inner().unwrap()
}

pub fn tar_gz(items: &[Item<'_>]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&tar(items)).unwrap();
    gz.finish().unwrap()
}

pub fn tar_zst(items: &[Item<'_>]) -> Vec<u8> {
    zstd::encode_all(Cursor::new(tar(items)), 3).unwrap()
}

pub fn tar_xz(items: &[Item<'_>]) -> Vec<u8> {
    let options = lzma_rust2::XzOptions::with_preset(6);
    let mut xz = lzma_rust2::XzWriter::new(Vec::new(), options).unwrap();
    xz.write_all(&tar(items)).unwrap();
    xz.finish().unwrap()
}

pub fn zip(items: &[Item<'_>]) -> Vec<u8> {
    use zip::write::SimpleFileOptions;
    let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let options = SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    for item in items {
        match *item {
            Item::File(path, data, mode) => {
                zip.start_file(path, options.unix_permissions(mode))
                    .unwrap();
                zip.write_all(data).unwrap();
            }
            Item::Dir(path) => zip.add_directory(path, options).unwrap(),
            Item::Symlink(path, target) => zip.add_symlink(path, target, options).unwrap(),
            other => panic!("no zip form for {other:?}"),
        }
    }
    zip.finish().unwrap().into_inner()
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Deterministic, incompressible-looking bytes.
pub fn noise(len: usize) -> Vec<u8> {
    let mut state: u32 = 0x1234_5678;
    (0..len)
        .map(|_| {
            state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (state >> 24) as u8
        })
        .collect()
}

/// A payload as `path -> what`: `file <mode> <content>`, `link -> <target>` or `dir`.
pub fn tree(root: &Path) -> BTreeMap<String, String> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, String>) {
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap())
            .collect();
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            let path = entry.path();
            let rel = path
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            if meta.file_type().is_symlink() {
                let target = std::fs::read_link(&path).unwrap();
                out.insert(rel, format!("link -> {}", target.display()));
            } else if meta.is_dir() {
                out.insert(rel, "dir".into());
                walk(root, &path, out);
            } else {
                let content = String::from_utf8_lossy(&std::fs::read(&path).unwrap()).into_owned();
                let mode = meta.permissions().mode() & 0o7777;
                out.insert(rel, format!("file {mode:o} {content}"));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

/// Every file (not folder) under `dir`, recursively; empty when `dir` is missing.
pub fn files_under(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for entry in entries {
        let path = entry.unwrap().path();
        if path.is_dir() && !path.is_symlink() {
            out.extend(files_under(&path));
        } else {
            out.push(path.display().to_string());
        }
    }
    out
}

/// The expected form of [`tree`], from pairs.
pub fn tree_of(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(path, what)| (path.to_string(), what.to_string()))
        .collect()
}
