//! The trust store: a folder of pinned `*.pub` files.

use std::fs;

use kojibox_signing::{Error, KeyKind, PublicKey, TrustStore};

use crate::support::{key, names, public_file_text, tempdir, write_file};

#[test]
fn a_missing_folder_is_an_empty_store_that_knows_no_key() {
    let dir = tempdir();
    let store_dir = dir.path().join("keys");
    let store = TrustStore::open(&store_dir).unwrap();
    assert!(store.is_empty());
    assert_eq!(store.keys().count(), 0);
    assert!(!store_dir.exists(), "opening must not create the folder");

    let secret = key(1);
    let err = store.verify(b"m", &secret.sign(b"m")).unwrap_err();
    assert!(
        matches!(&err, Error::UnknownKey { key_id, store } if *key_id == secret.key_id() && store == &store_dir),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(msg.contains(&secret.key_id().to_string()), "{msg}");
    assert!(msg.contains(&store_dir.display().to_string()), "{msg}");
    assert!(msg.contains("pass its public key file explicitly"), "{msg}");
}

#[test]
fn an_added_key_verifies_and_survives_reopening() {
    let dir = tempdir();
    let store_dir = dir.path().join("app").join("keys");
    let secret = key(1);
    let public = secret.public_key();

    let mut store = TrustStore::open(&store_dir).unwrap();
    let path = store.add(&public).unwrap();
    assert_eq!(path, store_dir.join(format!("{}.pub", public.key_id())));
    assert_eq!(PublicKey::read(&path).unwrap(), public);
    store.verify(b"m", &secret.sign(b"m")).unwrap();

    let reopened = TrustStore::open(&store_dir).unwrap();
    assert_eq!(reopened.keys().collect::<Vec<_>>(), vec![&public]);
    assert_eq!(reopened.get(public.key_id()), Some(&public));
    reopened.verify(b"m", &secret.sign(b"m")).unwrap();
    let err = reopened.verify(b"M", &secret.sign(b"m")).unwrap_err();
    assert!(matches!(err, Error::BadSignature { .. }), "{err:?}");
}

#[test]
fn an_unknown_key_id_is_reported_even_when_other_keys_are_pinned() {
    let dir = tempdir();
    let mut store = TrustStore::open(dir.path()).unwrap();
    store.add(&key(1).public_key()).unwrap();
    let stranger = key(2);
    let err = store.verify(b"m", &stranger.sign(b"m")).unwrap_err();
    assert!(
        matches!(err, Error::UnknownKey { key_id, .. } if key_id == stranger.key_id()),
        "{err:?}"
    );
}

#[test]
fn adding_is_idempotent() {
    let dir = tempdir();
    let public = key(1).public_key();
    let mut store = TrustStore::open(dir.path()).unwrap();
    let first = store.add(&public).unwrap();
    let before = fs::read(&first).unwrap();
    let modified = fs::metadata(&first).unwrap().modified().unwrap();

    assert_eq!(store.add(&public).unwrap(), first);
    // A second handle, opened after the first add, sees the key and does not rewrite it either.
    let mut again = TrustStore::open(dir.path()).unwrap();
    assert_eq!(again.add(&public).unwrap(), first);

    assert_eq!(names(dir.path()), vec![format!("{}.pub", public.key_id())]);
    assert_eq!(fs::read(&first).unwrap(), before);
    assert_eq!(fs::metadata(&first).unwrap().modified().unwrap(), modified);
    assert_eq!(store.len(), 1);
    assert_eq!(again.len(), 1);
}

#[test]
fn a_handle_opened_before_another_process_pinned_the_key_does_not_rewrite_it() {
    let dir = tempdir();
    let public = key(1).public_key();
    let mut early = TrustStore::open(dir.path()).unwrap();
    let mut other = TrustStore::open(dir.path()).unwrap();
    let path = other.add(&public).unwrap();
    let inode_before = file_identity(&path);

    assert_eq!(early.add(&public).unwrap(), path);
    assert_eq!(file_identity(&path), inode_before);
    assert_eq!(early.get(public.key_id()), Some(&public));
}

#[cfg(unix)]
fn file_identity(path: &std::path::Path) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt as _;
    let meta = fs::metadata(path).unwrap();
    (meta.dev(), meta.ino())
}

#[cfg(not(unix))]
fn file_identity(path: &std::path::Path) -> Vec<u8> {
    fs::read(path).unwrap()
}

#[test]
fn a_key_pinned_under_another_name_is_not_duplicated() {
    let dir = tempdir();
    let public = key(1).public_key();
    let named = dir.path().join("release.pub");
    public.write(&named).unwrap();

    let mut store = TrustStore::open(dir.path()).unwrap();
    assert_eq!(store.add(&public).unwrap(), named);
    assert_eq!(names(dir.path()), vec!["release.pub".to_owned()]);
}

#[test]
fn adding_writes_the_whole_file_and_leaves_no_temporary_file() {
    let dir = tempdir();
    let mut store = TrustStore::open(dir.path()).unwrap();
    let keys: Vec<PublicKey> = (1..=5).map(|seed| key(seed).public_key()).collect();
    for public in &keys {
        let path = store.add(public).unwrap();
        let text = fs::read_to_string(&path).unwrap();
        assert_eq!(
            text,
            public_file_text(&public.key_id().to_string(), &public.to_base64())
        );
        #[cfg(unix)]
        assert_eq!(crate::support::mode(&path), 0o644);
    }
    let mut expected: Vec<String> = keys.iter().map(|k| format!("{}.pub", k.key_id())).collect();
    expected.sort();
    assert_eq!(
        names(dir.path()),
        expected,
        "only the key files, no temporaries"
    );

    let reopened = TrustStore::open(dir.path()).unwrap();
    let ids: Vec<_> = reopened.keys().map(PublicKey::key_id).collect();
    let mut sorted = ids.clone();
    sorted.sort();
    assert_eq!(ids, sorted, "keys() is in key id order");
    assert_eq!(ids.len(), 5);
}

#[test]
fn files_that_are_not_pub_files_are_ignored() {
    let dir = tempdir();
    let public = key(1).public_key();
    public.write(dir.path().join("release.pub")).unwrap();
    write_file(dir.path(), "README", "not a key\n");
    write_file(dir.path(), "old.pub.bak", "garbage\n");
    write_file(dir.path(), ".0123.pub-tmp", "half a ke");
    key(2).write(dir.path().join("release.key")).unwrap();
    fs::create_dir(dir.path().join("sub.pub")).unwrap();

    let store = TrustStore::open(dir.path()).unwrap();
    assert_eq!(store.keys().collect::<Vec<_>>(), vec![&public]);
}

#[test]
fn a_corrupt_pub_file_in_the_store_is_an_error_naming_it() {
    let dir = tempdir();
    key(1)
        .public_key()
        .write(dir.path().join("good.pub"))
        .unwrap();
    let bad = write_file(
        dir.path(),
        "bad.pub",
        "kojibox-public-key v1 0011223344556677\n",
    );
    let err = TrustStore::open(dir.path()).unwrap_err();
    assert!(
        matches!(&err, Error::CorruptKeyFile { kind: KeyKind::Public, path, .. } if path == &bad),
        "{err:?}"
    );
    assert!(err.to_string().contains("bad.pub"), "{err}");
}

#[test]
fn a_pub_file_with_a_mismatched_key_id_in_the_store_is_an_error_naming_it() {
    let dir = tempdir();
    let text = public_file_text(
        &key(1).key_id().to_string(),
        &key(2).public_key().to_base64(),
    );
    let bad = write_file(dir.path(), "forged.pub", &text);
    let err = TrustStore::open(dir.path()).unwrap_err();
    assert!(
        matches!(&err, Error::KeyIdMismatch { path, .. } if path == &bad),
        "{err:?}"
    );
}

#[test]
fn the_same_key_in_two_files_is_one_key() {
    let dir = tempdir();
    let public = key(1).public_key();
    public.write(dir.path().join("a.pub")).unwrap();
    public.write(dir.path().join("b.pub")).unwrap();
    let store = TrustStore::open(dir.path()).unwrap();
    assert_eq!(store.len(), 1);
}

#[cfg(unix)]
#[test]
fn a_store_path_that_is_a_file_is_a_read_error() {
    let dir = tempdir();
    let file = write_file(dir.path(), "keys", "x");
    let err = TrustStore::open(&file).unwrap_err();
    assert!(
        matches!(&err, Error::ReadTrustStore { path, .. } if path == &file),
        "{err:?}"
    );
    assert!(
        err.to_string().starts_with("could not read trust store"),
        "{err}"
    );
}
