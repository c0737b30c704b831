//! The index frame's exact bytes: a zstd frame of raw blocks holding two tar members (the
//! index and its signature). Writing and reading share these, so the reader can insist on the one
//! canonical encoding the writer produces.

use kojibox_manifests::bundle::{INDEX_PATH, SIGNATURE_PATH};

/// The index frame: a zstd frame of raw blocks holding the index and signature members. Its bytes
/// are a pure function of the two members and the mtime, so a reader can insist on exactly them.
pub fn header_frame(index_bytes: &[u8], signature: &str, mtime: u64) -> Vec<u8> {
    let mut content = raw_member(INDEX_PATH, index_bytes, mtime);
    content.extend(raw_member(SIGNATURE_PATH, signature.as_bytes(), mtime));
    raw_frame(&content)
}

/// The length of [`header_frame`] for an index of `index_len` bytes and a signature of
/// `signature_len` bytes: it depends on the two only through their 512-byte tar blocks.
pub fn header_frame_len(index_len: usize, signature_len: usize) -> usize {
    let content = 512 + index_len.div_ceil(512) * 512 + 512 + signature_len.div_ceil(512) * 512;
    13 + 3 * content.div_ceil(MAX_BLOCK) + content
}

/// Largest raw block of a frame (the zstd format's block size limit).
pub const MAX_BLOCK: usize = 128 << 10;

/// A zstd frame storing `content` in raw blocks: magic, a single-segment frame header with an
/// 8-byte content size, then blocks of at most [`MAX_BLOCK`] bytes; no checksum (the content is
/// signed).
pub fn raw_frame(content: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(content.len() + 16 + 3 * (content.len() / MAX_BLOCK + 1));
    out.extend_from_slice(&ZSTD_MAGIC.to_le_bytes());
    out.push(RAW_FRAME_DESCRIPTOR);
    out.extend_from_slice(&(content.len() as u64).to_le_bytes());
    let mut blocks = content.chunks(MAX_BLOCK).peekable();
    if blocks.peek().is_none() {
        out.extend_from_slice(&[1, 0, 0]);
    }
    while let Some(block) = blocks.next() {
        let last = u32::from(blocks.peek().is_none());
        let header = last | ((block.len() as u32) << 3);
        out.extend_from_slice(&header.to_le_bytes()[..3]);
        out.extend_from_slice(block);
    }
    out
}

/// The zstd frame magic number.
pub const ZSTD_MAGIC: u32 = 0xFD2F_B528;
/// Frame header descriptor of [`raw_frame`]: 8-byte content size, single segment, no checksum,
/// no dictionary.
pub const RAW_FRAME_DESCRIPTOR: u8 = 0b1110_0000;

/// One tar member (header, data, padding) without the end-of-archive marker, so the payload
/// frame's tar continues the same archive.
pub fn raw_member(path: &str, data: &[u8], mtime: u64) -> Vec<u8> {
    let mut header = tar::Header::new_gnu();
    // Both member names are short constants; set_path cannot fail on them.
    header
        .set_path(path)
        .expect("member path fits a tar header");
    header.set_entry_type(tar::EntryType::Regular);
    header.set_mode(0o644);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(mtime);
    header.set_size(data.len() as u64);
    header.set_cksum();
    let mut out = header.as_bytes().to_vec();
    out.extend_from_slice(data);
    out.resize(out.len() + (512 - data.len() % 512) % 512, 0);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_frame_len_is_the_length_of_the_frame() {
        for index_len in [0, 1, 511, 512, 513, 130_000, 131_072, 300_000] {
            for signature in ["", "s", &"x".repeat(113)] {
                let frame = header_frame(&vec![b'{'; index_len], signature, 7);
                assert_eq!(
                    frame.len(),
                    header_frame_len(index_len, signature.len()),
                    "{index_len} {}",
                    signature.len()
                );
            }
        }
    }
}
