//! A payload changed behind kojibox's back, as a local attacker would change it, and what the
//! real `kojibox` binary makes of it: `kojibox verify` lists every difference (a setuid bit, an
//! added, missing or changed file, a link leaving the payload) and exits 1, whatever else is
//! wrong; an install leaves nothing others may write, whatever the umask, and refuses a bundle
//! that signs a file others may write.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::process::Command;

use kojibox_manifests::bundle::EntryKind;

use crate::craft;
use crate::support::{Env, Spec, host, mode_of, root, set_mode, stderr, stdout, text};

/// A home with bundle 1.0.0 installed by `kojibox install`; returns it and the payload folder.
fn installed() -> (Env, std::path::PathBuf) {
    let env = Env::new();
    env.cli_install(&env.bundle("v1", &Spec::demo("1.0.0", "1.0")), Some(1), &[]);
    let payload = env.at(&root("demo", "1.0", &host()));
    (env, payload)
}

/// `kojibox verify`'s output, which must exit 1 and name the payload as drifted.
fn drifted(env: &Env) -> String {
    let out = env.kojibox(&["verify"], None);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        !text(&out).contains("cannot pack"),
        "verify stopped at one entry:\n{}",
        text(&out)
    );
    let said = stdout(&out);
    assert!(
        said.contains(&format!("DRIFTED  demo 1.0 {}", host())),
        "{said}"
    );
    said
}

#[test]
fn verify_lists_every_drift_of_a_tampered_payload_at_once() {
    let (env, payload) = installed();
    // chmod u+s, an added file, a deleted one, a changed one, a link to /etc/passwd.
    set_mode(&payload.join("bin/demo"), 0o4755);
    std::fs::write(payload.join("bin/trojan"), b"#!/bin/sh\nid\n").unwrap();
    std::fs::remove_file(payload.join("README.txt")).unwrap();
    let lib = payload.join("lib/libdemo.so.1.2");
    let mut bytes = std::fs::read(&lib).unwrap();
    bytes[10] ^= 1;
    std::fs::write(&lib, bytes).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", payload.join("lib/passwd")).unwrap();
    let expected = [
        "mode 4755 (signed 0755; setuid set): bin/demo",
        "added: bin/trojan",
        "missing: README.txt",
        "changed: lib/libdemo.so.1.2",
        "added: lib/passwd (a link to `/etc/passwd`)",
        "link leaves the payload: lib/passwd -> /etc/passwd",
    ];
    let said = drifted(&env);
    for want in expected {
        assert!(said.contains(want), "{want:?} not listed:\n{said}");
    }
    assert!(said.contains("(6 difference(s))"), "{said}");
    let out = env.kojibox(&["verify", "--json"], None);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["clean"], false, "{json}");
    let drift: Vec<&str> = json["payloads"][0]["drift"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_str().unwrap())
        .collect();
    for want in expected {
        assert!(drift.contains(&want), "{want:?} not in {drift:?}");
    }
}

#[test]
fn verify_reports_a_setuid_or_setgid_bit_alone() {
    let (env, payload) = installed();
    set_mode(&payload.join("bin/demo"), 0o4755);
    assert!(drifted(&env).contains("mode 4755 (signed 0755; setuid set): bin/demo"));
    set_mode(&payload.join("bin/demo"), 0o755);
    set_mode(&payload.join("README.txt"), 0o2644);
    assert!(drifted(&env).contains("mode 2644 (signed 0644; setgid set): README.txt"));
    set_mode(&payload.join("README.txt"), 0o644);
    let out = env.kojibox(&["verify"], None);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}

#[test]
fn verify_reports_an_outside_link_and_still_checks_everything_else() {
    let (env, payload) = installed();
    std::os::unix::fs::symlink("/etc/passwd", payload.join("passwd")).unwrap();
    std::os::unix::fs::symlink("../../../../../../etc", payload.join("lib/etc")).unwrap();
    set_mode(&payload.join("lib/libdemo.so.1.2"), 0o666);
    let said = drifted(&env);
    for want in [
        "link leaves the payload: passwd -> /etc/passwd",
        "link leaves the payload: lib/etc -> ../../../../../../etc",
        "mode 0666 (signed 0644): lib/libdemo.so.1.2",
    ] {
        assert!(said.contains(want), "{want:?} not listed:\n{said}");
    }
}

#[test]
fn verify_reports_a_folder_others_may_write() {
    // Whoever may write a payload folder may swap its files.
    let (env, payload) = installed();
    set_mode(&payload.join("lib"), 0o777);
    assert!(drifted(&env).contains("folder mode 0777 (at most 0755): lib/"));
}

#[test]
fn an_install_under_umask_000_leaves_nothing_others_may_write() {
    let env = Env::new();
    let bundle = env.bundle("v1", &Spec::demo("1.0.0", "1.0"));
    let out = Command::new("sh")
        .arg("-c")
        .arg("umask 000 && exec \"$0\" \"$@\"")
        .arg(env!("CARGO_BIN_EXE_kojibox"))
        .arg("--home")
        .arg(env.home_dir())
        .args(env.install_args(&bundle, Some(1), &[]))
        .env_remove("KOJIBOX_HOME")
        .env_remove("KOJIBOX_FAULT")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let payload = env.at(&root("demo", "1.0", &host()));
    let root_user = rustix::process::geteuid().is_root();
    let mut stack = vec![payload.clone()];
    let mut files = 0;
    while let Some(dir) = stack.pop() {
        assert_eq!(mode_of(&dir), 0o755, "{}", dir.display());
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            if meta.is_dir() {
                stack.push(path.clone());
            } else if meta.is_file() {
                files += 1;
                let mode = meta.permissions().mode() & 0o7777;
                assert!(
                    mode == 0o755 || mode == 0o644,
                    "{}: {mode:04o}",
                    path.display()
                );
            }
            if root_user && !meta.is_symlink() {
                assert_eq!((meta.uid(), meta.gid()), (0, 0), "{}", path.display());
            }
        }
    }
    assert!(files >= 3);
    let out = env.kojibox(&["verify"], None);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}

#[test]
fn a_bundle_signing_a_file_others_may_write_is_refused() {
    let env = Env::new();
    let good = std::fs::read(env.bundle("v1", &Spec::demo("1.0.0", "1.0"))).unwrap();
    let readme = format!("{}/README.txt", root("demo", "1.0", &host()));
    let hostile = craft::resigned(
        &good,
        1,
        |index, members| {
            for e in &mut index.files {
                if e.path == readme && e.kind == EntryKind::File {
                    e.mode = 0o666;
                }
            }
            craft::fix_checksums(index);
            for m in members.iter_mut().filter(|m| m.path == readme) {
                m.mode = 0o666;
            }
        },
        craft::frame,
    );
    let bundle = env.write_bundle("hostile", &hostile);
    let out = env.kojibox(&env.install_args(&bundle, Some(1), &[]), None);
    assert!(!out.status.success(), "installed:\n{}", text(&out));
    let said = stderr(&out);
    assert!(
        said.contains("Unsafe file mode")
            && said.contains(&format!("{readme} in demo 1.0 {}", host()))
            && said.contains("mode 0666, writable by group or others"),
        "{said}"
    );
    assert!(!env.at("runtime/manifest.json").exists());
    assert!(!env.at(&root("demo", "1.0", &host())).exists());
}

/// The payload file of `id` named `name` (the fixture's script).
fn payload_file(root: &std::path::Path, name: &str) -> std::path::PathBuf {
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            if entry.file_type().unwrap().is_dir() {
                stack.push(path);
            } else if path.file_name().is_some_and(|n| n == name) {
                return path;
            }
        }
    }
    panic!("no {name} under {}", root.display())
}

/// Starts `worker` and waits until it fails: the error it ends with.
fn refused_start(api: &crate::api::Api) -> String {
    use kojibox_manifests::model::ServiceStatus;
    let _ = api.rpc("services.start", serde_json::json!({"id": "worker"}));
    let state = api.wait_for("worker", ServiceStatus::Error);
    assert!(api.processes("worker").is_empty(), "nothing of it runs");
    state.last_error.unwrap_or_default()
}

#[test]
fn the_daemon_spawns_nothing_changed_behind_its_back() {
    let mut api = crate::api::Api::home(&[]);
    let script = payload_file(&api.env.at("runtime/bin/worker"), "worker");
    let signed = mode_of(&script);
    api.serve(&[]);

    // A setuid bit on the program.
    set_mode(&script, signed | 0o4000);
    let error = refused_start(&api);
    assert!(
        error.contains("setuid") && error.contains("kojibox verify"),
        "{error}"
    );
    set_mode(&script, signed);

    // The manifest edited so that the service runs /bin/sh.
    let manifest = api.env.at("runtime/manifest.json");
    let text = std::fs::read_to_string(&manifest).unwrap();
    let mut value: serde_json::Value = serde_json::from_str(&text).unwrap();
    let mut edited = 0;
    let mut stack = vec![&mut value];
    while let Some(node) = stack.pop() {
        match node {
            serde_json::Value::Object(map) => {
                if map
                    .get("binPath")
                    .and_then(|b| b.as_str())
                    .is_some_and(|b| b.contains("worker"))
                {
                    map.insert("binPath".into(), "/bin/sh".into());
                    edited += 1;
                }
                stack.extend(map.values_mut());
            }
            serde_json::Value::Array(items) => stack.extend(items.iter_mut()),
            _ => {}
        }
    }
    assert!(edited > 0, "{text}");
    std::fs::write(&manifest, serde_json::to_vec_pretty(&value).unwrap()).unwrap();
    let error = refused_start(&api);
    assert!(error.contains("/bin/sh"), "{error}");

    // Put back, it starts again.
    std::fs::write(&manifest, text).unwrap();
    let _ = api.rpc("services.start", serde_json::json!({"id": "worker"}));
    api.wait_for("worker", kojibox_manifests::model::ServiceStatus::Running);
}
