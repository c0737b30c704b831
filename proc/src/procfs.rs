//! Reading `/proc` (Linux only): one process's `stat` line, the list of processes, the boot id.
//!
//! `/proc/<pid>/stat` is `pid (comm) state ppid pgrp ... starttime ...`. `comm` is whatever the
//! program named itself and may contain spaces and parentheses, so the fixed fields are read
//! after the *last* `)`.

use std::fs;

/// The few fields of `/proc/<pid>/stat` this crate uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Stat {
    /// Field 3: `R`, `S`, `D`, `Z` (zombie), `X` (dead), …
    pub state: char,
    /// Field 4.
    pub ppid: u32,
    /// Field 5.
    pub pgid: u32,
    /// Field 6: the session id.
    pub session: u32,
    /// Field 22: clock ticks after boot at which the process started.
    pub start_time: u64,
}

impl Stat {
    /// A zombie or dead process holds no resources and runs no code: it only waits to be reaped.
    pub(crate) fn is_dead(&self) -> bool {
        matches!(self.state, 'Z' | 'X' | 'x')
    }
}

/// Parses the text of a `/proc/<pid>/stat` file.
pub(crate) fn parse_stat(text: &str) -> Option<Stat> {
    let after_comm = &text[text.rfind(')')? + 1..];
    // Fields from 3 (state) on; field N is at index N - 3.
    let fields: Vec<&str> = after_comm.split_ascii_whitespace().collect();
    let state = fields.first()?.chars().next()?;
    Some(Stat {
        state,
        ppid: fields.get(1)?.parse().ok()?,
        pgid: fields.get(2)?.parse().ok()?,
        session: fields.get(3)?.parse().ok()?,
        start_time: fields.get(22 - 3)?.parse().ok()?,
    })
}

/// Reads and parses `/proc/<pid>/stat`; `None` when there is no such process.
pub(crate) fn stat(pid: u32) -> Option<Stat> {
    if pid == 0 {
        return None;
    }
    parse_stat(&fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// Every process id listed in `/proc` (thread-group ids, not threads).
pub(crate) fn pids() -> Vec<u32> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect()
}

/// The living (not zombie) members of process group `pgid`, sorted.
pub(crate) fn group_members(pgid: u32) -> Vec<u32> {
    let mut members: Vec<u32> = pids()
        .into_iter()
        .filter(|&pid| stat(pid).is_some_and(|s| s.pgid == pgid && !s.is_dead()))
        .collect();
    members.sort_unstable();
    members
}

/// The value of variable `name` in the environment process `pid` was started with
/// (`/proc/<pid>/environ`: readable by root, and by the process's own user); `None` when unset
/// or unreadable.
pub(crate) fn env_var(pid: u32, name: &str) -> Option<String> {
    let environ = fs::read(format!("/proc/{pid}/environ")).ok()?;
    environ.split(|&b| b == 0).find_map(|pair| {
        let value = pair.strip_prefix(name.as_bytes())?.strip_prefix(b"=")?;
        Some(String::from_utf8_lossy(value).into_owned())
    })
}

/// This boot's random id; a record written under another boot id describes processes that
/// cannot exist any more.
pub(crate) fn boot_id() -> Option<String> {
    let id = fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
    let id = id.trim();
    (!id.is_empty()).then(|| id.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(comm: &str) -> String {
        format!(
            "4242 ({comm}) S 1 4240 4240 0 -1 4194560 100 0 0 0 0 0 0 0 20 0 1 0 987654 \
             2000000 100 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0"
        )
    }

    #[test]
    fn plain_comm() {
        let s = parse_stat(&line("sleep")).unwrap();
        assert_eq!(
            s,
            Stat {
                state: 'S',
                ppid: 1,
                pgid: 4240,
                session: 4240,
                start_time: 987654
            }
        );
    }

    #[test]
    fn comm_with_spaces_and_parens() {
        for comm in ["a (b) c", "x) S 1 2 3", ") ) )", "(", "a b"] {
            let s = parse_stat(&line(comm)).unwrap();
            assert_eq!(s.start_time, 987654, "comm {comm:?}");
            assert_eq!(s.pgid, 4240, "comm {comm:?}");
        }
    }

    #[test]
    fn garbage_is_none() {
        assert_eq!(parse_stat(""), None);
        assert_eq!(parse_stat("12 (x) S 1 2"), None);
        assert_eq!(parse_stat("no parens at all"), None);
        assert_eq!(parse_stat(&line("x").replace("987654", "-5")), None);
    }

    #[test]
    fn zombies_are_dead() {
        let s = parse_stat(&line("x").replacen(") S", ") Z", 1)).unwrap();
        assert!(s.is_dead());
    }
}
