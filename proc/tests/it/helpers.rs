//! Fixtures shared by the test modules. They read `/proc` themselves rather than through the
//! crate, so a bug in the crate's parser cannot hide itself.

use std::path::Path;
use std::time::{Duration, Instant};

use kojibox_proc::{SpawnSpec, Spawned};
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{ChildStderr, ChildStdout};

/// `/bin/sh -c script`, run in `cwd`.
pub fn sh(script: &str, cwd: &Path) -> SpawnSpec {
    SpawnSpec {
        program: "/bin/sh".into(),
        args: vec!["-c".into(), script.into()],
        env: Vec::new(),
        cwd: cwd.to_owned(),
        user: None,
        scope: None,
    }
}

/// Field `n` (1-based, as in proc(5)) of `/proc/<pid>/stat`.
pub fn stat_field(pid: u32, n: usize) -> Option<String> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &text[text.rfind(')')? + 1..];
    rest.split_whitespace().nth(n - 3).map(str::to_owned)
}

/// No longer running: gone from /proc, or a zombie (killed, waiting for a parent to reap it).
pub fn is_dead(pid: u32) -> bool {
    stat_field(pid, 3).is_none_or(|state| state == "Z" || state == "X")
}

/// Waits up to `limit` for `pid` to be dead.
pub async fn wait_dead(pid: u32, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if is_dead(pid) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    is_dead(pid)
}

/// The child's stdout and stderr as line readers.
pub fn lines(
    spawned: &mut Spawned,
) -> (Lines<BufReader<ChildStdout>>, Lines<BufReader<ChildStderr>>) {
    let out = spawned.child.stdout.take().expect("stdout is piped");
    let err = spawned.child.stderr.take().expect("stderr is piped");
    (BufReader::new(out).lines(), BufReader::new(err).lines())
}

/// The next line of a reader, failing the test after 5 s.
pub async fn next_line<R: tokio::io::AsyncBufRead + Unpin>(lines: &mut Lines<R>) -> String {
    tokio::time::timeout(Duration::from_secs(5), lines.next_line())
        .await
        .expect("timed out waiting for a line from the child")
        .expect("reading the child's output")
        .expect("the child closed its output early")
}

/// Ends the child's group and reaps it.
pub async fn cleanup(mut spawned: Spawned) {
    let _ = kojibox_proc::signal_group(spawned.pid, kojibox_proc::Signal::Kill);
    let _ = spawned.child.wait().await;
}

/// Sets a path's permission bits.
pub fn chmod(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}
