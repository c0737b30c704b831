//! Services a previous daemon left behind (it crashed, or was killed with SIGKILL).
//!
//! While a service runs, the daemon keeps a small record `<dir>/<id>.pid` naming its pid, process
//! group and start time. At its next start the daemon calls [`reap_leftovers`]: a recorded process
//! still running *with the recorded start time* is the same process, and its group is ended; a pid
//! now held by a process with another start time was reused and is never touched. Records also
//! carry the boot id, so a record from before a reboot is recognised as stale without looking at
//! whatever process got that pid since.
//!
//! The record format is a few `key=value` lines (`id`, `pid`, `pgid`, `start_time`, `boot_id`);
//! unknown keys are ignored and a record that cannot be read is removed and reported.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::Termination;

/// What the daemon remembers about a running service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// The service id; also the file name (`<id>.pid`).
    pub id: String,
    /// The leader's pid.
    pub pid: u32,
    /// Its process group (the supervisor's children have pgid == pid). [`reap_leftovers`] ends the
    /// group the verified process *currently* leads rather than trusting this field, and uses it
    /// only to report strays when the leader is gone.
    pub pgid: u32,
    /// The leader's start time, see [`crate::process_start_time`].
    pub start_time: u64,
}

/// One record found by [`reap_leftovers`] and what was done about it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Leftover {
    /// The id from the file name.
    pub id: String,
    /// The record, when it could be read.
    pub record: Option<Record>,
    /// What was found and done.
    pub outcome: LeftoverOutcome,
}

/// What [`reap_leftovers`] found for one record. In every case the record is removed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LeftoverOutcome {
    /// The recorded process was still running: its group was ended.
    Terminated(Termination),
    /// No process runs with that pid. `group_left` lists processes still in its process group
    /// that outlived their leader but started before it (not its children), left alone.
    Gone {
        /// Running members of the recorded group.
        group_left: Vec<u32>,
    },
    /// The recorded process had died, but processes of its group were still running: they
    /// were ended.
    Orphans(Termination),
    /// A different process (other start time) holds the pid now: left alone.
    PidReused {
        /// The start time of the process that holds the pid now.
        start_time: u64,
    },
    /// The record was written before the machine last booted: nothing of it can still run.
    OtherBoot,
    /// The process exists but its start time cannot be read (platforms without `/proc`), so it
    /// cannot be told apart from a stranger: left alone.
    Unverifiable,
    /// The file could not be read or parsed.
    Unreadable {
        /// Why.
        reason: String,
    },
}

/// Writes `record` to `<dir>/<id>.pid` atomically (a temporary file renamed into place), creating
/// `dir` if needed.
pub fn record(dir: &Path, record: &Record) -> std::io::Result<()> {
    use std::io::Write;
    let path = record_path(dir, &record.id)?;
    std::fs::create_dir_all(dir)?;
    let mut text = format!(
        "id={}\npid={}\npgid={}\nstart_time={}\n",
        record.id, record.pid, record.pgid, record.start_time
    );
    if let Some(boot) = boot_id() {
        text.push_str(&format!("boot_id={boot}\n"));
    }
    let temporary = dir.join(format!(".{}.pid.{}.tmp", record.id, std::process::id()));
    let written = (|| {
        let mut file = std::fs::File::create(&temporary)?;
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
        std::fs::rename(&temporary, &path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
    written
}

/// Removes the record of `id` (a missing record is fine).
pub fn forget(dir: &Path, id: &str) -> std::io::Result<()> {
    match std::fs::remove_file(record_path(dir, id)?) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Ends what the records in `dir` describe, if it still runs, and removes every record (see the
/// module docs and [`LeftoverOutcome`]). Call it at daemon start, before any service is spawned.
/// Groups are ended concurrently, each with `grace` between SIGTERM and SIGKILL. Returns one entry
/// per record, sorted by id, for the log.
pub async fn reap_leftovers(dir: &Path, grace: Duration) -> Vec<Leftover> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut tasks = tokio::task::JoinSet::new();
    let mut found = Vec::new();
    for entry in entries.filter_map(Result::ok) {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') && name.ends_with(".tmp") {
            // A temporary file of a `record` interrupted by a crash.
            let _ = std::fs::remove_file(&path);
            continue;
        }
        let Some(id) = name
            .strip_suffix(".pid")
            .filter(|id| !id.is_empty() && !id.starts_with('.'))
        else {
            continue;
        };
        let id = id.to_owned();
        match read_record(&path, &id) {
            Ok((record, boot)) => {
                tasks.spawn(async move {
                    let outcome = settle(&record, boot.as_deref(), grace).await;
                    let _ = std::fs::remove_file(&path);
                    Leftover {
                        id,
                        record: Some(record),
                        outcome,
                    }
                });
            }
            Err(reason) => {
                let _ = std::fs::remove_file(&path);
                found.push(Leftover {
                    id,
                    record: None,
                    outcome: LeftoverOutcome::Unreadable { reason },
                });
            }
        }
    }
    while let Some(done) = tasks.join_next().await {
        if let Ok(leftover) = done {
            found.push(leftover);
        }
    }
    found.sort_by(|a, b| a.id.cmp(&b.id));
    found
}

/// Decides about one record and acts on it.
async fn settle(record: &Record, boot: Option<&str>, grace: Duration) -> LeftoverOutcome {
    if let (Some(then), Some(now)) = (boot, boot_id())
        && then != now
    {
        return LeftoverOutcome::OtherBoot;
    }
    match crate::process_start_time(record.pid) {
        Some(start_time) if start_time != record.start_time => {
            LeftoverOutcome::PidReused { start_time }
        }
        Some(_) if leader_is_dead(record.pid) => end_orphans(record, grace).await,
        Some(_) => LeftoverOutcome::Terminated(end_verified(record, grace).await),
        None if !cfg!(target_os = "linux") && crate::is_alive(record.pid) => {
            LeftoverOutcome::Unverifiable
        }
        None => end_orphans(record, grace).await,
    }
}

/// A zombie leader has stopped: it is not "left running", but it proves its group is ours.
fn leader_is_dead(pid: u32) -> bool {
    #[cfg(target_os = "linux")]
    return crate::procfs::stat(pid).is_some_and(|s| s.is_dead());
    #[cfg(not(target_os = "linux"))]
    return !crate::is_alive(pid);
}

/// The recorded leader is gone (it died with the daemon): members of its group that are still
/// alive are its own children. Linux does not give out a number that is still some group's id,
/// so while the group lives it is the recorded one; members must also have started no earlier
/// than the leader (same boot, checked above). They are ended like the group they are.
async fn end_orphans(record: &Record, grace: Duration) -> LeftoverOutcome {
    let (ours, others): (Vec<u32>, Vec<u32>) = stray_members(record.pgid)
        .into_iter()
        .partition(|pid| crate::process_start_time(*pid).is_some_and(|t| t >= record.start_time));
    if ours.is_empty() {
        return LeftoverOutcome::Gone { group_left: others };
    }
    LeftoverOutcome::Orphans(crate::terminate_group(record.pgid, grace).await)
}

/// Ends a process whose identity was verified. Its group is ended only if it still leads one
/// (pgid == pid, as the supervisor's children do); a process that joined some other group is ended
/// alone, since the rest of that group is not known to be ours.
#[cfg(unix)]
async fn end_verified(record: &Record, grace: Duration) -> Termination {
    use std::time::Instant;
    if current_pgid(record.pid).is_none_or(|pgid| pgid == record.pid) {
        return crate::terminate_group(record.pid, grace).await;
    }
    let started = Instant::now();
    let mut result = Termination {
        needed_kill: false,
        remaining: Vec::new(),
        elapsed: Duration::ZERO,
    };
    let _ = crate::group::signal_process(record.pid, crate::Signal::Term);
    while still_same(record) && started.elapsed() < grace {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    if still_same(record) {
        let _ = crate::group::signal_process(record.pid, crate::Signal::Kill);
        result.needed_kill = true;
        tokio::time::sleep(Duration::from_millis(100)).await;
        if still_same(record) {
            result.remaining.push(record.pid);
        }
    }
    result.elapsed = started.elapsed();
    result
}

#[cfg(not(unix))]
async fn end_verified(record: &Record, grace: Duration) -> Termination {
    crate::terminate_group(record.pgid, grace).await
}

/// Whether the recorded process (same pid, same start time) still runs.
#[cfg(unix)]
fn still_same(record: &Record) -> bool {
    crate::is_alive(record.pid) && crate::process_start_time(record.pid) == Some(record.start_time)
}

#[cfg(unix)]
fn current_pgid(pid: u32) -> Option<u32> {
    #[cfg(target_os = "linux")]
    {
        crate::procfs::stat(pid).map(|s| s.pgid)
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = pid;
        None
    }
}

fn stray_members(pgid: u32) -> Vec<u32> {
    #[cfg(target_os = "linux")]
    {
        if pgid > 1 {
            crate::procfs::group_members(pgid)
        } else {
            Vec::new()
        }
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = pgid;
        Vec::new()
    }
}

fn boot_id() -> Option<String> {
    #[cfg(target_os = "linux")]
    {
        crate::procfs::boot_id()
    }
    #[cfg(not(target_os = "linux"))]
    None
}

/// `<dir>/<id>.pid`, refusing ids that would escape `dir` or hide the file.
fn record_path(dir: &Path, id: &str) -> std::io::Result<PathBuf> {
    let bad = id.is_empty() || id.starts_with('.') || id.contains(['/', '\\', '\0', '\n']);
    if bad {
        let message = format!("invalid service id {id:?} for a leftover record");
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            message,
        ));
    }
    Ok(dir.join(format!("{id}.pid")))
}

/// Reads a record file; the error is a reason for the log.
fn read_record(path: &Path, id: &str) -> Result<(Record, Option<String>), String> {
    use std::io::Read;
    let mut text = String::new();
    std::fs::File::open(path)
        .and_then(|file| file.take(4096).read_to_string(&mut text))
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    parse_record(&text, id)
}

fn parse_record(text: &str, id: &str) -> Result<(Record, Option<String>), String> {
    let value = |key: &str| {
        text.lines()
            .filter_map(|line| line.split_once('='))
            .find(|(k, _)| k.trim() == key)
            .map(|(_, v)| v.trim())
    };
    let number = |key: &str| -> Result<u64, String> {
        let raw = value(key).ok_or_else(|| format!("no {key}"))?;
        raw.parse()
            .map_err(|_| format!("{key}={raw:?} is not a number"))
    };
    let pid = |key: &str| -> Result<u32, String> {
        u32::try_from(number(key)?)
            .ok()
            .filter(|&p| p > 1 && p <= i32::MAX as u32)
            .ok_or_else(|| format!("{key} is out of range"))
    };
    let record = Record {
        id: id.to_owned(),
        pid: pid("pid")?,
        pgid: pid("pgid")?,
        start_time: number("start_time")?,
    };
    Ok((record, value("boot_id").map(str::to_owned)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let rec = Record {
            id: "postgres".into(),
            pid: 4242,
            pgid: 4242,
            start_time: 99,
        };
        record(dir.path(), &rec).unwrap();
        let (back, boot) = read_record(&dir.path().join("postgres.pid"), "postgres").unwrap();
        assert_eq!(back, rec);
        assert_eq!(boot, boot_id());
        forget(dir.path(), "postgres").unwrap();
        forget(dir.path(), "postgres").unwrap();
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            0,
            "no temporary file left"
        );
    }

    #[test]
    fn garbage_is_refused() {
        for text in [
            "",
            "pid=12\npgid=12",
            "pid=x\npgid=1\nstart_time=1",
            "pid=0\npgid=0\nstart_time=1",
        ] {
            assert!(parse_record(text, "a").is_err(), "{text:?}");
        }
        let (rec, boot) =
            parse_record("junk\npid=10\npgid=10\nstart_time=5\nextra=1\n", "a").unwrap();
        assert_eq!((rec.pid, rec.start_time, boot), (10, 5, None));
    }

    #[test]
    fn ids_cannot_escape() {
        for id in ["", "../x", "a/b", ".hidden", "a\nb"] {
            assert!(record_path(Path::new("/tmp"), id).is_err(), "{id:?}");
        }
    }
}
