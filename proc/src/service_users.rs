//! Users made for kojibox: when the daemon runs as root, each service of a home runs as a user
//! of its own, so that no service can read another's `/proc/<pid>/environ` (where secrets are
//! injected) or data folder.
//!
//! The uid and gid (equal) come from [`SERVICE_IDS`], a 16-bit block (so it exists inside a
//! container whose user namespace maps only 0–65535) that systemd's `UIDS-GIDS.md` leaves unused,
//! between the host users mapped into containers (60514–60577) and `DynamicUser` (61184–65519),
//! and above `useradd`'s `UID_MAX` (60000), so no ordinary tool hands them out. An id is free when
//! no line of `/etc/passwd` or `/etc/group` uses it and no process runs with it.
//!
//! Unlike systemd's `DynamicUser` (whose names come from its NSS module), each allocation is
//! written to `/etc/passwd` and `/etc/group` (locked with `/etc/.pwd.lock`, as `useradd` does,
//! replaced atomically), because many programs look themselves up: PostgreSQL's `initdb` stops
//! with "could not look up effective user ID" otherwise. The entry is
//! `kbx<uid>-<service>:!:<uid>:<uid>:kojibox <service> <record>:/nonexistent:<nologin>`: locked,
//! no shell, and its comment names the service and the home's record file
//! (`app/state/service-users`, lines `<service> <uid>`). That file keeps the allocation with the
//! home, so a service keeps its uid and its data stays owned across restarts and upgrades; the
//! passwd entry keeps it for the machine, so two homes on one machine never share a uid.
//!
//! An entry of kojibox's whose record no longer lists it (the home was deleted, or is on a stick
//! that is not plugged in) and whose uid no process uses is removed when the next service user
//! is made. A home that comes back gets its old uid again when it is still free, else a new one
//! (the supervisor then gives the data folder to it).

use std::collections::{BTreeMap, BTreeSet};
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};

use crate::{Error, User};

/// The uids (and gids) kojibox gives its services when it makes their users.
pub const SERVICE_IDS: RangeInclusive<u32> = 60578..=61183;

/// The files making a service user reads and writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserDatabase {
    /// `passwd(5)`.
    pub passwd: PathBuf,
    /// `group(5)`.
    pub group: PathBuf,
    /// The lock `useradd` and `lckpwdf(3)` take (an `fcntl` write lock).
    pub lock: PathBuf,
}

impl UserDatabase {
    /// `/etc/passwd`, `/etc/group`, `/etc/.pwd.lock`.
    pub fn system() -> UserDatabase {
        UserDatabase {
            passwd: PathBuf::from(crate::PASSWD),
            group: PathBuf::from("/etc/group"),
            lock: PathBuf::from("/etc/.pwd.lock"),
        }
    }
}

/// The user service `id` of the home whose record file is `record` runs as, made in the system's
/// user database on first use (see the module docs). Linux only; needs root.
pub fn own_service_user(record: &Path, id: &str) -> Result<User, Error> {
    if cfg!(target_os = "linux") {
        own_service_user_in(&UserDatabase::system(), record, id)
    } else {
        Err(Error::Unsupported {
            what: "making a user for each service",
        })
    }
}

/// [`own_service_user`] with another user database (tests).
pub fn own_service_user_in(db: &UserDatabase, record: &Path, id: &str) -> Result<User, Error> {
    static IN_PROCESS: std::sync::Mutex<()> = std::sync::Mutex::new(());
    // fcntl locks do not exclude threads of one process: the mutex does.
    let _thread = IN_PROCESS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let _lock = lock(&db.lock)?;
    let passwd = read(&db.passwd)?;
    let group = read(&db.group)?;
    let mut recorded = read_record(record)?;
    let record_text = encode(&record.to_string_lossy());
    let entries = ours(&passwd);
    if let Some(e) = entries
        .iter()
        .find(|e| e.service == id && e.record == record_text)
    {
        let user = e.user();
        if !group_lines(&group).any(|(_, gid)| gid == user.gid) {
            replace(&db.group, &append(&group, &group_line(&user)))?;
        }
        if recorded.get(id) != Some(&user.uid) {
            recorded.insert(id.to_owned(), user.uid);
            write_record(record, &recorded)?;
        }
        return Ok(user);
    }
    // Forget the entries whose home no longer claims them, unless a process still runs as one.
    let busy = uids_in_use();
    let stale: BTreeSet<u32> = entries
        .iter()
        .filter(|e| !busy.contains(&e.uid) && !claimed(e))
        .map(|e| e.uid)
        .collect();
    let passwd = without(&passwd, |line| {
        parse_entry(line).is_some_and(|e| stale.contains(&e.uid))
    });
    let group = without(&group, |line| {
        group_lines(line).any(|(name, gid)| stale.contains(&gid) && name.starts_with("kbx"))
    });
    let mut taken: BTreeSet<u32> = busy;
    taken.extend(
        passwd
            .lines()
            .filter_map(|l| l.split(':').nth(2)?.parse::<u32>().ok()),
    );
    taken.extend(group_lines(&group).map(|(_, gid)| gid));
    let uid = recorded
        .get(id)
        .copied()
        .filter(|uid| SERVICE_IDS.contains(uid) && !taken.contains(uid))
        .or_else(|| SERVICE_IDS.clone().find(|uid| !taken.contains(uid)))
        .ok_or_else(|| Error::NoFreeServiceId {
            first: *SERVICE_IDS.start(),
            last: *SERVICE_IDS.end(),
            passwd: db.passwd.clone(),
            group: db.group.clone(),
        })?;
    let user = User {
        name: user_name(uid, id),
        uid,
        gid: uid,
        home: PathBuf::from("/nonexistent"),
    };
    let line = format!(
        "{}:!:{uid}:{uid}:kojibox {id} {record_text}:/nonexistent:{}",
        user.name,
        nologin()
    );
    replace(&db.group, &append(&group, &group_line(&user)))?;
    replace(&db.passwd, &append(&passwd, &line))?;
    recorded.insert(id.to_owned(), uid);
    write_record(record, &recorded)?;
    Ok(user)
}

/// `kbx<uid>-<service>`, cut to the 32 bytes `useradd` allows.
fn user_name(uid: u32, id: &str) -> String {
    let mut name = format!("kbx{uid}-{id}");
    name.truncate(32);
    name
}

fn group_line(user: &User) -> String {
    format!("{}:!:{}:", user.name, user.gid)
}

fn nologin() -> &'static str {
    ["/usr/sbin/nologin", "/sbin/nologin"]
        .into_iter()
        .find(|p| Path::new(p).is_file())
        .unwrap_or("/bin/false")
}

/// One passwd entry of kojibox's.
#[derive(Debug, PartialEq, Eq)]
struct Entry {
    name: String,
    uid: u32,
    service: String,
    /// The home's record file, encoded.
    record: String,
}

impl Entry {
    fn user(&self) -> User {
        User {
            name: self.name.clone(),
            uid: self.uid,
            gid: self.uid,
            home: PathBuf::from("/nonexistent"),
        }
    }
}

fn parse_entry(line: &str) -> Option<Entry> {
    let fields: Vec<&str> = line.split(':').collect();
    if fields.len() < 7 || !fields[0].starts_with("kbx") {
        return None;
    }
    let uid: u32 = fields[2].parse().ok()?;
    let mut comment = fields[4].strip_prefix("kojibox ")?.split(' ');
    let (service, record) = (comment.next()?, comment.next()?);
    (SERVICE_IDS.contains(&uid) && fields[3] == fields[2] && comment.next().is_none()).then(|| {
        Entry {
            name: fields[0].to_owned(),
            uid,
            service: service.to_owned(),
            record: record.to_owned(),
        }
    })
}

fn ours(passwd: &str) -> Vec<Entry> {
    passwd.lines().filter_map(parse_entry).collect()
}

/// Whether the home named by `entry` still records its service with its uid.
fn claimed(entry: &Entry) -> bool {
    let Some(path) = decode(&entry.record) else {
        return true;
    };
    match read_record(Path::new(&path)) {
        Ok(map) => map.get(&entry.service) == Some(&entry.uid),
        // Unreadable for another reason than absence: keep it.
        Err(_) => true,
    }
}

/// `(name, gid)` of each group line.
fn group_lines(text: &str) -> impl Iterator<Item = (&str, u32)> {
    text.lines().filter_map(|line| {
        let mut fields = line.split(':');
        let name = fields.next()?;
        let gid = fields.nth(1)?.parse().ok()?;
        Some((name, gid))
    })
}

fn without(text: &str, drop: impl Fn(&str) -> bool) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.lines().filter(|l| !drop(l)) {
        out.push_str(line);
        out.push('\n');
    }
    out
}

fn append(text: &str, line: &str) -> String {
    let mut out = text.to_owned();
    if !out.is_empty() && !out.ends_with('\n') {
        out.push('\n');
    }
    out.push_str(line);
    out.push('\n');
    out
}

/// The uids of every process (real, effective, saved and filesystem).
fn uids_in_use() -> BTreeSet<u32> {
    let mut uids = BTreeSet::new();
    #[cfg(target_os = "linux")]
    for pid in crate::procfs::pids() {
        let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
            continue;
        };
        if let Some(line) = status.lines().find(|l| l.starts_with("Uid:")) {
            uids.extend(
                line.split_whitespace()
                    .skip(1)
                    .filter_map(|f| f.parse::<u32>().ok()),
            );
        }
    }
    uids
}

/// Paths in the comment field: bytes other than `[A-Za-z0-9/._-]` as `%XX` (so no `:`, space,
/// comma or newline).
fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'/' | b'.' | b'_' | b'-') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

fn read(path: &Path) -> Result<String, Error> {
    std::fs::read_to_string(path).map_err(|source| Error::Io {
        path: path.to_owned(),
        source,
    })
}

/// The record (`<service> <uid>` lines); missing = empty.
fn read_record(path: &Path) -> Result<BTreeMap<String, u32>, Error> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(text
            .lines()
            .filter_map(|l| {
                let (id, uid) = l.split_once(' ')?;
                Some((id.to_owned(), uid.trim().parse().ok()?))
            })
            .collect()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BTreeMap::new()),
        Err(source) => Err(Error::Io {
            path: path.to_owned(),
            source,
        }),
    }
}

fn write_record(path: &Path, map: &BTreeMap<String, u32>) -> Result<(), Error> {
    let text: String = map
        .iter()
        .map(|(id, uid)| format!("{id} {uid}\n"))
        .collect();
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|source| Error::Io {
            path: parent.to_owned(),
            source,
        })?;
    }
    replace(path, &text)
}

/// Holds the `fcntl` write lock on `path` (waiting for it) until dropped.
#[cfg(unix)]
fn lock(path: &Path) -> Result<std::fs::File, Error> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
        .map_err(|source| Error::Io {
            path: path.to_owned(),
            source,
        })?;
    rustix::fs::fcntl_lock(&file, rustix::fs::FlockOperation::LockExclusive).map_err(|e| {
        Error::Io {
            path: path.to_owned(),
            source: e.into(),
        }
    })?;
    Ok(file)
}

#[cfg(not(unix))]
fn lock(_path: &Path) -> Result<(), Error> {
    Err(Error::Unsupported {
        what: "making a user for each service",
    })
}

/// Replaces `path` with `text` atomically (a sibling `<name>+`, synced, renamed over it),
/// keeping the old file's mode and owner (0644 root for a new one).
fn replace(path: &Path, text: &str) -> Result<(), Error> {
    use std::io::Write;
    let io = |source| Error::Io {
        path: path.to_owned(),
        source,
    };
    let mut tmp = path.as_os_str().to_owned();
    tmp.push("+");
    let tmp = PathBuf::from(tmp);
    let old = std::fs::metadata(path).ok();
    let mut file = std::fs::File::create(&tmp).map_err(io)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        let (mode, uid, gid) = old
            .as_ref()
            .map_or((0o644, 0, 0), |m| (m.mode() & 0o7777, m.uid(), m.gid()));
        file.set_permissions(std::fs::Permissions::from_mode(mode))
            .map_err(io)?;
        std::os::unix::fs::fchown(&file, Some(uid), Some(gid)).map_err(io)?;
    }
    #[cfg(not(unix))]
    let _ = old;
    file.write_all(text.as_bytes()).map_err(io)?;
    file.sync_all().map_err(io)?;
    drop(file);
    std::fs::rename(&tmp, path).map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip_and_foreign_lines_are_not_ours() {
        let record = encode("/tmp/a b:c/app/state/service-users");
        assert_eq!(record, "/tmp/a%20b%3Ac/app/state/service-users");
        assert_eq!(
            decode(&record).as_deref(),
            Some("/tmp/a b:c/app/state/service-users")
        );
        let line = format!("kbx60600-pg:!:60600:60600:kojibox pg {record}:/nonexistent:/bin/false");
        assert_eq!(
            parse_entry(&line),
            Some(Entry {
                name: "kbx60600-pg".into(),
                uid: 60600,
                service: "pg".into(),
                record,
            })
        );
        for foreign in [
            "postgres:x:101:101:PostgreSQL:/var/lib/postgresql:/bin/bash",
            "kbxuser:x:60600:60600:someone else:/home/k:/bin/sh",
            "kbx1000-pg:!:1000:1000:kojibox pg /r:/nonexistent:/bin/false",
        ] {
            assert_eq!(parse_entry(foreign), None, "{foreign}");
        }
        assert_eq!(user_name(60600, &"x".repeat(64)).len(), 32);
    }
}
