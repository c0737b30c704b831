//! Reading a bundle strictly: verify the signed index first, then check every member as it
//! streams by.
//!
//! [`read_verified`] hands the consumer each payload member only after the index it belongs to
//! has been verified, and only members the index names, in its order, with their declared kind
//! and size. A file's bytes are hashed while the consumer reads them; the consumer must treat what
//! it wrote as untrusted until `read_verified` returns `Ok` (the installer writes into a staging
//! folder it throws away on error). Refused: an unsigned or badly signed bundle, an index that is
//! inconsistent or names unsafe paths, members that are not files or in-payload symlinks
//! (hardlinks, devices, FIFOs, folders), duplicates, members not in the index, size or content
//! mismatches, missing members, a truncated stream, trailing data, and zstd windows over a limit.

use std::collections::HashMap;
use std::io::{self, Read};
use std::ops::ControlFlow;

use kojibox_manifests::bundle::{BundleIndex, EntryKind, INDEX_PATH, IndexEntry, SIGNATURE_PATH};
use kojibox_signing::{PublicKey, Signature, TrustStore};
use sha2::{Digest, Sha256};

use crate::Error;
pub use crate::index::validate_index;
use crate::paths::check_relative;

/// Resource limits for reading untrusted bundles.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest accepted index member, in bytes.
    pub max_index_bytes: u64,
    /// Largest zstd window, as a power of two (27 = 128 MiB).
    pub window_log_max: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_index_bytes: 64 << 20,
            window_log_max: 27,
        }
    }
}

/// Who may sign: a key given explicitly, the keys pinned in a store, or both.
#[derive(Clone, Copy, Default)]
pub struct Trust<'a> {
    /// A key the user named for this operation.
    pub key: Option<&'a PublicKey>,
    /// Pinned keys.
    pub store: Option<&'a TrustStore>,
}

impl<'a> Trust<'a> {
    /// Exactly this key.
    pub fn key(key: &'a PublicKey) -> Trust<'a> {
        Trust {
            key: Some(key),
            store: None,
        }
    }

    /// Any key pinned in this store.
    pub fn store(store: &'a TrustStore) -> Trust<'a> {
        Trust {
            key: None,
            store: Some(store),
        }
    }

    fn verify(&self, message: &[u8], signature: &Signature) -> Result<(), kojibox_signing::Error> {
        match (self.key, self.store) {
            (Some(key), Some(store)) if key.key_id() != signature.key_id() => {
                store.verify(message, signature)
            }
            (Some(key), _) => key.verify(message, signature),
            (None, Some(store)) => store.verify(message, signature),
            (None, None) => Err(kojibox_signing::Error::UnknownKey {
                key_id: signature.key_id(),
                store: Default::default(),
            }),
        }
    }
}

/// A verified index.
#[derive(Debug, Clone)]
pub struct Signed {
    /// The index (its manifest has an empty `bundle.signature`).
    pub index: BundleIndex,
    /// The signature string from `kojibox/index.sig`.
    pub signature: String,
    /// The exact signed bytes of the index (kept so an install can be re-verified later).
    pub index_bytes: Vec<u8>,
}

impl Signed {
    /// The signature, parsed (it parsed when the index was verified; a stored index read back
    /// from disk may not).
    pub fn parsed_signature(&self) -> Result<Signature, kojibox_signing::Error> {
        self.signature.trim().parse()
    }

    /// The manifest as installed: with the signature filled in.
    pub fn installed_manifest(&self) -> kojibox_manifests::model::RuntimeManifest {
        let mut manifest = self.index.manifest.clone();
        manifest.bundle.signature = self.signature.clone();
        manifest
    }
}

/// Reads the index and signature without verifying them (for `inspect`). Reads only the index
/// frame.
pub fn read_index_unverified(
    mut reader: impl Read,
    limits: &Limits,
) -> Result<(BundleIndex, String), Error> {
    let header = read_header_frame(&mut reader, limits)?;
    Ok((parse_index(&header.index)?, header.signature))
}

/// What a consumer of [`read_verified`] does with what it is shown: the verified index first,
/// then each payload member in index order.
pub trait Visit {
    /// Why the consumer stopped the read early: its own verdict (an install that finds the bundle
    /// already installed, or refuses it), never a bundle error.
    type Stop;

    /// The index, once its signature verified and it checked out. `Break` stops the read there:
    /// no payload byte is read.
    fn index(&mut self, signed: &Signed) -> ControlFlow<Self::Stop>;

    /// One payload member, with a reader of its bytes (`None` for a symlink). The bytes are
    /// hashed as they are read (what the consumer leaves unread is read and hashed after it), and
    /// are untrusted until [`read_verified`] returns.
    fn member(&mut self, entry: &IndexEntry, data: Option<&mut dyn Read>) -> io::Result<()>;
}

/// A [`Visit`] that reads everything and keeps nothing: `verify`.
#[derive(Debug, Default, Clone, Copy)]
pub struct Discard;

impl Visit for Discard {
    type Stop = std::convert::Infallible;

    fn index(&mut self, _: &Signed) -> ControlFlow<Self::Stop> {
        ControlFlow::Continue(())
    }

    fn member(&mut self, _: &IndexEntry, _: Option<&mut dyn Read>) -> io::Result<()> {
        Ok(())
    }
}

/// Verifies a whole bundle and keeps nothing but its verified index.
pub fn verify(
    reader: impl Read + Send,
    trust: Trust<'_>,
    limits: &Limits,
) -> Result<Signed, Error> {
    match read_verified(reader, trust, limits, &mut Discard)? {
        ControlFlow::Continue(signed) => Ok(signed),
        ControlFlow::Break(never) => match never {},
    }
}

/// Reads and verifies a whole bundle, showing `visitor` the index once it is verified and then
/// each payload member. Returns `Continue` with the verified index when every member checked out,
/// or `Break` with the visitor's reason when it stopped the read at the index.
pub fn read_verified<V: Visit>(
    mut reader: impl Read + Send,
    trust: Trust<'_>,
    limits: &Limits,
    visitor: &mut V,
) -> Result<ControlFlow<V::Stop, Signed>, Error> {
    let header = read_header_frame(&mut reader, limits)?;
    let signature: Signature = header.signature.trim().parse()?;
    trust.verify(&header.index, &signature)?;
    let index = parse_index(&header.index)?;
    validate_index(&index)?;
    let signed = Signed {
        index,
        signature: header.signature.trim().to_owned(),
        index_bytes: header.index,
    };
    if let ControlFlow::Break(stop) = visitor.index(&signed) {
        return Ok(ControlFlow::Break(stop));
    }

    // The payload frame is decompressed (and its compressed bytes hashed) on a second thread,
    // so decompression overlaps the hashing and writing of members on this one.
    std::thread::scope(|scope| {
        let (tx, rx) = std::sync::mpsc::sync_channel::<io::Result<Vec<u8>>>(8);
        // Read chunks go back to the decoder to be filled again (no allocation per chunk).
        let (recycle, reuse) = std::sync::mpsc::sync_channel::<Vec<u8>>(8);
        let window_log_max = limits.window_log_max;
        let decoder = scope.spawn(move || decompress(reader, window_log_max, tx, reuse));
        let mut decompressed = ChannelReader {
            rx,
            recycle,
            chunk: Vec::new(),
            at: 0,
        };
        let checked = (|| {
            let mut archive = tar::Archive::new(&mut decompressed);
            {
                let positions: HashMap<&str, usize> = signed
                    .index
                    .files
                    .iter()
                    .enumerate()
                    .map(|(i, e)| (e.path.as_str(), i))
                    .collect();
                let mut seen = vec![false; signed.index.files.len()];
                for member in archive.entries().map_err(corrupt)? {
                    let mut member = member.map_err(stream_error)?;
                    let path = String::from_utf8(member.path_bytes().into_owned())
                        .map_err(|_| Error::member("<non-UTF-8 path>", "path is not UTF-8"))?;
                    let Some(&position) = positions.get(path.as_str()) else {
                        let why = check_relative(&path)
                            .err()
                            .map_or("not in the signed index".to_owned(), |w| {
                                format!("{w}; not in the signed index")
                            });
                        return Err(Error::member(path, why));
                    };
                    if std::mem::replace(&mut seen[position], true) {
                        return Err(Error::member(path, "duplicate entry"));
                    }
                    check_member(&mut member, &signed.index.files[position], visitor)?;
                }
                if let Some(position) = seen.iter().position(|s| !s) {
                    return Err(Error::Missing {
                        count: seen.iter().filter(|s| !**s).count(),
                        first: signed.index.files[position].path.clone(),
                    });
                }
            }
            // Whatever follows the tar end marker must be zero padding up to the end of the
            // zstd stream.
            let mut buf = [0u8; 8192];
            loop {
                let n = decompressed.read(&mut buf).map_err(stream_error)?;
                if n == 0 {
                    return Ok(());
                }
                if buf[..n].iter().any(|b| *b != 0) {
                    return Err(Error::Corrupt("data after the end of the archive".into()));
                }
            }
        })();
        // Stop the decoder if we stopped early, then collect its verdict on the frame.
        drop(decompressed);
        let frame = decoder
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("the decompression thread panicked")));
        checked?;
        let (count, sha256) = frame.map_err(stream_error)?;
        let expected = &signed.index.payload_frame;
        if count != expected.bytes || sha256 != expected.sha256 {
            return Err(Error::Corrupt(format!(
                "the payload frame is not the signed one ({count} bytes read, {} signed, or its sha256 differs)",
                expected.bytes
            )));
        }
        Ok(())
    })?;
    Ok(ControlFlow::Continue(signed))
}

/// Decompresses everything `reader` has left into chunks sent over `tx` (taken from `reuse`
/// when the reader gave one back), hashing the compressed bytes; returns their count and
/// sha256. Stops quietly when the receiver is gone.
fn decompress(
    reader: impl Read,
    window_log_max: u32,
    tx: std::sync::mpsc::SyncSender<io::Result<Vec<u8>>>,
    reuse: std::sync::mpsc::Receiver<Vec<u8>>,
) -> io::Result<(u64, String)> {
    let hashed = Hashing {
        inner: reader,
        hasher: Sha256::new(),
        count: 0,
    };
    let mut decoder = zstd::stream::read::Decoder::new(hashed)?;
    decoder.window_log_max(window_log_max)?;
    const CHUNK: usize = 1 << 20;
    loop {
        let mut chunk = reuse.try_recv().unwrap_or_default();
        chunk.resize(CHUNK, 0);
        let mut filled = 0;
        while filled < CHUNK {
            match decoder.read(&mut chunk[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    let text = if e.to_string().contains("too much memory") {
                        format!(
                            "the payload frame needs a zstd window over the {} MiB limit",
                            (1u64 << window_log_max) >> 20
                        )
                    } else {
                        e.to_string()
                    };
                    let message = io::Error::new(e.kind(), text);
                    let _ = tx.send(Err(message));
                    return Err(e);
                }
            }
        }
        if filled == 0 {
            break;
        }
        chunk.truncate(filled);
        if tx.send(Ok(chunk)).is_err() {
            return Err(io::Error::other("reading stopped"));
        }
    }
    drop(tx);
    let mut hashed = decoder.finish().into_inner();
    io::copy(&mut hashed, &mut io::sink())?;
    Ok((hashed.count, hex::encode(hashed.hasher.finalize())))
}

/// Reads the chunks [`decompress`] sends, and gives each back once read.
struct ChannelReader {
    rx: std::sync::mpsc::Receiver<io::Result<Vec<u8>>>,
    recycle: std::sync::mpsc::SyncSender<Vec<u8>>,
    chunk: Vec<u8>,
    at: usize,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.at == self.chunk.len() {
            match self.rx.recv() {
                Ok(Ok(chunk)) => {
                    let read = std::mem::replace(&mut self.chunk, chunk);
                    if read.capacity() > 0 {
                        let _ = self.recycle.try_send(read);
                    }
                    self.at = 0;
                }
                Ok(Err(e)) => return Err(e),
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.chunk.len() - self.at);
        buf[..n].copy_from_slice(&self.chunk[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

/// The index and signature members of the index frame.
struct HeaderFrame {
    index: Vec<u8>,
    signature: String,
}

/// Reads the index frame straight from the file and checks it is exactly the canonical
/// encoding of its two members ([`crate::frame::header_frame`]).
fn read_header_frame(reader: &mut impl Read, limits: &Limits) -> Result<HeaderFrame, Error> {
    use crate::frame::{MAX_BLOCK, RAW_FRAME_DESCRIPTOR, ZSTD_MAGIC, raw_member};
    let mut start = [0u8; 13];
    read_exact(reader, &mut start, "the index frame")?;
    if start[..4] != ZSTD_MAGIC.to_le_bytes() {
        return Err(Error::Corrupt(
            "not a kojibox bundle (no zstd frame at the start)".into(),
        ));
    }
    if start[4] != RAW_FRAME_DESCRIPTOR {
        return Err(Error::Unsigned);
    }
    let mut size_bytes = [0u8; 8];
    size_bytes.copy_from_slice(&start[5..13]);
    let size = u64::from_le_bytes(size_bytes);
    if size > limits.max_index_bytes + 8192 {
        return Err(Error::Corrupt(format!(
            "index frame of {size} bytes is over the limit"
        )));
    }
    let mut content = Vec::with_capacity(size as usize);
    while (content.len() as u64) < size {
        let mut header = [0u8; 3];
        read_exact(reader, &mut header, "the index frame")?;
        let header = u32::from_le_bytes([header[0], header[1], header[2], 0]);
        let len = (header >> 3) as usize;
        let remaining = size as usize - content.len();
        let last = header & 1 == 1;
        let canonical =
            header & 0b110 == 0 && len == remaining.min(MAX_BLOCK) && last == (len == remaining);
        if !canonical {
            return Err(Error::Corrupt(
                "the index frame is not in canonical form".into(),
            ));
        }
        let at = content.len();
        content.resize(at + len, 0);
        read_exact(reader, &mut content[at..], "the index frame")?;
    }
    // Parse the two members, then insist the content is exactly their canonical encoding.
    let member = |at: usize, name: &str| -> Result<(Vec<u8>, u64, usize), Error> {
        let header = content.get(at..at + 512).ok_or(Error::Unsigned)?;
        let header = tar::Header::from_byte_slice(header);
        if header.path_bytes().as_ref() != name.as_bytes() {
            return Err(Error::Unsigned);
        }
        let len = header.size().map_err(corrupt)? as usize;
        let mtime = header.mtime().map_err(corrupt)?;
        let end = at
            .checked_add(512)
            .and_then(|s| s.checked_add(len))
            .ok_or(Error::Unsigned)?;
        let data = content.get(at + 512..end).ok_or(Error::Unsigned)?.to_vec();
        Ok((data, mtime, at + 512 + len.div_ceil(512) * 512))
    };
    let (index, mtime, next) = member(0, INDEX_PATH)?;
    let (signature, _, _) = member(next, SIGNATURE_PATH)?;
    if index.len() as u64 > limits.max_index_bytes || signature.len() > 4096 {
        return Err(Error::Corrupt(
            "index or signature over the size limit".into(),
        ));
    }
    let mut expected = raw_member(INDEX_PATH, &index, mtime);
    expected.extend(raw_member(SIGNATURE_PATH, &signature, mtime));
    if expected != content {
        return Err(Error::Corrupt(
            "the index frame is not in canonical form".into(),
        ));
    }
    let signature =
        String::from_utf8(signature).map_err(|_| Error::member(SIGNATURE_PATH, "is not UTF-8"))?;
    Ok(HeaderFrame { index, signature })
}

fn read_exact(reader: &mut impl Read, buf: &mut [u8], what: &str) -> Result<(), Error> {
    reader.read_exact(buf).map_err(|e| match e.kind() {
        io::ErrorKind::UnexpectedEof => Error::Truncated(format!("{what} is cut short")),
        _ => Error::Corrupt(format!("could not read {what}: {e}")),
    })
}

fn parse_index(bytes: &[u8]) -> Result<BundleIndex, Error> {
    kojibox_manifests::from_json_slice(bytes).map_err(|e| Error::InvalidIndex(e.to_string()))
}

fn check_member<R: Read, V: Visit>(
    member: &mut tar::Entry<'_, R>,
    expected: &IndexEntry,
    visitor: &mut V,
) -> Result<(), Error> {
    let path = expected.path.as_str();
    let entry_type = member.header().entry_type();
    let kind = match entry_type {
        tar::EntryType::Regular | tar::EntryType::Continuous => EntryKind::File,
        tar::EntryType::Symlink => EntryKind::Symlink,
        tar::EntryType::Link => return Err(Error::member(path, "hardlinks are not allowed")),
        tar::EntryType::Char | tar::EntryType::Block => {
            return Err(Error::member(path, "device files are not allowed"));
        }
        tar::EntryType::Fifo => return Err(Error::member(path, "FIFOs are not allowed")),
        tar::EntryType::Directory => {
            return Err(Error::member(path, "folder entries are not allowed"));
        }
        other => {
            return Err(Error::member(
                path,
                format!("entry type {other:?} is not allowed"),
            ));
        }
    };
    if kind != expected.kind {
        return Err(Error::member(
            path,
            format!("is a {kind:?}, the index says {:?}", expected.kind).to_lowercase(),
        ));
    }
    let size = member.header().size().map_err(corrupt)?;
    if size != expected.size {
        return Err(Error::member(
            path,
            format!("size {size} differs from the signed size {}", expected.size),
        ));
    }
    match kind {
        EntryKind::Symlink => {
            let target = member
                .link_name_bytes()
                .map(|t| t.into_owned())
                .unwrap_or_default();
            if Some(target.as_slice()) != expected.target.as_deref().map(str::as_bytes) {
                return Err(Error::member(
                    path,
                    "symlink target differs from the signed one",
                ));
            }
            visitor
                .member(expected, None)
                .map_err(|e| Error::member(path, format!("could not write: {e}")))?;
        }
        EntryKind::File => {
            let mut reader = Hashing {
                inner: &mut *member,
                hasher: Sha256::new(),
                count: 0,
            };
            visitor
                .member(expected, Some(&mut reader))
                .map_err(|e| consumer_error(path, e))?;
            io::copy(&mut reader, &mut io::sink()).map_err(stream_error)?;
            if reader.count != size {
                return Err(Error::Truncated(format!("{path} is cut short")));
            }
            let actual = hex::encode(reader.hasher.finalize());
            if Some(actual.as_str()) != expected.sha256.as_deref() {
                return Err(Error::member(
                    path,
                    format!(
                        "content differs from the signed sha256 (expected {}, got {actual})",
                        expected.sha256.as_deref().unwrap_or("")
                    ),
                ));
            }
        }
    }
    Ok(())
}

struct Hashing<R> {
    inner: R,
    hasher: Sha256,
    count: u64,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
}

fn corrupt(e: io::Error) -> Error {
    Error::Corrupt(e.to_string())
}

/// Stream errors: an early end is a truncation, anything else corruption.
fn stream_error(e: io::Error) -> Error {
    if e.kind() == io::ErrorKind::UnexpectedEof || e.to_string().contains("incomplete") {
        Error::Truncated(e.to_string())
    } else {
        Error::Corrupt(e.to_string())
    }
}

/// A consumer failure while reading a member: the stream's own errors keep their meaning.
fn consumer_error(path: &str, e: io::Error) -> Error {
    match e.kind() {
        io::ErrorKind::UnexpectedEof => Error::Truncated(format!("{path}: {e}")),
        io::ErrorKind::InvalidData | io::ErrorKind::Other => Error::Corrupt(format!("{path}: {e}")),
        _ => Error::member(path, format!("could not write: {e}")),
    }
}
