//! `url` sources: the cache first, then a download that survives flaky networks.
//!
//! The body goes into `tmp/<unique>.partial` and through a sha256 hasher as it arrives. A
//! failed attempt keeps what it received: the next request asks for the rest with
//! `Range: bytes=<received>-`; a `206` with the matching `Content-Range` appends to the file
//! and continues the same hash, a `200` means the server ignores ranges, so the file and the
//! hash start over. Connection errors, timeouts, dropped bodies, 408, 429 and 5xx are retried
//! after a pause that doubles each time (`HttpOptions::backoff`), up to `retries` extra
//! attempts; an attempt that brought new bytes restores the full budget. Any other status is
//! final at once. Only a file whose digest matches the recipe is renamed into `blobs/`; on a
//! mismatch the partial file is deleted.
//!
//! A lone (non-archive) file becomes an executable payload file: a URL carries no mode, and
//! such a file is in practice the service binary itself.

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::PathBuf;

use indicatif::ProgressBar;
use reqwest::blocking::{Client, Response};
use reqwest::header::{CONTENT_RANGE, RANGE};
use sha2::{Digest, Sha256};
use tempfile::NamedTempFile;

use super::archive::Artifact;
use super::cache::Cache;
use super::context::HttpOptions;
use super::error::FetchError;

/// The payload folder of a url source and whether it came from the cache alone.
pub(crate) fn resolve(
    url: &str,
    sha256: &str,
    strip: u32,
    cache: &Cache,
    opts: &HttpOptions,
    progress: &ProgressBar,
) -> Result<(PathBuf, bool), FetchError> {
    let name = file_name(url);
    let artifact = Artifact {
        label: url,
        name: &name,
        sha256,
        strip,
        mode: 0o755,
    };
    // Checked before any network use, so a recipe mistake costs no download.
    let dest = artifact.payload_dir(cache)?;
    if dest.is_dir() {
        return Ok((dest, true));
    }
    if let Some(mut blob) = cache.verified_blob(sha256)? {
        return Ok((artifact.materialize(cache, &mut blob)?, true));
    }
    let partial = download(url, sha256, cache, opts, progress)?;
    let mut blob = cache.store_blob(partial, sha256)?;
    Ok((artifact.materialize(cache, &mut blob)?, false))
}

/// The last segment of the URL's path (no query), which decides how the file is unpacked.
fn file_name(url: &str) -> String {
    reqwest::Url::parse(url)
        .ok()
        .and_then(|u| u.path_segments()?.next_back().map(str::to_owned))
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "download".to_owned())
}

/// Why one attempt ended early.
enum Failure {
    /// Worth another attempt after a pause.
    Transient(String),
    /// No point retrying (a malformed URL, a redirect loop).
    Permanent(String),
    /// Final, with its own error (4xx, too large, a local write error).
    Error(FetchError),
}

/// The download in progress: the partial file and the hash of what it holds.
struct Partial {
    file: NamedTempFile,
    hasher: Sha256,
    received: u64,
}

impl Partial {
    /// Forgets what was received, for a server that answers a range request with the whole body.
    fn restart(&mut self, progress: &ProgressBar) -> Result<(), Failure> {
        let path = self.file.path().to_owned();
        let file = self.file.as_file_mut();
        file.set_len(0)
            .and_then(|()| file.seek(SeekFrom::Start(0)).map(drop))
            .map_err(|e| Failure::Error(FetchError::io("truncate", path, e)))?;
        self.hasher = Sha256::new();
        self.received = 0;
        progress.set_position(0);
        Ok(())
    }
}

/// Downloads `url` and checks its sha256; the verified file is returned still in `tmp/`.
fn download(
    url: &str,
    sha256: &str,
    cache: &Cache,
    opts: &HttpOptions,
    progress: &ProgressBar,
) -> Result<NamedTempFile, FetchError> {
    let failed = |attempts, why| FetchError::Download {
        url: url.to_owned(),
        attempts,
        why,
    };
    // In the blocking client, `timeout` bounds the wait for the headers and then each body
    // read separately: a stall detector, not a cap on the whole download.
    let client = Client::builder()
        .connect_timeout(opts.connect_timeout)
        .timeout(opts.read_timeout)
        .build()
        .map_err(|e| failed(0, chain(&e)))?;
    let mut partial = Partial {
        file: cache.temp_file()?,
        hasher: Sha256::new(),
        received: 0,
    };
    let (mut attempts, mut failures, mut delay, mut best) = (0, 0, opts.backoff, 0);
    loop {
        attempts += 1;
        match attempt(&client, url, &mut partial, opts, progress) {
            Ok(()) => break,
            Err(Failure::Error(e)) => return Err(e),
            Err(Failure::Permanent(why)) => return Err(failed(attempts, why)),
            Err(Failure::Transient(why)) => {
                if partial.received > best {
                    best = partial.received;
                    failures = 0;
                    delay = opts.backoff;
                }
                if failures >= opts.retries {
                    return Err(failed(attempts, why));
                }
                failures += 1;
                std::thread::sleep(delay);
                delay = delay.saturating_mul(2);
            }
        }
    }
    let actual = hex::encode(partial.hasher.finalize());
    if actual != sha256 {
        // Dropping `partial.file` deletes it: nothing unverified stays in the cache.
        return Err(FetchError::ChecksumMismatch {
            artifact: url.to_owned(),
            expected: format!("sha256:{sha256}"),
            actual: format!("sha256:{actual}"),
        });
    }
    Ok(partial.file)
}

/// One request: resumes from `partial.received` and appends to it.
fn attempt(
    client: &Client,
    url: &str,
    partial: &mut Partial,
    opts: &HttpOptions,
    progress: &ProgressBar,
) -> Result<(), Failure> {
    let mut request = client.get(url);
    if partial.received > 0 {
        request = request.header(RANGE, format!("bytes={}-", partial.received));
    }
    let mut response = request.send().map_err(|e| {
        if e.is_builder() || e.is_redirect() {
            Failure::Permanent(chain(&e))
        } else {
            Failure::Transient(chain(&e))
        }
    })?;
    let status = response.status().as_u16();
    match status {
        206 if partial.received > 0 => {
            if range_start(&response) != Some(partial.received) {
                partial.restart(progress)?;
                return Err(Failure::Transient(
                    "the server resumed at another offset".into(),
                ));
            }
        }
        200..=205 | 207..=299 => {
            if partial.received > 0 {
                partial.restart(progress)?;
            }
        }
        416 if partial.received > 0 => {
            partial.restart(progress)?;
            return Err(Failure::Transient(
                "the server refused to resume (HTTP 416)".into(),
            ));
        }
        408 | 429 | 500..=599 => return Err(Failure::Transient(format!("HTTP {status}"))),
        _ => {
            return Err(Failure::Error(FetchError::HttpStatus {
                url: url.to_owned(),
                status,
            }));
        }
    }
    if let Some(len) = response.content_length() {
        let total = partial.received.saturating_add(len);
        if total > opts.max_size {
            return Err(too_large(url, total, opts));
        }
        progress.set_length(total);
    }
    progress.set_position(partial.received);
    let mut buf = vec![0; 64 * 1024];
    loop {
        let n = match response.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                return Err(Failure::Transient(format!(
                    "connection lost after {} bytes: {}",
                    partial.received,
                    chain(&e)
                )));
            }
        };
        let received = partial.received + n as u64;
        // A body without Content-Length, or longer than announced, is caught here.
        if received > opts.max_size {
            return Err(too_large(url, received, opts));
        }
        partial.file.write_all(&buf[..n]).map_err(|e| {
            let path = partial.file.path().to_owned();
            Failure::Error(FetchError::io("write", path, e))
        })?;
        partial.hasher.update(&buf[..n]);
        partial.received = received;
        progress.inc(n as u64);
    }
}

fn too_large(url: &str, size: u64, opts: &HttpOptions) -> Failure {
    Failure::Error(FetchError::TooLarge {
        artifact: url.to_owned(),
        size,
        max: opts.max_size,
    })
}

/// The first byte of a `Content-Range: bytes <start>-<end>/<total>` answer.
fn range_start(response: &Response) -> Option<u64> {
    let value = response.headers().get(CONTENT_RANGE)?.to_str().ok()?;
    let range = value.trim().strip_prefix("bytes")?.trim_start();
    range.split('-').next()?.trim().parse().ok()
}

/// An error and its causes on one line (reqwest's own message omits the interesting part).
fn chain(error: &dyn std::error::Error) -> String {
    let mut out = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = cause.source();
    }
    out
}
