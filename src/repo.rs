//! A local apk repository: `<root>/<arch>/*.apk` plus a signed
//! `APKINDEX.tar.gz`. Publishing takes an exclusive lock so two concurrent
//! builds into one repository cannot lose each other's entries, moves the
//! finished packages in with renames, and rewrites the index atomically.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::apk::index::{Index, IndexEntry, IndexError};
use crate::apk::read;
use crate::apk::sign::SigningKey;
use crate::lockdir::LockedDir;

/// Prefix of the staging directories inside an architecture directory.
pub const STAGING_PREFIX: &str = ".pkgbuild-staging-";

#[derive(Debug, thiserror::Error)]
pub enum RepoError {
    #[error("{path}: {what}: {source}")]
    Io {
        path: PathBuf,
        what: &'static str,
        source: io::Error,
    },
    #[error("{path}: {source}")]
    Index {
        path: PathBuf,
        source: anyhow::Error,
    },
}

fn io_err<'a>(path: &'a Path, what: &'static str) -> impl FnOnce(io::Error) -> RepoError + 'a {
    move |source| RepoError::Io {
        path: path.to_path_buf(),
        what,
        source,
    }
}

/// One architecture directory of a repository.
#[derive(Debug, Clone)]
pub struct Repo {
    dir: PathBuf,
    arch: String,
}

/// Held while the repository is being changed; released on drop.
pub struct RepoLock {
    _file: File,
}

impl Repo {
    pub fn new(root: &Path, arch: &str) -> Repo {
        Repo {
            dir: root.join(arch),
            arch: arch.to_string(),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn index_path(&self) -> PathBuf {
        self.dir.join("APKINDEX.tar.gz")
    }

    /// A private directory on the same file system, where packages are
    /// written before being published with a rename. Staging directories
    /// of builds that were killed are removed first (see [`LockedDir`]);
    /// being dot-directories, they are never indexed meanwhile.
    pub fn staging_dir(&self) -> Result<LockedDir, RepoError> {
        fs::create_dir_all(&self.dir).map_err(io_err(&self.dir, "cannot create repository"))?;
        LockedDir::create(&self.dir, STAGING_PREFIX)
            .map_err(io_err(&self.dir, "cannot create staging directory"))
    }

    /// Take the repository lock, waiting for another build to finish.
    pub fn lock(&self, on_wait: impl FnOnce()) -> Result<RepoLock, RepoError> {
        fs::create_dir_all(&self.dir).map_err(io_err(&self.dir, "cannot create repository"))?;
        lock_dir(&self.dir, on_wait)
    }
}

/// Take the lock of the repository directory `dir` (the one [`Repo::lock`]
/// takes), for anything else that rewrites an index there.
pub fn lock_dir(dir: &Path, on_wait: impl FnOnce()) -> Result<RepoLock, RepoError> {
    let path = dir.join(".pkgbuild.lock");
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(io_err(&path, "cannot open lock file"))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(fs::TryLockError::WouldBlock) => {
            on_wait();
            file.lock()
                .map_err(io_err(&path, "cannot lock repository"))?;
        }
        Err(fs::TryLockError::Error(e)) => {
            return Err(io_err(&path, "cannot lock repository")(e));
        }
    }
    Ok(RepoLock { _file: file })
}

impl Repo {
    /// Publish `staged` packages (files in the staging directory) and
    /// rewrite the index, as one step as far as a file system allows.
    ///
    /// Everything that can fail is done before the repository changes:
    /// every package the new index lists is read, and the new index is
    /// written and signed under a temporary name in the repository. Only
    /// then are the packages renamed in, and the index renamed over the
    /// old one right after. A build killed between the two renames leaves
    /// an index that is stale for the replaced files, which the next
    /// publish repairs: an old index entry is reused only when the `C:`
    /// identity read from the file matches it, never on name and size.
    ///
    /// A package already in the repository that cannot be read is left
    /// out of the index and reported in [`Published::skipped`]; one of
    /// `staged` that cannot be read is an error, and nothing changes.
    pub fn publish(
        &self,
        staged: &[PathBuf],
        key: Option<&SigningKey>,
        description: Option<&str>,
        _lock: &RepoLock,
    ) -> Result<Published, RepoError> {
        let mut incoming = Vec::with_capacity(staged.len());
        for p in staged {
            incoming.push((p.clone(), self.destination(p)?));
        }
        let (pending, skipped) = self.prepare_index(&incoming, key, description)?;
        let mut packages = Vec::with_capacity(incoming.len());
        for (from, dest) in &incoming {
            fs::rename(from, dest).map_err(io_err(dest, "cannot publish package"))?;
            packages.push(dest.clone());
        }
        let index_path = self.index_path();
        pending
            .persist(&index_path)
            .map_err(|e| io_err(&index_path, "cannot replace index")(e.error))?;
        Ok(Published { packages, skipped })
    }

    /// Where the staged file `p` is published: its name in the repository.
    fn destination(&self, p: &Path) -> Result<PathBuf, RepoError> {
        let name = p.file_name().ok_or_else(|| RepoError::Io {
            path: p.to_path_buf(),
            what: "not a package file",
            source: io::Error::from(io::ErrorKind::InvalidInput),
        })?;
        Ok(self.dir.join(name))
    }

    /// Move `staged` packages in without touching the index
    /// (`--generate-index=false`, for a separate `pkgbuild index` run).
    /// Until then the index does not list them, and for a replaced file it
    /// is stale; the next publish or `index` repairs that.
    pub fn publish_unindexed(
        &self,
        staged: &[PathBuf],
        _lock: &RepoLock,
    ) -> Result<Vec<PathBuf>, RepoError> {
        let mut packages = Vec::with_capacity(staged.len());
        for p in staged {
            let dest = self.destination(p)?;
            fs::rename(p, &dest).map_err(io_err(&dest, "cannot publish package"))?;
            packages.push(dest);
        }
        Ok(packages)
    }

    /// Rewrite the index from the packages on disk (see [`Repo::publish`]
    /// for what is reused and what is skipped); returns the skipped files.
    pub fn reindex(
        &self,
        key: Option<&SigningKey>,
        description: Option<&str>,
        lock: &RepoLock,
    ) -> Result<Vec<Skipped>, RepoError> {
        Ok(self.publish(&[], key, description, lock)?.skipped)
    }

    /// Read every package the index will list (the files on disk, with
    /// `incoming` standing in for the files they will replace) and write
    /// the signed index to a temporary file beside the real one.
    fn prepare_index(
        &self,
        incoming: &[(PathBuf, PathBuf)],
        key: Option<&SigningKey>,
        description: Option<&str>,
    ) -> Result<(tempfile::NamedTempFile, Vec<Skipped>), RepoError> {
        let index_path = self.index_path();
        remove_stale_index_temps(&self.dir);
        if let Ok(m) = fs::symlink_metadata(&index_path) {
            if !m.is_file() {
                return Err(RepoError::Io {
                    path: index_path,
                    what: "the index is not a regular file",
                    source: io::Error::from(io::ErrorKind::InvalidInput),
                });
            }
        }
        // Creating the temporary file first proves the directory writable.
        let mut pending = tempfile::Builder::new()
            .prefix(INDEX_TEMP_PREFIX)
            .suffix(INDEX_TEMP_SUFFIX)
            .tempfile_in(&self.dir)
            .map_err(io_err(&self.dir, "cannot write the index in"))?;
        probe_replaceable(&index_path, &self.dir)?;
        let old = if index_path.exists() {
            Index::read(&index_path).ok()
        } else {
            None
        };
        let mut on_disk: Vec<PathBuf> = fs::read_dir(&self.dir)
            .map_err(io_err(&self.dir, "cannot list repository"))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.extension().is_some_and(|x| x == "apk")
                    && p.file_name()
                        .is_some_and(|n| !n.to_string_lossy().starts_with('.'))
                    && fs::symlink_metadata(p).is_ok_and(|m| m.is_file())
                    && !incoming.iter().any(|(_, dest)| dest == p)
            })
            .collect();
        on_disk.sort();
        let mut entries = Vec::with_capacity(on_disk.len() + incoming.len());
        let mut skipped = Vec::new();
        for path in &on_disk {
            match checked_entry(path, old.as_ref()) {
                Ok(e) => entries.push(e),
                Err(e) => skipped.push(Skipped {
                    path: path.clone(),
                    reason: e.to_string(),
                }),
            }
        }
        for (staged, _) in incoming {
            entries.push(
                IndexEntry::from_package(staged).map_err(|e| RepoError::Index {
                    path: staged.clone(),
                    source: e.into(),
                })?,
            );
        }
        let description = description
            .map(str::to_string)
            .or_else(|| old.as_ref().and_then(|o| o.description.clone()));
        let index = Index {
            description,
            entries,
        };
        let bytes = index
            .to_bytes(key, Some(&self.arch))
            .map_err(|e| RepoError::Index {
                path: index_path.clone(),
                source: e.into(),
            })?;
        let written = pending.as_file_mut().write_all(&bytes).and_then(|()| {
            use std::os::unix::fs::PermissionsExt;
            let f = pending.as_file();
            f.set_permissions(fs::Permissions::from_mode(0o644))?;
            f.sync_all()
        });
        written.map_err(io_err(pending.path(), "cannot write the index"))?;
        Ok((pending, skipped))
    }
}

/// Names of the index written beside `APKINDEX.tar.gz` before it replaces
/// it (the same shape [`crate::atomic`] gives its temporary files).
const INDEX_TEMP_PREFIX: &str = ".APKINDEX.tar.gz.";
const INDEX_TEMP_SUFFIX: &str = ".tmp";

fn remove_stale_index_temps(dir: &Path) {
    remove_stale_temps(dir, "APKINDEX.tar.gz");
}

/// Remove the temporary files [`crate::atomic`] left for `dir/name` when
/// a run was killed. Call only under the lock of `dir` ([`lock_dir`]),
/// which every writer of an index holds while its temporary file exists,
/// so any such file found is a leftover.
pub fn remove_stale_temps(dir: &Path, name: &str) {
    use std::os::unix::fs::MetadataExt;
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    let prefix = format!(".{name}.");
    let uid = rustix::process::getuid().as_raw();
    for e in entries.flatten() {
        let file_name = e.file_name();
        let file_name = file_name.to_string_lossy();
        if !(file_name.starts_with(&prefix) && file_name.ends_with(INDEX_TEMP_SUFFIX)) {
            continue;
        }
        // Regular files of ours only; remove_file never follows a symlink.
        if fs::symlink_metadata(e.path()).is_ok_and(|m| m.is_file() && m.uid() == uid) {
            let _ = fs::remove_file(e.path());
        }
    }
}

/// Fail now if the rename that will replace `index` cannot succeed: an
/// immutable or append-only file (`chattr +i`/`+a`) cannot be replaced,
/// and cannot be hard-linked either, which is a test that changes nothing
/// visible (the link has a temporary index name and goes at once).
fn probe_replaceable(index: &Path, dir: &Path) -> Result<(), RepoError> {
    if !index.is_file() {
        return Ok(());
    }
    let probe = dir.join(format!("{INDEX_TEMP_PREFIX}probe{INDEX_TEMP_SUFFIX}"));
    let _ = fs::remove_file(&probe);
    fs::hard_link(index, &probe).map_err(io_err(index, "the index cannot be replaced"))?;
    let _ = fs::remove_file(&probe);
    Ok(())
}

/// The index entry for `path`: the old one when its `C:` is the identity
/// of the file's control member (and its size the file's), else a new one
/// read from the file.
fn checked_entry(path: &Path, old: Option<&Index>) -> Result<IndexEntry, IndexError> {
    let ctl = read::read_control(path).map_err(|source| IndexError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let same = old.and_then(|o| {
        o.entries
            .iter()
            .find(|e| e.control_sha1 == ctl.control_sha1 && e.file_size == ctl.file_size)
    });
    match same {
        Some(e) => Ok(e.clone()),
        None => IndexEntry::from_control(path, ctl),
    }
}

/// What [`Repo::publish`] did.
#[derive(Debug)]
pub struct Published {
    /// The published packages, at their place in the repository.
    pub packages: Vec<PathBuf>,
    /// Packages in the repository left out of the index.
    pub skipped: Vec<Skipped>,
}

/// A package file left out of the index because it cannot be read.
#[derive(Debug, Clone)]
pub struct Skipped {
    pub path: PathBuf,
    pub reason: String,
}

impl std::fmt::Display for Skipped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // IndexError messages already start with the path.
        write!(f, "left out of the index: {}", self.reason)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reindex_reads_only_visible_package_files() {
        let root = tempfile::tempdir().unwrap();
        let repo = Repo::new(root.path(), "x86_64");
        fs::create_dir_all(repo.dir().join(".pkgbuild-staging-x")).unwrap();
        fs::create_dir_all(repo.dir().join("dir.apk")).unwrap();
        let hello = crate::testdata().join("apk-tools-accepted/repo/x86_64/hello-1.0-r0.apk");
        fs::copy(&hello, repo.dir().join("hello-1.0-r0.apk")).unwrap();
        // Garbage where a package would be: reading any of it would fail.
        for junk in [".pkgbuild-staging-x/junk-1.0-r0.apk", ".hidden-1.0-r0.apk"] {
            fs::write(repo.dir().join(junk), "not a package").unwrap();
        }
        let lock = repo.lock(|| {}).unwrap();
        let skipped = repo.reindex(None, None, &lock).unwrap();
        assert!(skipped.is_empty(), "{skipped:?}");
        let index = Index::read(&repo.index_path()).unwrap();
        let names: Vec<_> = index.entries.iter().map(|e| &e.info.name).collect();
        assert_eq!(names, ["hello"]);
    }

    fn hello() -> PathBuf {
        crate::testdata().join("apk-tools-accepted/repo/x86_64/hello-1.0-r0.apk")
    }

    /// What a build killed between writing a package and its index leaves:
    /// an entry of the right name and size whose `C:` is not the file's.
    #[test]
    fn a_stale_entry_of_the_same_name_and_size_is_not_reused() {
        let root = tempfile::tempdir().unwrap();
        let repo = Repo::new(root.path(), "x86_64");
        fs::create_dir_all(repo.dir()).unwrap();
        let file = repo.dir().join("hello-1.0-r0.apk");
        fs::copy(hello(), &file).unwrap();
        let good = IndexEntry::from_package(&file).unwrap();
        let mut stale = good.clone();
        stale.control_sha1[0] ^= 0xff;
        let old = Index {
            description: Some("old".into()),
            entries: vec![stale],
        };
        old.write(&repo.index_path(), None, None).unwrap();

        let lock = repo.lock(|| {}).unwrap();
        repo.reindex(None, None, &lock).unwrap();
        let index = Index::read(&repo.index_path()).unwrap();
        let ids: Vec<_> = index.entries.iter().map(|e| e.checksum_field()).collect();
        assert_eq!(ids, [good.checksum_field()]);
        assert_eq!(index.description.as_deref(), Some("old"));
    }

    #[test]
    fn an_unreadable_package_is_skipped_by_name_and_the_new_one_published() {
        let root = tempfile::tempdir().unwrap();
        let repo = Repo::new(root.path(), "x86_64");
        let staging = repo.staging_dir().unwrap();
        let broken = repo.dir().join("broken-1.0-r0.apk");
        fs::write(&broken, "not a package").unwrap();
        let staged = staging.path().join("hello-1.0-r0.apk");
        fs::copy(hello(), &staged).unwrap();

        let lock = repo.lock(|| {}).unwrap();
        let done = repo.publish(&[staged], None, None, &lock).unwrap();
        assert_eq!(done.packages, [repo.dir().join("hello-1.0-r0.apk")]);
        assert_eq!(done.skipped.len(), 1);
        assert_eq!(done.skipped[0].path, broken);
        assert!(done.skipped[0].to_string().contains("broken-1.0-r0.apk"));
        let index = Index::read(&repo.index_path()).unwrap();
        let names: Vec<_> = index.entries.iter().map(|e| &e.info.name).collect();
        assert_eq!(names, ["hello"]);
    }

    /// Every check comes before the first change: an index that cannot be
    /// replaced, or a staged package that cannot be read, leaves the
    /// repository as it was.
    #[test]
    fn a_failing_publish_changes_nothing() {
        let root = tempfile::tempdir().unwrap();
        let repo = Repo::new(root.path(), "x86_64");
        let staging = repo.staging_dir().unwrap();
        let staged = staging.path().join("hello-1.0-r0.apk");
        fs::copy(hello(), &staged).unwrap();
        fs::create_dir(repo.index_path()).unwrap();
        let lock = repo.lock(|| {}).unwrap();
        let err = repo
            .publish(std::slice::from_ref(&staged), None, None, &lock)
            .unwrap_err();
        assert!(err.to_string().contains("APKINDEX.tar.gz"), "{err}");
        assert!(!repo.dir().join("hello-1.0-r0.apk").exists());
        assert!(staged.is_file());

        fs::remove_dir(repo.index_path()).unwrap();
        let junk = staging.path().join("junk-1.0-r0.apk");
        fs::write(&junk, "half written").unwrap();
        let err = repo
            .publish(&[staged.clone(), junk], None, None, &lock)
            .unwrap_err();
        assert!(err.to_string().contains("junk-1.0-r0.apk"), "{err}");
        assert!(!repo.dir().join("hello-1.0-r0.apk").exists());
        assert!(!repo.index_path().exists());
        let left = temp_files(repo.dir());
        assert!(left.is_empty(), "{left:?}");
    }

    /// The temporary files left in `dir`.
    fn temp_files(dir: &Path) -> Vec<String> {
        fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".tmp"))
            .collect()
    }

    /// `chattr +i` on the index (when the file system and our privileges
    /// allow it): the build must stop before publishing anything.
    #[test]
    fn an_immutable_index_stops_publishing_before_any_change() {
        use std::process::Command;
        let root = tempfile::tempdir().unwrap();
        let repo = Repo::new(root.path(), "x86_64");
        let staging = repo.staging_dir().unwrap();
        let lock = repo.lock(|| {}).unwrap();
        repo.reindex(None, None, &lock).unwrap();
        let index = repo.index_path();
        let chattr = |flag: &str| {
            Command::new("chattr")
                .arg(flag)
                .arg(&index)
                .status()
                .is_ok_and(|s| s.success())
        };
        if !chattr("+i") {
            eprintln!("skipped: chattr +i not possible here");
            return;
        }
        let staged = staging.path().join("hello-1.0-r0.apk");
        fs::copy(hello(), &staged).unwrap();
        let result = repo.publish(std::slice::from_ref(&staged), None, None, &lock);
        let published = repo.dir().join("hello-1.0-r0.apk").exists();
        chattr("-i");
        let err = result.unwrap_err().to_string();
        assert!(
            err.contains("APKINDEX.tar.gz") && err.contains("cannot be replaced"),
            "{err}"
        );
        assert!(!published);
        let temps = temp_files(repo.dir());
        assert!(temps.is_empty(), "{temps:?}");
    }

    #[test]
    fn temporary_indexes_of_killed_runs_are_removed_under_the_lock() {
        let root = tempfile::tempdir().unwrap();
        let repo = Repo::new(root.path(), "x86_64");
        fs::create_dir_all(repo.dir()).unwrap();
        let leftover = repo.dir().join(".APKINDEX.tar.gz.AbC123.tmp");
        fs::write(&leftover, "half").unwrap();
        let other = repo.dir().join(".other.tmp");
        fs::write(&other, "not ours").unwrap();
        let lock = repo.lock(|| {}).unwrap();
        repo.reindex(None, None, &lock).unwrap();
        assert!(!leftover.exists());
        assert!(other.exists());
        assert!(repo.index_path().is_file());
    }

    #[test]
    fn staging_removes_what_a_killed_build_left_and_keeps_a_live_one() {
        let root = tempfile::tempdir().unwrap();
        let repo = Repo::new(root.path(), "x86_64");
        let dead = repo.dir().join(".pkgbuild-staging-dead");
        fs::create_dir_all(&dead).unwrap();
        fs::write(dead.join(crate::lockdir::LOCK_FILE), "").unwrap();
        fs::write(dead.join("p-1-r0.apk"), "half written").unwrap();
        let live = repo.staging_dir().unwrap();
        assert!(!dead.exists());
        let second = repo.staging_dir().unwrap();
        assert!(live.path().is_dir() && second.path().is_dir());
    }
}
