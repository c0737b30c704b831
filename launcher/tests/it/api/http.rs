//! A small HTTP/1.1 client over raw sockets, so a test controls every header it sends (Host,
//! Origin, none at all): requests, whole answers (with a length, chunked or up to EOF), and the
//! `/events` stream as Server-Sent Events.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;

use serde_json::Value;

use super::WAIT;

/// One HTTP answer.
pub struct Reply {
    pub status: u16,
    /// The status line and headers, as received.
    pub head: String,
    pub body: Vec<u8>,
}

impl std::fmt::Debug for Reply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let body = String::from_utf8_lossy(&self.body[..self.body.len().min(2000)]);
        write!(f, "{}\n{body}", self.head.trim_end())
    }
}

impl Reply {
    /// The first header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<String> {
        self.head.lines().skip(1).find_map(|line| {
            let (k, v) = line.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_owned())
        })
    }

    /// The body as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "the answer is not JSON ({e}):\n{}\n{}",
                self.head,
                String::from_utf8_lossy(&self.body)
            )
        })
    }
}

/// Reads a response head (up to the blank line) from `reader`: the status and the head text.
fn read_head(reader: &mut impl BufRead) -> (u16, String) {
    let mut head = String::new();
    loop {
        let mut line = String::new();
        let n = reader
            .read_line(&mut line)
            .unwrap_or_else(|e| panic!("no answer: {e} (so far: {head:?})"));
        assert!(
            n > 0,
            "the connection closed before the head ended: {head:?}"
        );
        if line == "\r\n" {
            break;
        }
        head.push_str(&line);
    }
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP answer: {head:?}"));
    (status, head)
}

fn is_chunked(head: &str) -> bool {
    head.lines().any(|l| {
        l.to_ascii_lowercase().starts_with("transfer-encoding:")
            && l.to_ascii_lowercase().contains("chunked")
    })
}

/// A `Transfer-Encoding: chunked` body, decoded; ends at the last (empty) chunk.
pub struct Chunked {
    inner: BufReader<TcpStream>,
    left: usize,
    /// The last chunk was seen: the server ended the body.
    pub ended: bool,
}

impl Read for Chunked {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.ended || buf.is_empty() {
            return Ok(0);
        }
        if self.left == 0 {
            let mut line = String::new();
            if self.inner.read_line(&mut line)? == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            let size = line.trim().split(';').next().unwrap_or("");
            let size = usize::from_str_radix(size, 16)
                .map_err(|e| std::io::Error::other(format!("chunk size {line:?}: {e}")))?;
            if size == 0 {
                self.ended = true;
                return Ok(0);
            }
            self.left = size;
        }
        let want = buf.len().min(self.left);
        let n = self.inner.read(&mut buf[..want])?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        self.left -= n;
        if self.left == 0 {
            let mut crlf = [0u8; 2];
            self.inner.read_exact(&mut crlf)?;
        }
        Ok(n)
    }
}

/// Opens a connection to the daemon (reads time out after [`WAIT`]).
pub fn connect(port: u16) -> TcpStream {
    let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    stream.set_write_timeout(Some(WAIT)).unwrap();
    stream
}

/// Sends `request` as is and reads the whole answer.
pub fn exchange(port: u16, request: &[u8]) -> Reply {
    let mut stream = connect(port);
    stream.write_all(request).unwrap();
    read_reply(stream)
}

/// Reads one answer from a connection whose request was sent.
pub fn read_reply(stream: TcpStream) -> Reply {
    let mut reader = BufReader::new(stream);
    let (status, head) = read_head(&mut reader);
    let mut body = Vec::new();
    if is_chunked(&head) {
        let mut chunked = Chunked {
            inner: reader,
            left: 0,
            ended: false,
        };
        chunked.read_to_end(&mut body).unwrap();
    } else {
        let length = Reply {
            status,
            head: head.clone(),
            body: vec![],
        }
        .header("content-length")
        .and_then(|l| l.parse::<usize>().ok());
        match length {
            Some(length) => {
                body.resize(length, 0);
                reader.read_exact(&mut body).unwrap();
            }
            None => {
                reader.read_to_end(&mut body).unwrap();
            }
        }
    }
    Reply { status, head, body }
}

/// A request: `lines` (the request line, then header lines), `Content-Length` when there is a
/// body, `Connection: close`, the blank line, the body.
pub fn request(lines: &[String], body: &[u8]) -> Vec<u8> {
    let mut out = String::new();
    for line in lines {
        out.push_str(line);
        out.push_str("\r\n");
    }
    if !body.is_empty() {
        out.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    out.push_str("Connection: close\r\n\r\n");
    let mut out = out.into_bytes();
    out.extend_from_slice(body);
    out
}

/// One Server-Sent Event.
#[derive(Debug, Clone, PartialEq)]
pub struct Sse {
    pub id: u64,
    pub name: String,
    pub data: Value,
}

impl Sse {
    /// A `service:stateChanged` of `id` to `state`.
    pub fn is_state(&self, id: &str, state: &str) -> bool {
        self.name == "service:stateChanged" && self.data["id"] == id && self.data["state"] == state
    }

    /// A `service:logLine` of `service`.
    pub fn is_line_of(&self, service: &str) -> bool {
        self.name == "service:logLine" && self.data["service"] == service
    }
}

/// An open `/events` stream.
pub struct EventStream {
    pub status: u16,
    pub head: String,
    reader: BufReader<Chunked>,
}

impl EventStream {
    /// Sends a GET built from `lines` and reads the head of the (streaming) answer.
    pub fn open(port: u16, lines: &[String]) -> EventStream {
        let mut stream = connect(port);
        stream.write_all(&request(lines, b"")).unwrap();
        let mut reader = BufReader::new(stream);
        let (status, head) = read_head(&mut reader);
        EventStream {
            status,
            head,
            reader: BufReader::new(Chunked {
                inner: reader,
                left: 0,
                ended: false,
            }),
        }
    }

    /// The next event; `None` when the server ended the stream. Comments are skipped; a read
    /// timeout fails the test.
    pub fn next(&mut self) -> Option<Sse> {
        self.read_event()
            .unwrap_or_else(|e| panic!("no event within {WAIT:?}: {e}"))
    }

    /// The next event, `None` when the server ended the stream, or the read error (a timeout).
    pub fn read_event(&mut self) -> std::io::Result<Option<Sse>> {
        let (mut id, mut name, mut data) = (None::<String>, None::<String>, String::new());
        loop {
            let mut line = String::new();
            if self.reader.read_line(&mut line)? == 0 {
                return Ok(None);
            }
            let line = line.trim_end_matches(['\r', '\n']);
            if line.is_empty() {
                if name.is_none() && data.is_empty() {
                    continue;
                }
                let id = id.unwrap_or_else(|| panic!("an event without id: {name:?} {data}"));
                let id = id
                    .trim()
                    .parse()
                    .unwrap_or_else(|e| panic!("event id `{id}` is not an integer: {e}"));
                let data = serde_json::from_str(&data)
                    .unwrap_or_else(|e| panic!("event data is not JSON ({e}): {data}"));
                let name = name.unwrap_or_else(|| panic!("event {id} has no `event:` line"));
                return Ok(Some(Sse { id, name, data }));
            }
            if line.starts_with(':') {
                continue;
            }
            let (field, value) = line.split_once(':').unwrap_or((line, ""));
            let value = value.strip_prefix(' ').unwrap_or(value).to_owned();
            match field {
                "id" => id = Some(value),
                "event" => name = Some(value),
                "data" => {
                    if !data.is_empty() {
                        data.push('\n');
                    }
                    data.push_str(&value);
                }
                other => panic!("unexpected SSE field `{other}` in {line:?}"),
            }
        }
    }

    /// Reads events until `done` holds for one; returns all of them, that one last.
    pub fn until(&mut self, what: &str, mut done: impl FnMut(&Sse) -> bool) -> Vec<Sse> {
        let mut seen = Vec::new();
        loop {
            let Some(event) = self.next() else {
                panic!("the stream ended before {what}; saw {seen:#?}")
            };
            let last = done(&event);
            seen.push(event);
            if last {
                return seen;
            }
        }
    }

    /// Whether the server ended the stream (the last chunk arrived).
    pub fn ended(&self) -> bool {
        self.reader.get_ref().ended
    }
}
