//! Spawning: process group, pipes, clean environment, working directory, errors.

use std::collections::BTreeSet;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::time::Duration;

use kojibox_proc::{Error, SpawnSpec, Spawner};

use crate::helpers::{cleanup, lines, next_line, sh, stat_field};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn child_leads_its_own_group_with_piped_output() {
    let spawner = Spawner::new().unwrap();
    let mut child = spawner
        .spawn(sh("echo $$; echo err >&2; sleep 30", Path::new("/")))
        .await
        .unwrap();
    let (mut out, mut err) = lines(&mut child);

    assert_eq!(
        next_line(&mut out).await,
        child.pid.to_string(),
        "the shell's $$ is Spawned.pid"
    );
    assert_eq!(
        next_line(&mut err).await,
        "err",
        "stderr is piped separately"
    );
    let pgid = stat_field(child.pid, 5).unwrap();
    assert_eq!(pgid, child.pid.to_string(), "pgid == pid");
    assert_ne!(
        pgid,
        stat_field(std::process::id(), 5).unwrap(),
        "not the test's group"
    );
    let start = stat_field(child.pid, 22).unwrap();
    assert_eq!(start, child.start_time.to_string());
    let stdin = std::fs::read_link(format!("/proc/{}/fd/0", child.pid)).unwrap();
    assert_eq!(stdin, Path::new("/dev/null"));
    cleanup(child).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn environment_is_clean_and_cwd_applied() {
    const BASE: [&str; 5] = ["PATH", "HOME", "LANG", "LC_ALL", "TZ"];
    let leaked = std::env::vars()
        .map(|(key, _)| key)
        .find(|key| !BASE.contains(&key.as_str()))
        .expect("the test process has some environment variable outside the base set");
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path().canonicalize().unwrap();
    let spec = SpawnSpec {
        program: "env".into(), // a bare name: found through the child's PATH
        args: vec![],
        env: vec![("KOJIBOX_PASSED".into(), "yes it is".into())],
        cwd: cwd.clone(),
        user: None,
        scope: None,
    };
    let spawner = Spawner::new().unwrap();
    let output = spawner
        .spawn(spec)
        .await
        .unwrap()
        .child
        .wait_with_output()
        .await
        .unwrap();
    assert!(output.status.success());
    let text = String::from_utf8(output.stdout).unwrap();
    let vars: Vec<(&str, &str)> = text.lines().filter_map(|l| l.split_once('=')).collect();
    let keys: BTreeSet<&str> = vars.iter().map(|(k, _)| *k).collect();

    let mut expected: BTreeSet<&str> = ["PATH", "HOME", "KOJIBOX_PASSED"].into();
    expected.extend(
        ["LANG", "LC_ALL", "TZ"]
            .into_iter()
            .filter(|k| std::env::var_os(k).is_some()),
    );
    assert_eq!(
        keys, expected,
        "exactly the documented variables, nothing like {leaked}"
    );
    assert!(vars.contains(&("KOJIBOX_PASSED", "yes it is")));
    assert!(
        vars.contains(&("HOME", cwd.to_str().unwrap())),
        "HOME is the cwd: {text}"
    );

    let pwd = spawner
        .spawn(sh("pwd -P", &cwd))
        .await
        .unwrap()
        .child
        .wait_with_output()
        .await
        .unwrap();
    assert_eq!(
        String::from_utf8(pwd.stdout).unwrap().trim(),
        cwd.to_str().unwrap()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unusable_programs_get_named_errors() {
    let spawner = Spawner::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut spec = sh("", dir.path());
    spec.args.clear();

    spec.program = dir.path().join("missing-server");
    let err = spawner.spawn(spec.clone()).await.unwrap_err();
    assert!(matches!(err, Error::ProgramNotFound { .. }), "{err:?}");
    assert!(err.to_string().contains("missing-server"), "{err}");

    let plain = dir.path().join("not-executable");
    std::fs::write(&plain, "#!/bin/sh\n").unwrap();
    crate::helpers::chmod(&plain, 0o644);
    spec.program = plain;
    let err = spawner.spawn(spec.clone()).await.unwrap_err();
    assert!(matches!(err, Error::NotExecutable { .. }), "{err:?}");
    assert!(err.to_string().contains("chmod +x"), "{err}");

    let garbage = dir.path().join("garbage");
    std::fs::write(&garbage, [0x7f, b'E', b'L', b'F', 0, 0, 0, 0]).unwrap();
    crate::helpers::chmod(&garbage, 0o755);
    spec.program = garbage;
    let err = spawner.spawn(spec.clone()).await.unwrap_err();
    assert!(matches!(err, Error::NotExecutable { .. }), "{err:?}");

    spec.program = "/bin/sh".into();
    spec.cwd = dir.path().join("no-such-folder");
    let err = spawner.spawn(spec).await.unwrap_err();
    assert!(matches!(err, Error::Cwd { .. }), "{err:?}");
    assert!(err.to_string().contains("no-such-folder"), "{err}");
}

/// The death signal is tied to the spawner thread: dropping the spawner ends the thread, and the
/// kernel kills the children it forked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_spawner_kills_its_children() {
    let spawner = Spawner::new().unwrap();
    // `exec`: the death signal reaches only the direct child, so no shell may stand in between.
    let mut child = spawner
        .spawn(sh("exec sleep 30", Path::new("/")))
        .await
        .unwrap();
    drop(spawner);
    let waited = tokio::time::timeout(Duration::from_secs(3), child.child.wait()).await;
    if waited.is_err() {
        let _ = kojibox_proc::signal_group(child.pid, kojibox_proc::Signal::Kill);
    }
    let status = waited
        .expect("the child outlived its spawner thread")
        .unwrap();
    assert_eq!(status.signal(), Some(9), "killed by SIGKILL: {status:?}");
}
