//! A strict, bounded tar reader for the segments of an `.apk` and an
//! index (apk-format.md §1.2–1.5): ustar headers with their checksum
//! checked, octal fields as strict as apk's (digits, then only NUL or
//! space), PAX `x` records and GNU `L` long names applied, and a cap on
//! every record and name. It reads from any [`Input`]: an inflating gzip
//! member or bytes in memory.

use std::io::{self, Read};

use sha1::{Digest, Sha1};

use super::error::{Part, ReadError, Result};

/// Longest PAX record block we read.
const MAX_PAX_LEN: u64 = 1 << 20;

/// Longest entry name or link target we accept (apk fails beyond
/// PATH_MAX anyway).
const MAX_PATH_LEN: usize = 4096;

/// A source of inflated bytes: a gzip member or an in-memory tar.
pub(super) trait Input {
    fn read_some(&mut self, buf: &mut [u8]) -> Result<usize>;
}

impl Input for &[u8] {
    fn read_some(&mut self, buf: &mut [u8]) -> Result<usize> {
        let n = buf.len().min(self.len());
        buf[..n].copy_from_slice(&self[..n]);
        *self = &self[n..];
        Ok(n)
    }
}

/// Fill `buf` as far as the input goes; returns how much was read.
pub(super) fn read_full(inp: &mut impl Input, buf: &mut [u8]) -> Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        let r = inp.read_some(&mut buf[n..])?;
        if r == 0 {
            break;
        }
        n += r;
    }
    Ok(n)
}

/// One parsed tar header, with PAX and GNU long-name records applied.
#[derive(Debug, Clone, Default)]
pub(super) struct TarHeader {
    pub(super) name: String,
    pub(super) typeflag: u8,
    pub(super) mode: u32,
    pub(super) uid: u64,
    pub(super) gid: u64,
    pub(super) size: u64,
    pub(super) mtime: u64,
    pub(super) linkname: String,
    pub(super) uname: String,
    pub(super) gname: String,
    pub(super) devmajor: u32,
    pub(super) devminor: u32,
    pub(super) pax: Vec<(String, Vec<u8>)>,
}

pub(super) enum TarItem {
    Entry(TarHeader),
    EndOfArchive,
    End,
}

/// apk's numeric fields: octal digits, then only NULs or spaces.
pub(super) fn octal(field: &[u8]) -> Result<u64, String> {
    let digits = field
        .iter()
        .take_while(|c| (b'0'..=b'7').contains(c))
        .count();
    if field[digits..].iter().any(|&c| c != 0 && c != b' ') {
        return Err(format!(
            "numeric field `{}` is not octal digits followed by NUL or space",
            String::from_utf8_lossy(field).escape_default()
        ));
    }
    let mut v: u64 = 0;
    for &c in &field[..digits] {
        v = v
            .checked_mul(8)
            .and_then(|v| v.checked_add(u64::from(c - b'0')))
            .ok_or("numeric field overflows")?;
    }
    Ok(v)
}

pub(super) fn cstr(field: &[u8]) -> &[u8] {
    let n = field.iter().position(|&c| c == 0).unwrap_or(field.len());
    &field[..n]
}

pub(super) fn utf8(bytes: &[u8], what: &str) -> Result<String, String> {
    String::from_utf8(bytes.to_vec()).map_err(|_| format!("{what} is not UTF-8"))
}

pub(super) fn parse_ustar(b: &[u8; 512]) -> Result<TarHeader, String> {
    if &b[257..262] != b"ustar" {
        return Err("missing `ustar` magic".into());
    }
    let stored = octal(&b[148..156])?;
    let unsigned: u64 = b
        .iter()
        .enumerate()
        .map(|(i, &c)| u64::from(if (148..156).contains(&i) { b' ' } else { c }))
        .sum();
    let signed: i64 = b
        .iter()
        .enumerate()
        .map(|(i, &c)| {
            i64::from(if (148..156).contains(&i) {
                b' ' as i8
            } else {
                c as i8
            })
        })
        .sum();
    if stored != unsigned && i64::try_from(stored).ok() != Some(signed) {
        return Err(format!(
            "header checksum {stored:o} does not match the header ({unsigned:o})"
        ));
    }
    let mut name = cstr(&b[0..100]).to_vec();
    let prefix = cstr(&b[345..500]);
    if !prefix.is_empty() {
        let mut full = prefix.to_vec();
        full.push(b'/');
        full.extend_from_slice(&name);
        name = full;
    }
    let small = |v: u64| u32::try_from(v).map_err(|_| "numeric field too large".to_string());
    Ok(TarHeader {
        name: utf8(&name, "name")?,
        mode: small(octal(&b[100..108])?)?,
        uid: octal(&b[108..116])?,
        gid: octal(&b[116..124])?,
        size: octal(&b[124..136])?,
        mtime: octal(&b[136..148])?,
        typeflag: b[156],
        linkname: utf8(cstr(&b[157..257]), "link name")?,
        uname: String::from_utf8_lossy(cstr(&b[265..297])).into_owned(),
        gname: String::from_utf8_lossy(cstr(&b[297..329])).into_owned(),
        devmajor: small(octal(&b[329..337])?)?,
        devminor: small(octal(&b[337..345])?)?,
        pax: Vec::new(),
    })
}

/// Parse `"<len> <key>=<value>\n"` records.
pub(super) fn parse_pax(mut data: &[u8]) -> Result<Vec<(String, Vec<u8>)>, String> {
    let mut out = Vec::new();
    while !data.is_empty() {
        let bad = || "malformed PAX record".to_string();
        let space = data.iter().position(|&c| c == b' ').ok_or_else(bad)?;
        let len: usize = std::str::from_utf8(&data[..space])
            .ok()
            .filter(|s| !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit()))
            .and_then(|s| s.parse().ok())
            .ok_or_else(bad)?;
        if len <= space + 1 || len > data.len() || data[len - 1] != b'\n' {
            return Err(bad());
        }
        let body = &data[space + 1..len - 1];
        let eq = body.iter().position(|&c| c == b'=').ok_or_else(bad)?;
        out.push((utf8(&body[..eq], "PAX key")?, body[eq + 1..].to_vec()));
        data = &data[len..];
    }
    Ok(out)
}

/// A strict tar reader over one gzip member's inflated bytes.
pub(super) struct TarReader<I> {
    pub(super) inp: I,
    pub(super) part: Part,
    /// Content bytes left in the current entry, then its zero padding.
    pub(super) remaining: u64,
    pub(super) padding: u64,
    pub(super) current: String,
    pub(super) count: usize,
    pub(super) max_entries: usize,
    /// SHA-1 of the current entry's content, when it has a checksum.
    pub(super) hash: Option<Sha1>,
    /// An error met while a visitor read content through `io::Read`.
    pub(super) failed: Option<ReadError>,
}

impl<I: Input> TarReader<I> {
    pub(super) fn new(inp: I, part: Part, max_entries: usize) -> Self {
        TarReader {
            inp,
            part,
            remaining: 0,
            padding: 0,
            current: String::new(),
            count: 0,
            max_entries,
            hash: None,
            failed: None,
        }
    }

    pub(super) fn bad(&self, problem: impl Into<String>) -> ReadError {
        ReadError::BadHeader {
            part: self.part,
            index: self.count,
            problem: problem.into(),
        }
    }

    pub(super) fn read_content(&mut self, buf: &mut [u8]) -> Result<usize> {
        let n = (buf.len() as u64).min(self.remaining) as usize;
        if n == 0 {
            return Ok(0);
        }
        let r = self.inp.read_some(&mut buf[..n])?;
        if r == 0 {
            return Err(ReadError::EntryCrossesMember(
                self.part,
                self.current.clone(),
            ));
        }
        if let Some(h) = &mut self.hash {
            h.update(&buf[..r]);
        }
        self.remaining -= r as u64;
        Ok(r)
    }

    /// Read the rest of the current entry and its padding.
    pub(super) fn skip_content(&mut self) -> Result<()> {
        let mut scratch = [0u8; 8192];
        while self.read_content(&mut scratch)? > 0 {}
        while self.padding > 0 {
            let n = (self.padding as usize).min(scratch.len());
            let r = self.inp.read_some(&mut scratch[..n])?;
            if r == 0 {
                return Err(ReadError::PartialBlock(self.part));
            }
            self.padding -= r as u64;
        }
        Ok(())
    }

    pub(super) fn begin_content(&mut self, name: &str, size: u64) {
        self.current = name.to_string();
        self.remaining = size;
        self.padding = (512 - size % 512) % 512;
    }

    /// Read the current entry's content. Memory grows with the bytes
    /// actually present, never with the (untrusted) size field.
    pub(super) fn content_to_vec(&mut self) -> Result<Vec<u8>> {
        let mut v = Vec::with_capacity((self.remaining as usize).min(64 * 1024));
        let mut chunk = [0u8; 8192];
        loop {
            let r = self.read_content(&mut chunk)?;
            if r == 0 {
                break;
            }
            v.extend_from_slice(&chunk[..r]);
        }
        self.skip_content()?;
        Ok(v)
    }

    /// After end-of-archive: the rest of the member must be zeros.
    pub(super) fn expect_only_zeros(&mut self) -> Result<()> {
        let mut rest = [0u8; 8192];
        loop {
            let n = self.inp.read_some(&mut rest)?;
            if n == 0 {
                return Ok(());
            }
            if rest[..n].iter().any(|&c| c != 0) {
                return Err(ReadError::DataAfterEnd(self.part));
            }
        }
    }

    pub(super) fn next(&mut self) -> Result<TarItem> {
        self.skip_content()?;
        self.hash = None;
        let mut pax: Option<Vec<(String, Vec<u8>)>> = None;
        let mut long_name: Option<String> = None;
        loop {
            let mut block = [0u8; 512];
            let n = read_full(&mut self.inp, &mut block)?;
            let dangling = pax.is_some() || long_name.is_some();
            if n == 0 || block.iter().all(|&c| c == 0) {
                if dangling {
                    return Err(self.bad("extended header without a following entry"));
                }
                if n == 0 {
                    return Ok(TarItem::End);
                }
                if n < 512 {
                    return Err(ReadError::PartialBlock(self.part));
                }
                return Ok(TarItem::EndOfArchive);
            }
            if n < 512 {
                return Err(ReadError::PartialBlock(self.part));
            }
            self.count += 1;
            if self.count > self.max_entries {
                return Err(ReadError::TooManyEntries {
                    part: self.part,
                    limit: self.max_entries,
                });
            }
            let mut h = parse_ustar(&block).map_err(|p| self.bad(p))?;
            match h.typeflag {
                b'x' | b'L' => {
                    let cap = if h.typeflag == b'x' {
                        MAX_PAX_LEN
                    } else {
                        MAX_PATH_LEN as u64 + 1
                    };
                    if h.size > cap {
                        return Err(self.bad(format!("extended header larger than {cap} bytes")));
                    }
                    self.begin_content(&h.name, h.size);
                    let data = self.content_to_vec()?;
                    if h.typeflag == b'x' {
                        pax = Some(parse_pax(&data).map_err(|p| self.bad(p))?);
                    } else {
                        long_name = Some(utf8(cstr(&data), "long name").map_err(|p| self.bad(p))?);
                    }
                }
                // Global PAX headers and GNU long link names: apk ignores them.
                b'g' | b'K' => {
                    self.begin_content(&h.name, h.size);
                    self.skip_content()?;
                }
                _ => {
                    if let Some(name) = long_name.take() {
                        h.name = name;
                    }
                    for (key, value) in pax.take().unwrap_or_default() {
                        match key.as_str() {
                            "path" => h.name = utf8(&value, "PAX path").map_err(|p| self.bad(p))?,
                            "linkpath" => {
                                h.linkname =
                                    utf8(&value, "PAX linkpath").map_err(|p| self.bad(p))?
                            }
                            "size" => {
                                return Err(self.bad("PAX `size` record (apk does not support it)"))
                            }
                            _ => h.pax.push((key, value)),
                        }
                    }
                    if h.name.is_empty() {
                        return Err(self.bad("empty name"));
                    }
                    if h.name.len() > MAX_PATH_LEN || h.linkname.len() > MAX_PATH_LEN {
                        return Err(self.bad(format!("name longer than {MAX_PATH_LEN} bytes")));
                    }
                    let regular = matches!(h.typeflag, b'0' | b'\0' | b'7');
                    if !regular && h.size != 0 {
                        return Err(self.bad(format!(
                            "`{}`: non-regular entry with non-zero size",
                            h.name
                        )));
                    }
                    self.begin_content(&h.name, h.size);
                    return Ok(TarItem::Entry(h));
                }
            }
        }
    }
}

impl<I: Input> Read for TarReader<I> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.read_content(buf).map_err(|e| {
            let msg = e.to_string();
            self.failed = Some(e);
            io::Error::other(msg)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn octal_fields_are_strict_like_apk() {
        assert_eq!(octal(b"0000755\0"), Ok(0o755));
        assert_eq!(octal(b"0000755 "), Ok(0o755));
        assert_eq!(octal(b"\0\0\0\0\0\0\0\0"), Ok(0));
        assert!(octal(b" 000755\0").is_err());
        assert!(octal(b"0000758\0").is_err());
        assert!(octal(b"00007x5\0").is_err());
        assert!(octal(b"0007 5\0\0").is_err());
    }

    #[test]
    fn pax_records_parse_and_reject_garbage() {
        let recs = parse_pax(b"30 APK-TOOLS.checksum.SHA1=ab\n12 path=abc\n").unwrap();
        assert_eq!(recs[0], ("APK-TOOLS.checksum.SHA1".into(), b"ab".to_vec()));
        assert_eq!(recs[1], ("path".into(), b"abc".to_vec()));
        for bad in [
            &b"5 a=b"[..],
            b"x path=a\n",
            b"99 path=a\n",
            b"3 \n",
            b"9 pathab\n",
        ] {
            assert!(parse_pax(bad).is_err(), "{:?}", bad);
        }
    }
}
