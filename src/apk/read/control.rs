//! The control member of a package (apk-format.md §2): `.PKGINFO` and the
//! install scripts, read strictly; other dotfiles are skipped but can be
//! fetched on their own with [`control_file`].

use std::path::Path;

use sha1::{Digest, Sha1};

use super::error::{Part, ReadError, Result};
use super::head::{read_head_file, Head, Payload, SignatureEntry};
use super::tar::{TarItem, TarReader};
use crate::apk::pkginfo::{PkgInfo, MAX_PKGINFO_LEN};

/// At most this many entries in the control member.
pub const MAX_CONTROL_ENTRIES: usize = 64;

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apk::read::accepted_hello as hello;
    use crate::apk::sign::Algorithm;

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
}
