//! `verify`: what `apk verify` checks, plus the structural rules whose
//! violation makes `apk add` fail later (apk-format.md §1, §3.4, §6).
//!
//! For a package: the signature (the first `.SIGN.*` entry whose key file
//! is in the keys directory and verifies), `datahash`, every per-file
//! checksum, and the layout apk needs to install it: no end-of-archive
//! inside the signature or control member, one data member, a checksum on
//! every regular file and symlink, a directory entry before anything in it,
//! hard links after their targets, and names apk will actually install.
//! For an index: the signature, the tar layout go-apk accepts, and records
//! every client can parse.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use super::index::{Index, IndexError, MAX_DESCRIPTION_LEN};
use super::read::{self, DataEntry, EntryKind, Head, Payload, ReadError};
use super::sign::{self, SignError};

/// Why a file failed verification; `Display` is the one-line reason.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("{0}")]
    Read(#[from] ReadError),
    #[error("keys directory {0} does not exist")]
    NoKeysDir(PathBuf),
    #[error("UNTRUSTED signature: the file is not signed")]
    Unsigned,
    #[error("UNTRUSTED signature: no key for {names} in {dir}")]
    Untrusted { names: String, dir: PathBuf },
    #[error("{0}")]
    Key(SignError),
    #[error("BAD signature: {entry} does not verify with {}", key.display())]
    BadSignature { entry: String, key: PathBuf },
    #[error(
        "BAD signature: {entry} was made over the uncompressed tar, not over the compressed gzip member"
    )]
    SignedUncompressed { entry: String },
    #[error("`{path}`: regular file without APK-TOOLS.checksum.SHA1 (apk3 refuses to install it)")]
    MissingFileChecksum { path: String },
    #[error("`{path}`: symlink without APK-TOOLS.checksum.SHA1 (apk2 refuses to install it)")]
    MissingLinkChecksum { path: String },
    #[error("`{path}`: no directory entry `{parent}/` before it (apk: no dirent in archive)")]
    MissingParentDir { path: String, parent: String },
    #[error("`{path}`: hard link target `{target}` is not an earlier regular file in the package")]
    HardlinkTarget { path: String, target: String },
    #[error("`{path}`: {problem}")]
    BadName { path: String, problem: &'static str },
    #[error("{0}")]
    Index(IndexError),
    #[error(
        "DESCRIPTION is {0} bytes; apk3 ignores descriptions longer than {MAX_DESCRIPTION_LEN}"
    )]
    LongDescription(usize),
    #[error("APKINDEX does not end with a blank line (go-apk drops the last record)")]
    NoFinalBlankLine,
}

/// Verify a package or an index (told apart by content) against the
/// public keys in `keys_dir`.
pub fn verify_file(path: &Path, keys_dir: &Path) -> Result<(), VerifyError> {
    verify_file_limited(path, keys_dir, read::Limits::FORMAT)
}

/// [`verify_file`] that stops at the first data entry past `limits`.
pub fn verify_file_limited(
    path: &Path,
    keys_dir: &Path,
    limits: read::Limits,
) -> Result<(), VerifyError> {
    if !keys_dir.is_dir() {
        return Err(VerifyError::NoKeysDir(keys_dir.to_path_buf()));
    }
    let (head, size) = read::read_head_file(path)?;
    check_signature(&head, keys_dir)?;
    match head.payload {
        Payload::Control => {
            let ctl = read::control_from_head(head, size)?;
            let mut layout = Layout::default();
            read::read_data_limited(path, &ctl, limits, |e, _| layout.check(e))?;
            Ok(())
        }
        Payload::Index => check_index(head, size),
    }
}

/// apk's rule: the first signature whose key file exists decides; we also
/// accept a later one that verifies (key rotation lists several).
pub fn check_signature(head: &Head, keys_dir: &Path) -> Result<(), VerifyError> {
    if !head.signed {
        return Err(VerifyError::Unsigned);
    }
    let mut failure = None;
    for sig in &head.signatures {
        let key_path = keys_dir.join(&sig.key_name);
        if !key_path.exists() {
            continue;
        }
        let key = match sign::load_public_key(&key_path) {
            Ok(k) => k,
            Err(e) => {
                failure.get_or_insert(VerifyError::Key(e));
                continue;
            }
        };
        if sign::verify(&key, sig.alg, &head.member, &sig.bytes) {
            return Ok(());
        }
        let entry = format!(".SIGN.{}.{}", sig.alg, sig.key_name);
        failure.get_or_insert(if sign::verify(&key, sig.alg, &head.tar, &sig.bytes) {
            VerifyError::SignedUncompressed { entry }
        } else {
            VerifyError::BadSignature {
                entry,
                key: key_path,
            }
        });
    }
    Err(failure.unwrap_or_else(|| {
        let mut names: Vec<String> = head.signatures.iter().map(|s| s.key_name.clone()).collect();
        names.extend(head.unknown_signatures.iter().cloned());
        VerifyError::Untrusted {
            names: names.join(", "),
            dir: keys_dir.to_path_buf(),
        }
    }))
}

/// The install-time layout rules, checked entry by entry.
#[derive(Default)]
struct Layout {
    dirs: HashSet<String>,
    files: HashSet<String>,
}

impl Layout {
    fn check(&mut self, e: &DataEntry) -> Result<(), VerifyError> {
        let path = &e.path;
        let bad = |problem| VerifyError::BadName {
            path: path.clone(),
            problem,
        };
        if path.starts_with('/') {
            return Err(bad("absolute name"));
        }
        if path == "." || path.starts_with("./") {
            return Err(bad("name starts with `./`; apk silently installs nothing"));
        }
        if path.split('/').any(|c| c == ".." || c.is_empty()) {
            return Err(bad("`..` or an empty component in the name"));
        }
        if path.bytes().any(|c| c < 0x20 || c == 0x7f) {
            return Err(bad("control character in the name"));
        }
        if path.starts_with('.') && !path.contains('/') {
            return Err(bad(
                "top-level dotfile; apk treats it as a control file and never installs it",
            ));
        }
        if let Some((parent, _)) = path.rsplit_once('/') {
            if !self.dirs.contains(parent) {
                return Err(VerifyError::MissingParentDir {
                    path: path.clone(),
                    parent: parent.to_string(),
                });
            }
        }
        match e.kind {
            EntryKind::Directory => {
                self.dirs.insert(path.clone());
            }
            EntryKind::File => {
                if e.checksum.is_none() {
                    return Err(VerifyError::MissingFileChecksum { path: path.clone() });
                }
                self.files.insert(path.clone());
            }
            EntryKind::Symlink => {
                if e.checksum.is_none() {
                    return Err(VerifyError::MissingLinkChecksum { path: path.clone() });
                }
            }
            EntryKind::Hardlink => {
                let target = e.link_target.clone().unwrap_or_default();
                if !self.files.contains(&target) {
                    return Err(VerifyError::HardlinkTarget {
                        path: path.clone(),
                        target,
                    });
                }
                self.files.insert(path.clone());
            }
            EntryKind::CharDevice | EntryKind::BlockDevice | EntryKind::Fifo => {}
        }
        Ok(())
    }
}

fn check_index(head: Head, size: u64) -> Result<(), VerifyError> {
    if head.end != size {
        let rest = size.saturating_sub(head.end);
        return Err(ReadError::TrailingGarbage(rest).into());
    }
    let tar = read::read_index_tar(&head.tar)?;
    if let Some(d) = &tar.description {
        if d.len() > MAX_DESCRIPTION_LEN {
            return Err(VerifyError::LongDescription(d.len()));
        }
    }
    if !tar.apkindex.is_empty() && !tar.apkindex.ends_with(b"\n\n") {
        return Err(VerifyError::NoFinalBlankLine);
    }
    Index::from_tar(tar).map_err(VerifyError::Index)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accepted() -> (PathBuf, PathBuf) {
        let base = crate::testdata().join("apk-tools-accepted");
        (base.join("repo/x86_64"), base.join("keys"))
    }

    #[test]
    fn accepted_package_and_index_verify() {
        let (repo, keys) = accepted();
        verify_file(&repo.join("hello-1.0-r0.apk"), &keys).unwrap();
        verify_file(&repo.join("APKINDEX.tar.gz"), &keys).unwrap();
    }

    #[test]
    fn every_rejected_sample_fails_with_its_reason() {
        let (_, keys) = accepted();
        let dir = crate::testdata().join("apk-tools-rejected");
        for (file, needle) in [
            (
                "ctl_eoa.apk",
                "end-of-archive blocks inside the control member",
            ),
            (
                "sig_eoa.apk",
                "end-of-archive blocks inside the signature member",
            ),
            ("bad_datahash.apk", "datahash mismatch"),
            ("no_datahash.apk", "no datahash"),
            ("sign_uncompressed.apk", "over the uncompressed tar"),
            ("data_two_members.apk", "more than one gzip member"),
            ("no_file_csum.apk", "`usr/bin/hello`: regular file without"),
            ("no_parent_dir.apk", "no directory entry `usr/bin/`"),
        ] {
            let err = verify_file(&dir.join(file), &keys)
                .expect_err(file)
                .to_string();
            assert!(err.contains(needle), "{file}: {err}");
        }
    }

    #[test]
    fn unknown_key_is_untrusted() {
        let (repo, _) = accepted();
        let empty = tempfile::tempdir().unwrap();
        let err = verify_file(&repo.join("hello-1.0-r0.apk"), empty.path()).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("UNTRUSTED signature: no key for test-5f3a.rsa.pub"),
            "{err}"
        );
    }

    #[test]
    fn unreadable_key_names_the_key_file() {
        let (repo, _) = accepted();
        let keys = tempfile::tempdir().unwrap();
        std::fs::write(keys.path().join("test-5f3a.rsa.pub"), "garbage").unwrap();
        let err = verify_file(&repo.join("hello-1.0-r0.apk"), keys.path())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("test-5f3a.rsa.pub") && err.contains("not an RSA key"),
            "{err}"
        );
    }
}
