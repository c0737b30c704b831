//! The log store on disk: for each service `app/logs/<id>.jsonl`, the segment being written,
//! and its sealed segments `app/logs/<id>.<n>.jsonl` (n counting up from 1, six digits, never
//! reused), plus `kojibox.jsonl` for the daemon's own entries.
//!
//! A segment is sealed (renamed with the next number) once it reaches the segment size; the
//! oldest sealed segments are deleted while a service's files exceed its cap, then while all
//! the store's files exceed the total cap (settings `logMaxMBPerService`, default
//! [`DEFAULT_SERVICE_MB`] MiB, and `logMaxMBTotal`, default [`DEFAULT_TOTAL_MB`] MiB; the
//! segment size is a quarter of the per-service cap, at most [`SEGMENT_BYTES`]). The segment
//! being written is never deleted. Because a segment keeps its number when it is sealed, a
//! position (number, byte offset) names the same line for as long as the line is kept: the
//! cursors of `logs.query` are such positions.
//!
//! Each line is one `LogEntry` as JSON with `ts` first, in the fixed form
//! `2025-01-01T00:00:12.000Z`: a line's time is read from its first bytes without parsing it,
//! times compare as text, and a time bound is found by bisecting a segment's bytes.

use std::fs::File;
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use kojibox_home::{Home, Settings};
use kojibox_manifests::model::LogLevel;

/// Largest segment size.
pub const SEGMENT_BYTES: u64 = 10 << 20;
/// Smallest segment size, whatever the caps say.
pub const MIN_SEGMENT_BYTES: u64 = 64 << 10;
/// Default cap of one service's log files, in MiB (`logMaxMBPerService`).
pub const DEFAULT_SERVICE_MB: u64 = 100;
/// Default cap of the whole store, in MiB (`logMaxMBTotal`).
pub const DEFAULT_TOTAL_MB: u64 = 1024;
/// The log of the daemon's own entries (`kojibox.jsonl`).
pub const DAEMON_LOG: &str = "kojibox";

/// The store's size limits, from the settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Size at which a segment is sealed.
    pub segment: u64,
    /// Cap of one service's files.
    pub service: u64,
    /// Cap of all the store's files.
    pub total: u64,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits::from_mb(DEFAULT_SERVICE_MB, DEFAULT_TOTAL_MB)
    }
}

impl Limits {
    /// The limits for these caps (MiB; at least 1).
    pub fn from_mb(service_mb: u64, total_mb: u64) -> Limits {
        let service = service_mb.max(1) << 20;
        Limits {
            segment: (service / 4).clamp(MIN_SEGMENT_BYTES, SEGMENT_BYTES),
            service,
            total: total_mb.max(1) << 20,
        }
    }

    /// The limits `home`'s settings set (defaults when the settings cannot be read).
    pub fn load(home: &Home) -> Limits {
        let settings = Settings::load(home).unwrap_or_default();
        Limits::from_mb(
            settings
                .log_max_mb_per_service
                .unwrap_or(DEFAULT_SERVICE_MB),
            settings.log_max_mb_total.unwrap_or(DEFAULT_TOTAL_MB),
        )
    }
}

/// One file of a service's log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    /// Its number: sealed ones count up from 1; the one being written has the number it will
    /// be sealed with.
    pub n: u64,
    /// Its file.
    pub path: PathBuf,
    /// Whether it is the one being written (`<id>.jsonl`).
    pub active: bool,
}

/// The file name of sealed segment `n` of `id`.
fn sealed_name(id: &str, n: u64) -> String {
    format!("{id}.{n:06}.jsonl")
}

/// What a file name of the store is: `(id, Some(n))` for a sealed segment, `(id, None)` for the
/// one being written.
fn parse_name(name: &str) -> Option<(&str, Option<u64>)> {
    let stem = name.strip_suffix(".jsonl")?;
    match stem.rsplit_once('.') {
        Some((id, n))
            if !id.is_empty() && !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) =>
        {
            Some((id, Some(n.parse().ok()?)))
        }
        Some(_) => None,
        None if !stem.is_empty() => Some((stem, None)),
        None => None,
    }
}

/// Every file in the store: `(id, n, path, size)`, `n` `None` for a segment being written.
fn files(dir: &Path) -> Vec<(String, Option<u64>, PathBuf, u64)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name();
            let (id, n) = parse_name(name.to_str()?)?;
            let meta = entry.metadata().ok()?;
            meta.is_file()
                .then(|| (id.to_owned(), n, entry.path(), meta.len()))
        })
        .collect()
}

/// The ids that have a log in `home`'s store, sorted.
pub fn ids(home: &Home) -> Vec<String> {
    let mut ids: Vec<String> = files(&home.logs_dir()).into_iter().map(|f| f.0).collect();
    ids.sort();
    ids.dedup();
    ids
}

/// `id`'s segments, oldest first; the one being written last (when it exists).
pub fn segments(home: &Home, id: &str) -> Vec<Segment> {
    segments_in(&home.logs_dir(), id)
}

fn segments_in(dir: &Path, id: &str) -> Vec<Segment> {
    let mut sealed: Vec<Segment> = Vec::new();
    let mut active = None;
    for (file_id, n, path, _) in files(dir) {
        if file_id != id {
            continue;
        }
        match n {
            Some(n) => sealed.push(Segment {
                n,
                path,
                active: false,
            }),
            None => active = Some(path),
        }
    }
    sealed.sort_by_key(|s| s.n);
    let next = sealed.last().map_or(1, |s| s.n + 1);
    sealed.extend(active.map(|path| Segment {
        n: next,
        path,
        active: true,
    }));
    sealed
}

/// Renames the rotated files of an earlier kojibox (`<id>.1.jsonl` the newest … `<id>.3.jsonl`
/// the oldest) to sealed segments numbered after any there are, oldest first.
pub fn migrate(home: &Home, id: &str) {
    let dir = home.logs_dir();
    let mut legacy: Vec<(u64, PathBuf)> = files(&dir)
        .into_iter()
        .filter(|(file_id, n, path, _)| {
            file_id == id
                && n.is_some()
                && path
                    .file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|name| name.len() != id.len() + ".000000.jsonl".len())
        })
        .filter_map(|(_, n, path, _)| Some((n?, path)))
        .collect();
    if legacy.is_empty() {
        return;
    }
    // The highest old number is the oldest.
    legacy.sort_by_key(|(n, _)| std::cmp::Reverse(*n));
    let next = segments_in(&dir, id)
        .iter()
        .filter(|s| !s.active)
        .filter(|s| !legacy.iter().any(|(_, p)| *p == s.path))
        .map(|s| s.n)
        .max()
        .unwrap_or(0)
        + 1;
    for (n, (_, path)) in (next..).zip(legacy) {
        let _ = std::fs::rename(&path, dir.join(sealed_name(id, n)));
    }
}

/// Writes one service's log: appends lines to its segment, seals it at the segment size and
/// keeps the store within its caps.
pub(crate) struct Writer {
    home: Home,
    id: String,
    path: PathBuf,
    out: Option<BufWriter<File>>,
    size: u64,
    limits: Limits,
    /// Whether `limits` stay as given (else the settings are read again at each seal).
    pinned: bool,
    /// Why the file could not be opened (reported once; the lines stay in memory only).
    refused: Option<String>,
}

impl Writer {
    pub(crate) fn new(home: &Home, id: &str) -> Writer {
        Writer {
            home: home.clone(),
            id: id.to_owned(),
            path: home.service_log(id),
            out: None,
            size: 0,
            limits: Limits::load(home),
            pinned: false,
            refused: None,
        }
    }

    /// A writer with these limits, whatever the settings say.
    #[cfg(test)]
    pub(crate) fn with_limits(home: &Home, id: &str, limits: Limits) -> Writer {
        Writer {
            limits,
            pinned: true,
            ..Writer::new(home, id)
        }
    }

    /// Appends `line` (one JSON entry and its `\n`); answers why the file cannot be written the
    /// first time it cannot be.
    pub(crate) fn append(&mut self, line: &[u8]) -> Option<String> {
        if self.out.is_none() {
            if self.refused.is_some() {
                return None;
            }
            // `app/logs` 0700, the file 0600, never through a link planted in the home.
            match kojibox_home::fs::open_append_private(&self.home, &self.path) {
                Ok(file) => {
                    self.size = file.metadata().map(|m| m.len()).unwrap_or(0);
                    self.out = Some(BufWriter::with_capacity(64 << 10, file));
                }
                Err(e) => {
                    self.refused = Some(e.to_string());
                    return self.refused.clone();
                }
            }
        }
        if let Some(out) = self.out.as_mut()
            && out.write_all(line).is_ok()
        {
            self.size += line.len() as u64;
        }
        if self.size >= self.limits.segment {
            self.seal();
        }
        None
    }

    pub(crate) fn flush(&mut self) {
        if let Some(out) = self.out.as_mut() {
            let _ = out.flush();
        }
    }

    /// Seals the segment being written and trims the store to its caps.
    fn seal(&mut self) {
        if let Some(mut out) = self.out.take() {
            let _ = out.flush();
        }
        let dir = self.home.logs_dir();
        let next = segments_in(&dir, &self.id)
            .iter()
            .find(|s| s.active)
            .map_or(1, |s| s.n);
        let _ = std::fs::rename(&self.path, dir.join(sealed_name(&self.id, next)));
        self.size = 0;
        // The caps may have changed since the last time.
        if !self.pinned {
            self.limits = Limits::load(&self.home);
        }
        trim(&dir, &self.id, self.limits);
    }
}

/// Deletes the oldest sealed segments of `id` while its files exceed the per-service cap, then
/// the oldest of any service while the store exceeds the total cap. A service's newest sealed
/// segment is emptied rather than deleted: it keeps the count of numbers, so none is reused.
fn trim(dir: &Path, id: &str, limits: Limits) {
    let mut all = files(dir);
    // Oldest first: by number within a service, the segment being written last.
    all.sort_by_key(|f| (f.0.clone(), f.1.unwrap_or(u64::MAX)));
    let newest: std::collections::BTreeMap<String, u64> = all
        .iter()
        .filter_map(|f| Some((f.0.clone(), f.1?)))
        .collect();
    let drop = |f: &mut (String, Option<u64>, PathBuf, u64)| -> bool {
        let done = if newest.get(&f.0) == f.1.as_ref() {
            File::create(&f.2).is_ok()
        } else {
            std::fs::remove_file(&f.2).is_ok()
        };
        if done {
            f.3 = 0;
        }
        done
    };
    let mut size: u64 = all.iter().filter(|f| f.0 == id).map(|f| f.3).sum();
    for f in all.iter_mut().filter(|f| f.0 == id && f.1.is_some()) {
        if size <= limits.service {
            break;
        }
        let len = f.3;
        if drop(f) {
            size -= len;
        }
    }
    let mut total: u64 = all.iter().map(|f| f.3).sum();
    if total <= limits.total {
        return;
    }
    // Oldest first across services: by when the segment was last written.
    let mut sealed: Vec<(std::time::SystemTime, usize)> = all
        .iter()
        .enumerate()
        .filter(|(_, f)| f.1.is_some() && f.3 > 0)
        .map(|(i, f)| {
            let modified = std::fs::metadata(&f.2)
                .and_then(|m| m.modified())
                .unwrap_or(std::time::UNIX_EPOCH);
            (modified, i)
        })
        .collect();
    sealed.sort();
    for (_, i) in sealed {
        if total <= limits.total {
            break;
        }
        let len = all[i].3;
        if drop(&mut all[i]) {
            total -= len;
        }
    }
}

/// The time a stored line starts with (`2025-01-01T00:00:12.000Z`), without parsing it.
pub fn ts_of(line: &[u8]) -> Option<&[u8]> {
    let rest = line.strip_prefix(b"{\"ts\":\"")?;
    let end = memchr::memchr(b'"', rest)?;
    Some(&rest[..end])
}

/// The level of a stored line, read after its time without parsing it.
pub fn level_of(line: &[u8]) -> Option<LogLevel> {
    let ts = ts_of(line)?;
    let rest = line.get(7 + ts.len()..)?.strip_prefix(b"\",\"level\":\"")?;
    Some(match rest.get(..4)? {
        b"debu" => LogLevel::Debug,
        b"info" => LogLevel::Info,
        b"warn" => LogLevel::Warn,
        b"erro" => LogLevel::Error,
        _ => return None,
    })
}

/// Block size for reading segments.
const BLOCK: usize = 64 << 10;

/// The lines of a file between two byte offsets, newest first: `(offset, line)` without its
/// `\n`.
pub(crate) struct Backward {
    file: File,
    /// Bytes of the file before `buf` still to read.
    pos: u64,
    /// Where the lines end (exclusive).
    start: u64,
    /// Read bytes `[pos, pos + buf.len())` not yet given out.
    buf: Vec<u8>,
}

impl Backward {
    /// The lines that start in `[start, end)`, from the one before `end` back. `end` must be a
    /// line start (or the file's length).
    pub(crate) fn new(file: File, start: u64, end: u64) -> Backward {
        Backward {
            file,
            pos: end,
            start,
            buf: Vec::new(),
        }
    }

    /// The next line back.
    pub(crate) fn next_line(&mut self) -> std::io::Result<Option<(u64, Vec<u8>)>> {
        loop {
            // `buf` ends at a line end (or the end bound); a complete line is one whose start is
            // known: after a `\n` in `buf`, or at `start`.
            let body = match self.buf.last() {
                Some(b'\n') => self.buf.len() - 1,
                _ => self.buf.len(),
            };
            if let Some(at) = memchr::memrchr(b'\n', &self.buf[..body]) {
                let line = self.buf[at + 1..body].to_vec();
                let offset = self.pos + at as u64 + 1;
                self.buf.truncate(at + 1);
                return Ok(Some((offset, line)));
            }
            if self.pos <= self.start {
                if body == 0 {
                    return Ok(None);
                }
                let line = self.buf[..body].to_vec();
                self.buf.clear();
                return Ok(Some((self.pos, line)));
            }
            let take = (self.pos - self.start).min(BLOCK as u64);
            self.pos -= take;
            let mut block = vec![0; take as usize];
            self.file.seek(SeekFrom::Start(self.pos))?;
            self.file.read_exact(&mut block)?;
            block.extend_from_slice(&self.buf);
            self.buf = block;
        }
    }
}

/// The lines of a file from a byte offset on, oldest first: `(offset, line)` without its `\n`.
pub(crate) struct Forward {
    reader: std::io::BufReader<File>,
    pos: u64,
    end: u64,
}

impl Forward {
    /// The lines that start in `[start, end)`; `start` must be a line start.
    pub(crate) fn new(mut file: File, start: u64, end: u64) -> std::io::Result<Forward> {
        file.seek(SeekFrom::Start(start))?;
        Ok(Forward {
            reader: std::io::BufReader::with_capacity(BLOCK, file),
            pos: start,
            end,
        })
    }

    /// The next line on.
    pub(crate) fn next_line(&mut self) -> std::io::Result<Option<(u64, Vec<u8>)>> {
        use std::io::BufRead;
        if self.pos >= self.end {
            return Ok(None);
        }
        let mut line = Vec::new();
        let read = self.reader.read_until(b'\n', &mut line)?;
        if read == 0 {
            return Ok(None);
        }
        let offset = self.pos;
        self.pos += read as u64;
        if line.last() == Some(&b'\n') {
            line.pop();
        }
        Ok(Some((offset, line)))
    }
}

/// The start of the first line of `file` (`len` bytes) whose time is `ts` or later (`len` when
/// there is none), found by bisecting its bytes; lines whose time cannot be read count as
/// earlier.
pub(crate) fn first_at_or_after(file: &File, len: u64, ts: &[u8]) -> std::io::Result<u64> {
    // Lines starting before `lo` are earlier than `ts`; the line at `hi` (a line start) is not.
    let (mut lo, mut hi) = (0u64, len);
    while hi - lo > 2 * BLOCK as u64 {
        let mid = lo + (hi - lo) / 2;
        let Some(start) = line_start_from(file, mid, hi)? else {
            break;
        };
        match read_ts(file, start)? {
            Some(t) if t.as_slice() >= ts => hi = start,
            _ => lo = start,
        }
    }
    // Then line by line.
    let mut lines = Forward::new(file.try_clone()?, lo, hi)?;
    while let Some((offset, line)) = lines.next_line()? {
        if ts_of(&line).is_some_and(|t| t >= ts) {
            return Ok(offset);
        }
    }
    Ok(hi)
}

/// The first line start at or after `at` (after the `\n` that ends the line `at` is in) and
/// before `end`.
fn line_start_from(mut file: &File, at: u64, end: u64) -> std::io::Result<Option<u64>> {
    if at == 0 {
        return Ok(Some(0));
    }
    let mut pos = at - 1;
    let mut block = vec![0; 4096];
    while pos < end {
        file.seek(SeekFrom::Start(pos))?;
        let read = file.read(&mut block)?;
        if read == 0 {
            return Ok(None);
        }
        if let Some(i) = memchr::memchr(b'\n', &block[..read]) {
            let start = pos + i as u64 + 1;
            return Ok((start < end).then_some(start));
        }
        pos += read as u64;
    }
    Ok(None)
}

/// The time of the line starting at `at`.
fn read_ts(mut file: &File, at: u64) -> std::io::Result<Option<Vec<u8>>> {
    let mut head = [0u8; 64];
    file.seek(SeekFrom::Start(at))?;
    let mut read = 0;
    while read < head.len() {
        let n = file.read(&mut head[read..])?;
        if n == 0 {
            break;
        }
        read += n;
    }
    Ok(ts_of(&head[..read]).map(<[u8]>::to_vec))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_and_ids_never_take_a_number() {
        assert_eq!(parse_name("pg.jsonl"), Some(("pg", None)));
        assert_eq!(parse_name("pg.000012.jsonl"), Some(("pg", Some(12))));
        assert_eq!(parse_name("pg.1.jsonl"), Some(("pg", Some(1))));
        assert_eq!(parse_name("pg.x.jsonl"), None);
        assert_eq!(parse_name("daemon.log"), None);
        assert_eq!(parse_name(".jsonl"), None);
    }

    fn line(ts: &str, message: &str) -> String {
        format!(
            "{{\"ts\":\"{ts}\",\"level\":\"warn\",\"service\":\"s\",\"message\":\"{message}\",\"fields\":{{}}}}\n"
        )
    }

    #[test]
    fn time_and_level_are_read_from_the_first_bytes() {
        let l = line("2026-01-01T00:00:00.000Z", "hi");
        assert_eq!(ts_of(l.as_bytes()), Some(&b"2026-01-01T00:00:00.000Z"[..]));
        assert_eq!(level_of(l.as_bytes()), Some(LogLevel::Warn));
        assert_eq!(ts_of(b"garbage"), None);
        assert_eq!(level_of(b"{\"ts\":\"x\"}"), None);
    }

    #[test]
    fn lines_read_backward_and_forward_and_bisect_by_time() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.jsonl");
        let mut text = String::new();
        let mut starts = Vec::new();
        for i in 0..20_000 {
            starts.push(text.len() as u64);
            let ts = format!(
                "2026-01-01T00:{:02}:{:02}.{:03}Z",
                i / 6000,
                (i / 100) % 60,
                i % 100
            );
            text.push_str(&line(&ts, &format!("line {i}")));
        }
        std::fs::write(&path, &text).unwrap();
        let len = text.len() as u64;

        let mut back = Backward::new(File::open(&path).unwrap(), 0, len);
        let mut seen = Vec::new();
        while let Some((offset, l)) = back.next_line().unwrap() {
            seen.push((offset, l));
        }
        assert_eq!(seen.len(), 20_000);
        assert_eq!(seen[0].0, starts[19_999]);
        assert!(String::from_utf8_lossy(&seen[0].1).contains("line 19999\""));
        assert_eq!(seen[19_999].0, 0);

        let mut fwd = Forward::new(File::open(&path).unwrap(), starts[5], starts[8]).unwrap();
        let mut n = 0;
        while let Some((offset, _)) = fwd.next_line().unwrap() {
            assert_eq!(offset, starts[5 + n]);
            n += 1;
        }
        assert_eq!(n, 3);

        let file = File::open(&path).unwrap();
        let file = &file;
        // Line 12345 is 00:02:03.045.
        let at = first_at_or_after(file, len, b"2026-01-01T00:02:03.045Z").unwrap();
        assert_eq!(at, starts[12_345]);
        let at = first_at_or_after(file, len, b"2026-01-01T00:02:03.045Z\0").unwrap();
        assert_eq!(at, starts[12_346]);
        assert_eq!(first_at_or_after(file, len, b"2025").unwrap(), 0);
        assert_eq!(first_at_or_after(file, len, b"2027").unwrap(), len);
    }

    #[test]
    fn segments_keep_their_numbers_and_caps_delete_the_oldest() {
        let dir = tempfile::tempdir().unwrap();
        let home = Home::at(dir.path()).unwrap();
        std::fs::create_dir_all(home.logs_dir()).unwrap();
        let logs = home.logs_dir();
        // An earlier kojibox's rotation: .1 the newest.
        for (name, text) in [
            ("a.1.jsonl", "newer\n"),
            ("a.2.jsonl", "older\n"),
            ("a.jsonl", "now\n"),
        ] {
            std::fs::write(logs.join(name), text).unwrap();
        }
        migrate(&home, "a");
        let segs = segments(&home, "a");
        let names: Vec<String> = segs
            .iter()
            .map(|s| s.path.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["a.000001.jsonl", "a.000002.jsonl", "a.jsonl"]);
        assert_eq!(std::fs::read_to_string(&segs[0].path).unwrap(), "older\n");
        assert_eq!((segs[2].n, segs[2].active), (3, true));

        let limits = Limits {
            segment: 100,
            service: 250,
            total: 10_000,
        };
        let mut writer = Writer::with_limits(&home, "a", limits);
        for i in 0..30 {
            writer.append(format!("{i:039}\n").as_bytes());
        }
        writer.flush();
        // 1200 bytes written in segments of 120: at most 250 kept, the newest.
        let segs = segments(&home, "a");
        let kept: u64 = segs
            .iter()
            .map(|s| std::fs::metadata(&s.path).unwrap().len())
            .sum();
        assert!(kept <= 250, "{segs:?}");
        // Ten segments sealed after the two an earlier kojibox left: numbers 3 to 12, the
        // newest kept; nothing being written now.
        assert!(segs.iter().all(|s| !s.active && s.n > 2), "{segs:?}");
        let sealed = segs.last().unwrap();
        assert_eq!(sealed.n, 12);
        assert_eq!(
            std::fs::read_to_string(&sealed.path).unwrap(),
            (27..30).map(|i| format!("{i:039}\n")).collect::<String>()
        );

        // The total cap takes the oldest of any service, never a segment being written.
        std::fs::write(logs.join("b.000001.jsonl"), "x".repeat(300)).unwrap();
        std::fs::write(logs.join("b.jsonl"), "y".repeat(300)).unwrap();
        // Every sealed segment over the cap goes, but a service's newest is emptied, not
        // deleted: the next one sealed is not numbered 1 again.
        trim(
            &logs,
            "a",
            Limits {
                segment: 100,
                service: 10_000,
                total: 400,
            },
        );
        assert_eq!(
            std::fs::read_to_string(logs.join("b.jsonl")).unwrap().len(),
            300
        );
        assert_eq!(
            std::fs::read_to_string(logs.join("b.000001.jsonl")).unwrap(),
            ""
        );
        assert_eq!(segments(&home, "b")[1].n, 2);
        assert!(
            std::fs::read_to_string(logs.join("a.000012.jsonl"))
                .unwrap()
                .is_empty()
        );
        assert!(!logs.join("a.000011.jsonl").exists());
    }
}
