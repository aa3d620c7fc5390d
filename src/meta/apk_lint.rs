//! The package linters run on a finished `.apk` instead of a staged tree, so
//! `pkgbuild lint` can judge packages built elsewhere (or by an older
//! pkgbuild) with the same rules the build applies.
//!
//! The package is untrusted: it is unpacked with the bounded, traversal-safe
//! [`apk::read::extract`] into a private temporary directory, and the linters
//! then walk that directory exactly as they walk a staged tree. `extract` does
//! not create device nodes and fifos; each gets an empty regular file in its
//! place (mode 0644, so it trips path-based linters such as `dev` and
//! `tempdir` but not the permission ones), which is all a linter looks at.

use std::fs;
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::apk::read::{self, DataEntry, EntryKind, ReadError};

use super::lint::{self, Finding, LintContext};

/// What linting one package found.
#[derive(Debug, Clone)]
pub struct ApkLint {
    /// `pkgname` from the package's `.PKGINFO`.
    pub name: String,
    /// `arch` from the package's `.PKGINFO`.
    pub arch: String,
    pub findings: Vec<Finding>,
}

/// Why a package could not be linted. The caller adds the file name.
#[derive(Debug, thiserror::Error)]
pub enum ApkLintError {
    #[error("{0}")]
    Read(#[from] ReadError),
    #[error("cannot create a temporary directory to unpack into: {0}")]
    TempDir(io::Error),
    #[error("cannot stand in for special file {path}: {source}")]
    Placeholder { path: String, source: io::Error },
    #[error("cannot lint the unpacked tree: {0}")]
    Lint(io::Error),
}

/// Unpacks the package at `path` and runs every linter not in `disabled`.
pub fn lint_apk(path: &Path, disabled: &[String]) -> Result<ApkLint, ApkLintError> {
    let control = read::read_control(path)?;
    let dir = tempfile::Builder::new()
        .prefix("pkgbuild-lint-")
        .tempdir()
        .map_err(ApkLintError::TempDir)?;
    let entries = read::extract(path, dir.path())?;
    for e in entries.iter().filter(|e| is_special(e)) {
        stand_in(dir.path(), e).map_err(|source| ApkLintError::Placeholder {
            path: e.path.clone(),
            source,
        })?;
    }
    let info = control.pkginfo;
    let findings = lint::lint_tree(
        dir.path(),
        &LintContext {
            package_name: &info.name,
            disabled,
            arch: &info.arch,
        },
    )
    .map_err(ApkLintError::Lint)?;
    Ok(ApkLint {
        name: info.name,
        arch: info.arch,
        findings,
    })
}

fn is_special(e: &DataEntry) -> bool {
    matches!(
        e.kind,
        EntryKind::CharDevice | EntryKind::BlockDevice | EntryKind::Fifo
    )
}

/// An empty file where `extract` skipped a device node or fifo. Every parent
/// must already be a real directory (extract made them); a symlink on the
/// way, or anything already at the spot, means there is nothing to add.
fn stand_in(root: &Path, e: &DataEntry) -> io::Result<()> {
    let parts: Vec<&str> = e
        .path
        .split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .collect();
    let Some((last, parents)) = parts.split_last() else {
        return Ok(());
    };
    let mut at = PathBuf::from(root);
    for p in parents {
        if *p == ".." {
            return Ok(());
        }
        at.push(p);
        match fs::symlink_metadata(&at) {
            Ok(m) if m.file_type().is_dir() => {}
            _ => return Ok(()),
        }
    }
    if *last == ".." {
        return Ok(());
    }
    match fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .open(at.join(last))
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn special(path: &str) -> DataEntry {
        DataEntry {
            path: path.to_string(),
            kind: EntryKind::Fifo,
            mode: 0o666,
            uid: 0,
            gid: 0,
            uname: String::new(),
            gname: String::new(),
            mtime: 0,
            size: 0,
            link_target: None,
            checksum: None,
            xattrs: Vec::new(),
            device: None,
        }
    }

    #[test]
    fn stand_in_is_an_empty_0644_file_where_the_special_file_was() {
        let root = tempfile::tempdir().unwrap();
        fs::create_dir(root.path().join("dev")).unwrap();
        stand_in(root.path(), &special("dev/initctl")).unwrap();
        let meta = fs::symlink_metadata(root.path().join("dev/initctl")).unwrap();
        assert!(meta.is_file());
        assert_eq!(meta.len(), 0);
        assert_eq!(meta.permissions().mode() & 0o7777, 0o644);
        // Something already there is left alone.
        fs::write(root.path().join("dev/kept"), b"data").unwrap();
        stand_in(root.path(), &special("dev/kept")).unwrap();
        assert_eq!(fs::read(root.path().join("dev/kept")).unwrap(), b"data");
    }

    #[test]
    fn stand_in_never_goes_through_a_symlink_or_up() {
        let root = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(outside.path(), root.path().join("link")).unwrap();
        for path in ["link/fifo", "../fifo", "missing/fifo", "a/../../fifo"] {
            stand_in(root.path(), &special(path)).unwrap();
        }
        assert_eq!(fs::read_dir(outside.path()).unwrap().count(), 0);
        assert!(!root.path().join("missing").exists());
        assert!(!root.path().parent().unwrap().join("fifo").exists());
    }
}
