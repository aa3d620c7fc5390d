//! The leading members of a package or index file: the optional
//! signature member (apk-format.md §3) and the control or index member
//! after it, told apart by their first entry name. The compressed bytes
//! of that member are kept, since the signature covers them.

use std::io::Read;
use std::path::Path;

use super::error::{Part, ReadError, Result};
use super::member::{Member, Raw, Source};
use super::tar::{cstr, read_full, TarItem, TarReader};
use crate::apk::sign::{Algorithm, MAX_SIGNATURE_LEN};

/// Inflated size cap of the signature member.
pub const MAX_SIGNATURE_MEMBER: u64 = 1 << 20;
/// Inflated size cap of the control member (`.PKGINFO` plus scripts).
pub const MAX_CONTROL_MEMBER: u64 = 16 << 20;
/// Inflated size cap of an index member (Wolfi's is tens of MiB).
pub const MAX_INDEX_MEMBER: u64 = 256 << 20;
/// At most this many `.SIGN.*` entries.
pub const MAX_SIGNATURES: usize = 16;

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
