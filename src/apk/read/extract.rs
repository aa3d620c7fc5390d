//! Unpacking a package's data member into a directory: refuses absolute
//! and `..` names and never walks through a symlink, so nothing lands
//! outside the destination.

use std::collections::HashSet;
use std::fs;
use std::io::{self, Read};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::control::read_control;
use super::data::{read_data_limited, DataEntry, EntryKind, Limits};
use super::error::{ReadError, Result};

/// Split an archive name into safe relative components, or say why not.
fn safe_components(name: &str) -> Result<Vec<&str>> {
    let unsafe_path = |problem| ReadError::UnsafePath {
        path: name.to_string(),
        problem,
    };
    if name.starts_with('/') {
        return Err(unsafe_path("absolute path"));
    }
    let mut parts = Vec::new();
    for c in name.split('/') {
        match c {
            "" | "." => {}
            ".." => return Err(unsafe_path("contains `..`")),
            c => parts.push(c),
        }
    }
    Ok(parts)
}

/// Make sure every directory from `root` down to `parts` exists as a real
/// directory (creating missing ones), never passing through a symlink.
fn ensure_dirs(root: &Path, parts: &[&str], name: &str) -> Result<PathBuf> {
    let mut cur = root.to_path_buf();
    for part in parts {
        cur.push(part);
        match fs::symlink_metadata(&cur) {
            Ok(m) if m.file_type().is_dir() => {}
            Ok(_) => {
                return Err(ReadError::UnsafePath {
                    path: name.to_string(),
                    problem: "a parent is a symlink or file, not a directory",
                })
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                fs::create_dir(&cur).map_err(|source| ReadError::Write {
                    path: cur.clone(),
                    source,
                })?;
            }
            Err(source) => return Err(ReadError::Write { path: cur, source }),
        }
    }
    Ok(cur)
}

/// Extract a package's data into `dest` (which must exist). Checks what
/// `read_data` checks; refuses absolute and `..` names and anything that
/// would go through a symlink; device nodes and fifos are listed but not
/// created. Directories stay owner-writable. Returns every entry seen.
pub fn extract(path: &Path, dest: &Path) -> Result<Vec<DataEntry>> {
    extract_limited(path, dest, Limits::FORMAT, |_| true)
}

/// [`extract`] within `limits`, returning only the entries `keep` wants
/// (memory then grows with those alone).
pub fn extract_limited(
    path: &Path,
    dest: &Path,
    limits: Limits,
    mut keep: impl FnMut(&DataEntry) -> bool,
) -> Result<Vec<DataEntry>> {
    let ctl = read_control(path)?;
    let mut entries = Vec::new();
    let mut files: HashSet<String> = HashSet::new();
    read_data_limited(
        path,
        &ctl,
        limits,
        |e: &DataEntry, content: &mut dyn Read| {
            if keep(e) {
                entries.push(e.clone());
            }
            let parts = safe_components(&e.path)?;
            let Some((last, parents)) = parts.split_last() else {
                return Ok(()); // the root directory itself
            };
            let dir = ensure_dirs(dest, parents, &e.path)?;
            let target = dir.join(last);
            let write_err = |source| ReadError::Write {
                path: target.clone(),
                source,
            };
            let key = parts.join("/");
            match fs::symlink_metadata(&target) {
                Ok(m) if m.file_type().is_dir() => {
                    if e.kind != EntryKind::Directory {
                        return Err(ReadError::UnsafePath {
                            path: e.path.clone(),
                            problem: "replaces a directory",
                        });
                    }
                }
                Ok(_) => {
                    files.remove(&key);
                    fs::remove_file(&target).map_err(write_err)?;
                }
                Err(_) => {}
            }
            match e.kind {
                EntryKind::Directory => {
                    if !target.is_dir() {
                        fs::create_dir(&target).map_err(write_err)?;
                    }
                    fs::set_permissions(&target, fs::Permissions::from_mode(e.mode | 0o700))
                        .map_err(write_err)?;
                }
                EntryKind::File => {
                    let mut f = fs::OpenOptions::new()
                        .write(true)
                        .create_new(true)
                        .mode(0o600)
                        .open(&target)
                        .map_err(write_err)?;
                    io::copy(content, &mut f).map_err(write_err)?;
                    f.set_permissions(fs::Permissions::from_mode(e.mode))
                        .map_err(write_err)?;
                    files.insert(key);
                }
                EntryKind::Symlink => {
                    let to = e.link_target.as_deref().unwrap_or_default();
                    std::os::unix::fs::symlink(to, &target).map_err(write_err)?;
                }
                EntryKind::Hardlink => {
                    let to = e.link_target.as_deref().unwrap_or_default();
                    let to_key = safe_components(to)?.join("/");
                    if !files.contains(&to_key) {
                        return Err(ReadError::UnsafePath {
                            path: e.path.clone(),
                            problem: "hard link target is not an earlier regular file",
                        });
                    }
                    fs::hard_link(dest.join(&to_key), &target).map_err(write_err)?;
                    files.insert(key);
                }
                EntryKind::CharDevice | EntryKind::BlockDevice | EntryKind::Fifo => {}
            }
            Ok(())
        },
    )?;
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apk::read::accepted_hello as hello;

    #[test]
    fn extracts_safely() {
        let dir = tempfile::tempdir().unwrap();
        let entries = extract(&hello(), dir.path()).unwrap();
        assert_eq!(entries.len(), 7);
        let root = dir.path();
        assert_eq!(
            fs::read_to_string(root.join("usr/bin/hello")).unwrap(),
            "#!/bin/sh\necho hello\n"
        );
        assert_eq!(
            fs::read_link(root.join("usr/bin/hello-link")).unwrap(),
            Path::new("hello")
        );
        use std::os::unix::fs::MetadataExt;
        let a = fs::metadata(root.join("usr/bin/hello")).unwrap();
        let b = fs::metadata(root.join("usr/bin/hello-hard")).unwrap();
        assert_eq!(a.ino(), b.ino());
        assert_eq!(a.mode() & 0o7777, 0o755);
    }

    #[test]
    fn extraction_never_leaves_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        fs::create_dir(&root).unwrap();
        std::os::unix::fs::symlink(outside.path(), root.join("evil")).unwrap();
        assert!(matches!(
            ensure_dirs(&root, &["evil", "x"], "evil/x/y"),
            Err(ReadError::UnsafePath { .. })
        ));
        assert_eq!(fs::read_dir(outside.path()).unwrap().count(), 0);
    }

    #[test]
    fn safe_components_refuse_escapes() {
        assert_eq!(safe_components("./usr//bin/").unwrap(), ["usr", "bin"]);
        assert!(safe_components("/etc/passwd").is_err());
        assert!(safe_components("usr/../../x").is_err());
    }
}
