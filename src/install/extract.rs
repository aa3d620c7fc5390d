//! One package onto disk: streamed entries, owners, modes, xattrs and
//! mtimes, apk's file-conflict rules, and the records the database needs.
//!
//! Conflicts follow apk: a path owned by an earlier package may be taken
//! over when the content is the same, when the new package `replaces` the
//! owner, or when both come from the same `origin`; directories are
//! shared freely. The taken-over file leaves the old owner's record, since
//! apk keeps one owner per path.

use std::collections::{BTreeSet, HashMap};
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rustix::fs::{self as rfs, AtFlags, FileType, Gid, Mode, Timespec, Timestamps, Uid};
use rustix::process::{getegid, geteuid};
use sha1::{Digest, Sha1};

use super::paths::{components, ResolveError, Resolver};
use super::{running_as_root, scripts, InstallError, InstallReport, Package, ScriptRunner};
use crate::apk::dep::Dep;
use crate::apk::index::IndexEntry;
use crate::apk::pkginfo::PkgInfo;
use crate::apk::read::{read_control, read_data, DataEntry, EntryKind, ReadError, Scripts};

/// Owner, group, permission bits and xattr hash, as the database records
/// them (`M:`/`a:`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Acl {
    pub uid: u64,
    pub gid: u64,
    pub mode: u32,
    pub xattr: Option<[u8; 20]>,
}

/// apk leaves these out of the database (`M:`/`a:` only when different).
pub const DEFAULT_DIR_ACL: Acl = Acl {
    uid: 0,
    gid: 0,
    mode: 0o755,
    xattr: None,
};
pub const DEFAULT_FILE_ACL: Acl = Acl {
    uid: 0,
    gid: 0,
    mode: 0o644,
    xattr: None,
};

/// One non-directory entry of a package (`R:`).
#[derive(Debug, Clone)]
pub struct FileRec {
    pub name: String,
    pub acl: Acl,
    /// The package's SHA-1 for it (`Z:`).
    pub csum: Option<[u8; 20]>,
    /// Taken over by a later package.
    pub gone: bool,
}

/// One directory a package owns (`F:`), with its files.
#[derive(Debug, Clone)]
pub struct DirRec {
    /// Archive path without trailing `/` (empty for the top).
    pub path: String,
    pub acl: Acl,
    pub files: Vec<FileRec>,
}

/// An installed package, as the database will describe it.
pub struct Installed {
    pub entry: IndexEntry,
    /// `.PKGINFO` from the package itself: `replaces`, `triggers` and
    /// `replaces_priority` never reach the index.
    pub info: PkgInfo,
    pub scripts: Scripts,
    pub dirs: Vec<DirRec>,
    dir_index: HashMap<String, usize>,
    /// Directories this package has an entry for: apk refuses a file whose
    /// directory the package does not list ("no dirent in archive").
    declared: std::collections::HashSet<String>,
}

impl Installed {
    fn dir(&mut self, path: &str) -> usize {
        if let Some(&i) = self.dir_index.get(path) {
            return i;
        }
        self.dirs.push(DirRec {
            path: path.to_string(),
            acl: DEFAULT_DIR_ACL,
            files: Vec::new(),
        });
        self.dir_index.insert(path.to_string(), self.dirs.len() - 1);
        self.dirs.len() - 1
    }
}

/// Who owns a non-directory path in the root.
struct Owner {
    pkg: usize,
    dir: usize,
    file: usize,
    csum: Option<[u8; 20]>,
}

/// `uname`/`gname` to ids from the root's own `/etc/passwd` and
/// `/etc/group`, as apk resolves them; loaded lazily, dropped whenever
/// those files or the tree may have changed.
#[derive(Default)]
struct Ids {
    users: Option<HashMap<String, u64>>,
    groups: Option<HashMap<String, u64>>,
}

const MAX_ID_FILE: u64 = 4 << 20;

fn load_ids(resolver: &mut Resolver, file: &str) -> HashMap<String, u64> {
    let mut map = HashMap::new();
    let Ok(etc) = resolver.dir(&["etc"], false) else {
        return map;
    };
    let path = etc.host.join(file);
    let regular = fs::symlink_metadata(&path).is_ok_and(|m| m.is_file());
    let Some(text) = regular
        .then(|| File::open(&path).ok())
        .flatten()
        .and_then(|f| {
            let mut s = String::new();
            f.take(MAX_ID_FILE).read_to_string(&mut s).ok().map(|_| s)
        })
    else {
        return map;
    };
    for line in text.lines() {
        let mut fields = line.split(':');
        if let (Some(name), Some(_), Some(id)) = (fields.next(), fields.next(), fields.next()) {
            if let Ok(id) = id.parse() {
                map.entry(name.to_string()).or_insert(id);
            }
        }
    }
    map
}

/// apk's hash of a set of xattrs: sorted by name, each name and value
/// preceded by its length as a big-endian u32, all through SHA-1.
pub fn xattr_hash(xattrs: &[(String, Vec<u8>)]) -> Option<[u8; 20]> {
    if xattrs.is_empty() {
        return None;
    }
    let mut sorted: Vec<&(String, Vec<u8>)> = xattrs.iter().collect();
    sorted.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    let mut h = Sha1::new();
    for (name, value) in sorted {
        h.update((name.len() as u32).to_be_bytes());
        h.update(name.as_bytes());
        h.update((value.len() as u32).to_be_bytes());
        h.update(value);
    }
    Some(h.finalize().into())
}

/// Either kind of failure inside the data visitor.
enum Visit {
    Read(ReadError),
    Install(InstallError),
}

impl From<ReadError> for Visit {
    fn from(e: ReadError) -> Self {
        Visit::Read(e)
    }
}

impl From<InstallError> for Visit {
    fn from(e: InstallError) -> Self {
        Visit::Install(e)
    }
}

/// What a package's earlier regular files are, for its hard links.
struct LinkTarget {
    host: PathBuf,
    acl: Acl,
    csum: Option<[u8; 20]>,
}

/// The whole install in progress.
pub struct Installer {
    pub resolver: Resolver,
    pub packages: Vec<Installed>,
    owners: HashMap<String, Owner>,
    /// Guest directories (`/usr/share/foo`) that received entries, for
    /// triggers.
    changed_dirs: BTreeSet<String>,
    /// Directories whose final mode lacks owner rwx: kept open for writing
    /// until the end when we cannot rely on root's override.
    dir_fixups: Vec<(PathBuf, u32)>,
    ids: Ids,
    as_root: bool,
    report: InstallReport,
    owners_skipped: usize,
    xattr_failures: Vec<String>,
    devices_skipped: Vec<String>,
    buf: Vec<u8>,
}

/// An owner id from a package as the kernel's: `-1` means "leave as is"
/// to chown, which is what the old C call did with it too.
fn owner_id(id: u64, what: &str) -> io::Result<Option<u32>> {
    let raw = u32::try_from(id).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{what} {id} is out of range"),
        )
    })?;
    Ok((raw != u32::MAX).then_some(raw))
}

fn owners(uid: u64, gid: u64) -> io::Result<(Option<Uid>, Option<Gid>)> {
    Ok((
        owner_id(uid, "uid")?.map(Uid::from_raw),
        owner_id(gid, "gid")?.map(Gid::from_raw),
    ))
}

/// `lchown` (never follows a symlink).
pub fn lchown(p: &Path, uid: u64, gid: u64) -> io::Result<()> {
    let (uid, gid) = owners(uid, gid)?;
    rfs::chownat(rfs::CWD, p, uid, gid, AtFlags::SYMLINK_NOFOLLOW)?;
    Ok(())
}

/// Both timestamps at `mtime`, whole seconds.
fn timestamps(mtime: i64) -> Timestamps {
    let t = Timespec {
        tv_sec: mtime,
        tv_nsec: 0,
    };
    Timestamps {
        last_access: t,
        last_modification: t,
    }
}

/// Set atime and mtime without following a symlink.
pub fn set_mtime(p: &Path, mtime: i64) -> io::Result<()> {
    rfs::utimensat(rfs::CWD, p, &timestamps(mtime), AtFlags::SYMLINK_NOFOLLOW)?;
    Ok(())
}

/// `lsetxattr` (never follows a symlink).
pub fn lsetxattr(p: &Path, name: &str, value: &[u8]) -> io::Result<()> {
    rfs::lsetxattr(p, name, value, rfs::XattrFlags::empty())?;
    Ok(())
}

/// `mknod` for device nodes and fifos; `kind` is one of those.
pub fn mknod(p: &Path, kind: FileType, mode: u32, dev: (u32, u32)) -> io::Result<()> {
    rfs::mknodat(
        rfs::CWD,
        p,
        kind,
        Mode::from_raw_mode(mode & 0o7777),
        rfs::makedev(dev.0, dev.1),
    )?;
    Ok(())
}

impl Installer {
    pub fn new(root: &Path) -> Self {
        Installer {
            resolver: Resolver::new(root),
            packages: Vec::new(),
            owners: HashMap::new(),
            changed_dirs: BTreeSet::new(),
            dir_fixups: Vec::new(),
            ids: Ids::default(),
            as_root: running_as_root(),
            report: InstallReport::default(),
            owners_skipped: 0,
            xattr_failures: Vec::new(),
            devices_skipped: Vec::new(),
            buf: vec![0; 256 * 1024],
        }
    }

    /// Scripts may rewrite anything: drop every cached view of the tree.
    pub fn tree_changed(&mut self) {
        self.resolver.forget();
        self.ids = Ids::default();
    }

    fn uid(&mut self, e: &DataEntry) -> u64 {
        let users = self
            .ids
            .users
            .get_or_insert_with(|| load_ids(&mut self.resolver, "passwd"));
        match users.get(&e.uname) {
            Some(&id) => id,
            None if e.uname == "root" => 0,
            None => e.uid,
        }
    }

    fn gid(&mut self, e: &DataEntry) -> u64 {
        let groups = self
            .ids
            .groups
            .get_or_insert_with(|| load_ids(&mut self.resolver, "group"));
        match groups.get(&e.gname) {
            Some(&id) => id,
            None if e.gname == "root" => 0,
            None => e.gid,
        }
    }

    pub fn install_package(
        &mut self,
        pkg: &Package,
        run_script: &mut ScriptRunner,
    ) -> Result<(), InstallError> {
        let name = pkg.entry.info.name.clone();
        let read_err = |source| InstallError::Read {
            package: format!("{}-{}", pkg.entry.info.name, pkg.entry.info.version),
            file: pkg.path.to_path_buf(),
            repository: pkg.repository.to_string(),
            source: Box::new(source),
        };
        let ctl = read_control(pkg.path).map_err(read_err)?;
        if ctl.control_sha1 != pkg.entry.control_sha1 {
            let mut actual = pkg.entry.clone();
            actual.control_sha1 = ctl.control_sha1;
            return Err(InstallError::NotTheIndexedPackage {
                package: name,
                file: pkg.path.to_path_buf(),
                repository: pkg.repository.to_string(),
                expected: pkg.entry.checksum_field(),
                actual: actual.checksum_field(),
            });
        }
        let info = &ctl.pkginfo;
        for (what, v) in [("name", &info.name), ("version", &info.version)] {
            if v.contains(['/', '\0', '\n']) {
                return Err(InstallError::Unsafe {
                    package: name,
                    path: v.clone(),
                    problem: format!("package {what} with `/`, NUL or newline"),
                });
            }
        }
        let label = format!("{}-{}", info.name, info.version);
        self.packages.push(Installed {
            entry: pkg.entry.clone(),
            info: ctl.pkginfo.clone(),
            scripts: ctl.scripts.clone(),
            dirs: Vec::new(),
            dir_index: HashMap::new(),
            declared: Default::default(),
        });
        self.report.packages += 1;
        // apk treats installed size 0 as a virtual package: no files, no
        // scripts (apk-format.md §2.2).
        if ctl.pkginfo.size == 0 {
            return Ok(());
        }
        self.run_package_script(".pre-install", run_script)?;
        let idx = self.packages.len() - 1;
        let mut links: HashMap<String, LinkTarget> = HashMap::new();
        let result = read_data(pkg.path, &ctl, |e: &DataEntry, content: &mut dyn Read| {
            self.entry(idx, &label, e, content, &mut links)
        });
        match result {
            Ok(_) => {}
            Err(Visit::Read(e)) => return Err(read_err(e)),
            Err(Visit::Install(e)) => return Err(e),
        }
        self.run_package_script(".post-install", run_script)
    }

    fn run_package_script(
        &mut self,
        kind: &str,
        run_script: &mut ScriptRunner,
    ) -> Result<(), InstallError> {
        let pkg = self
            .packages
            .last()
            .expect("called after pushing a package");
        let Some((_, body)) = pkg.scripts.iter().find(|(n, _)| n == kind) else {
            return Ok(());
        };
        let (name, version, body) = (
            pkg.info.name.clone(),
            pkg.info.version.clone(),
            body.clone(),
        );
        let args = vec![version.clone()];
        scripts::run(
            &mut self.resolver,
            &name,
            &version,
            &kind[1..],
            &body,
            args,
            run_script,
        )?;
        self.report.scripts_run += 1;
        self.tree_changed();
        Ok(())
    }

    /// After all packages: each package with `triggers` whose globs match
    /// a directory that received entries runs its `.trigger` script with
    /// those directories.
    pub fn run_triggers(&mut self, run_script: &mut ScriptRunner) -> Result<(), InstallError> {
        for i in 0..self.packages.len() {
            let pkg = &self.packages[i];
            let Some((_, body)) = pkg.scripts.iter().find(|(n, _)| n == ".trigger") else {
                continue;
            };
            if pkg.info.triggers.is_empty() {
                continue;
            }
            let matched: Vec<String> = self
                .changed_dirs
                .iter()
                .filter(|d| pkg.info.triggers.iter().any(|g| scripts::glob_match(g, d)))
                .cloned()
                .collect();
            if matched.is_empty() {
                continue;
            }
            let (name, version, body) = (
                pkg.info.name.clone(),
                pkg.info.version.clone(),
                body.clone(),
            );
            scripts::run(
                &mut self.resolver,
                &name,
                &version,
                "trigger",
                &body,
                matched,
                run_script,
            )?;
            self.report.scripts_run += 1;
            self.tree_changed();
        }
        Ok(())
    }

    /// Give directories kept owner-writable during the install their
    /// final mode, deepest first.
    pub fn finish_dirs(&mut self) -> Result<(), InstallError> {
        for (path, mode) in self.dir_fixups.drain(..).rev() {
            fs::set_permissions(&path, fs::Permissions::from_mode(mode))
                .map_err(InstallError::io("(root)", "cannot set the mode of", &path))?;
        }
        Ok(())
    }

    pub fn into_report(mut self) -> InstallReport {
        if self.owners_skipped > 0 {
            self.report.warnings.push(format!(
                "not running as root: {} entries keep the installing user as owner (the database records the package's owners)",
                self.owners_skipped
            ));
        }
        if let Some(first) = self.xattr_failures.first() {
            self.report.warnings.push(format!(
                "{} xattrs could not be set on this filesystem, first: {first}",
                self.xattr_failures.len()
            ));
        }
        if let Some(first) = self.devices_skipped.first() {
            self.report.warnings.push(format!(
                "not running as root: {} device nodes/fifos not created, first: {first}",
                self.devices_skipped.len()
            ));
        }
        self.report
    }

    fn unsafe_path(&self, pkg: &str, path: &str, problem: impl Into<String>) -> InstallError {
        InstallError::Unsafe {
            package: pkg.to_string(),
            path: path.to_string(),
            problem: problem.into(),
        }
    }

    fn set_owner(&mut self, host: &Path, acl: &Acl, label: &str) -> Result<(), InstallError> {
        if !self.as_root {
            let (uid, gid) = (geteuid().as_raw(), getegid().as_raw());
            if acl.uid != u64::from(uid) || acl.gid != u64::from(gid) {
                self.owners_skipped += 1;
            }
            return Ok(());
        }
        lchown(host, acl.uid, acl.gid).map_err(InstallError::io(label, "cannot chown", host))
    }

    fn set_xattrs(&mut self, host: &Path, xattrs: &[(String, Vec<u8>)]) {
        for (name, value) in xattrs {
            if let Err(e) = lsetxattr(host, name, value) {
                self.xattr_failures
                    .push(format!("{name} on {}: {e}", host.display()));
            }
        }
    }

    fn entry(
        &mut self,
        idx: usize,
        label: &str,
        e: &DataEntry,
        content: &mut dyn Read,
        links: &mut HashMap<String, LinkTarget>,
    ) -> Result<(), Visit> {
        let parts = components(&e.path).map_err(|p| self.unsafe_path(label, &e.path, p))?;
        let Some((last, parents)) = parts.split_last() else {
            return Ok(()); // the archive's own top directory
        };
        let parent = self
            .resolver
            .dir(parents, true)
            .map_err(|err| self.resolve_err(label, &e.path, err))?;
        let host = parent.host.join(last);
        let key = if parent.key.is_empty() {
            last.to_string()
        } else {
            format!("{}/{last}", parent.key)
        };
        let dir_path = parents.join("/");
        let acl = Acl {
            uid: self.uid(e),
            gid: self.gid(e),
            mode: e.mode,
            xattr: xattr_hash(&e.xattrs),
        };
        if e.kind == EntryKind::Directory {
            return self.put_dir(idx, label, e, &parts, &host, acl);
        }
        if !parents.is_empty() && !self.packages[idx].declared.contains(&dir_path) {
            return Err(self
                .unsafe_path(
                    label,
                    &e.path,
                    format!("no entry for its directory `{dir_path}/` earlier in the package (apk refuses it)"),
                )
                .into());
        }
        if e.kind == EntryKind::File && e.checksum.is_none() {
            return Err(self
                .unsafe_path(
                    label,
                    &e.path,
                    "regular file without an APK-TOOLS.checksum.SHA1 record (apk refuses it)",
                )
                .into());
        }
        self.make_room(idx, label, e, &host, &key)?;
        let (acl, csum) = match e.kind {
            EntryKind::File => {
                self.write_file(label, e, content, &host, &acl)?;
                links.insert(
                    parts.join("/"),
                    LinkTarget {
                        host: host.clone(),
                        acl,
                        csum: e.checksum,
                    },
                );
                (acl, e.checksum)
            }
            EntryKind::Symlink => {
                let to = e.link_target.as_deref().unwrap_or_default();
                std::os::unix::fs::symlink(to, &host).map_err(InstallError::io(
                    label,
                    "cannot create symlink",
                    &host,
                ))?;
                self.set_owner(&host, &acl, label)?;
                set_mtime(&host, e.mtime as i64).map_err(InstallError::io(
                    label,
                    "cannot set the mtime of",
                    &host,
                ))?;
                (acl, e.checksum)
            }
            EntryKind::Hardlink => {
                let to = e.link_target.as_deref().unwrap_or_default();
                let target = components(to)
                    .ok()
                    .and_then(|p| links.get(&p.join("/")))
                    .ok_or_else(|| {
                        self.unsafe_path(
                            label,
                            &e.path,
                            format!("no hard link target ({to}) earlier in the package"),
                        )
                    })?;
                fs::hard_link(&target.host, &host).map_err(InstallError::io(
                    label,
                    "cannot create hard link",
                    &host,
                ))?;
                (target.acl, target.csum)
            }
            EntryKind::CharDevice | EntryKind::BlockDevice | EntryKind::Fifo => {
                if !self.as_root {
                    self.devices_skipped.push(format!("{label}: {}", e.path));
                    return Ok(());
                }
                let kind = match e.kind {
                    EntryKind::CharDevice => FileType::CharacterDevice,
                    EntryKind::BlockDevice => FileType::BlockDevice,
                    _ => FileType::Fifo,
                };
                mknod(&host, kind, e.mode, e.device.unwrap_or((0, 0)))
                    .map_err(InstallError::io(label, "cannot create node", &host))?;
                self.set_owner(&host, &acl, label)?;
                fs::set_permissions(&host, fs::Permissions::from_mode(e.mode))
                    .map_err(InstallError::io(label, "cannot set the mode of", &host))?;
                set_mtime(&host, e.mtime as i64).map_err(InstallError::io(
                    label,
                    "cannot set the mtime of",
                    &host,
                ))?;
                (acl, None)
            }
            EntryKind::Directory => unreachable!("handled above"),
        };
        let pkg = &mut self.packages[idx];
        let dir = pkg.dir(&dir_path);
        pkg.dirs[dir].files.push(FileRec {
            name: last.to_string(),
            acl,
            csum,
            gone: false,
        });
        let file = pkg.dirs[dir].files.len() - 1;
        self.owners.insert(
            key.clone(),
            Owner {
                pkg: idx,
                dir,
                file,
                csum,
            },
        );
        self.changed_dirs.insert(format!("/{dir_path}"));
        self.report.files += 1;
        if key == "etc/passwd" || key == "etc/group" {
            self.ids = Ids::default();
        }
        Ok(())
    }

    fn resolve_err(&self, label: &str, path: &str, err: ResolveError) -> InstallError {
        self.unsafe_path(label, path, err.to_string())
    }

    fn put_dir(
        &mut self,
        idx: usize,
        label: &str,
        e: &DataEntry,
        parts: &[&str],
        host: &Path,
        acl: Acl,
    ) -> Result<(), Visit> {
        match fs::symlink_metadata(host) {
            Ok(m) if m.is_dir() => {}
            Ok(m) if m.file_type().is_symlink() => {
                // usr-merge: `lib -> usr/lib` already there; the package's
                // directory is that one. Its attributes stay as they are.
                self.resolver
                    .dir(parts, false)
                    .map_err(|err| self.resolve_err(label, &e.path, err))?;
                self.record_dir(idx, parts, acl);
                return Ok(());
            }
            Ok(_) => {
                return Err(self
                    .unsafe_path(label, &e.path, "a file is in the way of this directory")
                    .into())
            }
            Err(err) if err.kind() == io::ErrorKind::NotFound => {
                fs::create_dir(host).map_err(InstallError::io(
                    label,
                    "cannot create directory",
                    host,
                ))?;
                self.changed_dirs.insert(format!("/{}", parts.join("/")));
            }
            Err(err) => return Err(InstallError::io(label, "cannot inspect", host)(err).into()),
        }
        self.set_owner(host, &acl, label)?;
        let mut mode = acl.mode;
        if !self.as_root && mode & 0o700 != 0o700 {
            self.dir_fixups.push((host.to_path_buf(), mode));
            mode |= 0o700;
        }
        fs::set_permissions(host, fs::Permissions::from_mode(mode)).map_err(InstallError::io(
            label,
            "cannot set the mode of",
            host,
        ))?;
        self.set_xattrs(host, &e.xattrs);
        self.record_dir(idx, parts, acl);
        Ok(())
    }

    fn record_dir(&mut self, idx: usize, parts: &[&str], acl: Acl) {
        let pkg = &mut self.packages[idx];
        let path = parts.join("/");
        let d = pkg.dir(&path);
        pkg.dirs[d].acl = acl;
        pkg.declared.insert(path);
    }

    /// Clear the way for a non-directory entry, applying apk's rules when
    /// another package owns the path.
    fn make_room(
        &mut self,
        idx: usize,
        label: &str,
        e: &DataEntry,
        host: &Path,
        key: &str,
    ) -> Result<(), Visit> {
        let meta = match fs::symlink_metadata(host) {
            Ok(m) => m,
            Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(err) => return Err(InstallError::io(label, "cannot inspect", host)(err).into()),
        };
        if meta.is_dir() {
            return Err(self
                .unsafe_path(label, &e.path, "a directory is in the way of this entry")
                .into());
        }
        if let Some(owner) = self.owners.get(key) {
            if owner.pkg != idx {
                let new = &self.packages[idx].info;
                let old = &self.packages[owner.pkg];
                let same_content = owner.csum.is_some() && owner.csum == e.checksum;
                let replaces = new.replaces.iter().any(|r| {
                    r.parse::<Dep>()
                        .map(|d| d.name == old.info.name)
                        .unwrap_or(false)
                });
                let same_origin = !new.origin.is_empty() && new.origin == old.info.origin;
                if !(same_content || replaces || same_origin) {
                    return Err(InstallError::Conflict {
                        package: label.to_string(),
                        path: e.path.clone(),
                        owner: format!("{}-{}", old.info.name, old.info.version),
                    }
                    .into());
                }
                let (p, d, f) = (owner.pkg, owner.dir, owner.file);
                self.packages[p].dirs[d].files[f].gone = true;
            } else {
                // The same package names a path twice: the later entry wins.
                let (d, f) = (owner.dir, owner.file);
                self.packages[idx].dirs[d].files[f].gone = true;
            }
        }
        fs::remove_file(host).map_err(InstallError::io(label, "cannot replace", host))?;
        Ok(())
    }

    fn write_file(
        &mut self,
        label: &str,
        e: &DataEntry,
        content: &mut dyn Read,
        host: &Path,
        acl: &Acl,
    ) -> Result<(), Visit> {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(host)
            .map_err(InstallError::io(label, "cannot create", host))?;
        let mut written = 0u64;
        loop {
            // Reader errors are the format's (checksums, truncation).
            let n = match content.read(&mut self.buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                Err(err) => return Err(ReadError::Io(err).into()),
            };
            f.write_all(&self.buf[..n])
                .map_err(InstallError::io(label, "cannot write", host))?;
            written += n as u64;
        }
        self.report.bytes += written;
        if self.as_root {
            owners(acl.uid, acl.gid)
                .and_then(|(uid, gid)| Ok(rfs::fchown(&f, uid, gid)?))
                .map_err(InstallError::io(label, "cannot chown", host))?;
        } else {
            self.set_owner(host, acl, label)?;
        }
        // After chown, which clears setuid/setgid.
        f.set_permissions(fs::Permissions::from_mode(e.mode))
            .map_err(InstallError::io(label, "cannot set the mode of", host))?;
        self.set_xattrs(host, &e.xattrs);
        rfs::futimens(&f, &timestamps(e.mtime as i64))
            .map_err(io::Error::from)
            .map_err(InstallError::io(label, "cannot set the mtime of", host))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xattr_hash_is_order_independent_and_length_framed() {
        let a = vec![
            ("user.b".to_string(), b"2".to_vec()),
            ("user.a".to_string(), b"1".to_vec()),
        ];
        let b = vec![a[1].clone(), a[0].clone()];
        assert_eq!(xattr_hash(&a), xattr_hash(&b));
        assert_eq!(xattr_hash(&[]), None);
        let mut h = Sha1::new();
        h.update(6u32.to_be_bytes());
        h.update(b"user.a");
        h.update(1u32.to_be_bytes());
        h.update(b"1");
        let want: [u8; 20] = h.finalize().into();
        assert_eq!(xattr_hash(&a[1..]), Some(want));
    }
}
