//! Resolving archive paths inside the guest root the way a chroot would.
//!
//! usr-merged roots have `lib -> usr/lib` and the like, and apk follows
//! such links when it extracts. Following them with the host's resolver
//! would let an absolute or `..` target leave the root, so we walk each
//! component ourselves with `symlink_metadata`: a symlink is read and its
//! target spliced in, an absolute target restarts at the root and `..`
//! stops there. The OS never follows a link for us.

use std::collections::{HashMap, VecDeque};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// Links followed while resolving one path (Linux's own limit).
const MAX_LINKS: usize = 40;

/// A directory inside the root: its host path and its in-root key
/// (`usr/lib`, components joined by `/`; empty for the root).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub host: PathBuf,
    pub key: String,
}

/// Why a path cannot be resolved inside the root.
#[derive(Debug)]
pub enum ResolveError {
    NotADirectory(String),
    TooManyLinks,
    Io(PathBuf, io::Error),
}

impl std::fmt::Display for ResolveError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ResolveError::NotADirectory(k) => write!(f, "`/{k}` in the root is not a directory"),
            ResolveError::TooManyLinks => write!(f, "more than {MAX_LINKS} symlinks to follow"),
            ResolveError::Io(p, e) => write!(f, "{}: {e}", p.display()),
        }
    }
}

/// Split an archive name into its components, refusing absolute names and
/// `..` (the reader lets both through to its visitors).
pub fn components(name: &str) -> Result<Vec<&str>, &'static str> {
    if name.starts_with('/') {
        return Err("absolute path in the package");
    }
    let mut out = Vec::new();
    for c in name.split('/') {
        match c {
            "" | "." => {}
            ".." => return Err("`..` in a package path"),
            c => out.push(c),
        }
    }
    Ok(out)
}

/// Resolves directories in one root, remembering what it found. Scripts
/// can change the tree, so the cache is cleared after each one.
pub struct Resolver {
    root: PathBuf,
    cache: HashMap<String, Resolved>,
}

impl Resolver {
    pub fn new(root: &Path) -> Self {
        Resolver {
            root: root.to_path_buf(),
            cache: HashMap::new(),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn forget(&mut self) {
        self.cache.clear();
    }

    /// The directory `parts` names, following in-root symlinks and
    /// creating missing directories (mode 0755) when `create` is set.
    pub fn dir(&mut self, parts: &[&str], create: bool) -> Result<Resolved, ResolveError> {
        let name = parts.join("/");
        if let Some(r) = self.cache.get(&name) {
            return Ok(r.clone());
        }
        let resolved = self.walk(parts, create)?;
        self.cache.insert(name, resolved.clone());
        Ok(resolved)
    }

    fn walk(&self, parts: &[&str], create: bool) -> Result<Resolved, ResolveError> {
        let mut cur: Vec<String> = Vec::new();
        let mut todo: VecDeque<String> = parts.iter().map(|s| s.to_string()).collect();
        let mut links = 0;
        while let Some(c) = todo.pop_front() {
            match c.as_str() {
                "" | "." => continue,
                ".." => {
                    cur.pop();
                    continue;
                }
                _ => {}
            }
            let mut host = self.root.clone();
            host.extend(cur.iter());
            host.push(&c);
            match fs::symlink_metadata(&host) {
                Ok(m) if m.is_dir() => cur.push(c),
                Ok(m) if m.file_type().is_symlink() => {
                    links += 1;
                    if links > MAX_LINKS {
                        return Err(ResolveError::TooManyLinks);
                    }
                    let target = fs::read_link(&host).map_err(|e| ResolveError::Io(host, e))?;
                    let target = target.to_string_lossy().into_owned();
                    if target.starts_with('/') {
                        cur.clear();
                    }
                    for part in target.split('/').rev() {
                        todo.push_front(part.to_string());
                    }
                }
                Ok(_) => {
                    cur.push(c);
                    return Err(ResolveError::NotADirectory(cur.join("/")));
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound && create => {
                    fs::create_dir(&host).map_err(|e| ResolveError::Io(host, e))?;
                    cur.push(c);
                }
                Err(e) => return Err(ResolveError::Io(host, e)),
            }
        }
        let mut host = self.root.clone();
        host.extend(cur.iter());
        Ok(Resolved {
            host,
            key: cur.join("/"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn symlinks_are_followed_but_never_out_of_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::create_dir_all(root.join("usr/lib")).unwrap();
        symlink("usr/lib", root.join("lib")).unwrap();
        symlink("/usr/lib", root.join("abs")).unwrap();
        symlink("../../../..", root.join("up")).unwrap();
        symlink(outside.path(), root.join("host")).unwrap();
        let mut r = Resolver::new(root);
        assert_eq!(r.dir(&["lib", "x"], true).unwrap().key, "usr/lib/x");
        assert_eq!(r.dir(&["abs"], false).unwrap().key, "usr/lib");
        assert_eq!(r.dir(&["up", "etc"], true).unwrap().key, "etc");
        // An absolute link to a host directory resolves inside the root.
        let got = r.dir(&["host", "y"], true).unwrap();
        assert!(got.host.starts_with(root));
        assert_eq!(fs::read_dir(outside.path()).unwrap().count(), 0);
    }

    #[test]
    fn loops_and_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        symlink("b", root.join("a")).unwrap();
        symlink("a", root.join("b")).unwrap();
        fs::write(root.join("f"), b"").unwrap();
        let mut r = Resolver::new(root);
        assert!(matches!(
            r.dir(&["a"], true),
            Err(ResolveError::TooManyLinks)
        ));
        assert!(matches!(
            r.dir(&["f", "x"], true),
            Err(ResolveError::NotADirectory(k)) if k == "f"
        ));
    }

    #[test]
    fn components_refuse_escapes() {
        assert_eq!(components("./usr//bin/").unwrap(), ["usr", "bin"]);
        assert!(components("/etc/passwd").is_err());
        assert!(components("a/../../b").is_err());
    }
}
