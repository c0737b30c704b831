//! The payload digest: `ServiceBinary.checksum` and `size`.
//!
//! The checksum of a service payload is `sha256:<hex>` of its canonical listing: one line per
//! entry, sorted by payload-relative path (bytewise), each
//!
//! ```text
//! file <mode, 4 octal digits> <size> <sha256 hex> <path>\n
//! symlink 0000 0 <target> <path>\n
//! ```
//!
//! so a change of any path, mode, size, content or link target changes it. `size` is the total
//! bytes of the payload's regular files. The installer recomputes both from what is on disk.

use kojibox_manifests::bundle::{EntryKind, IndexEntry};
use sha2::{Digest, Sha256};

/// An entry of a payload, relative to the payload root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PayloadEntry {
    /// Payload-relative path.
    pub path: String,
    /// File or symlink.
    pub kind: EntryKind,
    /// Permission bits (0 for links).
    pub mode: u32,
    /// Bytes (0 for links).
    pub size: u64,
    /// sha256 hex (files) or link target (links).
    pub content: String,
}

/// `(checksum, size)` of a payload; `entries` need not be sorted.
pub fn payload_digest<'a>(entries: impl IntoIterator<Item = &'a PayloadEntry>) -> (String, u64) {
    let mut sorted: Vec<&PayloadEntry> = entries.into_iter().collect();
    sorted.sort_by(|a, b| a.path.as_bytes().cmp(b.path.as_bytes()));
    let mut hasher = Sha256::new();
    let mut total = 0;
    for entry in sorted {
        let kind = match entry.kind {
            EntryKind::File => {
                total += entry.size;
                "file"
            }
            EntryKind::Symlink => "symlink",
        };
        hasher.update(format!(
            "{kind} {:04o} {} {} {}\n",
            entry.mode, entry.size, entry.content, entry.path
        ));
    }
    (format!("sha256:{}", hex::encode(hasher.finalize())), total)
}

/// The payload entries of one payload root, from index entries (paths made payload-relative).
pub fn payload_entries<'a>(
    root: &str,
    files: impl IntoIterator<Item = &'a IndexEntry>,
) -> Vec<PayloadEntry> {
    let prefix = format!("{root}/");
    files
        .into_iter()
        .filter_map(|e| {
            let rel = e.path.strip_prefix(&prefix)?;
            Some(PayloadEntry {
                path: rel.to_owned(),
                kind: e.kind,
                mode: e.mode,
                size: e.size,
                content: match e.kind {
                    EntryKind::File => e.sha256.clone().unwrap_or_default(),
                    EntryKind::Symlink => e.target.clone().unwrap_or_default(),
                },
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str, mode: u32, content: &str) -> PayloadEntry {
        PayloadEntry {
            path: path.into(),
            kind: EntryKind::File,
            mode,
            size: 3,
            content: content.into(),
        }
    }

    #[test]
    fn digest_is_order_independent_and_sensitive_to_every_field() {
        let a = file("a", 0o644, "aa");
        let b = file("b/c", 0o755, "bb");
        let base = payload_digest([&a, &b]);
        assert_eq!(base, payload_digest([&b, &a]));
        assert_eq!(base.1, 6);
        assert!(base.0.starts_with("sha256:") && base.0.len() == 71);
        for changed in [
            file("a", 0o755, "aa"),
            file("a2", 0o644, "aa"),
            file("a", 0o644, "ab"),
        ] {
            assert_ne!(payload_digest([&changed, &b]).0, base.0);
        }
        let link = PayloadEntry {
            path: "l".into(),
            kind: EntryKind::Symlink,
            mode: 0,
            size: 0,
            content: "a".into(),
        };
        assert_ne!(payload_digest([&a, &b, &link]).0, base.0);
        assert_eq!(payload_digest([&a, &b, &link]).1, 6);
    }
}
