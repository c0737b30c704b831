//! Service logs: each output line becomes a [`LogEntry`], kept in a bounded in-memory tail,
//! appended to `app/logs/<id>.jsonl` (rotated by size) and published as `service:logLine`.
//!
//! A chatty child is never blocked by a slow reader: the pump reads the pipe as fast as the
//! child writes, the tail drops its oldest lines, the event bus drops lines for subscribers that
//! lag (they see a gap, not a stall), and the file is written through a buffer flushed whenever
//! the pipe has nothing more to give.

use std::collections::{BTreeMap, VecDeque};
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::sync::Mutex;

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

/// Secret values shorter than this are not redacted (it would garble every line).
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
    path: PathBuf,
    writer: Option<BufWriter<File>>,
    size: u64,
}

impl LogSink {
    /// A sink for service `id` writing to `path` (`app/logs/<id>.jsonl`; rotated files beside it).
    pub fn new(id: &str, path: PathBuf, events: broadcast::Sender<Event>) -> LogSink {
        LogSink {
            id: id.to_owned(),
            redactions: std::sync::RwLock::new(Vec::new()),
            tail: Mutex::new(VecDeque::new()),
            file: Mutex::new(LogFile {
                path,
                writer: None,
                size: 0,
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
            .filter(|v| v.len() >= MIN_REDACTED)
            .collect();
        values.dedup();
        // Longest first, so a secret containing another is replaced whole.
        values.sort_by_key(|v| std::cmp::Reverse(v.len()));
        if let Ok(mut redactions) = self.redactions.write() {
            *redactions = values;
        }
    }

    fn push(&self, mut entry: LogEntry) {
        if let Ok(redactions) = self.redactions.read() {
            for value in redactions.iter() {
                if entry.message.contains(value.as_str()) {
                    entry.message = entry.message.replace(value.as_str(), REDACTED);
                }
            }
        }
        if let Ok(mut file) = self.file.lock() {
            file.append(&entry);
        }
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

    /// The service's own last few lines (not kojibox's notes) as one string, for an error
    /// message.
    pub fn last_lines(&self, n: usize) -> String {
        let Ok(tail) = self.tail.lock() else {
            return "(no output)".to_owned();
        };
        let mut lines: Vec<String> = tail
            .iter()
            .rev()
            .filter(|e| e.fields.get("stream").is_some_and(|s| s != "kojibox"))
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
    fn append(&mut self, entry: &LogEntry) {
        if self.writer.is_none() {
            if let Some(dir) = self.path.parent() {
                let _ = std::fs::create_dir_all(dir);
            }
            let Ok(file) = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.path)
            else {
                return;
            };
            self.size = file.metadata().map(|m| m.len()).unwrap_or(0);
            self.writer = Some(BufWriter::with_capacity(64 << 10, file));
        }
        let Ok(mut line) = serde_json::to_vec(entry) else {
            return;
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
    }

    fn rotate(&mut self) {
        if let Some(mut writer) = self.writer.take() {
            let _ = writer.flush();
        }
        let numbered = |n: u32| self.path.with_extension(format!("{n}.jsonl"));
        let _ = std::fs::remove_file(numbered(ROTATE_KEEP));
        for n in (1..ROTATE_KEEP).rev() {
            let _ = std::fs::rename(numbered(n), numbered(n + 1));
        }
        let _ = std::fs::rename(&self.path, numbered(1));
        self.size = 0;
    }
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
        let sink = LogSink::new("svc", dir.path().join("svc.jsonl"), events);
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
        let file = std::fs::read_to_string(dir.path().join("svc.jsonl")).unwrap();
        assert!(
            !file.contains("hunter2") && !file.contains("AAAABBBB"),
            "{file}"
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
        let sink = LogSink::new("svc", dir.path().join("svc.jsonl"), tx);
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
        let written = std::fs::read_to_string(dir.path().join("svc.jsonl")).unwrap();
        assert_eq!(written.lines().count(), TAIL_LINES + 10);
        sink.note(LogLevel::Info, "a note of kojibox's");
        assert_eq!(
            sink.last_lines(2),
            format!("line {} | line {}", TAIL_LINES + 8, TAIL_LINES + 9)
        );
    }

    #[test]
    fn files_rotate_by_size() {
        let (tx, _rx) = broadcast::channel(4);
        let dir = tempfile::tempdir().unwrap();
        let sink = LogSink::new("big", dir.path().join("big.jsonl"), tx);
        let line = "x".repeat(8000);
        for _ in 0..(ROTATE_BYTES / 8000) * 2 + 10 {
            sink.line(&line, "stdout", None);
        }
        sink.flush();
        assert!(dir.path().join("big.1.jsonl").is_file());
        assert!(
            std::fs::metadata(dir.path().join("big.1.jsonl"))
                .unwrap()
                .len()
                >= ROTATE_BYTES
        );
        assert!(
            std::fs::metadata(dir.path().join("big.jsonl"))
                .unwrap()
                .len()
                < ROTATE_BYTES
        );
    }
}
