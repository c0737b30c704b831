//! Running the real binaries in a fresh home, and leaving nothing behind.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The workspace root.
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

/// The folder the binaries are built into (beside this test binary: `target/<profile>/`).
fn bin_dir() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        let exe = std::env::current_exe().unwrap();
        let dir = exe
            .ancestors()
            .find(|d| d.join("deps").is_dir() && d.file_name().is_some_and(|n| n != "deps"))
            .expect("the test runs from target/<profile>/deps")
            .to_owned();
        let release = dir.file_name().is_some_and(|n| n == "release");
        let mut build = Command::new(env!("CARGO"));
        build.current_dir(workspace()).args([
            "build", "--quiet", "--locked", "-p", "launcher", "-p", "bundler", "--bins",
        ]);
        if release {
            build.arg("--release");
        }
        let out = build.output().unwrap();
        assert!(out.status.success(), "cargo build:\n{}", text(&out));
        dir
    })
}

/// `kojibox-bundle`.
pub fn bundler() -> Command {
    Command::new(bin_dir().join("kojibox-bundle"))
}

/// stdout and stderr, for failure messages.
pub fn text(out: &Output) -> String {
    format!(
        "status: {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Runs `command`, which must succeed; returns its stdout.
pub fn ok(command: &mut Command) -> String {
    let out = command.output().unwrap();
    assert!(out.status.success(), "{command:?}\n{}", text(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A fresh home directly under `/tmp`, traversable by everyone: under root, services run as
/// users of their own, who must reach it. Dropping it ends the daemon (and so its services) if a failed
/// assertion left one running, by the pid in `api.json`.
pub struct Home {
    dir: tempfile::TempDir,
}

impl Home {
    pub fn new() -> Home {
        let dir = tempfile::Builder::new()
            .prefix("kbx-e2e")
            .tempdir_in("/tmp")
            .unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        Home { dir }
    }

    /// The home folder.
    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    /// `<home>/<rel>`.
    pub fn at(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// `kojibox --home <home> ARGS`.
    pub fn kojibox<S: AsRef<OsStr>>(&self, args: &[S]) -> Command {
        let mut command = Command::new(bin_dir().join("kojibox"));
        command
            .arg("--home")
            .arg(self.dir.path())
            .args(args)
            .env_remove("KOJIBOX_HOME")
            .env_remove("KOJIBOX_FAULT")
            .env_remove("KOJIBOX_PASSPHRASE");
        command
    }

    /// The daemon's pid, while `api.json` names one.
    pub fn daemon_pid(&self) -> Option<u32> {
        let text = std::fs::read_to_string(self.at("app/state/api.json")).ok()?;
        let json: serde_json::Value = serde_json::from_str(&text).ok()?;
        json["pid"].as_u64().map(|p| p as u32)
    }
}

impl Drop for Home {
    fn drop(&mut self) {
        if let Some(pid) = self.daemon_pid() {
            // SIGTERM: the daemon stops its services; the watchdog ends them if it cannot.
            let _ = Command::new("kill").arg(pid.to_string()).status();
            let started = Instant::now();
            while alive(pid) && started.elapsed() < Duration::from_secs(20) {
                std::thread::sleep(Duration::from_millis(100));
            }
            if alive(pid) {
                let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
            }
        }
    }
}

/// Whether `pid` runs (a zombie does not).
pub fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        !matches!(
            stat.rsplit(") ").next().and_then(|r| r.chars().next()),
            Some('Z' | 'X')
        )
    })
}

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Every pid in `/proc`.
pub fn pids() -> Vec<u32> {
    std::fs::read_dir("/proc")
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|e| e.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}
