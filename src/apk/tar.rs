//! Deterministic ustar + PAX tar writer for apk archives (apk-format.md
//! §1.2–1.5).
//!
//! Every header field is set by the caller: there is no clock, no user
//! lookup and no global PAX header (`g`), which go-apk would choke on.
//! Numbers are always octal (apk rejects base-256), so values that do not
//! fit are errors rather than silently switching encodings. The writer
//! never adds end-of-archive blocks on its own: the signature and control
//! members of an apk must not have them ("cut" tars), so the caller says
//! explicitly when the archive ends.

use std::io::{self, Write};

pub const BLOCK: usize = 512;

/// Largest size the 11-digit octal size field holds (8 GiB - 1).
pub const MAX_OCTAL_SIZE: u64 = 0o77777777777;
/// Largest uid/gid the 7-digit octal field holds.
pub const MAX_ID: u32 = 0o7777777;

const NAME_LEN: usize = 100;
const PREFIX_LEN: usize = 155;
const OWNER_NAME_LEN: usize = 31;
/// Per-entry PAX extended header; never `g` (global).
const PAX_TYPEFLAG: u8 = b'x';

/// Tar entry types apk understands (`typeflag`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    File,
    HardLink,
    Symlink,
    CharDevice,
    BlockDevice,
    Directory,
    Fifo,
}

impl Kind {
    fn typeflag(self) -> u8 {
        match self {
            Kind::File => b'0',
            Kind::HardLink => b'1',
            Kind::Symlink => b'2',
            Kind::CharDevice => b'3',
            Kind::BlockDevice => b'4',
            Kind::Directory => b'5',
            Kind::Fifo => b'6',
        }
    }
}

/// Everything one ustar header says about an entry. Names are raw bytes:
/// tar (and apk) do not require UTF-8.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// Archive path, relative; directories end in `/`.
    pub path: Vec<u8>,
    pub kind: Kind,
    /// Permission bits including setuid/setgid/sticky (at most 0o7777).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub uname: String,
    pub gname: String,
    /// Content length; must be 0 for everything but regular files.
    pub size: u64,
    pub mtime: u64,
    /// Symlink target or hardlink target path.
    pub link: Vec<u8>,
    pub dev_major: u32,
    pub dev_minor: u32,
}

impl Header {
    /// A root-owned entry with no content and no link.
    pub fn new(path: impl Into<Vec<u8>>, kind: Kind, mode: u32, mtime: u64) -> Header {
        Header {
            path: path.into(),
            kind,
            mode,
            uid: 0,
            gid: 0,
            uname: "root".into(),
            gname: "root".into(),
            size: 0,
            mtime,
            link: Vec::new(),
            dev_major: 0,
            dev_minor: 0,
        }
    }
}

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg)
}

/// Write `value` as zero-padded octal filling `field` except its last byte,
/// which stays NUL (the layout of every numeric ustar field but chksum).
fn put_octal(field: &mut [u8], value: u64, what: &str) -> io::Result<()> {
    let digits = field.len() - 1;
    let text = format!("{value:0digits$o}");
    if text.len() > digits {
        return Err(invalid(format!(
            "{what} {value} does not fit in {digits} octal digits (apk has no base-256 numbers)"
        )));
    }
    field[..digits].copy_from_slice(text.as_bytes());
    field[digits] = 0;
    Ok(())
}

/// Split a long path into ustar (prefix, name) at a `/`, or `None` when no
/// split fits. For directories the split happens before the trailing `/`,
/// so the name part is never empty (an empty name broke apk in §1.5).
pub fn ustar_split(path: &[u8]) -> Option<(&[u8], &[u8])> {
    if path.len() <= NAME_LEN {
        return Some((&[], path));
    }
    // The separator itself is dropped: prefix + "/" + name == path.
    let body = path.strip_suffix(b"/").unwrap_or(path);
    let lowest = path.len().saturating_sub(NAME_LEN + 1);
    (lowest..body.len())
        .filter(|&i| body[i] == b'/')
        .find(|&i| i <= PREFIX_LEN && i > 0)
        .map(|i| (&path[..i], &path[i + 1..]))
        .filter(|(_, name)| !name.is_empty() && name != b"/")
}

/// One PAX record `"<len> <key>=<value>\n"`, where `len` counts its own
/// digits: iterate until the digit count is stable.
pub fn pax_record(key: &str, value: &[u8]) -> Vec<u8> {
    let rest = key.len() + value.len() + 3; // space, '=', newline
    let mut len = rest;
    loop {
        let total = rest + len.to_string().len();
        if total == len {
            break;
        }
        len = total;
    }
    let mut rec = format!("{len} {key}=").into_bytes();
    rec.extend_from_slice(value);
    rec.push(b'\n');
    rec
}

/// Encode one 512-byte ustar header. Names/links too long for the fixed
/// fields must already have PAX records; here they are truncated.
fn encode(
    h: &Header,
    name: &[u8],
    prefix: &[u8],
    link: &[u8],
    typeflag: u8,
) -> io::Result<[u8; BLOCK]> {
    let mut b = [0u8; BLOCK];
    b[..name.len().min(NAME_LEN)].copy_from_slice(&name[..name.len().min(NAME_LEN)]);
    if h.mode > 0o7777 {
        return Err(invalid(format!(
            "mode {:o} has more than permission bits",
            h.mode
        )));
    }
    put_octal(&mut b[100..108], h.mode.into(), "mode")?;
    put_octal(&mut b[108..116], h.uid.into(), "uid")?;
    put_octal(&mut b[116..124], h.gid.into(), "gid")?;
    put_octal(&mut b[124..136], h.size, "size")?;
    put_octal(&mut b[136..148], h.mtime, "mtime")?;
    b[156] = typeflag;
    b[157..157 + link.len().min(NAME_LEN)].copy_from_slice(&link[..link.len().min(NAME_LEN)]);
    b[257..265].copy_from_slice(b"ustar\x0000");
    for (range, owner) in [(265..297, &h.uname), (297..329, &h.gname)] {
        if owner.len() > OWNER_NAME_LEN || owner.bytes().any(|c| c == 0) {
            return Err(invalid(format!(
                "owner name {owner:?} is longer than {OWNER_NAME_LEN} bytes or has NUL"
            )));
        }
        b[range.start..range.start + owner.len()].copy_from_slice(owner.as_bytes());
    }
    put_octal(&mut b[329..337], h.dev_major.into(), "devmajor")?;
    put_octal(&mut b[337..345], h.dev_minor.into(), "devminor")?;
    b[345..345 + prefix.len()].copy_from_slice(prefix);
    // apk ignores chksum, but Go's and Python's readers check it.
    b[148..156].fill(b' ');
    let sum: u32 = b.iter().map(|&c| u32::from(c)).sum();
    b[148..154].copy_from_slice(format!("{sum:06o}").as_bytes());
    b[154] = 0;
    Ok(b)
}

/// Zero bytes needed after `len` bytes of content to reach a block edge.
pub fn padding(len: u64) -> usize {
    ((BLOCK as u64 - len % BLOCK as u64) % BLOCK as u64) as usize
}

/// Streaming tar writer over any `Write`.
pub struct TarWriter<W: Write> {
    inner: W,
}

impl<W: Write> TarWriter<W> {
    pub fn new(inner: W) -> Self {
        TarWriter { inner }
    }

    /// Write the header(s) of one entry: a PAX `x` header first when
    /// `extra` is non-empty or the path/link need it, then the ustar
    /// header. The caller then streams exactly `h.size` content bytes with
    /// [`TarWriter::write_content`] and calls [`TarWriter::end_content`].
    pub fn write_header(&mut self, h: &Header, extra: &[(String, Vec<u8>)]) -> io::Result<()> {
        if h.kind != Kind::File && h.size != 0 {
            return Err(invalid(format!(
                "{}: only regular files have content",
                String::from_utf8_lossy(&h.path)
            )));
        }
        let mut pax = Vec::new();
        let (prefix, name) = match ustar_split(&h.path) {
            Some(split) => split,
            None => {
                pax.extend(pax_record("path", &h.path));
                (&[][..], &h.path[..])
            }
        };
        if h.link.len() > NAME_LEN {
            pax.extend(pax_record("linkpath", &h.link));
        }
        for (k, v) in extra {
            pax.extend(pax_record(k, v));
        }
        if !pax.is_empty() {
            let mut ph = Header::new(Vec::new(), Kind::File, 0o644, h.mtime);
            ph.size = pax.len() as u64;
            let mut pname = b"PaxHeaders/".to_vec();
            pname.extend_from_slice(&h.path);
            pname.truncate(NAME_LEN);
            self.inner
                .write_all(&encode(&ph, &pname, &[], &[], PAX_TYPEFLAG)?)?;
            self.inner.write_all(&pax)?;
            self.inner
                .write_all(&[0u8; BLOCK][..padding(pax.len() as u64)])?;
        }
        self.inner
            .write_all(&encode(h, name, prefix, &h.link, h.kind.typeflag())?)
    }

    pub fn write_content(&mut self, data: &[u8]) -> io::Result<()> {
        self.inner.write_all(data)
    }

    /// Pad the content of an entry of `size` bytes to the block edge.
    pub fn end_content(&mut self, size: u64) -> io::Result<()> {
        self.inner.write_all(&[0u8; BLOCK][..padding(size)])
    }

    /// A whole entry with in-memory content.
    pub fn append(
        &mut self,
        h: &Header,
        extra: &[(String, Vec<u8>)],
        data: &[u8],
    ) -> io::Result<()> {
        debug_assert_eq!(h.size, data.len() as u64);
        self.write_header(h, extra)?;
        self.write_content(data)?;
        self.end_content(data.len() as u64)
    }

    /// Write the two zero blocks that end a tar archive.
    pub fn end_of_archive(&mut self) -> io::Result<()> {
        self.inner.write_all(&[0u8; 2 * BLOCK])
    }

    pub fn get_mut(&mut self) -> &mut W {
        &mut self.inner
    }

    /// Hand back the sink without writing anything more.
    pub fn into_inner(self) -> W {
        self.inner
    }
}

/// A tar of root-owned regular files, all with `mode` and `mtime`, for the
/// small archives (signature, control, index). `end_of_archive` must be
/// false for apk signature and control members.
///
/// Panics only if a name cannot be encoded, which cannot happen for the
/// short ASCII names callers pass; use [`TarWriter`] for untrusted names.
pub fn memory_tar(
    entries: &[(&str, &[u8])],
    mode: u32,
    mtime: u64,
    end_of_archive: bool,
) -> Vec<u8> {
    let mut w = TarWriter::new(Vec::new());
    for (name, data) in entries {
        let mut h = Header::new(name.as_bytes(), Kind::File, mode, mtime);
        h.size = data.len() as u64;
        w.append(&h, &[], data)
            .expect("writing a tar into memory with valid headers");
    }
    if end_of_archive {
        w.end_of_archive().expect("writing into memory");
    }
    w.into_inner()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(b: &[u8], r: std::ops::Range<usize>) -> &str {
        std::str::from_utf8(&b[r]).unwrap()
    }

    #[test]
    fn header_fields_are_octal_and_checksum_matches() {
        let mut h = Header::new(&b"usr/bin/ping"[..], Kind::File, 0o4755, 1_700_000_000);
        h.size = 21;
        let b = encode(&h, &h.path, &[], &[], b'0').unwrap();
        assert_eq!(field(&b, 100..108), "0004755\0");
        assert_eq!(field(&b, 108..116), "0000000\0");
        assert_eq!(field(&b, 124..136), "00000000025\0");
        assert_eq!(field(&b, 136..148), "14524770400\0");
        assert_eq!(field(&b, 257..265), "ustar\u{0}00");
        assert_eq!(field(&b, 265..269), "root");
        assert_eq!(b[156], b'0');
        let stored = u32::from_str_radix(field(&b, 148..154), 8).unwrap();
        assert_eq!(&b[154..156], b"\0 ");
        let mut copy = b;
        copy[148..156].fill(b' ');
        assert_eq!(stored, copy.iter().map(|&c| u32::from(c)).sum::<u32>());
    }

    #[test]
    fn numbers_that_need_base256_are_refused() {
        let mut h = Header::new(&b"big"[..], Kind::File, 0o644, 0);
        h.size = MAX_OCTAL_SIZE + 1;
        assert!(encode(&h, b"big", &[], &[], b'0').is_err());
        h.size = MAX_OCTAL_SIZE;
        assert!(encode(&h, b"big", &[], &[], b'0').is_ok());
        h.uid = MAX_ID + 1;
        assert!(encode(&h, b"big", &[], &[], b'0').is_err());
    }

    #[test]
    fn pax_record_length_counts_its_own_digits() {
        let r = pax_record("APK-TOOLS.checksum.SHA1", &[b'a'; 40]);
        assert!(r.starts_with(b"68 APK-TOOLS.checksum.SHA1="));
        assert_eq!(r.len(), 68);
        // Crossing a digit boundary: rest 7 + 1 digit = 8 fits; rest 8 +
        // 1 digit = 9 fits; rest 9 -> 10 needs two digits -> 11.
        for vlen in 0..300 {
            let r = pax_record("k", &vec![b'v'; vlen]);
            let text = String::from_utf8(r.clone()).unwrap();
            let (n, _) = text.split_once(' ').unwrap();
            assert_eq!(n.parse::<usize>().unwrap(), r.len(), "value len {vlen}");
        }
    }

    #[test]
    fn long_names_use_prefix_split_when_possible() {
        let dir = "d".repeat(107);
        let path = format!("{dir}/{}", "f".repeat(59));
        let (prefix, name) = ustar_split(path.as_bytes()).unwrap();
        assert_eq!(prefix, dir.as_bytes());
        assert_eq!(name, "f".repeat(59).as_bytes());
    }

    #[test]
    fn directory_split_keeps_a_non_empty_name() {
        // A 120-byte dir "a.../bbb/" must split as prefix "a..." + "bbb/",
        // never with an empty name part.
        let path = format!("{}/{}/", "a".repeat(100), "b".repeat(18));
        let (prefix, name) = ustar_split(path.as_bytes()).unwrap();
        assert_eq!(prefix, "a".repeat(100).as_bytes());
        assert_eq!(name, format!("{}/", "b".repeat(18)).as_bytes());
        // A single over-long component cannot be split at all.
        let path = format!("{}/", "c".repeat(120));
        assert_eq!(ustar_split(path.as_bytes()), None);
    }

    fn read_back(bytes: &[u8]) -> Vec<(String, String, Vec<u8>)> {
        let mut ar = tar::Archive::new(bytes);
        ar.entries()
            .unwrap()
            .map(|e| {
                let mut e = e.unwrap();
                let path = String::from_utf8(e.path_bytes().to_vec()).unwrap();
                let link = e
                    .link_name_bytes()
                    .map(|l| String::from_utf8(l.to_vec()).unwrap())
                    .unwrap_or_default();
                let mut data = Vec::new();
                io::Read::read_to_end(&mut e, &mut data).unwrap();
                (path, link, data)
            })
            .collect()
    }

    #[test]
    fn long_names_and_links_round_trip_through_a_tar_reader() {
        let split_path = format!("{}/{}", "d".repeat(107), "f".repeat(59));
        let pax_path = format!("{}/{}", "e".repeat(200), "g".repeat(150));
        let long_link = "t".repeat(180);
        let mut w = TarWriter::new(Vec::new());
        let mut a = Header::new(split_path.as_bytes(), Kind::File, 0o644, 5);
        a.size = 3;
        w.append(&a, &[], b"abc").unwrap();
        let b = Header::new(pax_path.as_bytes(), Kind::Directory, 0o755, 5);
        w.append(&b, &[], b"").unwrap();
        let mut c = Header::new(&b"l"[..], Kind::Symlink, 0o777, 5);
        c.link = long_link.clone().into_bytes();
        w.append(&c, &[], b"").unwrap();
        w.end_of_archive().unwrap();
        let out = w.into_inner();
        assert_eq!(out.len() % BLOCK, 0);
        let got = read_back(&out);
        assert_eq!(got.len(), 3);
        assert_eq!(got[0], (split_path, String::new(), b"abc".to_vec()));
        assert_eq!(got[1].0, pax_path);
        assert_eq!(got[2].1, long_link);
    }

    #[test]
    fn memory_tar_has_end_of_archive_only_on_request() {
        let cut = memory_tar(&[(".PKGINFO", b"x = y\n")], 0o644, 9, false);
        assert_eq!(cut.len(), 2 * BLOCK);
        assert_ne!(&cut[BLOCK..], &[0u8; BLOCK][..]);
        let full = memory_tar(&[(".PKGINFO", b"x = y\n")], 0o644, 9, true);
        assert_eq!(full.len(), 4 * BLOCK);
        assert_eq!(&full[..2 * BLOCK], &cut[..]);
        assert!(full[2 * BLOCK..].iter().all(|&b| b == 0));
        assert_eq!(read_back(&full)[0].2, b"x = y\n");
    }
}
