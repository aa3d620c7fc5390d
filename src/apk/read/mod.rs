//! Bounded, panic-free reader for `.apk` v2 packages and `APKINDEX.tar.gz`
//! (apk-format.md §1, §3, §4.1).
//!
//! Everything read here is untrusted: every member, tar entry, PAX record
//! and name has a size cap. The parts, by concern, with imports running
//! one way (each only uses those above it):
//!
//! - [`error`]: `ReadError` and which member a problem is in;
//! - `member`: gzip members found and inflated by hand;
//! - `tar`: a strict tar reader over any inflated input;
//! - `head`: the signature member and the control or index member after it;
//! - `control`, `index_tar`: `.PKGINFO` and scripts; `DESCRIPTION`/`APKINDEX`;
//! - `data`: the data member, `datahash` and per-file checksums;
//! - `extract`: unpacking the data member safely into a directory.

mod control;
mod data;
mod error;
mod extract;
mod head;
mod index_tar;
mod member;
mod tar;

pub use control::{
    control_file, control_from_head, read_control, ApkControl, Scripts, MAX_CONTROL_ENTRIES,
};
pub use data::{
    read_data, read_data_limited, DataEntry, DataSummary, EntryKind, Limits, MAX_DATA_ENTRIES,
    MAX_DATA_MEMBER,
};
pub use error::{Part, ReadError};
pub use extract::{extract, extract_limited};
pub use head::{
    read_head_bytes, read_head_file, Head, Payload, SignatureEntry, MAX_CONTROL_MEMBER,
    MAX_INDEX_MEMBER, MAX_SIGNATURES, MAX_SIGNATURE_MEMBER,
};
pub use index_tar::{read_index_tar, IndexTar};
pub use member::inflate_member;

/// The gzip member feeds the tar reader. This glue lives here so that
/// `member` and `tar` need not know each other.
impl<R: std::io::Read> tar::Input for member::Member<'_, R> {
    fn read_some(&mut self, buf: &mut [u8]) -> error::Result<usize> {
        self.read(buf)
    }
}

/// The small signed package in the shared test data.
#[cfg(test)]
fn accepted_hello() -> std::path::PathBuf {
    crate::testdata().join("apk-tools-accepted/repo/x86_64/hello-1.0-r0.apk")
}
