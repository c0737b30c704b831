//! Folder and file modes under `umask 000`: a test binary of its own, since the umask is
//! process-wide (a temporary folder another test made meanwhile would be 0777).
#![cfg(unix)]
#![allow(clippy::unwrap_used)]

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use kojibox_home::fs::{create_dir, open_append_private, write_atomic, write_json};
use kojibox_home::{Home, LockName};

fn mode(path: &Path) -> u32 {
    std::fs::symlink_metadata(path)
        .unwrap()
        .permissions()
        .mode()
        & 0o7777
}

#[test]
fn folders_and_files_get_their_modes_whatever_the_umask() {
    let dir = tempfile::tempdir().unwrap();
    let home = Home::at(&dir.path().join("home")).unwrap();
    let old = rustix::process::umask(rustix::fs::Mode::empty());
    let written = (|| {
        write_json(&home, &home.project_config("app"), &1)?;
        write_atomic(&home, &home.token_file(), b"t")?;
        create_dir(&home, &home.keys())?;
        create_dir(&home, &home.secrets_dir())?;
        create_dir(&home, &home.update_cache())?;
        create_dir(&home, &home.join("runtime/data"))?;
        drop(open_append_private(&home, &home.service_log("svc"))?);
        drop(home.lock(LockName::Install)?);
        Ok::<_, kojibox_home::Error>(())
    })();
    rustix::process::umask(old);
    written.unwrap();
    for (rel, want) in [
        ("", 0o755),
        ("app", 0o755),
        ("app/config", 0o700),
        ("app/config/projects", 0o700),
        ("app/config/projects/app.json", 0o600),
        ("app/state", 0o700),
        ("app/state/api-token", 0o600),
        ("app/state/install.lock", 0o600),
        ("app/keys", 0o700),
        ("app/secrets", 0o700),
        ("app/logs", 0o700),
        ("app/logs/svc.jsonl", 0o600),
        ("app/cache", 0o755),
        ("app/cache/updates", 0o755),
        ("runtime", 0o755),
        ("runtime/data", 0o755),
    ] {
        let got = mode(&home.join(rel));
        assert_eq!(got, want, "{rel}: {got:o}");
    }
}
