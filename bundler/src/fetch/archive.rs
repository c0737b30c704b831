//! Turning a verified file into a payload folder: strict archive unpacking, or a single file.
//!
//! The archive kind comes from the file name (`.tar.gz`, `.tgz`, `.tar.xz`, `.txz`,
//! `.tar.zst`, `.tzst`, `.tar`, `.zip`, any case). Entries are written one by one, never through
//! the decoders' own `unpack` helpers, so every rule is ours:
//!
//! - `.` components are dropped, then `strip` leading components; entries left with nothing
//!   (such as npm's bare `package/` folder) are skipped;
//! - absolute paths, `..` components, devices, FIFOs, sockets and duplicates are refused;
//! - a symlink is kept only when its target, resolved from the link's folder, stays inside the
//!   payload; no entry is ever written through a symlink, so a link cannot redirect a write;
//! - a tar hard link becomes a copy of its target, which must be a file unpacked before it;
//! - files get 0o755 when any execute bit is set, else 0o644 (never setuid/setgid); times and
//!   owners are left alone, as the packer ignores them.
//!
//! - what an archive expands to is capped ([`unpack_cap`]): 64 MiB or 100 times the archive's
//!   size, whichever is more, and never more than 8 GiB; `KOJIBOX_BUNDLE_MAX_UNPACKED` (bytes)
//!   sets the cap instead. A decompression bomb (72 KB that unpacks to 2 GiB) stops at the cap
//!   with an error naming it, before it fills the disk.
//!
//! Unpacking happens in a fresh folder under the cache's `tmp/`, renamed to
//! `unpacked/<sha256>-strip<N>` when complete; an existing folder is reused as is.

use std::borrow::Cow;
use std::cell::Cell;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use super::cache::{Cache, payload_mode, set_mode};
use super::error::FetchError;

/// Archive formats recognised by file name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    TarGz,
    TarXz,
    TarZst,
    Tar,
    Zip,
}

/// The archive kind a file name announces, if any.
pub(crate) fn kind_of(name: &str) -> Option<Kind> {
    let lower = name.to_ascii_lowercase();
    let table = [
        (".tar.gz", Kind::TarGz),
        (".tgz", Kind::TarGz),
        (".tar.xz", Kind::TarXz),
        (".txz", Kind::TarXz),
        (".tar.zst", Kind::TarZst),
        (".tzst", Kind::TarZst),
        (".tar", Kind::Tar),
        (".zip", Kind::Zip),
    ];
    table
        .into_iter()
        .find(|(suffix, _)| lower.ends_with(suffix))
        .map(|(_, kind)| kind)
}

/// A verified file and how to turn it into a payload.
pub(crate) struct Artifact<'a> {
    /// What to call it in errors: the URL, npm spec or path.
    pub label: &'a str,
    /// Its file name: decides whether (and how) it is unpacked, and names a single-file payload.
    pub name: &'a str,
    /// Its lowercase hex sha256 (already verified by the caller).
    pub sha256: &'a str,
    /// Leading components to strip (archives only).
    pub strip: u32,
    /// Permission bits of a single-file payload (ignored for archives).
    pub mode: u32,
}

impl Artifact<'_> {
    /// Where its payload folder lives in the cache.
    pub(crate) fn payload_dir(&self, cache: &Cache) -> Result<PathBuf, FetchError> {
        if kind_of(self.name).is_some() {
            return Ok(cache.unpacked(&format!("{}-strip{}", self.sha256, self.strip)));
        }
        if self.strip != 0 {
            return Err(FetchError::StripNotArchive {
                artifact: self.label.to_owned(),
            });
        }
        check_file_name(self.name, self.label)?;
        // Percent-encoding keeps the folder name portable and distinct for distinct names.
        let safe: String = self
            .name
            .bytes()
            .map(|b| match b {
                b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'.' | b'-' | b'_' => {
                    char::from(b).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect();
        let mode = payload_mode(self.mode);
        Ok(cache.unpacked(&format!("{}-file{mode:o}-{safe}", self.sha256)))
    }

    /// Builds the payload folder from `file` (the verified bytes, read from the start), unless
    /// it is already in the cache. Returns the folder.
    pub(crate) fn materialize(
        &self,
        cache: &Cache,
        file: &mut File,
    ) -> Result<PathBuf, FetchError> {
        let dest = self.payload_dir(cache)?;
        if dest.is_dir() {
            return Ok(dest);
        }
        file.seek(SeekFrom::Start(0))
            .map_err(|e| FetchError::io("rewind", &dest, e))?;
        let work = cache.temp_dir("unpack-")?;
        let size = file
            .metadata()
            .map_err(|e| FetchError::io("read", &dest, e))?
            .len();
        let cap = unpack_cap(size);
        let out = Out {
            root: work.path(),
            label: self.label,
            strip: self.strip,
            budget: Cell::new(cap),
            cap,
        };
        match kind_of(self.name) {
            Some(Kind::Zip) => out.zip(file)?,
            Some(kind) => {
                let raw = BufReader::new(file);
                let reader: Box<dyn Read> = match kind {
                    Kind::TarGz => Box::new(flate2::read::MultiGzDecoder::new(raw)),
                    Kind::TarXz => Box::new(lzma_rust2::XzReader::new(raw, true)),
                    Kind::TarZst => Box::new(
                        zstd::stream::read::Decoder::with_buffer(raw)
                            .map_err(|e| out.bad(e.to_string()))?,
                    ),
                    Kind::Tar | Kind::Zip => Box::new(raw),
                };
                out.tar(reader)?;
            }
            None => {
                let path = work.path().join(self.name);
                out.write_file(&path, self.name, file, self.mode)?;
            }
        }
        cache.publish_dir(work, &dest)?;
        Ok(dest)
    }
}

/// A single-file payload keeps the name it has, so that name must be one plain component.
fn check_file_name(name: &str, label: &str) -> Result<(), FetchError> {
    if name.is_empty() || name == "." || name == ".." || name.contains(['/', '\\', '\0']) {
        return Err(FetchError::UnsafeEntry {
            archive: label.to_owned(),
            entry: name.to_owned(),
            why: "not usable as a file name".into(),
        });
    }
    Ok(())
}

/// The variable that sets the unpack cap, in bytes.
pub(crate) const MAX_UNPACKED_VAR: &str = "KOJIBOX_BUNDLE_MAX_UNPACKED";

/// How many bytes an archive of `archive_size` bytes may expand to (see the module docs).
pub(crate) fn unpack_cap(archive_size: u64) -> u64 {
    if let Some(cap) = std::env::var(MAX_UNPACKED_VAR)
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
    {
        return cap;
    }
    archive_size.saturating_mul(100).clamp(64 << 20, 8 << 30)
}

/// The folder being filled, and what the errors should name.
struct Out<'a> {
    root: &'a Path,
    label: &'a str,
    strip: u32,
    /// Bytes the archive may still expand to.
    budget: Cell<u64>,
    /// The whole cap, for the error.
    cap: u64,
}

impl Out<'_> {
    fn bad(&self, why: String) -> FetchError {
        FetchError::BadArchive {
            archive: self.label.to_owned(),
            why,
        }
    }

    fn unsafe_entry(&self, entry: &str, why: impl Into<String>) -> FetchError {
        FetchError::UnsafeEntry {
            archive: self.label.to_owned(),
            entry: entry.to_owned(),
            why: why.into(),
        }
    }

    /// The entry's components inside the payload, `None` when `strip` consumes it whole.
    fn payload_path(&self, raw: &str) -> Result<Option<Vec<String>>, FetchError> {
        if raw.starts_with('/') {
            return Err(self.unsafe_entry(raw, "absolute path"));
        }
        if raw.contains('\0') {
            return Err(self.unsafe_entry(raw, "NUL byte in the path"));
        }
        let parts: Vec<&str> = raw
            .split('/')
            .filter(|c| !c.is_empty() && *c != ".")
            .collect();
        if parts.contains(&"..") {
            return Err(self.unsafe_entry(raw, "`..` in the path"));
        }
        let strip = self.strip as usize;
        if parts.len() <= strip {
            return Ok(None);
        }
        Ok(Some(parts[strip..].iter().map(|c| c.to_string()).collect()))
    }

    /// Where `parts` lands, with its parent folders created.
    fn place(&self, raw: &str, parts: &[String]) -> Result<PathBuf, FetchError> {
        let path = self.inside(raw, parts)?;
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).map_err(|e| FetchError::io("create folder", parent, e))?;
        }
        Ok(path)
    }

    /// Where `parts` is, after checking that no folder on the way is a symlink: a link unpacked
    /// earlier must not be able to send a write (or a hard link's read) outside the payload.
    fn inside(&self, raw: &str, parts: &[String]) -> Result<PathBuf, FetchError> {
        let mut path = self.root.to_path_buf();
        for (i, part) in parts.iter().enumerate() {
            path.push(part);
            let Ok(meta) = fs::symlink_metadata(&path) else {
                continue;
            };
            if meta.file_type().is_symlink() && i + 1 < parts.len() {
                let through = parts[..=i].join("/");
                return Err(self.unsafe_entry(raw, format!("goes through the symlink `{through}`")));
            }
        }
        Ok(path)
    }

    /// Rejects a symlink whose target leaves the payload.
    fn check_link(&self, raw: &str, parts: &[String], target: &str) -> Result<(), FetchError> {
        let outside = || {
            self.unsafe_entry(
                raw,
                format!("symlink to `{target}` points outside the payload"),
            )
        };
        if target.is_empty() || target.starts_with('/') || target.contains(['\\', '\0']) {
            return Err(outside());
        }
        let mut at: Vec<&str> = parts[..parts.len() - 1]
            .iter()
            .map(String::as_str)
            .collect();
        for part in target.split('/') {
            match part {
                "" | "." => {}
                ".." => {
                    at.pop().ok_or_else(outside)?;
                }
                _ => at.push(part),
            }
        }
        Ok(())
    }

    fn symlink(&self, raw: &str, parts: &[String], target: &str) -> Result<(), FetchError> {
        self.check_link(raw, parts, target)?;
        let path = self.place(raw, parts)?;
        if fs::symlink_metadata(&path).is_ok() {
            return Err(self.unsafe_entry(raw, "duplicate entry"));
        }
        make_symlink(target, &path).map_err(|e| FetchError::io("create symlink", &path, e))
    }

    fn dir(&self, raw: &str, parts: &[String]) -> Result<(), FetchError> {
        let path = self.place(raw, parts)?;
        match fs::symlink_metadata(&path) {
            Ok(meta) if meta.is_dir() => Ok(()),
            Ok(_) => Err(self.unsafe_entry(raw, "duplicate entry")),
            Err(_) => {
                fs::create_dir(&path).map_err(|e| FetchError::io("create folder", &path, e))?;
                set_mode(&path, 0o755)
            }
        }
    }

    /// Copies `reader` into a new file at `path`: read errors blame the archive, write errors
    /// the disk.
    fn write_file(
        &self,
        path: &Path,
        raw: &str,
        mut reader: impl Read,
        mode: u32,
    ) -> Result<(), FetchError> {
        let mut file = match OpenOptions::new().write(true).create_new(true).open(path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                return Err(self.unsafe_entry(raw, "duplicate entry"));
            }
            Err(e) => return Err(FetchError::io("create", path, e)),
        };
        let mut buf = vec![0; 64 * 1024];
        loop {
            let n = reader
                .read(&mut buf)
                .map_err(|e| self.bad(format!("reading `{raw}`: {e}")))?;
            if n == 0 {
                break;
            }
            let left = self.budget.get().checked_sub(n as u64).ok_or_else(|| {
                self.bad(format!(
                    "it expands to more than {} bytes (at `{raw}`): a decompression bomb, or a \
                     payload bigger than the cap; set {MAX_UNPACKED_VAR}=BYTES to allow more",
                    self.cap
                ))
            })?;
            self.budget.set(left);
            file.write_all(&buf[..n])
                .map_err(|e| FetchError::io("write", path, e))?;
        }
        set_mode(path, payload_mode(mode))
    }

    fn tar(&self, reader: impl Read) -> Result<(), FetchError> {
        use tar::EntryType;
        let mut archive = tar::Archive::new(reader);
        let entries = archive.entries().map_err(|e| self.bad(e.to_string()))?;
        for entry in entries {
            let entry = entry.map_err(|e| self.bad(e.to_string()))?;
            let kind = entry.header().entry_type();
            if kind.is_pax_global_extensions() {
                continue;
            }
            let raw =
                utf8(entry.path_bytes()).map_err(|_| self.bad("non UTF-8 entry name".into()))?;
            let Some(parts) = self.payload_path(&raw)? else {
                continue;
            };
            match kind {
                EntryType::Regular | EntryType::Continuous => {
                    let mode = entry.header().mode().map_err(|e| self.bad(e.to_string()))?;
                    let path = self.place(&raw, &parts)?;
                    self.write_file(&path, &raw, entry, mode)?;
                }
                EntryType::Directory => self.dir(&raw, &parts)?,
                EntryType::Symlink => {
                    let target = self.link_name(&entry, &raw)?;
                    self.symlink(&raw, &parts, &target)?;
                }
                EntryType::Link => {
                    let target = self.link_name(&entry, &raw)?;
                    self.hard_link(&raw, &parts, &target)?;
                }
                EntryType::Char | EntryType::Block => {
                    return Err(self.unsafe_entry(&raw, "device file"));
                }
                EntryType::Fifo => return Err(self.unsafe_entry(&raw, "FIFO")),
                other => {
                    return Err(
                        self.unsafe_entry(&raw, format!("unsupported entry type {other:?}"))
                    );
                }
            }
        }
        Ok(())
    }

    fn link_name<R: Read>(
        &self,
        entry: &tar::Entry<'_, R>,
        raw: &str,
    ) -> Result<String, FetchError> {
        let bytes = entry
            .link_name_bytes()
            .ok_or_else(|| self.unsafe_entry(raw, "link without a target"))?;
        utf8(bytes).map_err(|_| self.unsafe_entry(raw, "non UTF-8 link target"))
    }

    /// A tar hard link names its target from the archive root, like any entry; it becomes a
    /// copy, as payloads hold only files and symlinks.
    fn hard_link(&self, raw: &str, parts: &[String], target: &str) -> Result<(), FetchError> {
        let outside =
            || self.unsafe_entry(raw, format!("hard link to `{target}` outside the payload"));
        let target_parts = self
            .payload_path(target)
            .map_err(|_| outside())?
            .ok_or_else(outside)?;
        let source = self.inside(target, &target_parts)?;
        let is_file = fs::symlink_metadata(&source).is_ok_and(|m| m.is_file());
        if !is_file {
            return Err(self.unsafe_entry(
                raw,
                format!("hard link to `{target}`, which is not a file unpacked before it"),
            ));
        }
        let path = self.place(raw, parts)?;
        let mode = file_mode(&source);
        let from = File::open(&source).map_err(|e| FetchError::io("read", &source, e))?;
        self.write_file(&path, raw, from, mode)
    }

    fn zip(&self, file: &mut File) -> Result<(), FetchError> {
        const TYPE_MASK: u32 = 0o170_000;
        let mut archive = zip::ZipArchive::new(file).map_err(|e| self.bad(e.to_string()))?;
        for i in 0..archive.len() {
            let mut entry = archive.by_index(i).map_err(|e| self.bad(e.to_string()))?;
            // Some Windows tools write `\` separators; the format says `/`.
            let raw = entry
                .name()
                .map_err(|e| self.bad(e.to_string()))?
                .replace('\\', "/");
            let Some(parts) = self.payload_path(&raw)? else {
                continue;
            };
            let mode = entry.unix_mode();
            match mode.map(|m| m & TYPE_MASK) {
                Some(0o120_000) => {
                    let mut target = String::new();
                    entry
                        .read_to_string(&mut target)
                        .map_err(|e| self.bad(format!("reading `{raw}`: {e}")))?;
                    self.symlink(&raw, &parts, &target)?;
                }
                Some(0o020_000 | 0o060_000) => return Err(self.unsafe_entry(&raw, "device file")),
                Some(0o010_000) => return Err(self.unsafe_entry(&raw, "FIFO")),
                Some(0o140_000) => return Err(self.unsafe_entry(&raw, "socket")),
                _ if entry.is_dir() => self.dir(&raw, &parts)?,
                _ => {
                    let path = self.place(&raw, &parts)?;
                    self.write_file(&path, &raw, &mut entry, mode.unwrap_or(0o644))?;
                }
            }
        }
        Ok(())
    }
}

fn utf8(bytes: Cow<'_, [u8]>) -> Result<String, std::string::FromUtf8Error> {
    String::from_utf8(bytes.into_owned())
}

/// Permission bits of a file (0o644 where there are none).
pub(crate) fn file_mode(path: &Path) -> u32 {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::metadata(path).map_or(0o644, |m| m.permissions().mode())
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        0o644
    }
}

#[cfg(unix)]
fn make_symlink(target: &str, path: &Path) -> io::Result<()> {
    std::os::unix::fs::symlink(target, path)
}

#[cfg(not(unix))]
fn make_symlink(_target: &str, _path: &Path) -> io::Result<()> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "payloads with symlinks are built on Unix hosts only",
    ))
}
