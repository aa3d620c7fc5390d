//! Linters over a package's staged tree, after melange's: each looks for one kind
//! of content a distribution package should not ship (files in `/dev`, temp dirs,
//! world-writable files, unstripped or foreign-architecture ELF, …).
//!
//! The linters work on the one listing of the tree ([`StagedTree`], shared with
//! the dependency scanner): symlinks are entries of their own, never followed.
//! File contents are read only where a linter needs them and then in bounded
//! pieces: ELF headers and section tables through a read cache, hashes streamed.
//! Findings name the file (a path relative to the root, `/`-separated) and come out
//! sorted by linter order, then path, so the output is deterministic.
//!
//! Where we differ from melange, on purpose:
//! - `strip` looks for any `.debug_*`/`.zdebug*` section in executables and shared
//!   objects (melange only looks for sections named exactly `.debug`). A symbol table
//!   alone is not flagged: the `strip` pipeline removes debug information only
//!   (`strip -g`, melange's default), so flagging `.symtab` would fire on every
//!   properly stripped package.
//! - `binaryarch` compares each ELF's machine with the package's own architecture
//!   (melange only accepts x86_64 and aarch64 everywhere).
//! - `sbom` accepts only our own `<package>-*.spdx.json` in `var/lib/db/sbom/`.
//! - `infodir` flags the `usr/share/info/dir` index file itself.
//! - Linters melange ignores by default (`documentation`, `empty`) are warnings here:
//!   there is no "ignored" level, the recipe disables them instead.

use crate::arch::Arch;
use object::{Object, ObjectKind, ObjectSection};
use regex::Regex;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::io::{self, Read};
use std::path::Path;

use super::tree::{Entry, Kind, StagedTree};
use std::sync::LazyLock;

/// How serious a finding is: `Required` fails the build, `Warning` is reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Level {
    Required,
    Warning,
}

/// One problem found in the tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub linter: &'static str,
    pub level: Level,
    /// The offending path relative to the root; `None` for whole-package findings.
    pub path: Option<String>,
    pub message: String,
}

/// What the linters need to know about the package.
#[derive(Debug, Clone, Copy)]
pub struct LintContext<'a> {
    pub package_name: &'a str,
    /// Linter names turned off (recipe `checks.disabled`).
    pub disabled: &'a [String],
    /// The package's architecture, any spelling `Arch::parse` takes (`noarch` skips `binaryarch`).
    pub arch: &'a str,
}

/// Every linter: name, default level, and what to do about a finding.
pub const LINTERS: &[(&str, Level, &str)] = &[
    ("binaryarch", Level::Warning, "ELF file built for another architecture than the package's; build for the target or drop the file"),
    ("dev", Level::Required, "files in /dev; create device nodes with udev at run time instead"),
    ("documentation", Level::Warning, "documentation files; move them to a -doc subpackage or remove them"),
    ("duplicate", Level::Warning, "identical files (same name and content) in several places; keep one and symlink the others"),
    ("empty", Level::Warning, "the package has no files; disable this linter if it is meant to be empty (a meta package)"),
    ("infodir", Level::Required, "usr/share/info/dir is regenerated on install and clashes between packages; remove it (split/infodir)"),
    ("libtool", Level::Warning, "libtool archives (.la) are useless at run time; remove them in the pipeline"),
    ("maninfo", Level::Warning, "man or info pages; move them to a -doc subpackage"),
    ("object", Level::Warning, "intermediate object files (.o); remove them"),
    ("opt", Level::Warning, "files under /opt; install to /usr, or name the package -compat"),
    ("python/docs", Level::Warning, "a docs directory at the top of Python site-packages; remove it"),
    ("python/test", Level::Warning, "a tests directory at the top of Python site-packages; remove it"),
    ("rpath", Level::Required, "RPATH/RUNPATH pointing into the build workspace, relative, or empty (the current directory): a load-path hijack; configure without it or patchelf --remove-rpath"),
    ("sbom", Level::Warning, "files in var/lib/db/sbom other than the package's own SBOM; remove them"),
    ("setuidgid", Level::Required, "setuid, setgid or sticky file; drop the bit or disable this linter knowingly"),
    ("srv", Level::Warning, "files under /srv; install elsewhere, or name the package -compat"),
    ("staticarchive", Level::Warning, "static archives (.a) outside a -dev or -static package; move or remove them"),
    ("strip", Level::Warning, "unstripped ELF executable or library (symbol table or debug sections); strip it"),
    ("tempdir", Level::Required, "files in tmp/, var/tmp/, run/ or var/run/; remove them in the pipeline"),
    ("usrlocal", Level::Warning, "files under /usr/local; install to /usr, or name the package -compat"),
    ("usrmerge", Level::Warning, "paths in /bin, /sbin, /lib, /lib64 or /usr/sbin; install to /usr/bin or /usr/lib"),
    ("varempty", Level::Required, "files in /var/empty, which must stay empty; remove them"),
    ("worldwrite", Level::Required, "world-writable file; fix its permissions"),
];

/// Names in `names` that are not linters (for validating `checks.disabled`).
pub fn unknown_linters(names: &[String]) -> Vec<String> {
    names
        .iter()
        .filter(|n| !LINTERS.iter().any(|(l, _, _)| l == n))
        .cloned()
        .collect()
}

/// Duplicates smaller than this are not worth a symlink (melange's threshold).
const DUPLICATE_MIN_SIZE: u64 = 1024;
/// Where installed SBOMs live; other linters ignore it.
const SBOM_DIR: &str = "var/lib/db/sbom";

fn extension(e: &Entry) -> Option<&str> {
    let name = e.file_name();
    let dot = name.rfind('.')?;
    (dot > 0).then(|| &name[dot + 1..])
}

fn is_shared_object(e: &Entry) -> bool {
    let name = e.file_name();
    name.ends_with(".so") || name.contains(".so.")
}

/// Runs every enabled linter over a staged tree, walked once by the caller.
pub fn lint_tree(tree: &StagedTree, ctx: &LintContext) -> io::Result<Vec<Finding>> {
    let mut findings = Vec::new();
    for &(name, level, _) in LINTERS {
        if ctx.disabled.iter().any(|d| d == name) {
            continue;
        }
        let mut report = |path: Option<&str>, message: String| {
            findings.push(Finding {
                linter: name,
                level,
                path: path.map(str::to_string),
                message,
            })
        };
        run_linter(name, tree, ctx, &mut report)?;
    }
    // Linters already run in table order; within one, order by path.
    let order = |name: &str| LINTERS.iter().position(|(l, _, _)| *l == name);
    findings.sort_by(|a, b| (order(a.linter), &a.path).cmp(&(order(b.linter), &b.path)));
    Ok(findings)
}

type Report<'r> = dyn FnMut(Option<&str>, String) + 'r;

fn run_linter(
    name: &str,
    tree: &StagedTree,
    ctx: &LintContext,
    report: &mut Report,
) -> io::Result<()> {
    let entries = tree.entries();
    let pkg = ctx.package_name;
    let compat = pkg.ends_with("-compat");
    let doc = pkg.ends_with("-doc");
    let files = || {
        entries
            .iter()
            .filter(|e| e.kind != Kind::Dir && !e.under(SBOM_DIR))
    };
    // Non-directories below any of `dirs`, with one message.
    let mut paths_under = |dirs: &[&str], message: &str| {
        for e in files().filter(|e| dirs.iter().any(|d| e.under(d))) {
            report(Some(&e.path), message.to_string());
        }
    };
    match name {
        "dev" => paths_under(&["dev"], "package writes to /dev"),
        "opt" if !compat => paths_under(&["opt"], "package writes to /opt"),
        "srv" if !compat => paths_under(&["srv"], "package writes to /srv"),
        "usrlocal" if !compat => paths_under(&["usr/local"], "package writes to /usr/local"),
        "varempty" => {
            for e in entries.iter().filter(|e| e.under("var/empty")) {
                report(Some(&e.path), "package writes to /var/empty".into());
            }
        }
        "tempdir" => {
            for e in entries.iter() {
                let temp = e.kind != Kind::Dir && (e.under("tmp") || e.under("var/tmp"));
                if temp || e.under("run") || e.under("var/run") {
                    report(
                        Some(&e.path),
                        "package writes to a temporary directory".into(),
                    );
                }
            }
        }
        "infodir" => {
            for e in entries
                .iter()
                .filter(|e| e.path == "usr/share/info/dir" || e.under("usr/share/info/dir"))
            {
                report(
                    Some(&e.path),
                    "package ships the info directory index".into(),
                );
            }
        }
        "libtool" => by_extension(files(), "la", "libtool archive", report),
        "object" => by_extension(files(), "o", "intermediate object file", report),
        "staticarchive" if !pkg.ends_with("-dev") && !pkg.ends_with("-static") => {
            by_extension(files(), "a", "static archive", report)
        }
        "documentation" if !doc => {
            for e in files().filter(|e| e.kind == Kind::File && is_documentation(e)) {
                report(
                    Some(&e.path),
                    "documentation file in a non-doc package".into(),
                );
            }
        }
        "maninfo" if !doc => {
            let dirs = [
                "usr/share/man",
                "usr/local/share/man",
                "usr/man",
                "usr/share/info",
                "usr/local/share/info",
            ];
            paths_under(&dirs, "man or info page in a non-doc package");
        }
        "setuidgid" => {
            for e in entries.iter().filter(|e| e.kind == Kind::File) {
                let bits: Vec<&str> = [(0o4000, "setuid"), (0o2000, "setgid"), (0o1000, "sticky")]
                    .iter()
                    .filter(|(bit, _)| e.mode & bit != 0)
                    .map(|&(_, word)| word)
                    .collect();
                if !bits.is_empty() {
                    let msg = format!(
                        "file is {} (mode {:04o})",
                        bits.join(" and "),
                        e.mode & 0o7777
                    );
                    report(Some(&e.path), msg);
                }
            }
        }
        "worldwrite" => {
            for e in entries
                .iter()
                .filter(|e| e.kind == Kind::File && e.mode & 0o002 != 0)
            {
                let what = if e.mode & 0o111 != 0 {
                    "executable"
                } else {
                    "file"
                };
                let msg = format!("world-writable {what} (mode {:04o})", e.mode & 0o7777);
                report(Some(&e.path), msg);
            }
        }
        "usrmerge" => {
            let dirs = ["bin", "sbin", "lib", "lib64", "usr/sbin"];
            for e in entries.iter().filter(|e| !e.under(SBOM_DIR)) {
                // A top-level `bin -> usr/bin` symlink is what usrmerge wants.
                let top = dirs.contains(&e.path.as_str()) && e.kind != Kind::Symlink;
                let below = e.kind != Kind::Dir && dirs.iter().any(|d| e.under(d));
                if top || below {
                    report(
                        Some(&e.path),
                        "path violates usrmerge (use /usr/bin, /usr/lib)".into(),
                    );
                }
            }
        }
        "empty" if files().next().is_none() => {
            report(None, format!("package {pkg} contains no files"));
        }
        "python/docs" => python_top_dirs(entries, &["doc", "docs"], "docs", report),
        "python/test" => python_top_dirs(entries, &["test", "tests"], "tests", report),
        "sbom" => {
            let ours = format!("{pkg}-");
            for e in entries.iter().filter(|e| e.under(SBOM_DIR)) {
                let tail = &e.path[SBOM_DIR.len() + 1..];
                let own = e.kind == Kind::File
                    && !tail.contains('/')
                    && tail.starts_with(&ours)
                    && tail.ends_with(".spdx.json");
                if !own {
                    report(
                        Some(&e.path),
                        format!("{SBOM_DIR}/ may hold only {pkg}'s own SBOM"),
                    );
                }
            }
        }
        "strip" | "binaryarch" => elf_linter(name, tree, files(), ctx, report)?,
        "rpath" => rpath_linter(tree, files(), report)?,
        "duplicate" => duplicates(tree, files(), report)?,
        _ => {}
    }
    Ok(())
}

fn by_extension<'e>(
    files: impl Iterator<Item = &'e Entry>,
    ext: &str,
    what: &str,
    report: &mut Report,
) {
    for e in files.filter(|e| extension(e) == Some(ext)) {
        report(Some(&e.path), format!("{what} (.{ext})"));
    }
}

static DOC_NAME: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^(?:README|READ\.?ME|TODO|CREDITS|CHANGELOG|CHANGES|NEWS|HISTORY)(?:\.[A-Za-z]+)?$|\.(?:md|rst|docx?)$")
        .expect("constant regex")
});

fn is_documentation(e: &Entry) -> bool {
    e.under("usr/share/doc") || DOC_NAME.is_match(e.file_name())
}

/// Reports `usr/lib/python3.*/site-packages/<name>` for each `name` in `names`.
fn python_top_dirs(entries: &[Entry], names: &[&str], what: &str, report: &mut Report) {
    for e in entries {
        let mut parts = e.path.split('/');
        let (Some("usr"), Some("lib"), Some(py), Some("site-packages"), Some(top), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            continue;
        };
        if py.starts_with("python3.") && names.contains(&top) {
            report(
                Some(&e.path),
                format!("{what} directory at the top of Python site-packages"),
            );
        }
    }
}

/// Opens `e` as ELF if it starts with the ELF magic; `None` for anything else,
/// including ELF files `object` cannot parse (they are not ours to judge).
fn open_elf(
    tree: &StagedTree,
    e: &Entry,
) -> io::Result<Option<(ObjectKind, object::Architecture, bool)>> {
    let mut file = fs::File::open(tree.abs(&e.rel))?;
    let mut magic = [0u8; 4];
    if file.read_exact(&mut magic).is_err() || magic != *b"\x7fELF" {
        return Ok(None);
    }
    let cache = object::ReadCache::new(file);
    let Ok(obj) = object::File::parse(&cache) else {
        return Ok(None);
    };
    let unstripped = obj.sections().any(|s| {
        s.name()
            .is_ok_and(|n| n.starts_with(".debug") || n.starts_with(".zdebug"))
    });
    Ok(Some((obj.kind(), obj.architecture(), unstripped)))
}

fn elf_machine_matches(arch: Arch, machine: object::Architecture) -> bool {
    use object::Architecture as M;
    match arch {
        Arch::X86_64 => machine == M::X86_64,
        Arch::Aarch64 => machine == M::Aarch64,
        Arch::Armv7 | Arch::Armhf => machine == M::Arm,
        Arch::X86 => machine == M::I386,
        Arch::Ppc64le => machine == M::PowerPc64,
        Arch::S390x => machine == M::S390x,
        Arch::Riscv64 => machine == M::Riscv64,
        Arch::Loongarch64 => machine == M::LoongArch64,
    }
}

fn elf_linter<'e>(
    name: &str,
    tree: &StagedTree,
    files: impl Iterator<Item = &'e Entry>,
    ctx: &LintContext,
    report: &mut Report,
) -> io::Result<()> {
    let target = Arch::parse(ctx.arch);
    if name == "binaryarch" && target.is_none() {
        return Ok(());
    }
    let candidates = files.filter(|e| {
        e.kind == Kind::File && e.size >= 4 && (e.mode & 0o111 != 0 || is_shared_object(e))
    });
    for e in candidates {
        let Some((kind, machine, unstripped)) = open_elf(tree, e)? else {
            continue;
        };
        match (name, target) {
            ("strip", _) => {
                // Relocatable objects (.o, kernel modules) need their symbol table.
                let linked = matches!(kind, ObjectKind::Executable | ObjectKind::Dynamic);
                if linked && unstripped {
                    report(Some(&e.path), "ELF file is not stripped".into());
                }
            }
            (_, Some(arch)) if !elf_machine_matches(arch, machine) => {
                let msg = format!("ELF file is for {machine:?}, the package is {}", arch.apk());
                report(Some(&e.path), msg);
            }
            _ => {}
        }
    }
    Ok(())
}

/// Library search paths the loader would take from the build machine or
/// from wherever the program is started: abuild refuses these too.
fn bad_rpath(entry: &str) -> Option<&'static str> {
    if entry.is_empty() {
        return Some("an empty entry (the current directory)");
    }
    if entry.starts_with("$ORIGIN") || entry.starts_with("${ORIGIN}") {
        return None;
    }
    if !entry.starts_with('/') {
        return Some("a relative directory");
    }
    let build_dirs = [
        "/home/build",
        "/melange-out/",
        "/pkgbuild-ws-",
        "/var/lib/pkgbuild/",
    ];
    if build_dirs
        .iter()
        .any(|d| entry.starts_with(d) || entry.contains(d))
    {
        return Some("the build workspace");
    }
    None
}

fn rpath_linter<'e>(
    tree: &StagedTree,
    files: impl Iterator<Item = &'e Entry>,
    report: &mut Report,
) -> io::Result<()> {
    for e in files.filter(|e| e.kind == Kind::File && e.size >= 4) {
        let Ok(Some(info)) = crate::meta::elf::read(&tree.abs(&e.rel))? else {
            continue;
        };
        for entry in &info.rpath {
            if let Some(why) = bad_rpath(entry) {
                report(Some(&e.path), format!("RPATH {entry:?} names {why}"));
            }
        }
    }
    Ok(())
}

fn is_license_name(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    ["LICENSE", "LICENCE", "COPYING", "NOTICE", "COPYRIGHT"]
        .iter()
        .any(|p| upper.starts_with(p))
}

fn sha256_file(path: &Path) -> io::Result<[u8; 32]> {
    let mut file = fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher.finalize().into())
}

/// Same base name, same size, same SHA-256, different inode: a duplicate.
fn duplicates<'e>(
    tree: &StagedTree,
    files: impl Iterator<Item = &'e Entry>,
    report: &mut Report,
) -> io::Result<()> {
    let mut by_name_size: BTreeMap<(&str, u64), Vec<&Entry>> = BTreeMap::new();
    for e in files.filter(|e| {
        e.kind == Kind::File && e.size >= DUPLICATE_MIN_SIZE && !is_license_name(e.file_name())
    }) {
        by_name_size
            .entry((e.file_name(), e.size))
            .or_default()
            .push(e);
    }
    for group in by_name_size.values().filter(|g| g.len() > 1) {
        let mut seen_inodes = HashSet::new();
        let mut first_by_hash: BTreeMap<[u8; 32], &str> = BTreeMap::new();
        for e in group {
            // Hard links share storage: not a waste.
            if !seen_inodes.insert((e.dev, e.ino)) {
                continue;
            }
            let hash = sha256_file(&tree.abs(&e.rel))?;
            match first_by_hash.get(&hash) {
                Some(first) => report(Some(&e.path), format!("same content as {first}")),
                None => {
                    first_by_hash.insert(hash, &e.path);
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{symlink, PermissionsExt};
    use std::path::PathBuf;
    use std::process::Command;
    use tempfile::TempDir;

    /// A staged tree of (path, content, mode) files; paths ending in `/` are dirs.
    fn tree(files: &[(&str, &[u8], u32)]) -> TempDir {
        let dir = tempfile::tempdir().unwrap();
        for &(path, content, mode) in files {
            let p = dir.path().join(path.trim_end_matches('/'));
            if path.ends_with('/') {
                fs::create_dir_all(&p).unwrap();
            } else {
                fs::create_dir_all(p.parent().unwrap()).unwrap();
                fs::write(&p, content).unwrap();
            }
            fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
        }
        dir
    }

    fn lint_as(dir: &TempDir, pkg: &str, arch: &str, disabled: &[&str]) -> Vec<Finding> {
        let disabled: Vec<String> = disabled.iter().map(|s| s.to_string()).collect();
        let ctx = LintContext {
            package_name: pkg,
            disabled: &disabled,
            arch,
        };
        lint_tree(&StagedTree::walk(dir.path()).unwrap(), &ctx).unwrap()
    }

    fn lint(dir: &TempDir) -> Vec<Finding> {
        lint_as(dir, "hello", "x86_64", &[])
    }

    /// Paths reported by `linter`.
    fn hits(findings: &[Finding], linter: &str) -> Vec<String> {
        findings
            .iter()
            .filter(|f| f.linter == linter)
            .map(|f| f.path.clone().unwrap_or_default())
            .collect()
    }

    const F: u32 = 0o644;
    const X: u32 = 0o755;
    const D: u32 = 0o755;

    #[test]
    fn clean_tree_has_no_findings() {
        let t = tree(&[
            ("usr/bin/", b"", D),
            ("usr/share/hello/data.txt", b"hi", F),
            ("etc/hello.conf", b"x=1", F),
        ]);
        assert_eq!(lint(&t), vec![]);
    }

    #[test]
    fn linter_table_is_sorted_and_unique() {
        let names: Vec<&str> = LINTERS.iter().map(|l| l.0).collect();
        let mut sorted = names.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(names, sorted);
        assert_eq!(
            unknown_linters(&["dev".into(), "nope".into()]),
            vec!["nope".to_string()]
        );
    }

    #[test]
    fn dev_opt_srv_usrlocal_varempty() {
        let t = tree(&[
            ("dev/null", b"", F),
            ("dev/empty-dir/", b"", D),
            ("opt/app/bin", b"x", F),
            ("srv/www/index.html", b"x", F),
            ("usr/local/bin/tool", b"x", X),
            ("var/empty/.keep", b"", F),
        ]);
        let f = lint(&t);
        assert_eq!(hits(&f, "dev"), ["dev/null"]);
        assert_eq!(hits(&f, "opt"), ["opt/app/bin"]);
        assert_eq!(hits(&f, "srv"), ["srv/www/index.html"]);
        assert_eq!(hits(&f, "usrlocal"), ["usr/local/bin/tool"]);
        assert_eq!(hits(&f, "varempty"), ["var/empty/.keep"]);
        let dev = f.iter().find(|f| f.linter == "dev").unwrap();
        assert_eq!(dev.level, Level::Required);
        // -compat packages may use /opt, /srv and /usr/local.
        let f = lint_as(&t, "hello-compat", "x86_64", &[]);
        assert!(hits(&f, "opt").is_empty() && hits(&f, "srv").is_empty());
        assert!(hits(&f, "usrlocal").is_empty());
        assert_eq!(hits(&f, "dev"), ["dev/null"]);
    }

    #[test]
    fn tempdir() {
        let t = tree(&[
            ("tmp/", b"", D),
            ("var/tmp/cache", b"x", F),
            ("tmp/build.log", b"x", F),
            ("run/hello/", b"", D),
            ("var/run/hello.pid", b"1", F),
        ]);
        assert_eq!(
            hits(&lint(&t), "tempdir"),
            [
                "run/hello",
                "tmp/build.log",
                "var/run/hello.pid",
                "var/tmp/cache"
            ]
        );
    }

    #[test]
    fn infodir_libtool_object_staticarchive() {
        let t = tree(&[
            ("usr/share/info/dir", b"index", F),
            ("usr/lib/libhello.la", b"# libtool", F),
            ("usr/lib/hello.o", b"\0", F),
            ("usr/lib/libhello.a", b"!<arch>\n", F),
            ("usr/lib/.a", b"", F),
        ]);
        let f = lint(&t);
        assert_eq!(hits(&f, "infodir"), ["usr/share/info/dir"]);
        assert_eq!(hits(&f, "libtool"), ["usr/lib/libhello.la"]);
        assert_eq!(hits(&f, "object"), ["usr/lib/hello.o"]);
        assert_eq!(hits(&f, "staticarchive"), ["usr/lib/libhello.a"]);
        assert!(hits(&lint_as(&t, "hello-dev", "x86_64", &[]), "staticarchive").is_empty());
        assert!(hits(&lint_as(&t, "hello-static", "x86_64", &[]), "staticarchive").is_empty());
    }

    #[test]
    fn setuidgid_and_worldwrite() {
        let t = tree(&[
            ("usr/bin/su", b"x", 0o4755),
            ("usr/bin/wall", b"x", 0o2755),
            ("usr/share/hello/open", b"x", 0o666),
            ("usr/bin/open-exec", b"x", 0o777),
            ("var/spool/", b"", 0o1777),
        ]);
        let f = lint(&t);
        assert_eq!(hits(&f, "setuidgid"), ["usr/bin/su", "usr/bin/wall"]);
        let su = f
            .iter()
            .find(|f| f.path.as_deref() == Some("usr/bin/su"))
            .unwrap();
        assert!(
            su.message.contains("setuid") && su.message.contains("4755"),
            "{}",
            su.message
        );
        assert_eq!(
            hits(&f, "worldwrite"),
            ["usr/bin/open-exec", "usr/share/hello/open"]
        );
        let ex = f
            .iter()
            .find(|f| f.linter == "worldwrite" && f.path.as_deref() == Some("usr/bin/open-exec"))
            .unwrap();
        assert!(ex.message.contains("executable"));
    }

    #[test]
    fn usrmerge() {
        let t = tree(&[
            ("bin/sh", b"x", X),
            ("sbin/", b"", D),
            ("lib64/ld.so", b"x", X),
            ("usr/sbin/daemon", b"x", X),
            ("usr/bin/ok", b"x", X),
        ]);
        symlink("usr/lib", t.path().join("lib")).unwrap();
        let f = lint(&t);
        assert_eq!(
            hits(&f, "usrmerge"),
            [
                "bin",
                "bin/sh",
                "lib64",
                "lib64/ld.so",
                "sbin",
                "usr/sbin",
                "usr/sbin/daemon"
            ]
        );
    }

    #[test]
    fn empty_package() {
        let t = tree(&[("usr/share/", b"", D)]);
        let f = lint(&t);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].linter, "empty");
        assert_eq!(f[0].path, None);
        // An SBOM alone does not make a package non-empty.
        let t = tree(&[("var/lib/db/sbom/hello-1.0-r0.spdx.json", b"{}", F)]);
        assert_eq!(hits(&lint(&t), "empty"), [""]);
        assert!(lint_as(&t, "hello", "x86_64", &["empty"]).is_empty());
    }

    #[test]
    fn documentation_and_maninfo() {
        let t = tree(&[
            ("usr/share/doc/hello/NEWS", b"x", F),
            ("usr/share/hello/README.md", b"x", F),
            ("usr/share/hello/guide.rst", b"x", F),
            ("usr/share/hello/readme-not.txt", b"x", F),
            ("usr/share/man/man1/hello.1.gz", b"x", F),
            ("usr/share/info/hello.info", b"x", F),
        ]);
        let f = lint(&t);
        assert_eq!(
            hits(&f, "documentation"),
            [
                "usr/share/doc/hello/NEWS",
                "usr/share/hello/README.md",
                "usr/share/hello/guide.rst"
            ]
        );
        assert_eq!(
            hits(&f, "maninfo"),
            ["usr/share/info/hello.info", "usr/share/man/man1/hello.1.gz"]
        );
        let f = lint_as(&t, "hello-doc", "x86_64", &[]);
        assert!(hits(&f, "documentation").is_empty() && hits(&f, "maninfo").is_empty());
    }

    #[test]
    fn python_docs_and_tests() {
        let sp = "usr/lib/python3.12/site-packages";
        let t = tree(&[
            (&format!("{sp}/docs/index.txt"), b"x", F),
            (&format!("{sp}/tests/test_a.py"), b"x", F),
            (&format!("{sp}/hello/tests/test_b.py"), b"x", F),
            (&format!("{sp}/hello/__init__.py"), b"x", F),
        ]);
        let f = lint(&t);
        assert_eq!(hits(&f, "python/docs"), [format!("{sp}/docs")]);
        assert_eq!(hits(&f, "python/test"), [format!("{sp}/tests")]);
    }

    #[test]
    fn sbom_directory() {
        let t = tree(&[
            ("var/lib/db/sbom/hello-1.0-r0.spdx.json", b"{}", F),
            ("var/lib/db/sbom/other-2.0-r0.spdx.json", b"{}", F),
            ("var/lib/db/sbom/hello.cdx.json", b"{}", F),
            ("usr/bin/hello", b"x", X),
        ]);
        assert_eq!(
            hits(&lint(&t), "sbom"),
            [
                "var/lib/db/sbom/hello.cdx.json",
                "var/lib/db/sbom/other-2.0-r0.spdx.json"
            ]
        );
    }

    #[test]
    fn duplicates_by_name_and_content() {
        let big = vec![7u8; 4096];
        let other = vec![8u8; 4096];
        let t = tree(&[
            ("usr/share/a/blob.bin", &big, F),
            ("usr/share/b/blob.bin", &big, F),
            ("usr/share/c/blob.bin", &other, F),
            ("usr/share/d/renamed.bin", &big, F),
            ("usr/share/a/small", b"tiny", F),
            ("usr/share/b/small", b"tiny", F),
            ("usr/share/a/LICENSE", &big, F),
            ("usr/share/b/LICENSE", &big, F),
        ]);
        // A hard link to the same inode wastes nothing.
        fs::create_dir_all(t.path().join("usr/share/e")).unwrap();
        fs::hard_link(
            t.path().join("usr/share/a/blob.bin"),
            t.path().join("usr/share/e/blob.bin"),
        )
        .unwrap();
        let f = lint(&t);
        assert_eq!(hits(&f, "duplicate"), ["usr/share/b/blob.bin"]);
        let d = f.iter().find(|f| f.linter == "duplicate").unwrap();
        assert!(d.message.contains("usr/share/a/blob.bin"), "{}", d.message);
    }

    #[test]
    fn symlinks_are_not_followed() {
        let outside = tree(&[("secret/README.md", b"x", F), ("x.o", b"x", F)]);
        let t = tree(&[("usr/bin/", b"", D)]);
        symlink(outside.path(), t.path().join("usr/escape")).unwrap();
        symlink(outside.path().join("x.o"), t.path().join("usr/lib.o")).unwrap();
        symlink("/nonexistent", t.path().join("usr/dangling")).unwrap();
        let f = lint(&t);
        assert!(hits(&f, "documentation").is_empty(), "{f:?}");
        // The symlink itself is an entry and is named; its target is never read.
        assert_eq!(hits(&f, "object"), ["usr/lib.o"]);
    }

    fn compile(dir: &Path, name: &str, extra: &[&str]) -> PathBuf {
        let src = dir.join("m.c");
        fs::write(&src, "int main(void) { return 0; }\n").unwrap();
        let out = dir.join(name);
        let status = Command::new("gcc")
            .args(["-g", "-o"])
            .arg(&out)
            .arg(&src)
            .args(extra)
            .status()
            .expect("gcc is needed to build test ELF files");
        assert!(status.success());
        out
    }

    #[test]
    fn rpath_flags_workspace_relative_and_empty_entries_only() {
        let t = tree(&[("usr/bin/", b"", D)]);
        let bin = t.path().join("usr/bin");
        compile(&bin, "plain", &[]);
        compile(&bin, "origin", &["-Wl,-rpath,$ORIGIN/../lib"]);
        compile(&bin, "system", &["-Wl,-rpath,/usr/lib/app"]);
        compile(&bin, "workspace", &["-Wl,-rpath,/home/build/.libs"]);
        compile(
            &bin,
            "runpath",
            &["-Wl,--enable-new-dtags,-rpath,/home/build/lib"],
        );
        compile(&bin, "relative", &["-Wl,-rpath,lib"]);
        compile(&bin, "empty", &["-Wl,-rpath,/usr/lib:"]);
        fs::remove_file(bin.join("m.c")).unwrap();
        let f = lint(&t);
        assert_eq!(
            hits(&f, "rpath"),
            [
                "usr/bin/empty",
                "usr/bin/relative",
                "usr/bin/runpath",
                "usr/bin/workspace"
            ]
        );
        assert!(f
            .iter()
            .any(|x| x.linter == "rpath" && x.message.contains("/home/build/.libs")));
        assert!(hits(&lint_as(&t, "hello", "x86_64", &["rpath"]), "rpath").is_empty());
    }

    #[test]
    fn strip_finds_unstripped_elf_only() {
        let t = tree(&[("usr/bin/", b"", D), ("usr/lib/", b"", D)]);
        let bin = t.path().join("usr/bin");
        compile(&bin, "debug", &[]);
        let stripped = compile(&bin, "stripped", &[]);
        assert!(Command::new("strip")
            .arg(&stripped)
            .status()
            .unwrap()
            .success());
        // `strip -g` (what the strip pipeline does) keeps .symtab: not a finding.
        let symtab_only = compile(&bin, "symtab-only", &[]);
        assert!(Command::new("strip")
            .arg("-g")
            .arg(&symtab_only)
            .status()
            .unwrap()
            .success());
        // A relocatable object keeps its symbol table by design.
        let obj = t.path().join("usr/lib/keep.o");
        let src = bin.join("m.c");
        assert!(Command::new("gcc")
            .args(["-g", "-c", "-o"])
            .arg(&obj)
            .arg(&src)
            .status()
            .unwrap()
            .success());
        fs::set_permissions(&obj, fs::Permissions::from_mode(0o755)).unwrap();
        fs::remove_file(&src).unwrap();
        // A non-ELF executable script is skipped.
        fs::write(bin.join("script"), "#!/bin/sh\n").unwrap();
        fs::set_permissions(bin.join("script"), fs::Permissions::from_mode(0o755)).unwrap();
        let f = lint(&t);
        assert_eq!(hits(&f, "strip"), ["usr/bin/debug"]);
        assert!(lint_as(&t, "hello", "x86_64", &["strip"])
            .iter()
            .all(|f| f.linter != "strip"));
    }

    #[test]
    fn binaryarch_compares_elf_machine_with_package_arch() {
        let Some(host) = Arch::host() else { return };
        let t = tree(&[("usr/bin/", b"", D)]);
        let exe = compile(&t.path().join("usr/bin"), "hello", &[]);
        assert!(hits(&lint_as(&t, "hello", host.apk(), &[]), "binaryarch").is_empty());
        assert!(hits(&lint_as(&t, "hello", host.go(), &[]), "binaryarch").is_empty());
        let other = if host == Arch::S390x {
            Arch::X86_64
        } else {
            Arch::S390x
        };
        let f = lint_as(&t, "hello", other.apk(), &[]);
        assert_eq!(hits(&f, "binaryarch"), ["usr/bin/hello"]);
        // Patch e_machine (offset 18, little-endian on LE hosts) to aarch64 and back-check.
        if host == Arch::X86_64 {
            let mut bytes = fs::read(&exe).unwrap();
            bytes[18..20].copy_from_slice(&183u16.to_le_bytes());
            fs::write(&exe, bytes).unwrap();
            assert_eq!(
                hits(&lint_as(&t, "hello", "x86_64", &[]), "binaryarch"),
                ["usr/bin/hello"]
            );
            assert!(hits(&lint_as(&t, "hello", "aarch64", &[]), "binaryarch").is_empty());
        }
        // noarch packages are not judged.
        assert!(hits(&lint_as(&t, "hello", "noarch", &[]), "binaryarch").is_empty());
    }

    #[test]
    fn truncated_elf_does_not_fail_the_lint() {
        let t = tree(&[("usr/bin/broken", b"\x7fELF\x02\x01\x01\0garbage", X)]);
        let f = lint(&t);
        assert!(hits(&f, "strip").is_empty() && hits(&f, "binaryarch").is_empty());
    }
}
