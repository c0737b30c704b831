//! Fixture helpers: fixed keys, key files written by hand in the documented formats.

use std::fs;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use kojibox_signing::SecretKey;
use tempfile::TempDir;

/// A fresh temporary folder, removed when dropped.
pub fn tempdir() -> TempDir {
    tempfile::tempdir().expect("create a temporary folder")
}

/// A fixed secret key, so failures are reproducible.
pub fn key(seed: u8) -> SecretKey {
    SecretKey::from_seed(&[seed; 32])
}

/// Standard base64 with padding.
pub fn b64(bytes: &[u8]) -> String {
    BASE64.encode(bytes)
}

/// The text of a public key file, written by hand from the documented format.
pub fn public_file_text(key_id: &str, key_b64: &str) -> String {
    format!("kojibox-public-key v1 {key_id}\n{key_b64}\n")
}

/// The text of a secret key file, written by hand from the documented format.
pub fn secret_file_text(seed_b64: &str) -> String {
    format!("kojibox-secret-key v1\n{seed_b64}\n")
}

/// Writes `contents` to `dir/name`; on unix the file gets mode 0600, as a secret key file needs.
pub fn write_file(dir: &Path, name: &str, contents: &str) -> PathBuf {
    let path = dir.join(name);
    fs::write(&path, contents).expect("write fixture");
    #[cfg(unix)]
    set_mode(&path, 0o600);
    path
}

/// Sets a file's permission bits.
#[cfg(unix)]
pub fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt as _;
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).expect("chmod fixture");
}

/// A file's permission bits.
#[cfg(unix)]
pub fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt as _;
    fs::metadata(path).expect("stat").permissions().mode() & 0o7777
}

/// The names in a folder, sorted.
pub fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .expect("list folder")
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}
