//! What `kojibox update` says when its repository fails it (issue 14, item 9) and that every
//! network wait is bounded (item 4): each case a real server on 127.0.0.1 (refusing, stalling,
//! trickling, redirecting, asking for credentials) and the real binary, its stderr read as a
//! person reads it.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kojibox_home::ToApi;
use kojibox_manifests::error::{ErrorCode, ErrorSource};
use serde_json::json;

use crate::support::{Env, Spec, key, stderr, text};

/// A home with bundle 1.0.0 installed (key 1 pinned) and `repo/` holding 1.1.0 (a `mib` MiB
/// payload bigger) on the stable channel.
pub(crate) fn setup(mib: usize) -> (Env, PathBuf) {
    let env = Env::new();
    let v1 = env.bundle("v1", &Spec::demo("1.0.0", "1.0"));
    env.install(&v1, Some(1)).unwrap();
    let v2 = env.bundle("v2", &Spec::demo("1.1.0", "1.1").big(mib));
    let repo = env.root().join("repo");
    bundler::publish::publish(
        &bundler::publish::Publish {
            bundle: &v2,
            repo: &repo,
            channel: "stable",
            expires_in: 3600,
            force: false,
        },
        &key(1),
    )
    .unwrap();
    (env, repo)
}

pub(crate) fn set_source(env: &Env, source: &str) {
    std::fs::create_dir_all(env.at("app/config")).unwrap();
    std::fs::write(
        env.at("app/config/settings.json"),
        json!({ "updateSource": source }).to_string(),
    )
    .unwrap();
}

/// How the test server answers a request for `path`.
#[derive(Clone, Copy)]
enum Answer {
    /// The file, at once.
    File,
    /// The file's headers, then one byte every `every`.
    Trickle { every: Duration, chunk: usize },
    /// The headers and the first `bytes` bytes, then nothing.
    Stall { bytes: usize },
    /// `302 Found` to `/elsewhere<path>`.
    Redirect,
}

/// A server on 127.0.0.1 for the files of `root`; `answer` decides per path. Records each
/// request's line and headers.
fn serve(root: PathBuf, answer: fn(&str) -> Answer) -> (u16, Arc<Mutex<Vec<String>>>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { return };
            let root = root.clone();
            let log = Arc::clone(&log);
            std::thread::spawn(move || answer_one(stream, &root, answer, &log, port));
        }
    });
    (port, seen)
}

fn answer_one(
    mut stream: TcpStream,
    root: &Path,
    answer: fn(&str) -> Answer,
    log: &Mutex<Vec<String>>,
    port: u16,
) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut request = String::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line.trim().is_empty() {
            break;
        }
        request.push_str(&line);
    }
    log.lock().unwrap().push(request.clone());
    let target = request.split(' ').nth(1).unwrap_or("/").to_owned();
    let path = target.split('?').next().unwrap_or_default().to_owned();
    let body = std::fs::read(root.join(path.trim_start_matches('/'))).ok();
    let Some(body) = body else {
        let _ = stream
            .write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        return;
    };
    let head = format!(
        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    match answer(&path) {
        Answer::File => {
            let _ = stream.write_all(head.as_bytes());
            let _ = stream.write_all(&body);
        }
        Answer::Trickle { every, chunk } => {
            let _ = stream.write_all(head.as_bytes());
            for piece in body.chunks(chunk) {
                if stream.write_all(piece).is_err() {
                    return;
                }
                std::thread::sleep(every);
            }
        }
        Answer::Stall { bytes } => {
            let _ = stream.write_all(head.as_bytes());
            let _ = stream.write_all(&body[..bytes.min(body.len())]);
            std::thread::sleep(Duration::from_secs(600));
        }
        Answer::Redirect => {
            let _ = write!(
                stream,
                "HTTP/1.1 302 Found\r\nLocation: http://127.0.0.1:{port}/elsewhere{path}\r\n\
                 Content-Length: 0\r\nConnection: close\r\n\r\n"
            );
        }
    }
}

/// `kojibox update ARGS`: its stderr and how long it took.
fn update(env: &Env, args: &[&str]) -> (String, Duration) {
    let mut all = vec!["update"];
    all.extend_from_slice(args);
    let started = Instant::now();
    let out = env.kojibox(&all, None);
    let took = started.elapsed();
    assert!(!out.status.success(), "{}", text(&out));
    (stderr(&out), took)
}

/// (e) A server that is not there: the cause is said, not hidden behind "error sending request".
#[test]
fn a_server_that_is_not_there_is_connection_refused() {
    let (env, _repo) = setup(0);
    let port = crate::api::free_port();
    set_source(&env, &format!("http://127.0.0.1:{port}/repo"));
    let (err, _) = update(&env, &["check"]);
    assert_eq!(
        err,
        format!(
            "error: could not connect to 127.0.0.1:{port} for \
             http://127.0.0.1:{port}/repo/channels/stable.json: connection refused; is the \
             update server running, and is updateSource right?\n"
        )
    );
    // A network failure is the updater's, and worth retrying.
    let e = launcher::updater::check(&env.home(), kojibox_manifests::model::UpdateChannel::Stable)
        .unwrap_err();
    let api = e.to_api(ErrorSource::Updater, "2026-01-01T00:00:00Z");
    assert_eq!(api.code, ErrorCode::UpdateFailed);
    assert!(api.retryable);
}

/// (f) `file://` and `ftp://` are refused as such, not read as folders of the home.
#[test]
fn file_and_ftp_sources_are_an_unsupported_scheme() {
    let (env, repo) = setup(0);
    for (source, scheme) in [
        (format!("file://{}", repo.display()), "file"),
        ("ftp://127.0.0.1/repo".to_owned(), "ftp"),
    ] {
        set_source(&env, &source);
        let (err, _) = update(&env, &["check"]);
        assert!(
            err.starts_with(&format!(
                "error: Unsupported update source: updateSource `{source}` uses the unsupported scheme `{scheme}:`: kojibox \
                 reads a repository from a folder (give its path, e.g. /mnt/usb/repo, without \
                 file://) or over http:// or https://"
            )),
            "{err}"
        );
        assert!(!err.contains("does not exist"), "{err}");
    }
}

/// (g) A redirect is reported with where it points, not parsed as an empty channel index.
#[test]
fn a_redirect_is_named_with_where_it_points() {
    let (env, repo) = setup(0);
    let (port, _) = serve(repo, |_| Answer::Redirect);
    set_source(&env, &format!("http://127.0.0.1:{port}"));
    let (err, _) = update(&env, &["check"]);
    assert_eq!(
        err,
        format!(
            "error: http://127.0.0.1:{port}/channels/stable.json answered 302 Found, a redirect \
             to http://127.0.0.1:{port}/elsewhere/channels/stable.json: kojibox follows no \
             redirect (a repository is static files); set updateSource to the repository's own \
             address\n"
        )
    );
}

/// (k) The user name, password and query token of `updateSource` are sent, never shown.
#[test]
fn credentials_of_the_source_are_sent_but_never_shown() {
    let (env, repo) = setup(0);
    let (port, seen) = serve(repo, |_| Answer::File);
    let secret = format!("http://alice:s3cret@127.0.0.1:{port}/?token=t0ken");
    set_source(&env, &secret);
    let out = env.kojibox(&["update", "check"], None);
    assert!(out.status.success(), "{}", text(&out));
    let request = seen.lock().unwrap()[0].clone();
    assert!(
        request.starts_with("GET /channels/stable.json?token=t0ken HTTP/1.1"),
        "the query is kept on the file's address: {request}"
    );
    // alice:s3cret, in base64.
    assert!(
        request.contains("authorization: Basic YWxpY2U6czNjcmV0"),
        "{request}"
    );

    // Wrong path (404), and a closed port: the messages name the address without them.
    for source in [
        format!("http://alice:s3cret@127.0.0.1:{port}/nope?token=t0ken"),
        format!(
            "http://alice:s3cret@127.0.0.1:{}/nope?token=t0ken",
            crate::api::free_port()
        ),
    ] {
        set_source(&env, &source);
        let (err, _) = update(&env, &["check"]);
        assert!(
            err.contains("http://***@127.0.0.1:")
                && err.contains("/nope/channels/stable.json?token=***"),
            "{err}"
        );
        assert!(!err.contains("s3cret") && !err.contains("t0ken"), "{err}");
    }
}

/// Item 4: a channel index sent a byte a second fails at the total deadline (30 s), naming the
/// address (credentials redacted) and what to do; `UPDATE_FAILED`, retryable.
#[test]
fn a_channel_index_sent_a_byte_a_second_fails_at_its_deadline() {
    let (env, repo) = setup(0);
    let (port, _) = serve(repo, |_| Answer::Trickle {
        every: Duration::from_secs(1),
        chunk: 1,
    });
    set_source(&env, &format!("http://bob:pw@127.0.0.1:{port}/"));
    let (err, took) = update(&env, &["check"]);
    assert!(
        took >= Duration::from_secs(29) && took < Duration::from_secs(40),
        "{took:?}"
    );
    assert!(
        err.starts_with(&format!(
            "error: http://***@127.0.0.1:{port}/channels/stable.json did not arrive within 30 s ("
        )) && err.ends_with(
            " bytes came): the server or the network is too slow, or stalled; try again later, \
             or check updateSource\n"
        ),
        "{err}"
    );
    assert!(!err.contains("pw@"), "{err}");
}

/// (d) A server that stops sending: "did not arrive within 30 s", never "error decoding
/// response body".
#[test]
fn a_channel_index_that_stalls_says_so() {
    let (env, repo) = setup(0);
    let (port, _) = serve(repo, |_| Answer::Stall { bytes: 10 });
    set_source(&env, &format!("http://127.0.0.1:{port}"));
    let (err, took) = update(&env, &["check"]);
    assert!(took < Duration::from_secs(40), "{took:?}");
    assert_eq!(
        err,
        format!(
            "error: http://127.0.0.1:{port}/channels/stable.json did not arrive within 30 s (10 \
             bytes came): the server or the network is too slow, or stalled; try again later, \
             or check updateSource\n"
        )
    );
}

/// Item 4: a bundle sent at 1 KiB/s (far below 64 KiB/s) fails by the throughput rule after one
/// 30 s window, not hours later; the part downloaded stays for a resume.
#[test]
fn a_bundle_download_below_the_minimum_throughput_fails() {
    let (env, repo) = setup(1);
    let (port, _) = serve(repo, |path| {
        if path.starts_with("/bundles/") {
            Answer::Trickle {
                every: Duration::from_millis(250),
                chunk: 256,
            }
        } else {
            Answer::File
        }
    });
    set_source(&env, &format!("http://127.0.0.1:{port}"));
    let (err, took) = update(&env, &["apply"]);
    assert!(
        took >= Duration::from_secs(29) && took < Duration::from_secs(45),
        "{took:?}"
    );
    let line = err.lines().last().unwrap();
    assert!(
        line.starts_with(&format!(
            "error: downloading http://127.0.0.1:{port}/bundles/kojibox-1.1.0.kbx is too slow: "
        )) && line.contains("below the minimum of 64.0 KiB/s: the network or the server is too slow; run the update again later (it resumes where it stopped)"),
        "{err}"
    );
    assert!(env.at("app/cache/updates/kojibox-1.1.0.kbx.part").exists());
}

/// Item 4: a bundle download whose server stops sending ends after the idle timeout (30 s).
#[test]
fn a_bundle_download_that_stalls_ends_after_the_idle_timeout() {
    let (env, repo) = setup(0);
    let (port, _) = serve(repo, |path| {
        if path.starts_with("/bundles/") {
            Answer::Stall { bytes: 100 }
        } else {
            Answer::File
        }
    });
    set_source(&env, &format!("http://127.0.0.1:{port}"));
    let (err, took) = update(&env, &["apply"]);
    assert!(
        took >= Duration::from_secs(29) && took < Duration::from_secs(45),
        "{took:?}"
    );
    let line = err.lines().last().unwrap();
    assert!(
        line.starts_with(&format!(
            "error: http://127.0.0.1:{port}/bundles/kojibox-1.1.0.kbx stalled: the server sent \
             nothing for 30 s (after 100 bytes, "
        )),
        "{err}"
    );
}

/// Item 4: SIGTERM during an update's download ends the daemon promptly (the download gives up
/// between two reads, its bytes kept for the next try), and the home's lock goes with it.
#[test]
fn sigterm_cancels_an_update_that_is_still_downloading() {
    let (env, repo) = setup(8);
    // About 320 KiB/s: above the minimum throughput, so the download would take some 25 s.
    let (port, _) = serve(repo, |path| {
        if path.starts_with("/bundles/") {
            Answer::Trickle {
                every: Duration::from_millis(50),
                chunk: 16 << 10,
            }
        } else {
            Answer::File
        }
    });
    set_source(&env, &format!("http://127.0.0.1:{port}"));
    let mut daemon = std::process::Command::new(env!("CARGO_BIN_EXE_kojibox"))
        .arg("--home")
        .arg(env.home_dir())
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env_remove("KOJIBOX_HOME")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let pid = daemon.id();
    let served = Instant::now();
    while !env.at("app/state/api.json").exists() {
        assert!(
            served.elapsed() < Duration::from_secs(20),
            "the daemon does not serve"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // The CLI asks the daemon; its answer comes when the update ends.
    let home = env.home_dir();
    let apply = std::thread::spawn(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_kojibox"))
            .arg("--home")
            .arg(home)
            .args(["update", "apply"])
            .env_remove("KOJIBOX_HOME")
            .output()
            .unwrap()
    });
    let part = env.at("app/cache/updates/kojibox-1.1.0.kbx.part");
    let started = Instant::now();
    while std::fs::metadata(&part).map_or(0, |m| m.len()) < 1 << 20 {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "no download under way"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    crate::api::signal(pid, rustix::process::Signal::TERM);
    let stopping = Instant::now();
    let status = loop {
        if let Some(status) = daemon.try_wait().unwrap() {
            break status;
        }
        if stopping.elapsed() > Duration::from_secs(10) {
            let _ = daemon.kill();
            let _ = daemon.wait();
            panic!("the daemon still ran 10 s after SIGTERM with an update downloading");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status}");
    let out = apply.join().unwrap();
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("the update to 1.1.0 was cancelled: kojibox is stopping"),
        "{}",
        text(&out)
    );
    let kept = std::fs::metadata(&part).map_or(0, |m| m.len());
    assert!(
        kept >= 1 << 20,
        "the partial download is kept ({kept} bytes)"
    );
    assert_eq!(env.manifest().version, "1.0.0");
}
