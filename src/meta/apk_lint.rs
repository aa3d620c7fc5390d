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
//!
//! A package pkgbuild (or melange) built carries its compiled recipe as
//! `.melange.yaml` in the control member; the linters that recipe turned
//! off for this package (`checks.disabled` of the package or subpackage of
//! that name) stay off here too, so a package that passed its build passes
//! `lint`. Packages from other tools have no such file and get every
//! linter; an embedded recipe that is too large or does not parse is
//! ignored the same way (it is untrusted input, and only ever turns
//! linters off for its own package).

use std::fs;
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::apk::read::{self, DataEntry, EntryKind, ReadError};
use crate::recipe::yaml::{self, Node, Value};
use crate::recipe::MAX_FILE_BYTES;

use super::lint::{self, Finding, Level, LintContext};
use super::tree::StagedTree;

/// What linting one package found.
#[derive(Debug, Clone)]
pub struct ApkLint {
    /// `pkgname` from the package's `.PKGINFO`.
    pub name: String,
    /// `arch` from the package's `.PKGINFO`.
    pub arch: String,
    /// Linters the package's embedded recipe turned off for it, as written.
    pub package_disabled: Vec<String>,
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

/// How to lint a package.
#[derive(Debug, Clone, Default)]
pub struct ApkLintOptions<'a> {
    /// Linters turned off by the user.
    pub disabled: &'a [String],
    /// Honour the linters the package's embedded recipe turns off.
    pub package_checks: bool,
    /// Caps on unpacking (size and entries): the package is untrusted.
    pub limits: read::Limits,
    /// Check the signature against these public keys, as apk does; without
    /// it the signature is not looked at.
    pub keys_dir: Option<&'a Path>,
}

/// Findings apk itself would refuse the package for. No recipe can turn
/// them off, nor `--disable`: they are not linters of the staged tree.
pub const SIGNATURE: &str = "signature";
pub const CHECKSUM: &str = "checksum";

/// Unpacks the package at `path` and runs every linter not in `disabled`
/// and, with `package_checks`, not turned off by the package's own
/// embedded recipe; with a keys directory, checks the signature too.
/// Every regular file and symlink must carry its checksum, as apk demands.
pub fn lint_apk(path: &Path, opts: &ApkLintOptions<'_>) -> Result<ApkLint, ApkLintError> {
    let (disabled, package_checks) = (opts.disabled, opts.package_checks);
    let (head, size) = read::read_head_file(path)?;
    let mut apk_findings = Vec::new();
    if let Some(keys) = opts.keys_dir {
        if let Err(e) = crate::apk::verify::check_signature(&head, keys) {
            apk_findings.push(Finding {
                linter: SIGNATURE,
                level: Level::Required,
                path: None,
                message: format!("{e}; apk refuses the package"),
            });
        }
    }
    let recipe = package_checks
        .then(|| read::control_file(&head.tar, EMBEDDED_RECIPE, MAX_FILE_BYTES).ok())
        .flatten()
        .flatten();
    let control = read::control_from_head(head, size)?;
    let package_disabled = recipe
        .and_then(|r| checks_disabled(&r, &control.pkginfo.name))
        .unwrap_or_default();
    let mut all_disabled = disabled.to_vec();
    all_disabled.extend(package_disabled.iter().cloned());
    let dir = tempfile::Builder::new()
        .prefix("pkgbuild-lint-")
        .tempdir()
        .map_err(ApkLintError::TempDir)?;
    let entries = read::extract_limited(path, dir.path(), opts.limits, |e| {
        if matches!(e.kind, EntryKind::File | EntryKind::Symlink) && e.checksum.is_none() {
            apk_findings.push(Finding {
                linter: CHECKSUM,
                level: Level::Required,
                path: Some(e.path.clone()),
                message: "no APK-TOOLS.checksum.SHA1; apk refuses to install the file".into(),
            });
        }
        is_special(e)
    })?;
    for e in &entries {
        stand_in(dir.path(), e).map_err(|source| ApkLintError::Placeholder {
            path: e.path.clone(),
            source,
        })?;
    }
    let info = control.pkginfo;
    let tree = StagedTree::walk(dir.path()).map_err(|e| ApkLintError::Lint(io::Error::other(e)))?;
    let findings = lint::lint_tree(
        &tree,
        &LintContext {
            package_name: &info.name,
            disabled: &all_disabled,
            arch: &info.arch,
        },
    )
    .map_err(ApkLintError::Lint)?;
    apk_findings.extend(findings);
    let findings = apk_findings;
    Ok(ApkLint {
        name: info.name,
        arch: info.arch,
        package_disabled,
        findings,
    })
}

/// The control file holding the compiled recipe (see `plan::emit`).
const EMBEDDED_RECIPE: &str = ".melange.yaml";

/// `checks.disabled` of the package or subpackage called `name` in a
/// melange-schema recipe; `None` when the text is not such a recipe or
/// does not describe `name`. Read leniently, key by key, so a recipe from
/// another melange-compatible tool with keys we do not know still counts.
fn checks_disabled(recipe: &[u8], name: &str) -> Option<Vec<String>> {
    let root = yaml::parse(std::str::from_utf8(recipe).ok()?).ok()?;
    let main = root.get("package");
    let subs = match root.get("subpackages").map(|n| &n.value) {
        Some(Value::Seq(items)) => items.iter().collect(),
        _ => Vec::new(),
    };
    let package = main
        .into_iter()
        .chain(subs)
        .find(|p| p.get("name").and_then(scalar) == Some(name))?;
    let list = match package
        .get("checks")
        .and_then(|c| c.get("disabled"))
        .map(|d| &d.value)
    {
        Some(Value::Seq(items)) => items,
        _ => return Some(Vec::new()),
    };
    Some(list.iter().filter_map(scalar).map(str::to_string).collect())
}

fn scalar(n: &Node) -> Option<&str> {
    match &n.value {
        Value::Scalar { text, .. } => Some(text),
        _ => None,
    }
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
    fn checks_disabled_finds_the_package_or_subpackage_by_name() {
        let recipe =
            b"package:\n  name: foo\n  version: 1\n  checks:\n    disabled: [tempdir, opt]\n\
subpackages:\n  - name: foo-dev\n    checks:\n      disabled:\n        - dev\n  - name: foo-doc\n";
        let get = |n| checks_disabled(recipe, n);
        assert_eq!(get("foo").unwrap(), ["tempdir", "opt"]);
        assert_eq!(get("foo-dev").unwrap(), ["dev"]);
        assert_eq!(get("foo-doc").unwrap(), Vec::<String>::new());
        assert_eq!(get("bar"), None);
        for junk in [&b"\xff\xfe"[..], b"package: [", b"- a list\n", b""] {
            assert_eq!(checks_disabled(junk, "foo"), None);
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
