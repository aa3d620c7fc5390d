//! Finding gzip members by hand (apk-format.md §1.1). The signature
//! covers the exact compressed bytes of one member and a buffered
//! `GzDecoder` reads past member ends, so the header is parsed here, raw
//! deflate runs through `flate2::Decompress` (which reports how many
//! input bytes it used), and the 8-byte trailer is checked. Every member
//! has an inflated-size cap and a compressed-size cap just above it.

use std::io::{self, Read};

use flate2::{Decompress, FlushDecompress, Status};
use sha2::{Digest, Sha256};

use super::error::{Part, ReadError, Result};

/// Compressed bytes allowed beyond the inflated cap (deflate's worst-case
/// expansion is tiny; this only stops endless empty blocks).
const RAW_SLACK: u64 = 1 << 20;

/// A reader with our own buffer, so we know the file offset of every byte
/// and never consume past the end of a gzip member.
pub(super) struct Source<R> {
    inner: R,
    buf: Box<[u8]>,
    start: usize,
    end: usize,
    /// File offset of `buf[start]`.
    pub(super) pos: u64,
}

impl<R: Read> Source<R> {
    pub(super) fn new(inner: R, pos: u64) -> Self {
        Source {
            inner,
            buf: vec![0; 64 * 1024].into_boxed_slice(),
            start: 0,
            end: 0,
            pos,
        }
    }

    pub(super) fn fill(&mut self) -> Result<&[u8]> {
        if self.start == self.end {
            self.start = 0;
            self.end = loop {
                match self.inner.read(&mut self.buf) {
                    Ok(n) => break n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(e.into()),
                }
            };
        }
        Ok(&self.buf[self.start..self.end])
    }

    fn consume(&mut self, n: usize) {
        self.start += n;
        self.pos += n as u64;
    }

    pub(super) fn at_eof(&mut self) -> Result<bool> {
        Ok(self.fill()?.is_empty())
    }
}

/// What to do with the compressed bytes of a member as they pass.
pub(super) enum Raw {
    Collect(Vec<u8>),
    Sha256(Sha256),
}

impl Raw {
    fn feed(&mut self, bytes: &[u8]) {
        match self {
            Raw::Collect(v) => v.extend_from_slice(bytes),
            Raw::Sha256(h) => h.update(bytes),
        }
    }

    pub(super) fn take_bytes(&mut self) -> Vec<u8> {
        match std::mem::replace(self, Raw::Collect(Vec::new())) {
            Raw::Collect(v) => v,
            Raw::Sha256(_) => Vec::new(),
        }
    }

    pub(super) fn sha256(&self) -> [u8; 32] {
        match self {
            Raw::Collect(v) => Sha256::digest(v).into(),
            Raw::Sha256(h) => h.clone().finalize().into(),
        }
    }
}

/// Inflates exactly one gzip member from a `Source`.
pub(super) struct Member<'s, R> {
    pub(super) src: &'s mut Source<R>,
    pub(super) part: Part,
    z: Decompress,
    crc: crc32fast::Hasher,
    out: u64,
    pub(super) limit: u64,
    raw_len: u64,
    pub(super) raw: Raw,
    pub(super) done: bool,
}

impl<'s, R: Read> Member<'s, R> {
    /// Parse the gzip header at the current position.
    pub(super) fn start(src: &'s mut Source<R>, part: Part, limit: u64, raw: Raw) -> Result<Self> {
        let mut m = Member {
            src,
            part,
            z: Decompress::new(false),
            crc: crc32fast::Hasher::new(),
            out: 0,
            limit,
            raw_len: 0,
            raw,
            done: false,
        };
        if m.byte()? != 0x1f || m.byte()? != 0x8b {
            return Err(ReadError::NotGzip(part, "bad magic bytes"));
        }
        if m.byte()? != 8 {
            return Err(ReadError::NotGzip(
                part,
                "compression method is not deflate",
            ));
        }
        let flags = m.byte()?;
        if flags & 0xe0 != 0 {
            return Err(ReadError::NotGzip(part, "reserved header flags are set"));
        }
        for _ in 0..6 {
            m.byte()?; // mtime, extra flags, OS
        }
        if flags & 0x04 != 0 {
            let len = u16::from(m.byte()?) | u16::from(m.byte()?) << 8;
            for _ in 0..len {
                m.byte()?;
            }
        }
        for flag in [0x08, 0x10] {
            // File name, comment: NUL-terminated, bounded by the raw cap.
            if flags & flag != 0 {
                while m.byte()? != 0 {}
            }
        }
        if flags & 0x02 != 0 {
            m.byte()?;
            m.byte()?;
        }
        Ok(m)
    }

    fn count_raw(&mut self, n: usize) -> Result<()> {
        self.raw_len += n as u64;
        if self.raw_len > self.limit.saturating_add(RAW_SLACK) {
            return Err(ReadError::TooLarge {
                part: self.part,
                limit: self.limit,
            });
        }
        Ok(())
    }

    fn byte(&mut self) -> Result<u8> {
        let b = match self.src.fill()?.first() {
            Some(&b) => b,
            None => return Err(ReadError::Truncated(self.part)),
        };
        self.raw.feed(&[b]);
        self.src.consume(1);
        self.count_raw(1)?;
        Ok(b)
    }

    fn read_u32_le(&mut self) -> Result<u32> {
        let mut v = 0u32;
        for i in 0..4 {
            v |= u32::from(self.byte()?) << (8 * i);
        }
        Ok(v)
    }

    pub(super) fn read(&mut self, buf: &mut [u8]) -> Result<usize> {
        if self.done || buf.is_empty() {
            return Ok(0);
        }
        loop {
            let input = self.src.fill()?;
            if input.is_empty() {
                return Err(ReadError::Truncated(self.part));
            }
            let (in0, out0) = (self.z.total_in(), self.z.total_out());
            let status = self
                .z
                .decompress(input, buf, FlushDecompress::None)
                .map_err(|e| ReadError::Deflate(self.part, e.to_string()))?;
            let used = (self.z.total_in() - in0) as usize;
            let produced = (self.z.total_out() - out0) as usize;
            self.raw.feed(&input[..used]);
            self.src.consume(used);
            self.count_raw(used)?;
            self.crc.update(&buf[..produced]);
            self.out += produced as u64;
            if self.out > self.limit {
                return Err(ReadError::TooLarge {
                    part: self.part,
                    limit: self.limit,
                });
            }
            if status == Status::StreamEnd {
                self.finish()?;
                return Ok(produced);
            }
            if produced > 0 {
                return Ok(produced);
            }
            if used == 0 {
                return Err(ReadError::Deflate(self.part, "no progress".into()));
            }
        }
    }

    /// Check the CRC32/ISIZE trailer after the deflate stream ended.
    fn finish(&mut self) -> Result<()> {
        self.done = true;
        let crc = self.read_u32_le()?;
        let isize = self.read_u32_le()?;
        if crc != self.crc.clone().finalize() {
            return Err(ReadError::Crc(self.part));
        }
        if isize != self.out as u32 {
            return Err(ReadError::Length(self.part));
        }
        Ok(())
    }

    /// Inflate the rest of the member into `out`.
    pub(super) fn read_to_end(&mut self, out: &mut Vec<u8>) -> Result<()> {
        let mut chunk = vec![0u8; 32 * 1024];
        loop {
            let n = self.read(&mut chunk)?;
            if n == 0 {
                return Ok(());
            }
            out.extend_from_slice(&chunk[..n]);
        }
    }
}

/// Inflate one whole member from an in-memory buffer (used to check what
/// a bad signature was computed over). Returns `None` on any error.
pub fn inflate_member(member: &[u8], limit: u64) -> Option<Vec<u8>> {
    let mut src = Source::new(member, 0);
    let mut m = Member::start(&mut src, Part::First, limit, Raw::Collect(Vec::new())).ok()?;
    let mut out = Vec::new();
    m.read_to_end(&mut out).ok()?;
    src.at_eof().ok()?.then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inflate_member_rejects_trailing_bytes() {
        let gz = {
            use std::io::Write;
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(b"hello").unwrap();
            e.finish().unwrap()
        };
        assert_eq!(inflate_member(&gz, 100).as_deref(), Some(&b"hello"[..]));
        let mut extra = gz.clone();
        extra.push(0);
        assert_eq!(inflate_member(&extra, 100), None);
        assert_eq!(inflate_member(&gz, 2), None, "limit applies");
        let mut bad_crc = gz;
        let n = bad_crc.len();
        bad_crc[n - 8] ^= 1;
        assert_eq!(inflate_member(&bad_crc, 100), None);
    }
}
