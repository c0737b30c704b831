//! [`check_spawnable`] against a real install, attacked as a local user would: the manifest's
//! `binPath` pointed at `/bin/sh`, the executable swapped for a link, setuid bits, group-writable
//! files and folders, planted and deleted files, an edited template or index, files given away.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use kojibox_home::{Home, ToApi};
use kojibox_kbx::write::{BundleSpec, PackOptions, PayloadSpec};
use kojibox_manifests::error::ErrorCode;
use kojibox_manifests::model::ServiceBinary;
use kojibox_manifests::recipe::ServiceTemplate;
use kojibox_signing::SecretKey;

use super::{Scan, check_spawnable, check_spawnable_with};
use crate::Error;
use crate::install::{InstallOptions, install};

/// A temporary folder (0755, so services running as other users could reach it), removed when
/// dropped.
pub(super) struct TempDir(PathBuf);

impl TempDir {
    pub(super) fn new() -> TempDir {
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        let path = std::env::temp_dir().join(format!(
            "kojibox-verify-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir(&path).unwrap();
        set_mode(&path, 0o755);
        TempDir(path)
    }

    pub(super) fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn set_mode(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// A home with bundle 1.0.0 (service `demo` 1.0 for this machine) installed.
struct Installed {
    _dir: TempDir,
    home: Home,
    /// The payload folder.
    payload: PathBuf,
}

fn installed() -> Installed {
    let dir = TempDir::new();
    let src = dir.path().join("payload");
    std::fs::create_dir_all(src.join("bin")).unwrap();
    std::fs::create_dir_all(src.join("lib")).unwrap();
    std::fs::write(src.join("bin/demo"), b"#!/bin/sh\necho demo\n").unwrap();
    set_mode(&src.join("bin/demo"), 0o755);
    std::fs::write(src.join("lib/libdemo.so.1.2"), vec![7u8; 3000]).unwrap();
    std::os::unix::fs::symlink("libdemo.so.1.2", src.join("lib/libdemo.so.1")).unwrap();
    std::fs::write(src.join("README.txt"), b"demo\n").unwrap();
    let host = kojibox_kbx::paths::host_target().unwrap();
    let (os, arch) = host.split_once('-').unwrap();
    let root = kojibox_kbx::paths::payload_root("demo", "1.0", os, arch);
    let spec = BundleSpec {
        version: "1.0.0".into(),
        source: "test".into(),
        created_at: "2023-11-14T22:13:20Z".into(),
        payloads: vec![PayloadSpec {
            binary: ServiceBinary {
                name: "demo".into(),
                version: "1.0".into(),
                os: os.into(),
                arch: arch.into(),
                checksum: String::new(),
                size: 0,
                bin_path: format!("{root}/bin/demo"),
                default_ports: vec![],
                env: BTreeMap::new(),
                args: vec![],
            },
            entries: kojibox_kbx::write::walk_payload(&src).unwrap(),
        }],
        templates: BTreeMap::from([("demo".to_owned(), ServiceTemplate::default())]),
        provenance: vec![],
    };
    let key = SecretKey::from_seed(&[1; 32]);
    let pubkey = dir.path().join("key.pub");
    key.public_key().write(&pubkey).unwrap();
    let bundle = dir.path().join("demo.kbx");
    let options = PackOptions {
        level: 1,
        threads: 1,
        mtime: 1_700_000_000,
    };
    kojibox_kbx::write::build(spec, &key, &options, &bundle, &mut |_| {}).unwrap();
    let home = Home::at(&dir.path().join("home")).unwrap();
    let options = InstallOptions {
        pubkey: Some(pubkey),
        ..InstallOptions::default()
    };
    install(&home, &bundle, &options, &mut |_| {}).unwrap();
    let payload = home.join(&root);
    Installed {
        _dir: dir,
        home,
        payload,
    }
}

/// The refusal's detail, which must be a `CHECKSUM_MISMATCH`.
fn refused(home: &Home) -> String {
    match check_spawnable(home, "demo") {
        Ok(note) => panic!("spawnable after tampering (note: {note:?})"),
        Err(e) => {
            assert_eq!(e.code(), ErrorCode::ChecksumMismatch, "{e}");
            assert!(matches!(e, Error::ChecksumMismatch { .. }), "{e:?}");
            let detail = e.detail();
            assert!(
                detail.contains("was not started") && detail.contains("kojibox verify"),
                "{detail}"
            );
            detail
        }
    }
}

fn edit_json(path: &Path, change: impl FnOnce(&mut serde_json::Value)) {
    let mut value: serde_json::Value =
        serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    change(&mut value);
    std::fs::write(path, serde_json::to_vec_pretty(&value).unwrap()).unwrap();
}

#[test]
fn an_intact_install_is_spawnable_without_a_note() {
    let t = installed();
    assert_eq!(check_spawnable(&t.home, "demo").unwrap(), None);
}

#[test]
fn installed_payload_files_and_folders_are_not_writable_by_others() {
    let t = installed();
    let mut stack = vec![t.payload.clone()];
    while let Some(dir) = stack.pop() {
        let meta = std::fs::symlink_metadata(&dir).unwrap();
        assert_eq!(
            meta.permissions().mode() & 0o7777,
            0o755,
            "{}",
            dir.display()
        );
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            if meta.is_dir() {
                stack.push(path);
            } else if meta.is_file() {
                let mode = meta.permissions().mode() & 0o7777;
                assert!(
                    mode == 0o755 || mode == 0o644,
                    "{}: {mode:o}",
                    path.display()
                );
                if rustix::process::geteuid().is_root() {
                    use std::os::unix::fs::MetadataExt;
                    assert_eq!((meta.uid(), meta.gid()), (0, 0), "{}", path.display());
                }
            }
        }
    }
}

#[test]
fn a_manifest_bin_path_of_bin_sh_is_refused() {
    // The attack: runtime/manifest.json edited so the daemon runs /bin/sh as the service.
    let t = installed();
    edit_json(&t.home.manifest(), |m| {
        m["services"][0]["binPath"] = "/bin/sh".into();
    });
    let detail = refused(&t.home);
    assert!(
        detail.contains("runtime/manifest.json differs from its signed index")
            && detail.contains("binPath `/bin/sh`"),
        "{detail}"
    );
}

#[test]
fn a_manifest_bin_path_climbing_out_of_the_payload_is_refused() {
    let t = installed();
    let mut evil = String::new();
    edit_json(&t.home.manifest(), |m| {
        evil = format!(
            "{}/../../../../../../bin/sh",
            m["services"][0]["binPath"].as_str().unwrap()
        );
        m["services"][0]["binPath"] = evil.clone().into();
    });
    let detail = refused(&t.home);
    assert!(detail.contains(&format!("binPath `{evil}`")), "{detail}");
}

#[test]
fn an_executable_swapped_for_a_link_to_bin_sh_is_refused() {
    let t = installed();
    let bin = t.payload.join("bin/demo");
    std::fs::remove_file(&bin).unwrap();
    std::os::unix::fs::symlink("/bin/sh", &bin).unwrap();
    let detail = refused(&t.home);
    for want in [
        "changed: bin/demo (a file signed, a link found)",
        "leads to",
        "outside its payload",
    ] {
        assert!(detail.contains(want), "{want}: {detail}");
    }
}

#[test]
fn setuid_setgid_and_writable_modes_are_refused() {
    let t = installed();
    set_mode(&t.payload.join("bin/demo"), 0o4755);
    let detail = refused(&t.home);
    assert!(
        detail.contains("mode 4755 (signed 0755; setuid set): bin/demo"),
        "{detail}"
    );
    set_mode(&t.payload.join("bin/demo"), 0o755);
    set_mode(&t.payload.join("lib/libdemo.so.1.2"), 0o2644);
    assert!(refused(&t.home).contains("setgid set): lib/libdemo.so.1.2"));
    set_mode(&t.payload.join("lib/libdemo.so.1.2"), 0o664);
    assert!(refused(&t.home).contains("mode 0664 (signed 0644): lib/libdemo.so.1.2"));
    set_mode(&t.payload.join("lib/libdemo.so.1.2"), 0o644);
    set_mode(&t.payload.join("lib"), 0o777);
    assert!(refused(&t.home).contains("folder mode 0777 (at most 0755): lib/"));
    set_mode(&t.payload.join("lib"), 0o755);
    let parent = t.payload.parent().unwrap();
    set_mode(parent, 0o777);
    assert!(refused(&t.home).contains("folder mode 0777 (at most 0755): runtime/bin/demo/1.0/"));
    set_mode(parent, 0o755);
    assert_eq!(check_spawnable(&t.home, "demo").unwrap(), None);
}

#[test]
fn planted_and_deleted_files_are_refused() {
    let t = installed();
    std::fs::write(t.payload.join("lib/libevil.so"), b"x").unwrap();
    std::fs::remove_file(t.payload.join("README.txt")).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", t.payload.join("passwd")).unwrap();
    let detail = refused(&t.home);
    for want in [
        "added: lib/libevil.so",
        "missing: README.txt",
        "link leaves the payload: passwd -> /etc/passwd",
    ] {
        assert!(detail.contains(want), "{want}: {detail}");
    }
}

#[test]
fn a_file_given_to_another_user_is_refused() {
    if !rustix::process::geteuid().is_root() {
        return;
    }
    let t = installed();
    let lib = t.payload.join("lib/libdemo.so.1.2");
    std::os::unix::fs::chown(&lib, Some(65534), None).unwrap();
    assert!(refused(&t.home).contains("owned by uid 65534 (not root): lib/libdemo.so.1.2"));
}

#[test]
fn an_edited_template_or_index_is_refused() {
    let t = installed();
    let template = t.home.service_template("demo");
    let signed = std::fs::read(&template).unwrap();
    edit_json(&template, |v| {
        v["setup"] = serde_json::json!([["/bin/sh", "-c", "id"]]);
    });
    assert!(refused(&t.home).contains("runtime/services/demo.json differs from its signed index"));
    std::fs::write(&template, signed).unwrap();
    assert_eq!(check_spawnable(&t.home, "demo").unwrap(), None);
    // The index and the manifest changed together: the signature no longer verifies.
    for path in [t.home.manifest(), t.home.index_file("1.0.0")] {
        edit_json(&path, |v| {
            let services = if v["services"].is_array() {
                &mut v["services"]
            } else {
                &mut v["manifest"]["services"]
            };
            services[0]["binPath"] = "/bin/sh".into();
        });
    }
    assert!(refused(&t.home).contains("runtime/indexes/1.0.0.json"));
}

#[test]
fn a_service_not_installed_is_runtime_missing() {
    let t = installed();
    let err = check_spawnable(&t.home, "nosuch").unwrap_err();
    assert_eq!(err.code(), ErrorCode::RuntimeMissing, "{err}");
}

fn fat(_: &Path, _: &Scan) -> Option<String> {
    Some("a FAT file system (no Unix modes)".into())
}

#[test]
fn without_unix_modes_the_payload_is_re_hashed_and_the_mode_check_skipped() {
    // What a FAT or exFAT stick shows: every file 0777. Modes say nothing there.
    let t = installed();
    for f in ["bin/demo", "lib/libdemo.so.1.2", "README.txt"] {
        set_mode(&t.payload.join(f), 0o777);
    }
    let note = check_spawnable_with(&t.home, "demo", fat).unwrap().unwrap();
    assert!(
        note.contains("FAT") && note.contains("re-hashed against its signed sha256"),
        "{note}"
    );
    // The same size, one byte changed: only the re-hash sees it, and it does.
    let lib = t.payload.join("lib/libdemo.so.1.2");
    let mut bytes = std::fs::read(&lib).unwrap();
    bytes[100] ^= 1;
    std::fs::write(&lib, bytes).unwrap();
    let detail = check_spawnable_with(&t.home, "demo", fat)
        .unwrap_err()
        .detail();
    assert!(detail.contains("changed: lib/libdemo.so.1.2"), "{detail}");
}
