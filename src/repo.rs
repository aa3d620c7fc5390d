//! A local apk repository: `<root>/<arch>/*.apk` plus a signed
//! `APKINDEX.tar.gz`. Publishing takes an exclusive lock so two concurrent
//! builds into one repository cannot lose each other's entries, moves the
//! finished packages in with renames, and rewrites the index atomically.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};

use crate::apk::index::{Index, IndexEntry};
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
        let path = self.dir.join(".pkgbuild.lock");
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

    /// Move `staged` packages into the repository and rewrite the index.
    /// The index is brought in line with the `.apk` files on disk: entries
    /// whose file is gone are dropped, packages left unindexed by a
    /// crashed run are picked up, and unchanged entries are reused.
    pub fn publish(
        &self,
        staged: &[PathBuf],
        key: Option<&SigningKey>,
        description: Option<&str>,
        _lock: &RepoLock,
    ) -> Result<Vec<PathBuf>, RepoError> {
        let mut published = Vec::new();
        for p in staged {
            let name = p.file_name().ok_or_else(|| RepoError::Io {
                path: p.clone(),
                what: "not a package file",
                source: io::Error::from(io::ErrorKind::InvalidInput),
            })?;
            let dest = self.dir.join(name);
            fs::rename(p, &dest).map_err(io_err(&dest, "cannot publish package"))?;
            published.push(dest);
        }
        self.reindex(&published, key, description)?;
        Ok(published)
    }

    /// Rewrite the index from the packages on disk; `fresh` are re-read
    /// even when an entry of the same name and version exists.
    pub fn reindex(
        &self,
        fresh: &[PathBuf],
        key: Option<&SigningKey>,
        description: Option<&str>,
    ) -> Result<(), RepoError> {
        let index_path = self.index_path();
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
            })
            .collect();
        on_disk.sort();
        let mut entries = Vec::with_capacity(on_disk.len());
        for path in &on_disk {
            let size = fs::metadata(path).map(|m| m.len()).unwrap_or(0);
            let file_name = path.file_name().map(|n| n.to_string_lossy().into_owned());
            let reuse = (!fresh.contains(path))
                .then(|| {
                    old.as_ref()?.entries.iter().find(|e| {
                        e.file_size == size
                            && Some(format!("{}-{}.apk", e.info.name, e.info.version)) == file_name
                    })
                })
                .flatten();
            match reuse {
                Some(e) => entries.push(e.clone()),
                None => {
                    entries.push(
                        IndexEntry::from_package(path).map_err(|e| RepoError::Index {
                            path: path.clone(),
                            source: e.into(),
                        })?,
                    )
                }
            }
        }
        let description = description
            .map(str::to_string)
            .or_else(|| old.as_ref().and_then(|o| o.description.clone()));
        let index = Index {
            description,
            entries,
        };
        index
            .write(&index_path, key, Some(&self.arch))
            .map_err(|e| RepoError::Index {
                path: index_path.clone(),
                source: e.into(),
            })?;
        Ok(())
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
        repo.reindex(&[], None, None).unwrap();
        let index = Index::read(&repo.index_path()).unwrap();
        let names: Vec<_> = index.entries.iter().map(|e| &e.info.name).collect();
        assert_eq!(names, ["hello"]);
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
