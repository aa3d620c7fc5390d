//! One walk of a package's staged output tree, shared by the linters and the
//! dependency scanner so the directory is listed once per package.
//!
//! The tree is untrusted (a build step wrote it), so this module is the one
//! place holding the rules for looking at it: the walk never follows a
//! symlink (a symlink is an entry of its own, its target recorded as
//! written), it stops at [`MAX_ENTRIES`] entries and [`MAX_DEPTH`] levels,
//! and [`StagedTree::resolve`] resolves a path through the recorded links
//! the way it would resolve once installed at `/`, without ever leaving the
//! root. Readers open files through [`StagedTree::abs`] only for entries the
//! walk listed as regular files.

use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};

/// Entries one staged tree may hold; a package this big is a runaway build.
pub const MAX_ENTRIES: usize = 2_000_000;
/// Directory levels below the root; deeper nesting is a runaway build too.
pub const MAX_DEPTH: usize = 512;
/// Symlink hops allowed while resolving one path (the kernel allows 40).
const MAX_SYMLINK_HOPS: usize = 40;

/// What an entry is, read without following it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Dir,
    File,
    Symlink,
    /// Device, fifo or socket.
    Special,
}

/// One entry below the root (the root itself is not an entry).
#[derive(Debug, Clone)]
pub struct Entry {
    /// Path relative to the root.
    pub rel: PathBuf,
    /// `rel`, `/`-separated and lossily decoded, for matching and reports.
    pub path: String,
    /// Parent directory relative to the root, `/`-separated ("" for the root).
    pub dir: String,
    /// File name; `None` when it is not UTF-8.
    pub name: Option<String>,
    pub kind: Kind,
    /// `st_mode` (type and permission bits).
    pub mode: u32,
    pub size: u64,
    pub dev: u64,
    pub ino: u64,
    /// A symlink's target exactly as stored; never followed by the walk.
    pub target: Option<PathBuf>,
}

impl Entry {
    /// The file name, lossily decoded.
    pub fn file_name(&self) -> &str {
        self.path.rsplit('/').next().unwrap_or(&self.path)
    }

    /// Whether the entry lies strictly below `dir` (`/`-separated, relative).
    pub fn under(&self, dir: &str) -> bool {
        self.path
            .strip_prefix(dir)
            .is_some_and(|rest| rest.starts_with('/'))
    }
}

/// Why a staged tree could not be walked.
#[derive(Debug, thiserror::Error)]
pub enum TreeError {
    #[error("{}: staged tree is not a directory", path.display())]
    NotADirectory { path: PathBuf },
    #[error("{}: {action}: {source}", path.display())]
    Io {
        path: PathBuf,
        action: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("{}: staged tree has more than {limit} {what}", path.display())]
    TooLarge {
        path: PathBuf,
        what: &'static str,
        limit: usize,
    },
}

fn io_error<'a>(path: &'a Path, action: &'static str) -> impl FnOnce(io::Error) -> TreeError + 'a {
    move |source| TreeError::Io {
        path: path.to_path_buf(),
        action,
        source,
    }
}

/// A package's staged tree, listed once: entries sorted by relative path
/// (component by component, so a directory's contents follow it).
#[derive(Debug)]
pub struct StagedTree {
    root: PathBuf,
    entries: Vec<Entry>,
}

#[cfg(test)]
thread_local! {
    /// Walks done on this thread, so tests can prove a package is walked once.
    pub(crate) static WALKS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

impl StagedTree {
    /// Lists everything below `root` without following symlinks. `root`
    /// itself comes from the engine and may be reached through a symlink.
    pub fn walk(root: &Path) -> Result<StagedTree, TreeError> {
        #[cfg(test)]
        WALKS.with(|w| w.set(w.get() + 1));
        let meta = fs::metadata(root).map_err(io_error(root, "cannot stat staged tree"))?;
        if !meta.is_dir() {
            return Err(TreeError::NotADirectory {
                path: root.to_path_buf(),
            });
        }
        let too_large = |what, limit| TreeError::TooLarge {
            path: root.to_path_buf(),
            what,
            limit,
        };
        let mut entries = Vec::new();
        let mut pending = vec![(PathBuf::new(), 0usize)];
        while let Some((rel_dir, depth)) = pending.pop() {
            if depth > MAX_DEPTH {
                return Err(too_large("directory levels", MAX_DEPTH));
            }
            let abs = root.join(&rel_dir);
            let dir = rel_dir.to_string_lossy().into_owned();
            for item in fs::read_dir(&abs).map_err(io_error(&abs, "cannot list directory"))? {
                let item = item.map_err(io_error(&abs, "cannot list directory"))?;
                if entries.len() >= MAX_ENTRIES {
                    return Err(too_large("entries", MAX_ENTRIES));
                }
                let item_path = item.path();
                // DirEntry::metadata does not traverse a symlink.
                let meta = item
                    .metadata()
                    .map_err(io_error(&item_path, "cannot stat"))?;
                let ft = meta.file_type();
                let kind = if ft.is_symlink() {
                    Kind::Symlink
                } else if ft.is_dir() {
                    Kind::Dir
                } else if ft.is_file() {
                    Kind::File
                } else {
                    Kind::Special
                };
                let target = match kind {
                    Kind::Symlink => Some(
                        fs::read_link(&item_path)
                            .map_err(io_error(&item_path, "cannot read symlink"))?,
                    ),
                    _ => None,
                };
                let file_name = item.file_name();
                let rel = rel_dir.join(&file_name);
                if kind == Kind::Dir {
                    pending.push((rel.clone(), depth + 1));
                }
                entries.push(Entry {
                    path: rel.to_string_lossy().into_owned(),
                    rel,
                    dir: dir.clone(),
                    name: file_name.into_string().ok(),
                    kind,
                    mode: meta.mode(),
                    size: meta.len(),
                    dev: meta.dev(),
                    ino: meta.ino(),
                    target,
                });
            }
        }
        entries.sort_by(|a, b| a.rel.cmp(&b.rel));
        Ok(StagedTree {
            root: root.to_path_buf(),
            entries,
        })
    }

    /// The directory that was walked.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Every entry, sorted by relative path.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// The entry at `rel`, without following a symlink at its end.
    pub fn get(&self, rel: &Path) -> Option<&Entry> {
        let at = self
            .entries
            .binary_search_by(|e| e.rel.as_path().cmp(rel))
            .ok()?;
        Some(&self.entries[at])
    }

    /// Entries whose parent directory is one of `dirs`.
    pub fn in_dirs<'t>(&'t self, dirs: &'t [&str]) -> impl Iterator<Item = &'t Entry> + 't {
        self.entries
            .iter()
            .filter(move |e| dirs.contains(&e.dir.as_str()))
    }

    /// Absolute path of a relative one, for reading an entry.
    pub fn abs(&self, rel: &Path) -> PathBuf {
        self.root.join(rel)
    }

    /// Resolves `rel` through the recorded symlinks the way the path would
    /// resolve once installed at `/`: an absolute target restarts at the
    /// root and `..` never climbs above it, so no result lies outside the
    /// tree. Returns the real relative path (possibly empty: the root), or
    /// `None` for dangling links, loops, and paths through non-directories.
    pub fn resolve(&self, rel: &Path) -> Option<PathBuf> {
        enum Part {
            Root,
            Up,
            Name(std::ffi::OsString),
        }
        fn parts(path: &Path) -> Vec<Part> {
            path.components()
                .filter_map(|c| match c {
                    Component::RootDir | Component::Prefix(_) => Some(Part::Root),
                    Component::ParentDir => Some(Part::Up),
                    Component::CurDir => None,
                    Component::Normal(n) => Some(Part::Name(n.to_os_string())),
                })
                .collect()
        }
        let mut pending: Vec<Part> = parts(rel).into_iter().rev().collect();
        let mut real = PathBuf::new();
        let mut hops = 0;
        while let Some(part) = pending.pop() {
            match part {
                Part::Root => real = PathBuf::new(),
                Part::Up => {
                    real.pop();
                }
                Part::Name(name) => {
                    let candidate = real.join(&name);
                    let entry = self.get(&candidate)?;
                    match (&entry.target, entry.kind) {
                        (Some(target), Kind::Symlink) => {
                            hops += 1;
                            if hops > MAX_SYMLINK_HOPS {
                                return None;
                            }
                            pending.extend(parts(target).into_iter().rev());
                        }
                        (_, kind) if !pending.is_empty() && kind != Kind::Dir => return None,
                        _ => real = candidate,
                    }
                }
            }
        }
        Some(real)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn sample() -> tempfile::TempDir {
        let t = tempfile::tempdir().unwrap();
        let p = t.path();
        fs::create_dir_all(p.join("usr/lib")).unwrap();
        fs::create_dir_all(p.join("usr/bin")).unwrap();
        fs::write(p.join("usr/lib/libz.so.1.3"), b"lib").unwrap();
        symlink("libz.so.1.3", p.join("usr/lib/libz.so.1")).unwrap();
        symlink("/usr/lib/libz.so.1", p.join("usr/lib/libz.so")).unwrap();
        symlink("../../../../../etc/passwd", p.join("usr/bin/up")).unwrap();
        symlink("../../..", p.join("usr/bin/top")).unwrap();
        symlink("loop", p.join("usr/bin/loop")).unwrap();
        symlink("usr/lib", p.join("lib")).unwrap();
        t
    }

    #[test]
    fn walk_lists_every_entry_sorted_without_following_links() {
        let t = sample();
        let outside = tempfile::tempdir().unwrap();
        fs::write(outside.path().join("secret"), b"x").unwrap();
        symlink(outside.path(), t.path().join("usr/escape")).unwrap();
        let tree = StagedTree::walk(t.path()).unwrap();
        let paths: Vec<&str> = tree.entries().iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "lib",
                "usr",
                "usr/bin",
                "usr/bin/loop",
                "usr/bin/top",
                "usr/bin/up",
                "usr/escape",
                "usr/lib",
                "usr/lib/libz.so",
                "usr/lib/libz.so.1",
                "usr/lib/libz.so.1.3",
            ]
        );
        let link = tree.get(Path::new("usr/lib/libz.so")).unwrap();
        assert_eq!(link.kind, Kind::Symlink);
        assert_eq!(
            link.target.as_deref(),
            Some(Path::new("/usr/lib/libz.so.1"))
        );
        assert_eq!(link.dir, "usr/lib");
        let lib = tree.get(Path::new("usr/lib/libz.so.1.3")).unwrap();
        assert_eq!((lib.kind, lib.size), (Kind::File, 3));
        assert!(lib.under("usr") && !lib.under("us"));
        assert_eq!(
            tree.get(Path::new("usr/escape")).unwrap().kind,
            Kind::Symlink
        );
    }

    #[test]
    fn resolve_stays_inside_the_root() {
        let t = sample();
        let tree = StagedTree::walk(t.path()).unwrap();
        let r = |p: &str| tree.resolve(Path::new(p));
        assert_eq!(
            r("usr/lib/libz.so"),
            Some(PathBuf::from("usr/lib/libz.so.1.3"))
        );
        assert_eq!(
            r("lib/libz.so.1"),
            Some(PathBuf::from("usr/lib/libz.so.1.3"))
        );
        // `..` past the root is clamped; etc/passwd does not exist in the tree.
        assert_eq!(r("usr/bin/up"), None);
        assert_eq!(r("usr/bin/top"), Some(PathBuf::new()));
        assert_eq!(r("usr/bin/loop"), None);
        assert_eq!(r("usr/lib/libz.so.1.3/x"), None);
        assert_eq!(r("/usr/../usr/lib"), Some(PathBuf::from("usr/lib")));
    }

    #[test]
    fn missing_root_or_a_file_is_an_error_naming_it() {
        let err = StagedTree::walk(Path::new("/nonexistent/staged")).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/staged"), "{err}");
        let t = sample();
        let file = t.path().join("usr/lib/libz.so.1.3");
        let err = StagedTree::walk(&file).unwrap_err();
        assert!(matches!(err, TreeError::NotADirectory { .. }), "{err}");
    }

    #[test]
    fn depth_is_bounded() {
        let t = tempfile::tempdir().unwrap();
        let mut deep = t.path().to_path_buf();
        for _ in 0..=MAX_DEPTH + 1 {
            deep.push("d");
            if fs::create_dir(&deep).is_err() {
                return; // the file system cannot nest this deep; nothing to prove
            }
        }
        let err = StagedTree::walk(t.path()).unwrap_err();
        assert!(err.to_string().contains("directory levels"), "{err}");
    }
}
