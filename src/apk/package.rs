//! Writing a signed `.apk` v2 package from a staged tree (apk-format.md §1,
//! §2, §3 and the §8 checklist).
//!
//! The order of work is forced by the hash chain: the data member must
//! exist before `.PKGINFO` (which carries its `datahash`), and `.PKGINFO`
//! before the control member that the signature covers. So the data tar is
//! streamed once, through [`ParallelGzip`] and a SHA-256 hasher, into a
//! temporary file next to the output; then the small control and signature
//! members are built in memory and the final file is assembled atomically
//! (signature + control + a kernel-side copy of the data temp file).
//!
//! The tree is walked depth-first with children sorted bytewise and never
//! through symlinks, so the archive depends only on the tree's content and
//! the spec, not on readdir order or the thread count.
//!
//! Policy decisions documented here:
//! * Device nodes and fifos are packaged (apk creates them) but reported in
//!   [`WrittenPackage::warnings`], because go-apk/apko refuse them.
//!   Sockets cannot be represented in tar and are an error.
//! * Files up to [`READ_WHOLE_LIMIT`] are read into memory once (the SHA-1
//!   PAX record must precede the content). Larger files are read twice —
//!   once to hash, once to copy — and the second pass re-hashes and fails
//!   if the content changed in between.
//! * Every override must match an entry (a typo would otherwise silently
//!   ship wrong permissions). Hard links share their target's metadata, so
//!   an override on a hard link path is an error naming the target.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::{self, File};
use std::io::{self, Read, Seek, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use sha1::Sha1;
use sha2::{Digest, Sha256};

use super::gzip::{gzip_member, ParallelGzip};
use super::pkginfo::PkgInfo;
use super::sign::{Algorithm, SignError, SigningKey};
use super::tar::{Header, Kind, TarWriter, MAX_ID, MAX_OCTAL_SIZE};

/// Files up to this size are read into memory in one go; bigger ones are
/// read twice (hash pass, copy pass) to keep memory bounded.
pub const READ_WHOLE_LIMIT: u64 = 64 * 1024 * 1024;
/// apk fails with ENAMETOOLONG at PATH_MAX - 10 (apk-format.md §1.5).
pub const MAX_PATH_LEN: usize = 4086;

/// Install scripts, in the order they are stored in the control member.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Script {
    PreInstall,
    PostInstall,
    PreUpgrade,
    PostUpgrade,
    PreDeinstall,
    PostDeinstall,
    Trigger,
}

impl Script {
    pub const ALL: [Script; 7] = [
        Script::PreInstall,
        Script::PostInstall,
        Script::PreUpgrade,
        Script::PostUpgrade,
        Script::PreDeinstall,
        Script::PostDeinstall,
        Script::Trigger,
    ];

    /// Control file name, e.g. `.pre-install`.
    pub fn file_name(self) -> &'static str {
        match self {
            Script::PreInstall => ".pre-install",
            Script::PostInstall => ".post-install",
            Script::PreUpgrade => ".pre-upgrade",
            Script::PostUpgrade => ".post-upgrade",
            Script::PreDeinstall => ".pre-deinstall",
            Script::PostDeinstall => ".post-deinstall",
            Script::Trigger => ".trigger",
        }
    }

    pub fn from_file_name(name: &str) -> Option<Script> {
        Script::ALL.into_iter().find(|s| s.file_name() == name)
    }
}

/// Ownership, mode and xattrs for one packaged path (default root/root).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryOverride {
    pub uid: u32,
    pub gid: u32,
    pub uname: String,
    pub gname: String,
    /// Permission bits (may include setuid/setgid/sticky); `None` keeps
    /// the mode found in the tree.
    pub mode: Option<u32>,
    /// Written as PAX `SCHILY.xattr.<name>` records.
    pub xattrs: Vec<(String, Vec<u8>)>,
}

impl Default for EntryOverride {
    fn default() -> Self {
        EntryOverride {
            uid: 0,
            gid: 0,
            uname: "root".into(),
            gname: "root".into(),
            mode: None,
            xattrs: Vec::new(),
        }
    }
}

/// What to package.
#[derive(Debug, Clone, Default)]
pub struct PackageSpec {
    /// Staged tree; its contents (not the directory itself) become the data.
    pub root: PathBuf,
    /// Metadata; `size` and `datahash` are filled in by the writer.
    pub info: PkgInfo,
    pub scripts: Vec<(Script, Vec<u8>)>,
    /// Extra control files such as `.melange.yaml` (0644, after scripts).
    pub control_extra: Vec<(String, Vec<u8>)>,
    /// SOURCE_DATE_EPOCH, used as mtime of every header.
    pub mtime: u64,
    /// Keyed by relative path without trailing slash (`usr/bin/ping`).
    pub overrides: BTreeMap<String, EntryOverride>,
}

/// How to sign. `key: None` writes an unsigned package (control + data).
#[derive(Debug, Clone, Copy, Default)]
pub struct SignOptions<'a> {
    pub key: Option<&'a SigningKey>,
    /// Also add a SHA-1 `.SIGN.RSA.<key>` entry after the RSA256 one, for
    /// very old apk-tools.
    pub legacy_sha1: bool,
}

/// The result of [`write_package`].
#[derive(Debug, Clone)]
pub struct WrittenPackage {
    pub path: PathBuf,
    /// The metadata as written (with `size` and `datahash`).
    pub info: PkgInfo,
    pub file_size: u64,
    /// SHA-1 of the control member: the index's `C:Q1…` identity.
    pub control_sha1: [u8; 20],
    /// Things apk accepts but other clients may not (device nodes, fifos).
    pub warnings: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum PackageError {
    #[error("{path}: cannot {action}: {source}")]
    Io {
        path: PathBuf,
        action: &'static str,
        source: io::Error,
    },
    #[error("{path:?}: name contains a control character (apk names must not)")]
    ControlChar { path: String },
    #[error("{path}: top-level dotfile in the data tree; apk treats it as a control file and silently never installs it")]
    TopLevelDotfile { path: String },
    #[error("{path}: path is {len} bytes; apk fails on paths of {MAX_PATH_LEN} bytes or more")]
    PathTooLong { path: String, len: usize },
    #[error("{path}: symlink target is {len} bytes; apk fails on link targets of {MAX_PATH_LEN} bytes or more")]
    LinkTargetTooLong { path: String, len: usize },
    #[error("{path}: file is {size} bytes; apk's tar reader cannot represent 8 GiB or more")]
    FileTooLarge { path: String, size: u64 },
    #[error("{path}: {what} cannot be packaged")]
    Unsupported { path: String, what: &'static str },
    #[error("{path}: is a private key (PEM \"{marker}\"); refusing to package it")]
    PrivateKey { path: String, marker: &'static str },
    #[error("{path}: file changed while it was being packaged")]
    FileChanged { path: String },
    #[error("override {key:?}: {reason}")]
    Override { key: String, reason: String },
    #[error("control file {name:?}: {reason}")]
    Control { name: String, reason: String },
    #[error("package metadata: {0}")]
    Info(String),
    #[error(transparent)]
    Sign(#[from] SignError),
}

/// `<name>-<version>.apk`; the version already carries `-rN`.
pub fn package_file_name(info: &PkgInfo) -> String {
    format!("{}-{}.apk", info.name, info.version)
}

/// Threads used by [`write_package`]: all available cores.
pub fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Write `<out_dir>/<name>-<version>.apk` atomically.
pub fn write_package(
    spec: &PackageSpec,
    sign: &SignOptions,
    out_dir: &Path,
) -> Result<WrittenPackage, PackageError> {
    write_package_with_threads(spec, sign, out_dir, default_threads())
}

/// [`write_package`] with an explicit compression thread count. The output
/// bytes do not depend on `threads`.
pub fn write_package_with_threads(
    spec: &PackageSpec,
    sign: &SignOptions,
    out_dir: &Path,
    threads: usize,
) -> Result<WrittenPackage, PackageError> {
    check_info(&spec.info)?;
    let control_files = control_files(spec)?;
    let file_name = package_file_name(&spec.info);
    let path = out_dir.join(&file_name);
    let io_err = |action| {
        let path = out_dir.to_path_buf();
        move |source| PackageError::Io {
            path,
            action,
            source,
        }
    };

    // The temp file is deleted on drop, so any early return cleans up.
    let mut data_tmp = tempfile::Builder::new()
        .prefix(&format!(".{file_name}.data."))
        .suffix(".tmp")
        .tempfile_in(out_dir)
        .map_err(io_err("create a temporary file in"))?;
    let data = write_data(spec, data_tmp.as_file_mut(), threads)?;

    let mut info = spec.info.clone();
    info.size = data.installed_size;
    if info.size == 0 && (data.entries > 0 || !spec.scripts.is_empty()) {
        // size 0 marks a meta package: apk would extract nothing.
        info.size = 1;
    }
    info.datahash = hex::encode(data.sha256);

    let pkginfo = info.render();
    let mut control_tar = TarWriter::new(Vec::new());
    let files = std::iter::once((".PKGINFO", pkginfo.as_bytes(), 0o644))
        .chain(control_files.iter().map(|(n, b, m)| (n.as_str(), *b, *m)));
    for (name, bytes, mode) in files {
        let mut h = Header::new(name.as_bytes(), Kind::File, mode, spec.mtime);
        h.size = bytes.len() as u64;
        // In-memory writes of short validated names cannot fail.
        control_tar
            .append(&h, &[], bytes)
            .map_err(io_err("build the control member for"))?;
    }
    // No end-of-archive: the data member must follow in the same tar stream.
    let control = gzip_member(&control_tar.into_inner());
    let signature = signature_member(&control, sign, spec.mtime)?;

    let data_file = data_tmp.as_file_mut();
    data_file
        .rewind()
        .map_err(io_err("rewind the temporary data file in"))?;
    let file_size = crate::atomic::write_with(&path, 0o644, |f| {
        f.write_all(&signature)?;
        f.write_all(&control)?;
        let copied = io::copy(data_file, f)?;
        if copied != data.len {
            return Err(io::Error::other("temporary data file was truncated"));
        }
        Ok((signature.len() + control.len()) as u64 + copied)
    })
    .map_err(|source| PackageError::Io {
        path: path.clone(),
        action: "write",
        source,
    })?;

    Ok(WrittenPackage {
        path,
        info,
        file_size,
        control_sha1: Sha1::digest(&control).into(),
        warnings: data.warnings,
    })
}

/// The signature member (`.SIGN.RSA256.<key>` and optionally
/// `.SIGN.RSA.<key>`, 0644, root, `mtime`, no end-of-archive) over the raw
/// compressed `control_member`. Empty when no key is given.
pub fn signature_member(
    control_member: &[u8],
    sign: &SignOptions,
    mtime: u64,
) -> Result<Vec<u8>, PackageError> {
    let Some(key) = sign.key else {
        return Ok(Vec::new());
    };
    let mut algs = vec![Algorithm::Rsa256];
    if sign.legacy_sha1 {
        algs.push(Algorithm::Rsa);
    }
    let mut sigs = Vec::new();
    for alg in algs {
        sigs.push((key.entry_name(alg), key.sign(alg, control_member)?));
    }
    let entries: Vec<(&str, &[u8])> = sigs
        .iter()
        .map(|(n, s)| (n.as_str(), s.as_slice()))
        .collect();
    Ok(gzip_member(&super::tar::memory_tar(
        &entries, 0o644, mtime, false,
    )))
}

/// Name and version end up in the output file name, so beyond apk's own
/// rules they must never form a path. The full version grammar is the
/// recipe layer's job; this keeps the name a plain file.
fn check_info(info: &PkgInfo) -> Result<(), PackageError> {
    let plain = |s: &str, extra: &[u8]| {
        s.bytes().next().is_some_and(|c| c.is_ascii_alphanumeric())
            && s.bytes()
                .all(|c| c.is_ascii_alphanumeric() || extra.contains(&c))
    };
    for (key, value, extra) in [
        ("pkgname", &info.name, &b"._+-"[..]),
        ("pkgver", &info.version, &b"._~-"[..]),
    ] {
        if !plain(value, extra) {
            return Err(PackageError::Info(format!(
                "{key} {value:?} must start with a letter or digit and use only [A-Za-z0-9{}]",
                String::from_utf8_lossy(extra)
            )));
        }
    }
    Ok(())
}

/// Scripts (in [`Script::ALL`] order) then extras, validated, with modes.
/// A control file to write: name, content, mode.
type ControlFile<'a> = (String, &'a [u8], u32);

fn control_files(spec: &PackageSpec) -> Result<Vec<ControlFile<'_>>, PackageError> {
    let bad = |name: &str, reason: &str| PackageError::Control {
        name: name.to_string(),
        reason: reason.to_string(),
    };
    let mut scripts: Vec<_> = spec.scripts.iter().collect();
    scripts.sort_by_key(|(s, _)| *s);
    let mut out = Vec::new();
    for pair in scripts.windows(2) {
        if pair[0].0 == pair[1].0 {
            return Err(bad(pair[0].0.file_name(), "given twice"));
        }
    }
    for (script, body) in scripts {
        if !body.starts_with(b"#!") {
            // apk execs the script directly, so it needs an interpreter line.
            return Err(bad(script.file_name(), "must start with a `#!` line"));
        }
        out.push((script.file_name().to_string(), body.as_slice(), 0o755));
    }
    let has_trigger = spec.scripts.iter().any(|(s, _)| *s == Script::Trigger);
    let has_triggers = !spec.info.triggers.is_empty();
    if has_trigger != has_triggers {
        return Err(bad(
            ".trigger",
            "a .trigger script and `triggers` in .PKGINFO must come together",
        ));
    }
    let mut seen = BTreeSet::new();
    for (name, body) in &spec.control_extra {
        let reason = if !name.starts_with('.') || name.contains('/') {
            Some("control names must start with `.` and contain no `/`")
        } else if name == ".PKGINFO" || Script::from_file_name(name).is_some() {
            Some("clashes with a file the writer produces")
        } else if name.starts_with(".SIGN.") {
            Some("`.SIGN.` names belong to the signature member")
        } else if name == ".INSTALL" {
            Some("legacy `.INSTALL` is rejected by apk3")
        } else if name.len() > 100 || name.bytes().any(is_control) {
            Some("name is too long or has control characters")
        } else if !seen.insert(name) {
            Some("given twice")
        } else {
            None
        };
        if let Some(reason) = reason {
            return Err(bad(name, reason));
        }
        out.push((name.clone(), body.as_slice(), 0o644));
    }
    Ok(out)
}

fn is_control(c: u8) -> bool {
    c < 0x20 || c == 0x7f
}

/// Passes bytes through while hashing and counting them (`datahash`).
struct HashingWriter<W> {
    inner: W,
    sha256: Sha256,
    len: u64,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.sha256.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

struct DataSummary {
    sha256: [u8; 32],
    len: u64,
    installed_size: u64,
    entries: usize,
    warnings: Vec<String>,
}

type DataSink<'f> = TarWriter<ParallelGzip<HashingWriter<io::BufWriter<&'f mut File>>>>;

struct Walker<'s, 'f> {
    spec: &'s PackageSpec,
    tar: DataSink<'f>,
    /// Normalised override key → (override, used?).
    overrides: BTreeMap<String, (&'s EntryOverride, bool)>,
    /// (dev, ino) of multiply-linked files → archive path and header.
    links: HashMap<(u64, u64), Header>,
    installed_size: u64,
    entries: usize,
    warnings: Vec<String>,
    buf: Vec<u8>,
}

fn write_data(
    spec: &PackageSpec,
    file: &mut File,
    threads: usize,
) -> Result<DataSummary, PackageError> {
    let root_meta = fs::metadata(&spec.root).map_err(|source| PackageError::Io {
        path: spec.root.clone(),
        action: "read the package root",
        source,
    })?;
    if !root_meta.is_dir() {
        return Err(PackageError::Io {
            path: spec.root.clone(),
            action: "use as the package root",
            source: io::Error::new(io::ErrorKind::NotADirectory, "not a directory"),
        });
    }
    let mut overrides = BTreeMap::new();
    for (key, ov) in &spec.overrides {
        let norm = key.trim_end_matches('/').to_string();
        if let Some(m) = ov.mode.filter(|m| *m > 0o7777) {
            return Err(PackageError::Override {
                key: key.clone(),
                reason: format!("mode {m:o} has bits beyond 07777"),
            });
        }
        if ov.uid > MAX_ID || ov.gid > MAX_ID {
            return Err(PackageError::Override {
                key: key.clone(),
                reason: format!("uid/gid above {MAX_ID} cannot be written in tar octal fields"),
            });
        }
        overrides.insert(norm, (ov, false));
    }
    let sink = HashingWriter {
        inner: io::BufWriter::with_capacity(1 << 20, file),
        sha256: Sha256::new(),
        len: 0,
    };
    let mut w = Walker {
        spec,
        tar: TarWriter::new(ParallelGzip::new(sink, threads)),
        overrides,
        links: HashMap::new(),
        installed_size: 0,
        entries: 0,
        warnings: Vec::new(),
        buf: Vec::new(),
    };
    w.walk(&spec.root, &[])?;
    if let Some((key, _)) = w.overrides.iter().find(|(_, (_, used))| !used) {
        return Err(PackageError::Override {
            key: key.clone(),
            reason: "matches no entry in the package tree".into(),
        });
    }
    let temp_err = |source| PackageError::Io {
        path: spec.root.clone(),
        action: "write the compressed data of",
        source,
    };
    w.tar.end_of_archive().map_err(temp_err)?;
    let mut sink = w.tar.into_inner().finish().map_err(temp_err)?;
    sink.flush().map_err(temp_err)?;
    Ok(DataSummary {
        sha256: sink.sha256.finalize().into(),
        len: sink.len,
        installed_size: w.installed_size,
        entries: w.entries,
        warnings: w.warnings,
    })
}

impl Walker<'_, '_> {
    fn io(&self, path: &Path, action: &'static str) -> impl FnOnce(io::Error) -> PackageError {
        let path = path.to_path_buf();
        move |source| PackageError::Io {
            path,
            action,
            source,
        }
    }

    /// Emit `dir`'s children (archive prefix `prefix`, ending in `/` or
    /// empty) depth-first in bytewise name order.
    fn walk(&mut self, dir: &Path, prefix: &[u8]) -> Result<(), PackageError> {
        let mut names = Vec::new();
        for entry in fs::read_dir(dir).map_err(self.io(dir, "list directory"))? {
            names.push(entry.map_err(self.io(dir, "list directory"))?.file_name());
        }
        names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        for name in names {
            let mut apath = prefix.to_vec();
            apath.extend_from_slice(name.as_bytes());
            let display = String::from_utf8_lossy(&apath).into_owned();
            if name.as_bytes().iter().copied().any(is_control) {
                return Err(PackageError::ControlChar { path: display });
            }
            if prefix.is_empty() && name.as_bytes().starts_with(b".") {
                return Err(PackageError::TopLevelDotfile { path: display });
            }
            if apath.len() >= MAX_PATH_LEN {
                return Err(PackageError::PathTooLong {
                    len: apath.len(),
                    path: display,
                });
            }
            let fs_path = dir.join(&name);
            let meta = fs::symlink_metadata(&fs_path).map_err(self.io(&fs_path, "stat"))?;
            self.entry(&fs_path, apath, display, &meta)?;
        }
        Ok(())
    }

    /// Header for `apath` with the tree's mode, then the override applied.
    fn header(
        &mut self,
        apath: &[u8],
        display: &str,
        kind: Kind,
        mode: u32,
    ) -> (Header, Vec<(String, Vec<u8>)>) {
        let mut h = Header::new(apath, kind, mode & 0o7777, self.spec.mtime);
        let mut pax = Vec::new();
        if let Some((ov, used)) = self.overrides.get_mut(display) {
            *used = true;
            h.uid = ov.uid;
            h.gid = ov.gid;
            h.uname = ov.uname.clone();
            h.gname = ov.gname.clone();
            if let Some(m) = ov.mode {
                h.mode = m;
            }
            for (k, v) in &ov.xattrs {
                pax.push((format!("SCHILY.xattr.{k}"), v.clone()));
            }
        }
        (h, pax)
    }

    fn emit(
        &mut self,
        h: &Header,
        pax: &[(String, Vec<u8>)],
        data: &[u8],
        display: &str,
    ) -> Result<(), PackageError> {
        self.entries += 1;
        self.tar
            .append(h, pax, data)
            .map_err(|e| self.write_error(e, display))
    }

    /// Header encoding errors (bad owner names…) are the entry's fault;
    /// anything else is the temp file's.
    fn write_error(&self, e: io::Error, display: &str) -> PackageError {
        PackageError::Io {
            path: if e.kind() == io::ErrorKind::InvalidInput {
                PathBuf::from(display)
            } else {
                self.spec.root.clone()
            },
            action: if e.kind() == io::ErrorKind::InvalidInput {
                "encode a tar header for"
            } else {
                "write the package data of"
            },
            source: e,
        }
    }

    fn entry(
        &mut self,
        fs_path: &Path,
        apath: Vec<u8>,
        display: String,
        meta: &fs::Metadata,
    ) -> Result<(), PackageError> {
        let ft = meta.file_type();
        if ft.is_dir() {
            let mut dpath = apath.clone();
            dpath.push(b'/');
            let (h, pax) = self.header(&dpath, &display, Kind::Directory, meta.mode());
            self.emit(&h, &pax, &[], &display)?;
            return self.walk(fs_path, &dpath);
        }
        if ft.is_symlink() {
            let target = fs::read_link(fs_path).map_err(self.io(fs_path, "read symlink"))?;
            let target = target.as_os_str().as_bytes().to_vec();
            // apk's tar reader limits link targets like names (ENAMETOOLONG).
            if target.len() >= MAX_PATH_LEN {
                return Err(PackageError::LinkTargetTooLong {
                    len: target.len(),
                    path: display,
                });
            }
            let (mut h, mut pax) = self.header(&apath, &display, Kind::Symlink, 0o777);
            pax.insert(0, checksum_record(&Sha1::digest(&target)));
            h.link = target;
            return self.emit(&h, &pax, &[], &display);
        }
        if ft.is_file() {
            return self.file(fs_path, apath, display, meta);
        }
        let (kind, what) = if ft.is_char_device() {
            (Kind::CharDevice, "character device")
        } else if ft.is_block_device() {
            (Kind::BlockDevice, "block device")
        } else if ft.is_fifo() {
            (Kind::Fifo, "fifo")
        } else {
            return Err(PackageError::Unsupported {
                path: display,
                what: "a socket or unknown file type",
            });
        };
        self.warnings.push(format!(
            "{display}: {what} packaged; apk creates it but apko/go-apk cannot install it"
        ));
        let (mut h, pax) = self.header(&apath, &display, kind, meta.mode());
        if kind != Kind::Fifo {
            let (major, minor) = split_dev(meta.rdev());
            h.dev_major = major;
            h.dev_minor = minor;
        }
        self.emit(&h, &pax, &[], &display)
    }

    fn file(
        &mut self,
        fs_path: &Path,
        apath: Vec<u8>,
        display: String,
        meta: &fs::Metadata,
    ) -> Result<(), PackageError> {
        let inode = (meta.dev(), meta.ino());
        if meta.nlink() > 1 {
            if let Some(target) = self.links.get(&inode) {
                let mut h = target.clone();
                if self.overrides.contains_key(display.as_str()) {
                    return Err(PackageError::Override {
                        key: display,
                        reason: format!(
                            "is a hard link to {}, which it shares metadata with; set the override there",
                            String::from_utf8_lossy(&target.path)
                        ),
                    });
                }
                h.kind = Kind::HardLink;
                h.link = std::mem::replace(&mut h.path, apath);
                h.size = 0;
                return self.emit(&h, &[], &[], &display);
            }
        }
        let size = meta.len();
        if size > MAX_OCTAL_SIZE {
            return Err(PackageError::FileTooLarge {
                path: display,
                size,
            });
        }
        let (mut h, mut pax) = self.header(&apath, &display, Kind::File, meta.mode());
        h.size = size;
        let mut file = File::open(fs_path).map_err(self.io(fs_path, "open"))?;
        let opened = file.metadata().map_err(self.io(fs_path, "stat"))?;
        // Guards against the path being swapped (e.g. for a symlink)
        // between the lstat and the open.
        if (opened.dev(), opened.ino()) != inode || opened.len() != size {
            return Err(PackageError::FileChanged { path: display });
        }
        let changed = || PackageError::FileChanged {
            path: display.clone(),
        };
        self.entries += 1;
        if size <= READ_WHOLE_LIMIT {
            let mut buf = std::mem::take(&mut self.buf);
            buf.clear();
            (&mut file)
                .take(size + 1)
                .read_to_end(&mut buf)
                .map_err(self.io(fs_path, "read"))?;
            if buf.len() as u64 != size {
                return Err(changed());
            }
            if let Some(marker) = private_key_marker(&buf) {
                self.buf = buf;
                return Err(PackageError::PrivateKey {
                    path: display,
                    marker,
                });
            }
            pax.insert(0, checksum_record(&Sha1::digest(&buf)));
            let res = self.tar.append(&h, &pax, &buf);
            self.buf = buf;
            res.map_err(|e| self.write_error(e, &display))?;
        } else {
            let mut key_marker = None;
            let mut first_chunk = true;
            let Some(first) = hash_stream(&mut file, size, |chunk| {
                if std::mem::take(&mut first_chunk) {
                    key_marker = private_key_marker(chunk);
                }
                Ok(())
            })
            .map_err(self.io(fs_path, "read"))?
            else {
                return Err(changed());
            };
            if let Some(marker) = key_marker {
                return Err(PackageError::PrivateKey {
                    path: display,
                    marker,
                });
            }
            pax.insert(0, checksum_record(&first));
            self.tar
                .write_header(&h, &pax)
                .map_err(|e| self.write_error(e, &display))?;
            file.rewind().map_err(self.io(fs_path, "rewind"))?;
            let tar = &mut self.tar;
            let second = hash_stream(&mut file, size, |chunk| tar.write_content(chunk));
            let second = second.map_err(|e| PackageError::Io {
                path: fs_path.to_path_buf(),
                action: "read or copy",
                source: e,
            })?;
            if second != Some(first) {
                return Err(changed());
            }
            self.tar
                .end_content(size)
                .map_err(|e| self.write_error(e, &display))?;
        }
        self.installed_size += size;
        if meta.nlink() > 1 {
            self.links.insert(inode, h);
        }
        Ok(())
    }
}

/// PEM headers of private keys. A file starting with one (after blank
/// space) is a key, never something to ship: a recipe folder commonly holds
/// the signing key, and a step's `cp -r` would package it.
const PRIVATE_KEY_MARKERS: [&str; 5] = [
    "-----BEGIN RSA PRIVATE KEY-----",
    "-----BEGIN PRIVATE KEY-----",
    "-----BEGIN OPENSSH PRIVATE KEY-----",
    "-----BEGIN EC PRIVATE KEY-----",
    "-----BEGIN ENCRYPTED PRIVATE KEY-----",
];

/// The marker `content` starts with, when it is a PEM private key.
/// Only the first bytes are looked at.
pub fn private_key_marker(content: &[u8]) -> Option<&'static str> {
    let start = content
        .iter()
        .take(4096)
        .position(|b| !b.is_ascii_whitespace())?;
    let rest = &content[start..];
    PRIVATE_KEY_MARKERS
        .into_iter()
        .find(|m| rest.starts_with(m.as_bytes()))
}

/// SHA-1 of exactly `size` bytes of `file`, passing each chunk to `sink`;
/// `None` if the file is shorter or longer than `size`.
fn hash_stream(
    file: &mut File,
    size: u64,
    mut sink: impl FnMut(&[u8]) -> io::Result<()>,
) -> io::Result<Option<[u8; 20]>> {
    let mut hasher = Sha1::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut left = size;
    while left > 0 {
        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let n = file.read(&mut buf[..want])?;
        if n == 0 {
            return Ok(None);
        }
        hasher.update(&buf[..n]);
        sink(&buf[..n])?;
        left -= n as u64;
    }
    if file.read(&mut buf[..1])? != 0 {
        return Ok(None);
    }
    Ok(Some(hasher.finalize().into()))
}

fn checksum_record(sha1: &[u8]) -> (String, Vec<u8>) {
    (
        "APK-TOOLS.checksum.SHA1".to_string(),
        hex::encode(sha1).into_bytes(),
    )
}

/// Linux `dev_t` → (major, minor), glibc's encoding.
fn split_dev(dev: u64) -> (u32, u32) {
    let major = ((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff);
    let minor = (dev & 0xff) | ((dev >> 12) & !0xff);
    (major as u32, minor as u32)
}
