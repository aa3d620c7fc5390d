//! The data member of a package (apk-format.md §2.4): its entries,
//! streamed to a visitor, with `datahash` over the compressed member and
//! each entry's `APK-TOOLS.checksum.SHA1` checked as the content passes.
//! The member is only inflated when a caller asks for it, so indexing
//! stays cheap.

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use hex::FromHex;
use sha1::{Digest, Sha1};
use sha2::Sha256;

use super::control::ApkControl;
use super::error::{Part, ReadError, Result};
use super::member::{Member, Raw, Source};
use super::tar::{TarHeader, TarItem, TarReader};

/// Inflated size cap of the data member.
pub const MAX_DATA_MEMBER: u64 = 64 << 30;
/// At most this many entries (headers) in the data member.
pub const MAX_DATA_ENTRIES: usize = 1 << 21;

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
                <[u8; 20]>::from_hex(&value).map_err(|_| ReadError::BadChecksum {
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
        s => <[u8; 32]>::from_hex(s)
            .map_err(|_| ReadError::BadDatahash(s.chars().take(80).collect()))?,
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
            expected: hex::encode(expected),
            actual: hex::encode(summary.datahash),
        }
        .into());
    }
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apk::read::accepted_hello as hello;
    use crate::apk::read::read_control;

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
}
