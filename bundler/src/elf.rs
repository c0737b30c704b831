//! Just enough of ELF to compute and check a payload's library closure: whether a file is a
//! 64-bit little-endian ELF object, and its dynamic section's `NEEDED`, `SONAME`, `RUNPATH` and
//! `RPATH` strings and its `PT_INTERP`. Read from the program headers (what the loader reads),
//! never trusting an offset before checking it lies inside the file.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

/// What the dynamic loader reads of one ELF file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Dynamic {
    /// `DT_NEEDED`: the sonames it loads, in order.
    pub needed: Vec<String>,
    /// `DT_SONAME`.
    pub soname: Option<String>,
    /// `DT_RUNPATH`.
    pub runpath: Option<String>,
    /// `DT_RPATH`.
    pub rpath: Option<String>,
    /// `PT_INTERP`: the program interpreter (executables only).
    pub interp: Option<String>,
    /// `e_machine` (62: x86-64, 183: aarch64).
    pub machine: u16,
}

const PT_LOAD: u32 = 1;
const PT_DYNAMIC: u32 = 2;
const PT_INTERP: u32 = 3;
const DT_NULL: i64 = 0;
const DT_NEEDED: i64 = 1;
const DT_STRTAB: i64 = 5;
const DT_STRSZ: i64 = 10;
const DT_SONAME: i64 = 14;
const DT_RPATH: i64 = 15;
const DT_RUNPATH: i64 = 29;
/// Headers and dynamic sections larger than this are not believed.
const MAX_TABLE: u64 = 16 << 20;

/// Whether `path` starts with the ELF magic (cheap: reads four bytes).
pub fn is_elf(path: &Path) -> bool {
    let mut magic = [0u8; 4];
    File::open(path)
        .and_then(|mut f| f.read_exact(&mut magic))
        .is_ok()
        && magic == *b"\x7fELF"
}

/// The dynamic information of the ELF file at `path`: `Ok(None)` when it is not a 64-bit
/// little-endian ELF file or has no dynamic section (a static binary, an object file); an error
/// when it cannot be read or is malformed.
pub fn read(path: &Path) -> std::io::Result<Option<Dynamic>> {
    let mut file = File::open(path)?;
    let len = file.metadata()?.len();
    let mut header = [0u8; 64];
    if len < 64 || file.read_exact(&mut header).is_err() {
        return Ok(None);
    }
    // Magic, ELFCLASS64, ELFDATA2LSB.
    if header[..4] != *b"\x7fELF" || header[4] != 2 || header[5] != 1 {
        return Ok(None);
    }
    let machine = u16::from_le_bytes([header[18], header[19]]);
    let phoff = u64_at(&header, 32);
    let phentsize = u64::from(u16::from_le_bytes([header[54], header[55]]));
    let phnum = u64::from(u16::from_le_bytes([header[56], header[57]]));
    if phentsize < 56 || phnum == 0 {
        return Ok(None);
    }
    let table = read_range(&mut file, len, phoff, phentsize * phnum)?;
    let mut loads = Vec::new();
    let mut dynamic = None;
    let mut interp = None;
    for i in 0..phnum as usize {
        let ph = &table[i * phentsize as usize..][..56];
        let kind = u32::from_le_bytes(ph[..4].try_into().unwrap_or_default());
        let offset = u64_at(ph, 8);
        let vaddr = u64_at(ph, 16);
        let filesz = u64_at(ph, 32);
        match kind {
            PT_LOAD => loads.push((vaddr, offset, filesz)),
            PT_DYNAMIC => dynamic = Some((offset, filesz)),
            PT_INTERP => {
                let bytes = read_range(&mut file, len, offset, filesz)?;
                interp = Some(c_string(&bytes, 0));
            }
            _ => {}
        }
    }
    let Some((offset, size)) = dynamic else {
        return Ok(None);
    };
    let table = read_range(&mut file, len, offset, size)?;
    let mut strtab = None;
    let mut strsz = None;
    let mut entries = Vec::new();
    for entry in table.chunks_exact(16) {
        let tag = i64::from_le_bytes(entry[..8].try_into().unwrap_or_default());
        let value = u64_at(entry, 8);
        match tag {
            DT_NULL => break,
            DT_STRTAB => strtab = Some(value),
            DT_STRSZ => strsz = Some(value),
            DT_NEEDED | DT_SONAME | DT_RPATH | DT_RUNPATH => entries.push((tag, value)),
            _ => {}
        }
    }
    let (Some(strtab), Some(strsz)) = (strtab, strsz) else {
        return Err(malformed(path, "a dynamic section without a string table"));
    };
    // The string table's address, mapped to the file through the segment that loads it.
    let at = loads
        .iter()
        .find(|(vaddr, _, filesz)| strtab >= *vaddr && strtab < vaddr + filesz)
        .map(|(vaddr, offset, _)| offset + (strtab - vaddr))
        .ok_or_else(|| malformed(path, "a string table outside every loaded segment"))?;
    let strings = read_range(&mut file, len, at, strsz)?;
    let mut out = Dynamic {
        interp,
        machine,
        ..Dynamic::default()
    };
    for (tag, value) in entries {
        let Ok(value) = usize::try_from(value) else {
            continue;
        };
        if value >= strings.len() {
            return Err(malformed(path, "a dynamic string past its table"));
        }
        let text = c_string(&strings, value);
        match tag {
            DT_NEEDED => out.needed.push(text),
            DT_SONAME => out.soname = Some(text),
            DT_RPATH => out.rpath = Some(text),
            _ => out.runpath = Some(text),
        }
    }
    Ok(Some(out))
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap_or_default())
}

fn c_string(bytes: &[u8], from: usize) -> String {
    let rest = &bytes[from..];
    let end = rest.iter().position(|b| *b == 0).unwrap_or(rest.len());
    String::from_utf8_lossy(&rest[..end]).into_owned()
}

fn read_range(file: &mut File, len: u64, offset: u64, size: u64) -> std::io::Result<Vec<u8>> {
    let fits = offset.checked_add(size).is_some_and(|end| end <= len);
    if !fits || size > MAX_TABLE {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("an ELF table at {offset}+{size} outside the file ({len} bytes)"),
        ));
    }
    file.seek(SeekFrom::Start(offset))?;
    let mut buf = vec![0u8; size as usize];
    file.read_exact(&mut buf)?;
    Ok(buf)
}

fn malformed(path: &Path, what: &str) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::InvalidData,
        format!("{}: malformed ELF: {what}", path.display()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The test binary itself is a dynamic ELF linked against libc.
    #[test]
    fn a_dynamic_executable_names_its_interpreter_and_libc() {
        let me = std::env::current_exe().unwrap();
        assert!(is_elf(&me));
        let dynamic = read(&me).unwrap().expect("a dynamic executable");
        assert!(
            dynamic.needed.iter().any(|n| n.starts_with("libc.so")),
            "{dynamic:?}"
        );
        assert!(
            dynamic
                .interp
                .as_deref()
                .is_some_and(|i| i.contains("ld-linux")),
            "{dynamic:?}"
        );
    }

    #[test]
    fn a_shared_library_has_its_soname_and_other_files_are_not_elf() {
        let libc = [
            "/lib/x86_64-linux-gnu/libc.so.6",
            "/lib/aarch64-linux-gnu/libc.so.6",
        ]
        .into_iter()
        .map(Path::new)
        .find(|p| p.exists())
        .expect("glibc");
        let dynamic = read(libc).unwrap().unwrap();
        assert_eq!(dynamic.soname.as_deref(), Some("libc.so.6"));
        let dir = tempfile::tempdir().unwrap();
        let text = dir.path().join("script");
        std::fs::write(&text, "#!/bin/sh\necho hi\n").unwrap();
        assert!(!is_elf(&text));
        assert_eq!(read(&text).unwrap(), None);
        // The magic alone, then garbage: not believed, never a panic.
        let fake = dir.path().join("fake");
        let mut bytes = b"\x7fELF\x02\x01".to_vec();
        bytes.resize(64, 0xff);
        std::fs::write(&fake, &bytes).unwrap();
        assert!(read(&fake).is_err());
    }
}
