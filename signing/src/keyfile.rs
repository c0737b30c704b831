//! The text formats of key files (described in the crate docs) and the careful I/O around them:
//! size-capped reads, the permission check on secret keys, and create-new writes that are
//! fsynced and, for secret keys, private from the first byte.
//!
//! Error reasons for secret key files never quote the file's content: a mangled file may still
//! hold most of a secret.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read as _, Write as _};
use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use zeroize::Zeroizing;

use crate::text::excerpt;
use crate::{Error, KeyId, KeyKind, Result};

/// First line of a secret key file.
pub(crate) const SECRET_HEADER: &str = "kojibox-secret-key v1";
/// First word of a public key file's header.
pub(crate) const PUBLIC_MAGIC: &str = "kojibox-public-key";
/// Second word of a public key file's header.
pub(crate) const PUBLIC_VERSION: &str = "v1";
/// Length of a raw key (seed or public key).
const KEY_LEN: usize = 32;
/// A key file is under 100 bytes; anything much larger is the wrong file.
const MAX_KEY_FILE_LEN: usize = 4096;

/// The contents of a secret key file.
pub(crate) fn encode_secret(seed: &[u8; KEY_LEN]) -> Zeroizing<String> {
    let mut text = Zeroizing::new(String::with_capacity(SECRET_HEADER.len() + 48));
    text.push_str(SECRET_HEADER);
    text.push('\n');
    BASE64.encode_string(seed, &mut text);
    text.push('\n');
    text
}

/// The contents of a public key file.
pub(crate) fn encode_public(id: KeyId, base64_key: &str) -> String {
    format!("{PUBLIC_MAGIC} {PUBLIC_VERSION} {id}\n{base64_key}\n")
}

/// A parsed, not yet validated public key file.
pub(crate) struct ParsedPublic {
    /// The key id the header names.
    pub(crate) named: KeyId,
    /// The raw key bytes.
    pub(crate) key: [u8; KEY_LEN],
}

/// Parses a secret key file's text into its seed.
pub(crate) fn parse_secret(text: &str, path: &Path) -> Result<Zeroizing<[u8; KEY_LEN]>> {
    let kind = KeyKind::Secret;
    let bad = |reason: &str| corrupt(kind, path, reason.to_owned());
    let mut lines = text.lines();
    let header = lines.next().unwrap_or("").trim_end();
    if header != SECRET_HEADER {
        return Err(bad(&if header.is_empty() {
            format!("its first line is empty; expected the header `{SECRET_HEADER}`")
        } else if header.starts_with(PUBLIC_MAGIC) {
            format!("it is a public key file; a secret key file starts with `{SECRET_HEADER}`")
        } else if let Some(version) = header.strip_prefix("kojibox-secret-key ") {
            format!(
                "unsupported format version `{}`; this version of kojibox reads `{SECRET_HEADER}`",
                excerpt(version)
            )
        } else {
            format!("expected the header `{SECRET_HEADER}` on the first line")
        }));
    }
    let encoded = key_line(&mut lines, kind, path)?;
    let bytes = Zeroizing::new(BASE64.decode(encoded).map_err(|_| {
        bad("the key line is not standard base64 with padding (is the file truncated?)")
    })?);
    let mut seed = Zeroizing::new([0u8; KEY_LEN]);
    if bytes.len() != KEY_LEN {
        return Err(wrong_length(kind, path, bytes.len()));
    }
    seed.copy_from_slice(&bytes);
    Ok(seed)
}

/// Parses a public key file's text. The caller checks that the key is a usable point and that
/// it hashes to the named key id.
pub(crate) fn parse_public(text: &str, path: &Path) -> Result<ParsedPublic> {
    let kind = KeyKind::Public;
    let bad = |reason: String| corrupt(kind, path, reason);
    let expected = format!("`{PUBLIC_MAGIC} {PUBLIC_VERSION} <key id>`");
    let mut lines = text.lines();
    let header = lines.next().unwrap_or("").trim_end();
    let words: Vec<&str> = header.split_whitespace().collect();
    match words.as_slice() {
        [] => {
            return Err(bad(format!(
                "its first line is empty; expected the header {expected}"
            )));
        }
        _ if header == SECRET_HEADER => {
            return Err(bad(
                "it is a secret key file, not a public key file; do not share it".to_owned(),
            ));
        }
        [magic, ..] if *magic != PUBLIC_MAGIC => {
            return Err(bad(format!(
                "expected the header {expected} on the first line, found `{}`",
                excerpt(header)
            )));
        }
        [_, version, ..] if *version != PUBLIC_VERSION => {
            return Err(bad(format!(
                "unsupported format version `{}`; this version of kojibox reads {expected}",
                excerpt(version)
            )));
        }
        [_, _, _] => {}
        _ => {
            return Err(bad(format!(
                "expected the header {expected} on the first line, found `{}`",
                excerpt(header)
            )));
        }
    }
    let named = words[2].parse::<KeyId>().map_err(|_| {
        bad(format!(
            "the header's key id `{}` is not {} lowercase hex characters",
            excerpt(words[2]),
            KeyId::HEX_LEN
        ))
    })?;
    let encoded = key_line(&mut lines, kind, path)?;
    let bytes = BASE64.decode(encoded).map_err(|err| {
        bad(format!(
            "the key line is not standard base64 with padding ({err}); is the file truncated?"
        ))
    })?;
    let key: [u8; KEY_LEN] = bytes
        .as_slice()
        .try_into()
        .map_err(|_| wrong_length(kind, path, bytes.len()))?;
    Ok(ParsedPublic { named, key })
}

/// Takes the key line after the header and checks that nothing but blank lines follows it.
fn key_line<'a>(lines: &mut std::str::Lines<'a>, kind: KeyKind, path: &Path) -> Result<&'a str> {
    let encoded = lines.next().unwrap_or("").trim();
    if encoded.is_empty() {
        return Err(corrupt(
            kind,
            path,
            "the key line after the header is missing (is the file truncated?)".to_owned(),
        ));
    }
    if lines.any(|line| !line.trim().is_empty()) {
        return Err(corrupt(
            kind,
            path,
            "unexpected text after the key line; a key file has exactly two lines".to_owned(),
        ));
    }
    Ok(encoded)
}

fn corrupt(kind: KeyKind, path: &Path, reason: String) -> Error {
    Error::CorruptKeyFile {
        kind,
        path: path.into(),
        reason,
    }
}

fn wrong_length(kind: KeyKind, path: &Path, actual: usize) -> Error {
    Error::KeyLength {
        kind,
        path: path.into(),
        expected: KEY_LEN,
        actual,
    }
}

/// Reads a key file as text. For a secret key the permission check is made on the open handle,
/// so it applies to the very file that is read.
pub(crate) fn read_key_file(kind: KeyKind, path: &Path) -> Result<Zeroizing<String>> {
    let read_error = |source| Error::ReadKey {
        kind,
        path: path.into(),
        source,
    };
    let file = File::open(path).map_err(read_error)?;
    let meta = file.metadata().map_err(read_error)?;
    if !meta.is_file() {
        return Err(read_error(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a regular file",
        )));
    }
    if kind == KeyKind::Secret {
        check_private(path, &meta)?;
    }
    // Sized up front so the buffer never reallocates and leaves unwiped copies behind.
    let mut bytes = Zeroizing::new(Vec::with_capacity(MAX_KEY_FILE_LEN + 2));
    file.take(MAX_KEY_FILE_LEN as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(read_error)?;
    if bytes.len() > MAX_KEY_FILE_LEN {
        return Err(corrupt(
            kind,
            path,
            format!("it is larger than {MAX_KEY_FILE_LEN} bytes, far more than a key file"),
        ));
    }
    let text = std::str::from_utf8(&bytes)
        .map_err(|_| corrupt(kind, path, "it is not UTF-8 text".to_owned()))?;
    Ok(Zeroizing::new(text.to_owned()))
}

#[cfg(unix)]
fn check_private(path: &Path, meta: &fs::Metadata) -> Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(Error::InsecureKeyFile {
            path: path.into(),
            mode,
        });
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_private(_path: &Path, _meta: &fs::Metadata) -> Result<()> {
    // Windows ACLs are not modes; the file inherits its folder's ACL.
    Ok(())
}

/// Writes a new key file: never over an existing path, 0600 from creation for secret keys,
/// fsynced (file and folder). On failure after creation, the partial file is removed.
pub(crate) fn write_new_key_file(kind: KeyKind, path: &Path, contents: &[u8]) -> Result<()> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(match kind {
            KeyKind::Secret => 0o600,
            KeyKind::Public => 0o644,
        });
    }
    let write_error = |source| Error::WriteKey {
        kind,
        path: path.into(),
        source,
    };
    let mut file = match options.open(path) {
        Ok(file) => file,
        Err(err) if err.kind() == io::ErrorKind::AlreadyExists => {
            return Err(Error::KeyFileExists {
                kind,
                path: path.into(),
            });
        }
        Err(err) => return Err(write_error(err)),
    };
    if let Err(err) = file.write_all(contents).and_then(|()| file.sync_all()) {
        drop(file);
        let _ = fs::remove_file(path);
        return Err(write_error(err));
    }
    sync_parent(path).map_err(write_error)
}

/// Makes a new directory entry under `path`'s parent durable.
pub(crate) fn sync_parent(path: &Path) -> io::Result<()> {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => sync_dir(parent),
        _ => sync_dir(Path::new(".")),
    }
}

/// Flushes a directory, so that entries created or renamed in it survive a crash.
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        File::open(dir)?.sync_all()
    }
    #[cfg(not(unix))]
    {
        // Directories cannot be opened as files there; rename is durable once the file is.
        let _ = dir;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEED: [u8; 32] = [42; 32];

    fn secret_err(text: &str) -> Error {
        parse_secret(text, Path::new("x.key")).unwrap_err()
    }

    #[test]
    fn secret_text_round_trips_and_tolerates_crlf_and_missing_newline() {
        let text = encode_secret(&SEED);
        assert!(text.starts_with("kojibox-secret-key v1\n"));
        assert!(text.ends_with("=\n"));
        assert_eq!(*parse_secret(&text, Path::new("x")).unwrap(), SEED);
        let crlf = text.replace('\n', "\r\n");
        assert_eq!(*parse_secret(&crlf, Path::new("x")).unwrap(), SEED);
        assert_eq!(
            *parse_secret(text.trim_end(), Path::new("x")).unwrap(),
            SEED
        );
    }

    #[test]
    fn secret_errors_say_what_was_expected_without_quoting_the_secret() {
        let b64 = BASE64.encode(SEED);
        let err = secret_err(&format!("{b64}\n"));
        let msg = err.to_string();
        assert!(
            msg.contains("expected the header `kojibox-secret-key v1`"),
            "{msg}"
        );
        assert!(!msg.contains(&b64[..10]), "{msg}");

        let msg = secret_err(&format!("kojibox-secret-key v1\n{b64}\n{b64}\n")).to_string();
        assert!(msg.contains("exactly two lines"), "{msg}");
        assert!(!msg.contains(&b64[..10]), "{msg}");

        let msg = secret_err(&format!("kojibox-secret-key v9\n{b64}\n")).to_string();
        assert!(msg.contains("unsupported format version `v9`"), "{msg}");

        let msg = secret_err("kojibox-public-key v1 0011223344556677\nAAAA\n").to_string();
        assert!(msg.contains("it is a public key file"), "{msg}");

        let msg = secret_err("").to_string();
        assert!(msg.contains("first line is empty"), "{msg}");
    }

    #[test]
    fn public_header_problems_are_named() {
        let check = |text: &str, want: &str| {
            let err = parse_public(text, Path::new("p.pub")).err().expect(text);
            let msg = err.to_string();
            assert!(matches!(err, Error::CorruptKeyFile { .. }), "{msg}");
            assert!(msg.contains(want), "{text:?} gave {msg}");
        };
        let key = BASE64.encode([5u8; 32]);
        check(
            &format!("kojibox-public-key v2 0011223344556677\n{key}\n"),
            "unsupported format version `v2`",
        );
        check(
            &format!("kojibox-public-key v1\n{key}\n"),
            "expected the header `kojibox-public-key v1 <key id>`",
        );
        check(
            &format!("kojibox-public-key v1 00112233 extra\n{key}\n"),
            "found `kojibox-public-key v1 00112233 extra`",
        );
        check(
            &format!("kojibox-public-key v1 XYZ\n{key}\n"),
            "key id `XYZ` is not 16 lowercase hex characters",
        );
        check(
            &format!("{SECRET_HEADER}\n{key}\n"),
            "it is a secret key file",
        );
        check(
            "kojibox-public-key v1 0011223344556677\n",
            "key line after the header is missing",
        );
    }

    #[test]
    fn public_text_keeps_the_named_id_for_the_caller_to_check() {
        let id: KeyId = "0011223344556677".parse().unwrap();
        let text = encode_public(id, &BASE64.encode([5u8; 32]));
        let parsed = parse_public(&text, Path::new("p.pub")).unwrap();
        assert_eq!(parsed.named, id);
        assert_eq!(parsed.key, [5u8; 32]);
    }
}
