//! What can go wrong reading a package or index, and where: the error
//! type every other part of the reader returns. Depends on nothing else
//! in the reader.

use std::fmt;
use std::io;
use std::path::PathBuf;

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

pub(in crate::apk) type Result<T, E = ReadError> = std::result::Result<T, E>;
