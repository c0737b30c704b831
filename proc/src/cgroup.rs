//! Containment: no process a service starts outlives it, not even one that double-forked and
//! called `setsid` to leave its process group.
//!
//! A [`Containment`] is chosen once per daemon ([`Containment::for_home`]):
//!
//! - **cgroup v2** (preferred). The cgroup2 mount is read from `/proc/self/mountinfo` and the
//!   daemon's own cgroup from `/proc/self/cgroup` (`0::<path>`). The daemon creates
//!   `<own cgroup>/kojibox-<hash of the home>` (the *base*) and one leaf `<base>/<service id>` per
//!   service; leaves hold the processes, the base none, so the "no internal processes" rule
//!   holds even when controllers are enabled below the base. A child moves itself into its leaf
//!   between fork and exec (writing `0` to a `cgroup.procs` descriptor the daemon opened:
//!   Linux checks the opener's credentials, so this works after the drop to the service user),
//!   and the daemon writes the pid once more after the spawn (older kernels). A stop ends the
//!   leaf (`cgroup.kill`), which no process can leave without write access to the daemon's own
//!   cgroup. Needs Linux 5.14 (`cgroup.kill`) and a cgroup the daemon may create children in
//!   (root, or a delegated subtree such as systemd's `Delegate=yes`).
//! - **Subreaper fallback** (cgroups unusable, or `KOJIBOX_NO_CGROUP=1`). The daemon becomes
//!   child subreaper (`PR_SET_CHILD_SUBREAPER`), so orphans of its services are re-parented to it
//!   rather than to init, and a reaper thread collects the ones that exit. Every service carries
//!   the marker [`MARKER_VAR`]`=kojibox-<hash>/<id>` in its environment, inherited by its
//!   descendants; a stop ends every process holding the service's marker and every descendant
//!   of those (found through `/proc/<pid>/stat`'s parent pids).
//!
//! Either way the base (if any) is recorded in `<records>/containment`, so the next daemon ends
//! what an earlier one left behind ([`Containment::reap_escaped`]): every process in a recorded
//! base (validated: a cgroup2 directory named after this very home), and every process carrying
//! this home's marker, read from `/proc/<pid>/environ` (root reads all; a normal user its own).
//!
//! Limits, stated in `docs/design.md`: a process that scrubs its environment (`env -i`) before
//! escaping is not found by the marker after the daemon died (while the daemon lives, the
//! subreaper still holds it and the daemon's shutdown ends it); with a non-root daemon whose
//! services run as the daemon's user, a service could move itself to another cgroup that user may
//! write. macOS, the BSDs and Windows have no containment here (Windows: a job object, not built).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::Signal;

/// The environment variable that marks a service's processes: `kojibox-<hash>/<service id>`.
pub const MARKER_VAR: &str = "KOJIBOX_SCOPE";
/// Set to `1` to skip cgroups and use the subreaper fallback (documented for tests and for
/// machines whose cgroup setup misbehaves).
pub const NO_CGROUP_VAR: &str = "KOJIBOX_NO_CGROUP";
/// The file, in the records folder, that lists the cgroup bases daemons of this home used.
const STATE_FILE: &str = "containment";
/// How long the kernel may take to finish processes after `cgroup.kill` or SIGKILL.
const AFTER_KILL: Duration = Duration::from_secs(2);

/// How the processes of this daemon's services are held together; cheap to clone.
#[derive(Clone, Debug)]
pub struct Containment {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// `kojibox-<hash of the home>`.
    tag: String,
    /// The records folder (for the state file).
    records: PathBuf,
    mechanism: Mechanism,
    /// Bases recorded by earlier daemons of this home (validated when used).
    previous: Vec<PathBuf>,
    /// The services' leaders as spawned (pid, start time): direct children, never "adopted".
    direct: Mutex<BTreeSet<(u32, u64)>>,
}

/// Which mechanism a [`Containment`] uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mechanism {
    /// Each service in its own cgroup v2 under `base`.
    Cgroup {
        /// `<the daemon's own cgroup>/kojibox-<hash of the home>`.
        base: PathBuf,
    },
    /// No usable cgroup: the daemon is child subreaper and services are found by their marker.
    Subreaper {
        /// Why cgroups are not used.
        why: String,
    },
    /// Neither is available on this platform: only process groups (see the crate docs).
    Unsupported,
}

/// Where one service's processes are: its cgroup leaf, or its marker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Scope {
    /// `kojibox-<hash>/<id>`, the value of [`MARKER_VAR`].
    pub marker: String,
    /// The cgroup leaf, in cgroup mode.
    pub cgroup: Option<PathBuf>,
}

impl Containment {
    /// Chooses the mechanism for the daemon of `home` (records in `records`): a cgroup base if
    /// one can be created (see the module docs), else the subreaper fallback (Linux). Never
    /// fails: what could not be used is said by [`Containment::describe`].
    pub fn for_home(home: &Path, records: &Path) -> Containment {
        let home = std::path::absolute(home).unwrap_or_else(|_| home.to_owned());
        let home = home.canonicalize().unwrap_or(home);
        let tag = format!(
            "kojibox-{:016x}",
            fnv1a(home.as_os_str().as_encoded_bytes())
        );
        let previous = read_state(records);
        let mechanism = choose(&tag);
        if let Mechanism::Cgroup { base } = &mechanism {
            let mut bases = previous.clone();
            if !bases.contains(base) {
                bases.push(base.clone());
            }
            write_state(records, &bases);
        }
        let inner = Arc::new(Inner {
            tag,
            records: records.to_owned(),
            mechanism,
            previous,
            direct: Mutex::new(BTreeSet::new()),
        });
        #[cfg(target_os = "linux")]
        if matches!(inner.mechanism, Mechanism::Subreaper { .. }) {
            start_reaper(Arc::downgrade(&inner));
        }
        Containment { inner }
    }

    /// The mechanism in use.
    pub fn mechanism(&self) -> &Mechanism {
        &self.inner.mechanism
    }

    /// `kojibox-<hash of the home>`: the base's name and the markers' prefix.
    pub fn tag(&self) -> &str {
        &self.inner.tag
    }

    /// One line for the daemon's log: which mechanism runs and why.
    pub fn describe(&self) -> String {
        match &self.inner.mechanism {
            Mechanism::Cgroup { base } => {
                format!(
                    "each service runs in its own cgroup under {}",
                    base.display()
                )
            }
            Mechanism::Subreaper { why } => format!(
                "services are not in cgroups ({why}); the daemon is child subreaper and finds \
                 their processes by {MARKER_VAR}"
            ),
            Mechanism::Unsupported => {
                "no containment beyond process groups on this platform".to_owned()
            }
        }
    }

    /// Where service `id`'s processes are.
    pub fn scope(&self, id: &str) -> Scope {
        Scope {
            marker: format!("{}/{id}", self.inner.tag),
            cgroup: match &self.inner.mechanism {
                Mechanism::Cgroup { base } => Some(base.join(id)),
                _ => None,
            },
        }
    }

    /// Notes a service leader the spawner started (a direct child: never reaped as adopted).
    pub(crate) fn note_direct(&self, pid: u32, start_time: u64) {
        if let Ok(mut direct) = self.inner.direct.lock() {
            direct.insert((pid, start_time));
        }
    }

    /// What the watchdog needs to end everything if the daemon dies: `scope <tag> [<base>]`.
    pub(crate) fn watchdog_line(&self) -> String {
        match &self.inner.mechanism {
            Mechanism::Cgroup { base } => format!("scope {} {}", self.inner.tag, base.display()),
            _ => format!("scope {}", self.inner.tag),
        }
    }

    /// Ends what earlier daemons of this home left behind, escaped processes included: every
    /// process in a recorded cgroup base (and the current one), and every process carrying this
    /// home's marker. SIGTERM first, then SIGKILL (`cgroup.kill`) after `grace`. Call it at daemon
    /// start, before any service is spawned. Returns notes for the log.
    pub async fn reap_escaped(&self, grace: Duration) -> Vec<String> {
        let mut notes = Vec::new();
        let mut bases: Vec<PathBuf> = self.inner.previous.clone();
        if let Mechanism::Cgroup { base } = &self.inner.mechanism
            && !bases.contains(base)
        {
            bases.push(base.clone());
        }
        for base in &bases {
            if !is_our_base(base, &self.inner.tag) {
                continue;
            }
            for leaf in leaves(base) {
                let id = leaf
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let scope = Scope {
                    marker: format!("{}/{id}", self.inner.tag),
                    cgroup: Some(leaf.clone()),
                };
                let found = scope.members();
                if !found.is_empty() {
                    end(&scope, grace).await;
                    notes.push(format!(
                        "ended {} process(es) of {id} left in cgroup {} by a previous daemon \
                         ({})",
                        found.len(),
                        leaf.display(),
                        list(&found)
                    ));
                }
                scope.remove();
            }
            // Created again at the first spawn.
            let _ = std::fs::remove_dir(base);
        }
        // Processes that carry this home's marker, wherever they are (the fallback's leftovers,
        // or ones that somehow left their cgroup).
        let prefix = format!("{}/", self.inner.tag);
        let mut by_service: std::collections::BTreeMap<String, Vec<u32>> = Default::default();
        for (pid, marker) in marked(&prefix) {
            if let Some(id) = marker.strip_prefix(&prefix) {
                by_service.entry(id.to_owned()).or_default().push(pid);
            }
        }
        for (id, pids) in by_service {
            let scope = Scope {
                marker: format!("{prefix}{id}"),
                cgroup: None,
            };
            end(&scope, grace).await;
            notes.push(format!(
                "ended {} process(es) of {id} that a previous daemon left running outside \
                 every group ({})",
                pids.len(),
                list(&pids)
            ));
        }
        if let Mechanism::Cgroup { base } = &self.inner.mechanism {
            write_state(&self.inner.records, std::slice::from_ref(base));
        } else {
            write_state(&self.inner.records, &[]);
        }
        notes
    }

    /// Ends every process of every service of this daemon (SIGKILL) and removes the cgroups:
    /// what the watchdog does when the daemon dies, and what dropping the last clone does.
    pub fn kill_everything(&self) {
        kill_everything(&self.inner.tag, self.base());
    }

    fn base(&self) -> Option<&Path> {
        match &self.inner.mechanism {
            Mechanism::Cgroup { base } => Some(base),
            _ => None,
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        // The daemon lets go of its services: none may outlive it.
        let base = match &self.mechanism {
            Mechanism::Cgroup { base } => Some(base.as_path()),
            Mechanism::Subreaper { .. } => None,
            Mechanism::Unsupported => return,
        };
        kill_everything(&self.tag, base);
    }
}

impl Scope {
    /// The running (not zombie) processes of the scope: the cgroup leaf's `cgroup.procs`, or
    /// (without a cgroup) every process holding the marker and every descendant of those.
    pub fn members(&self) -> Vec<u32> {
        let mut out: Vec<u32> = match &self.cgroup {
            Some(leaf) => read_procs(leaf),
            None => {
                let roots: Vec<u32> = marked_exactly(&self.marker);
                descendants_of(&roots)
            }
        };
        out.retain(|&pid| pid != std::process::id() && crate::is_alive(pid));
        out.sort_unstable();
        out.dedup();
        out
    }

    /// Sends `signal` to every member.
    pub fn signal(&self, signal: Signal) {
        #[cfg(unix)]
        for pid in self.members() {
            let _ = crate::group::signal_process(pid, signal);
        }
        #[cfg(not(unix))]
        let _ = signal;
    }

    /// SIGKILLs every member: `cgroup.kill` for a leaf (atomic, forks included), else each
    /// member in turn.
    pub fn kill(&self) {
        if let Some(leaf) = &self.cgroup
            && std::fs::write(leaf.join("cgroup.kill"), "1").is_ok()
        {
            return;
        }
        self.signal(Signal::Kill);
    }

    /// Creates the cgroup leaf (if any) and ends whatever still runs in it.
    pub(crate) fn prepare(&self) -> std::io::Result<()> {
        let Some(leaf) = &self.cgroup else {
            return Ok(());
        };
        let base = leaf.parent().unwrap_or(leaf);
        let mut tries = 0;
        loop {
            tries += 1;
            match std::fs::create_dir(base) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(e),
            }
            match std::fs::create_dir(leaf) {
                Ok(()) => return Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    if !read_procs(leaf).is_empty() {
                        let _ = std::fs::write(leaf.join("cgroup.kill"), "1");
                        wait_empty(self, Instant::now() + AFTER_KILL);
                    }
                    return Ok(());
                }
                // Another service's stop removed the (then empty) base meanwhile: again.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound && tries < 5 => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Removes the cgroup leaf once it is empty, and the base with the last leaf (best effort).
    pub fn remove(&self) {
        if let Some(leaf) = &self.cgroup
            && std::fs::remove_dir(leaf).is_ok()
            && let Some(base) = leaf.parent()
        {
            let _ = std::fs::remove_dir(base);
        }
    }
}

/// Ends a scope: SIGTERM, up to `grace` to go, then SIGKILL; then removes its leaf.
async fn end(scope: &Scope, grace: Duration) {
    scope.signal(Signal::Term);
    let deadline = Instant::now() + grace;
    while !scope.members().is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let deadline = Instant::now() + AFTER_KILL;
    while !scope.members().is_empty() && Instant::now() < deadline {
        scope.kill();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    scope.remove();
}

/// Blocks until the scope is empty or `deadline` passes.
fn wait_empty(scope: &Scope, deadline: Instant) {
    while !scope.members().is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// SIGKILLs every process of `base` (all leaves at once) and every process marked `tag/…`, then
/// removes the leaves and the base. Blocks for at most about two seconds.
pub(crate) fn kill_everything(tag: &str, base: Option<&Path>) {
    let deadline = Instant::now() + AFTER_KILL;
    if let Some(base) = base {
        // `cgroup.kill` of the base reaches every descendant cgroup.
        let _ = std::fs::write(base.join("cgroup.kill"), "1");
        for leaf in leaves(base) {
            let scope = Scope {
                marker: String::new(),
                cgroup: Some(leaf),
            };
            wait_empty(&scope, deadline);
            scope.remove();
        }
        let _ = std::fs::remove_dir(base);
    }
    let prefix = format!("{tag}/");
    loop {
        let left: Vec<u32> = descendants_of(
            &marked(&prefix)
                .into_iter()
                .map(|(pid, _)| pid)
                .collect::<Vec<_>>(),
        );
        let left: Vec<u32> = left
            .into_iter()
            .filter(|&p| p != std::process::id() && crate::is_alive(p))
            .collect();
        if left.is_empty() || Instant::now() >= deadline {
            break;
        }
        #[cfg(unix)]
        for pid in left {
            let _ = crate::group::signal_process(pid, Signal::Kill);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Decides the mechanism.
fn choose(tag: &str) -> Mechanism {
    #[cfg(target_os = "linux")]
    {
        let why = match std::env::var(NO_CGROUP_VAR) {
            Ok(v) if !v.is_empty() && v != "0" => Err(format!("{NO_CGROUP_VAR}={v} is set")),
            _ => place(tag),
        };
        match why {
            Ok(base) => Mechanism::Cgroup { base },
            Err(why) => match rustix::process::set_child_subreaper(Some(rustix::process::getpid()))
            {
                Ok(()) => Mechanism::Subreaper { why },
                Err(e) => Mechanism::Subreaper {
                    why: format!("{why}; PR_SET_CHILD_SUBREAPER failed too: {e}"),
                },
            },
        }
    }
    #[cfg(not(target_os = "linux"))]
    {
        // macOS/BSD: no cgroups; `PROC_REAP_ACQUIRE` (FreeBSD) or a job object (Windows) would
        // go here: not built, untested.
        let _ = tag;
        Mechanism::Unsupported
    }
}

/// Finds (and creates) the cgroup base; the error says why cgroups cannot be used.
#[cfg(target_os = "linux")]
fn place(tag: &str) -> Result<PathBuf, String> {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo")
        .map_err(|e| format!("cannot read /proc/self/mountinfo: {e}"))?;
    let (mount, root) = cgroup2_mount(&mountinfo)
        .ok_or_else(|| "no cgroup2 file system is mounted (see /proc/self/mountinfo)".to_owned())?;
    let cgroups = std::fs::read_to_string("/proc/self/cgroup")
        .map_err(|e| format!("cannot read /proc/self/cgroup: {e}"))?;
    let own = cgroups
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .ok_or_else(|| "/proc/self/cgroup has no cgroup2 (0::) line".to_owned())?;
    let relative = if root == "/" {
        Some(own)
    } else {
        own.strip_prefix(root.as_str())
            .filter(|rest| rest.is_empty() || rest.starts_with('/'))
    }
    .ok_or_else(|| {
        format!(
            "the daemon's cgroup {own} is outside the cgroup2 mount at {} (root {root})",
            mount.display()
        )
    })?;
    let own_dir = mount.join(relative.trim_start_matches('/'));
    let base = own_dir.join(tag);
    match std::fs::create_dir(&base) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => {
            return Err(format!(
                "cannot create cgroup {}: {e} (run as root, or give the daemon a delegated \
                 cgroup, e.g. systemd's Delegate=yes)",
                base.display()
            ));
        }
    }
    if !base.join("cgroup.kill").exists() {
        let _ = std::fs::remove_dir(&base);
        return Err(format!(
            "{} has no cgroup.kill (Linux 5.14 or later is needed)",
            base.display()
        ));
    }
    let procs = own_dir.join("cgroup.procs");
    let writable = rustix::fs::access(&procs, rustix::fs::Access::WRITE_OK);
    // Created on demand (the first spawn) and removed with the last leaf, so that a daemon
    // leaves no empty cgroup behind; an earlier daemon's leaves keep it until it is reaped.
    let _ = std::fs::remove_dir(&base);
    if let Err(e) = writable {
        return Err(format!(
            "cannot move processes out of the daemon's cgroup: {} is not writable ({e})",
            procs.display()
        ));
    }
    Ok(base)
}

/// The first cgroup2 mount in a `/proc/self/mountinfo` text: (mount point, root within the
/// hierarchy).
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
fn cgroup2_mount(mountinfo: &str) -> Option<(PathBuf, String)> {
    mountinfo.lines().find_map(|line| {
        let (left, right) = line.split_once(" - ")?;
        if right.split_whitespace().next()? != "cgroup2" {
            return None;
        }
        let fields: Vec<&str> = left.split_whitespace().collect();
        let root = unescape(fields.get(3)?);
        let point = unescape(fields.get(4)?);
        Some((PathBuf::from(point), root))
    })
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && let Some(digits) = bytes.get(i + 1..i + 4)
            && digits.iter().all(|d| (b'0'..=b'7').contains(d))
        {
            let value = digits.iter().fold(0u32, |v, d| v * 8 + u32::from(d - b'0'));
            out.push(u8::try_from(value).unwrap_or(b'?'));
            i += 4;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Whether `base` (read from the state file) is safe to empty: a cgroup2 folder named `tag`.
fn is_our_base(base: &Path, tag: &str) -> bool {
    if !base.is_absolute() || base.file_name().and_then(|n| n.to_str()) != Some(tag) {
        return false;
    }
    #[cfg(target_os = "linux")]
    {
        const CGROUP2_SUPER_MAGIC: u64 = 0x6367_7270;
        rustix::fs::statfs(base).is_ok_and(|s| s.f_type as u64 == CGROUP2_SUPER_MAGIC)
    }
    #[cfg(not(target_os = "linux"))]
    false
}

/// The child cgroups of `base`.
fn leaves(base: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(base) else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.path())
        .collect()
}

fn read_procs(leaf: &Path) -> Vec<u32> {
    std::fs::read_to_string(leaf.join("cgroup.procs"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

/// Every process whose marker starts with `prefix`: (pid, marker).
fn marked(prefix: &str) -> Vec<(u32, String)> {
    #[cfg(target_os = "linux")]
    {
        let me = std::process::id();
        crate::procfs::pids()
            .into_iter()
            .filter(|&pid| pid != me)
            .filter_map(|pid| {
                let marker = crate::procfs::env_var(pid, MARKER_VAR)?;
                marker.starts_with(prefix).then_some((pid, marker))
            })
            .collect()
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = prefix;
        Vec::new()
    }
}

fn marked_exactly(marker: &str) -> Vec<u32> {
    marked(marker)
        .into_iter()
        .filter(|(_, m)| m == marker)
        .map(|(pid, _)| pid)
        .collect()
}

/// `roots` and all their descendants (by parent pid).
fn descendants_of(roots: &[u32]) -> Vec<u32> {
    #[cfg(target_os = "linux")]
    {
        if roots.is_empty() {
            return Vec::new();
        }
        let parents: Vec<(u32, u32)> = crate::procfs::pids()
            .into_iter()
            .filter_map(|pid| Some((pid, crate::procfs::stat(pid)?.ppid)))
            .collect();
        let mut found: BTreeSet<u32> = roots.iter().copied().collect();
        loop {
            let before = found.len();
            for (pid, ppid) in &parents {
                if found.contains(ppid) {
                    found.insert(*pid);
                }
            }
            if found.len() == before {
                break;
            }
        }
        found.into_iter().collect()
    }
    #[cfg(not(target_os = "linux"))]
    {
        roots.to_vec()
    }
}

fn list(pids: &[u32]) -> String {
    let shown: Vec<String> = pids.iter().map(u32::to_string).collect();
    format!("pid {}", shown.join(", "))
}

fn read_state(records: &Path) -> Vec<PathBuf> {
    std::fs::read_to_string(records.join(STATE_FILE))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.strip_prefix("base="))
        .map(PathBuf::from)
        .collect()
}

fn write_state(records: &Path, bases: &[PathBuf]) {
    let text: String = bases
        .iter()
        .map(|b| format!("base={}\n", b.display()))
        .collect();
    let _ = std::fs::create_dir_all(records);
    let temporary = records.join(format!(".{STATE_FILE}.{}.tmp", std::process::id()));
    if std::fs::write(&temporary, text).is_ok() {
        let _ = std::fs::rename(&temporary, records.join(STATE_FILE));
    }
}

/// FNV-1a, 64 bits: a stable name for a home (not a security boundary: the base is also
/// checked to be a cgroup of that name).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| {
        (hash ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// The subreaper's reaper: orphans re-parented to the daemon become its children, and nobody
/// else waits for them. Reaps only children the daemon did not fork itself (tokio and std wait
/// for those): ones that left the daemon's session or group, or that carry a marker and are not
/// a service leader. Runs until the containment is dropped.
#[cfg(target_os = "linux")]
fn start_reaper(inner: std::sync::Weak<Inner>) {
    let _ = std::thread::Builder::new()
        .name("kojibox-reaper".to_owned())
        .spawn(move || {
            let me = std::process::id();
            let (my_sid, my_pgid) = crate::procfs::stat(me)
                .map(|s| (s.session, s.pgid))
                .unwrap_or((0, 0));
            let mut adopted: BTreeSet<u32> = BTreeSet::new();
            loop {
                std::thread::sleep(Duration::from_millis(200));
                let Some(inner) = inner.upgrade() else { return };
                let direct = inner.direct.lock().map(|d| d.clone()).unwrap_or_default();
                for pid in crate::procfs::pids() {
                    let Some(stat) = crate::procfs::stat(pid) else {
                        continue;
                    };
                    if stat.ppid != me || direct.contains(&(pid, stat.start_time)) {
                        continue;
                    }
                    let left = stat.session != my_sid || (stat.pgid != pid && stat.pgid != my_pgid);
                    if stat.is_dead() {
                        if left || adopted.remove(&pid) {
                            reap(pid);
                        }
                    } else if left || crate::procfs::env_var(pid, MARKER_VAR).is_some() {
                        adopted.insert(pid);
                    }
                }
                adopted.retain(|&pid| std::path::Path::new(&format!("/proc/{pid}")).exists());
            }
        });
}

#[cfg(target_os = "linux")]
fn reap(pid: u32) {
    if let Some(pid) = crate::group::to_pid(pid) {
        let _ = rustix::process::waitpid(Some(pid), rustix::process::WaitOptions::NOHANG);
    }
}

/// Ends a service: its process group `pgid` and everything of its [`Scope`] (the cgroup leaf, or
/// the processes holding its marker and their descendants), so that a process that double-forked
/// and called `setsid` ends too. SIGTERM (and SIGCONT) to the group and to each member, up to
/// `grace` for all of them to go, then SIGKILL to the group and `cgroup.kill` (or SIGKILL to each
/// member, repeated until none is left or the kernel had two seconds), and the emptied leaf is
/// removed. A `pgid` of 0 ends the scope only. Without a scope this is [`crate::terminate_group`].
pub async fn terminate_scope(
    pgid: u32,
    scope: Option<&Scope>,
    grace: Duration,
) -> crate::group::Termination {
    let Some(scope) = scope else {
        return crate::group::terminate_group(pgid, grace).await;
    };
    let started = Instant::now();
    #[cfg(unix)]
    {
        let group = pgid > 1;
        let running =
            || (group && crate::group::group_running(pgid)) || !scope.members().is_empty();
        if group {
            let _ = crate::group::signal_group(pgid, Signal::Term);
            let _ = crate::group::signal_group_raw(pgid, rustix::process::Signal::CONT);
        }
        scope.signal(Signal::Term);
        let mut pause = crate::group::POLL_MIN;
        let deadline = started + grace;
        while running() && Instant::now() < deadline {
            tokio::time::sleep(pause.min(deadline.saturating_duration_since(Instant::now()))).await;
            pause = (pause * 2).min(crate::group::POLL_MAX);
        }
        let needed_kill = running();
        if needed_kill {
            let deadline = Instant::now() + crate::group::AFTER_KILL;
            loop {
                if group {
                    let _ = crate::group::signal_group(pgid, Signal::Kill);
                }
                scope.kill();
                tokio::time::sleep(crate::group::POLL_MIN * 5).await;
                if !running() || Instant::now() >= deadline {
                    break;
                }
            }
        }
        let mut remaining = if group && crate::group::group_running(pgid) {
            crate::group::running_members(pgid)
        } else {
            Vec::new()
        };
        remaining.extend(scope.members());
        remaining.sort_unstable();
        remaining.dedup();
        if remaining.is_empty() {
            scope.remove();
        }
        crate::group::Termination {
            needed_kill,
            remaining,
            elapsed: started.elapsed(),
        }
    }
    #[cfg(not(unix))]
    {
        let _ = (scope, grace);
        crate::group::Termination {
            needed_kill: false,
            remaining: vec![pgid],
            elapsed: started.elapsed(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cgroup2_mount_is_found_in_mountinfo() {
        let hybrid = "25 30 0:23 / /sys/fs/cgroup ro,nosuid - tmpfs tmpfs ro,mode=755\n\
                      26 25 0:24 / /sys/fs/cgroup/unified rw,nosuid - cgroup2 cgroup2 rw\n\
                      27 25 0:25 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu\n";
        assert_eq!(
            cgroup2_mount(hybrid),
            Some((PathBuf::from("/sys/fs/cgroup/unified"), "/".to_owned()))
        );
        let nested = "40 1 0:30 /user.slice /mnt/my\\040cg rw shared:1 - cgroup2 none rw\n";
        assert_eq!(
            cgroup2_mount(nested),
            Some((PathBuf::from("/mnt/my cg"), "/user.slice".to_owned()))
        );
        assert_eq!(
            cgroup2_mount("26 25 0:24 / /x rw - cgroup cgroup rw\n"),
            None
        );
    }

    #[test]
    fn a_recorded_base_must_be_a_cgroup_named_after_the_home() {
        assert!(!is_our_base(Path::new("/tmp/kojibox-1"), "kojibox-1"));
        assert!(!is_our_base(Path::new("/sys/fs/cgroup"), "kojibox-1"));
        assert!(!is_our_base(Path::new("relative/kojibox-1"), "kojibox-1"));
    }

    #[test]
    fn homes_get_distinct_stable_tags() {
        assert_eq!(fnv1a(b"/srv/a"), fnv1a(b"/srv/a"));
        assert_ne!(fnv1a(b"/srv/a"), fnv1a(b"/srv/b"));
    }
}
