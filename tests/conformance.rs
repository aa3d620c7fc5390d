//! Conformance: our `.apk` and `APKINDEX.tar.gz` output judged by an
//! independent checker, `tests/tools/apkcheck.py`.
//!
//! Real apk-tools cannot run here, so the checker is a second reading of
//! `../shared/apk-format.md` in another language (stdlib-only Python, own
//! gzip/tar/DER/RSA code). First it must prove itself on the shared samples
//! that real apk-tools accepted or rejected; then it judges packages built
//! with every feature of our writer. `PKGBUILD_CONFORMANCE_DIR` points it at
//! any directory of full builds (keys from `PKGBUILD_CONFORMANCE_KEYS`,
//! default: the shared test key).
//!
//! Without python3 these tests skip with a message, except under CI (env
//! `CI` set), where a missing interpreter must not pass silently.

mod util;

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::fs;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use pkgbuild::apk::index::{Index, IndexEntry};
use pkgbuild::apk::package::{write_package, EntryOverride, PackageSpec, Script, SignOptions};
use pkgbuild::apk::pkginfo::PkgInfo;
use pkgbuild::apk::sign::SigningKey;

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

use util::testdata::testdata;

fn accepted() -> PathBuf {
    testdata().join("apk-tools-accepted")
}

fn keys_dir() -> PathBuf {
    accepted().join("keys")
}

fn checker() -> PathBuf {
    manifest_dir().join("tests/tools/apkcheck.py")
}

/// Whether python3 runs; panics under CI when it does not.
fn have_python(test: &str) -> bool {
    util::require("python3", &format!("{test} runs tests/tools/apkcheck.py"))
}

struct Verdict {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Verdict {
    fn assert_clean(&self, what: &str) {
        assert_eq!(
            self.code,
            Some(0),
            "{what}: apkcheck found violations:\n{}{}",
            self.stdout,
            self.stderr
        );
        assert!(
            self.stdout.lines().all(|l| l.ends_with(": OK")),
            "{what}: unexpected output:\n{}",
            self.stdout
        );
    }
}

fn apkcheck<I, S>(args: I) -> Verdict
where
    I: IntoIterator<Item = S>,
    S: Into<OsString>,
{
    let out = Command::new("python3")
        .arg(checker())
        .args(args.into_iter().map(Into::into))
        .output()
        .expect("run python3 apkcheck.py");
    Verdict {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn check_packages(keys: &Path, files: &[PathBuf], extra: &[&str]) -> Verdict {
    let mut args: Vec<OsString> = vec!["package".into(), "--keys-dir".into(), keys.into()];
    args.extend(extra.iter().map(OsString::from));
    args.extend(files.iter().map(|f| f.clone().into_os_string()));
    apkcheck(args)
}

fn check_index(keys: &Path, index: &Path, packages_dir: &Path) -> Verdict {
    apkcheck([
        OsString::from("index"),
        "--keys-dir".into(),
        keys.into(),
        "--packages-dir".into(),
        packages_dir.into(),
        index.into(),
    ])
}

#[test]
fn checker_selftest_passes() {
    if !have_python("checker_selftest_passes") {
        return;
    }
    let v = apkcheck(["selftest"]);
    assert_eq!(
        v.code,
        Some(0),
        "selftest failed:\n{}{}",
        v.stdout,
        v.stderr
    );
    assert!(v.stdout.contains("selftest: OK"), "{}", v.stdout);
}

#[test]
fn checker_accepts_what_apk_tools_accepted() {
    if !have_python("checker_accepts_what_apk_tools_accepted") {
        return;
    }
    let repo = accepted().join("repo/x86_64");
    check_packages(&keys_dir(), &[repo.join("hello-1.0-r0.apk")], &[])
        .assert_clean("shared accepted package");
    let v = check_index(&keys_dir(), &repo.join("APKINDEX.tar.gz"), &repo);
    v.assert_clean("shared accepted index");
    // --packages-dir also re-checks the package it points at.
    assert_eq!(v.stdout.lines().count(), 2, "{}", v.stdout);
}

/// Each sample real apk-tools rejected, with the rule and the client
/// message the checker must name (apk-tools-rejected/README table).
const REJECTED: &[(&str, &str, &str)] = &[
    (
        "bad_datahash.apk",
        "[datahash]",
        "v2 package integrity error",
    ),
    ("ctl_eoa.apk", "[ctl-eoa]", "BAD archive"),
    (
        "data_two_members.apk",
        "[data-members]",
        "file format is invalid or inconsistent",
    ),
    (
        "no_datahash.apk",
        "[pkginfo-no-datahash]",
        "v2 package format error",
    ),
    (
        "no_file_csum.apk",
        "[data-no-file-csum]",
        "install-time failure",
    ),
    (
        "no_parent_dir.apk",
        "[data-no-dirent]",
        "no dirent in archive",
    ),
    (
        "sig_eoa.apk",
        "[sig-eoa]",
        "file format is invalid or inconsistent",
    ),
    ("sign_uncompressed.apk", "[sig-bad]", "BAD signature"),
];

#[test]
fn checker_rejects_each_apk_tools_rejected_sample_for_its_reason() {
    if !have_python("checker_rejects_each_apk_tools_rejected_sample_for_its_reason") {
        return;
    }
    let dir = testdata().join("apk-tools-rejected");
    let on_disk: BTreeSet<String> = fs::read_dir(&dir)
        .expect("list apk-tools-rejected")
        .map(|e| {
            e.expect("dir entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .filter(|n| n.ends_with(".apk"))
        .collect();
    let known: BTreeSet<String> = REJECTED.iter().map(|(f, _, _)| f.to_string()).collect();
    assert_eq!(
        on_disk, known,
        "every rejected sample needs an expected reason here"
    );
    for (file, rule, message) in REJECTED {
        let v = check_packages(&keys_dir(), &[dir.join(file)], &[]);
        assert_eq!(v.code, Some(1), "{file} must be rejected:\n{}", v.stdout);
        let hit = v
            .stdout
            .lines()
            .find(|l| l.contains(rule))
            .unwrap_or_else(|| panic!("{file}: no {rule} violation in:\n{}", v.stdout));
        assert!(
            hit.contains(message),
            "{file}: {rule} line does not quote {message:?}: {hit}"
        );
    }
}

/// A staged tree using every feature of the data writer.
fn feature_tree(root: &Path) {
    let mkdir = |p: &str, mode: u32| {
        let d = root.join(p);
        fs::create_dir_all(&d).unwrap();
        fs::set_permissions(&d, fs::Permissions::from_mode(mode)).unwrap();
    };
    let file = |p: &str, body: &[u8], mode: u32| {
        let f = root.join(p);
        fs::write(&f, body).unwrap();
        fs::set_permissions(&f, fs::Permissions::from_mode(mode)).unwrap();
    };
    mkdir("usr/bin", 0o755);
    mkdir("usr/lib/hello/private", 0o750);
    mkdir("etc/hello", 0o755);
    file("usr/bin/hello", b"#!/bin/sh\necho hello\n", 0o755);
    file("usr/bin/hello-suid", b"\x7fELF not really\n", 0o755);
    file("usr/lib/hello/private/data.bin", &[0u8, 1, 2, 255], 0o640);
    file("etc/hello/empty.conf", b"", 0o644);
    file("etc/hello/xattr.conf", b"key=value\n", 0o644);
    // Spans many parallel-gzip chunks, with back-references across them.
    let text: String = (0..60_000u32)
        .map(|i| format!("line {i} {}\n", i.wrapping_mul(2_654_435_761) % 977))
        .collect();
    file("usr/lib/hello/big.txt", text.as_bytes(), 0o644);
    fs::hard_link(root.join("usr/bin/hello"), root.join("usr/bin/hello-hard")).unwrap();
    std::os::unix::fs::symlink("hello", root.join("usr/bin/hello-link")).unwrap();
    // Long symlink target (> 100 bytes: PAX linkpath).
    let target = format!("../lib/hello/{}", "t".repeat(150));
    std::os::unix::fs::symlink(&target, root.join("usr/bin/long-link")).unwrap();
    // Long path (> 255 bytes: beyond the ustar name+prefix split).
    let deep = format!("usr/share/{}/{}", "d".repeat(120), "e".repeat(120));
    mkdir(&deep, 0o755);
    file(&format!("{deep}/{}.txt", "f".repeat(40)), b"deep\n", 0o644);
}

fn feature_spec(root: &Path) -> PackageSpec {
    let mut overrides = BTreeMap::new();
    overrides.insert(
        "usr/bin/hello-suid".to_string(),
        EntryOverride {
            mode: Some(0o4755),
            ..Default::default()
        },
    );
    overrides.insert(
        "etc/hello/xattr.conf".to_string(),
        EntryOverride {
            uid: 1000,
            gid: 1000,
            uname: "hello".into(),
            gname: "hello".into(),
            mode: Some(0o600),
            xattrs: vec![("user.pkgbuild".into(), b"filetest".to_vec())],
        },
    );
    PackageSpec {
        root: root.to_path_buf(),
        info: PkgInfo {
            name: "hello".into(),
            version: "1.2.3_rc1-r4".into(),
            description: "Hello conformance package".into(),
            url: "https://example.org/hello".into(),
            builddate: 1_700_000_000,
            arch: "x86_64".into(),
            origin: "hello".into(),
            commit: "0123456789abcdef0123456789abcdef01234567".into(),
            maintainer: "Test <test@example.org>".into(),
            license: "MIT AND Apache-2.0".into(),
            depends: vec![
                "/bin/sh".into(),
                "so:libc.musl-x86_64.so.1".into(),
                "hello-data>=1.0-r0".into(),
                "!hello-old".into(),
                "pc:zlib~1.3".into(),
            ],
            provides: vec!["cmd:hello=1.2.3_rc1-r4".into(), "so:libhello.so.1=1".into()],
            replaces: vec!["hello-old".into()],
            install_if: vec!["hello-base".into(), "docs".into()],
            provider_priority: Some(10),
            triggers: vec!["/usr/share/*".into(), "/etc/hello".into()],
            ..Default::default()
        },
        scripts: vec![
            (Script::PreInstall, b"#!/bin/sh\nexit 0\n".to_vec()),
            (Script::PostInstall, b"#!/bin/sh\necho installed\n".to_vec()),
            (Script::PostUpgrade, b"#!/bin/sh\nexit 0\n".to_vec()),
            (Script::Trigger, b"#!/bin/sh\necho \"$@\"\n".to_vec()),
        ],
        control_extra: vec![(".melange.yaml".into(), b"package: {}\n".to_vec())],
        mtime: 1_700_000_000,
        overrides,
    }
}

/// A temp dir holding the feature tree under `root/`.
fn staged() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    feature_tree(&root);
    (tmp, root)
}

fn test_key() -> SigningKey {
    SigningKey::load(&keys_dir().join("test-5f3a.rsa")).expect("load the shared test key")
}

fn signed(key: &SigningKey, legacy_sha1: bool) -> SignOptions<'_> {
    SignOptions {
        key: Some(key),
        legacy_sha1,
    }
}

/// Entry names in the package's tar stream, read back with the `tar`
/// crate, so the checker's verdict is about entries that really exist.
fn entry_names(apk: &Path) -> Vec<String> {
    let mut bytes = Vec::new();
    flate2::read::MultiGzDecoder::new(fs::File::open(apk).unwrap())
        .read_to_end(&mut bytes)
        .unwrap();
    let mut archive = tar::Archive::new(bytes.as_slice());
    archive
        .entries()
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            String::from_utf8_lossy(&e.path_bytes()).into_owned()
        })
        .collect()
}

#[test]
fn our_packages_pass_the_checker() {
    if !have_python("our_packages_pass_the_checker") {
        return;
    }
    let (tmp, root) = staged();
    let spec = feature_spec(&root);
    let key = test_key();

    let mut written = Vec::new();
    for (dir, legacy_sha1) in [("rsa256", false), ("legacy", true)] {
        let out = tmp.path().join(dir);
        fs::create_dir(&out).unwrap();
        let pkg = write_package(&spec, &signed(&key, legacy_sha1), &out).expect("write package");
        assert!(pkg.warnings.is_empty(), "{:?}", pkg.warnings);
        written.push(pkg.path);
    }
    let v = check_packages(&keys_dir(), &written, &[]);
    v.assert_clean("writer output (RSA256, RSA256+RSA)");

    let names = entry_names(&written[1]);
    for want in [
        ".SIGN.RSA256.test-5f3a.rsa.pub",
        ".SIGN.RSA.test-5f3a.rsa.pub",
        ".PKGINFO",
        ".trigger",
        ".melange.yaml",
        "usr/bin/hello-hard",
        "usr/bin/long-link",
        "usr/bin/hello-suid",
        "etc/hello/empty.conf",
    ] {
        assert!(names.iter().any(|n| n == want), "{want} missing: {names:?}");
    }
    assert!(
        names.iter().any(|n| n.len() > 255),
        "no long path in {names:?}"
    );
}

#[test]
fn our_unsigned_and_meta_packages_pass_the_checker() {
    if !have_python("our_unsigned_and_meta_packages_pass_the_checker") {
        return;
    }
    let (tmp, root) = staged();
    let unsigned = write_package(&feature_spec(&root), &SignOptions::default(), tmp.path())
        .expect("write unsigned package");
    check_packages(
        &keys_dir(),
        std::slice::from_ref(&unsigned.path),
        &["--allow-unsigned"],
    )
    .assert_clean("unsigned writer output");
    // Without --allow-unsigned the checker says what apk verify says.
    let v = check_packages(&keys_dir(), &[unsigned.path], &[]);
    assert!(v.stdout.contains("UNTRUSTED"), "{}", v.stdout);

    // A meta package: no files, no scripts, so `size = 0` is right.
    let out = tmp.path().join("meta");
    fs::create_dir(&out).unwrap();
    let key = test_key();
    let pkg = write_package(&meta_spec(tmp.path()), &signed(&key, false), &out).unwrap();
    check_packages(&keys_dir(), &[pkg.path], &[]).assert_clean("meta package");
}

/// A package with no files and no scripts (`size = 0` is right for it),
/// staged from an empty `<tmp>/empty`.
fn meta_spec(tmp: &Path) -> PackageSpec {
    let empty = tmp.join("empty");
    fs::create_dir_all(&empty).unwrap();
    PackageSpec {
        root: empty,
        info: PkgInfo {
            name: "hello-meta".into(),
            version: "1-r0".into(),
            arch: "x86_64".into(),
            depends: vec!["hello>=1.9-r0".into()],
            ..Default::default()
        },
        mtime: 1_700_000_000,
        ..Default::default()
    }
}

/// `<tmp>/repo/x86_64` holding our packages: several versions whose
/// bytewise and apk orders differ, a second name, a `noarch` package and a
/// meta package (size 0).
fn build_repo(tmp: &Path, root: &Path, key: &SigningKey) -> (PathBuf, Vec<PathBuf>) {
    let repo = tmp.join("repo/x86_64");
    fs::create_dir_all(&repo).unwrap();
    let sign = signed(key, false);
    let mut spec = feature_spec(root);
    let mut packages = Vec::new();
    for version in ["1.10-r0", "1.9-r0", "1.9_rc1-r0", "1.9-r10"] {
        spec.info.version = version.into();
        spec.info.provides = vec![format!("cmd:hello={version}")];
        packages.push(write_package(&spec, &sign, &repo).unwrap().path);
    }
    spec.info.name = "a-first".into();
    spec.info.version = "2-r1".into();
    spec.info.provides.clear();
    packages.push(write_package(&spec, &sign, &repo).unwrap().path);
    spec.info.name = "hello-doc".into();
    spec.info.arch = "noarch".into();
    packages.push(write_package(&spec, &sign, &repo).unwrap().path);
    let meta = meta_spec(tmp);
    packages.push(write_package(&meta, &sign, &repo).unwrap().path);
    (repo, packages)
}

/// The library index writer, checked with --packages-dir (which also
/// re-checks every package and compares each record with its `.PKGINFO`).
#[test]
fn our_index_passes_the_checker() {
    if !have_python("our_index_passes_the_checker") {
        return;
    }
    let (tmp, root) = staged();
    let key = test_key();
    let (repo, packages) = build_repo(tmp.path(), &root, &key);
    let entries = packages
        .iter()
        .map(|p| IndexEntry::from_package(p).expect("index entry"))
        .collect();
    let index = Index {
        description: Some("conformance repo".into()),
        entries,
    };
    let path = repo.join("APKINDEX.tar.gz");
    index.write(&path, Some(&key), Some("x86_64")).unwrap();
    let v = check_index(&keys_dir(), &path, &repo);
    v.assert_clean("library index (noarch rewritten to x86_64)");
    assert_eq!(v.stdout.lines().count(), 1 + packages.len(), "{}", v.stdout);

    // Without the arch rewrite apk would fetch <repo>/noarch/…, which is
    // not there: the checker must say so (apk-format.md §4.4).
    index.write(&path, Some(&key), None).unwrap();
    let v = check_index(&keys_dir(), &path, &repo);
    assert_eq!(v.code, Some(1), "{}", v.stdout);
    assert!(
        v.stdout.contains("[index-fetch-path]") && v.stdout.contains("hello-doc"),
        "{}",
        v.stdout
    );
}

/// The same repository indexed by the `pkgbuild index` binary.
#[test]
fn our_index_binary_output_passes_the_checker() {
    if !have_python("our_index_binary_output_passes_the_checker") {
        return;
    }
    let (tmp, root) = staged();
    let key = test_key();
    let (repo, packages) = build_repo(tmp.path(), &root, &key);
    let index = repo.join("APKINDEX.tar.gz");
    let out = util::cmd()
        .arg("index")
        .arg("-o")
        .arg(&index)
        .arg("--signing-key")
        .arg(keys_dir().join("test-5f3a.rsa"))
        .args(["--rewrite-arch", "x86_64", "-d", "conformance repo"])
        .args(&packages)
        .output()
        .expect("run pkgbuild index");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "pkgbuild index failed: {stderr}");
    let v = check_index(&keys_dir(), &index, &repo);
    v.assert_clean("pkgbuild index output");
    assert_eq!(v.stdout.lines().count(), 1 + packages.len(), "{}", v.stdout);
}

fn find_files(dir: &Path, pred: &dyn Fn(&str) -> bool, out: &mut Vec<PathBuf>) {
    let Ok(rd) = fs::read_dir(dir) else { return };
    let mut entries: Vec<_> = rd.filter_map(Result::ok).collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let path = e.path();
        let Ok(ft) = e.file_type() else { continue };
        if ft.is_dir() {
            find_files(&path, pred, out);
        } else if ft.is_file() && pred(&e.file_name().to_string_lossy()) {
            out.push(path);
        }
    }
}

/// Every `.apk` and `APKINDEX.tar.gz` under `PKGBUILD_CONFORMANCE_DIR`.
#[test]
fn conformance_dir_from_env_passes_the_checker() {
    let Some(dir) = std::env::var_os("PKGBUILD_CONFORMANCE_DIR").map(PathBuf::from) else {
        eprintln!("conformance_dir_from_env_passes_the_checker: SKIPPED: PKGBUILD_CONFORMANCE_DIR not set");
        return;
    };
    if !have_python("conformance_dir_from_env_passes_the_checker") {
        return;
    }
    let keys = std::env::var_os("PKGBUILD_CONFORMANCE_KEYS")
        .map(PathBuf::from)
        .unwrap_or_else(keys_dir);
    let mut apks = Vec::new();
    find_files(&dir, &|n| n.ends_with(".apk"), &mut apks);
    let mut indexes = Vec::new();
    find_files(&dir, &|n| n == "APKINDEX.tar.gz", &mut indexes);
    assert!(
        !apks.is_empty() || !indexes.is_empty(),
        "{}: no .apk or APKINDEX.tar.gz found",
        dir.display()
    );
    let mut failures = String::new();
    for chunk in apks.chunks(64) {
        let v = check_packages(&keys, chunk, &[]);
        if v.code != Some(0) {
            failures += &v.stdout;
            failures += &v.stderr;
        }
    }
    for index in &indexes {
        let v = check_index(&keys, index, index.parent().unwrap_or(&dir));
        if v.code != Some(0) {
            failures += &v.stdout;
            failures += &v.stderr;
        }
    }
    assert!(
        failures.is_empty(),
        "{} packages, {} indexes under {}; violations:\n{failures}",
        apks.len(),
        indexes.len(),
        dir.display()
    );
}

/// apk refuses any entry whose link target is PATH_MAX-10 (4086) bytes or
/// longer with ENAMETOOLONG (the same limit the writer enforces on paths).
/// Linux allows symlink targets up to 4095 bytes, so the writer must
/// either refuse such a tree or never emit such an entry.
#[test]
fn writer_refuses_symlink_targets_apk_cannot_create() {
    if !have_python("writer_refuses_symlink_targets_apk_cannot_create") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    fs::create_dir_all(root.join("usr")).unwrap();
    let target = format!("../{}", "x".repeat(4088));
    std::os::unix::fs::symlink(&target, root.join("usr/too-long")).unwrap();
    let spec = PackageSpec {
        root,
        info: PkgInfo {
            name: "longlink".into(),
            version: "1-r0".into(),
            arch: "x86_64".into(),
            ..Default::default()
        },
        mtime: 1_700_000_000,
        ..Default::default()
    };
    let key = test_key();
    match write_package(&spec, &signed(&key, false), tmp.path()) {
        Err(e) => assert!(
            e.to_string().contains("too-long"),
            "the error should name the entry: {e}"
        ),
        Ok(pkg) => {
            let v = check_packages(&keys_dir(), &[pkg.path], &[]);
            v.assert_clean("package with a 4091-byte symlink target");
        }
    }
}
