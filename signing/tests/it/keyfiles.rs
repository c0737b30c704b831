//! Key files: the documented formats, refusals to overwrite, permissions, and every way a file
//! can be broken.

use std::fs;
use std::io;
use std::path::Path;

use kojibox_signing::{Error, KeyKind, PublicKey, SecretKey, write_keypair};

use crate::support::{b64, key, public_file_text, secret_file_text, tempdir, write_file};

#[test]
fn secret_key_file_has_the_documented_format_and_round_trips() {
    let dir = tempdir();
    let path = dir.path().join("release.key");
    let secret = key(7);
    secret.write(&path).unwrap();

    let text = fs::read_to_string(&path).unwrap();
    assert_eq!(text, secret_file_text(&b64(&[7; 32])));
    let back = SecretKey::read(&path).unwrap();
    assert_eq!(back.public_key(), secret.public_key());
}

#[test]
fn public_key_file_has_the_documented_format_and_round_trips() {
    let dir = tempdir();
    let path = dir.path().join("release.pub");
    let public = key(7).public_key();
    public.write(&path).unwrap();

    let text = fs::read_to_string(&path).unwrap();
    let expected = public_file_text(&public.key_id().to_string(), &b64(&public.to_bytes()));
    assert_eq!(text, expected);
    assert_eq!(PublicKey::read(&path).unwrap(), public);
}

#[test]
fn key_files_with_crlf_line_ends_are_read() {
    let dir = tempdir();
    let public = key(8).public_key();
    let crlf = |text: String| text.replace('\n', "\r\n");
    let pub_text = public_file_text(&public.key_id().to_string(), &public.to_base64());
    let pub_path = write_file(dir.path(), "k.pub", &crlf(pub_text));
    let key_path = write_file(dir.path(), "k.key", &crlf(secret_file_text(&b64(&[8; 32]))));

    assert_eq!(PublicKey::read(&pub_path).unwrap(), public);
    assert_eq!(SecretKey::read(&key_path).unwrap().public_key(), public);
}

#[test]
fn write_keypair_writes_a_matching_pair() {
    let dir = tempdir();
    let prefix = dir.path().join("release");
    let id = write_keypair(&prefix).unwrap();

    let secret = SecretKey::read(dir.path().join("release.key")).unwrap();
    let public = PublicKey::read(dir.path().join("release.pub")).unwrap();
    assert_eq!(secret.public_key(), public);
    assert_eq!(public.key_id(), id);
    public.verify(b"m", &secret.sign(b"m")).unwrap();
}

#[test]
fn write_keypair_creates_a_missing_folder() {
    let dir = tempdir();
    let prefix = dir.path().join("keys/nested/release");
    let id = write_keypair(&prefix).unwrap();
    let public = PublicKey::read(dir.path().join("keys/nested/release.pub")).unwrap();
    assert_eq!(public.key_id(), id);
}

#[cfg(unix)]
#[test]
fn secret_key_files_are_created_with_mode_0600() {
    use crate::support::mode;

    let dir = tempdir();
    let path = dir.path().join("a.key");
    key(1).write(&path).unwrap();
    assert_eq!(mode(&path), 0o600);

    write_keypair(&dir.path().join("b")).unwrap();
    assert_eq!(mode(&dir.path().join("b.key")), 0o600);
    // The public half is not secret; only the owner's bits are certain under any umask.
    assert_eq!(mode(&dir.path().join("b.pub")) & 0o700, 0o600);
}

#[cfg(unix)]
#[test]
fn secret_key_files_others_may_access_are_refused() {
    use crate::support::set_mode;

    let dir = tempdir();
    let path = dir.path().join("release.key");
    key(1).write(&path).unwrap();
    for bad in [0o644, 0o640, 0o604, 0o620] {
        set_mode(&path, bad);
        let err = SecretKey::read(&path).unwrap_err();
        assert!(
            matches!(&err, Error::InsecureKeyFile { path: p, mode } if p == &path && *mode == bad),
            "{bad:o}: {err:?}"
        );
        let msg = err.to_string();
        assert!(
            msg.contains(&format!("chmod 600 {}", path.display())),
            "{msg}"
        );
    }
    // Owner-only modes are fine, read-only included.
    for good in [0o600, 0o400] {
        set_mode(&path, good);
        assert_eq!(SecretKey::read(&path).unwrap().key_id(), key(1).key_id());
    }
}

#[test]
fn an_existing_secret_key_file_is_not_overwritten() {
    let dir = tempdir();
    let path = write_file(dir.path(), "release.key", "precious\n");
    let err = key(1).write(&path).unwrap_err();
    assert!(
        matches!(&err, Error::KeyFileExists { kind: KeyKind::Secret, path: p } if p == &path),
        "{err:?}"
    );
    assert!(err.to_string().contains("refusing to overwrite"), "{err}");
    assert_eq!(fs::read_to_string(&path).unwrap(), "precious\n");
}

#[test]
fn an_existing_public_key_file_is_not_overwritten() {
    let dir = tempdir();
    let path = write_file(dir.path(), "release.pub", "precious\n");
    let err = key(1).public_key().write(&path).unwrap_err();
    assert!(
        matches!(
            &err,
            Error::KeyFileExists {
                kind: KeyKind::Public,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(fs::read_to_string(&path).unwrap(), "precious\n");
}

#[test]
fn write_keypair_refuses_when_either_file_exists_and_writes_nothing() {
    let dir = tempdir();
    let pub_path = write_file(dir.path(), "release.pub", "precious\n");
    let err = write_keypair(&dir.path().join("release")).unwrap_err();
    assert!(
        matches!(&err, Error::KeyFileExists { kind: KeyKind::Public, path } if path == &pub_path),
        "{err:?}"
    );
    assert!(
        !dir.path().join("release.key").exists(),
        "half a pair was left"
    );
    assert_eq!(fs::read_to_string(&pub_path).unwrap(), "precious\n");

    let key_path = write_file(dir.path(), "other.key", "precious\n");
    let err = write_keypair(&dir.path().join("other")).unwrap_err();
    assert!(
        matches!(&err, Error::KeyFileExists { kind: KeyKind::Secret, path } if path == &key_path),
        "{err:?}"
    );
    assert!(!dir.path().join("other.pub").exists());
    assert_eq!(fs::read_to_string(&key_path).unwrap(), "precious\n");
}

#[test]
fn a_missing_key_file_is_a_read_error_naming_it() {
    let dir = tempdir();
    let path = dir.path().join("nope.pub");
    let err = PublicKey::read(&path).unwrap_err();
    assert!(
        matches!(&err, Error::ReadKey { kind: KeyKind::Public, source, .. }
            if source.kind() == io::ErrorKind::NotFound),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(msg.starts_with(&format!(
        "could not read public key file {}",
        path.display()
    )));
}

fn assert_wrong_length(err: Error, path: &Path, want_actual: usize) {
    let msg = err.to_string();
    assert!(
        matches!(&err, Error::KeyLength { expected: 32, actual, path: p, .. }
            if *actual == want_actual && p == path),
        "{err:?}"
    );
    let want = format!(
        "key in {} has wrong length: expected 32 bytes, got {want_actual}",
        path.display()
    );
    assert_eq!(msg, want);
}

#[test]
fn a_key_of_the_wrong_length_is_refused() {
    let dir = tempdir();
    let short = write_file(dir.path(), "short.key", &secret_file_text(&b64(&[1; 31])));
    assert_wrong_length(SecretKey::read(&short).unwrap_err(), &short, 31);

    let long = write_file(dir.path(), "long.key", &secret_file_text(&b64(&[1; 64])));
    assert_wrong_length(SecretKey::read(&long).unwrap_err(), &long, 64);

    let text = public_file_text("0011223344556677", &b64(&[1; 33]));
    let public = write_file(dir.path(), "long.pub", &text);
    assert_wrong_length(PublicKey::read(&public).unwrap_err(), &public, 33);
}

/// Reads `text` as a key file of `kind` and expects a corrupt-file error whose message names the
/// file and contains `want`.
fn assert_corrupt(kind: KeyKind, text: &str, want: &str) {
    let dir = tempdir();
    let path = write_file(dir.path(), "k", text);
    let err = match kind {
        KeyKind::Secret => SecretKey::read(&path).map(|_| ()).unwrap_err(),
        KeyKind::Public => PublicKey::read(&path).map(|_| ()).unwrap_err(),
    };
    let msg = err.to_string();
    assert!(
        matches!(&err, Error::CorruptKeyFile { kind: k, path: p, .. } if *k == kind && p == &path),
        "{text:?}: {err:?}"
    );
    assert!(
        msg.starts_with(&format!("{kind} key file {} is corrupt: ", path.display())),
        "{msg}"
    );
    assert!(msg.contains(want), "{text:?} gave {msg}, wanted {want:?}");
}

#[test]
fn corrupt_secret_key_files_are_refused_with_the_reason() {
    let seed = b64(&[3; 32]);
    let secret = KeyKind::Secret;
    // Bad base64.
    assert_corrupt(
        secret,
        &secret_file_text("!!!!not*base64!!!!"),
        "not standard base64",
    );
    // Bad headers.
    assert_corrupt(
        secret,
        &format!("kojibox-secret-key v2\n{seed}\n"),
        "unsupported format version `v2`",
    );
    assert_corrupt(
        secret,
        &format!("-----BEGIN PRIVATE KEY-----\n{seed}\n"),
        "expected the header `kojibox-secret-key v1`",
    );
    assert_corrupt(secret, &format!("{seed}\n"), "expected the header");
    // Truncated: empty, header only, key cut short.
    assert_corrupt(secret, "", "first line is empty");
    assert_corrupt(
        secret,
        "kojibox-secret-key v1\n",
        "key line after the header is missing",
    );
    assert_corrupt(
        secret,
        &secret_file_text(&seed[..seed.len() - 3]),
        "is the file truncated?",
    );
    // Extra content.
    assert_corrupt(
        secret,
        &format!("kojibox-secret-key v1\n{seed}\nmore\n"),
        "exactly two lines",
    );
}

#[test]
fn corrupt_secret_key_messages_never_quote_the_key() {
    let seed = b64(&[3; 32]);
    let dir = tempdir();
    for (name, text) in [
        ("no-header", format!("{seed}\n")),
        ("bad-b64", secret_file_text(&format!("{seed}*"))),
        ("extra", format!("kojibox-secret-key v1\n{seed}\n{seed}\n")),
    ] {
        let path = write_file(dir.path(), name, &text);
        let err = SecretKey::read(&path).unwrap_err();
        let shown = format!("{err} {err:?}");
        assert!(!shown.contains(&seed[..12]), "{name}: {shown}");
    }
}

#[test]
fn corrupt_public_key_files_are_refused_with_the_reason() {
    let public = key(4).public_key();
    let id = public.key_id().to_string();
    let encoded = public.to_base64();
    let kind = KeyKind::Public;
    assert_corrupt(
        kind,
        &public_file_text(&id, "%%%%"),
        "the key line is not standard base64",
    );
    assert_corrupt(
        kind,
        &format!("kojibox-pubkey v1 {id}\n{encoded}\n"),
        "expected the header `kojibox-public-key v1 <key id>` on the first line, found `kojibox-pubkey",
    );
    assert_corrupt(
        kind,
        &format!("kojibox-public-key v1 NOT-AN-ID\n{encoded}\n"),
        "key id `NOT-AN-ID` is not 16 lowercase hex characters",
    );
    assert_corrupt(kind, "", "first line is empty");
    assert_corrupt(
        kind,
        &format!("kojibox-public-key v1 {id}\n"),
        "key line after the header is missing",
    );
    assert_corrupt(
        kind,
        &public_file_text(&id, &encoded[..21]),
        "is the file truncated?",
    );
    assert_corrupt(
        kind,
        &secret_file_text(&b64(&[4; 32])),
        "it is a secret key file",
    );
    assert_corrupt(kind, "\u{0}\u{1}\u{2}", "expected the header");
}

#[test]
fn a_binary_key_file_is_refused_as_not_text() {
    let dir = tempdir();
    let path = dir.path().join("k.pub");
    fs::write(&path, [0xff, 0xfe, 0x00, 0x80]).unwrap();
    let err = PublicKey::read(&path).unwrap_err();
    assert!(matches!(err, Error::CorruptKeyFile { .. }), "{err:?}");
    assert!(err.to_string().contains("not UTF-8 text"), "{err}");
}

#[test]
fn a_public_key_file_whose_key_does_not_hash_to_its_id_is_refused() {
    let dir = tempdir();
    let named = key(1).key_id();
    let public = key(2).public_key();
    let path = write_file(
        dir.path(),
        "k.pub",
        &public_file_text(&named.to_string(), &public.to_base64()),
    );
    let err = PublicKey::read(&path).unwrap_err();
    assert!(
        matches!(&err, Error::KeyIdMismatch { named: n, actual, .. }
            if *n == named && *actual == public.key_id()),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        format!(
            "public key file {} names key id {named} but its key hashes to {}",
            path.display(),
            public.key_id()
        )
    );
}

#[test]
fn a_public_key_file_holding_a_weak_key_is_refused() {
    let dir = tempdir();
    // The identity point: a small-order key under which forgeries are trivial.
    let mut identity = [0u8; 32];
    identity[0] = 1;
    let path = write_file(
        dir.path(),
        "weak.pub",
        &public_file_text("0011223344556677", &b64(&identity)),
    );
    let err = PublicKey::read(&path).unwrap_err();
    assert!(
        matches!(&err, Error::InvalidPublicKeyFile { path: p } if p == &path),
        "{err:?}"
    );
}

#[test]
fn secret_key_debug_does_not_show_the_seed() {
    let seed = [0x5a; 32];
    let secret = SecretKey::from_seed(&seed);
    let debug = format!("{secret:?} {secret:#?}");
    assert!(!debug.contains(&b64(&seed)), "{debug}");
    assert!(!debug.contains(&b64(&seed)[..8]), "{debug}");
    assert!(!debug.contains("5a5a5a"), "{debug}");
    assert!(!debug.contains("90, 90, 90"), "{debug}");
    assert!(debug.contains("redacted"), "{debug}");
    assert!(debug.contains(&secret.key_id().to_string()), "{debug}");
}
