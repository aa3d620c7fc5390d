//! Bounded, panic-free reader for `.apk` v2 packages and `APKINDEX.tar.gz`
//! (apk-format.md §1, §3, §4.1).
//!
//! Everything read here is untrusted. The gzip members are found by hand
//! (header, raw deflate with `flate2::Decompress` tracking how many input
//! bytes it used, then the 8-byte trailer), because the signature covers
//! the exact compressed bytes of one member and a buffered `GzDecoder`
//! reads past member ends. Every member, tar entry, PAX record and name has
//! a size cap; the data member is only inflated when a caller asks for it
//! (`read_data`, `extract`), so indexing stays cheap. Extraction refuses
//! absolute and `..` names and never walks through a symlink.

use std::collections::HashSet;
use std::fmt;
use std::fs;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use flate2::{Decompress, FlushDecompress, Status};
use sha1::{Digest, Sha1};
use sha2::Sha256;

use super::pkginfo::{PkgInfo, MAX_PKGINFO_LEN};
use super::sign::{Algorithm, MAX_SIGNATURE_LEN};
use super::untar::{cstr, read_full, Input, TarHeader, TarItem, TarReader};

/// Inflated size cap of the signature member.
pub const MAX_SIGNATURE_MEMBER: u64 = 1 << 20;
/// Inflated size cap of the control member (`.PKGINFO` plus scripts).
pub const MAX_CONTROL_MEMBER: u64 = 16 << 20;
/// Inflated size cap of an index member (Wolfi's is tens of MiB).
pub const MAX_INDEX_MEMBER: u64 = 256 << 20;
/// Inflated size cap of the data member.
pub const MAX_DATA_MEMBER: u64 = 64 << 30;
/// At most this many `.SIGN.*` entries.
pub const MAX_SIGNATURES: usize = 16;
/// At most this many entries in the control member.
pub const MAX_CONTROL_ENTRIES: usize = 64;
/// At most this many entries (headers) in the data member.
pub const MAX_DATA_ENTRIES: usize = 1 << 21;
/// Compressed bytes allowed beyond the inflated cap (deflate's worst-case
/// expansion is tiny; this only stops endless empty blocks).
const RAW_SLACK: u64 = 1 << 20;

/// Which gzip member a problem is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    Signature,
    Control,
    Data,
    Index,
    /// The first member, before its first entry told us what it is.
    First,
}

impl fmt::Display for Part {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Part::Signature => "signature member",
            Part::Control => "control member",
            Part::Data => "data member",
            Part::Index => "index member",
            Part::First => "first gzip member",
        })
    }
}

/// Why a package or index could not be read. The file name is added by
/// the caller (`FILE: reason`).
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("cannot read: {0}")]
    Io(#[from] io::Error),
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: io::Error },
    #[error("the file is empty")]
    Empty,
    #[error("truncated: the file ends inside the {0}")]
    Truncated(Part),
    #[error("{0} is not gzip: {1}")]
    NotGzip(Part, &'static str),
    #[error("{0}: corrupt deflate data ({1})")]
    Deflate(Part, String),
    #[error("{0}: gzip CRC32 does not match the content")]
    Crc(Part),
    #[error("{0}: gzip length field does not match the content")]
    Length(Part),
    #[error("{part} is larger than {limit} bytes")]
    TooLarge { part: Part, limit: u64 },
    #[error("{0}: tar data is not a whole number of 512-byte blocks")]
    PartialBlock(Part),
    #[error("{part}: tar header #{index}: {problem}")]
    BadHeader {
        part: Part,
        index: usize,
        problem: String,
    },
    #[error("{0}: tar entry `{1}` runs past the end of its gzip member")]
    EntryCrossesMember(Part, String),
    #[error(
        "end-of-archive blocks inside the {0} (apk stops reading there; only the data member may end the tar)"
    )]
    EndOfArchiveInside(Part),
    #[error("{part} has more than {limit} entries")]
    TooManyEntries { part: Part, limit: usize },
    #[error("{part}: unexpected entry `{name}`: {why}")]
    UnexpectedEntry {
        part: Part,
        name: String,
        why: &'static str,
    },
    #[error("a second signature member follows the first")]
    TwoSignatureMembers,
    #[error("no .PKGINFO in the control member")]
    NoPkgInfo,
    #[error(".PKGINFO: {0}")]
    BadPkgInfo(String),
    #[error("not a package: {0}")]
    NotAPackage(&'static str),
    #[error("not an index: {0}")]
    NotAnIndex(&'static str),
    #[error("no data member after the control member")]
    NoData,
    #[error("data split over more than one gzip member (apk3 rejects this)")]
    DataMultipleMembers,
    #[error("{0} bytes of garbage after the last gzip member")]
    TrailingGarbage(u64),
    #[error("non-zero bytes after the end-of-archive blocks of the {0}")]
    DataAfterEnd(Part),
    #[error("no datahash in .PKGINFO (apk3 rejects the package: v2 package format error)")]
    MissingDatahash,
    #[error("malformed datahash `{0}` in .PKGINFO (expected 64 hex digits)")]
    BadDatahash(String),
    #[error("datahash mismatch: .PKGINFO says {expected} but the data member hashes to {actual}")]
    DatahashMismatch { expected: String, actual: String },
    #[error("`{path}`: content does not match its APK-TOOLS.checksum.SHA1")]
    ChecksumMismatch { path: String },
    #[error("`{path}`: malformed APK-TOOLS.checksum.SHA1 (expected 40 hex digits)")]
    BadChecksum { path: String },
    #[error("`{path}`: {problem}")]
    UnsafePath { path: String, problem: &'static str },
    #[error("{what} is past the limit of {limit} ({flag} raises it)")]
    Limit {
        what: String,
        limit: u64,
        flag: &'static str,
    },
}

/// Caps on what reading a package's data may cost, for the tools that
/// unpack or inspect untrusted packages (`lint`, `verify`): the entries'
/// unpacked content size and their number. A small package can hold
/// gigabytes of zeros or millions of entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Sum of the sizes of the regular files, in bytes.
    pub max_unpacked: u64,
    /// Entries of the data member.
    pub max_entries: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_unpacked: 8 << 30,
            max_entries: 1_000_000,
        }
    }
}

impl Limits {
    /// Only the format's own caps ([`MAX_DATA_MEMBER`], [`MAX_DATA_ENTRIES`]).
    pub const FORMAT: Limits = Limits {
        max_unpacked: MAX_DATA_MEMBER,
        max_entries: MAX_DATA_ENTRIES,
    };

    /// A counter of what was seen so far against these limits.
    fn counter(self) -> impl FnMut(&DataEntry) -> Result<()> {
        let (mut entries, mut unpacked) = (0usize, 0u64);
        move |e| {
            entries += 1;
            if entries > self.max_entries {
                return Err(ReadError::Limit {
                    what: format!("the number of entries ({entries} at `{}`)", e.path),
                    limit: self.max_entries as u64,
                    flag: "--max-entries",
                });
            }
            if e.kind == EntryKind::File {
                unpacked = unpacked.saturating_add(e.size);
            }
            if unpacked > self.max_unpacked {
                return Err(ReadError::Limit {
                    what: format!("the unpacked size ({unpacked} bytes at `{}`)", e.path),
                    limit: self.max_unpacked,
                    flag: "--max-unpacked-size",
                });
            }
            Ok(())
        }
    }
}

pub(super) type Result<T, E = ReadError> = std::result::Result<T, E>;

// ---------------------------------------------------------------------------
// Byte source and gzip members

/// A reader with our own buffer, so we know the file offset of every byte
/// and never consume past the end of a gzip member.
struct Source<R> {
    inner: R,
    buf: Box<[u8]>,
    start: usize,
    end: usize,
    /// File offset of `buf[start]`.
    pos: u64,
}

impl<R: Read> Source<R> {
    fn new(inner: R, pos: u64) -> Self {
        Source {
            inner,
            buf: vec![0; 64 * 1024].into_boxed_slice(),
            start: 0,
            end: 0,
            pos,
        }
    }

    fn fill(&mut self) -> Result<&[u8]> {
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

    fn at_eof(&mut self) -> Result<bool> {
        Ok(self.fill()?.is_empty())
    }
}

/// What to do with the compressed bytes of a member as they pass.
enum Raw {
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

    fn take_bytes(&mut self) -> Vec<u8> {
        match std::mem::replace(self, Raw::Collect(Vec::new())) {
            Raw::Collect(v) => v,
            Raw::Sha256(_) => Vec::new(),
        }
    }

    fn sha256(&self) -> [u8; 32] {
        match self {
            Raw::Collect(v) => Sha256::digest(v).into(),
            Raw::Sha256(h) => h.clone().finalize().into(),
        }
    }
}

/// Inflates exactly one gzip member from a `Source`.
struct Member<'s, R> {
    src: &'s mut Source<R>,
    part: Part,
    z: Decompress,
    crc: crc32fast::Hasher,
    out: u64,
    limit: u64,
    raw_len: u64,
    raw: Raw,
    done: bool,
}

impl<'s, R: Read> Member<'s, R> {
    /// Parse the gzip header at the current position.
    fn start(src: &'s mut Source<R>, part: Part, limit: u64, raw: Raw) -> Result<Self> {
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

    fn read(&mut self, buf: &mut [u8]) -> Result<usize> {
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
    fn read_to_end(&mut self, out: &mut Vec<u8>) -> Result<()> {
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

impl<R: Read> Input for Member<'_, R> {
    fn read_some(&mut self, buf: &mut [u8]) -> Result<usize> {
        self.read(buf)
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

/// One `.SIGN.<ALG>.<key>` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureEntry {
    pub alg: Algorithm,
    /// Key file name looked up in the keys directory.
    pub key_name: String,
    pub bytes: Vec<u8>,
}

/// What the second (or, unsigned, first) gzip member holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Payload {
    /// A package control member (`.PKGINFO` and scripts).
    Control,
    /// An index member (`DESCRIPTION`, `APKINDEX`).
    Index,
}

/// The leading members of a package or index file.
pub struct Head {
    pub signatures: Vec<SignatureEntry>,
    /// `.SIGN.*` entries with an algorithm we do not know (e.g. DSA).
    pub unknown_signatures: Vec<String>,
    /// Whether the file has a signature member at all.
    pub signed: bool,
    pub payload: Payload,
    /// Compressed bytes of the control or index member (what is signed).
    pub member: Vec<u8>,
    /// Its inflated tar.
    pub tar: Vec<u8>,
    /// File offset just after that member.
    pub end: u64,
}

fn first_name(block: &[u8]) -> &[u8] {
    cstr(&block[..block.len().min(100)])
}

/// Read a member, deciding what it is from its first entry name.
fn read_classified<R: Read>(src: &mut Source<R>) -> Result<(Option<Payload>, Vec<u8>, Vec<u8>)> {
    let mut m = Member::start(
        src,
        Part::First,
        MAX_SIGNATURE_MEMBER,
        Raw::Collect(Vec::new()),
    )?;
    let mut tar = vec![0u8; 512];
    let n = read_full(&mut m, &mut tar)?;
    tar.truncate(n);
    let name = first_name(&tar);
    let kind = if name.starts_with(b".SIGN.") {
        m.part = Part::Signature;
        None
    } else if name.starts_with(b".") {
        m.part = Part::Control;
        m.limit = MAX_CONTROL_MEMBER;
        Some(Payload::Control)
    } else {
        m.part = Part::Index;
        m.limit = MAX_INDEX_MEMBER;
        Some(Payload::Index)
    };
    m.read_to_end(&mut tar)?;
    Ok((kind, m.raw.take_bytes(), tar))
}

fn parse_signatures(tar: &[u8]) -> Result<(Vec<SignatureEntry>, Vec<String>)> {
    let mut t = TarReader::new(tar, Part::Signature, MAX_SIGNATURES);
    let (mut known, mut unknown) = (Vec::new(), Vec::new());
    loop {
        match t.next()? {
            TarItem::End => return Ok((known, unknown)),
            TarItem::EndOfArchive => return Err(ReadError::EndOfArchiveInside(Part::Signature)),
            TarItem::Entry(h) => {
                let not_sig = |why| ReadError::UnexpectedEntry {
                    part: Part::Signature,
                    name: h.name.clone(),
                    why,
                };
                if !h.name.starts_with(".SIGN.") {
                    return Err(not_sig(
                        "only .SIGN.* entries belong in the signature member",
                    ));
                }
                if !matches!(h.typeflag, b'0' | b'\0') {
                    return Err(not_sig("a signature must be a regular file"));
                }
                if h.size > MAX_SIGNATURE_LEN as u64 {
                    return Err(not_sig("signature larger than 64 KiB"));
                }
                let bytes = t.content_to_vec()?;
                match Algorithm::parse_entry_name(&h.name) {
                    Some((alg, key)) => known.push(SignatureEntry {
                        alg,
                        key_name: key.to_string(),
                        bytes,
                    }),
                    None => unknown.push(h.name),
                }
            }
        }
    }
}

/// Read the signature member (if any) and the control or index member.
fn read_head<R: Read>(src: &mut Source<R>) -> Result<Head> {
    if src.at_eof()? {
        return Err(ReadError::Empty);
    }
    let (kind, raw, tar) = read_classified(src)?;
    let (signatures, unknown_signatures, payload, member, tar, signed) = match kind {
        Some(payload) => (Vec::new(), Vec::new(), payload, raw, tar, false),
        None => {
            let (known, unknown) = parse_signatures(&tar)?;
            if src.at_eof()? {
                return Err(ReadError::NotAPackage(
                    "nothing follows the signature member",
                ));
            }
            let (kind, raw, tar) = read_classified(src)?;
            let payload = kind.ok_or(ReadError::TwoSignatureMembers)?;
            (known, unknown, payload, raw, tar, true)
        }
    };
    Ok(Head {
        signatures,
        unknown_signatures,
        signed,
        payload,
        member,
        tar,
        end: src.pos,
    })
}

/// Read the leading members of any package or index file.
pub fn read_head_file(path: &Path) -> Result<(Head, u64)> {
    let file = crate::open::regular(path)?;
    let size = file.metadata()?.len();
    let mut src = Source::new(file, 0);
    Ok((read_head(&mut src)?, size))
}

/// [`read_head_file`] for bytes already in memory, such as an index or a
/// package's leading bytes fetched from object storage.
pub fn read_head_bytes(bytes: &[u8]) -> Result<Head> {
    read_head(&mut Source::new(bytes, 0))
}

/// Install scripts apk runs (apk-format.md §2.3).
const SCRIPTS: [&str; 7] = [
    ".pre-install",
    ".post-install",
    ".pre-upgrade",
    ".post-upgrade",
    ".pre-deinstall",
    ".post-deinstall",
    ".trigger",
];

/// Everything `read_control` learns without touching the data member.
#[derive(Debug, Clone)]
pub struct ApkControl {
    pub pkginfo: PkgInfo,
    /// SHA-1 of the compressed control member: the index `C:` identity.
    pub control_sha1: [u8; 20],
    pub signatures: Vec<SignatureEntry>,
    /// The compressed control member, exactly as in the file.
    pub control_member: Vec<u8>,
    /// Install scripts by name (`.post-install`, ...), in archive order.
    pub scripts: Scripts,
    /// File offset of the data member.
    pub data_offset: u64,
    pub file_size: u64,
}

/// Install scripts by file name, in archive order.
pub type Scripts = Vec<(String, Vec<u8>)>;

fn parse_control(tar: &[u8]) -> Result<(PkgInfo, Scripts)> {
    let mut t = TarReader::new(tar, Part::Control, MAX_CONTROL_ENTRIES);
    let mut pkginfo = None;
    let mut scripts = Vec::new();
    loop {
        let h = match t.next()? {
            TarItem::End => break,
            TarItem::EndOfArchive => return Err(ReadError::EndOfArchiveInside(Part::Control)),
            TarItem::Entry(h) => h,
        };
        let unexpected = |why| ReadError::UnexpectedEntry {
            part: Part::Control,
            name: h.name.clone(),
            why,
        };
        if !h.name.starts_with('.') || h.name.contains('/') {
            return Err(unexpected("a data entry inside the control member"));
        }
        if h.name.starts_with(".SIGN.") {
            return Err(unexpected("a signature inside the control member"));
        }
        if h.name == ".INSTALL" {
            return Err(unexpected("legacy .INSTALL script (apk3 rejects it)"));
        }
        let wanted = h.name == ".PKGINFO" || SCRIPTS.contains(&h.name.as_str());
        if !wanted {
            continue; // apk ignores other dotfiles such as .melange.yaml
        }
        if !matches!(h.typeflag, b'0' | b'\0') {
            return Err(unexpected("must be a regular file"));
        }
        if h.name == ".PKGINFO" {
            if pkginfo.is_some() {
                return Err(unexpected("second .PKGINFO"));
            }
            if h.size > MAX_PKGINFO_LEN as u64 {
                return Err(unexpected("larger than the .PKGINFO size cap"));
            }
            let text = String::from_utf8(t.content_to_vec()?)
                .map_err(|_| ReadError::BadPkgInfo("not UTF-8".into()))?;
            pkginfo = Some(PkgInfo::parse_checked(&text).map_err(ReadError::BadPkgInfo)?);
        } else {
            let body = t.content_to_vec()?;
            scripts.push((h.name, body));
        }
    }
    let pkginfo = pkginfo.ok_or(ReadError::NoPkgInfo)?;
    if pkginfo.name.is_empty() {
        return Err(ReadError::BadPkgInfo("no pkgname".into()));
    }
    if pkginfo.version.is_empty() {
        return Err(ReadError::BadPkgInfo("no pkgver".into()));
    }
    Ok((pkginfo, scripts))
}

/// Read the signature and control members of a package. Stops at the end
/// of the control member: the data member is not read.
pub fn read_control(path: &Path) -> Result<ApkControl> {
    let (head, file_size) = read_head_file(path)?;
    control_from_head(head, file_size)
}

/// Turn an already-read head into an `ApkControl`.
pub fn control_from_head(head: Head, file_size: u64) -> Result<ApkControl> {
    if head.payload == Payload::Index {
        return Err(ReadError::NotAPackage(
            "it has no .PKGINFO member (is it an index?)",
        ));
    }
    let (pkginfo, scripts) = parse_control(&head.tar)?;
    if head.end >= file_size {
        return Err(ReadError::NoData);
    }
    Ok(ApkControl {
        pkginfo,
        control_sha1: Sha1::digest(&head.member).into(),
        signatures: head.signatures,
        control_member: head.member,
        scripts,
        data_offset: head.end,
        file_size,
    })
}

/// The content of the regular file `name` in a control member's tar
/// (`Head::tar`), for the dotfiles `read_control` skips such as
/// `.melange.yaml`. `None` when the member has no such entry.
pub fn control_file(tar: &[u8], name: &str, max_len: u64) -> Result<Option<Vec<u8>>> {
    let mut t = TarReader::new(tar, Part::Control, MAX_CONTROL_ENTRIES);
    loop {
        let h = match t.next()? {
            TarItem::Entry(h) => h,
            TarItem::End | TarItem::EndOfArchive => return Ok(None),
        };
        if h.name != name {
            continue;
        }
        let unexpected = |why| ReadError::UnexpectedEntry {
            part: Part::Control,
            name: h.name.clone(),
            why,
        };
        if !matches!(h.typeflag, b'0' | b'\0') {
            return Err(unexpected("must be a regular file"));
        }
        if h.size > max_len {
            return Err(unexpected("larger than its size cap"));
        }
        return t.content_to_vec().map(Some);
    }
}

/// The two entries of an index member (apk-format.md §4.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexTar {
    pub description: Option<Vec<u8>>,
    pub apkindex: Vec<u8>,
}

/// Largest DESCRIPTION we read (apk3 only loads up to 160 bytes).
const MAX_DESCRIPTION_READ: u64 = 64 * 1024;

/// Parse an index member's tar: only `DESCRIPTION` and `APKINDEX`, as
/// go-apk requires; end-of-archive blocks are allowed at the end.
pub fn read_index_tar(tar: &[u8]) -> Result<IndexTar> {
    let mut t = TarReader::new(tar, Part::Index, 16);
    let (mut description, mut apkindex) = (None, None);
    loop {
        let h = match t.next()? {
            TarItem::End => break,
            TarItem::EndOfArchive => {
                t.expect_only_zeros()?;
                break;
            }
            TarItem::Entry(h) => h,
        };
        let unexpected = |why| ReadError::UnexpectedEntry {
            part: Part::Index,
            name: h.name.clone(),
            why,
        };
        if !matches!(h.typeflag, b'0' | b'\0') {
            return Err(unexpected("must be a regular file"));
        }
        let slot = match h.name.as_str() {
            "DESCRIPTION" if h.size > MAX_DESCRIPTION_READ => {
                return Err(unexpected("description larger than 64 KiB"))
            }
            "DESCRIPTION" => &mut description,
            "APKINDEX" => &mut apkindex,
            _ => return Err(unexpected("go-apk accepts only DESCRIPTION and APKINDEX")),
        };
        if slot.is_some() {
            return Err(unexpected("appears twice"));
        }
        *slot = Some(t.content_to_vec()?);
    }
    Ok(IndexTar {
        description,
        apkindex: apkindex.ok_or(ReadError::NotAnIndex("no APKINDEX entry"))?,
    })
}

// ---------------------------------------------------------------------------
// Data member

/// The type of a data entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    File,
    Hardlink,
    Symlink,
    CharDevice,
    BlockDevice,
    Directory,
    Fifo,
}

/// One entry of the data member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataEntry {
    /// Name as stored, without a trailing `/`.
    pub path: String,
    pub kind: EntryKind,
    /// Permission bits including setuid/setgid/sticky.
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub uname: String,
    pub gname: String,
    pub mtime: u64,
    pub size: u64,
    /// Symlink target, or hardlink target path.
    pub link_target: Option<String>,
    /// `APK-TOOLS.checksum.SHA1`, when present.
    pub checksum: Option<[u8; 20]>,
    /// `SCHILY.xattr.*` records (name without the prefix, raw value).
    pub xattrs: Vec<(String, Vec<u8>)>,
    /// (major, minor) for device nodes.
    pub device: Option<(u32, u32)>,
}

/// What `read_data` saw, besides the entries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataSummary {
    pub entries: usize,
    /// Whether the tar ended with end-of-archive blocks.
    pub end_of_archive: bool,
    pub datahash: [u8; 32],
}

fn hex_decode<const N: usize>(s: &[u8]) -> Option<[u8; N]> {
    if s.len() != 2 * N {
        return None;
    }
    let nib = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let mut out = [0u8; N];
    for (i, pair) in s.chunks(2).enumerate() {
        out[i] = (nib(pair[0])? << 4) | nib(pair[1])?;
    }
    Some(out)
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn data_entry(h: TarHeader) -> Result<DataEntry> {
    let kind = match h.typeflag {
        b'0' | b'\0' | b'7' => EntryKind::File,
        b'1' => EntryKind::Hardlink,
        b'2' => EntryKind::Symlink,
        b'3' => EntryKind::CharDevice,
        b'4' => EntryKind::BlockDevice,
        b'5' => EntryKind::Directory,
        b'6' => EntryKind::Fifo,
        other => {
            return Err(ReadError::UnexpectedEntry {
                part: Part::Data,
                name: h.name,
                why: if other.is_ascii_graphic() {
                    "unsupported tar entry type"
                } else {
                    "unsupported (non-printable) tar entry type"
                },
            })
        }
    };
    let mut checksum = None;
    let mut xattrs = Vec::new();
    for (key, value) in h.pax {
        if key == "APK-TOOLS.checksum.SHA1" {
            checksum = Some(
                hex_decode::<20>(&value).ok_or_else(|| ReadError::BadChecksum {
                    path: h.name.clone(),
                })?,
            );
        } else if let Some(attr) = key.strip_prefix("SCHILY.xattr.") {
            xattrs.push((attr.to_string(), value));
        }
    }
    let link = matches!(kind, EntryKind::Hardlink | EntryKind::Symlink);
    let device = matches!(kind, EntryKind::CharDevice | EntryKind::BlockDevice);
    let path = match h.name.strip_suffix('/') {
        Some(p) if !p.is_empty() => p.to_string(),
        _ => h.name,
    };
    Ok(DataEntry {
        path,
        kind,
        mode: h.mode & 0o7777,
        uid: h.uid,
        gid: h.gid,
        uname: h.uname,
        gname: h.gname,
        mtime: h.mtime,
        size: h.size,
        link_target: link.then_some(h.linkname),
        checksum,
        xattrs,
        device: device.then_some((h.devmajor, h.devminor)),
    })
}

/// A tar entry cut off at the end of the data member is really a data
/// tar split over several gzip members when another member follows.
fn at_boundary<R: Read>(tar: &mut TarReader<Member<'_, R>>, e: ReadError) -> ReadError {
    let cut = matches!(
        e,
        ReadError::EntryCrossesMember(..) | ReadError::PartialBlock(_)
    );
    if cut
        && tar.inp.done
        && tar
            .inp
            .src
            .fill()
            .is_ok_and(|r| r.starts_with(&[0x1f, 0x8b]))
    {
        return ReadError::DataMultipleMembers;
    }
    e
}

/// Stream the data member of a package. `visit` sees every entry with a
/// reader over its content (empty for non-files); whatever it leaves
/// unread is read afterwards. Checks, in this order: one gzip member,
/// nothing after it, `datahash`, and each entry's SHA-1 checksum as its
/// content passes. Errors from the format take precedence over errors the
/// visitor returns for the same entry.
pub fn read_data<E: From<ReadError>>(
    path: &Path,
    ctl: &ApkControl,
    visit: impl FnMut(&DataEntry, &mut dyn Read) -> Result<(), E>,
) -> Result<DataSummary, E> {
    read_data_limited(path, ctl, Limits::FORMAT, visit)
}

/// [`read_data`] that stops with [`ReadError::Limit`] at the first entry
/// past `limits`, before its content is read.
pub fn read_data_limited<E: From<ReadError>>(
    path: &Path,
    ctl: &ApkControl,
    limits: Limits,
    mut visit: impl FnMut(&DataEntry, &mut dyn Read) -> Result<(), E>,
) -> Result<DataSummary, E> {
    let mut count = limits.counter();
    let expected = match ctl.pkginfo.datahash.as_str() {
        "" => return Err(ReadError::MissingDatahash.into()),
        s => hex_decode::<32>(s.as_bytes())
            .ok_or_else(|| ReadError::BadDatahash(s.chars().take(80).collect()))?,
    };
    let mut file = crate::open::regular(path).map_err(ReadError::from)?;
    file.seek(SeekFrom::Start(ctl.data_offset))
        .map_err(ReadError::from)?;
    let mut src = Source::new(file, ctl.data_offset);
    if src.at_eof()? {
        return Err(ReadError::NoData.into());
    }
    let member = Member::start(
        &mut src,
        Part::Data,
        MAX_DATA_MEMBER,
        Raw::Sha256(Sha256::new()),
    )?;
    let mut tar = TarReader::new(member, Part::Data, MAX_DATA_ENTRIES);
    let mut summary = DataSummary {
        entries: 0,
        end_of_archive: false,
        datahash: [0; 32],
    };
    loop {
        let item = tar.next();
        let h = match item.map_err(|e| at_boundary(&mut tar, e))? {
            TarItem::End => break,
            TarItem::EndOfArchive => {
                summary.end_of_archive = true;
                tar.expect_only_zeros()?;
                break;
            }
            TarItem::Entry(h) => h,
        };
        let entry = data_entry(h)?;
        count(&entry)?;
        summary.entries += 1;
        if entry.kind == EntryKind::File && entry.checksum.is_some() {
            tar.hash = Some(Sha1::new());
        }
        let visited = visit(&entry, &mut tar);
        if let Some(e) = tar.failed.take() {
            return Err(at_boundary(&mut tar, e).into());
        }
        let skipped = tar.skip_content();
        skipped.map_err(|e| at_boundary(&mut tar, e))?;
        let actual: Option<[u8; 20]> = match entry.kind {
            EntryKind::File => tar.hash.take().map(|h| h.finalize().into()),
            EntryKind::Symlink => entry
                .link_target
                .as_ref()
                .map(|t| Sha1::digest(t.as_bytes()).into()),
            _ => None,
        };
        if let (Some(want), Some(got)) = (entry.checksum, actual) {
            if want != got {
                return Err(ReadError::ChecksumMismatch { path: entry.path }.into());
            }
        }
        visited?;
    }
    let datahash = tar.inp.raw.sha256();
    drop(tar);
    if !src.at_eof()? {
        let rest = src.fill()?;
        if rest.starts_with(&[0x1f, 0x8b]) {
            return Err(ReadError::DataMultipleMembers.into());
        }
        return Err(ReadError::TrailingGarbage(ctl.file_size.saturating_sub(src.pos)).into());
    }
    summary.datahash = datahash;
    if summary.datahash != expected {
        return Err(ReadError::DatahashMismatch {
            expected: hex(&expected),
            actual: hex(&summary.datahash),
        }
        .into());
    }
    Ok(summary)
}

// ---------------------------------------------------------------------------
// Extraction

/// Split an archive name into safe relative components, or say why not.
fn safe_components(name: &str) -> Result<Vec<&str>> {
    let unsafe_path = |problem| ReadError::UnsafePath {
        path: name.to_string(),
        problem,
    };
    if name.starts_with('/') {
        return Err(unsafe_path("absolute path"));
    }
    let mut parts = Vec::new();
    for c in name.split('/') {
        match c {
            "" | "." => {}
            ".." => return Err(unsafe_path("contains `..`")),
            c => parts.push(c),
        }
    }
    Ok(parts)
}

/// Make sure every directory from `root` down to `parts` exists as a real
/// directory (creating missing ones), never passing through a symlink.
fn ensure_dirs(root: &Path, parts: &[&str], name: &str) -> Result<PathBuf> {
    let mut cur = root.to_path_buf();
    for part in parts {
        cur.push(part);
        match fs::symlink_metadata(&cur) {
            Ok(m) if m.file_type().is_dir() => {}
            Ok(_) => {
                return Err(ReadError::UnsafePath {
                    path: name.to_string(),
                    problem: "a parent is a symlink or file, not a directory",
                })
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                fs::create_dir(&cur).map_err(|source| ReadError::Write {
                    path: cur.clone(),
                    source,
                })?;
            }
            Err(source) => return Err(ReadError::Write { path: cur, source }),
        }
    }
    Ok(cur)
}

/// Extract a package's data into `dest` (which must exist). Checks what
/// `read_data` checks; refuses absolute and `..` names and anything that
/// would go through a symlink; device nodes and fifos are listed but not
/// created. Directories stay owner-writable. Returns every entry seen.
pub fn extract(path: &Path, dest: &Path) -> Result<Vec<DataEntry>> {
    extract_limited(path, dest, Limits::FORMAT, |_| true)
}

/// [`extract`] within `limits`, returning only the entries `keep` wants
/// (memory then grows with those alone).
pub fn extract_limited(
    path: &Path,
    dest: &Path,
    limits: Limits,
    mut keep: impl FnMut(&DataEntry) -> bool,
) -> Result<Vec<DataEntry>> {
    let ctl = read_control(path)?;
    let mut entries = Vec::new();
    let mut files: HashSet<String> = HashSet::new();
    read_data_limited(
        path,
        &ctl,
        limits,
        |e: &DataEntry, content: &mut dyn Read| {
            if keep(e) {
                entries.push(e.clone());
            }
            let parts = safe_components(&e.path)?;
            let Some((last, parents)) = parts.split_last() else {
                return Ok(()); // the root directory itself
            };
            let dir = ensure_dirs(dest, parents, &e.path)?;
            let target = dir.join(last);
            let write_err = |source| ReadError::Write {
                path: target.clone(),
                source,
            };
            let key = parts.join("/");
            match fs::symlink_metadata(&target) {
                Ok(m) if m.file_type().is_dir() => {
                    if e.kind != EntryKind::Directory {
                        return Err(ReadError::UnsafePath {
                            path: e.path.clone(),
                            problem: "replaces a directory",
                        });
                    }
                }
                Ok(_) => {
                    files.remove(&key);
                    fs::remove_file(&target).map_err(write_err)?;
                }
                Err(_) => {}
            }
            match e.kind {
                EntryKind::Directory => {
                    if !target.is_dir() {
                        fs::create_dir(&target).map_err(write_err)?;
                    }
                    fs::set_permissions(&target, fs::Permissions::from_mode(e.mode | 0o700))
                        .map_err(write_err)?;
                }
                EntryKind::File => {
                    let mut f = fs::OpenOptions::new()
                        .write(true)
                        .create_new(true)
                        .mode(0o600)
                        .open(&target)
                        .map_err(write_err)?;
                    io::copy(content, &mut f).map_err(write_err)?;
                    f.set_permissions(fs::Permissions::from_mode(e.mode))
                        .map_err(write_err)?;
                    files.insert(key);
                }
                EntryKind::Symlink => {
                    let to = e.link_target.as_deref().unwrap_or_default();
                    std::os::unix::fs::symlink(to, &target).map_err(write_err)?;
                }
                EntryKind::Hardlink => {
                    let to = e.link_target.as_deref().unwrap_or_default();
                    let to_key = safe_components(to)?.join("/");
                    if !files.contains(&to_key) {
                        return Err(ReadError::UnsafePath {
                            path: e.path.clone(),
                            problem: "hard link target is not an earlier regular file",
                        });
                    }
                    fs::hard_link(dest.join(&to_key), &target).map_err(write_err)?;
                    files.insert(key);
                }
                EntryKind::CharDevice | EntryKind::BlockDevice | EntryKind::Fifo => {}
            }
            Ok(())
        },
    )?;
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hello() -> PathBuf {
        crate::testdata().join("apk-tools-accepted/repo/x86_64/hello-1.0-r0.apk")
    }

    #[test]
    fn control_file_returns_a_skipped_dotfile_within_its_cap() {
        use crate::apk::package::{write_package, PackageSpec, SignOptions};
        let dir = tempfile::tempdir().unwrap();
        let spec = PackageSpec {
            root: dir.path().join("root"),
            info: PkgInfo {
                name: "p".into(),
                version: "1-r0".into(),
                ..Default::default()
            },
            control_extra: vec![(".melange.yaml".into(), b"package: {}\n".to_vec())],
            ..Default::default()
        };
        std::fs::create_dir(&spec.root).unwrap();
        let pkg = write_package(&spec, &SignOptions::default(), dir.path())
            .unwrap()
            .path;
        let (head, _) = read_head_file(&pkg).unwrap();
        let got = control_file(&head.tar, ".melange.yaml", 100).unwrap();
        assert_eq!(got.as_deref(), Some(&b"package: {}\n"[..]));
        assert!(control_file(&head.tar, ".melange.yaml", 4).is_err());
        assert_eq!(control_file(&head.tar, ".absent", 100).unwrap(), None);
        let (head, _) = read_head_file(&hello()).unwrap();
        assert_eq!(control_file(&head.tar, ".melange.yaml", 100).unwrap(), None);
    }

    #[test]
    fn reads_the_accepted_package_without_touching_data() {
        let ctl = read_control(&hello()).unwrap();
        assert_eq!(ctl.pkginfo.name, "hello");
        assert_eq!(ctl.pkginfo.version, "1.0-r0");
        assert_eq!(ctl.signatures.len(), 1);
        assert_eq!(ctl.signatures[0].key_name, "test-5f3a.rsa.pub");
        assert_eq!(ctl.signatures[0].alg, Algorithm::Rsa256);
        assert_eq!(ctl.signatures[0].bytes.len(), 256);
        // Member sizes from apk-format.md §7: 381 + 425 + 372.
        assert_eq!(ctl.control_member.len(), 425);
        assert_eq!(ctl.data_offset, 381 + 425);
        assert_eq!(ctl.file_size, 1178);
        assert_eq!(ctl.scripts.len(), 1);
        assert_eq!(ctl.scripts[0].0, ".post-install");
        use base64::Engine as _;
        let c = base64::engine::general_purpose::STANDARD.encode(ctl.control_sha1);
        assert_eq!(c, "nO7CmxdGHJEmoneupOUkkhqAtxk=");
    }

    #[test]
    fn streams_data_entries_with_checksums() {
        let ctl = read_control(&hello()).unwrap();
        let mut seen = Vec::new();
        let summary = read_data(&hello(), &ctl, |e, content| -> Result<(), ReadError> {
            let mut body = Vec::new();
            content.read_to_end(&mut body)?;
            seen.push((e.path.clone(), e.kind, body.len(), e.checksum.is_some()));
            Ok(())
        })
        .unwrap();
        assert!(summary.end_of_archive);
        assert_eq!(summary.entries, 7);
        assert_eq!(seen[2], ("usr/bin/hello".into(), EntryKind::File, 21, true));
        assert_eq!(seen[3].1, EntryKind::Symlink);
        assert_eq!(
            seen[4],
            ("usr/bin/hello-hard".into(), EntryKind::Hardlink, 0, false)
        );
    }

    #[test]
    fn extracts_safely() {
        let dir = tempfile::tempdir().unwrap();
        let entries = extract(&hello(), dir.path()).unwrap();
        assert_eq!(entries.len(), 7);
        let root = dir.path();
        assert_eq!(
            fs::read_to_string(root.join("usr/bin/hello")).unwrap(),
            "#!/bin/sh\necho hello\n"
        );
        assert_eq!(
            fs::read_link(root.join("usr/bin/hello-link")).unwrap(),
            Path::new("hello")
        );
        use std::os::unix::fs::MetadataExt;
        let a = fs::metadata(root.join("usr/bin/hello")).unwrap();
        let b = fs::metadata(root.join("usr/bin/hello-hard")).unwrap();
        assert_eq!(a.ino(), b.ino());
        assert_eq!(a.mode() & 0o7777, 0o755);
    }

    #[test]
    fn extraction_never_leaves_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        fs::create_dir(&root).unwrap();
        std::os::unix::fs::symlink(outside.path(), root.join("evil")).unwrap();
        assert!(matches!(
            ensure_dirs(&root, &["evil", "x"], "evil/x/y"),
            Err(ReadError::UnsafePath { .. })
        ));
        assert_eq!(fs::read_dir(outside.path()).unwrap().count(), 0);
    }

    #[test]
    fn safe_components_refuse_escapes() {
        assert_eq!(safe_components("./usr//bin/").unwrap(), ["usr", "bin"]);
        assert!(safe_components("/etc/passwd").is_err());
        assert!(safe_components("usr/../../x").is_err());
    }

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
