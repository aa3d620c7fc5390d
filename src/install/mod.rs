//! Installing verified `.apk` files into a fresh guest root, with an apk
//! database that apk-tools itself can read (apk-format.md §2.3, §4.3).
//!
//! The packages arrive already verified against their index records and in
//! dependency order; this module only lays them out. Each package is
//! streamed once through [`crate::apk::read::read_data`] (which checks the
//! `datahash` and every per-file SHA-1 as the bytes pass) straight into
//! the root. Every path is resolved inside the root the way a chroot would
//! (a symlink in the root is followed, but `..` and absolute targets stop
//! at the root), so nothing is ever written outside it.
//!
//! Scripts are not run here: the caller's [`ScriptRunner`] runs them with
//! the root as `/` (the engine uses bubblewrap, as apk uses a chroot).
//!
//! Submodules: `paths` (in-root resolution), `extract` (one package onto
//! disk, with apk's file-conflict rules), `db` (the database files),
//! `scripts` (script files and trigger matching), `template` (cached roots
//! and the tree copy).

mod db;
mod extract;
pub mod paths;
mod scripts;
mod template;

use std::path::{Path, PathBuf};

use crate::apk::index::IndexEntry;
use crate::apk::read::ReadError;

pub use template::{copy_tree, install_cached, list_xattrs, template_key};

/// One package to install.
pub struct Package<'a> {
    /// The verified `.apk` file.
    pub path: &'a Path,
    /// Its index record (name, version, `C:`, ...).
    pub entry: &'a IndexEntry,
    /// URL or path it came from (for messages).
    pub repository: &'a str,
}

/// What goes into `etc/apk` besides the packages.
pub struct RootSetup<'a> {
    pub arch: &'a str,
    /// Lines of `/etc/apk/world`.
    pub world: &'a [String],
    /// Lines of `/etc/apk/repositories`.
    pub repositories: &'a [String],
    /// (file name, PEM public key) for `/etc/apk/keys/<name>`.
    pub keys: &'a [(String, Vec<u8>)],
}

/// A package script to run with the guest root as `/` (the engine runs it
/// in bubblewrap, as apk runs scripts in a chroot). `guest_path` is an
/// executable file already written inside the root.
pub struct ScriptRun<'a> {
    pub package: &'a str,
    pub version: &'a str,
    /// `"pre-install"`, `"post-install"` or `"trigger"`.
    pub kind: &'a str,
    pub guest_path: &'a str,
    pub args: Vec<String>,
    /// The host directory that must be `/` for the script. Usually the
    /// `root` given to [`install`], but [`install_cached`] builds its
    /// template elsewhere, so a runner must use this, not its own idea.
    pub root: &'a Path,
}

/// Runs one script; `Err` carries the reason (exit status, output).
pub type ScriptRunner<'r> = dyn FnMut(&ScriptRun) -> Result<(), String> + 'r;

/// What an install did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct InstallReport {
    pub packages: usize,
    /// Non-directory entries written (files, links, devices).
    pub files: usize,
    /// Bytes of regular-file content written.
    pub bytes: u64,
    pub scripts_run: usize,
    /// Things that did not stop the install but leave the root different
    /// from what apk running as root would make (each said once).
    pub warnings: Vec<String>,
    /// Whether [`install_cached`] copied an existing template.
    pub from_template: bool,
}

/// Why an install failed. Every variant names the package or the path.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    #[error("{root}: the install root must be an empty directory")]
    RootNotEmpty { root: PathBuf },
    #[error("{package} ({file}, from {repository}): {source}")]
    Read {
        package: String,
        file: PathBuf,
        repository: String,
        source: Box<ReadError>,
    },
    #[error(
        "{package} ({file}, from {repository}): control checksum {actual} does not match the index record's {expected}"
    )]
    NotTheIndexedPackage {
        package: String,
        file: PathBuf,
        repository: String,
        expected: String,
        actual: String,
    },
    #[error("{package}: `{path}`: {problem}")]
    Unsafe {
        package: String,
        path: String,
        problem: String,
    },
    #[error(
        "{package}: trying to overwrite `{path}` owned by {owner} (neither `replaces = {owner}` nor the same origin)"
    )]
    Conflict {
        package: String,
        path: String,
        owner: String,
    },
    #[error("{package}: {action} {path}: {source}")]
    Io {
        package: String,
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{package}: {kind} script failed: {message}")]
    Script {
        package: String,
        kind: String,
        message: String,
    },
    #[error("setup: {0}")]
    Setup(String),
    #[error("template {path}: {problem}")]
    Template { path: PathBuf, problem: String },
}

impl InstallError {
    pub(crate) fn io(
        package: &str,
        action: &'static str,
        path: &Path,
    ) -> impl FnOnce(std::io::Error) -> InstallError {
        let (package, path) = (package.to_string(), path.to_path_buf());
        move |source| InstallError::Io {
            package,
            action,
            path,
            source,
        }
    }
}

/// Whether owners can be set (only root may chown to arbitrary ids).
pub(crate) fn running_as_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// A root is installed into only when it is empty: what a previous,
/// failed attempt left is never mixed with a new install.
pub(crate) fn check_empty(root: &Path) -> Result<(), InstallError> {
    let empty = std::fs::read_dir(root)
        .map_err(InstallError::io("(root)", "cannot read", root))?
        .next()
        .is_none();
    if empty {
        Ok(())
    } else {
        Err(InstallError::RootNotEmpty {
            root: root.to_path_buf(),
        })
    }
}

/// Install `pkgs` (already in dependency order) into the empty directory
/// `root`: files, the apk database, `etc/apk/*`, then triggers.
pub fn install(
    root: &Path,
    pkgs: &[Package],
    setup: &RootSetup,
    run_script: &mut ScriptRunner,
) -> Result<InstallReport, InstallError> {
    check_empty(root)?;
    db::check_setup(setup)?;
    let mut state = extract::Installer::new(root);
    for pkg in pkgs {
        state.install_package(pkg, run_script)?;
    }
    state.finish_dirs()?;
    db::write_all(root, &mut state, setup)?;
    state.run_triggers(run_script)?;
    Ok(state.into_report())
}
