//! Re-signing packages and indexes in place (`pkgbuild sign`,
//! `pkgbuild sign-index`).
//!
//! Only the signature member is replaced: the control and data members (or
//! the index member) are kept byte for byte, so `C:` identities and
//! `datahash` stay valid. A package is read and checked (datahash, per-file
//! checksums) before it is signed, so a corrupt file is never blessed. The
//! new file is written to a temp file beside the old one and renamed over
//! it; on any failure the old file is untouched.

use std::fs::{self, File};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use super::index::{Index, IndexError};
use super::package::{signature_member, PackageError, SignOptions};
use super::read::{self, Payload, ReadError};

#[derive(Debug, thiserror::Error)]
pub enum ResignError {
    #[error("{path}: {source}")]
    Read { path: PathBuf, source: ReadError },
    #[error("{path}: refusing to sign a corrupt package: {source}")]
    Corrupt { path: PathBuf, source: ReadError },
    #[error("{path}: not an index: {problem}")]
    NotAnIndex { path: PathBuf, problem: String },
    #[error("{path}: cannot write: {source}")]
    Write { path: PathBuf, source: io::Error },
    #[error("{path}: {source}")]
    Sign { path: PathBuf, source: PackageError },
}

fn file_mode(path: &Path) -> u32 {
    fs::metadata(path).map_or(0o644, |m| m.permissions().mode() & 0o7777)
}

/// Replace a package's signature member.
pub fn resign_package(path: &Path, sign: &SignOptions) -> Result<(), ResignError> {
    let read_err = |source| ResignError::Read {
        path: path.to_path_buf(),
        source,
    };
    let ctl = read::read_control(path).map_err(read_err)?;
    read::read_data(path, &ctl, |_, _| Ok::<(), ReadError>(())).map_err(|source| {
        ResignError::Corrupt {
            path: path.to_path_buf(),
            source,
        }
    })?;
    let signature =
        signature_member(&ctl.control_member, sign, ctl.pkginfo.builddate).map_err(|source| {
            ResignError::Sign {
                path: path.to_path_buf(),
                source,
            }
        })?;
    let mut data = File::open(path).map_err(|e| read_err(e.into()))?;
    data.seek(SeekFrom::Start(ctl.data_offset))
        .map_err(|e| read_err(e.into()))?;
    let expected = ctl.file_size - ctl.data_offset;
    crate::atomic::write_with(path, file_mode(path), |f| {
        f.write_all(&signature)?;
        f.write_all(&ctl.control_member)?;
        let copied = io::copy(&mut Read::take(&mut data, expected), f)?;
        if copied != expected {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the package shrank while it was being re-signed",
            ));
        }
        Ok(())
    })
    .map_err(|source| ResignError::Write {
        path: path.to_path_buf(),
        source,
    })
}

/// Replace an index's signature member.
pub fn resign_index(path: &Path, sign: &SignOptions) -> Result<(), ResignError> {
    let read_err = |source| ResignError::Read {
        path: path.to_path_buf(),
        source,
    };
    let (head, size) = read::read_head_file(path).map_err(read_err)?;
    if head.payload != Payload::Index {
        return Err(ResignError::NotAnIndex {
            path: path.to_path_buf(),
            problem: "it holds a .PKGINFO (use `pkgbuild sign` for packages)".into(),
        });
    }
    if head.end != size {
        return Err(read_err(ReadError::TrailingGarbage(
            size.saturating_sub(head.end),
        )));
    }
    let tar = read::read_index_tar(&head.tar).map_err(read_err)?;
    let index = Index::from_tar(tar).map_err(|e: IndexError| ResignError::NotAnIndex {
        path: path.to_path_buf(),
        problem: e.to_string(),
    })?;
    let mtime = index
        .entries
        .iter()
        .map(|e| e.info.builddate)
        .max()
        .unwrap_or(0);
    let mut bytes =
        signature_member(&head.member, sign, mtime).map_err(|source| ResignError::Sign {
            path: path.to_path_buf(),
            source,
        })?;
    bytes.extend_from_slice(&head.member);
    crate::atomic::write(path, file_mode(path), &bytes).map_err(|source| ResignError::Write {
        path: path.to_path_buf(),
        source,
    })
}
