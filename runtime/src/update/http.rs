//! Fetching from an HTTP repository with every wait bounded, and failures told in words.
//!
//! # Theory of operation
//!
//! A repository is static files, so a request is one `GET` that must answer `200` (or `206` to
//! a range); a redirect is never followed (it is reported with where it points), nor is any
//! other status taken for a body. Each fetch has [`Bounds`]:
//!
//! - **channel index**: a total deadline of [`CHANNEL_DEADLINE`] from the connect to the last
//!   byte (a server that sends a byte a second is cut off there, not after hours);
//! - **bundle**: an idle timeout of [`IDLE_TIMEOUT`] on every wait, a minimum throughput of
//!   [`MIN_RATE`] averaged over each [`RATE_WINDOW`] (or what is left, when less), and a
//!   deadline scaled to the bytes left: [`DEADLINE_SLACK`] plus their time at [`MIN_RATE`].
//!
//! Connecting takes at most [`CONNECT_TIMEOUT`]. Every message names the address with its
//! credentials redacted ([`super::source::redact`]), says what happened in words (`connection
//! refused`, `sent nothing for 30 s`) and what to do; none quotes the HTTP client's own
//! wrapping (`error sending request`, `error decoding response body`).

use std::io::Read;
use std::time::{Duration, Instant};

use super::source::redact_url;
use crate::error::{Error, Result};

/// How long a connection may take to open.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// The whole fetch of a channel index, connect to last byte.
pub const CHANNEL_DEADLINE: Duration = Duration::from_secs(30);
/// The longest a bundle download waits for the server to answer or to send its next bytes.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// The slowest a bundle download may be, averaged over [`RATE_WINDOW`].
pub const MIN_RATE: u64 = 64 << 10;
/// The window [`MIN_RATE`] is averaged over.
pub const RATE_WINDOW: Duration = Duration::from_secs(30);
/// A bundle download's deadline beyond the time its bytes take at [`MIN_RATE`].
pub const DEADLINE_SLACK: Duration = Duration::from_secs(60);

/// The bounds of one fetch.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Bounds {
    /// A small file (a channel index): one total deadline.
    Total(Duration),
    /// A bundle of `expected` more bytes: idle timeout, minimum throughput, scaled deadline.
    Download {
        /// The bytes still to come.
        expected: u64,
    },
}

impl Bounds {
    /// The deadline from the start of the fetch.
    fn deadline(self) -> Duration {
        match self {
            Bounds::Total(total) => total,
            Bounds::Download { expected } => {
                DEADLINE_SLACK + Duration::from_secs(expected.div_ceil(MIN_RATE))
            }
        }
    }
}

/// An answer whose body is being read under its [`Bounds`].
pub(crate) struct Fetch {
    response: reqwest::blocking::Response,
    /// The address, credentials redacted.
    shown: String,
    bounds: Bounds,
    started: Instant,
    deadline: Instant,
    received: u64,
    window: (Instant, u64),
}

/// Sends `GET url` (from byte `from` when not 0) under `bounds`; any answer but `200` or `206`
/// is an error saying what the server answered.
pub(crate) fn get(url: &reqwest::Url, from: u64, bounds: Bounds) -> Result<Fetch> {
    let shown = redact_url(url);
    let started = Instant::now();
    let deadline = started + bounds.deadline();
    let per_wait = match bounds {
        Bounds::Total(total) => total,
        Bounds::Download { .. } => IDLE_TIMEOUT,
    };
    let client = reqwest::blocking::Client::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(per_wait)
        // A repository is static files: a redirect is not followed anywhere else.
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| failed(format!("could not start the HTTP client: {}", causes(&e))))?;
    let mut request = client.get(url.clone());
    if let Bounds::Total(total) = bounds {
        // reqwest's request timeout also bounds the body: the total deadline, exactly.
        request = request.timeout(total);
    }
    if from > 0 {
        request = request.header(reqwest::header::RANGE, format!("bytes={from}-"));
    }
    let response = request
        .send()
        .map_err(|e| failed(send_error(&shown, &e, bounds, started)))?;
    let status = response.status();
    if !(status == reqwest::StatusCode::OK || status == reqwest::StatusCode::PARTIAL_CONTENT) {
        return Err(failed(status_error(&shown, &response)));
    }
    Ok(Fetch {
        response,
        shown,
        bounds,
        started,
        deadline,
        received: 0,
        window: (started, 0),
    })
}

impl Fetch {
    /// The answer (status, headers).
    pub(crate) fn response(&self) -> &reqwest::blocking::Response {
        &self.response
    }

    /// The body turns out to hold `total` bytes (a server that ignored a range sends the whole):
    /// the download's bounds are those of `total`.
    pub(crate) fn expect(&mut self, total: u64) {
        if let Bounds::Download { expected } = &mut self.bounds {
            *expected = total;
            self.deadline = self.started + self.bounds.deadline();
        }
    }

    /// Reads the next bytes of the body (0 at its end), or fails when a bound is crossed.
    pub(crate) fn read(&mut self, buf: &mut [u8]) -> Result<usize> {
        let n = match self.response.read(buf) {
            Ok(n) => n,
            Err(e) => return Err(failed(self.read_error(&e))),
        };
        self.received += n as u64;
        let now = Instant::now();
        if n > 0 && now >= self.deadline {
            return Err(failed(self.too_slow_total()));
        }
        if let Bounds::Download { expected } = self.bounds
            && n > 0
        {
            let (since, at) = self.window;
            if now.duration_since(since) >= RATE_WINDOW {
                let got = self.received - at;
                let left = expected.saturating_sub(at);
                let needed = (MIN_RATE * RATE_WINDOW.as_secs()).min(left);
                let secs = now.duration_since(since).as_secs_f64();
                if (got as f64) < needed as f64 * secs / RATE_WINDOW.as_secs_f64() {
                    return Err(failed(format!(
                        "downloading {} is too slow: {} in the last {:.0} s ({}/s; {} of {} \
                         bytes so far), below the minimum of {}/s: the network or the server \
                         is too slow; run the update again later (it resumes where it \
                         stopped), or copy the repository to a folder and point updateSource \
                         at it",
                        self.shown,
                        human(got),
                        secs,
                        human((got as f64 / secs) as u64),
                        self.received,
                        expected,
                        human(MIN_RATE),
                    )));
                }
                self.window = (now, self.received);
            }
        }
        Ok(n)
    }

    /// Reads the whole body, refusing more than `cap` bytes (`too_big` says so).
    pub(crate) fn read_to_end(mut self, cap: u64, too_big: impl Fn() -> Error) -> Result<Vec<u8>> {
        if self.response.content_length().is_some_and(|n| n > cap) {
            return Err(too_big());
        }
        let mut out = Vec::new();
        let mut buf = [0u8; 8 << 10];
        loop {
            let n = self.read(&mut buf)?;
            if n == 0 {
                return Ok(out);
            }
            out.extend_from_slice(&buf[..n]);
            if out.len() as u64 > cap {
                return Err(too_big());
            }
        }
    }

    fn too_slow_total(&self) -> String {
        match self.bounds {
            Bounds::Total(total) => format!(
                "{} did not arrive within {} s ({} bytes came): the server or the network is \
                 too slow, or stalled; try again later, or check updateSource",
                self.shown,
                total.as_secs(),
                self.received
            ),
            Bounds::Download { expected } => format!(
                "downloading {} did not finish within {} s ({} of {} bytes came): the network \
                 or the server is too slow; run the update again later (it resumes where it \
                 stopped), or copy the repository to a folder and point updateSource at it",
                self.shown,
                self.bounds.deadline().as_secs(),
                self.received,
                expected
            ),
        }
    }

    fn read_error(&self, e: &std::io::Error) -> String {
        let now = Instant::now();
        if now + Duration::from_millis(500) >= self.deadline {
            return self.too_slow_total();
        }
        if is_timeout(e) {
            let waited = match self.bounds {
                Bounds::Total(total) => total,
                Bounds::Download { .. } => IDLE_TIMEOUT,
            };
            return format!(
                "{} stalled: the server sent nothing for {} s (after {} bytes, {:.0} s in); \
                 run the update again later (a download resumes where it stopped)",
                self.shown,
                waited.as_secs(),
                self.received,
                now.duration_since(self.started).as_secs_f64()
            );
        }
        format!(
            "reading {} broke off after {} bytes: {}; run the update again (a download resumes \
             where it stopped)",
            self.shown,
            self.received,
            io_causes(e)
        )
    }
}

fn failed(detail: String) -> Error {
    Error::UpdateFailed { detail }
}

/// Why a request got no answer, in words.
fn send_error(shown: &str, e: &reqwest::Error, bounds: Bounds, started: Instant) -> String {
    let host = e
        .url()
        .and_then(|u| {
            Some(match u.port_or_known_default() {
                Some(port) => format!("{}:{port}", u.host_str()?),
                None => u.host_str()?.to_owned(),
            })
        })
        .unwrap_or_default();
    if e.is_connect() {
        let why = innermost_io(e).map_or_else(|| causes(e), |io| io_words(&io));
        return format!(
            "could not connect to {host} for {shown}: {why}; is the update server running, and \
             is updateSource right?"
        );
    }
    if e.is_timeout() {
        let waited = started.elapsed().as_secs_f64();
        return match bounds {
            Bounds::Total(total) => format!(
                "{shown} did not arrive within {} s ({host} did not answer): the server or the \
                 network is too slow, or stalled; try again later, or check updateSource",
                total.as_secs()
            ),
            Bounds::Download { .. } => format!(
                "{shown} did not answer within {waited:.0} s: the server stalled; run the \
                 update again later"
            ),
        };
    }
    format!(
        "could not fetch {shown}: {}; run the update again, or check updateSource",
        causes(e)
    )
}

/// What a status that is not `200`/`206` means here.
fn status_error(shown: &str, response: &reqwest::blocking::Response) -> String {
    let status = response.status();
    if status.is_redirection() {
        let location = response
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(|to| match response.url().join(to) {
                Ok(url) => redact_url(&url),
                Err(_) => "an address that is not a URL".to_owned(),
            })
            .unwrap_or_else(|| "nowhere (no Location header)".to_owned());
        return format!(
            "{shown} answered {status}, a redirect to {location}: kojibox follows no redirect \
             (a repository is static files); set updateSource to the repository's own address"
        );
    }
    if status == reqwest::StatusCode::NOT_FOUND {
        return format!(
            "{shown} answered {status}: is updateSource an update repository (kojibox-bundle \
             publish), and does it have this file?"
        );
    }
    if status == reqwest::StatusCode::UNAUTHORIZED || status == reqwest::StatusCode::FORBIDDEN {
        return format!(
            "{shown} answered {status}: the server refused the credentials of updateSource (or \
             wants some)"
        );
    }
    if status.is_server_error() {
        return format!("{shown} answered {status}: the server failed; try again later");
    }
    format!("{shown} answered {status}, not 200 OK: refused")
}

/// The error and its causes, each said once, with reqwest's own wrapping words and the URL
/// (which may carry credentials) left out.
fn causes(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next = Some(e);
    while let Some(cause) = next {
        let text = match cause.downcast_ref::<reqwest::Error>() {
            Some(_) => String::new(),
            None => cause.to_string(),
        };
        if !text.is_empty() && !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        next = cause.source();
    }
    if parts.is_empty() {
        "the request failed".to_owned()
    } else {
        parts.join(": ")
    }
}

fn io_causes(e: &std::io::Error) -> String {
    match e.get_ref() {
        Some(inner) => causes(inner),
        None => io_words(e),
    }
}

/// The deepest I/O error under `e`, if any.
fn innermost_io(e: &(dyn std::error::Error + 'static)) -> Option<std::io::Error> {
    let mut found = None;
    let mut next = Some(e);
    while let Some(cause) = next {
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            found = Some(std::io::Error::new(io.kind(), io.to_string()));
        }
        next = cause.source();
    }
    found
}

fn io_words(e: &std::io::Error) -> String {
    use std::io::ErrorKind;
    match e.kind() {
        ErrorKind::ConnectionRefused => "connection refused".to_owned(),
        ErrorKind::ConnectionReset => "the connection was reset".to_owned(),
        ErrorKind::TimedOut => format!("no answer within {} s", CONNECT_TIMEOUT.as_secs()),
        _ => e.to_string(),
    }
}

fn is_timeout(e: &std::io::Error) -> bool {
    if e.kind() == std::io::ErrorKind::TimedOut {
        return true;
    }
    let mut next: Option<&(dyn std::error::Error + 'static)> = e.get_ref().map(|r| r as _);
    while let Some(cause) = next {
        if cause
            .downcast_ref::<reqwest::Error>()
            .is_some_and(reqwest::Error::is_timeout)
            || cause
                .downcast_ref::<std::io::Error>()
                .is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut)
        {
            return true;
        }
        next = cause.source();
    }
    false
}

/// `1.5 KiB`, `64 KiB`, `12 B`.
fn human(bytes: u64) -> String {
    if bytes < 1024 {
        format!("{bytes} B")
    } else if bytes < 1 << 20 {
        format!("{:.1} KiB", bytes as f64 / 1024.0)
    } else {
        format!("{:.1} MiB", bytes as f64 / f64::from(1 << 20))
    }
}
