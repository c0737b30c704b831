//! Service logs: each output line becomes a [`LogEntry`], kept in a bounded in-memory tail,
//! appended to the service's log in the [`store`] and published as `service:logLine`.
//!
//! **A chatty child is never slowed down.** Each pipe is read by its own task ([`pump`]), which
//! does nothing but cut what it reads at line ends and queue it, stamped with the time it was
//! read. The per-line work (level inference, redaction, the file, the tail, the event) happens
//! behind the queue on the sink's own thread. The queue is bounded in bytes ([`QUEUE_BYTES`]):
//! when the writer falls behind, the oldest queued lines are dropped, and one `warn` entry
//! (`fields.dropped`) says how many were lost, where they were. A subscriber to the event bus
//! that lags loses lines too (it sees a gap, not a stall).
//!
//! Under a flood the reader gathers instead of ping-ponging: the pipe is widened
//! ([`widen_pipe`], 1 MiB on Linux), and once more than [`FLOOD_BYTES`] came within
//! [`FLOOD_WINDOW`], the reader empties the pipe and then waits [`FLOOD_PAUSE`] before reading
//! again, so it wakes about once a millisecond for a big read rather than once per 4 KiB the
//! child writes (each such wake-up preempted the child on its own core; `bench/logs.sh`). On
//! Unix each pipe is read with blocking reads on a thread of the blocking pool ([`pump_fd`]).
//!
//! Logs are private: `app/logs/` is 0700 and each file 0600, opened through the home
//! ([`kojibox_home::fs::open_append_private`]) so a link planted at `app/logs/<id>.jsonl` (or at
//! `app/logs` itself) is refused, never followed: the refusal is shown in the service's log tail
//! and the lines stay in memory only.
//!
//! Secret values the service was given are replaced by [`REDACTED`] in every line before it is
//! kept anywhere (see [`redact`]).

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Condvar, Mutex, RwLock};
use std::time::{Duration, Instant};

use kojibox_home::Home;
use kojibox_manifests::event::Event;
use kojibox_manifests::model::{LogEntry, LogLevel};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::broadcast;

pub mod level;
pub mod query;
pub mod redact;
pub mod store;

pub use level::infer_level;
pub use redact::{MIN_REDACTED, REDACTED, Redactor};
pub use store::DAEMON_LOG;

/// Lines kept in memory per service.
pub const TAIL_LINES: usize = 2000;
/// Longest line kept; longer lines are cut.
pub const MAX_LINE: usize = 16 << 10;
/// Bytes of output queued per service before the oldest lines are dropped.
pub const QUEUE_BYTES: usize = 8 << 20;

/// One service's log.
pub struct LogSink {
    shared: Arc<Shared>,
}

/// What the sink's callers and its thread share.
struct Shared {
    id: String,
    /// Secret values the running process was given: never written to a log.
    redactor: RwLock<Redactor>,
    /// The newest entries, shared with the events that published them.
    tail: Mutex<VecDeque<Arc<LogEntry>>>,
    writer: Mutex<store::Writer>,
    events: broadcast::Sender<Event>,
    queue: Mutex<Queue>,
    ready: Condvar,
    /// Whether the sink's thread runs (else queued work is done by whoever queues it).
    threaded: bool,
}

#[derive(Default)]
struct Queue {
    items: VecDeque<Item>,
    /// Bytes of output in `items`.
    bytes: usize,
    /// Lines dropped since the last report.
    dropped: u64,
    /// Time of the newest dropped line.
    dropped_at: Option<String>,
    closed: bool,
}

enum Item {
    /// Output read at `ts`: whole lines, each ended by `\n`.
    Lines {
        ts: String,
        stream: &'static str,
        pid: Option<u32>,
        data: Vec<u8>,
    },
    /// A note of kojibox's.
    Entry(LogEntry),
    /// Called once everything queued before it is written.
    Mark(Box<dyn FnOnce() + Send>),
}

impl LogSink {
    /// A sink for service `id` of `home` writing to `app/logs/<id>.jsonl` (sealed segments
    /// beside it).
    pub fn new(id: &str, home: &Home, events: broadcast::Sender<Event>) -> LogSink {
        store::migrate(home, id);
        let mut shared = Shared {
            id: id.to_owned(),
            redactor: RwLock::new(Redactor::default()),
            tail: Mutex::new(VecDeque::new()),
            writer: Mutex::new(store::Writer::new(home, id)),
            events,
            queue: Mutex::new(Queue::default()),
            ready: Condvar::new(),
            threaded: true,
        };
        let (tx, rx) = std::sync::mpsc::channel::<Arc<Shared>>();
        let spawned = std::thread::Builder::new()
            .name(format!("log-{id}"))
            .spawn(move || {
                if let Ok(shared) = rx.recv() {
                    work(&shared);
                }
            });
        shared.threaded = spawned.is_ok();
        let shared = Arc::new(shared);
        if shared.threaded {
            let _ = tx.send(Arc::clone(&shared));
        }
        LogSink { shared }
    }

    /// The service's id.
    pub fn id(&self) -> &str {
        &self.shared.id
    }

    /// Records one line the service printed.
    pub fn line(&self, message: &str, stream: &'static str, pid: Option<u32>) {
        let mut data = Vec::with_capacity(message.len() + 1);
        data.extend_from_slice(message.as_bytes());
        data.push(b'\n');
        self.lines(data, stream, pid);
    }

    /// Queues output read now: whole lines, each ended by `\n`. When the queue holds more than
    /// [`QUEUE_BYTES`], its oldest lines are dropped (and counted).
    fn lines(&self, data: Vec<u8>, stream: &'static str, pid: Option<u32>) {
        let len = data.len();
        self.queue(
            |ts| Item::Lines {
                ts,
                stream,
                pid,
                data,
            },
            len,
        );
    }

    /// Records a note of the launcher's about this service (starting, exited, setup output...).
    pub fn note(&self, level: LogLevel, message: impl Into<String>) {
        self.note_with(level, message, BTreeMap::new());
    }

    /// A note with fields of its own (beside `stream`: `kojibox`).
    pub fn note_with(
        &self,
        level: LogLevel,
        message: impl Into<String>,
        mut fields: BTreeMap<String, String>,
    ) {
        fields.insert("stream".to_owned(), "kojibox".to_owned());
        let (service, message) = (self.shared.id.clone(), message.into());
        self.queue(
            |ts| {
                Item::Entry(LogEntry {
                    ts,
                    level,
                    service,
                    message,
                    fields,
                })
            },
            0,
        );
    }

    /// Queues an item stamped with the time, under the queue's lock: the queue, and so the
    /// file, is in time order.
    fn queue(&self, item: impl FnOnce(String) -> Item, bytes: usize) {
        let shared = &self.shared;
        {
            let Ok(mut queue) = shared.queue.lock() else {
                return;
            };
            queue.items.push_back(item(kojibox_home::clock::now()));
            queue.bytes += bytes;
            if queue.bytes > QUEUE_BYTES {
                queue.drop_oldest();
            }
        }
        if shared.threaded {
            shared.ready.notify_one();
        } else {
            drain(shared);
        }
    }

    /// Replaces the secret values redacted from every line (those the service was spawned with).
    pub fn redact(&self, values: Vec<String>) {
        if let Ok(mut redactor) = self.shared.redactor.write() {
            *redactor = Redactor::new(values);
        }
    }

    /// Waits until everything queued so far is written (and the file flushed).
    pub async fn settle(&self) {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.mark(Box::new(move || {
            let _ = tx.send(());
        }));
        let _ = rx.await;
    }

    /// Blocks until everything queued so far is written and the file flushed (at most a few
    /// seconds: a flood queued behind is not waited for).
    pub fn flush(&self) {
        let (tx, rx) = std::sync::mpsc::channel();
        self.mark(Box::new(move || {
            let _ = tx.send(());
        }));
        let _ = rx.recv_timeout(std::time::Duration::from_secs(5));
    }

    fn mark(&self, then: Box<dyn FnOnce() + Send>) {
        self.queue(|_| Item::Mark(then), 0);
    }

    /// The newest `n` entries written, oldest first.
    pub fn tail(&self, n: usize) -> Vec<LogEntry> {
        // Clone only what is asked for: the lock is shared with the writer.
        let Ok(tail) = self.shared.tail.lock() else {
            return Vec::new();
        };
        tail.iter()
            .skip(tail.len().saturating_sub(n))
            .map(|e| LogEntry::clone(e))
            .collect()
    }

    /// The last few lines process `pid` printed (not kojibox's notes, not an earlier run's) as
    /// one string, for an error message. What is queued is written first.
    pub fn last_lines(&self, pid: u32, n: usize) -> String {
        self.flush();
        let pid = pid.to_string();
        let Ok(tail) = self.shared.tail.lock() else {
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

impl Drop for LogSink {
    fn drop(&mut self) {
        // The thread writes what is queued, then ends.
        if let Ok(mut queue) = self.shared.queue.lock() {
            queue.closed = true;
        }
        self.shared.ready.notify_one();
    }
}

impl Queue {
    /// Drops the oldest queued lines (never a note or a mark) until the queue fits.
    fn drop_oldest(&mut self) {
        // Notes and marks are few and output is queued at the back: the oldest output is
        // nearly always at the front.
        let mut at = 0;
        while self.bytes > QUEUE_BYTES && at < self.items.len() {
            if !matches!(self.items[at], Item::Lines { .. }) {
                at += 1;
                continue;
            }
            if let Some(Item::Lines { ts, data, .. }) = self.items.remove(at) {
                self.bytes -= data.len();
                self.dropped += memchr::memchr_iter(b'\n', &data).count() as u64;
                self.dropped_at = Some(ts);
            }
        }
    }
}

/// How much lower than the daemon's the sink thread's priority is (nice steps).
const NICER: i32 = 10;

/// The sink's thread: writes what is queued until the sink is dropped. It runs at a lower
/// priority than the daemon (and so than the services it logs): when a service floods its output
/// and the cores are busy, the service gets the CPU and the queue drops its oldest lines, rather
/// than the service waiting for its lines to be stored.
fn work(shared: &Shared) {
    lower_priority();
    loop {
        let Ok(mut queue) = shared.queue.lock() else {
            return;
        };
        while queue.items.is_empty() && !queue.closed {
            queue = match shared.ready.wait(queue) {
                Ok(queue) => queue,
                Err(_) => return,
            };
        }
        if queue.items.is_empty() {
            // Closed, and everything written.
            return;
        }
        drop(queue);
        drain(shared);
    }
}

/// Lowers the calling thread's scheduling priority by [`NICER`] (Linux sets a nice value per
/// thread; elsewhere, and when it fails, nothing changes).
fn lower_priority() {
    #[cfg(target_os = "linux")]
    {
        let tid = rustix::thread::gettid();
        if let Ok(now) = rustix::process::getpriority_process(Some(tid)) {
            let _ = rustix::process::setpriority_process(Some(tid), (now + NICER).min(19));
        }
    }
}

/// Writes everything queued, then flushes the file.
fn drain(shared: &Shared) {
    loop {
        let (items, dropped, dropped_at) = {
            let Ok(mut queue) = shared.queue.lock() else {
                return;
            };
            if queue.items.is_empty() {
                break;
            }
            queue.bytes = 0;
            (
                std::mem::take(&mut queue.items),
                std::mem::take(&mut queue.dropped),
                queue.dropped_at.take(),
            )
        };
        if dropped > 0 {
            let message = format!(
                "kojibox dropped {dropped} line(s) of output here: the service wrote faster than \
                 they could be stored"
            );
            let fields = BTreeMap::from([
                ("stream".to_owned(), "kojibox".to_owned()),
                ("dropped".to_owned(), dropped.to_string()),
            ]);
            shared.record(vec![LogEntry {
                ts: dropped_at.unwrap_or_else(kojibox_home::clock::now),
                level: LogLevel::Warn,
                service: shared.id.clone(),
                message,
                fields,
            }]);
        }
        for item in items {
            match item {
                Item::Lines {
                    ts,
                    stream,
                    pid,
                    data,
                } => shared.record(shared.entries(&ts, stream, pid, &data)),
                Item::Entry(entry) => shared.record(vec![entry]),
                Item::Mark(then) => {
                    shared.flush();
                    then();
                }
            }
        }
    }
    shared.flush();
}

impl Shared {
    /// The entries of output `data` read at `ts`.
    fn entries(&self, ts: &str, stream: &str, pid: Option<u32>, data: &[u8]) -> Vec<LogEntry> {
        let pid = pid.map(|p| p.to_string());
        let body = data.strip_suffix(b"\n").unwrap_or(data);
        body.split(|b| *b == b'\n')
            .map(|raw| {
                let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
                let raw = &raw[..raw.len().min(MAX_LINE)];
                let message = String::from_utf8_lossy(raw).into_owned();
                let mut fields = BTreeMap::from([("stream".to_owned(), stream.to_owned())]);
                if let Some(pid) = &pid {
                    fields.insert("pid".to_owned(), pid.clone());
                }
                LogEntry {
                    ts: ts.to_owned(),
                    level: infer_level(&message),
                    service: self.id.clone(),
                    message,
                    fields,
                }
            })
            .collect()
    }

    /// Redacts `entries`, appends them to the file, keeps them in the tail and publishes them.
    fn record(&self, mut entries: Vec<LogEntry>) {
        if let Ok(redactor) = self.redactor.read()
            && !redactor.is_empty()
        {
            for entry in &mut entries {
                if let std::borrow::Cow::Owned(redacted) = redactor.line(&entry.message) {
                    entry.message = redacted;
                }
            }
        }
        let mut refused = None;
        if let Ok(mut writer) = self.writer.lock() {
            let mut line = Vec::with_capacity(256);
            for entry in &entries {
                line.clear();
                if serde_json::to_writer(&mut line, entry).is_ok() {
                    line.push(b'\n');
                    refused = refused.or(writer.append(&line));
                }
            }
        }
        if let Some(refused) = refused {
            // Once: the file is not written, and the reason is where the user looks first.
            let ts = entries
                .first()
                .map_or_else(kojibox_home::clock::now, |e| e.ts.clone());
            entries.insert(
                0,
                LogEntry {
                    ts,
                    level: LogLevel::Error,
                    service: self.id.clone(),
                    message: format!("kojibox is not writing this log to a file: {refused}"),
                    fields: BTreeMap::from([("stream".to_owned(), "kojibox".to_owned())]),
                },
            );
        }
        let entries: Vec<Arc<LogEntry>> = entries.into_iter().map(Arc::new).collect();
        // No subscriber is fine; a lagging one loses lines rather than slowing anything.
        if self.events.receiver_count() > 0 {
            for entry in &entries {
                let _ = self.events.send(Event::ServiceLogLine(Arc::clone(entry)));
            }
        }
        if let Ok(mut tail) = self.tail.lock() {
            let extra = (tail.len() + entries.len()).saturating_sub(TAIL_LINES);
            let extra = extra.min(tail.len());
            tail.drain(..extra);
            let skip = entries.len().saturating_sub(TAIL_LINES);
            tail.extend(entries.into_iter().skip(skip));
        }
    }

    fn flush(&self) {
        if let Ok(mut writer) = self.writer.lock() {
            writer.flush();
        }
    }
}

/// Output read within [`FLOOD_WINDOW`] past which the reader counts the service as flooding.
pub const FLOOD_BYTES: usize = 64 << 10;
/// The window of [`FLOOD_BYTES`].
pub const FLOOD_WINDOW: Duration = Duration::from_millis(10);
/// How long a flooding service's reader waits after emptying the pipe.
pub const FLOOD_PAUSE: Duration = Duration::from_millis(1);
/// The pipe buffer [`widen_pipe`] asks for: what a flood fills in a few pauses.
pub const PIPE_BYTES: usize = 1 << 20;

/// Gives a child's output pipe a [`PIPE_BYTES`] buffer (Linux; elsewhere, or past the user's
/// pipe limits, it keeps the default and nothing else changes).
#[cfg(unix)]
pub fn widen_pipe(pipe: &impl std::os::fd::AsFd) {
    #[cfg(target_os = "linux")]
    let _ = rustix::pipe::fcntl_setpipe_size(pipe, PIPE_BYTES);
    #[cfg(not(target_os = "linux"))]
    let _ = pipe;
}

/// Cuts what a pipe gives into whole lines for the sink: a line longer than [`MAX_LINE`] is cut
/// there and the rest of it skipped; what is left at the end is a last line.
struct Cutter {
    carry: Vec<u8>,
    skipping: bool,
}

impl Cutter {
    fn new() -> Cutter {
        Cutter {
            carry: Vec::new(),
            skipping: false,
        }
    }

    /// Queues the whole lines `data` completes.
    fn feed(&mut self, mut data: &[u8], sink: &LogSink, stream: &'static str, pid: u32) {
        if self.skipping {
            match memchr::memchr(b'\n', data) {
                Some(end) => {
                    data = &data[end + 1..];
                    self.skipping = false;
                }
                None => return,
            }
        }
        match memchr::memrchr(b'\n', data) {
            Some(end) => {
                let mut lines = std::mem::take(&mut self.carry);
                lines.extend_from_slice(&data[..=end]);
                self.carry.extend_from_slice(&data[end + 1..]);
                sink.lines(lines, stream, Some(pid));
            }
            None => self.carry.extend_from_slice(data),
        }
        if self.carry.len() > MAX_LINE {
            let mut cut = std::mem::take(&mut self.carry);
            cut.truncate(MAX_LINE);
            cut.push(b'\n');
            sink.lines(cut, stream, Some(pid));
            self.skipping = true;
        }
    }

    /// The pipe closed: queues an unfinished last line.
    fn finish(self, sink: &LogSink, stream: &'static str, pid: u32) {
        let mut carry = self.carry;
        if !carry.is_empty() {
            carry.push(b'\n');
            sink.lines(carry, stream, Some(pid));
        }
    }
}

/// Tells a reader when a service floods: after a read that emptied the pipe, a pause of
/// [`FLOOD_PAUSE`] while more than [`FLOOD_BYTES`] came within this [`FLOOD_WINDOW`] or the
/// last one (so a steady flood never finds the reader waiting in `read`, where each write of the
/// child would wake it).
struct Gather {
    since: Instant,
    bytes: usize,
    /// The last window was a flood.
    flooding: bool,
}

impl Gather {
    fn new() -> Gather {
        Gather {
            since: Instant::now(),
            bytes: 0,
            flooding: false,
        }
    }

    /// After a read of `read` bytes into a buffer of `capacity`: the pause to take before the
    /// next read, if any.
    fn after(&mut self, read: usize, capacity: usize) -> Option<Duration> {
        self.bytes += read;
        if read == capacity {
            // More is waiting: read it now.
            return None;
        }
        if self.since.elapsed() > FLOOD_WINDOW {
            self.flooding = self.bytes > FLOOD_BYTES;
            self.since = Instant::now();
            self.bytes = 0;
        }
        (self.flooding || self.bytes > FLOOD_BYTES).then_some(FLOOD_PAUSE)
    }
}

/// Bytes read from a pipe at once.
const READ_BYTES: usize = 64 << 10;

/// Reads a child's pipe into `sink` until it closes, then waits until its lines are written.
///
/// Only whole lines are queued; a line longer than [`MAX_LINE`] is cut there and the rest of it
/// skipped. (On Unix the supervisor uses [`pump_fd`], which reads on a thread of its own.)
pub async fn pump(
    mut pipe: impl AsyncRead + Unpin,
    stream: &'static str,
    pid: u32,
    sink: Arc<LogSink>,
) {
    let mut buf = vec![0u8; READ_BYTES];
    let mut cutter = Cutter::new();
    let mut gather = Gather::new();
    loop {
        let read = match pipe.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(read) => read,
        };
        cutter.feed(&buf[..read], &sink, stream, pid);
        if let Some(pause) = gather.after(read, buf.len()) {
            tokio::time::sleep(pause).await;
        }
    }
    cutter.finish(&sink, stream, pid);
    sink.settle().await;
}

/// [`pump`] for a pipe given as a file descriptor: read with blocking reads on a thread of the
/// runtime's blocking pool, so a flooding child's writes wake one plain thread, not the
/// runtime's reactor and its workers. Waits, as [`pump`] does, until the lines are written.
#[cfg(unix)]
pub async fn pump_fd(
    pipe: std::os::fd::OwnedFd,
    stream: &'static str,
    pid: u32,
    sink: Arc<LogSink>,
) {
    let reader = Arc::clone(&sink);
    let read = tokio::task::spawn_blocking(move || {
        use std::io::Read;
        // The runtime made it non-blocking; this thread wants to sleep in `read`.
        let _ = rustix::io::ioctl_fionbio(&pipe, false);
        let mut pipe = std::fs::File::from(pipe);
        let mut buf = vec![0u8; READ_BYTES];
        let mut cutter = Cutter::new();
        let mut gather = Gather::new();
        loop {
            let read = match pipe.read(&mut buf) {
                Ok(0) => break,
                Ok(read) => read,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => break,
            };
            cutter.feed(&buf[..read], &reader, stream, pid);
            if let Some(pause) = gather.after(read, buf.len()) {
                std::thread::sleep(pause);
            }
        }
        cutter.finish(&reader, stream, pid);
    });
    let _ = read.await;
    sink.settle().await;
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_os = "linux")]
    use std::io::Write;

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
        sink.flush();
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
        sink.flush();
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
            ("été: Error in the café", LogLevel::Error),
            ("ünïcödé—warn—after dashes", LogLevel::Warn),
            ("Debug3: tick", LogLevel::Debug),
            ("errors are counted, not raised", LogLevel::Info),
        ];
        // Only the first 96 characters count, however many bytes they take.
        let far = format!("{} error", "a".repeat(96));
        assert_eq!(infer_level(&far), LogLevel::Info);
        let near = format!("{} error", "é".repeat(90));
        assert_eq!(infer_level(&near), LogLevel::Error);
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
        sink.flush();
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
    fn files_are_sealed_by_size_into_numbered_segments() {
        let (tx, _rx) = broadcast::channel(4);
        let dir = tempfile::tempdir().unwrap();
        let sink = LogSink::new("big", &Home::at(dir.path()).unwrap(), tx);
        let segment = store::Limits::default().segment;
        let line = "x".repeat(8000);
        for i in 0..(segment / 8000) * 2 + 10 {
            sink.line(&line, "stdout", None);
            if i % 100 == 0 {
                // Not a flood: nothing is dropped.
                sink.flush();
            }
        }
        sink.flush();
        let len = |name: &str| {
            std::fs::metadata(dir.path().join("app/logs").join(name))
                .unwrap()
                .len()
        };
        assert!(len("big.000001.jsonl") >= segment);
        assert!(len("big.000002.jsonl") >= segment);
        assert!(len("big.jsonl") < segment);
        let segments = store::segments(&Home::at(dir.path()).unwrap(), "big");
        assert_eq!(segments.iter().map(|s| s.n).collect::<Vec<_>>(), [1, 2, 3]);
    }

    /// Writes `lines` numbered lines into a pipe as fast as it can, the pipe widened as the
    /// supervisor does; gives the read end and the writer's thread.
    #[cfg(target_os = "linux")]
    fn flood_pipe(lines: usize) -> (std::os::fd::OwnedFd, std::thread::JoinHandle<()>) {
        let (read, write) = rustix::pipe::pipe().unwrap();
        widen_pipe(&read);
        assert_eq!(rustix::pipe::fcntl_getpipe_size(&read).unwrap(), PIPE_BYTES);
        let writer = std::thread::spawn(move || {
            let mut out = std::io::BufWriter::new(std::fs::File::from(write));
            for i in 0..lines {
                writeln!(out, "line {i:06} {}", "x".repeat(90)).unwrap();
            }
        });
        (read, writer)
    }

    /// The messages in `id`'s log file, which must be the numbered lines, whole and in order.
    #[cfg(target_os = "linux")]
    fn assert_numbered(dir: &std::path::Path, id: &str, lines: usize) {
        let file = std::fs::read_to_string(dir.join(format!("app/logs/{id}.jsonl"))).unwrap();
        let messages: Vec<String> = file
            .lines()
            .map(|l| serde_json::from_str::<LogEntry>(l).unwrap().message)
            .collect();
        assert_eq!(messages.len(), lines);
        for (i, message) in messages.iter().enumerate() {
            assert_eq!(*message, format!("line {i:06} {}", "x".repeat(90)));
        }
    }

    // 4 MB at once, far past FLOOD_BYTES: the readers gather between pauses, and no line is
    // cut, lost or reordered on the way (the queue holds it all). Both readers: `pump_fd` is
    // what services use on Unix, `pump` what setup commands use.
    #[cfg(target_os = "linux")]
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_flooded_pipe_is_widened_and_read_whole_in_order() {
        let lines = 40_000;
        let (tx, _rx) = broadcast::channel(4);
        let dir = tempfile::tempdir().unwrap();
        let home = Home::at(dir.path()).unwrap();

        let sink = Arc::new(LogSink::new("thread", &home, tx.clone()));
        let (read, writer) = flood_pipe(lines);
        pump_fd(read, "stdout", 1, Arc::clone(&sink)).await;
        writer.join().unwrap();
        assert_numbered(dir.path(), "thread", lines);

        let sink = Arc::new(LogSink::new("task", &home, tx));
        let (read, writer) = flood_pipe(lines);
        let pipe = tokio::fs::File::from_std(std::fs::File::from(read));
        pump(pipe, "stdout", 1, Arc::clone(&sink)).await;
        writer.join().unwrap();
        assert_numbered(dir.path(), "task", lines);
    }

    #[test]
    fn a_reader_pauses_only_in_a_flood_and_never_while_more_waits() {
        let mut gather = Gather::new();
        // A few lines now and then: never a pause.
        for _ in 0..100 {
            assert_eq!(gather.after(200, READ_BYTES), None);
        }
        // A full buffer: more is waiting, read it at once, flood or not.
        assert_eq!(gather.after(READ_BYTES, READ_BYTES), None);
        // Past FLOOD_BYTES within the window: pause after the pipe is empty.
        assert_eq!(gather.after(1000, READ_BYTES), Some(FLOOD_PAUSE));
        // The next window still counts as a flood, from its first read on.
        std::thread::sleep(FLOOD_WINDOW * 2);
        assert_eq!(gather.after(100, READ_BYTES), Some(FLOOD_PAUSE));
        // A quiet window ends it.
        std::thread::sleep(FLOOD_WINDOW * 2);
        assert_eq!(gather.after(100, READ_BYTES), None);
    }

    #[test]
    fn a_flood_drops_the_oldest_queued_lines_and_says_how_many() {
        let (tx, _rx) = broadcast::channel(4);
        let dir = tempfile::tempdir().unwrap();
        let sink = LogSink::new("flood", &Home::at(dir.path()).unwrap(), tx);
        // The thread is held up (it needs the redactor to write), so the queue fills. It takes
        // a first line before the flood starts and stalls on it: one gap follows, whenever the
        // (lower-priority) thread gets to run.
        let hold = sink.shared.redactor.write().unwrap();
        sink.line("the first line", "stdout", Some(7));
        while !sink.shared.queue.lock().unwrap().items.is_empty() {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        let chunk: Vec<u8> = (0..1000)
            .flat_map(|i| format!("line {i:0>1019}\n").into_bytes())
            .collect();
        assert_eq!(chunk.len(), 1000 * 1025);
        let chunks = QUEUE_BYTES / chunk.len() + 3;
        for _ in 0..chunks {
            sink.lines(chunk.clone(), "stdout", Some(7));
        }
        sink.line("the last line", "stdout", Some(7));
        drop(hold);
        sink.flush();
        let file = std::fs::read_to_string(dir.path().join("app/logs/flood.jsonl")).unwrap();
        let entries: Vec<LogEntry> = file
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let drops: Vec<&LogEntry> = entries
            .iter()
            .filter(|e| e.fields.contains_key("dropped"))
            .collect();
        assert_eq!(drops.len(), 1, "one report for one gap");
        assert_eq!(drops[0].level, LogLevel::Warn);
        let dropped: usize = drops[0].fields["dropped"].parse().unwrap();
        let kept = entries
            .iter()
            .filter(|e| e.fields.get("pid").is_some_and(|p| p == "7"))
            .count();
        assert_eq!(
            kept + dropped,
            chunks * 1000 + 2,
            "every line written or counted"
        );
        // The queue holds QUEUE_BYTES of the chunks; the rest are dropped.
        assert!(dropped >= 2000, "{dropped}");
        assert_eq!(entries[0].message, "the first line");
        assert_eq!(entries.last().unwrap().message, "the last line");
        // The report sits where the lines went missing: right after the line the thread held
        // when it stalled, before every line that was still queued.
        let at = entries
            .iter()
            .position(|e| e.fields.contains_key("dropped"))
            .unwrap();
        assert_eq!(at, 1);
        assert!(entries[at + 1..].len() >= (QUEUE_BYTES / chunk.len()) * 1000 - 1000);
    }

    #[test]
    fn notes_and_lines_are_written_in_time_order() {
        let (tx, _rx) = broadcast::channel(4);
        let dir = tempfile::tempdir().unwrap();
        let sink = LogSink::new("order", &Home::at(dir.path()).unwrap(), tx);
        for i in 0..5000 {
            if i % 7 == 0 {
                sink.note(LogLevel::Info, format!("note {i}"));
            } else {
                sink.line(&format!("line {i}"), "stdout", None);
            }
        }
        sink.flush();
        let file = std::fs::read_to_string(dir.path().join("app/logs/order.jsonl")).unwrap();
        let entries: Vec<LogEntry> = file
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(entries.len(), 5000);
        assert!(entries.windows(2).all(|w| w[0].ts <= w[1].ts));
        assert!(
            entries
                .iter()
                .enumerate()
                .all(|(i, e)| e.message.ends_with(&format!(" {i}")))
        );
    }
}
