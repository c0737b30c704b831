//! The payload frame: every payload member, as one tar stream that zstd compresses on worker
//! threads, each file hashed in the same pass as it is read.
//!
//! Files are read in large chunks straight into the encoder (no 8 KiB copy loop): each chunk is
//! hashed, counted for the progress display and handed to zstd, whose workers compress while
//! this thread reads on. The compressed bytes are hashed on their way to the sink. (Hashing the
//! files on a thread of its own was tried: it keeps zstd's workers busier on incompressible
//! files but costs as much CPU again in cache traffic, for no gain on two cores.) Tar headers
//! come from the `tar` crate (so long names get its GNU extension), the data is written after
//! them with the same zero padding it would add.

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::Path;

use kojibox_manifests::bundle::{EntryKind, FrameDigest, IndexEntry};
use sha2::{Digest, Sha256};

use super::{InputKind, PackInput, PackOptions, pack_error};
use crate::Error;
use crate::paths::check_relative;

/// Bytes read from an input file at a time: large enough that the per-call cost (a read, a
/// hash update, a zstd call) is negligible, small enough to stay in the core's cache between
/// the read, the hash and zstd's copy.
const CHUNK: usize = 256 << 10;

/// One member, checked and measured, before any byte of it is read.
pub(super) struct Member<'a> {
    /// Its path in the archive (`<root>/<rel>`).
    pub(super) path: String,
    kind: &'a InputKind,
    /// Its size as it was when measured (0 for links).
    pub(super) size: u64,
}

impl Member<'_> {
    /// The member's index entry, with `sha256` as the file's hash.
    pub(super) fn entry(&self, sha256: Option<String>) -> IndexEntry {
        match self.kind {
            InputKind::File { executable, .. } => IndexEntry {
                path: self.path.clone(),
                kind: EntryKind::File,
                mode: if *executable { 0o755 } else { 0o644 },
                size: self.size,
                sha256,
                target: None,
            },
            InputKind::Symlink { target } => IndexEntry {
                path: self.path.clone(),
                kind: EntryKind::Symlink,
                mode: 0,
                size: 0,
                sha256: None,
                target: Some(target.clone()),
            },
        }
    }
}

/// Checks every entry of `inputs` (safe relative paths, links inside their payload, no two with
/// one path), sorts them by path and measures each file.
pub(super) fn prepare(inputs: &[PackInput]) -> Result<Vec<Member<'_>>, Error> {
    let mut members = Vec::new();
    for input in inputs {
        check_relative(&input.root).map_err(|why| pack_error(&input.root, why))?;
        for entry in &input.entries {
            check_relative(&entry.rel).map_err(|why| pack_error(&entry.rel, why))?;
            let size = match &entry.kind {
                InputKind::Symlink { target } => {
                    if crate::paths::resolve_link(&entry.rel, target).is_none() {
                        return Err(pack_error(
                            &entry.rel,
                            format!("symlink to `{target}` leaves the payload"),
                        ));
                    }
                    0
                }
                InputKind::File { source, .. } => std::fs::metadata(source)
                    .map_err(|e| read_error(source, e))?
                    .len(),
            };
            members.push(Member {
                path: format!("{}/{}", input.root, entry.rel),
                kind: &entry.kind,
                size,
            });
        }
    }
    members.sort_by(|a, b| a.path.as_bytes().cmp(b.path.as_bytes()));
    if let Some(pair) = members.windows(2).find(|w| w[0].path == w[1].path) {
        return Err(pack_error(&pair[0].path, "two entries have this path"));
    }
    Ok(members)
}

/// More bytes than the payload frame of `members` can take: twice its tar stream (each member
/// with room for its header and long-name and long-link entries), plus a MiB. zstd never grows
/// its input by more than a fraction of a percent.
pub(super) fn frame_bound(members: &[Member<'_>]) -> u64 {
    let tar: u64 = members
        .iter()
        .map(|m| {
            let link = match m.kind {
                InputKind::Symlink { target } => target.len() as u64,
                InputKind::File { .. } => 0,
            };
            5 * 512 + m.path.len() as u64 + link + m.size.div_ceil(512) * 512
        })
        .sum();
    2 * (tar + 1024) + (1 << 20)
}

/// Writes the payload frame of `members` to `sink` (named `sink_path` in errors). Returns the
/// index entries (sorted by path, each file with its sha256), the frame's digest, and the sink.
pub(super) fn write_frame<W: Write>(
    members: &[Member<'_>],
    options: &PackOptions,
    sink: W,
    sink_path: &Path,
    progress: &mut dyn FnMut(u64),
) -> Result<(Vec<IndexEntry>, FrameDigest, W), Error> {
    let write_err = |source| Error::Io {
        action: "write",
        path: sink_path.to_owned(),
        source,
    };
    let sink = HashingWriter {
        inner: sink,
        hasher: Sha256::new(),
        count: 0,
    };
    let mut encoder = zstd::stream::write::Encoder::new(sink, options.level).map_err(write_err)?;
    encoder
        .multithread(options.threads.max(1))
        .map_err(write_err)?;
    encoder.include_checksum(true).map_err(write_err)?;
    let mut builder = tar::Builder::new(encoder);
    let mut buf = vec![0u8; CHUNK];
    let mut files = Vec::with_capacity(members.len());
    for member in members {
        let mut header = tar::Header::new_gnu();
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(options.mtime);
        match member.kind {
            InputKind::File { source, executable } => {
                header.set_entry_type(tar::EntryType::Regular);
                header.set_mode(if *executable { 0o755 } else { 0o644 });
                header.set_size(member.size);
                // The header (and a long-name entry before it when the path needs one); the
                // data follows, written here in large chunks.
                builder
                    .append_data(&mut header, &member.path, io::empty())
                    .map_err(write_err)?;
                let sha256 = copy_file(source, member.size, &mut buf, builder.get_mut(), progress)
                    .map_err(|e| match e {
                        Copy::Read(e) => read_error(source, e),
                        Copy::Write(e) => write_err(e),
                        Copy::Changed(read) => Error::Pack {
                            path: source.to_owned(),
                            problem: format!(
                                "file changed while packing ({} bytes expected, {read} read)",
                                member.size
                            ),
                        },
                    })?;
                let padding = (512 - member.size % 512) % 512;
                builder
                    .get_mut()
                    .write_all(&[0; 512][..padding as usize])
                    .map_err(write_err)?;
                files.push(member.entry(Some(sha256)));
            }
            InputKind::Symlink { target } => {
                header.set_entry_type(tar::EntryType::Symlink);
                header.set_mode(0o777);
                header.set_size(0);
                builder
                    .append_link(&mut header, &member.path, target)
                    .map_err(write_err)?;
                files.push(member.entry(None));
            }
        }
    }
    let encoder = builder.into_inner().map_err(write_err)?;
    let mut hashed = encoder.finish().map_err(write_err)?;
    hashed.flush().map_err(write_err)?;
    let digest = FrameDigest {
        sha256: hex::encode(hashed.hasher.finalize()),
        bytes: hashed.count,
    };
    Ok((files, digest, hashed.inner))
}

/// Why [`copy_file`] failed.
enum Copy {
    Read(io::Error),
    Write(io::Error),
    /// The file does not have its measured size any more: this many bytes could be read.
    Changed(u64),
}

/// Streams the first `size` bytes of `source` into `out`, hashing them; returns the sha256.
fn copy_file(
    source: &Path,
    size: u64,
    buf: &mut [u8],
    out: &mut dyn Write,
    progress: &mut dyn FnMut(u64),
) -> Result<String, Copy> {
    let mut file = File::open(source).map_err(Copy::Read)?;
    let now = file.metadata().map_err(Copy::Read)?.len();
    if now != size {
        return Err(Copy::Changed(now));
    }
    let mut hasher = Sha256::new();
    let mut left = size;
    while left > 0 {
        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let n = match file.read(&mut buf[..want]) {
            Ok(0) => return Err(Copy::Changed(size - left)),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Copy::Read(e)),
        };
        hasher.update(&buf[..n]);
        out.write_all(&buf[..n]).map_err(Copy::Write)?;
        progress(n as u64);
        left -= n as u64;
    }
    Ok(hex::encode(hasher.finalize()))
}

fn read_error(path: &Path, source: io::Error) -> Error {
    Error::Io {
        action: "read",
        path: path.to_owned(),
        source,
    }
}

/// Counts and hashes what passes through it.
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
