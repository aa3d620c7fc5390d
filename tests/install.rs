//! Installing packages into a guest root: files, links, modes, owners,
//! xattrs, apk's conflict rules, scripts and triggers, an apk database
//! audited against the tree the way `apk audit` does, and cached templates.
//!
//! Packages are written with the crate's own package writer (the one
//! `pkgbuild build` uses) from trees staged here, plus the shared
//! apk-tools-accepted `hello` package.

mod util;

use std::collections::BTreeMap;
use std::ffi::CString;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine as _;
use sha1::{Digest, Sha1};

use pkgbuild::apk::index::IndexEntry;
use pkgbuild::apk::package::{write_package, EntryOverride, PackageSpec, Script, SignOptions};
use pkgbuild::apk::pkginfo::PkgInfo;
use pkgbuild::install::{
    install, install_cached, InstallError, InstallReport, Package, RootSetup, ScriptRun,
};

const MTIME: u64 = 1_700_000_000;

fn as_root() -> bool {
    unsafe { libc::geteuid() == 0 }
}

/// A package to write: files (path -> content), symlinks, hard links,
/// per-path overrides, scripts and `.PKGINFO` tweaks.
#[derive(Default)]
struct Pkg {
    name: &'static str,
    origin: &'static str,
    replaces: Vec<String>,
    triggers: Vec<String>,
    dirs: Vec<&'static str>,
    files: Vec<(&'static str, Vec<u8>)>,
    symlinks: Vec<(&'static str, &'static str)>,
    hardlinks: Vec<(&'static str, &'static str)>,
    overrides: Vec<(&'static str, EntryOverride)>,
    scripts: Vec<(Script, String)>,
    /// Host files copied in (guest path, host path).
    copies: Vec<(String, PathBuf)>,
}

struct Built {
    path: PathBuf,
    entry: IndexEntry,
}

fn build(work: &Path, p: Pkg) -> Built {
    let stage = work.join(format!("stage-{}", p.name));
    fs::create_dir_all(&stage).unwrap();
    for d in &p.dirs {
        fs::create_dir_all(stage.join(d)).unwrap();
    }
    for (path, content) in &p.files {
        let f = stage.join(path);
        fs::create_dir_all(f.parent().unwrap()).unwrap();
        fs::write(&f, content).unwrap();
        fs::set_permissions(&f, fs::Permissions::from_mode(0o644)).unwrap();
    }
    for (guest, host) in &p.copies {
        let f = stage.join(guest.trim_start_matches('/'));
        fs::create_dir_all(f.parent().unwrap()).unwrap();
        fs::copy(host, &f).unwrap();
        fs::set_permissions(&f, fs::Permissions::from_mode(0o755)).unwrap();
    }
    for (path, to) in &p.symlinks {
        std::os::unix::fs::symlink(to, stage.join(path)).unwrap();
    }
    for (path, to) in &p.hardlinks {
        fs::hard_link(stage.join(to), stage.join(path)).unwrap();
    }
    let spec = PackageSpec {
        root: stage,
        info: PkgInfo {
            name: p.name.into(),
            version: "1.0-r0".into(),
            arch: "x86_64".into(),
            origin: p.origin.into(),
            license: "MIT".into(),
            replaces: p.replaces,
            triggers: p.triggers,
            ..Default::default()
        },
        scripts: p
            .scripts
            .into_iter()
            .map(|(s, body)| (s, body.into_bytes()))
            .collect(),
        mtime: MTIME,
        overrides: p
            .overrides
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
        ..Default::default()
    };
    let out = work.join("repo");
    fs::create_dir_all(&out).unwrap();
    let written = write_package(&spec, &SignOptions::default(), &out).unwrap();
    let entry = IndexEntry::from_package(&written.path).unwrap();
    Built {
        path: written.path,
        entry,
    }
}

fn hello() -> Built {
    let path = util::testdata::hello_apk();
    let entry = IndexEntry::from_package(&path).unwrap();
    Built { path, entry }
}

fn packages(built: &[&Built]) -> Vec<Package<'static>> {
    built
        .iter()
        .map(|b| Package {
            path: Box::leak(b.path.clone().into_boxed_path()),
            entry: Box::leak(Box::new(b.entry.clone())),
            repository: "test-repo",
        })
        .collect()
}

struct Setup {
    world: Vec<String>,
    repositories: Vec<String>,
    keys: Vec<(String, Vec<u8>)>,
}

fn setup() -> Setup {
    Setup {
        world: vec!["base".into(), "extra".into()],
        repositories: vec!["https://example.org/repo".into()],
        keys: vec![(
            "test-5f3a.rsa.pub".into(),
            b"-----BEGIN PUBLIC KEY-----\n".to_vec(),
        )],
    }
}

impl Setup {
    fn get(&self) -> RootSetup<'_> {
        RootSetup {
            arch: "x86_64",
            world: &self.world,
            repositories: &self.repositories,
            keys: &self.keys,
        }
    }
}

/// (package, kind, args) of every script run.
type Calls = Vec<(String, String, Vec<String>)>;

fn recorder(calls: &mut Calls) -> impl FnMut(&ScriptRun) -> Result<(), String> + '_ {
    |s: &ScriptRun| {
        assert!(
            s.root.join(&s.guest_path[1..]).is_file(),
            "the script is written into the root before it runs"
        );
        calls.push((s.package.into(), s.kind.into(), s.args.clone()));
        Ok(())
    }
}

fn lgetxattr(p: &Path, name: &str) -> Option<Vec<u8>> {
    let c = CString::new(p.as_os_str().as_bytes()).unwrap();
    let n = CString::new(name).unwrap();
    let mut buf = vec![0u8; 4096];
    let len =
        unsafe { libc::lgetxattr(c.as_ptr(), n.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    (len >= 0).then(|| {
        buf.truncate(len as usize);
        buf
    })
}

fn user_xattrs_supported(dir: &Path) -> bool {
    let f = dir.join(".xattr-probe");
    fs::write(&f, b"").unwrap();
    let c = CString::new(f.as_os_str().as_bytes()).unwrap();
    let ok = unsafe {
        libc::lsetxattr(
            c.as_ptr(),
            c"user.probe".as_ptr(),
            b"1".as_ptr().cast(),
            1,
            0,
        )
    } == 0;
    fs::remove_file(&f).unwrap();
    ok
}

// ---------------------------------------------------------------------------
// An independent reader of lib/apk/db/installed and an `apk audit`-style check

#[derive(Debug, Default)]
struct DbFile {
    name: String,
    acl: Option<String>,
    csum: Option<String>,
}

#[derive(Debug, Default)]
struct DbDir {
    path: String,
    acl: Option<String>,
    files: Vec<DbFile>,
}

#[derive(Debug, Default)]
struct DbPkg {
    fields: BTreeMap<char, String>,
    dirs: Vec<DbDir>,
}

fn parse_installed(text: &str) -> Vec<DbPkg> {
    assert!(
        text.ends_with("\n\n"),
        "every record ends with a blank line"
    );
    let mut out = Vec::new();
    for record in text.split("\n\n").filter(|r| !r.is_empty()) {
        let mut p = DbPkg::default();
        for line in record.lines() {
            let (k, v) = line.split_at(2);
            assert_eq!(&k[1..], ":", "line {line:?}");
            let letter = k.chars().next().unwrap();
            match letter {
                'F' => p.dirs.push(DbDir {
                    path: v.into(),
                    ..Default::default()
                }),
                'M' => p.dirs.last_mut().unwrap().acl = Some(v.into()),
                'R' => p.dirs.last_mut().unwrap().files.push(DbFile {
                    name: v.into(),
                    ..Default::default()
                }),
                'a' => {
                    let d = p.dirs.last_mut().unwrap();
                    d.files.last_mut().unwrap().acl = Some(v.into())
                }
                'Z' => {
                    let d = p.dirs.last_mut().unwrap();
                    d.files.last_mut().unwrap().csum = Some(v.into())
                }
                _ => {
                    assert!(
                        p.fields.insert(letter, v.into()).is_none(),
                        "{letter}: twice"
                    );
                }
            }
        }
        out.push(p);
    }
    out
}

fn q1(bytes: &[u8]) -> String {
    format!(
        "Q1{}",
        base64::engine::general_purpose::STANDARD.encode(bytes)
    )
}

/// apk's xattr hash, recomputed from what is on disk (user.* only: the
/// test packages carry no others).
fn disk_xattr_hash(p: &Path, names: &[&str]) -> Option<String> {
    let mut present: Vec<(&str, Vec<u8>)> = names
        .iter()
        .filter_map(|n| lgetxattr(p, n).map(|v| (*n, v)))
        .collect();
    if present.is_empty() {
        return None;
    }
    present.sort();
    let mut h = Sha1::new();
    for (n, v) in present {
        h.update((n.len() as u32).to_be_bytes());
        h.update(n.as_bytes());
        h.update((v.len() as u32).to_be_bytes());
        h.update(&v);
    }
    Some(q1(&h.finalize()))
}

/// Check every `F:`/`R:` record against the tree as `apk audit` would:
/// existence and type, `Z:` against the content (or symlink target),
/// `M:`/`a:` mode, owners (when we could set them) and xattr hash.
/// Returns how many paths were checked.
fn audit(root: &Path, db: &[DbPkg], xattr_names: &[&str]) -> usize {
    let mut checked = 0;
    let acl_check = |path: &Path, acl: &str, what: &str| {
        let meta = fs::symlink_metadata(path).unwrap();
        let parts: Vec<&str> = acl.split(':').collect();
        assert!(parts.len() == 3 || parts.len() == 4, "{what}: acl {acl}");
        if !meta.file_type().is_symlink() {
            let mode = u32::from_str_radix(parts[2], 8).unwrap();
            assert_eq!(meta.mode() & 0o7777, mode, "{what}: mode");
        }
        if as_root() {
            assert_eq!(meta.uid().to_string(), parts[0], "{what}: uid");
            assert_eq!(meta.gid().to_string(), parts[1], "{what}: gid");
        }
        let want_x = parts.get(3).map(|s| s.to_string());
        assert_eq!(disk_xattr_hash(path, xattr_names), want_x, "{what}: xattrs");
    };
    for p in db {
        for d in &p.dirs {
            let dir = root.join(&d.path);
            let what = format!("{}: F:{}", p.fields[&'P'], d.path);
            assert!(dir.is_dir(), "{what} is not a directory");
            if !fs::symlink_metadata(&dir).unwrap().is_dir() {
                continue; // reached through an in-root symlink
            }
            acl_check(&dir, d.acl.as_deref().unwrap_or("0:0:755"), &what);
            checked += 1;
            for f in &d.files {
                let path = dir.join(&f.name);
                let what = format!("{what}/{}", f.name);
                let meta = fs::symlink_metadata(&path).unwrap_or_else(|e| panic!("{what}: {e}"));
                acl_check(&path, f.acl.as_deref().unwrap_or("0:0:644"), &what);
                let content = if meta.file_type().is_symlink() {
                    fs::read_link(&path)
                        .unwrap()
                        .as_os_str()
                        .as_bytes()
                        .to_vec()
                } else {
                    fs::read(&path).unwrap()
                };
                let want = f.csum.as_deref().unwrap_or_else(|| panic!("{what}: no Z:"));
                assert_eq!(q1(&Sha1::digest(&content)), want, "{what}: Z:");
                checked += 1;
            }
        }
    }
    checked
}

fn read_db(root: &Path) -> Vec<DbPkg> {
    parse_installed(&fs::read_to_string(root.join("lib/apk/db/installed")).unwrap())
}

fn owner(uid: u32, gid: u32, name: &str, mode: Option<u32>) -> EntryOverride {
    EntryOverride {
        uid,
        gid,
        uname: name.into(),
        gname: name.into(),
        mode,
        xattrs: Vec::new(),
    }
}

fn base_and_extra(work: &Path) -> (Built, Built) {
    let xattr = EntryOverride {
        xattrs: vec![("user.pkgbuild".into(), b"filetest".to_vec())],
        ..Default::default()
    };
    let base = build(
        work,
        Pkg {
            name: "base",
            origin: "base",
            dirs: vec!["usr/share/common", "etc/private"],
            files: vec![
                ("usr/bin/tool", b"#!/bin/sh\necho tool\n".to_vec()),
                ("usr/bin/suid", b"setuid".to_vec()),
                ("etc/owned", b"owned by 1234".to_vec()),
                ("etc/tagged", b"xattr".to_vec()),
            ],
            symlinks: vec![("usr/bin/tool-link", "tool")],
            hardlinks: vec![("usr/bin/tool-hard", "usr/bin/tool")],
            overrides: vec![
                ("usr/bin/tool", owner(0, 0, "root", Some(0o755))),
                ("usr/bin/suid", owner(0, 0, "root", Some(0o4755))),
                ("etc/owned", owner(1234, 2345, "nosuchuser", Some(0o2640))),
                ("etc/private", owner(0, 0, "root", Some(0o1750))),
                ("etc/tagged", xattr),
            ],
            ..Default::default()
        },
    );
    let extra = build(
        work,
        Pkg {
            name: "extra",
            origin: "extra",
            files: vec![
                ("usr/share/common/extra.txt", b"extra".to_vec()),
                ("usr/share/extra/data", b"data".to_vec()),
            ],
            ..Default::default()
        },
    );
    (base, extra)
}

#[test]
fn installs_files_links_modes_owners_xattrs_with_an_auditable_database() {
    let work = tempfile::tempdir().unwrap();
    let (base, extra) = base_and_extra(work.path());
    let hello = hello();
    let root = work.path().join("root");
    fs::create_dir(&root).unwrap();
    let s = setup();
    let mut calls = Calls::new();
    let report = install(
        &root,
        &packages(&[&base, &extra, &hello]),
        &s.get(),
        &mut recorder(&mut calls),
    )
    .unwrap();
    eprintln!("{report:?}");
    assert_eq!(report.packages, 3);
    assert_eq!(report.scripts_run, 1);
    assert_eq!(
        calls,
        [(
            "hello".to_string(),
            "post-install".to_string(),
            vec!["1.0-r0".to_string()]
        )]
    );
    // base: 4 files + symlink + hardlink; extra: 2; hello: 3.
    assert_eq!(report.files, 11);
    assert!(!root.join("lib/apk/exec/hello-1.0-r0.post-install").exists());

    let meta = |p: &str| fs::symlink_metadata(root.join(p)).unwrap();
    assert_eq!(
        fs::read(root.join("usr/bin/tool")).unwrap(),
        b"#!/bin/sh\necho tool\n"
    );
    assert_eq!(meta("usr/bin/tool").mode() & 0o7777, 0o755);
    assert_eq!(meta("usr/bin/tool").mtime(), MTIME as i64);
    assert_eq!(meta("usr/bin/tool-hard").ino(), meta("usr/bin/tool").ino());
    assert_eq!(
        fs::read_link(root.join("usr/bin/tool-link")).unwrap(),
        Path::new("tool")
    );
    assert_eq!(meta("usr/bin/suid").mode() & 0o7777, 0o4755, "setuid kept");
    assert_eq!(meta("etc/owned").mode() & 0o7777, 0o2640, "setgid kept");
    assert_eq!(meta("etc/private").mode() & 0o7777, 0o1750, "sticky dir");
    assert_eq!(meta("usr/share/hello").mode() & 0o7777, 0o750);
    if as_root() {
        assert_eq!(
            (meta("etc/owned").uid(), meta("etc/owned").gid()),
            (1234, 2345)
        );
        assert!(report
            .warnings
            .iter()
            .all(|w| !w.contains("not running as root")));
    } else {
        assert!(report
            .warnings
            .iter()
            .any(|w| w.contains("not running as root")));
    }
    let xattrs = user_xattrs_supported(work.path());
    if xattrs {
        assert_eq!(
            lgetxattr(&root.join("etc/tagged"), "user.pkgbuild").as_deref(),
            Some(&b"filetest"[..])
        );
    } else {
        eprintln!("this filesystem has no user xattrs: only the database hash is checked");
    }
    assert_eq!(
        fs::read(root.join("usr/share/common/extra.txt")).unwrap(),
        b"extra"
    );

    // The database, parsed back and audited against the tree.
    let db = read_db(&root);
    assert_eq!(db.len(), 3);
    assert_eq!(db[2].fields[&'C'], "Q1nO7CmxdGHJEmoneupOUkkhqAtxk=");
    assert_eq!(db[2].fields[&'P'], "hello");
    assert_eq!(db[2].fields[&'V'], "1.0-r0");
    assert_eq!(db[0].fields[&'o'], "base");
    let shared: Vec<&str> = db
        .iter()
        .flat_map(|p| p.dirs.iter())
        .filter(|d| d.path == "usr/share/common")
        .map(|d| d.path.as_str())
        .collect();
    assert_eq!(shared.len(), 2, "both packages own the shared directory");
    let names = ["user.pkgbuild"];
    let checked = if xattrs {
        audit(&root, &db, &names)
    } else {
        audit(&root, &db, &[])
    };
    assert!(checked >= 20, "audited {checked} paths");
    let tagged = db[0]
        .dirs
        .iter()
        .flat_map(|d| d.files.iter())
        .find(|f| f.name == "tagged")
        .unwrap();
    assert!(tagged.acl.as_deref().unwrap().starts_with("0:0:644:Q1"));
    let hard = db[0].dirs.iter().find(|d| d.path == "usr/bin").unwrap();
    let z = |n: &str| {
        hard.files
            .iter()
            .find(|f| f.name == n)
            .unwrap()
            .csum
            .clone()
    };
    assert_eq!(
        z("tool-hard"),
        z("tool"),
        "a hard link carries its target's checksum"
    );

    // The other database and etc/apk files.
    let scripts = fs::read(root.join("lib/apk/db/scripts.tar")).unwrap();
    let mut ar = tar::Archive::new(&scripts[..]);
    let names: Vec<String> = ar
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        ["hello-1.0-r0.Q1nO7CmxdGHJEmoneupOUkkhqAtxk=.post-install"]
    );
    assert_eq!(fs::read(root.join("lib/apk/db/triggers")).unwrap(), b"");
    assert_eq!(fs::read(root.join("lib/apk/db/lock")).unwrap(), b"");
    assert_eq!(
        fs::read_to_string(root.join("etc/apk/world")).unwrap(),
        "base\nextra\n"
    );
    assert_eq!(
        fs::read_to_string(root.join("etc/apk/repositories")).unwrap(),
        "https://example.org/repo\n"
    );
    assert_eq!(
        fs::read_to_string(root.join("etc/apk/arch")).unwrap(),
        "x86_64\n"
    );
    assert_eq!(
        fs::read(root.join("etc/apk/keys/test-5f3a.rsa.pub")).unwrap(),
        b"-----BEGIN PUBLIC KEY-----\n"
    );
    let leftovers: Vec<_> = fs::read_dir(root.join("lib/apk/db"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n.to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn conflicts_fail_naming_both_unless_replaced_same_origin_or_same_content() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let file = |name: &'static str, origin: &'static str, content: &str, replaces: &[&str]| Pkg {
        name,
        origin,
        files: vec![("usr/bin/x", content.as_bytes().to_vec())],
        replaces: replaces.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    };
    let a = build(w, file("a", "a", "A", &[]));
    let b = build(w, file("b", "b", "B", &[]));
    let b_replaces = build(w, file("b-replaces", "b", "B", &["a<2"]));
    let c_origin = build(w, file("c-origin", "a", "C", &[]));
    let d_same = build(w, file("d-same", "d", "A", &[]));
    let s = setup();
    let fresh = |n: &str| {
        let r = w.join(n);
        fs::create_dir(&r).unwrap();
        r
    };
    let mut calls = Calls::new();

    let err = install(
        &fresh("r1"),
        &packages(&[&a, &b]),
        &s.get(),
        &mut recorder(&mut calls),
    )
    .unwrap_err();
    assert!(matches!(err, InstallError::Conflict { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("usr/bin/x") && msg.contains("a-1.0-r0") && msg.contains("b-1.0-r0"),
        "{msg}"
    );

    for (taker, content) in [(&b_replaces, "B"), (&c_origin, "C"), (&d_same, "A")] {
        let root = fresh(&format!("r-{}", taker.entry.info.name));
        install(
            &root,
            &packages(&[&a, taker]),
            &s.get(),
            &mut recorder(&mut calls),
        )
        .unwrap();
        assert_eq!(fs::read_to_string(root.join("usr/bin/x")).unwrap(), content);
        let db = read_db(&root);
        let owns = |p: &DbPkg| p.dirs.iter().any(|d| d.files.iter().any(|f| f.name == "x"));
        assert!(
            !owns(&db[0]),
            "{}: the old owner lost the file",
            taker.entry.info.name
        );
        assert!(owns(&db[1]));
        assert_eq!(audit(&root, &db, &[]), 5, "usr, usr/bin twice, and x");
        if taker.entry.info.name == "b-replaces" {
            assert_eq!(db[1].fields[&'r'], "a<2");
        }
    }
}

#[test]
fn refuses_what_apk_refuses_and_packages_that_are_not_the_indexed_ones() {
    let work = tempfile::tempdir().unwrap();
    let s = setup();
    let mut calls = Calls::new();
    let rejected = util::testdata::rejected_dir();
    for (file, needle) in [
        ("no_file_csum.apk", "without an APK-TOOLS.checksum.SHA1"),
        ("no_parent_dir.apk", "no entry for its directory `usr/bin/`"),
        ("bad_datahash.apk", "datahash mismatch"),
    ] {
        let path = rejected.join(file);
        let entry = IndexEntry::from_package(&path).unwrap();
        let root = work.path().join(file);
        fs::create_dir(&root).unwrap();
        let pkgs = [Package {
            path: &path,
            entry: &entry,
            repository: "rejected",
        }];
        let err = install(&root, &pkgs, &s.get(), &mut recorder(&mut calls)).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("hello-1.0-r0") && msg.contains(needle),
            "{file}: {msg}"
        );
    }
    // A file whose control member is not the one its index record names.
    let hello = hello();
    let (base, _) = base_and_extra(work.path());
    let root = work.path().join("swapped");
    fs::create_dir(&root).unwrap();
    let pkgs = [Package {
        path: &base.path,
        entry: &hello.entry,
        repository: "swapped-repo",
    }];
    let err = install(&root, &pkgs, &s.get(), &mut recorder(&mut calls)).unwrap_err();
    assert!(
        matches!(err, InstallError::NotTheIndexedPackage { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("swapped-repo"), "{err}");
    // The root must start empty.
    let err = install(
        &root,
        &packages(&[&hello]),
        &s.get(),
        &mut recorder(&mut calls),
    );
    assert!(
        err.is_ok(),
        "the failed install left nothing behind? {err:?}"
    );
    let again = install(
        &root,
        &packages(&[&hello]),
        &s.get(),
        &mut recorder(&mut calls),
    );
    assert!(matches!(again, Err(InstallError::RootNotEmpty { .. })));
}

// ---------------------------------------------------------------------------
// Scripts

/// A package holding the host's `/bin/sh` and the libraries it loads, at
/// the same paths, so scripts can run with only the guest root as `/`.
fn shell_package(work: &Path) -> Built {
    let sh = fs::canonicalize("/bin/sh").unwrap();
    let ldd = Command::new("ldd").arg(&sh).output().unwrap();
    let mut copies = vec![("/bin/sh".to_string(), sh.clone())];
    for line in String::from_utf8_lossy(&ldd.stdout).lines() {
        let lib = match line.split_once("=>") {
            Some((_, rest)) => rest.split_whitespace().next(),
            None => line.split_whitespace().next(),
        };
        if let Some(lib) = lib.filter(|l| l.starts_with('/')) {
            copies.push((lib.to_string(), PathBuf::from(lib)));
        }
    }
    let mut dirs: Vec<&'static str> = Vec::new();
    for (guest, _) in &copies {
        let parent = Path::new(guest)
            .parent()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        dirs.push(Box::leak(
            parent.trim_start_matches('/').to_string().into_boxed_str(),
        ));
    }
    build(
        work,
        Pkg {
            name: "sh",
            origin: "sh",
            dirs,
            copies,
            files: vec![("etc/.keep", Vec::new())],
            ..Default::default()
        },
    )
}

fn bwrap_runner(calls: &mut Calls) -> impl FnMut(&ScriptRun) -> Result<(), String> + '_ {
    |s: &ScriptRun| {
        calls.push((s.package.into(), s.kind.into(), s.args.clone()));
        let bwrap = pkgbuild::sandbox::bwrap::find_bwrap().ok_or("no bwrap")?;
        let out = Command::new(bwrap)
            .arg("--bind")
            .arg(s.root)
            .args(["/", "--proc", "/proc", "--dev", "/dev", "--die-with-parent"])
            .arg(s.guest_path)
            .args(&s.args)
            .env_clear()
            .env("PATH", "/bin")
            .output()
            .map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "{}: {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
    }
}

#[test]
fn scripts_and_triggers_run_with_the_root_as_slash() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let real = util::bwrap_or_skip();
    let shell = shell_package(w);
    let p = build(
        w,
        Pkg {
            name: "p",
            origin: "p",
            files: vec![("usr/share/p/data", b"p".to_vec())],
            scripts: vec![
                (
                    Script::PreInstall,
                    "#!/bin/sh\n[ -e /usr/share/p/data ] && exit 9\necho \"$1\" > /etc/pre-ran\n"
                        .into(),
                ),
                (
                    Script::PostInstall,
                    "#!/bin/sh\n[ -e /usr/share/p/data ] || exit 8\necho \"$1\" > /etc/post-ran\n"
                        .into(),
                ),
            ],
            ..Default::default()
        },
    );
    let t = build(
        w,
        Pkg {
            name: "t",
            origin: "t",
            dirs: vec!["usr/share"],
            triggers: vec!["/usr/share/*".into(), "/nonexistent".into()],
            scripts: vec![(
                Script::Trigger,
                "#!/bin/sh\necho \"$@\" > /etc/trigger-args\n".into(),
            )],
            ..Default::default()
        },
    );
    let q = build(
        w,
        Pkg {
            name: "q",
            origin: "q",
            files: vec![("usr/share/q/file", b"q".to_vec())],
            ..Default::default()
        },
    );
    let fail = build(
        w,
        Pkg {
            name: "fails",
            origin: "fails",
            files: vec![("usr/share/fails/x", b"x".to_vec())],
            scripts: vec![(
                Script::PostInstall,
                "#!/bin/sh\necho broken >&2\nexit 3\n".into(),
            )],
            ..Default::default()
        },
    );
    let s = setup();
    let root = w.join("root");
    fs::create_dir(&root).unwrap();
    let mut calls = Calls::new();
    let pkgs = packages(&[&shell, &t, &p, &q]);
    let report = if real {
        install(&root, &pkgs, &s.get(), &mut bwrap_runner(&mut calls)).unwrap()
    } else {
        install(&root, &pkgs, &s.get(), &mut recorder(&mut calls)).unwrap()
    };
    assert_eq!(report.scripts_run, 3);
    let v = vec!["1.0-r0".to_string()];
    assert_eq!(
        calls,
        [
            ("p".into(), "pre-install".into(), v.clone()),
            ("p".into(), "post-install".into(), v.clone()),
            (
                "t".into(),
                "trigger".into(),
                vec!["/usr/share/p".to_string(), "/usr/share/q".to_string()]
            ),
        ]
    );
    let triggers = fs::read_to_string(root.join("lib/apk/db/triggers")).unwrap();
    assert_eq!(
        triggers,
        format!("{} /usr/share/* /nonexistent\n", t.entry.checksum_field())
    );
    if real {
        let read = |p: &str| fs::read_to_string(root.join(p)).unwrap();
        assert_eq!(
            read("etc/pre-ran"),
            "1.0-r0\n",
            "pre-install ran before the files"
        );
        assert_eq!(
            read("etc/post-ran"),
            "1.0-r0\n",
            "post-install ran after them"
        );
        assert_eq!(read("etc/trigger-args"), "/usr/share/p /usr/share/q\n");
        assert!(!root.join("lib/apk/exec/p-1.0-r0.post-install").exists());
    }

    let root = w.join("root-fail");
    fs::create_dir(&root).unwrap();
    let pkgs = packages(&[&shell, &fail]);
    let err = if real {
        install(&root, &pkgs, &s.get(), &mut bwrap_runner(&mut calls)).unwrap_err()
    } else {
        install(&root, &pkgs, &s.get(), &mut |_: &ScriptRun| {
            Err("exit status: 3".to_string())
        })
        .unwrap_err()
    };
    let msg = err.to_string();
    assert!(
        matches!(err, InstallError::Script { .. }) && msg.contains("fails-1.0-r0"),
        "{msg}"
    );
    assert!(msg.contains("post-install") && msg.contains('3'), "{msg}");
}

// ---------------------------------------------------------------------------
// Templates

/// Everything `copy_tree` promises to keep, per path, with hard links
/// named by their group's first path. The database and `etc/apk` files
/// are written at install time, so their mtimes differ between two
/// installs; `all_mtimes` includes them (for copies of one template).
fn snapshot(root: &Path, all_mtimes: bool) -> BTreeMap<String, String> {
    fn walk(
        base: &Path,
        dir: &Path,
        out: &mut BTreeMap<String, String>,
        inodes: &mut BTreeMap<u64, String>,
        all_mtimes: bool,
    ) {
        let mut entries: Vec<_> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        entries.sort();
        for p in entries {
            let rel = p.strip_prefix(base).unwrap().to_string_lossy().into_owned();
            let m = fs::symlink_metadata(&p).unwrap();
            let body = if m.is_dir() {
                walk(base, &p, out, inodes, all_mtimes);
                "dir".to_string()
            } else if m.file_type().is_symlink() {
                format!("-> {}", fs::read_link(&p).unwrap().display())
            } else {
                let first = inodes.entry(m.ino()).or_insert_with(|| rel.clone()).clone();
                let written_now = rel.starts_with("lib/apk/db/") || rel.starts_with("etc/apk/");
                let mtime = if all_mtimes || !written_now {
                    m.mtime()
                } else {
                    0
                };
                format!(
                    "{:x} link:{first} mtime:{mtime}",
                    Sha1::digest(fs::read(&p).unwrap())
                )
            };
            let x =
                lgetxattr(&p, "user.pkgbuild").map(|v| String::from_utf8_lossy(&v).into_owned());
            out.insert(
                rel,
                format!(
                    "{body} mode:{:o} own:{}:{} x:{x:?}",
                    m.mode() & 0o7777,
                    m.uid(),
                    m.gid()
                ),
            );
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out, &mut BTreeMap::new(), all_mtimes);
    out
}

#[test]
fn template_is_built_once_then_copied_never_shared() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let (base, extra) = base_and_extra(w);
    let hello = hello();
    let s = setup();
    let templates = w.join("templates");
    let pkgs = packages(&[&base, &extra, &hello]);
    let fresh = |n: &str| {
        let r = w.join(n);
        fs::create_dir(&r).unwrap();
        r
    };
    let (plain, r1, r2) = (fresh("plain"), fresh("r1"), fresh("r2"));
    let mut calls = Calls::new();
    let direct = install(&plain, &pkgs, &s.get(), &mut recorder(&mut calls)).unwrap();

    // Two builds at once: one builds the template, the other waits for it.
    let results: Vec<(Calls, Result<InstallReport, String>)> = std::thread::scope(|scope| {
        let handles: Vec<_> = [&r1, &r2]
            .into_iter()
            .map(|root| {
                let (pkgs, s, templates) = (&pkgs, &s, &templates);
                scope.spawn(move || {
                    let mut calls = Calls::new();
                    let r =
                        install_cached(templates, root, pkgs, &s.get(), &mut recorder(&mut calls))
                            .map_err(|e| e.to_string());
                    (calls, r)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let built: Vec<_> = results
        .iter()
        .filter(|(_, r)| !r.as_ref().unwrap().from_template)
        .collect();
    assert_eq!(built.len(), 1, "exactly one caller built the template");
    assert_eq!(built[0].0.len(), 1, "its scripts ran once, in the template");
    let copied: Vec<_> = results
        .iter()
        .filter(|(_, r)| r.as_ref().unwrap().from_template)
        .collect();
    assert!(copied[0].0.is_empty(), "a copy runs no scripts");
    let mut from_copy = copied[0].1.clone().unwrap();
    from_copy.from_template = false;
    assert_eq!(from_copy, direct, "the stored report is the build's");

    assert_eq!(snapshot(&r1, false), snapshot(&plain, false));

    let dirs: Vec<PathBuf> = fs::read_dir(&templates)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    assert_eq!(
        dirs.len(),
        1,
        "one finished template, no build leftovers: {dirs:?}"
    );
    let template = &dirs[0];
    let want = snapshot(template, true);
    assert_eq!(snapshot(&r1, true), want);
    assert_eq!(snapshot(&r2, true), want);
    let ino = |p: &Path| fs::metadata(p.join("usr/bin/tool")).unwrap().ino();
    assert_ne!(
        ino(&r1),
        ino(template),
        "roots are copies, not the template"
    );
    assert_ne!(ino(&r1), ino(&r2));
    // A build scribbling on its root touches neither the template nor others.
    fs::write(r1.join("usr/bin/tool"), b"changed").unwrap();
    assert_eq!(snapshot(template, true), want);
    assert_eq!(snapshot(&r2, true), want);
    let err = install_cached(&templates, &r1, &pkgs, &s.get(), &mut recorder(&mut calls));
    assert!(matches!(err, Err(InstallError::RootNotEmpty { .. })));
}

/// Test-only timing of a toolchain-sized set (~150 MB, ~3,000 files):
/// a direct install, the first cached install (builds the template) and
/// a second (copies it). Printed, never asserted. Slow to set up, so run
/// it on request: `cargo test --test install -- --ignored --nocapture`.
#[test]
#[ignore]
fn timing_of_a_toolchain_sized_root() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let mut built = Vec::new();
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let names = [
        "gcc",
        "binutils",
        "musl",
        "musl-dev",
        "make",
        "busybox",
        "libstdcxx",
        "libgcc",
        "gmp",
        "mpfr",
        "isl",
        "zlib",
        "openssl",
        "perl",
        "python3",
    ];
    let t0 = std::time::Instant::now();
    for name in names {
        let mut files = Vec::new();
        for i in 0..200 {
            // Binaries compress about 3:1; so does half-random, half-zero data.
            let len = if i % 50 == 0 {
                1_500_000
            } else {
                20_000 + (i * 997) % 40_000
            };
            let mut data = vec![0u8; len];
            for chunk in data.chunks_mut(16).step_by(2) {
                for b in chunk {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    *b = seed as u8;
                }
            }
            let path: &'static str =
                Box::leak(format!("usr/lib/{name}/{}/f{i}", i % 10).into_boxed_str());
            files.push((path, data));
        }
        built.push(build(
            w,
            Pkg {
                name: Box::leak(name.to_string().into_boxed_str()),
                origin: "",
                files,
                ..Default::default()
            },
        ));
    }
    eprintln!(
        "timing: writing {} packages: {:.2}s",
        built.len(),
        t0.elapsed().as_secs_f64()
    );
    let refs: Vec<&Built> = built.iter().collect();
    let pkgs = packages(&refs);
    let s = setup();
    let mut calls = Calls::new();
    let time = |what: &str, f: &mut dyn FnMut() -> InstallReport| {
        let t = std::time::Instant::now();
        let r = f();
        eprintln!(
            "timing: {what}: {:.3}s ({} files, {} MB)",
            t.elapsed().as_secs_f64(),
            r.files,
            r.bytes >> 20
        );
    };
    let fresh = |n: &str| {
        let r = w.join(n);
        fs::create_dir(&r).unwrap();
        r
    };
    let (a, b, c) = (fresh("a"), fresh("b"), fresh("c"));
    let templates = w.join("templates");
    time("install", &mut || {
        install(&a, &pkgs, &s.get(), &mut recorder(&mut calls)).unwrap()
    });
    time("install_cached, building the template", &mut || {
        install_cached(&templates, &b, &pkgs, &s.get(), &mut recorder(&mut calls)).unwrap()
    });
    time("install_cached, copying the template", &mut || {
        install_cached(&templates, &c, &pkgs, &s.get(), &mut recorder(&mut calls)).unwrap()
    });
}

#[test]
fn symlinked_directories_are_followed_inside_the_root_only() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let marker = format!("pkgbuild-install-escape-{}", std::process::id());
    let layout = build(
        w,
        Pkg {
            name: "layout",
            dirs: vec!["usr/lib"],
            symlinks: vec![("lib", "usr/lib"), ("escape", "/"), ("up", "../../..")],
            ..Default::default()
        },
    );
    let tmp_file: &'static str = Box::leak(format!("escape/tmp/{marker}").into_boxed_str());
    let up_file: &'static str = Box::leak(format!("up/tmp/{marker}-up").into_boxed_str());
    let user = build(
        w,
        Pkg {
            name: "user",
            dirs: vec!["lib", "escape/tmp", "up/tmp"],
            files: vec![
                ("lib/libuser.so", b"lib".to_vec()),
                (tmp_file, b"inside".to_vec()),
                (up_file, b"inside too".to_vec()),
            ],
            ..Default::default()
        },
    );
    let clash = build(
        w,
        Pkg {
            name: "clash",
            dirs: vec!["usr/lib"],
            files: vec![("usr/lib/libuser.so", b"other".to_vec())],
            ..Default::default()
        },
    );
    let s = setup();
    let root = w.join("root");
    fs::create_dir(&root).unwrap();
    let mut calls = Calls::new();
    install(
        &root,
        &packages(&[&layout, &user]),
        &s.get(),
        &mut recorder(&mut calls),
    )
    .unwrap();
    assert_eq!(fs::read(root.join("usr/lib/libuser.so")).unwrap(), b"lib");
    assert_eq!(fs::read(root.join("tmp").join(&marker)).unwrap(), b"inside");
    assert_eq!(
        fs::read(root.join("tmp").join(format!("{marker}-up"))).unwrap(),
        b"inside too"
    );
    assert!(
        !Path::new("/tmp").join(&marker).exists(),
        "wrote outside the root"
    );
    assert!(!Path::new("/tmp").join(format!("{marker}-up")).exists());
    // The database keeps the package's own names.
    let db = read_db(&root);
    assert!(db[1]
        .dirs
        .iter()
        .any(|d| d.path == "lib" && d.files[0].name == "libuser.so"));

    // The same file reached by another name is still a conflict.
    let root = w.join("root-clash");
    fs::create_dir(&root).unwrap();
    let err = install(
        &root,
        &packages(&[&layout, &user, &clash]),
        &s.get(),
        &mut recorder(&mut calls),
    )
    .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("clash-1.0-r0") && msg.contains("user-1.0-r0"),
        "{msg}"
    );
}
