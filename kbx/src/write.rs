//! Writing a bundle in one pass over the input files.
//!
//! [`pack_payloads`] streams every payload file through a sha256 hasher into a tar stream that
//! zstd compresses on worker threads, into a temporary frame next to the output. It returns the
//! index entries it measured. The caller builds and signs the [`BundleIndex`] from them, then
//! [`finish`] writes `<out>.partial` (index frame, then the payload frame copied as is), fsyncs
//! it and renames it to `<out>`: an interrupted or failed build leaves nothing at `<out>`.
//!
//! Output is reproducible: members are sorted by path; headers carry a fixed owner, the mode from
//! the index and the given mtime; zstd always runs in multi-threaded mode, whose output does not
//! depend on the number of worker threads.
//!
//! [`BundleIndex`]: kojibox_manifests::bundle::BundleIndex

use std::fs::File;
use std::io::{self, BufWriter, Read, Seek, Write};
use std::path::{Path, PathBuf};

use kojibox_manifests::bundle::{EntryKind, FrameDigest, IndexEntry};
use sha2::{Digest, Sha256};

use crate::Error;
use crate::digest::{payload_digest, payload_entries};
pub use crate::frame::{
    MAX_BLOCK, RAW_FRAME_DESCRIPTOR, ZSTD_MAGIC, header_frame, raw_frame, raw_member,
};
use crate::paths::check_relative;

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

/// Payloads packed into a temporary frame, waiting for their signed index.
pub struct PackedPayloads {
    frame: tempfile::NamedTempFile,
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

/// Packs `inputs` into a temporary zstd frame in `temp_dir`. `progress` is called with the
/// number of input bytes consumed as they are read.
pub fn pack_payloads(
    inputs: &[PackInput],
    options: &PackOptions,
    temp_dir: &Path,
    progress: &mut dyn FnMut(u64),
) -> Result<PackedPayloads, Error> {
    let mut entries: Vec<(String, &InputKind)> = Vec::new();
    for input in inputs {
        check_relative(&input.root).map_err(|why| pack_error(&input.root, why))?;
        for entry in &input.entries {
            check_relative(&entry.rel).map_err(|why| pack_error(&entry.rel, why))?;
            if let InputKind::Symlink { target } = &entry.kind
                && crate::paths::resolve_link(&entry.rel, target).is_none()
            {
                return Err(pack_error(
                    &entry.rel,
                    format!("symlink to `{target}` leaves the payload"),
                ));
            }
            entries.push((format!("{}/{}", input.root, entry.rel), &entry.kind));
        }
    }
    entries.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    if let Some(pair) = entries.windows(2).find(|w| w[0].0 == w[1].0) {
        return Err(pack_error(&pair[0].0, "two entries have this path"));
    }

    let frame = tempfile::Builder::new()
        .prefix(".kbx-payload-")
        .tempfile_in(temp_dir)
        .map_err(|source| Error::Io {
            action: "create a temporary file in",
            path: temp_dir.to_owned(),
            source,
        })?;
    let frame_path = frame.path().to_owned();
    let io_err = |source| Error::Io {
        action: "write",
        path: frame_path.clone(),
        source,
    };

    let sink = HashingWriter {
        inner: BufWriter::with_capacity(1 << 20, frame.as_file().try_clone().map_err(io_err)?),
        hasher: Sha256::new(),
        count: 0,
    };
    let mut encoder = zstd::stream::write::Encoder::new(sink, options.level).map_err(io_err)?;
    encoder
        .multithread(options.threads.max(1))
        .map_err(io_err)?;
    encoder.include_checksum(true).map_err(io_err)?;
    let mut builder = tar::Builder::new(encoder);

    let mut files = Vec::with_capacity(entries.len());
    for (path, kind) in entries {
        let mut header = tar::Header::new_gnu();
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(options.mtime);
        match kind {
            InputKind::File { source, executable } => {
                let mode = if *executable { 0o755 } else { 0o644 };
                let file = File::open(source).map_err(|e| Error::Io {
                    action: "read",
                    path: source.clone(),
                    source: e,
                })?;
                let size = file
                    .metadata()
                    .map_err(|e| Error::Io {
                        action: "read",
                        path: source.clone(),
                        source: e,
                    })?
                    .len();
                header.set_entry_type(tar::EntryType::Regular);
                header.set_mode(mode);
                header.set_size(size);
                let mut reader = HashingReader {
                    inner: file.take(size),
                    hasher: Sha256::new(),
                    count: 0,
                    progress: &mut *progress,
                };
                builder
                    .append_data(&mut header, &path, &mut reader)
                    .map_err(io_err)?;
                if reader.count != size {
                    return Err(Error::Pack {
                        path: source.clone(),
                        problem: format!(
                            "file changed while packing ({size} bytes expected, {} read)",
                            reader.count
                        ),
                    });
                }
                files.push(IndexEntry {
                    path,
                    kind: EntryKind::File,
                    mode,
                    size,
                    sha256: Some(hex::encode(reader.hasher.finalize())),
                    target: None,
                });
            }
            InputKind::Symlink { target } => {
                header.set_entry_type(tar::EntryType::Symlink);
                header.set_mode(0o777);
                header.set_size(0);
                builder
                    .append_link(&mut header, &path, target)
                    .map_err(io_err)?;
                files.push(IndexEntry {
                    path,
                    kind: EntryKind::Symlink,
                    mode: 0,
                    size: 0,
                    sha256: None,
                    target: Some(target.clone()),
                });
            }
        }
    }
    let encoder = builder.into_inner().map_err(io_err)?;
    let mut writer = encoder.finish().map_err(io_err)?;
    writer.flush().map_err(io_err)?;
    let frame_digest = FrameDigest {
        sha256: hex::encode(writer.hasher.finalize()),
        bytes: writer.count,
    };
    Ok(PackedPayloads {
        frame,
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

struct HashingReader<'a, R> {
    inner: R,
    hasher: Sha256,
    count: u64,
    progress: &'a mut dyn FnMut(u64),
}

impl<R: Read> Read for HashingReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        (self.progress)(n as u64);
        Ok(n)
    }
}

/// What [`finish`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    /// Bytes of the bundle.
    pub bytes: u64,
    /// `sha256:<hex>` of the bundle file.
    pub sha256: String,
}

/// Writes the bundle to `out`: the index frame (`index_bytes` and `signature`), then the packed
/// payload frame. Writes `<out>.partial`, fsyncs and renames, so `out` only ever holds a whole
/// bundle. The file's sha256 is computed as it is written.
pub fn finish(
    packed: PackedPayloads,
    index_bytes: &[u8],
    signature: &str,
    options: &PackOptions,
    out: &Path,
) -> Result<Written, Error> {
    let partial = partial_path(out);
    let result = (|| {
        let io_err = |source| Error::Io {
            action: "write",
            path: partial.clone(),
            source,
        };
        let file = File::create(&partial).map_err(io_err)?;
        let mut writer = HashingWriter {
            inner: BufWriter::with_capacity(1 << 20, file),
            hasher: Sha256::new(),
            count: 0,
        };
        writer
            .write_all(&header_frame(index_bytes, signature, options.mtime))
            .map_err(io_err)?;
        let mut frame = packed.frame.reopen().map_err(io_err)?;
        frame.rewind().map_err(io_err)?;
        io::copy(&mut frame, &mut writer).map_err(io_err)?;
        let written = Written {
            bytes: writer.count,
            sha256: format!("sha256:{}", hex::encode(writer.hasher.finalize_reset())),
        };
        let file = writer
            .inner
            .into_inner()
            .map_err(|e| io_err(e.into_error()))?;
        file.sync_all().map_err(io_err)?;
        std::fs::rename(&partial, out).map_err(|source| Error::Io {
            action: "rename into",
            path: out.to_owned(),
            source,
        })?;
        if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
            // Make the rename durable; failure to sync a folder is not worth failing the build.
            let _ = File::open(dir).and_then(|d| d.sync_all());
        }
        Ok(written)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    result
}

struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
    count: u64,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
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

/// Entries of a payload folder on disk, for packing: files, and symlinks that stay inside.
/// Folders are implied; anything else (a device, a FIFO, a socket) is an error.
pub fn walk_payload(root: &Path) -> Result<Vec<InputEntry>, Error> {
    let mut out = Vec::new();
    let mut stack = vec![(root.to_owned(), String::new())];
    while let Some((dir, rel_dir)) = stack.pop() {
        let read = std::fs::read_dir(&dir).map_err(|source| Error::Io {
            action: "read folder",
            path: dir.clone(),
            source,
        })?;
        for item in read {
            let item = item.map_err(|source| Error::Io {
                action: "read folder",
                path: dir.clone(),
                source,
            })?;
            let name = item.file_name();
            let name = name.to_str().ok_or_else(|| Error::Pack {
                path: item.path(),
                problem: "file name is not UTF-8".into(),
            })?;
            let rel = if rel_dir.is_empty() {
                name.to_owned()
            } else {
                format!("{rel_dir}/{name}")
            };
            let path = item.path();
            let meta = std::fs::symlink_metadata(&path).map_err(|source| Error::Io {
                action: "read",
                path: path.clone(),
                source,
            })?;
            let kind = meta.file_type();
            if kind.is_dir() {
                stack.push((path, rel));
            } else if kind.is_file() {
                out.push(InputEntry {
                    rel,
                    kind: InputKind::File {
                        source: path,
                        executable: is_executable(&meta),
                    },
                });
            } else if kind.is_symlink() {
                let target = std::fs::read_link(&path).map_err(|source| Error::Io {
                    action: "read link",
                    path: path.clone(),
                    source,
                })?;
                let target = target
                    .to_str()
                    .ok_or_else(|| Error::Pack {
                        path: path.clone(),
                        problem: "link target is not UTF-8".into(),
                    })?
                    .replace('\\', "/");
                if crate::paths::resolve_link(&rel, &target).is_none() {
                    return Err(Error::Pack {
                        path,
                        problem: format!("symlink to `{target}` leaves the payload"),
                    });
                }
                out.push(InputEntry {
                    rel,
                    kind: InputKind::Symlink { target },
                });
            } else {
                return Err(Error::Pack {
                    path,
                    problem: "not a regular file, folder or symlink".into(),
                });
            }
        }
    }
    out.sort_by(|a, b| a.rel.as_bytes().cmp(b.rel.as_bytes()));
    Ok(out)
}

#[cfg(unix)]
fn is_executable(meta: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::PermissionsExt;
    meta.permissions().mode() & 0o111 != 0
}

#[cfg(not(unix))]
fn is_executable(_meta: &std::fs::Metadata) -> bool {
    false
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
    use kojibox_manifests::bundle::{BundleIndex, FORMAT};
    use kojibox_manifests::model::{BundleMeta, RuntimeManifest};

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
    let temp_dir = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let packed = pack_payloads(&inputs, options, temp_dir, progress)?;
    let services = spec
        .payloads
        .into_iter()
        .zip(&roots)
        .map(|(p, root)| {
            let (checksum, size) = packed.digest(root);
            kojibox_manifests::model::ServiceBinary {
                checksum,
                size,
                ..p.binary
            }
        })
        .collect();
    let index = BundleIndex {
        format: FORMAT,
        manifest: RuntimeManifest {
            version: spec.version,
            services,
            bundle: BundleMeta {
                created_at: spec.created_at,
                source: spec.source,
                signature: String::new(),
            },
        },
        templates: spec.templates,
        provenance: spec.provenance,
        files: packed.files.clone(),
        payload_frame: packed.frame_digest.clone(),
    };
    // Check what every reader will check, so a bad bundle fails here and not on a user's machine.
    crate::index::validate_index(&index)?;
    let mut index_bytes = serde_json::to_vec_pretty(&index)
        .map_err(|e| Error::InvalidIndex(format!("could not serialize the index: {e}")))?;
    index_bytes.push(b'\n');
    let signature = key.sign(&index_bytes).to_string();
    let written = finish(packed, &index_bytes, &signature, options, out)?;
    Ok(Built { index, written })
}
