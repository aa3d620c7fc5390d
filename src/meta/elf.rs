//! Reads the three facts dependency scanning needs from an ELF file: the
//! program interpreter (`PT_INTERP`), the libraries it needs (`DT_NEEDED`)
//! and its own `DT_SONAME`.
//!
//! Only the program headers are used, as the dynamic loader does: section
//! headers may be stripped (`sstrip`) and are not trusted. The file is read
//! lazily through `object::read::ReadCache`, and every single read is capped,
//! so a crafted header cannot make us load a multi-gigabyte file into memory.

use std::fs::File;
use std::io::Read;
use std::ops::Range;
use std::path::Path;

use object::elf::{
    FileHeader32, FileHeader64, DT_NEEDED, DT_NULL, DT_RPATH, DT_RUNPATH, DT_SONAME, DT_STRSZ,
    DT_STRTAB,
};
use object::elf::{ELFCLASS32, ELFCLASS64, PT_LOAD};
use object::read::elf::{Dyn, FileHeader, ProgramHeader};
use object::read::{ReadCache, ReadRef};
use object::Endianness;

/// Largest single read we let the ELF parser make. Program header tables,
/// `PT_INTERP` and `PT_DYNAMIC` are tiny in real files; anything bigger is
/// garbage and is refused instead of allocated.
const MAX_READ: u64 = 16 << 20;

/// Longest library or interpreter name we accept.
const MAX_NAME: u64 = 4096;

/// What an ELF object asks of, and offers to, the dynamic loader.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ElfInfo {
    /// Full path of the program interpreter, e.g. `/lib64/ld-linux-x86-64.so.2`.
    pub interpreter: Option<String>,
    /// `DT_NEEDED` entries, in file order.
    pub needed: Vec<String>,
    /// `DT_SONAME`, if the object declares one.
    pub soname: Option<String>,
    /// Search paths from `DT_RPATH` and `DT_RUNPATH`, split at `:`, in
    /// file order (empty components kept: they mean the current directory).
    pub rpath: Vec<String>,
}

/// Reads `path` if it is an ELF file.
///
/// `Ok(None)`: not ELF (checked from the first four bytes only).
/// `Err(reason)`: it claims to be ELF but is truncated or malformed.
pub fn read(path: &Path) -> std::io::Result<Result<Option<ElfInfo>, String>> {
    let mut file = File::open(path)?;
    let mut ident = [0u8; 5];
    let mut got = 0;
    while got < ident.len() {
        match file.read(&mut ident[got..])? {
            0 => break,
            n => got += n,
        }
    }
    if got < 4 || &ident[..4] != b"\x7fELF" {
        return Ok(Ok(None));
    }
    let cache = ReadCache::new(file);
    let data = Capped(&cache);
    let parsed = match ident.get(4).copied() {
        Some(ELFCLASS64) if got == 5 => parse::<FileHeader64<Endianness>>(data),
        Some(ELFCLASS32) if got == 5 => parse::<FileHeader32<Endianness>>(data),
        _ => Err("unknown ELF class".to_string()),
    };
    Ok(parsed.map(Some))
}

/// A `ReadRef` over the lazily read file that refuses oversized reads.
#[derive(Clone, Copy)]
struct Capped<'a>(&'a ReadCache<File>);

impl<'a> ReadRef<'a> for Capped<'a> {
    fn len(self) -> Result<u64, ()> {
        self.0.len()
    }

    fn read_bytes_at(self, offset: u64, size: u64) -> Result<&'a [u8], ()> {
        if size > MAX_READ {
            return Err(());
        }
        self.0.read_bytes_at(offset, size)
    }

    fn read_bytes_at_until(self, range: Range<u64>, delimiter: u8) -> Result<&'a [u8], ()> {
        self.0.read_bytes_at_until(range, delimiter)
    }
}

fn parse<Elf: FileHeader<Endian = Endianness>>(data: Capped<'_>) -> Result<ElfInfo, String> {
    let header = Elf::parse(data).map_err(|e| e.to_string())?;
    let endian = header.endian().map_err(|e| e.to_string())?;
    let phdrs = header
        .program_headers(endian, data)
        .map_err(|e| e.to_string())?;

    let mut info = ElfInfo::default();
    let mut dynamic = None;
    for ph in phdrs {
        if let Some(interp) = ph.interpreter(endian, data).map_err(|e| e.to_string())? {
            info.interpreter = Some(text(interp, "PT_INTERP")?);
        }
        if let Some(entries) = ph.dynamic(endian, data).map_err(|e| e.to_string())? {
            dynamic = Some(entries);
        }
    }
    let Some(entries) = dynamic else {
        // Static executables and plain object files have nothing to resolve.
        return Ok(info);
    };

    let mut strtab_addr = None;
    let mut strtab_size = None;
    let mut needed = Vec::new();
    let mut soname = None;
    let mut rpaths = Vec::new();
    for entry in entries {
        let tag: u64 = entry.d_tag(endian).into();
        let val: u64 = entry.d_val(endian).into();
        match u32::try_from(tag) {
            Ok(DT_NULL) => break,
            Ok(DT_STRTAB) => strtab_addr = Some(val),
            Ok(DT_STRSZ) => strtab_size = Some(val),
            Ok(DT_NEEDED) => needed.push(val),
            Ok(DT_SONAME) => soname = Some(val),
            Ok(DT_RPATH) | Ok(DT_RUNPATH) => rpaths.push(val),
            _ => {}
        }
    }
    if needed.is_empty() && soname.is_none() && rpaths.is_empty() {
        return Ok(info);
    }
    let (Some(addr), Some(size)) = (strtab_addr, strtab_size) else {
        return Err("dynamic section has no DT_STRTAB/DT_STRSZ".to_string());
    };
    let strtab = file_range_of(phdrs, endian, addr, size)
        .ok_or("DT_STRTAB lies outside every PT_LOAD segment")?;
    let string_at = |offset: u64| -> Result<String, String> {
        if offset >= strtab.end - strtab.start {
            return Err(format!("string offset {offset} is past the string table"));
        }
        let start = strtab.start + offset;
        let end = strtab.end.min(start.saturating_add(MAX_NAME));
        let bytes = data
            .read_bytes_at_until(start..end, 0)
            .map_err(|()| format!("unterminated string at offset {offset}"))?;
        text(bytes, "dynamic string")
    };
    for offset in needed {
        info.needed.push(string_at(offset)?);
    }
    if let Some(offset) = soname {
        info.soname = Some(string_at(offset)?);
    }
    for offset in rpaths {
        let value = string_at(offset)?;
        info.rpath.extend(value.split(':').map(str::to_string));
    }
    Ok(info)
}

/// Maps a virtual address range to the file range backing it, through the
/// `PT_LOAD` segment that contains it (this is what the loader does).
fn file_range_of<P: ProgramHeader>(
    phdrs: &[P],
    endian: P::Endian,
    addr: u64,
    size: u64,
) -> Option<Range<u64>> {
    phdrs.iter().find_map(|ph| {
        if ph.p_type(endian) != PT_LOAD {
            return None;
        }
        let vaddr: u64 = ph.p_vaddr(endian).into();
        let filesz: u64 = ph.p_filesz(endian).into();
        let offset: u64 = ph.p_offset(endian).into();
        let rel = addr.checked_sub(vaddr)?;
        let end = rel.checked_add(size)?;
        if end > filesz {
            return None;
        }
        Some(offset.checked_add(rel)?..offset.checked_add(end)?)
    })
}

fn text(bytes: &[u8], what: &str) -> Result<String, String> {
    String::from_utf8(bytes.to_vec()).map_err(|_| format!("{what} is not UTF-8"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn write(bytes: &[u8]) -> tempfile::NamedTempFile {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        file.write_all(bytes).unwrap();
        file
    }

    #[test]
    fn non_elf_files_are_not_elf() {
        for bytes in [&b""[..], b"\x7fEL", b"#!/bin/sh\n", b"\x7fELX rest"] {
            let file = write(bytes);
            assert_eq!(read(file.path()).unwrap(), Ok(None), "{bytes:?}");
        }
    }

    #[test]
    fn truncated_headers_are_an_error() {
        for (class, len) in [(ELFCLASS64, 5), (ELFCLASS64, 63), (ELFCLASS32, 51), (7, 64)] {
            let mut bytes = vec![0u8; len];
            bytes[..4].copy_from_slice(b"\x7fELF");
            bytes[4] = class;
            let file = write(&bytes);
            let got = read(file.path()).unwrap();
            assert!(got.is_err(), "class {class} len {len}: {got:?}");
        }
    }

    #[test]
    fn random_bytes_behind_an_elf_magic_never_panic() {
        let mut state = 0x2545_f491_u32;
        let mut outcomes = 0;
        for round in 0..300usize {
            let len = 7 + round * 7;
            let mut bytes = vec![0u8; len];
            for b in bytes.iter_mut() {
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                *b = state as u8;
            }
            bytes[..4].copy_from_slice(b"\x7fELF");
            bytes[4] = if round % 2 == 0 {
                ELFCLASS64
            } else {
                ELFCLASS32
            };
            bytes[5] = 1;
            bytes[6] = 1;
            let file = write(&bytes);
            // Reaching here without a panic or an abort is the property.
            if read(file.path()).is_ok() {
                outcomes += 1;
            }
        }
        assert_eq!(outcomes, 300);
    }

    #[test]
    fn reads_the_host_shell() {
        // /bin/sh on the build host is a dynamically linked program.
        let Ok(path) = std::fs::canonicalize("/bin/sh") else {
            return;
        };
        let info = read(&path).unwrap().unwrap().unwrap();
        assert!(info.interpreter.is_some());
        assert!(info.needed.iter().any(|n| n.starts_with("libc.")));
    }
}
