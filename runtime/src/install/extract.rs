//! Extracting a verified bundle into a staging folder: the [`Visit`] the installer hands the
//! strict reader of `kojibox-kbx`, and the file-level work it does for each member: folders
//! `0755` and files with their signed mode, never setuid/setgid nor writable by group or others,
//! owned by root when installing as root.

use std::collections::HashSet;
use std::fs::File;
use std::io::{self, Read, Write};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use kojibox_home::Home;
use kojibox_kbx::read::{Signed, Visit};
use kojibox_manifests::bundle::{EntryKind, IndexEntry};
use kojibox_manifests::model::RuntimeManifest;

use super::options::InstallOptions;
use super::plan::{Payload, Stop, plan};
use super::status::Reporter;
use crate::error::{Error, Result};

/// Bytes written to a payload file at a time.
const WRITE_CHUNK: usize = 256 << 10;

/// One install's extraction: decides at the index what to extract, then writes each wanted
/// member into `staging` with its signed mode. Nothing is written outside `staging`.
pub(crate) struct Extraction<'a, 'r> {
    pub(crate) home: &'a Home,
    pub(crate) current: Option<&'a RuntimeManifest>,
    pub(crate) host: Option<&'a str>,
    pub(crate) options: &'a InstallOptions,
    pub(crate) staging: &'a Path,
    pub(crate) reporter: &'a mut Reporter<'r>,
    /// Bytes of the bundle read so far (by the reader's own thread).
    pub(crate) read: Arc<AtomicU64>,
    /// The bundle's size.
    pub(crate) total: u64,
    /// What the plan decided.
    pub(crate) payloads: Vec<Payload>,
    /// The plan found this very bundle installed: nothing is extracted, but the whole bundle is
    /// still read and verified, so a damaged copy is never called "already installed".
    pub(crate) already: bool,
    created: HashSet<PathBuf>,
    /// The buffer files are written from.
    buf: Vec<u8>,
    progress: u8,
    fault_at: bool,
}

impl<'a, 'r> Extraction<'a, 'r> {
    /// An extraction into `staging`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        home: &'a Home,
        current: Option<&'a RuntimeManifest>,
        host: Option<&'a str>,
        options: &'a InstallOptions,
        staging: &'a Path,
        reporter: &'a mut Reporter<'r>,
        read: Arc<AtomicU64>,
        total: u64,
    ) -> Self {
        Extraction {
            home,
            current,
            host,
            options,
            staging,
            reporter,
            read,
            total,
            payloads: Vec::new(),
            already: false,
            created: HashSet::new(),
            buf: vec![0; WRITE_CHUNK],
            progress: 0,
            fault_at: kojibox_home::fault::armed("install:extract"),
        }
    }
}

impl Visit for Extraction<'_, '_> {
    type Stop = Error;

    fn index(&mut self, signed: &Signed) -> ControlFlow<Error> {
        match plan(self.home, signed, self.current, self.host, self.options) {
            Ok(list) => {
                self.payloads = list;
                self.reporter.phase("extract", 5);
                ControlFlow::Continue(())
            }
            Err(Stop::Already) => {
                // Read on (extracting nothing): only a bundle that verifies to its end is the
                // one installed.
                self.already = true;
                ControlFlow::Continue(())
            }
            Err(Stop::Refused(e)) => ControlFlow::Break(e),
        }
    }

    fn member(&mut self, entry: &IndexEntry, data: Option<&mut dyn Read>) -> io::Result<()> {
        let percent = 5 + (85 * self.read.load(Ordering::Relaxed) / self.total).min(85) as u8;
        if percent != self.progress {
            self.progress = percent;
            let phase = if self.already { "verify" } else { "extract" };
            self.reporter.phase(phase, percent);
        }
        let wanted = self
            .payloads
            .iter()
            .any(|p| p.install && entry.path.starts_with(&format!("{}/", p.root)));
        if !wanted {
            return Ok(());
        }
        let dest = self.staging.join(&entry.path);
        if let Some(parent) = dest.parent()
            && self.created.insert(parent.to_owned())
        {
            create_folders(parent)?;
        }
        let written = match (entry.kind, data) {
            (EntryKind::File, Some(data)) => write_file(&dest, data, entry.mode, &mut self.buf),
            (EntryKind::Symlink, _) => {
                make_symlink(entry.target.as_deref().unwrap_or_default(), &dest)
            }
            (EntryKind::File, None) => Err(io::Error::other("file member without data")),
        };
        // Mid-extract, with at least this member in staging (however the reads were buffered).
        if self.fault_at && percent >= 45 {
            kojibox_home::fault::fire("install:extract");
        }
        written
    }
}

/// Removes an install's staging folder on every way out of it.
pub(crate) struct StagingGuard<'a> {
    pub(crate) home: &'a Home,
    pub(crate) dir: PathBuf,
}

impl Drop for StagingGuard<'_> {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
        let _ = std::fs::remove_dir(self.home.staging());
    }
}

/// Makes everything written under `dir` durable with one `syncfs` (far cheaper than an fsync per
/// file), then syncs the folder itself.
pub(crate) fn sync_tree(dir: &Path) -> Result<()> {
    let handle = File::open(dir).map_err(Error::io("open", dir))?;
    #[cfg(target_os = "linux")]
    rustix::fs::syncfs(&handle).map_err(|e| Error::io("sync", dir)(e.into()))?;
    #[cfg(not(target_os = "linux"))]
    handle.sync_all().map_err(Error::io("sync", dir))?;
    Ok(())
}

/// The mode a payload file is installed with: the signed one, never setuid, setgid or sticky and
/// never writable by group or others (the plan refuses a bundle that signs such a mode, so this
/// is the signed mode for every bundle installed). The owner keeps its write bit: the owner is
/// root (installing as root) or kojibox's own user, who could restore it anyway, and the mode is
/// part of the signed checksum.
pub(crate) const fn installed_mode(signed: u32) -> u32 {
    signed & 0o755
}

/// Creates `dir` and its missing parents, each `0755` whatever the umask (services running as
/// their own users must reach the payload; no one else may write it) and owned by root when
/// installing as root.
pub(crate) fn create_folders(dir: &Path) -> io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent() {
        create_folders(parent)?;
    }
    match std::fs::create_dir(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists && dir.is_dir() => return Ok(()),
        Err(e) => return Err(e),
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if rustix::process::geteuid().is_root() {
            rustix::fs::chown(
                dir,
                Some(rustix::fs::Uid::ROOT),
                Some(rustix::fs::Gid::ROOT),
            )?;
        }
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))?;
    }
    Ok(())
}

fn write_file(dest: &Path, data: &mut dyn Read, mode: u32, buf: &mut [u8]) -> io::Result<()> {
    let mut file = File::create_new(dest)?;
    // Large writes: `io::copy` would move the bytes 8 KiB (one syscall) at a time.
    let mut written = 0u64;
    loop {
        let n = match data.read(buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        file.write_all(&buf[..n])?;
        written += n as u64;
    }
    // Start writing the file back to disk now, while the rest of the bundle is decompressed,
    // so the one `syncfs` before the switch has little left to wait for.
    #[cfg(target_os = "linux")]
    if written >= 64 << 10 {
        let _ = rustix::fs::fadvise(&file, 0, None, rustix::fs::Advice::DontNeed);
    }
    #[cfg(not(target_os = "linux"))]
    let _ = written;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        // Root's, not whoever owns the folder's group (a setgid parent would give its group).
        if rustix::process::geteuid().is_root() {
            rustix::fs::fchown(
                &file,
                Some(rustix::fs::Uid::ROOT),
                Some(rustix::fs::Gid::ROOT),
            )?;
        }
        file.set_permissions(std::fs::Permissions::from_mode(installed_mode(mode)))?;
    }
    #[cfg(not(unix))]
    let _ = mode;
    Ok(())
}

fn make_symlink(target: &str, dest: &Path) -> io::Result<()> {
    #[cfg(unix)]
    return std::os::unix::fs::symlink(target, dest);
    #[cfg(windows)]
    return std::os::windows::fs::symlink_file(target.replace('/', "\\"), dest);
}

/// Counts the bytes read through it, for the progress of a reader on another thread.
pub(crate) struct CountingReader<R> {
    pub(crate) inner: R,
    pub(crate) count: Arc<AtomicU64>,
}

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}
