//! `logs.query` and `logs.export` over the log store ([`super::store`]).
//!
//! A query reads each service's segments from the newest line back, and stops as soon as it
//! has its `limit` (or reaches `since`): the newest 100 lines of a million cost one block read.
//! `until` and `before` are found by bisecting a segment's bytes on the time its lines start
//! with, so a time window does not read what is outside it. Level and text filters look at a
//! line's raw bytes before parsing it. Several services are merged by time (a heap over one
//! reader each); equal times are ordered by service, then by place in the store, so paging with
//! `before` neither repeats nor skips an entry.
//!
//! A line that is not an entry (a torn write, a hand edit) is skipped and counted, never fatal.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use kojibox_home::Home;
use kojibox_manifests::api::{ExportFormat, LogFilter, LogHit};
use kojibox_manifests::model::{LogEntry, LogLevel};

use super::store::{self, Backward, Forward, Segment};
use crate::error::{Error, Result};

/// Entries `logs.query` answers when the filter says no `limit`.
pub const DEFAULT_LIMIT: usize = 100;
/// The most entries one `logs.query` answers (and the largest `limit`).
pub const MAX_LIMIT: usize = 10_000;

/// A validated filter.
#[derive(Debug, Clone, Default)]
pub struct Query {
    /// The services (`None`: every one with a log).
    pub services: Option<Vec<String>>,
    /// This level and above.
    pub level: Option<LogLevel>,
    /// At or after this time (the store's form, `2025-01-01T00:00:12.000Z`).
    pub since: Option<String>,
    /// Before this time (the store's form).
    pub until: Option<String>,
    /// Message text, lowercased.
    pub contains: Option<String>,
    /// The newest this many (`None`: every match, for an export).
    pub limit: Option<usize>,
    /// Older than this entry.
    pub before: Option<Cursor>,
}

impl Query {
    /// The newest `limit` entries of `services` (every service when `None`).
    pub fn newest(services: Option<Vec<String>>, limit: usize) -> Query {
        Query {
            services,
            limit: Some(limit),
            ..Query::default()
        }
    }

    /// Checks `filter` (times relative to `now`); an export without `limit` takes every match,
    /// a query [`DEFAULT_LIMIT`]. The error names the field and what is wrong with it.
    pub fn parse(filter: &LogFilter, now: jiff::Timestamp, export: bool) -> Result<Query> {
        let services = match &filter.service {
            None => None,
            Some(one_or_many) => {
                let ids = one_or_many.values();
                if ids.is_empty() {
                    return Err(invalid("service", "name at least one service".into()));
                }
                for id in &ids {
                    if !kojibox_manifests::recipe::is_service_id(id) {
                        return Err(invalid(
                            "service",
                            format!(
                                "`{id}` is not a service id: 1 to 64 of a-z, 0-9, `-`, `_`, not \
                                 starting with `-`"
                            ),
                        ));
                    }
                }
                let mut ids = ids;
                ids.sort();
                ids.dedup();
                Some(ids)
            }
        };
        let limit = match filter.limit {
            Some(0) => return Err(invalid("limit", "must be at least 1".into())),
            Some(n) if n as usize > MAX_LIMIT => {
                return Err(invalid(
                    "limit",
                    format!("{n} is over the maximum of {MAX_LIMIT}: page back with `before`"),
                ));
            }
            Some(n) => Some(n as usize),
            None if export => None,
            None => Some(DEFAULT_LIMIT),
        };
        let since = filter
            .since
            .as_deref()
            .map(|t| parse_time("since", t, now))
            .transpose()?;
        let until = filter
            .until
            .as_deref()
            .map(|t| parse_time("until", t, now))
            .transpose()?;
        if let (Some(since), Some(until)) = (&since, &until)
            && since >= until
        {
            return Err(invalid(
                "since",
                format!("{since} is not before `until` ({until}): nothing could match"),
            ));
        }
        let contains = match filter.contains.as_deref() {
            Some("") => return Err(invalid("contains", "is empty".into())),
            Some(text) => Some(text.to_lowercase()),
            None => None,
        };
        let before = filter.before.as_deref().map(Cursor::parse).transpose()?;
        if !export && filter.format.is_some() {
            return Err(invalid(
                "format",
                "is for logs.export only (logs.query answers entries)".into(),
            ));
        }
        Ok(Query {
            services,
            level: filter.level,
            since,
            until,
            contains,
            limit,
            before,
        })
    }
}

fn invalid(field: &str, what: String) -> Error {
    Error::Invalid {
        detail: format!("`{field}` {what}"),
    }
}

/// A time in the store's form: RFC 3339 (`2025-01-01T00:00:00Z`, any offset) or a duration
/// before `now` (`90s`, `15m`, `1h30m`, `2d`, `1w`).
fn parse_time(field: &str, text: &str, now: jiff::Timestamp) -> Result<String> {
    let at = match duration(text) {
        Some(seconds) => now
            .checked_sub(jiff::SignedDuration::from_secs(seconds))
            .map_err(|_| invalid(field, format!("`{text}` reaches before year -9999")))?,
        None => text.parse::<jiff::Timestamp>().map_err(|e| {
            invalid(
                field,
                format!(
                    "`{text}` is not a time: use RFC 3339 (`2025-01-01T00:00:00Z`) or a duration \
                     before now (`90s`, `15m`, `1h30m`, `2d`): {e}"
                ),
            )
        })?,
    };
    Ok(at.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
}

/// Seconds in `15m`, `1h30m`, `2d`, `1w` (`None` if it is not such a duration).
fn duration(text: &str) -> Option<i64> {
    let mut total: i64 = 0;
    let mut number = String::new();
    let mut any = false;
    for c in text.trim().chars() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            'w' => 604_800,
            _ => return None,
        };
        let n: i64 = number.parse().ok()?;
        total = total.checked_add(n.checked_mul(unit)?)?;
        number.clear();
        any = true;
    }
    (any && number.is_empty()).then_some(total)
}

/// Where an entry is: its service's segment and byte offset, with its time and service (the
/// order of entries across services). Written `n:offset:service:ts`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Cursor {
    ts: Vec<u8>,
    service: String,
    n: u64,
    offset: u64,
}

impl Cursor {
    fn parse(text: &str) -> Result<Cursor> {
        let bad = || {
            invalid(
                "before",
                format!(
                    "`{text}` is not a cursor: pass the `cursor` of an entry an earlier \
                     logs.query answered"
                ),
            )
        };
        let mut parts = text.splitn(4, ':');
        let (Some(n), Some(offset), Some(service), Some(ts)) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(bad());
        };
        if !kojibox_manifests::recipe::is_service_id(service) || ts.len() != 24 {
            return Err(bad());
        }
        Ok(Cursor {
            ts: ts.as_bytes().to_vec(),
            service: service.to_owned(),
            n: n.parse().map_err(|_| bad())?,
            offset: offset.parse().map_err(|_| bad())?,
        })
    }
}

impl std::fmt::Display for Cursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}:{}:{}:{}",
            self.n,
            self.offset,
            self.service,
            String::from_utf8_lossy(&self.ts)
        )
    }
}

/// What a query found.
#[derive(Debug, Default)]
pub struct Page {
    /// The entries, oldest first, each with its cursor.
    pub hits: Vec<LogHit>,
    /// Lines skipped because they are not entries.
    pub skipped: u64,
}

/// An entry read, with its place.
struct Found {
    key: Cursor,
    entry: LogEntry,
}

impl PartialEq for Found {
    fn eq(&self, other: &Found) -> bool {
        self.key == other.key
    }
}
impl Eq for Found {}
impl PartialOrd for Found {
    fn partial_cmp(&self, other: &Found) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Found {
    fn cmp(&self, other: &Found) -> Ordering {
        self.key.cmp(&other.key)
    }
}

/// What a stored line is to a query.
enum Judged {
    /// A matching entry.
    Found(Found),
    /// Earlier than `since`.
    Earlier,
    /// Not a match (or not an entry).
    Not,
}

/// How the raw bytes of a line are matched before it is parsed.
struct Matcher {
    since: Option<String>,
    level: Option<LogLevel>,
    /// The lowercased text, when a line's raw bytes can be searched for it (ASCII, nothing
    /// JSON escapes).
    raw: Option<memchr::memmem::Finder<'static>>,
    contains: Option<String>,
}

impl Matcher {
    fn new(query: &Query) -> Matcher {
        let raw = query.contains.as_ref().and_then(|text| {
            let plain = text
                .bytes()
                .all(|b| b.is_ascii() && !b.is_ascii_control() && b != b'"' && b != b'\\');
            plain.then(|| memchr::memmem::Finder::new(text.as_bytes()).into_owned())
        });
        Matcher {
            since: query.since.clone(),
            level: query.level,
            raw,
            contains: query.contains.clone(),
        }
    }

    /// Whether `line` may match (a cheap look at its bytes).
    fn may(&self, line: &[u8], lower: &mut Vec<u8>) -> bool {
        if let Some(level) = self.level
            && store::level_of(line).is_some_and(|l| l < level)
        {
            return false;
        }
        if let Some(finder) = &self.raw {
            lower.clear();
            lower.extend(line.iter().map(u8::to_ascii_lowercase));
            return finder.find(lower).is_some();
        }
        true
    }

    /// What line `line` (at `offset` of segment `n` of service `id`) is to a query: a match,
    /// earlier than `since`, or neither (a line that is not an entry counts in `skipped`).
    fn judge(
        &self,
        id: &str,
        n: u64,
        offset: u64,
        line: &[u8],
        lower: &mut Vec<u8>,
        skipped: &mut u64,
    ) -> Judged {
        let Some(ts) = store::ts_of(line) else {
            *skipped += 1;
            return Judged::Not;
        };
        if self.since.as_ref().is_some_and(|s| ts < s.as_bytes()) {
            return Judged::Earlier;
        }
        if !self.may(line, lower) {
            return Judged::Not;
        }
        let Ok(entry) = serde_json::from_slice::<LogEntry>(line) else {
            *skipped += 1;
            return Judged::Not;
        };
        if !self.matches(&entry) {
            return Judged::Not;
        }
        Judged::Found(Found {
            key: Cursor {
                ts: ts.to_vec(),
                service: id.to_owned(),
                n,
                offset,
            },
            entry,
        })
    }

    /// Whether the parsed `entry` matches.
    fn matches(&self, entry: &LogEntry) -> bool {
        self.level.is_none_or(|level| entry.level >= level)
            && self
                .contains
                .as_ref()
                .is_none_or(|text| entry.message.to_lowercase().contains(text.as_str()))
    }
}

/// The segment files of one service, opened together (so a segment sealed meanwhile is not
/// mistaken for another).
fn open_segments(home: &Home, id: &str) -> Vec<(Segment, File, u64)> {
    for _ in 0..3 {
        let listed = store::segments(home, id);
        let opened: Vec<(Segment, File, u64)> = listed
            .iter()
            .filter_map(|s| {
                let file = File::open(&s.path).ok()?;
                let len = file.metadata().ok()?.len();
                Some((s.clone(), file, len))
            })
            .collect();
        if store::segments(home, id) == listed {
            return opened;
        }
    }
    Vec::new()
}

/// The end of the last whole line of `file` (`len` bytes): a line being written is not read.
fn whole_lines_end(file: &File, len: u64) -> std::io::Result<u64> {
    use std::io::{Read, Seek, SeekFrom};
    if len == 0 {
        return Ok(0);
    }
    let mut last = [0u8; 1];
    let mut f = file;
    f.seek(SeekFrom::Start(len - 1))?;
    f.read_exact(&mut last)?;
    if last[0] == b'\n' {
        return Ok(len);
    }
    // Back to the start of the torn line.
    Ok(Backward::new(file.try_clone()?, 0, len)
        .next_line()?
        .map_or(0, |(offset, _)| offset))
}

/// Where the lines that can match end in a segment: before `until`, and before the cursor.
fn end_of(
    seg: &Segment,
    file: &File,
    len: u64,
    id: &str,
    query: &Query,
) -> std::io::Result<Option<u64>> {
    let mut end = if seg.active {
        whole_lines_end(file, len)?
    } else {
        len
    };
    let mut bound = |ts: &[u8]| -> std::io::Result<()> {
        let at = store::first_at_or_after(file, end, ts)?;
        end = end.min(at);
        Ok(())
    };
    if let Some(until) = &query.until {
        bound(until.as_bytes())?;
    }
    if let Some(cursor) = &query.before {
        match id.cmp(&cursor.service) {
            Ordering::Equal => {
                if seg.n > cursor.n {
                    return Ok(None);
                }
                if seg.n == cursor.n {
                    end = end.min(cursor.offset);
                }
            }
            // Entries at the cursor's time come before it when their service sorts first.
            Ordering::Less => {
                let mut after = cursor.ts.clone();
                after.push(0);
                bound(&after)?;
            }
            Ordering::Greater => bound(&cursor.ts)?,
        }
    }
    Ok(Some(end))
}

/// One service's matching entries, newest first.
struct Newest<'q> {
    id: String,
    segments: Vec<(Segment, File, u64)>,
    lines: Option<(u64, Backward)>,
    query: &'q Query,
    matcher: &'q Matcher,
    lower: Vec<u8>,
    done: bool,
}

impl Newest<'_> {
    fn next(&mut self, skipped: &mut u64) -> std::io::Result<Option<Found>> {
        while !self.done {
            let Some((n, lines)) = self.lines.as_mut() else {
                let Some((seg, file, len)) = self.segments.pop() else {
                    self.done = true;
                    break;
                };
                if let Some(end) = end_of(&seg, &file, len, &self.id, self.query)? {
                    self.lines = Some((seg.n, Backward::new(file, 0, end)));
                }
                continue;
            };
            let n = *n;
            let Some((offset, line)) = lines.next_line()? else {
                self.lines = None;
                continue;
            };
            match self
                .matcher
                .judge(&self.id, n, offset, &line, &mut self.lower, skipped)
            {
                Judged::Found(found) => return Ok(Some(found)),
                Judged::Earlier => {
                    // Older still are older: this service is done.
                    self.done = true;
                    break;
                }
                Judged::Not => {}
            }
        }
        Ok(None)
    }
}

/// The services a query reads.
fn services(home: &Home, query: &Query) -> Vec<String> {
    match &query.services {
        Some(ids) => ids.clone(),
        None => store::ids(home),
    }
}

/// Runs `query` on `home`'s store: the newest `limit` matching entries, oldest first.
pub fn query(home: &Home, query: &Query) -> Result<Page> {
    let limit = query.limit.unwrap_or(MAX_LIMIT).min(MAX_LIMIT);
    let matcher = Matcher::new(query);
    let mut readers: Vec<Newest<'_>> = services(home, query)
        .into_iter()
        .map(|id| Newest {
            segments: open_segments(home, &id),
            id,
            lines: None,
            query,
            matcher: &matcher,
            lower: Vec::new(),
            done: false,
        })
        .collect();
    let mut skipped = 0;
    let logs = home.logs_dir();
    let mut heap: BinaryHeap<(Found, usize)> = BinaryHeap::new();
    for (i, reader) in readers.iter_mut().enumerate() {
        if let Some(found) = reader
            .next(&mut skipped)
            .map_err(Error::io("read", &logs))?
        {
            heap.push((found, i));
        }
    }
    let mut hits = Vec::with_capacity(limit.min(1024));
    while hits.len() < limit {
        let Some((found, i)) = heap.pop() else {
            break;
        };
        if let Some(next) = readers[i]
            .next(&mut skipped)
            .map_err(Error::io("read", &logs))?
        {
            heap.push((next, i));
        }
        hits.push(LogHit {
            cursor: Some(found.key.to_string()),
            entry: found.entry,
        });
    }
    hits.reverse();
    Ok(Page { hits, skipped })
}

/// One service's matching entries, oldest first.
struct Oldest<'q> {
    id: String,
    segments: std::vec::IntoIter<(Segment, File, u64)>,
    lines: Option<(u64, Forward)>,
    query: &'q Query,
    matcher: &'q Matcher,
    lower: Vec<u8>,
}

impl Oldest<'_> {
    fn next(&mut self, skipped: &mut u64) -> std::io::Result<Option<Found>> {
        loop {
            let Some((n, lines)) = self.lines.as_mut() else {
                let Some((seg, file, len)) = self.segments.next() else {
                    return Ok(None);
                };
                let Some(end) = end_of(&seg, &file, len, &self.id, self.query)? else {
                    // Segments after the cursor's: nothing more.
                    return Ok(None);
                };
                let start = match &self.query.since {
                    Some(since) => store::first_at_or_after(&file, end, since.as_bytes())?,
                    None => 0,
                };
                self.lines = Some((seg.n, Forward::new(file, start, end)?));
                continue;
            };
            let n = *n;
            let Some((offset, line)) = lines.next_line()? else {
                self.lines = None;
                continue;
            };
            // Lines before `since` were skipped by bisection; one out of order is passed over.
            if let Judged::Found(found) =
                self.matcher
                    .judge(&self.id, n, offset, &line, &mut self.lower, skipped)
            {
                return Ok(Some(found));
            }
        }
    }
}

/// Every entry matching `query`, oldest first, merged across services, handed to `each` one
/// at a time (nothing is gathered: memory does not grow with the number of entries). With a
/// `limit`, the newest `limit` of them. Answers how many were handed and how many lines were
/// skipped.
pub fn for_each(
    home: &Home,
    query: &Query,
    mut each: impl FnMut(&LogEntry) -> std::io::Result<()>,
) -> Result<(u64, u64)> {
    let logs = home.logs_dir();
    if query.limit.is_some() {
        let page = self::query(home, query)?;
        for hit in &page.hits {
            each(&hit.entry).map_err(Error::io("write", &logs))?;
        }
        return Ok((page.hits.len() as u64, page.skipped));
    }
    let matcher = Matcher::new(query);
    let mut readers: Vec<Oldest<'_>> = services(home, query)
        .into_iter()
        .map(|id| Oldest {
            segments: open_segments(home, &id).into_iter(),
            id,
            lines: None,
            query,
            matcher: &matcher,
            lower: Vec::new(),
        })
        .collect();
    let mut skipped = 0;
    let mut heap: BinaryHeap<std::cmp::Reverse<(Found, usize)>> = BinaryHeap::new();
    for (i, reader) in readers.iter_mut().enumerate() {
        if let Some(found) = reader
            .next(&mut skipped)
            .map_err(Error::io("read", &logs))?
        {
            heap.push(std::cmp::Reverse((found, i)));
        }
    }
    let mut count = 0;
    while let Some(std::cmp::Reverse((found, i))) = heap.pop() {
        each(&found.entry).map_err(Error::io("write", &logs))?;
        count += 1;
        if let Some(next) = readers[i]
            .next(&mut skipped)
            .map_err(Error::io("read", &logs))?
        {
            heap.push(std::cmp::Reverse((next, i)));
        }
    }
    Ok((count, skipped))
}

/// A written export.
#[derive(Debug)]
pub struct Export {
    /// The file, relative to the home (`app/logs/exports/postgres-info-2025-01-01.log`).
    pub path: String,
    /// Entries written.
    pub entries: u64,
    /// Lines skipped because they are not entries.
    pub skipped: u64,
}

/// One entry as a line of a text export: `2025-01-01T00:00:12.000Z INFO  postgres: ready`.
pub fn text_line(entry: &LogEntry) -> String {
    format!(
        "{} {:<5} {}: {}",
        entry.ts,
        entry.level.as_str().to_uppercase(),
        entry.service,
        entry.message
    )
}

/// `logs.export`: writes the entries matching `query` to
/// `app/logs/exports/<service|all>-<level|all>-<date>[-n].log` (`.jsonl` for JSON lines), 0600,
/// streaming. A file that cannot be written is removed (no partial export is left) and the
/// error names it.
pub fn export(home: &Home, query: &Query, format: ExportFormat, date: &str) -> Result<Export> {
    let dir = home.logs_exports();
    kojibox_home::fs::create_dir(home, &dir)?;
    let who = match &query.services {
        Some(ids) => ids.join("+"),
        None => "all".to_owned(),
    };
    let level = query.level.map_or("all", LogLevel::as_str);
    let ext = match format {
        ExportFormat::Text => "log",
        ExportFormat::Jsonl => "jsonl",
    };
    let stem = format!("{who}-{level}-{date}");
    let tmp = dir.join(format!(
        ".{stem}.{}.tmp",
        kojibox_home::clock::now().replace([':', '.'], "")
    ));
    let first = dir.join(format!("{stem}.{ext}"));
    let written = write_export(home, &tmp, query, format);
    let (entries, skipped) = match written {
        Ok(counts) => counts,
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            return Err(match e {
                // A write error names the export, not the temporary file.
                Error::Home(kojibox_home::Error::Io {
                    action: "write",
                    source,
                    ..
                }) => Error::Home(kojibox_home::Error::Io {
                    action: "write",
                    path: first,
                    source,
                }),
                other => other,
            });
        }
    };
    // The first free name: `-2`, `-3`... after an export of the same day.
    let mut n = 1;
    let path = loop {
        let path = if n == 1 {
            first.clone()
        } else {
            dir.join(format!("{stem}-{n}.{ext}"))
        };
        match std::fs::hard_link(&tmp, &path) {
            Ok(()) => break path,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && n < 10_000 => n += 1,
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                return Err(Error::io("create", &path)(e));
            }
        }
    };
    let _ = std::fs::remove_file(&tmp);
    let _ = kojibox_home::fs::sync_dir(&dir);
    Ok(Export {
        path: home.rel(&path),
        entries,
        skipped,
    })
}

fn write_export(
    home: &Home,
    tmp: &Path,
    query: &Query,
    format: ExportFormat,
) -> Result<(u64, u64)> {
    let file = kojibox_home::fs::open_append_private(home, tmp)?;
    let mut out = std::io::BufWriter::with_capacity(256 << 10, file);
    let (entries, skipped) = for_each(home, query, |entry| {
        match format {
            ExportFormat::Text => out.write_all(text_line(entry).as_bytes())?,
            ExportFormat::Jsonl => serde_json::to_writer(&mut out, entry)?,
        }
        out.write_all(b"\n")
    })
    .map_err(|e| match e {
        Error::Home(kojibox_home::Error::Io {
            action: "write",
            source,
            ..
        }) => Error::io("write", PathBuf::from(tmp))(source),
        other => other,
    })?;
    let file = out
        .into_inner()
        .map_err(|e| Error::io("write", PathBuf::from(tmp))(e.into_error()))?;
    file.sync_all()
        .map_err(Error::io("write", PathBuf::from(tmp)))?;
    Ok((entries, skipped))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_times_parse_to_the_stores_form() {
        let now: jiff::Timestamp = "2026-12-02T10:00:00Z".parse().unwrap();
        let at = |t| parse_time("since", t, now).unwrap();
        assert_eq!(at("15m"), "2026-12-02T09:45:00.000Z");
        assert_eq!(at("1h30m"), "2026-12-02T08:30:00.000Z");
        assert_eq!(at("2d"), "2026-11-30T10:00:00.000Z");
        assert_eq!(at("2026-12-02T11:00:00+02:00"), "2026-12-02T09:00:00.000Z");
        assert_eq!(at("2026-12-02T09:00:00.5Z"), "2026-12-02T09:00:00.500Z");
        for bad in ["yesterday", "15", "m", "1h30", "-5m", ""] {
            let e = parse_time("since", bad, now).unwrap_err().to_string();
            assert!(e.starts_with("`since`"), "{bad}: {e}");
        }
    }

    #[test]
    fn cursors_round_trip_and_bad_ones_are_named() {
        let text = "12:3456:postgres:2026-12-02T07:39:13.123Z";
        assert_eq!(Cursor::parse(text).unwrap().to_string(), text);
        for bad in [
            "",
            "1:2:pg",
            "x:2:pg:2026-12-02T07:39:13.123Z",
            "1:2:../x:2026-12-02T07:39:13.123Z",
        ] {
            let e = Cursor::parse(bad).unwrap_err().to_string();
            assert!(e.contains("`before`") && e.contains("not a cursor"), "{e}");
        }
    }

    /// Services `a` and `b`, 600 entries each over several sealed segments, times interleaved
    /// (`b` one millisecond after `a`, every tenth entry of `a` at `b`'s time too), every
    /// seventh a warning mentioning `Timeout`.
    fn store() -> (tempfile::TempDir, Home, Vec<(String, String)>) {
        let dir = tempfile::tempdir().unwrap();
        let home = Home::at(dir.path()).unwrap();
        let limits = store::Limits {
            segment: 8 << 10,
            service: 1 << 30,
            total: 1 << 30,
        };
        let mut all = Vec::new();
        for id in ["a", "b"] {
            let mut writer = store::Writer::with_limits(&home, id, limits);
            for i in 0..600u64 {
                let ms = i * 2 + u64::from(id == "b" || i % 10 == 0);
                let ts = format!(
                    "2026-12-02T10:{:02}:{:02}.{:03}Z",
                    ms / 60_000,
                    ms / 1000 % 60,
                    ms % 1000
                );
                let warn = i % 7 == 0;
                let entry = LogEntry {
                    ts: ts.clone(),
                    level: if warn { LogLevel::Warn } else { LogLevel::Info },
                    service: id.to_owned(),
                    message: if warn {
                        format!("{id} {i} TimeOut")
                    } else {
                        format!("{id} {i}")
                    },
                    fields: Default::default(),
                };
                let mut line = serde_json::to_vec(&entry).unwrap();
                line.push(b'\n');
                writer.append(&line);
                if id == "a" && i == 300 {
                    writer.append(b"not an entry\n");
                }
                all.push((ts, format!("{id} {i}")));
            }
            writer.flush();
        }
        assert!(store::segments(&home, "a").len() > 5, "several segments");
        all.sort();
        (dir, home, all)
    }

    fn messages(page: &Page) -> Vec<String> {
        page.hits
            .iter()
            .map(|h| h.entry.message.trim_end_matches(" TimeOut").to_owned())
            .collect()
    }

    fn parse(filter: serde_json::Value) -> Query {
        let filter: LogFilter = serde_json::from_value(filter).unwrap();
        Query::parse(&filter, "2026-12-02T11:00:00Z".parse().unwrap(), false).unwrap()
    }

    #[test]
    fn services_merge_by_time_and_pages_go_back_across_segments_without_gaps() {
        let (_dir, home, all) = store();
        let newest = query(&home, &parse(serde_json::json!({"limit": 5}))).unwrap();
        let expected: Vec<String> = all[all.len() - 5..].iter().map(|e| e.1.clone()).collect();
        assert_eq!(messages(&newest), expected);
        // Page back 97 at a time: every entry once, in order, the corrupt line skipped.
        let mut pages: Vec<String> = Vec::new();
        let mut before: Option<String> = None;
        let mut skipped = 0;
        loop {
            let mut filter = serde_json::json!({"limit": 97});
            if let Some(cursor) = &before {
                filter["before"] = cursor.clone().into();
            }
            let page = query(&home, &parse(filter)).unwrap();
            skipped += page.skipped;
            if page.hits.is_empty() {
                break;
            }
            before = page.hits[0].cursor.clone();
            let mut older = messages(&page);
            older.extend(pages);
            pages = older;
        }
        let everything: Vec<String> = all.iter().map(|e| e.1.clone()).collect();
        assert_eq!(pages, everything);
        assert!(skipped >= 1);

        // One service, a level, text in any case, a time window.
        let only_b = query(&home, &parse(serde_json::json!({"service": "b", "level": "warn", "contains": "timeout", "limit": 10000}))).unwrap();
        let expected: Vec<String> = (0..600)
            .filter(|i| i % 7 == 0)
            .map(|i| format!("b {i}"))
            .collect();
        assert_eq!(messages(&only_b), expected);
        let window = query(&home, &parse(serde_json::json!({"since": "2026-12-02T10:00:01Z", "until": "2026-12-02T10:00:01.010Z", "limit": 10000}))).unwrap();
        let expected: Vec<String> = all
            .iter()
            .filter(|e| {
                e.0.as_str() >= "2026-12-02T10:00:01.000Z"
                    && e.0.as_str() < "2026-12-02T10:00:01.010Z"
            })
            .map(|e| e.1.clone())
            .collect();
        assert_eq!(messages(&window), expected);
        assert_eq!(expected.len(), 10);
    }

    #[test]
    fn an_export_streams_every_match_oldest_first_to_a_private_file() {
        let (_dir, home, all) = store();
        let filter: LogFilter =
            serde_json::from_value(serde_json::json!({"service": ["a", "b"]})).unwrap();
        let q = Query::parse(&filter, jiff::Timestamp::now(), true).unwrap();
        let first = export(&home, &q, ExportFormat::Text, "2026-12-02").unwrap();
        assert_eq!(first.path, "app/logs/exports/a+b-all-2026-12-02.log");
        assert_eq!(first.entries, 1200);
        let text = std::fs::read_to_string(home.join(&first.path)).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 1200);
        for (line, (ts, message)) in lines.iter().zip(&all) {
            assert!(
                line.starts_with(ts.as_str()) && line.contains(&format!(": {message}")),
                "{line}"
            );
        }
        let second = export(&home, &q, ExportFormat::Jsonl, "2026-12-02").unwrap();
        assert_eq!(second.path, "app/logs/exports/a+b-all-2026-12-02.jsonl");
        let third = export(&home, &q, ExportFormat::Text, "2026-12-02").unwrap();
        assert_eq!(third.path, "app/logs/exports/a+b-all-2026-12-02-2.log");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(home.join(&third.path))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let leftovers: Vec<_> = std::fs::read_dir(home.logs_exports())
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty());
    }

    #[test]
    fn bad_filters_name_their_field() {
        let now = jiff::Timestamp::now();
        for (filter, field) in [
            (serde_json::json!({"limit": 0}), "`limit`"),
            (serde_json::json!({"limit": 10001}), "`limit`"),
            (serde_json::json!({"since": "1h", "until": "2h"}), "`since`"),
            (serde_json::json!({"until": "tomorrow"}), "`until`"),
            (serde_json::json!({"service": "../etc"}), "`service`"),
            (serde_json::json!({"before": "nope"}), "`before`"),
        ] {
            let filter: LogFilter = serde_json::from_value(filter).unwrap();
            let e = Query::parse(&filter, now, false).unwrap_err().to_string();
            assert!(e.starts_with(field), "{e}");
        }
        assert!(serde_json::from_value::<LogFilter>(serde_json::json!({"lvl": "warn"})).is_err());
        assert!(serde_json::from_value::<LogFilter>(serde_json::json!({"level": "loud"})).is_err());
    }
}
