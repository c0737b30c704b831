//! What a few processes use: CPU time, resident memory and listening TCP ports, for
//! `metrics.snapshot`.
//!
//! # Theory of operation
//!
//! Only the processes asked about are read, never the whole of `/proc`, so the cost follows the
//! services' size, not the machine's:
//!
//! - **Trees** ([`process_tree`]). A service's processes are its main pid and that pid's
//!   descendants, found by reading `/proc/<pid>/task/<tid>/children` of every thread, recursively
//!   (a kernel built without `CONFIG_PROC_CHILDREN` has no such file: then only the main process
//!   counts). A process that was re-parented away from the tree (a double fork) is not found.
//! - **CPU** ([`Meter`]). `utime + stime` of `/proc/<pid>/stat` (fields 14 and 15, read after the
//!   *last* `)`, since the command name may hold spaces and parentheses), in clock ticks. The meter
//!   keeps each process's ticks from its previous sample, keyed by pid *and* start time (a reused
//!   pid is another process); a process first seen now counts whole if it started after the
//!   previous sample, else from now on. Per tree: the ticks spent between the two samples, over
//!   the ticks the whole machine had (`ticks per second × seconds × CPUs`), in percent: a busy loop
//!   on a 4-CPU machine reads 25. The first sample has nothing to compare with and reads 0; two
//!   samples should be at least [`MIN_INTERVAL`] apart (ticks are 10 ms coarse).
//! - **Memory**. Resident pages of `/proc/<pid>/statm` × the page size, summed over the tree; a
//!   page shared by forked workers counts in each of them (as `top`'s RES column does).
//! - **Ports** ([`listening_ports`]). The `socket:[inode]` links in `/proc/<pid>/fd` of the
//!   processes, then one pass over `/proc/net/tcp` and `/proc/net/tcp6` keeping the LISTEN rows
//!   with one of those inodes. Another user's fds are readable only by root, so a daemon that is
//!   not root sees only its own user's ports (its services run as that user).
//!
//! # Platforms
//!
//! Linux only. Elsewhere (untested) every figure reads 0 and every list is empty.

use std::time::{Duration, Instant};

/// The shortest sensible gap between two samples of a [`Meter`].
pub const MIN_INTERVAL: Duration = Duration::from_millis(200);

/// A process to measure, alone or with its descendants.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Target {
    /// Its pid.
    pub pid: u32,
    /// Count its descendants too.
    pub descendants: bool,
    /// Find the TCP ports it (and its descendants, when counted) listens on.
    pub ports: bool,
}

impl Target {
    /// A service: `pid` and its descendants, with their ports.
    pub fn tree(pid: u32) -> Target {
        Target {
            pid,
            descendants: true,
            ports: true,
        }
    }

    /// `pid` alone, without ports (the daemon, whose children are the services).
    pub fn process(pid: u32) -> Target {
        Target {
            pid,
            descendants: false,
            ports: false,
        }
    }
}

/// What one [`Target`] used, from [`Meter::sample`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Usage {
    /// The processes measured, the target's pid first (empty when it is gone).
    pub pids: Vec<u32>,
    /// CPU since the previous sample, in percent of the whole machine (all CPUs): 0 to 100.
    pub cpu_percent: f64,
    /// Resident memory, in bytes.
    pub rss_bytes: u64,
    /// TCP ports in LISTEN state, sorted, without duplicates (empty unless asked for).
    pub ports: Vec<u16>,
}

/// Measures CPU use between successive samples (see the module docs).
#[derive(Debug)]
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
pub struct Meter {
    ticks_per_second: u64,
    page_size: u64,
    cpus: u32,
    previous: Option<Previous>,
}

/// The previous sample: when, and each process's CPU ticks by (pid, start time).
#[derive(Debug)]
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
struct Previous {
    at: Instant,
    /// Clock ticks since boot at that sample.
    since_boot: u64,
    ticks: std::collections::HashMap<(u32, u64), u64>,
}

impl Default for Meter {
    fn default() -> Meter {
        Meter::new()
    }
}

impl Meter {
    /// A meter that has not sampled yet.
    pub fn new() -> Meter {
        #[cfg(target_os = "linux")]
        let (ticks_per_second, page_size) = (
            rustix::param::clock_ticks_per_second(),
            rustix::param::page_size() as u64,
        );
        #[cfg(not(target_os = "linux"))]
        let (ticks_per_second, page_size) = (100, 4096);
        Meter {
            ticks_per_second: ticks_per_second.max(1),
            page_size,
            cpus: cpu_count(),
            previous: None,
        }
    }

    /// The number of CPUs the percentages are shared between.
    pub fn cpus(&self) -> u32 {
        self.cpus
    }

    /// Samples every target now: one [`Usage`] per target, in order. CPU figures compare with the
    /// previous call (0 at the first).
    pub fn sample(&mut self, targets: &[Target]) -> Vec<Usage> {
        #[cfg(target_os = "linux")]
        {
            self.sample_linux(targets)
        }
        #[cfg(not(target_os = "linux"))]
        {
            targets.iter().map(|_| Usage::default()).collect()
        }
    }

    #[cfg(target_os = "linux")]
    fn sample_linux(&mut self, targets: &[Target]) -> Vec<Usage> {
        use std::collections::{HashMap, HashSet};
        let at = Instant::now();
        let since_boot = linux::since_boot(self.ticks_per_second);
        let mut ticks = HashMap::new();
        let mut usages = Vec::with_capacity(targets.len());
        let mut inodes: Vec<Option<HashSet<u64>>> = Vec::with_capacity(targets.len());
        for target in targets {
            let pids = if target.descendants {
                process_tree(target.pid)
            } else {
                linux::exists(target.pid)
                    .then_some(vec![target.pid])
                    .unwrap_or_default()
            };
            let mut spent = 0u64;
            let mut rss_pages = 0u64;
            for &pid in &pids {
                let Some(times) = linux::times(pid) else {
                    continue;
                };
                let key = (pid, times.start_time);
                spent += match &self.previous {
                    None => 0,
                    Some(previous) => match previous.ticks.get(&key) {
                        Some(&before) => times.ticks.saturating_sub(before),
                        None if times.start_time >= previous.since_boot => times.ticks,
                        None => 0,
                    },
                };
                ticks.insert(key, times.ticks);
                rss_pages += linux::resident_pages(pid).unwrap_or(0);
            }
            let cpu_percent = match &self.previous {
                Some(previous) => {
                    let seconds = at.duration_since(previous.at).as_secs_f64();
                    let available = self.ticks_per_second as f64 * seconds * f64::from(self.cpus);
                    if available > 0.0 {
                        (spent as f64 * 100.0 / available).min(100.0)
                    } else {
                        0.0
                    }
                }
                None => 0.0,
            };
            inodes.push(target.ports.then(|| {
                pids.iter()
                    .flat_map(|&pid| crate::ports::socket_inodes(pid))
                    .collect()
            }));
            usages.push(Usage {
                pids,
                cpu_percent,
                rss_bytes: rss_pages * self.page_size,
                ports: Vec::new(),
            });
        }
        if inodes.iter().any(Option::is_some) {
            let sockets = crate::ports::listening_sockets();
            for (usage, inodes) in usages.iter_mut().zip(&inodes) {
                if let Some(inodes) = inodes {
                    usage.ports = ports_of(&sockets, inodes);
                }
            }
        }
        self.previous = Some(Previous {
            at,
            since_boot,
            ticks,
        });
        usages
    }
}

/// The ports of the `sockets` (port, inode) whose inode is among `inodes`, sorted, once each.
#[cfg(target_os = "linux")]
fn ports_of(sockets: &[(u16, u64)], inodes: &std::collections::HashSet<u64>) -> Vec<u16> {
    let mut ports: Vec<u16> = sockets
        .iter()
        .filter(|(_, inode)| inodes.contains(inode))
        .map(|&(port, _)| port)
        .collect();
    ports.sort_unstable();
    ports.dedup();
    ports
}

/// `pid` and its living descendants, `pid` first, parents before their children (empty when
/// `pid` does not exist). Linux only; elsewhere empty.
pub fn process_tree(pid: u32) -> Vec<u32> {
    #[cfg(target_os = "linux")]
    {
        linux::tree(pid)
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = pid;
        Vec::new()
    }
}

/// The TCP ports the processes `pids` listen on (any address, IPv4 or IPv6), sorted, once each.
/// Linux only; elsewhere empty.
pub fn listening_ports(pids: &[u32]) -> Vec<u16> {
    #[cfg(target_os = "linux")]
    {
        let inodes = pids
            .iter()
            .flat_map(|&pid| crate::ports::socket_inodes(pid))
            .collect();
        ports_of(&crate::ports::listening_sockets(), &inodes)
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = pids;
        Vec::new()
    }
}

/// The number of CPUs online (the `cpuN` lines of `/proc/stat`), at least 1; elsewhere what
/// [`std::thread::available_parallelism`] says.
pub fn cpu_count() -> u32 {
    #[cfg(target_os = "linux")]
    if let Some(n) = linux::cpus_online() {
        return n;
    }
    std::thread::available_parallelism().map_or(1, |n| u32::try_from(n.get()).unwrap_or(u32::MAX))
}

#[cfg(target_os = "linux")]
mod linux {
    //! The `/proc` files read, one small parser each.

    use std::collections::HashSet;

    /// Stop walking a tree after this many processes (a fork bomb should not stall the sampler).
    const MAX_TREE: usize = 4096;

    /// CPU time and start time of one process.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub(super) struct Times {
        /// `utime + stime` (fields 14 and 15), in clock ticks.
        pub(super) ticks: u64,
        /// Field 22: clock ticks after boot at which the process started.
        pub(super) start_time: u64,
    }

    /// Parses a `/proc/<pid>/stat` line (fields counted from 1, `comm` is field 2).
    pub(super) fn parse_times(text: &str) -> Option<Times> {
        let after_comm = &text[text.rfind(')')? + 1..];
        // Field N is at index N - 3 from here.
        let fields: Vec<&str> = after_comm.split_ascii_whitespace().collect();
        let field = |n: usize| fields.get(n - 3)?.parse::<u64>().ok();
        Some(Times {
            ticks: field(14)?.checked_add(field(15)?)?,
            start_time: field(22)?,
        })
    }

    pub(super) fn times(pid: u32) -> Option<Times> {
        parse_times(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
    }

    /// Field 2 of `/proc/<pid>/statm`: resident pages.
    pub(super) fn parse_resident(text: &str) -> Option<u64> {
        text.split_ascii_whitespace().nth(1)?.parse().ok()
    }

    pub(super) fn resident_pages(pid: u32) -> Option<u64> {
        parse_resident(&std::fs::read_to_string(format!("/proc/{pid}/statm")).ok()?)
    }

    pub(super) fn exists(pid: u32) -> bool {
        pid != 0 && std::fs::metadata(format!("/proc/{pid}/stat")).is_ok()
    }

    /// The pids listed in a `children` file.
    pub(super) fn parse_children(text: &str) -> impl Iterator<Item = u32> + '_ {
        text.split_ascii_whitespace().filter_map(|p| p.parse().ok())
    }

    /// The children of every thread of `pid`.
    fn children(pid: u32) -> Vec<u32> {
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for task in tasks.flatten() {
            let Ok(text) = std::fs::read_to_string(task.path().join("children")) else {
                continue;
            };
            out.extend(parse_children(&text));
        }
        out
    }

    /// `pid` and its descendants, breadth first.
    pub(super) fn tree(pid: u32) -> Vec<u32> {
        if !exists(pid) {
            return Vec::new();
        }
        let mut seen = HashSet::from([pid]);
        let mut out = vec![pid];
        let mut next = 0;
        while next < out.len() && out.len() < MAX_TREE {
            for child in children(out[next]) {
                if out.len() < MAX_TREE && seen.insert(child) {
                    out.push(child);
                }
            }
            next += 1;
        }
        out
    }

    /// Clock ticks since boot, from `/proc/uptime` (0 when unreadable, so every new process
    /// counts as started after it).
    pub(super) fn since_boot(ticks_per_second: u64) -> u64 {
        std::fs::read_to_string("/proc/uptime")
            .ok()
            .and_then(|text| parse_uptime(&text))
            .map_or(0, |seconds| (seconds * ticks_per_second as f64) as u64)
    }

    /// The first number of `/proc/uptime` (seconds since boot).
    pub(super) fn parse_uptime(text: &str) -> Option<f64> {
        text.split_ascii_whitespace()
            .next()?
            .parse()
            .ok()
            .filter(|s: &f64| s.is_finite() && *s >= 0.0)
    }

    /// How many `cpuN` lines `/proc/stat` has.
    pub(super) fn cpus_online() -> Option<u32> {
        let text = std::fs::read_to_string("/proc/stat").ok()?;
        count_cpus(&text)
    }

    pub(super) fn count_cpus(text: &str) -> Option<u32> {
        let n = text
            .lines()
            .filter(|l| {
                l.strip_prefix("cpu")
                    .is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_digit()))
            })
            .count();
        u32::try_from(n).ok().filter(|&n| n > 0)
    }
}

#[cfg(test)]
#[cfg(target_os = "linux")]
mod tests {
    use super::linux::*;
    use super::*;
    use std::process::{Child, Command, Stdio};

    /// A child in a process group of its own: the whole group is killed, and the child reaped,
    /// when dropped (so no grandchild outlives the test, holding a core and inherited fds).
    struct Killed(Child);

    impl Drop for Killed {
        fn drop(&mut self) {
            let _ = crate::signal_group(self.0.id(), crate::Signal::Kill);
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    fn sh(script: &str) -> Killed {
        use std::os::unix::process::CommandExt;
        Killed(
            Command::new("sh")
                .args(["-c", script])
                .stdin(Stdio::null())
                .process_group(0)
                .spawn()
                .unwrap(),
        )
    }

    fn stat_line(comm: &str, utime: u64, stime: u64, start: u64) -> String {
        format!(
            "4242 ({comm}) R 1 4240 4240 0 -1 4194560 100 0 0 0 {utime} {stime} 7 8 20 0 1 0 \
             {start} 2000000 100 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0"
        )
    }

    #[test]
    fn usage_stat_fields_after_the_last_paren() {
        for comm in [
            "sh",
            "a (b) c",
            "x) R 1 2 3 4 5 6 7 8 9 10 11 12",
            ") ) )",
            "(",
        ] {
            let times = parse_times(&stat_line(comm, 150, 25, 987_654)).unwrap();
            assert_eq!(
                times,
                Times {
                    ticks: 175,
                    start_time: 987_654
                },
                "comm {comm:?}"
            );
        }
        assert_eq!(parse_times(""), None);
        assert_eq!(parse_times("12 (x) R 1 2"), None);
        assert_eq!(
            parse_times(&stat_line("x", 1, 1, 1).replace(" 1 1 7 8", " -1 1 7 8")),
            None
        );
    }

    #[test]
    fn usage_small_files() {
        assert_eq!(parse_resident("1234 567 89 1 0 100 0\n"), Some(567));
        assert_eq!(parse_resident("1234"), None);
        assert_eq!(parse_children("12 345 \n").collect::<Vec<_>>(), [12, 345]);
        assert_eq!(parse_children("").count(), 0);
        assert_eq!(parse_uptime("12345.67 54321.00\n"), Some(12345.67));
        assert_eq!(parse_uptime("nan 1"), None);
        let stat = "cpu  1 2 3\ncpu0 1 2 3\ncpu1 4 5 6\nintr 7\ncpufreq 1\n";
        assert_eq!(count_cpus(stat), Some(2));
        assert_eq!(count_cpus("intr 7\n"), None);
        assert!(cpu_count() >= 1);
    }

    #[test]
    fn usage_of_a_busy_child_and_an_idle_one() {
        let busy = sh("while :; do :; done");
        let idle = sh("sleep 30");
        let targets = [Target::tree(busy.0.id()), Target::tree(idle.0.id())];
        let mut meter = Meter::new();
        let first = meter.sample(&targets);
        assert_eq!(first[0].cpu_percent, 0.0, "nothing to compare with yet");
        assert_eq!(first[0].pids, [busy.0.id()]);
        std::thread::sleep(Duration::from_millis(500));
        let second = meter.sample(&targets);
        // One core of `cpus`: 100 / cpus when the child got the core all the time.
        let core = 100.0 / f64::from(meter.cpus());
        assert!(
            second[0].cpu_percent > core * 0.5,
            "a busy loop uses most of a core: {} (one core = {core})",
            second[0].cpu_percent
        );
        assert!(second[0].cpu_percent <= 100.0);
        assert!(
            second[1].cpu_percent < core * 0.2,
            "sleep is idle: {}",
            second[1].cpu_percent
        );
        assert!(second[0].rss_bytes > 0 && second[1].rss_bytes > 0);
        assert!(second[0].ports.is_empty());
    }

    #[test]
    fn usage_counts_descendants() {
        // A shell that starts a busy grandchild in a subshell and waits.
        let parent = sh("sh -c 'while :; do :; done' & sleep 30; wait");
        let pid = parent.0.id();
        let started = Instant::now();
        let tree = loop {
            let tree = process_tree(pid);
            if tree.len() >= 3 || started.elapsed() > Duration::from_secs(10) {
                break tree;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        assert_eq!(tree[0], pid);
        assert!(tree.len() >= 3, "sh, its busy child and sleep: {tree:?}");
        let mut meter = Meter::new();
        let target = [Target::tree(pid)];
        let alone = [Target::process(pid)];
        meter.sample(&target);
        let mut only_parent = Meter::new();
        only_parent.sample(&alone);
        std::thread::sleep(Duration::from_millis(500));
        let with_children = meter.sample(&target);
        let parent_alone = only_parent.sample(&alone);
        let core = 100.0 / f64::from(meter.cpus());
        assert!(
            with_children[0].cpu_percent > core * 0.5,
            "the busy grandchild counts: {with_children:?}"
        );
        assert!(
            parent_alone[0].cpu_percent < core * 0.2,
            "the waiting shell alone is idle: {parent_alone:?}"
        );
        assert_eq!(parent_alone[0].pids, [pid]);
        assert!(with_children[0].rss_bytes > parent_alone[0].rss_bytes);
    }

    #[test]
    fn usage_new_process_between_samples_counts_whole() {
        let mut meter = Meter::new();
        let me = std::process::id();
        meter.sample(&[Target::process(me)]);
        let busy = sh("while :; do :; done");
        std::thread::sleep(Duration::from_millis(400));
        let usage = meter.sample(&[Target::tree(busy.0.id())]);
        let core = 100.0 / f64::from(meter.cpus());
        assert!(
            usage[0].cpu_percent > core * 0.4,
            "started after the first sample, so all its time is new: {usage:?}"
        );
    }

    #[test]
    fn usage_finds_listening_ports_of_the_given_pids_only() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let v6 = std::net::TcpListener::bind("[::1]:0").ok();
        let me = std::process::id();
        let ports = listening_ports(&[me]);
        assert!(ports.contains(&port), "{port} in {ports:?}");
        if let Some(v6) = &v6 {
            let port6 = v6.local_addr().unwrap().port();
            assert!(ports.contains(&port6), "IPv6 {port6} in {ports:?}");
        }
        assert!(ports.windows(2).all(|w| w[0] < w[1]), "sorted: {ports:?}");
        // A connected (not listening) socket is no port in use by us.
        let client = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        let (_accepted, _) = listener.accept().unwrap();
        let outgoing = client.local_addr().unwrap().port();
        let again = listening_ports(&[me]);
        assert!(again.contains(&port), "{again:?}");
        assert!(
            !again.contains(&outgoing),
            "a connection is no listener: {again:?}"
        );
        // Another process's ports are not ours.
        let idle = sh("sleep 30");
        assert!(!listening_ports(&[idle.0.id()]).contains(&port));
        // Through the meter, for a tree that holds the socket.
        let mut meter = Meter::new();
        let usage = meter.sample(&[Target::tree(me), Target::process(me)]);
        assert!(usage[0].ports.contains(&port), "{usage:?}");
        assert!(usage[1].ports.is_empty(), "not asked for");
        drop(listener);
        assert!(!listening_ports(&[me]).contains(&port), "closed");
    }

    #[test]
    fn usage_of_a_gone_process_is_empty() {
        let mut child = Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        assert_eq!(process_tree(pid), Vec::<u32>::new());
        let mut meter = Meter::new();
        let usage = meter.sample(&[Target::tree(pid), Target::process(pid)]);
        assert_eq!(usage, [Usage::default(), Usage::default()]);
    }
}
