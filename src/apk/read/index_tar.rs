//! The tar inside an index member (apk-format.md §4.1): `DESCRIPTION` and
//! `APKINDEX`, nothing else.

use super::error::{Part, ReadError, Result};
use super::tar::{TarItem, TarReader};

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
