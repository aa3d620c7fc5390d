//! Cached guest roots: a fully installed root is kept under
//! `template_dir/<key>` and copied for each build, so the packages are
//! inflated once per package set instead of once per build.
//!
//! A template is built in a private locked directory
//! (`crate::lockdir`, so one left by a killed process is swept away) and
//! renamed into place whole, under a per-key file lock: concurrent callers
//! wait for the first builder and never see a half-built tree. The
//! template itself is never handed out: every caller gets a copy, so no
//! two builds share a writable root.

use std::collections::HashMap;
use std::fs;
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rustix::fs::{self as rfs, FileType};
use rustix::io::Errno;
use sha2::{Digest, Sha256};

use super::extract::{lchown, lsetxattr, mknod, set_mtime};
use super::{
    install, running_as_root, InstallError, InstallReport, Package, RootSetup, ScriptRunner,
};

/// The template name for this package list and setup: SHA-256 over the
/// ordered `C:` checksums, the setup, and whether owners can be set.
pub fn template_key(pkgs: &[Package], setup: &RootSetup) -> String {
    let mut h = Sha256::new();
    let mut field = |tag: &str, bytes: &[u8]| {
        h.update(tag.as_bytes());
        h.update((bytes.len() as u64).to_be_bytes());
        h.update(bytes);
    };
    field("pkgbuild-template", b"1");
    for p in pkgs {
        field("C", &p.entry.control_sha1);
    }
    field("arch", setup.arch.as_bytes());
    for w in setup.world {
        field("world", w.as_bytes());
    }
    for r in setup.repositories {
        field("repo", r.as_bytes());
    }
    for (name, pem) in setup.keys {
        field("key", name.as_bytes());
        field("pem", pem);
    }
    field("root", &[u8::from(running_as_root())]);
    hex::encode(h.finalize())
}

fn template_err(path: &Path, what: &str) -> impl FnOnce(io::Error) -> InstallError {
    let (path, what) = (path.to_path_buf(), what.to_string());
    move |e| InstallError::Template {
        path,
        problem: format!("{what}: {e}"),
    }
}

/// Like [`install`], but through a template kept under `template_dir`
/// (built once, atomically), copied into `root` (which must be empty).
/// Scripts run only while the template is built; `run_script` must
/// therefore use [`super::ScriptRun::root`].
pub fn install_cached(
    template_dir: &Path,
    root: &Path,
    pkgs: &[Package],
    setup: &RootSetup,
    run_script: &mut ScriptRunner,
) -> Result<InstallReport, InstallError> {
    super::check_empty(root)?;
    fs::create_dir_all(template_dir).map_err(template_err(template_dir, "cannot create"))?;
    let key = template_key(pkgs, setup);
    let done = template_dir.join(&key);
    let report_path = template_dir.join(format!("{key}.report.json"));
    let lock_path = template_dir.join(format!("{key}.lock"));
    let lock = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&lock_path)
        .map_err(template_err(&lock_path, "cannot open lock"))?;
    lock.lock()
        .map_err(template_err(&lock_path, "cannot lock"))?;
    let report = if fs::symlink_metadata(&done).is_ok_and(|m| m.is_dir()) {
        let text = fs::read(&report_path).map_err(template_err(&report_path, "cannot read"))?;
        let mut r: InstallReport =
            serde_json::from_slice(&text).map_err(|e| InstallError::Template {
                path: report_path.clone(),
                problem: e.to_string(),
            })?;
        r.from_template = true;
        r
    } else {
        let building = crate::lockdir::LockedDir::create(template_dir, ".building-").map_err(
            template_err(template_dir, "cannot create a build directory"),
        )?;
        let tree = building.path().join("root");
        fs::create_dir(&tree).map_err(template_err(&tree, "cannot create"))?;
        let report = install(&tree, pkgs, setup, run_script)?;
        let json = serde_json::to_vec_pretty(&report).map_err(|e| InstallError::Template {
            path: report_path.clone(),
            problem: e.to_string(),
        })?;
        crate::atomic::write(&report_path, 0o644, &json)
            .map_err(template_err(&report_path, "cannot write"))?;
        fs::rename(&tree, &done).map_err(template_err(&done, "cannot move into place"))?;
        report
    };
    // The template is complete and never changes again: copying needs no lock.
    drop(lock);
    copy_tree(&done, root).map_err(|e| InstallError::Template {
        path: done.clone(),
        problem: format!("copying to {}: {e}", root.display()),
    })?;
    Ok(report)
}

/// Copy the contents of the directory `from` into the existing directory
/// `to`: modes, owners (when root), xattrs, mtimes, symlinks and hard
/// links (as links) are kept; nothing is followed through a symlink.
pub fn copy_tree(from: &Path, to: &Path) -> io::Result<()> {
    let mut c = Copier {
        as_root: running_as_root(),
        links: HashMap::new(),
    };
    c.dir_contents(from, to)?;
    let meta = fs::symlink_metadata(from)?;
    c.attrs(from, to, &meta)
}

struct Copier {
    as_root: bool,
    /// First copy of each multiply-linked inode.
    links: HashMap<(u64, u64), PathBuf>,
}

impl Copier {
    fn dir_contents(&mut self, from: &Path, to: &Path) -> io::Result<()> {
        let mut entries: Vec<fs::DirEntry> = fs::read_dir(from)?.collect::<Result<_, _>>()?;
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let src = e.path();
            let dst = to.join(e.file_name());
            let meta = fs::symlink_metadata(&src)?;
            let ft = meta.file_type();
            if ft.is_dir() {
                fs::create_dir(&dst)?;
                fs::set_permissions(&dst, fs::Permissions::from_mode(0o700))?;
                self.dir_contents(&src, &dst)?;
                self.attrs(&src, &dst, &meta)?;
                continue;
            }
            if meta.nlink() > 1 {
                let id = (meta.dev(), meta.ino());
                if let Some(first) = self.links.get(&id) {
                    fs::hard_link(first, &dst)?;
                    continue;
                }
                self.links.insert(id, dst.clone());
            }
            if ft.is_symlink() {
                std::os::unix::fs::symlink(fs::read_link(&src)?, &dst)?;
            } else if ft.is_file() {
                self.file(&src, &dst)?;
            } else if self.as_root {
                let kind = if ft.is_char_device() {
                    FileType::CharacterDevice
                } else if ft.is_block_device() {
                    FileType::BlockDevice
                } else if ft.is_fifo() {
                    FileType::Fifo
                } else {
                    continue; // sockets: nothing to copy
                };
                let rdev = meta.rdev();
                mknod(
                    &dst,
                    kind,
                    meta.mode(),
                    (rfs::major(rdev), rfs::minor(rdev)),
                )?;
            } else {
                continue;
            }
            self.attrs(&src, &dst, &meta)?;
        }
        Ok(())
    }

    fn file(&mut self, src: &Path, dst: &Path) -> io::Result<()> {
        let mut input = fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(src)?;
        let mut out = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(dst)?;
        // A reflink shares the blocks on filesystems that can (btrfs, xfs);
        // elsewhere io::copy uses copy_file_range, still kernel-side.
        if rfs::ioctl_ficlone(&out, &input).is_err() {
            io::copy(&mut input, &mut out)?;
        }
        Ok(())
    }

    /// Owner, then mode (chown clears setuid), xattrs, then mtime.
    fn attrs(&mut self, src: &Path, dst: &Path, meta: &fs::Metadata) -> io::Result<()> {
        let symlink = meta.file_type().is_symlink();
        if self.as_root {
            lchown(dst, u64::from(meta.uid()), u64::from(meta.gid()))?;
        }
        if !symlink {
            fs::set_permissions(dst, fs::Permissions::from_mode(meta.mode() & 0o7777))?;
        }
        for (name, value) in list_xattrs(src)? {
            lsetxattr(dst, &name, &value)?;
        }
        set_mtime(dst, meta.mtime())
    }
}

/// All xattrs of `p` (not following a symlink).
pub fn list_xattrs(p: &Path) -> io::Result<Vec<(String, Vec<u8>)>> {
    let n = match rfs::llistxattr_query(p) {
        Ok(n) => n,
        Err(Errno::NOTSUP) => return Ok(Vec::new()),
        Err(e) => return Err(e.into()),
    };
    if n == 0 {
        return Ok(Vec::new());
    }
    let mut names = vec![0u8; n];
    let n = rfs::llistxattr(p, &mut names[..])?;
    names.truncate(n);
    let mut out = Vec::new();
    for name in names.split(|&b| b == 0).filter(|n| !n.is_empty()) {
        let mut value = vec![0u8; rfs::lgetxattr_query(p, name)?];
        let len = rfs::lgetxattr(p, name, &mut value[..])?;
        value.truncate(len);
        out.push((String::from_utf8_lossy(name).into_owned(), value));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn copy_keeps_modes_links_and_times() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        fs::create_dir_all(a.join("usr/bin")).unwrap();
        fs::write(a.join("usr/bin/x"), b"hello").unwrap();
        fs::set_permissions(a.join("usr/bin/x"), fs::Permissions::from_mode(0o4755)).unwrap();
        fs::hard_link(a.join("usr/bin/x"), a.join("usr/bin/y")).unwrap();
        symlink("x", a.join("usr/bin/z")).unwrap();
        fs::set_permissions(a.join("usr"), fs::Permissions::from_mode(0o555)).unwrap();
        set_mtime(&a.join("usr/bin/x"), 1_700_000_000).unwrap();
        fs::create_dir(&b).unwrap();
        copy_tree(&a, &b).unwrap();
        let x = fs::metadata(b.join("usr/bin/x")).unwrap();
        assert_eq!(x.mode() & 0o7777, 0o4755);
        assert_eq!(x.mtime(), 1_700_000_000);
        assert_eq!(x.ino(), fs::metadata(b.join("usr/bin/y")).unwrap().ino());
        assert_ne!(x.ino(), fs::metadata(a.join("usr/bin/x")).unwrap().ino());
        assert_eq!(fs::read_link(b.join("usr/bin/z")).unwrap(), Path::new("x"));
        assert_eq!(fs::metadata(b.join("usr")).unwrap().mode() & 0o7777, 0o555);
        fs::set_permissions(a.join("usr"), fs::Permissions::from_mode(0o755)).unwrap();
        fs::set_permissions(b.join("usr"), fs::Permissions::from_mode(0o755)).unwrap();
    }
}
