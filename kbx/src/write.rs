//! Writing a bundle in one pass over the input files.
//!
//! [`build`] streams every payload file through a sha256 hasher into a tar stream that zstd
//! compresses on worker threads (the `stream` module), straight into `<out>.partial`, after a gap
//! left for the index frame. The gap's size is known before a byte is packed: the index lists
//! what is packed, and only its hashes (fixed-length hex) and the frame's byte count are unknown
//! until the end, so an index with placeholder hashes and a count the frame cannot reach (twice
//! its input) has the length of the real one or a few digits more; in the rare case where the
//! real index then ends in an earlier 512-byte tar block, it is padded with trailing spaces
//! (insignificant in JSON) to fill the gap. Once the frame is written, the index is built,
//! checked and signed, and its frame is written into the gap. Then the file is made durable (its
//! writeback starts as the frame is written, so the final fsync is short) and renamed to
//! `<out>`: an interrupted or failed build leaves nothing at `<out>`. No byte is written twice,
//! and the only hashing is what the index records: each file's sha256 and the payload frame's.
//!
//! Output is reproducible: members are sorted by path; headers carry a fixed owner, the mode from
//! the index and the given mtime; zstd always runs in multi-threaded mode, whose output does not
//! depend on the number of worker threads.

mod stream;
mod walk;

use std::fs::File;
use std::io::{self, BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use kojibox_manifests::bundle::{BundleIndex, FORMAT, FrameDigest, IndexEntry};

use crate::Error;
use crate::digest::{payload_digest, payload_entries};
pub use crate::frame::{
    MAX_BLOCK, RAW_FRAME_DESCRIPTOR, ZSTD_MAGIC, header_frame, header_frame_len, raw_frame,
    raw_member,
};
pub use walk::walk_payload;

/// One payload to pack: its home-relative root and its entries.
#[derive(Debug, Clone)]
pub struct PackInput {
    /// Home-relative root, `runtime/bin/<name>/<version>/<os>-<arch>`.
    pub root: String,
    /// Its entries, relative to the root.
    pub entries: Vec<InputEntry>,
}

/// A payload entry to pack.
#[derive(Debug, Clone)]
pub struct InputEntry {
    /// Path relative to the payload root, `/`-separated.
    pub rel: String,
    /// What it is.
    pub kind: InputKind,
}

/// Input entry kinds.
#[derive(Debug, Clone)]
pub enum InputKind {
    /// A regular file on disk; packed 0755 when executable, else 0644.
    File {
        /// Where to read it.
        source: PathBuf,
        /// Whether any execute bit is set.
        executable: bool,
    },
    /// A symlink; its target must stay inside the payload.
    Symlink {
        /// The target, relative to the link's folder.
        target: String,
    },
}

/// Compression settings.
#[derive(Debug, Clone, Copy)]
pub struct PackOptions {
    /// zstd level (1–22).
    pub level: i32,
    /// zstd worker threads (at least 1).
    pub threads: u32,
    /// mtime written in every tar header (seconds since the epoch).
    pub mtime: u64,
}

/// Payloads packed into a payload frame, waiting for their signed index.
#[derive(Debug, Clone)]
pub struct PackedPayloads {
    /// Every entry, sorted by path, as it will go in the index.
    pub files: Vec<IndexEntry>,
    /// sha256 and size of the compressed payload frame, as it will go in the index.
    pub frame_digest: FrameDigest,
}

impl PackedPayloads {
    /// `(checksum, size)` of the payload under `root` (see [`crate::digest`]).
    pub fn digest(&self, root: &str) -> (String, u64) {
        payload_digest(&payload_entries(root, &self.files))
    }
}

/// Packs `inputs` into a payload frame written to `sink`. `progress` is called with the number
/// of input bytes consumed as they are read. [`build`] does this into the bundle file itself.
pub fn pack_payloads(
    inputs: &[PackInput],
    options: &PackOptions,
    sink: impl Write,
    progress: &mut dyn FnMut(u64),
) -> Result<PackedPayloads, Error> {
    let members = stream::prepare(inputs)?;
    let (files, frame_digest, _) = stream::write_frame(
        &members,
        options,
        sink,
        Path::new("the payload frame"),
        progress,
    )?;
    Ok(PackedPayloads {
        files,
        frame_digest,
    })
}

fn pack_error(path: &str, problem: impl Into<String>) -> Error {
    Error::Pack {
        path: PathBuf::from(path),
        problem: problem.into(),
    }
}

/// What [`build`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    /// Bytes of the bundle.
    pub bytes: u64,
}

/// `<out>.partial`.
pub fn partial_path(out: &Path) -> PathBuf {
    let mut name = out
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(".partial");
    out.with_file_name(name)
}

/// Everything a bundle holds, before packing.
#[derive(Debug, Clone)]
pub struct BundleSpec {
    /// `RuntimeManifest.version`.
    pub version: String,
    /// `BundleMeta.source`.
    pub source: String,
    /// `BundleMeta.createdAt` (RFC 3339).
    pub created_at: String,
    /// The payloads; each binary's `checksum` and `size` are filled in from what is packed.
    pub payloads: Vec<PayloadSpec>,
    /// Service templates by service name.
    pub templates: std::collections::BTreeMap<String, kojibox_manifests::recipe::ServiceTemplate>,
    /// Where each payload came from.
    pub provenance: Vec<kojibox_manifests::bundle::Provenance>,
}

/// One payload: its manifest entry and its files.
#[derive(Debug, Clone)]
pub struct PayloadSpec {
    /// The manifest entry (`binPath` home-relative; `checksum`/`size` are computed).
    pub binary: kojibox_manifests::model::ServiceBinary,
    /// Entries relative to the payload root.
    pub entries: Vec<InputEntry>,
}

/// What [`build`] made.
#[derive(Debug, Clone)]
pub struct Built {
    /// The signed index as written.
    pub index: kojibox_manifests::bundle::BundleIndex,
    /// The file written.
    pub written: Written,
}

/// Packs, indexes, checks, signs and writes a bundle to `out` (via `<out>.partial`).
pub fn build(
    spec: BundleSpec,
    key: &kojibox_signing::SecretKey,
    options: &PackOptions,
    out: &Path,
    progress: &mut dyn FnMut(u64),
) -> Result<Built, Error> {
    let roots: Vec<String> = spec
        .payloads
        .iter()
        .map(|p| {
            crate::paths::payload_root(
                &p.binary.name,
                &p.binary.version,
                &p.binary.os,
                &p.binary.arch,
            )
        })
        .collect();
    let inputs: Vec<PackInput> = spec
        .payloads
        .iter()
        .zip(&roots)
        .map(|(p, root)| PackInput {
            root: root.clone(),
            entries: p.entries.clone(),
        })
        .collect();
    let members = stream::prepare(&inputs)?;
    let index_of = |files: Vec<IndexEntry>, payload_frame: FrameDigest| {
        let services = spec
            .payloads
            .iter()
            .zip(&roots)
            .map(|(p, root)| {
                let (checksum, size) = payload_digest(&payload_entries(root, &files));
                kojibox_manifests::model::ServiceBinary {
                    checksum,
                    size,
                    ..p.binary.clone()
                }
            })
            .collect();
        BundleIndex {
            format: FORMAT,
            manifest: kojibox_manifests::model::RuntimeManifest {
                version: spec.version.clone(),
                services,
                bundle: kojibox_manifests::model::BundleMeta {
                    created_at: spec.created_at.clone(),
                    source: spec.source.clone(),
                    signature: String::new(),
                },
            },
            templates: spec.templates.clone(),
            provenance: spec.provenance.clone(),
            files,
            payload_frame,
        }
    };
    // The gap for the index frame: an index with placeholder hashes of the real length and a
    // byte count the frame cannot reach is at least as long as the real one (and, unless the
    // real count has fewer digits, exactly as long).
    let placeholder = "0".repeat(64);
    let widest = index_of(
        members
            .iter()
            .map(|m| m.entry(Some(placeholder.clone())))
            .collect(),
        FrameDigest {
            sha256: placeholder.clone(),
            bytes: stream::frame_bound(&members),
        },
    );
    let widest_len = index_bytes(&widest)?.len();
    let signature_len = key.sign(b"").to_string().len();
    let gap = header_frame_len(widest_len, signature_len);

    let partial = partial_path(out);
    let result = (|| {
        let io_err = |action: &'static str| {
            let path = partial.clone();
            move |source| Error::Io {
                action,
                path,
                source,
            }
        };
        let mut file = File::create(&partial).map_err(io_err("create"))?;
        file.seek(SeekFrom::Start(gap as u64))
            .map_err(io_err("write"))?;
        let sink = BufWriter::with_capacity(
            1 << 20,
            Writeback {
                file: &file,
                from: gap as u64,
                at: gap as u64,
            },
        );
        let (files, frame_digest, sink) =
            stream::write_frame(&members, options, sink, &partial, progress)?;
        sink.into_inner()
            .map_err(|e| io_err("write")(e.into_error()))?;
        let bytes = gap as u64 + frame_digest.bytes;
        let index = index_of(files, frame_digest);
        // Check what every reader will check, so a bad bundle fails here and not on a user's
        // machine.
        crate::index::validate_index(&index)?;
        let mut index_bytes = index_bytes(&index)?;
        pad_to_block_of(&mut index_bytes, widest_len);
        let signature = key.sign(&index_bytes).to_string();
        let header = header_frame(&index_bytes, &signature, options.mtime);
        if header.len() != gap {
            return Err(Error::InvalidIndex(format!(
                "the index frame is {} bytes, {gap} were set aside for it",
                header.len()
            )));
        }
        file.rewind().map_err(io_err("write"))?;
        file.write_all(&header).map_err(io_err("write"))?;
        file.sync_all().map_err(io_err("write"))?;
        drop(file);
        std::fs::rename(&partial, out).map_err(|source| Error::Io {
            action: "rename into",
            path: out.to_owned(),
            source,
        })?;
        if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
            // Make the rename durable; failure to sync a folder is not worth failing the build.
            let _ = File::open(dir).and_then(|d| d.sync_all());
        }
        Ok(Built {
            index,
            written: Written { bytes },
        })
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    result
}

/// The index as signed: pretty JSON and a newline.
fn index_bytes(index: &BundleIndex) -> Result<Vec<u8>, Error> {
    let mut bytes = serde_json::to_vec_pretty(index)
        .map_err(|e| Error::InvalidIndex(format!("could not serialize the index: {e}")))?;
    bytes.push(b'\n');
    Ok(bytes)
}

/// Pads `index` (JSON ending in a newline) with spaces before that newline until it fills as
/// many 512-byte tar blocks as `len` bytes would, so its frame has the length set aside.
fn pad_to_block_of(index: &mut Vec<u8>, len: usize) {
    let least = (len.div_ceil(512) - 1) * 512 + 1;
    if index.len() < least {
        let newline = index.pop();
        index.resize(least - usize::from(newline.is_some()), b' ');
        index.extend(newline);
    }
}

/// Writes to `file` from where its cursor is, and starts writing back each 8 MiB to disk as
/// soon as it is written (`fadvise(DONTNEED)` starts the writeback, then drops the pages that
/// are clean: nothing reads them again), so the fsync at the end has little left to wait for.
struct Writeback<'a> {
    file: &'a File,
    /// Where the bytes not yet sent to disk start.
    from: u64,
    /// Where the next byte goes.
    at: u64,
}

/// Bytes written between two starts of writeback.
const WRITEBACK_EVERY: u64 = 8 << 20;

impl Write for Writeback<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut file = self.file;
        let n = file.write(buf)?;
        self.at += n as u64;
        if self.at - self.from >= WRITEBACK_EVERY {
            #[cfg(target_os = "linux")]
            let _ = rustix::fs::fadvise(
                self.file,
                self.from,
                std::num::NonZeroU64::new(self.at - self.from),
                rustix::fs::Advice::DontNeed,
            );
            self.from = self.at;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::pad_to_block_of;

    #[test]
    fn an_index_is_padded_into_the_block_set_aside_and_stays_json() {
        let json = |len: usize| {
            let v = format!("{{\"a\": \"{}\"}}\n", "x".repeat(len - 10)).into_bytes();
            assert_eq!(v.len(), len);
            v
        };
        // Set aside: 2 blocks (1000 bytes). A 400-byte index grows to 513, the least of 2.
        let mut short = json(400);
        pad_to_block_of(&mut short, 1000);
        assert_eq!(short.len(), 513);
        assert!(short.ends_with(b" \n"));
        let value: serde_json::Value = serde_json::from_slice(&short).unwrap();
        assert_eq!(value["a"].as_str().unwrap().len(), 390);
        // Already in the second block, or exactly at its start: unchanged.
        for len in [513, 600, 1000] {
            let mut same = json(len);
            pad_to_block_of(&mut same, 1000);
            assert_eq!(same.len(), len);
        }
    }
}
