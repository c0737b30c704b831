//! Hostile bundles: each is refused with its own error, nothing is written outside the staging
//! folder, the staging folder is gone afterwards, and the installed version is byte-identical.
//!
//! Every case starts from a home with bundle 1.0.0 installed (key 1 pinned) and a good bundle
//! 2.0.0, which is then made hostile. The snapshot covers the whole test folder (the home, and
//! the folder around it, where `..` and absolute paths aim).

use kojibox_manifests::bundle::{EntryKind, IndexEntry};

use crate::craft::{self, Member};
use crate::support::{Env, Spec, diff, host, root, snapshot, stderr, text};

/// A home with 1.0.0 installed, and the bytes of a good 2.0.0.
struct Case {
    env: Env,
    good: Vec<u8>,
}

fn case() -> Case {
    let env = Env::new();
    let v1 = env.bundle("v1", &Spec::demo("1.0.0", "1.0"));
    env.install(&v1, Some(1)).unwrap();
    let good = std::fs::read(env.bundle("v2", &Spec::demo("2.0.0", "2.0"))).unwrap();
    Case { env, good }
}

/// The root of the good bundle's payload.
fn v2_root() -> String {
    root("demo", "2.0", &host())
}

/// Tries `hostile`; checks the error names each of `expected`, and that nothing changed but the
/// installer's status file. Then the good bundle still installs and verifies.
fn assert_refused(case: &Case, hostile: &[u8], expected: &[&str]) {
    let env = &case.env;
    let bundle = env.write_bundle("hostile", hostile);
    let before = snapshot(env.root());
    let manifest = std::fs::read(env.at("runtime/manifest.json")).unwrap();
    let err = match env.install(&bundle, None) {
        Ok(report) => panic!(
            "a hostile bundle was installed: {report:?}; it changed {:?}",
            diff(&before, &snapshot(env.root()))
        ),
        Err(e) => e.to_string(),
    };
    for want in expected {
        assert!(err.contains(want), "error {err:?} does not say {want:?}");
    }
    let changes: Vec<String> = diff(&before, &snapshot(env.root()))
        .into_iter()
        .filter(|c| c != "changed home/app/state/installer.json")
        .collect();
    assert!(
        changes.is_empty(),
        "the refused install ({err}) left changes: {changes:?}"
    );
    assert!(!env.at("runtime/.staging").exists(), "staging is left");
    assert_eq!(
        std::fs::read(env.at("runtime/manifest.json")).unwrap(),
        manifest
    );
    let report = launcher::runtime::verify_installed(&env.home()).unwrap();
    assert!(report.is_clean(), "{report:?}");
    assert_eq!(
        launcher::install::status(&env.home()).unwrap().phase,
        "failed"
    );
    // Nothing was left that spoils the good bundle.
    let good = env.write_bundle("good", &case.good);
    env.install(&good, None).unwrap();
    assert_eq!(env.manifest().version, "2.0.0");
    assert!(
        launcher::runtime::verify_installed(&env.home())
            .unwrap()
            .is_clean()
    );
}

/// The member whose path ends with `suffix`.
fn member<'a>(members: &'a mut [Member], suffix: &str) -> &'a mut Member {
    members
        .iter_mut()
        .find(|m| m.path.ends_with(suffix))
        .unwrap()
}

/// Appends a member after every good one (so staging holds files when it is refused).
fn appended(case: &Case, extra: Member) -> Vec<u8> {
    craft::with_payload(&case.good, |m| m.push(extra))
}

#[test]
fn a_dotdot_member_is_refused() {
    let case = case();
    // From runtime/.staging/<id>/<root>/, nine levels up is the test folder.
    let path = format!("{}/{}escaped-dotdot", v2_root(), "../".repeat(9));
    let hostile = appended(&case, Member::file(&path, b"pwned"));
    assert_refused(
        &case,
        &hostile,
        &[&path, "`..` component; not in the signed index"],
    );
    assert!(!case.env.root().join("escaped-dotdot").exists());
}

#[test]
fn an_absolute_member_is_refused() {
    let case = case();
    let path = format!("{}/escaped-absolute", case.env.root().display());
    let hostile = appended(&case, Member::file(&path, b"pwned"));
    assert_refused(
        &case,
        &hostile,
        &[&path, "absolute path; not in the signed index"],
    );
}

#[test]
fn a_drive_letter_member_is_refused() {
    let case = case();
    let hostile = appended(&case, Member::file("C:/Windows/evil.dll", b"MZ"));
    assert_refused(
        &case,
        &hostile,
        &[
            "C:/Windows/evil.dll",
            "drive-letter path; not in the signed index",
        ],
    );
}

#[test]
fn unsafe_paths_in_a_signed_index_are_refused() {
    for (path, why) in [
        (format!("{}/../../escaped", v2_root()), "`..` component"),
        ("/tmp/kojibox-escaped".to_owned(), "absolute path"),
        ("C:/kojibox-escaped".to_owned(), "drive-letter path"),
    ] {
        let case = case();
        let hostile = craft::resigned(
            &case.good,
            1,
            |index, members| {
                index.files.push(IndexEntry {
                    path: path.clone(),
                    kind: EntryKind::File,
                    mode: 0o644,
                    size: 5,
                    sha256: Some(hex::encode(<sha2::Sha256 as sha2::Digest>::digest(
                        b"pwned",
                    ))),
                    target: None,
                });
                craft::fix_checksums(index);
                members.push(Member::file(&path, b"pwned"));
            },
            craft::frame,
        );
        assert_refused(
            &case,
            &hostile,
            &["bundle index is invalid", &format!("{path}: {why}")],
        );
    }
}

#[test]
fn a_symlink_leaving_the_payload_in_a_signed_index_is_refused() {
    let case = case();
    let link = format!("{}/lib/escape", v2_root());
    let target = format!("{}etc", "../".repeat(8));
    let hostile = craft::resigned(
        &case.good,
        1,
        |index, members| {
            index.files.push(IndexEntry {
                path: link.clone(),
                kind: EntryKind::Symlink,
                mode: 0,
                size: 0,
                sha256: None,
                target: Some(target.clone()),
            });
            craft::fix_checksums(index);
            members.push(Member::symlink(&link, &target));
            members.sort_by(|a, b| a.path.cmp(&b.path));
        },
        craft::frame,
    );
    assert_refused(
        &case,
        &hostile,
        &[
            "bundle index is invalid",
            &format!("{link}: symlink target \"{target}\" leaves its payload"),
        ],
    );
}

#[test]
fn a_symlink_member_leaving_the_payload_is_refused() {
    let case = case();
    let hostile = craft::with_payload(&case.good, |m| {
        member(m, "lib/libdemo.so.1").link = Some(format!("{}etc/passwd", "../".repeat(9)));
    });
    assert_refused(
        &case,
        &hostile,
        &[
            "lib/libdemo.so.1",
            "symlink target differs from the signed one",
        ],
    );
}

#[test]
fn a_symlink_member_not_in_the_index_is_refused() {
    let case = case();
    let link = format!("{}/lib/zz-escape", v2_root());
    let hostile = appended(&case, Member::symlink(&link, "/etc"));
    assert_refused(&case, &hostile, &[&link, "not in the signed index"]);
}

/// The good bundle with its last file turned into an entry of `kind`.
fn retyped(case: &Case, kind: tar::EntryType) -> Vec<u8> {
    craft::with_payload(&case.good, |m| {
        let lib = member(m, "lib/libdemo.so.1.2");
        lib.kind = kind;
        lib.data.clear();
        if kind == tar::EntryType::Link {
            lib.link = Some("/etc/passwd".into());
        }
    })
}

#[test]
fn a_hardlink_is_refused() {
    let case = case();
    let hostile = retyped(&case, tar::EntryType::Link);
    assert_refused(
        &case,
        &hostile,
        &["lib/libdemo.so.1.2", "hardlinks are not allowed"],
    );
}

#[test]
fn device_files_are_refused() {
    for kind in [tar::EntryType::Char, tar::EntryType::Block] {
        let case = case();
        let hostile = retyped(&case, kind);
        assert_refused(
            &case,
            &hostile,
            &["lib/libdemo.so.1.2", "device files are not allowed"],
        );
    }
}

#[test]
fn a_fifo_is_refused() {
    let case = case();
    let hostile = retyped(&case, tar::EntryType::Fifo);
    assert_refused(
        &case,
        &hostile,
        &["lib/libdemo.so.1.2", "FIFOs are not allowed"],
    );
}

#[test]
fn a_duplicate_entry_is_refused() {
    let case = case();
    let hostile = craft::with_payload(&case.good, |m| {
        let mut copy = member(m, "bin/demo").clone();
        copy.data = b"#!/bin/sh\nrm -rf ~\n".to_vec();
        m.push(copy);
    });
    assert_refused(&case, &hostile, &["bin/demo", "duplicate entry"]);
}

#[test]
fn an_entry_not_in_the_index_is_refused() {
    let case = case();
    let path = format!("{}/zz-extra", v2_root());
    let hostile = appended(&case, Member::file(&path, b"extra"));
    assert_refused(
        &case,
        &hostile,
        &[&format!("bundle member {path}: not in the signed index")],
    );
}

#[test]
fn a_size_mismatch_is_refused() {
    let case = case();
    let hostile = craft::with_payload(&case.good, |m| {
        member(m, "lib/libdemo.so.1.2").data.pop();
    });
    assert_refused(
        &case,
        &hostile,
        &[
            "lib/libdemo.so.1.2",
            "size 2999 differs from the signed size 3000",
        ],
    );
}

#[test]
fn a_member_longer_than_declared_is_refused_before_it_is_read() {
    let case = case();
    // The header claims 1 TiB; refused from the header alone, nothing of it is written.
    let hostile = craft::with_payload(&case.good, |m| {
        member(m, "lib/libdemo.so.1.2").header_size = Some(1 << 40);
    });
    assert_refused(
        &case,
        &hostile,
        &[
            "lib/libdemo.so.1.2",
            "size 1099511627776 differs from the signed size 3000",
        ],
    );
}

#[test]
fn one_changed_byte_deep_in_a_large_payload_is_refused() {
    // 12 MiB of payload: it streams through many reused decompression buffers and is written
    // in large chunks, and a single flipped bit near the end of one file, in a member of the
    // right size, is still caught by that file's hash and nothing is installed. The good bundle
    // installing afterwards (in `assert_refused`) checks the same path keeps every byte intact.
    let env = Env::new();
    let v1 = env.bundle("v1", &Spec::demo("1.0.0", "1.0"));
    env.install(&v1, Some(1)).unwrap();
    let good = std::fs::read(env.bundle("v2", &Spec::demo("2.0.0", "2.0").big(12))).unwrap();
    let case = Case { env, good };
    let hostile = craft::with_payload(&case.good, |m| {
        // blob9 is the last blob in path order, after 11 MiB of others.
        let blob = member(m, "data/blob9");
        let at = blob.data.len() - 100;
        blob.data[at] ^= 1;
    });
    assert_refused(
        &case,
        &hostile,
        &[&format!(
            "bundle member {}/data/blob9: content differs from the signed sha256",
            v2_root()
        )],
    );
}

#[test]
fn data_beyond_the_signed_payload_frame_is_refused() {
    let case = case();
    let mut hostile = case.good.clone();
    hostile.extend(craft::frame(b"more bytes than the index declares"));
    assert_refused(&case, &hostile, &["data after the end of the archive"]);
}

#[test]
fn a_truncated_stream_is_refused() {
    // In the middle of the payload frame, just before its end, and inside the index frame.
    for which in 0..3 {
        let case = case();
        let len = case.good.len();
        let header = craft::index_frame(&case.good).len();
        let cut = [header + (len - header) / 2, len - 1, 100][which];
        assert_refused(&case, &case.good[..cut], &["bundle is truncated"]);
    }
}

#[test]
fn a_zstd_window_beyond_the_limit_is_refused() {
    let case = case();
    // Signed with a matching frame digest: only the window limit can refuse it.
    let hostile = craft::resigned(&case.good, 1, |_, _| {}, craft::wide_frame);
    let lenient = kojibox_kbx::read::Limits {
        window_log_max: 31,
        ..kojibox_kbx::read::Limits::default()
    };
    let public = crate::support::key(1).public_key();
    kojibox_kbx::read::verify(
        hostile.as_slice(),
        kojibox_kbx::read::Trust::key(&public),
        &lenient,
    )
    .expect("without the limit the crafted bundle is valid");
    assert_refused(
        &case,
        &hostile,
        &[
            "bundle is corrupt",
            "needs a zstd window over the 128 MiB limit",
        ],
    );
}

#[test]
fn a_re_signed_bundle_without_changes_installs() {
    // The control for the crafted cases: re-signing alone does not make a bundle fail.
    let case = case();
    let bundle = case.env.write_bundle(
        "resigned",
        &craft::resigned(&case.good, 1, |_, _| {}, craft::frame),
    );
    case.env.install(&bundle, None).unwrap();
    assert_eq!(case.env.manifest().version, "2.0.0");
}

#[test]
fn a_bundle_signed_by_an_unknown_key_is_refused() {
    let case = case();
    let other = std::fs::read(
        case.env
            .bundle("other", &Spec::demo("2.0.0", "2.0").signed_by(9)),
    )
    .unwrap();
    let key9 = crate::support::key(9).key_id().to_string();
    assert_refused(
        &case,
        &other,
        &[&format!(
            "signed by key {key9}, which is not in the trust store"
        )],
    );
}

#[test]
fn an_edited_index_fails_its_signature() {
    let case = case();
    let all = craft::members(&case.good);
    let index = String::from_utf8(all[0].data.clone())
        .unwrap()
        .replace("\"mode\": 420", "\"mode\": 511");
    assert_ne!(index.as_bytes(), all[0].data.as_slice());
    let signature = String::from_utf8(all[1].data.clone()).unwrap();
    let header =
        kojibox_kbx::write::header_frame(index.as_bytes(), &signature, crate::support::MTIME);
    let rest = &case.good[craft::index_frame(&case.good).len()..];
    assert_refused(
        &case,
        &[header, rest.to_vec()].concat(),
        &["does not match the data"],
    );
}

#[test]
fn an_index_frame_without_signature_is_refused() {
    let case = case();
    let all = craft::members(&case.good);
    let only_index = kojibox_kbx::write::raw_member(
        kojibox_manifests::bundle::INDEX_PATH,
        &all[0].data,
        crate::support::MTIME,
    );
    let rest = &case.good[craft::index_frame(&case.good).len()..];
    let hostile = [kojibox_kbx::write::raw_frame(&only_index), rest.to_vec()].concat();
    assert_refused(&case, &hostile, &["bundle is not signed"]);
}

#[test]
fn a_plain_zstd_tar_is_refused() {
    let case = case();
    let plain = zstd::encode_all(&zstd::decode_all(case.good.as_slice()).unwrap()[..], 3).unwrap();
    assert_refused(&case, &plain, &["bundle is not signed"]);
}

#[test]
fn a_refused_install_leaves_no_staging_and_no_false_note() {
    // As a user sees it: a hostile bundle is refused, and the next run does not report an
    // interrupted install that never happened.
    let case = case();
    let path = format!("{}/zz-extra", v2_root());
    let bundle = case
        .env
        .write_bundle("hostile", &appended(&case, Member::file(&path, b"x")));
    let out = case
        .env
        .kojibox(&["install", bundle.to_str().unwrap()], None);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        stderr(&out).contains("not in the signed index"),
        "{}",
        text(&out)
    );
    let out = case.env.kojibox(&["verify"], None);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        !stderr(&out).contains("interrupted install"),
        "a refused install is reported as interrupted:\n{}",
        text(&out)
    );
}

#[test]
fn a_template_name_leaving_runtime_services_is_refused() {
    // Template names become file names (runtime/services/<name>.json): a signed index may not
    // use them to write into app/ or anywhere else.
    for escape in ["../../app/config/evil", "ABSOLUTE"] {
        let case = case();
        let name = match escape {
            "ABSOLUTE" => format!("{}/escaped-template", case.env.root().display()),
            other => other.to_owned(),
        };
        let hostile = craft::resigned(
            &case.good,
            1,
            |index, _| {
                index.templates.insert(name.clone(), Default::default());
            },
            craft::frame,
        );
        assert_refused(&case, &hostile, &[&name]);
    }
}

#[test]
fn a_service_name_nesting_into_another_payload_is_refused() {
    // `runtime/bin/<name>/<version>/<os>-<arch>` with a name holding `/` lands inside the
    // installed demo 1.0 payload; names, versions, OS and arch must be single components.
    let case = case();
    let nested = format!("demo/1.0/{}/lib", host());
    let (from, to) = (v2_root(), root(&nested, "2.0", &host()));
    let hostile = craft::resigned(
        &case.good,
        1,
        |index, members| {
            for entry in &mut index.files {
                entry.path = entry.path.replacen(&from, &to, 1);
            }
            let service = &mut index.manifest.services[0];
            service.name = nested.clone();
            service.bin_path = service.bin_path.replacen(&from, &to, 1);
            let template = index.templates.remove("demo").unwrap();
            index.templates.insert(nested.clone(), template);
            craft::fix_checksums(index);
            for m in members.iter_mut() {
                m.path = m.path.replacen(&from, &to, 1);
            }
        },
        craft::frame,
    );
    assert_refused(&case, &hostile, &[&nested]);
}
