//! Service logs: each output line becomes a [`LogEntry`], kept in a bounded in-memory tail,
//! appended to `app/logs/<id>.jsonl` (rotated by size) and published as `service:logLine`.
//!
//! A chatty child is never blocked by a slow reader: the pump reads the pipe as fast as the
//! child writes, the tail drops its oldest lines, the event bus drops lines for subscribers that
//! lag (they see a gap, not a stall), and the file is written through a buffer flushed whenever
//! the pipe has nothing more to give.
//!
//! Logs are private: `app/logs/` is 0700 and each file 0600, opened through the home
//! ([`kojibox_home::fs::open_append_private`]) so a link planted at `app/logs/<id>.jsonl` (or at
//! `app/logs` itself) is refused, never followed: the refusal is shown in the service's log tail
//! and the lines stay in memory only.
//!
//! Secret values the service was given are replaced by [`REDACTED`] in every line, whatever
//! their case and even when ANSI escape sequences or NUL bytes are interleaved with them
//! (`se\x1b[31mcret`), as a terminal would show them whole. Values shorter than
//! [`MIN_REDACTED`] characters are not redacted.

use std::collections::{BTreeMap, VecDeque};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::sync::Mutex;

use kojibox_home::Home;
use kojibox_manifests::event::Event;
use kojibox_manifests::model::{LogEntry, LogLevel};
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::sync::broadcast;

/// Lines kept in memory per service.
pub const TAIL_LINES: usize = 2000;
/// Size at which a log file is rotated.
pub const ROTATE_BYTES: u64 = 10 << 20;
/// Rotated files kept (`<id>.1.jsonl` … `<id>.N.jsonl`).
pub const ROTATE_KEEP: u32 = 3;
/// Longest line kept; longer lines are cut (and marked).
pub const MAX_LINE: usize = 16 << 10;

/// Secret values shorter than this many characters are not redacted: matched without regard to
/// case, a value of one to three characters would be found inside ordinary words and garble
/// every line, and a secret that short can be guessed anyway, so redacting it would only hide
/// that it is too weak.
pub const MIN_REDACTED: usize = 4;

/// What replaces a secret value in a log line.
pub const REDACTED: &str = "[redacted]";

/// One service's log.
pub struct LogSink {
    id: String,
    /// Secret values the running process was given: never written to a log.
    redactions: std::sync::RwLock<Vec<String>>,
    tail: Mutex<VecDeque<LogEntry>>,
    file: Mutex<LogFile>,
    events: broadcast::Sender<Event>,
}

struct LogFile {
    home: Home,
    path: PathBuf,
    writer: Option<BufWriter<File>>,
    size: u64,
    /// Why the file could not be opened (reported once; the lines stay in memory only).
    refused: Option<String>,
}

impl LogSink {
    /// A sink for service `id` of `home` writing to `app/logs/<id>.jsonl` (rotated files beside
    /// it).
    pub fn new(id: &str, home: &Home, events: broadcast::Sender<Event>) -> LogSink {
        LogSink {
            id: id.to_owned(),
            redactions: std::sync::RwLock::new(Vec::new()),
            tail: Mutex::new(VecDeque::new()),
            file: Mutex::new(LogFile {
                home: home.clone(),
                path: home.service_log(id),
                writer: None,
                size: 0,
                refused: None,
            }),
            events,
        }
    }

    /// Records one line the service printed.
    pub fn line(&self, message: &str, stream: &str, pid: Option<u32>) {
        let mut fields = BTreeMap::from([("stream".to_owned(), stream.to_owned())]);
        if let Some(pid) = pid {
            fields.insert("pid".into(), pid.to_string());
        }
        self.push(LogEntry {
            ts: kojibox_home::clock::now(),
            level: infer_level(message),
            service: self.id.clone(),
            message: message.to_owned(),
            fields,
        });
    }

    /// Records a note of the launcher's about this service (starting, exited, setup output...).
    pub fn note(&self, level: LogLevel, message: impl Into<String>) {
        let fields = BTreeMap::from([("stream".to_owned(), "kojibox".to_owned())]);
        self.push(LogEntry {
            ts: kojibox_home::clock::now(),
            level,
            service: self.id.clone(),
            message: message.into(),
            fields,
        });
    }

    /// Replaces the secret values redacted from every line (those the service was spawned with).
    pub fn redact(&self, values: Vec<String>) {
        // Output is logged line by line: each line of a multi-line secret (a PEM key) too.
        let mut values: Vec<String> = values
            .iter()
            .flat_map(|v| {
                std::iter::once(v.clone()).chain(
                    v.lines()
                        .map(|l| l.trim_end_matches('\r').to_owned())
                        .filter(move |l| l != v),
                )
            })
            .filter(|v| v.chars().count() >= MIN_REDACTED)
            // Matched without regard to case, ANSI escapes or NULs (see `redact_line`).
            .map(|v| fold(&v).into_iter().map(|(c, _)| c).collect::<String>())
            .filter(|v| v.chars().count() >= MIN_REDACTED)
            .collect();
        values.sort();
        values.dedup();
        // Longest first, so a secret containing another is replaced whole.
        values.sort_by_key(|v| std::cmp::Reverse(v.len()));
        if let Ok(mut redactions) = self.redactions.write() {
            *redactions = values;
        }
    }

    fn push(&self, mut entry: LogEntry) {
        if let Ok(redactions) = self.redactions.read()
            && !redactions.is_empty()
        {
            entry.message = redact_line(&entry.message, &redactions);
        }
        let refused = self
            .file
            .lock()
            .ok()
            .and_then(|mut file| file.append(&entry));
        if let Some(refused) = refused {
            // Once: the file is not written, and the reason is where the user looks first.
            self.remember(LogEntry {
                ts: entry.ts.clone(),
                level: LogLevel::Error,
                service: self.id.clone(),
                message: format!("kojibox is not writing this log to a file: {refused}"),
                fields: BTreeMap::from([("stream".to_owned(), "kojibox".to_owned())]),
            });
        }
        self.remember(entry);
    }

    /// Keeps `entry` in the tail and publishes it.
    fn remember(&self, entry: LogEntry) {
        if let Ok(mut tail) = self.tail.lock() {
            if tail.len() == TAIL_LINES {
                tail.pop_front();
            }
            tail.push_back(entry.clone());
        }
        // No subscriber is fine; a lagging one loses lines rather than slowing anything.
        let _ = self.events.send(Event::ServiceLogLine(entry));
    }

    /// Flushes buffered file output.
    pub fn flush(&self) {
        if let Ok(mut file) = self.file.lock()
            && let Some(writer) = file.writer.as_mut()
        {
            let _ = writer.flush();
        }
    }

    /// The newest `n` entries, oldest first.
    pub fn tail(&self, n: usize) -> Vec<LogEntry> {
        // Clone only what is asked for: the lock is shared with the pump.
        let Ok(tail) = self.tail.lock() else {
            return Vec::new();
        };
        tail.iter()
            .skip(tail.len().saturating_sub(n))
            .cloned()
            .collect()
    }

    /// The last few lines process `pid` printed (not kojibox's notes, not an earlier run's) as
    /// one string, for an error message.
    pub fn last_lines(&self, pid: u32, n: usize) -> String {
        let pid = pid.to_string();
        let Ok(tail) = self.tail.lock() else {
            return "(no output)".to_owned();
        };
        let mut lines: Vec<String> = tail
            .iter()
            .rev()
            .filter(|e| e.fields.get("stream").is_some_and(|s| s != "kojibox"))
            .filter(|e| e.fields.get("pid") == Some(&pid))
            .take(n)
            .map(|e| e.message.clone())
            .collect();
        drop(tail);
        lines.reverse();
        if lines.is_empty() {
            "(no output)".to_owned()
        } else {
            lines.join(" | ")
        }
    }
}

impl LogFile {
    /// Appends `entry`; answers why the file cannot be written the first time it cannot be.
    fn append(&mut self, entry: &LogEntry) -> Option<String> {
        if self.writer.is_none() {
            if self.refused.is_some() {
                return None;
            }
            // `app/logs` 0700, the file 0600, never through a link planted in the home.
            match kojibox_home::fs::open_append_private(&self.home, &self.path) {
                Ok(file) => {
                    self.size = file.metadata().map(|m| m.len()).unwrap_or(0);
                    self.writer = Some(BufWriter::with_capacity(64 << 10, file));
                }
                Err(e) => {
                    self.refused = Some(e.to_string());
                    return self.refused.clone();
                }
            }
        }
        let Ok(mut line) = serde_json::to_vec(entry) else {
            return None;
        };
        line.push(b'\n');
        if let Some(writer) = self.writer.as_mut()
            && writer.write_all(&line).is_ok()
        {
            self.size += line.len() as u64;
        }
        if self.size >= ROTATE_BYTES {
            self.rotate();
        }
        None
    }

    fn rotate(&mut self) {
        if let Some(mut writer) = self.writer.take() {
            let _ = writer.flush();
        }
        kojibox_home::fs::rotate(&self.path, ROTATE_KEEP);
        self.size = 0;
    }
}

/// `text` as a terminal would show it, for matching: ANSI escape sequences and NUL (and other
/// invisible control) characters dropped, every character lowercased; each kept character with
/// the byte range of `text` it came from.
fn fold(text: &str) -> Vec<(char, std::ops::Range<usize>)> {
    let mut out = Vec::with_capacity(text.len());
    let mut chars = text.char_indices().peekable();
    while let Some((at, c)) = chars.next() {
        match c {
            '\u{1b}' => skip_escape(&mut chars),
            // CSI as one C1 character.
            '\u{9b}' => skip_csi(&mut chars),
            '\t' => out.push((c, at..at + 1)),
            c if c.is_control() => {}
            c => {
                let range = at..at + c.len_utf8();
                out.extend(c.to_lowercase().map(|l| (l, range.clone())));
            }
        }
    }
    out
}

type Chars<'a> = std::iter::Peekable<std::str::CharIndices<'a>>;

/// Skips what follows an ESC: a CSI (`ESC [ … final`), an OSC or another string (`ESC ] …`
/// ended by BEL or `ESC \`), or a two-character sequence.
fn skip_escape(chars: &mut Chars<'_>) {
    match chars.next() {
        Some((_, '[')) => skip_csi(chars),
        Some((_, ']' | 'P' | 'X' | '^' | '_')) => {
            while let Some((_, c)) = chars.next() {
                if c == '\u{7}' {
                    break;
                }
                if c == '\u{1b}' {
                    chars.next_if(|(_, c)| *c == '\\');
                    break;
                }
            }
        }
        // Intermediate bytes, then the final one (`ESC ( B`).
        Some((_, ' '..='/')) => {
            while chars.next_if(|(_, c)| (' '..='/').contains(c)).is_some() {}
            chars.next();
        }
        _ => {}
    }
}

/// Skips a CSI's parameter and intermediate bytes and its final byte.
fn skip_csi(chars: &mut Chars<'_>) {
    while chars
        .next_if(|(_, c)| ('\u{20}'..='\u{3f}').contains(c))
        .is_some()
    {}
    chars.next_if(|(_, c)| ('\u{40}'..='\u{7e}').contains(c));
}

/// `line` with every occurrence of a value of `folded` (values already [`fold`]ed, longest
/// first) replaced by [`REDACTED`], matched on the line as [`fold`] shows it: any case, across
/// escapes and NULs. A run of escapes inside a match goes with it.
fn redact_line(line: &str, folded: &[String]) -> String {
    let shown = fold(line);
    let text: Vec<char> = shown.iter().map(|(c, _)| *c).collect();
    let mut hidden = vec![false; line.len()];
    let mut any = false;
    for value in folded {
        let value: Vec<char> = value.chars().collect();
        if value.is_empty() || value.len() > text.len() {
            continue;
        }
        let mut i = 0;
        while i + value.len() <= text.len() {
            if text[i..i + value.len()] == value[..] {
                let (start, end) = (shown[i].1.start, shown[i + value.len() - 1].1.end);
                hidden[start..end].iter_mut().for_each(|h| *h = true);
                any = true;
                i += value.len();
            } else {
                i += 1;
            }
        }
    }
    if !any {
        return line.to_owned();
    }
    let mut out = String::with_capacity(line.len());
    let mut in_secret = false;
    for (at, c) in line.char_indices() {
        if hidden[at] {
            if !in_secret {
                out.push_str(REDACTED);
                in_secret = true;
            }
        } else {
            out.push(c);
            in_secret = false;
        }
    }
    out
}

/// Reads lines from a child's pipe into `sink` until the pipe closes.
pub async fn pump(
    pipe: impl AsyncRead + Unpin,
    stream: &'static str,
    pid: u32,
    sink: std::sync::Arc<LogSink>,
) {
    let mut reader = BufReader::with_capacity(64 << 10, pipe);
    let mut buf = Vec::with_capacity(1024);
    loop {
        buf.clear();
        match read_line_capped(&mut reader, &mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {
                while buf.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
                    buf.pop();
                }
                sink.line(&String::from_utf8_lossy(&buf), stream, Some(pid));
                if reader.buffer().is_empty() {
                    sink.flush();
                }
            }
        }
    }
    sink.flush();
}

/// Reads one line, keeping at most [`MAX_LINE`] bytes of it (the rest is skipped).
async fn read_line_capped<R: AsyncRead + Unpin>(
    reader: &mut BufReader<R>,
    buf: &mut Vec<u8>,
) -> std::io::Result<usize> {
    let mut total = 0;
    loop {
        let available = reader.fill_buf().await?;
        if available.is_empty() {
            return Ok(total);
        }
        let (chunk, done) = match available.iter().position(|b| *b == b'\n') {
            Some(i) => (&available[..=i], true),
            None => (available, false),
        };
        let room = MAX_LINE.saturating_sub(buf.len());
        buf.extend_from_slice(&chunk[..chunk.len().min(room)]);
        let used = chunk.len();
        total += used;
        reader.consume(used);
        if done {
            return Ok(total);
        }
    }
}

/// The level a line announces: `ERROR`, `FATAL`, `PANIC`, `CRITICAL` -> error; `WARN`,
/// `WARNING` -> warn; `DEBUG`, `TRACE` -> debug; otherwise info. Only whole words near the start
/// count (`level=error`, `[WARN]`, PostgreSQL's `FATAL:`), so a message that merely mentions an
/// error later on stays info.
pub fn infer_level(line: &str) -> LogLevel {
    let head: String = line
        .chars()
        .take(96)
        .collect::<String>()
        .to_ascii_lowercase();
    let mut level = LogLevel::Info;
    for word in head
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
    {
        let found = match word {
            "error" | "err" | "fatal" | "panic" | "critical" | "crit" | "emerg" | "alert" => {
                LogLevel::Error
            }
            "warn" | "warning" => LogLevel::Warn,
            "debug" | "trace" | "debug1" | "debug2" | "debug3" | "debug4" | "debug5" => {
                LogLevel::Debug
            }
            _ => continue,
        };
        // The first level word wins: it is the line's own level, not something it mentions.
        level = found;
        break;
    }
    level
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_values_and_each_line_of_a_multi_line_one_are_redacted() {
        let dir = tempfile::tempdir().unwrap();
        let (events, _) = broadcast::channel(16);
        let sink = LogSink::new("svc", &Home::at(dir.path()).unwrap(), events);
        sink.redact(vec![
            "hunter2-long".into(),
            "-----BEGIN KEY-----\r\nAAAABBBBCCCC\n-----END KEY-----".into(),
            "abc".into(),
        ]);
        for line in [
            "password=hunter2-long ok",
            "-----BEGIN KEY-----",
            "AAAABBBBCCCC",
            "abc stays: too short to redact",
        ] {
            sink.line(line, "stdout", None);
        }
        sink.note(LogLevel::Info, "note with hunter2-long");
        let lines: Vec<String> = sink.tail(10).into_iter().map(|e| e.message).collect();
        assert_eq!(
            lines,
            [
                "password=[redacted] ok",
                "[redacted]",
                "[redacted]",
                "abc stays: too short to redact",
                "note with [redacted]",
            ]
        );
        sink.flush();
        let file = std::fs::read_to_string(dir.path().join("app/logs/svc.jsonl")).unwrap();
        assert!(
            !file.contains("hunter2") && !file.contains("AAAABBBB"),
            "{file}"
        );
    }

    #[test]
    fn case_variants_and_secrets_split_by_escapes_or_nuls_are_redacted() {
        let dir = tempfile::tempdir().unwrap();
        let (events, _) = broadcast::channel(16);
        let sink = LogSink::new("svc", &Home::at(dir.path()).unwrap(), events);
        sink.redact(vec!["Secret-Value".into(), "xyz".into()]);
        for line in [
            "a SeCrEt-VaLuE b",
            "SECRET-VALUE",
            "se\x1b[31mcret-va\x1b[0mlue!",
            "se\0cret-value",
            "s\x1b]0;title\x07ecret-value",
            "\x1b[1mred\x1b[0m stays",
            "XYZ too short",
            "secret-valu is not it",
        ] {
            sink.line(line, "stdout", None);
        }
        let lines: Vec<String> = sink.tail(10).into_iter().map(|e| e.message).collect();
        assert_eq!(
            lines,
            [
                "a [redacted] b",
                "[redacted]",
                "[redacted]!",
                "[redacted]",
                "[redacted]",
                "\x1b[1mred\x1b[0m stays",
                "XYZ too short",
                "secret-valu is not it",
            ]
        );
        sink.flush();
        let file = std::fs::read_to_string(dir.path().join("app/logs/svc.jsonl")).unwrap();
        assert!(!file.to_lowercase().contains("value"), "{file}");
    }

    #[cfg(unix)]
    #[test]
    fn log_folder_is_0700_and_files_0600() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let (events, _) = broadcast::channel(16);
        let sink = LogSink::new("svc", &Home::at(dir.path()).unwrap(), events);
        sink.line("hello", "stdout", None);
        sink.flush();
        let mode = |p: &str| {
            std::fs::metadata(dir.path().join(p))
                .unwrap()
                .permissions()
                .mode()
                & 0o7777
        };
        assert_eq!(mode("app/logs"), 0o700);
        assert_eq!(mode("app/logs/svc.jsonl"), 0o600);
        assert_eq!(mode("app"), 0o755);
    }

    #[cfg(unix)]
    #[test]
    fn a_link_planted_as_the_log_file_is_never_written_through() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "untouched\n").unwrap();
        std::fs::create_dir_all(dir.path().join("app/logs")).unwrap();
        std::os::unix::fs::symlink(&victim, dir.path().join("app/logs/svc.jsonl")).unwrap();
        let (events, _) = broadcast::channel(16);
        let sink = LogSink::new("svc", &Home::at(dir.path()).unwrap(), events);
        sink.line("attacker-chosen content", "stdout", None);
        sink.line("more", "stdout", None);
        sink.flush();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "untouched\n");
        let lines: Vec<String> = sink.tail(10).into_iter().map(|e| e.message).collect();
        assert_eq!(lines.len(), 3, "{lines:?}");
        assert!(
            lines[0].contains("not writing this log to a file")
                && lines[0].contains("app/logs/svc.jsonl is a symbolic link"),
            "{lines:?}"
        );
        assert!(
            std::fs::symlink_metadata(dir.path().join("app/logs/svc.jsonl"))
                .unwrap()
                .file_type()
                .is_symlink()
        );
    }

    #[test]
    fn levels_are_inferred_from_the_lines_own_marker() {
        let cases = [
            (
                "2026-01-01 00:00:00.000 UTC [42] LOG:  database system is ready to accept connections",
                LogLevel::Info,
            ),
            (
                "2026-01-01 00:00:00.000 UTC [42] FATAL:  role \"x\" does not exist",
                LogLevel::Error,
            ),
            (
                "2026-01-01 00:00:00.000 UTC [42] WARNING:  could not flush dirty data",
                LogLevel::Warn,
            ),
            ("level=error msg=\"boom\"", LogLevel::Error),
            ("[WARN] disk almost full", LogLevel::Warn),
            ("{\"level\":\"debug\",\"msg\":\"tick\"}", LogLevel::Debug),
            ("PHP Fatal error:  Uncaught Exception", LogLevel::Error),
            ("listening on 127.0.0.1:8025", LogLevel::Info),
            ("terror is not a level", LogLevel::Info),
        ];
        for (line, level) in cases {
            assert_eq!(infer_level(line), level, "{line}");
        }
    }

    #[test]
    fn tail_is_bounded_and_ordered() {
        let (tx, _rx) = broadcast::channel(4);
        let dir = tempfile::tempdir().unwrap();
        let sink = LogSink::new("svc", &Home::at(dir.path()).unwrap(), tx);
        for i in 0..TAIL_LINES + 10 {
            sink.line(&format!("line {i}"), "stdout", Some(1));
        }
        let tail = sink.tail(3);
        let messages: Vec<_> = tail.iter().map(|e| e.message.as_str()).collect();
        assert_eq!(
            messages,
            [
                format!("line {}", TAIL_LINES + 7),
                format!("line {}", TAIL_LINES + 8),
                format!("line {}", TAIL_LINES + 9)
            ]
        );
        assert_eq!(sink.tail(usize::MAX).len(), TAIL_LINES);
        assert_eq!(tail[0].fields["pid"], "1");
        assert_eq!(tail[0].fields["stream"], "stdout");
        sink.flush();
        let written = std::fs::read_to_string(dir.path().join("app/logs/svc.jsonl")).unwrap();
        assert_eq!(written.lines().count(), TAIL_LINES + 10);
        sink.note(LogLevel::Info, "a note of kojibox's");
        assert_eq!(
            sink.last_lines(1, 2),
            format!("line {} | line {}", TAIL_LINES + 8, TAIL_LINES + 9)
        );
        sink.line("the next run's line", "stderr", Some(2));
        assert_eq!(sink.last_lines(2, 2), "the next run's line");
        assert_eq!(sink.last_lines(3, 2), "(no output)");
        assert_eq!(
            sink.last_lines(1, 1),
            format!("line {}", TAIL_LINES + 9),
            "an earlier run's lines stay its own"
        );
    }

    #[test]
    fn files_rotate_by_size() {
        let (tx, _rx) = broadcast::channel(4);
        let dir = tempfile::tempdir().unwrap();
        let sink = LogSink::new("big", &Home::at(dir.path()).unwrap(), tx);
        let line = "x".repeat(8000);
        for _ in 0..(ROTATE_BYTES / 8000) * 2 + 10 {
            sink.line(&line, "stdout", None);
        }
        sink.flush();
        assert!(dir.path().join("app/logs/big.1.jsonl").is_file());
        assert!(
            std::fs::metadata(dir.path().join("app/logs/big.1.jsonl"))
                .unwrap()
                .len()
                >= ROTATE_BYTES
        );
        assert!(
            std::fs::metadata(dir.path().join("app/logs/big.jsonl"))
                .unwrap()
                .len()
                < ROTATE_BYTES
        );
    }
}
