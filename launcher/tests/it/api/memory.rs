//! Secrets out of core files and the environment, as an attacker who crashes the daemon or
//! reads its children's environments would look for them: no core file after `SIGSEGV` (even
//! under `ulimit -c unlimited`), and `KOJIBOX_PASSPHRASE` in neither a service nor the
//! watchdog.

use std::io::Write;
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};

use kojibox_manifests::model::ServiceStatus;
use rustix::process::Signal;

use super::{Api, WAIT, eventually, signal};
use crate::support::Fixture;

const PASSPHRASE: &str = "correct horse battery";

fn environ_of(pid: u32) -> String {
    String::from_utf8_lossy(&std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default())
        .replace('\0', "\n")
}

#[test]
fn a_crashing_daemon_writes_no_core_and_no_child_inherits_the_passphrase() {
    let dump = Fixture::new("dump", r#"env > "$DATA/env.txt"; exec sleep 600"#);
    let mut api = Api::home(&[dump]);
    let mut protect = Command::new(env!("CARGO_BIN_EXE_kojibox"))
        .arg("--home")
        .arg(api.env.home_dir())
        .args(["secrets", "passphrase", "--stdin"])
        .env_remove("KOJIBOX_PASSPHRASE")
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(protect.stdin.take().unwrap(), "{PASSPHRASE}").unwrap();
    assert!(protect.wait().unwrap().success());

    let cwd = tempfile::tempdir().unwrap();
    api.prelude = Some(format!(
        "ulimit -c unlimited && cd '{}'",
        cwd.path().display()
    ));
    api.serve_with(&["--up"], None, &[("KOJIBOX_PASSPHRASE", PASSPHRASE)]);
    api.wait_for("dump", ServiceStatus::Running);

    // No child inherits the passphrase: the service, the watchdog.
    let data = api.env.at("runtime/data/dump/env.txt");
    assert!(eventually(WAIT, || data.exists()));
    let service_env = std::fs::read_to_string(&data).unwrap();
    assert!(service_env.contains("DATA="), "{service_env}");
    assert!(!service_env.contains("KOJIBOX_PASSPHRASE"), "{service_env}");
    assert!(!service_env.contains(PASSPHRASE));
    let watchdog = crate::support::watchdog_of(api.pid).expect("the daemon runs a watchdog");
    let watchdog_env = environ_of(watchdog);
    assert!(!watchdog_env.is_empty());
    assert!(!watchdog_env.contains(PASSPHRASE), "{watchdog_env}");

    // Core dumps are off for the daemon, whatever the shell allowed.
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", api.pid)).unwrap();
    let core = limits
        .lines()
        .find(|l| l.starts_with("Max core file size"))
        .unwrap();
    assert_eq!(core.split_whitespace().nth(4), Some("0"), "{core}");

    // Rust's runtime catches the first SIGSEGV (to tell a stack overflow), finds none, puts the
    // default action back and returns: the second one is fatal, as a real fault would be.
    signal(api.pid, Signal::SEGV);
    std::thread::sleep(std::time::Duration::from_millis(200));
    signal(api.pid, Signal::SEGV);
    let status = api.child().wait().unwrap();
    api.reaped();
    assert_eq!(status.signal(), Some(libc_sigsegv()), "{status:?}");
    let pattern = std::fs::read_to_string("/proc/sys/kernel/core_pattern").unwrap_or_default();
    let cores: Vec<_> = std::fs::read_dir(cwd.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with("core"))
        .collect();
    assert!(
        cores.is_empty(),
        "core files {cores:?} (core_pattern {pattern:?})"
    );
    if pattern.starts_with('|') {
        eprintln!("note: core_pattern pipes to {pattern:?}; only the limit was checked");
    }
}

fn libc_sigsegv() -> i32 {
    Signal::SEGV.as_raw()
}
