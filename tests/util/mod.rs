//! Helpers for tests that drive the real `pkgbuild` binary and then open
//! what it wrote.
//!
//! - The binary runs through [`cmd`] (or [`pkgbuild`], [`build_command`],
//!   which use it), never a `Command` built by hand.
//! - A missing tool is decided in one place: [`require`] / [`require_that`]
//!   skip with a message, or fail when [`ci`] says this is CI;
//!   [`bwrap_or_skip`] is that for bubblewrap.
//! - What is slow to make (the test key, the base repository) is made once
//!   for all test binaries under `target/test-base/` ([`shared`]).
#![allow(dead_code)]

pub mod base;
pub mod http;
pub mod shared;
pub mod testdata;

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

pub const EPOCH: &str = "1700000000";

/// The path of the `pkgbuild` binary under test, for tests that must name
/// it (a Makefile's `MELANGE=`, a shell line); to run it, use [`cmd`].
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_pkgbuild")
}

/// The one way tests run the binary: a `Command` for `pkgbuild`, to add
/// arguments, environment and a working directory to.
pub fn cmd() -> Command {
    Command::new(bin())
}

/// Whether `CI` asks for the strict run: set, non-empty, and not `false`
/// or `0`. Under CI a missing tool fails its test instead of skipping it.
pub fn ci() -> bool {
    std::env::var_os("CI").is_some_and(|v| {
        let v = v.to_string_lossy();
        let v = v.trim();
        !v.is_empty() && !v.eq_ignore_ascii_case("false") && v != "0"
    })
}

/// Whether `tool` runs here (`tool --version` exits 0); see [`require_that`]
/// for what happens when it does not. `why` says what needs it and how to
/// install it.
pub fn require(tool: &str, why: &str) -> bool {
    let ok = Command::new(tool)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    require_that(ok, tool, why)
}

/// The one decision about a missing prerequisite: when `available` is
/// false, the test fails under [`ci`] (CI must not silently stop testing
/// something) and otherwise prints that it skipped and returns false.
#[track_caller]
pub fn require_that(available: bool, what: &str, why: &str) -> bool {
    if available {
        return true;
    }
    assert!(!ci(), "{what} is required under CI: {why}");
    // Straight to the process's stderr: libtest captures eprintln! output of
    // passing tests, and a skip must be seen.
    let _ = writeln!(std::io::stderr(), "skipped: {what} is not available: {why}");
    false
}

/// Whether the bubblewrap tests can run (the library's own probe: user,
/// pid and network namespaces work); under CI they must.
pub fn bwrap_or_skip() -> bool {
    require_that(
        pkgbuild::sandbox::bwrap_available(),
        "bubblewrap",
        "the sandbox needs a working `bwrap` (apt-get install bubblewrap, user namespaces enabled)",
    )
}

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A 2048-bit key (4096-bit generation is slow and proves nothing more),
/// made once under `target/` and shared by every test binary, so that
/// repositories cached there (see [`base`]) are signed by the same key.
pub fn test_key() -> &'static Path {
    static KEY: OnceLock<PathBuf> = OnceLock::new();
    KEY.get_or_init(|| {
        let dir = shared::dir("key-v1", |dir| {
            let out = cmd()
                .args(["keygen", "--key-size", "2048"])
                .arg(dir.join("test-build.rsa"))
                .output()
                .map_err(|e| format!("run {}: {e}", bin()))?;
            if out.status.success() {
                Ok(())
            } else {
                Err(format!("keygen failed\n{}", show(&out)))
            }
        })
        .unwrap_or_else(|e| panic!("test key: {e}"));
        dir.join("test-build.rsa")
    })
}

/// Run `pkgbuild build` with a fixed epoch, the test key and an isolated
/// HOME/cache; returns the process output.
pub fn build(recipe: &Path, out_dir: &Path, extra: &[&str]) -> Output {
    build_command(recipe, out_dir, extra).output().unwrap()
}

/// Start `cmd` and SIGKILL it once a line of its stderr contains `marker`
/// (or its stderr ends); waits for it to be gone.
pub fn kill_when_printed(mut cmd: Command, marker: &str) {
    use std::io::BufRead;
    let mut child = cmd
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    for line in std::io::BufReader::new(stderr).lines() {
        if line.unwrap().contains(marker) {
            break;
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
}

/// The command `build` runs, to add to or start otherwise.
pub fn build_command(recipe: &Path, out_dir: &Path, extra: &[&str]) -> Command {
    let home = out_dir.with_extension("home");
    std::fs::create_dir_all(&home).unwrap();
    let mut cmd = cmd();
    cmd.arg("build")
        .arg(recipe)
        .arg("--out-dir")
        .arg(out_dir)
        .arg("--signing-key")
        .arg(test_key())
        .arg("--cache-dir")
        .arg(home.join("cache"))
        .env("SOURCE_DATE_EPOCH", EPOCH)
        .env("HOME", &home)
        .args(extra);
    cmd
}

pub fn show(out: &Output) -> String {
    format!(
        "status: {:?}\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[track_caller]
pub fn assert_ok(out: &Output) {
    assert!(out.status.success(), "command failed\n{}", show(out));
}

/// `pkgbuild verify --keys-dir <dir of test key> FILES...`
pub fn verify(files: &[PathBuf]) -> Output {
    let keys = test_key().parent().unwrap();
    cmd()
        .arg("verify")
        .arg("--keys-dir")
        .arg(keys)
        .args(files)
        .output()
        .unwrap()
}

/// The three gzip members of an .apk, split without trusting our reader.
pub fn members(bytes: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        let mut dec = flate2::bufread::GzDecoder::new(rest);
        let mut sink = Vec::new();
        dec.read_to_end(&mut sink).unwrap();
        let remaining = dec.into_inner().len();
        let used = rest.len() - remaining;
        out.push(rest[..used].to_vec());
        rest = &rest[used..];
    }
    out
}

/// One data entry as the independent `tar` crate sees it.
#[derive(Debug, Clone)]
pub struct Entry {
    pub kind: char,
    pub mode: u32,
    pub size: u64,
    pub link: Option<String>,
    pub content: Vec<u8>,
    pub pax: BTreeMap<String, String>,
}

/// Every tar entry of the whole .apk stream (signature, control, data),
/// read with the `tar` crate.
pub fn entries(apk: &Path) -> BTreeMap<String, Entry> {
    let bytes = std::fs::read(apk).unwrap();
    tar_entries(&bytes)
}

/// The entries of the control member alone (the second gzip member of a
/// signed package): `.PKGINFO`, scripts, `.melange.yaml`.
pub fn control_entries(apk: &Path) -> BTreeMap<String, Entry> {
    let bytes = std::fs::read(apk).unwrap();
    let parts = members(&bytes);
    assert_eq!(parts.len(), 3, "{} is not a signed package", apk.display());
    tar_entries(&parts[1])
}

/// Tar entries of gzip data (one or more members), read with the `tar` crate.
pub fn tar_entries(gz: &[u8]) -> BTreeMap<String, Entry> {
    let mut raw = Vec::new();
    flate2::read::MultiGzDecoder::new(gz)
        .read_to_end(&mut raw)
        .unwrap();
    let mut ar = tar::Archive::new(&raw[..]);
    let mut out = BTreeMap::new();
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        let path = String::from_utf8_lossy(&e.path_bytes()).into_owned();
        let mut pax = BTreeMap::new();
        if let Ok(Some(exts)) = e.pax_extensions() {
            for x in exts.flatten() {
                pax.insert(
                    x.key().unwrap_or("").to_string(),
                    String::from_utf8_lossy(x.value_bytes()).into_owned(),
                );
            }
        }
        let h = e.header().clone();
        let mut content = Vec::new();
        e.read_to_end(&mut content).unwrap();
        out.insert(
            path,
            Entry {
                kind: h.entry_type().as_byte() as char,
                mode: h.mode().unwrap(),
                size: h.size().unwrap(),
                link: e
                    .link_name()
                    .unwrap()
                    .map(|l| l.to_string_lossy().into_owned()),
                content,
                pax,
            },
        );
    }
    out
}

/// `.PKGINFO` of a package as key → values.
pub fn pkginfo(apk: &Path) -> BTreeMap<String, Vec<String>> {
    let e = entries(apk);
    let text = String::from_utf8(e[".PKGINFO"].content.clone()).unwrap();
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for line in text.lines() {
        if let Some((k, v)) = line.split_once(" = ") {
            out.entry(k.to_string()).or_default().push(v.to_string());
        }
    }
    out
}

/// The APKINDEX text of an index file.
pub fn index_text(index: &Path) -> String {
    let bytes = std::fs::read(index).unwrap();
    let mut raw = Vec::new();
    flate2::read::MultiGzDecoder::new(&bytes[..])
        .read_to_end(&mut raw)
        .unwrap();
    let mut ar = tar::Archive::new(&raw[..]);
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        if e.path_bytes().as_ref() == b"APKINDEX" {
            let mut s = String::new();
            e.read_to_string(&mut s).unwrap();
            return s;
        }
    }
    panic!("no APKINDEX in {}", index.display());
}

/// Snapshot of a directory: relative path → file bytes (for "unchanged" checks).
pub fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    fn walk(base: &Path, d: &Path, out: &mut BTreeMap<PathBuf, Vec<u8>>) {
        let Ok(rd) = std::fs::read_dir(d) else { return };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(base, &p, out);
            } else {
                out.insert(
                    p.strip_prefix(base).unwrap().to_path_buf(),
                    std::fs::read(&p).unwrap_or_default(),
                );
            }
        }
    }
    walk(dir, dir, &mut out);
    out
}

/// Run the independent conformance checker (tests/tools/apkcheck.py, which
/// encodes apk-tools' and go-apk's rules) over a built repository
/// directory: every package, then the index against those packages.
#[track_caller]
pub fn assert_conformant(arch_dir: &Path) {
    if !require(
        "python3",
        "tests/tools/apkcheck.py checks conformance with it",
    ) {
        return;
    }
    let checker = repo_root().join("tests/tools/apkcheck.py");
    let keys = test_key().parent().unwrap();
    let mut apks: Vec<PathBuf> = std::fs::read_dir(arch_dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "apk"))
        .collect();
    apks.sort();
    let pkg = Command::new("python3")
        .arg(&checker)
        .arg("package")
        .arg("--keys-dir")
        .arg(keys)
        .args(&apks)
        .output()
        .unwrap();
    assert!(
        pkg.status.success(),
        "conformance (packages):\n{}",
        show(&pkg)
    );
    let idx = Command::new("python3")
        .arg(&checker)
        .arg("index")
        .arg("--keys-dir")
        .arg(keys)
        .arg("--packages-dir")
        .arg(arch_dir)
        .arg(arch_dir.join("APKINDEX.tar.gz"))
        .output()
        .unwrap();
    assert!(idx.status.success(), "conformance (index):\n{}", show(&idx));
}

/// The apk name of the host architecture (what `pkgbuild build` targets).
pub fn arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "x86_64",
        "aarch64" => "aarch64",
        other => other,
    }
}

/// `<repo>/<arch>/<file>`.
pub fn apk(out: &Path, file: &str) -> PathBuf {
    out.join(arch()).join(file)
}

/// Serve `body` for every request on a loopback port, counting requests.
pub fn serve(body: Vec<u8>) -> (u16, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let hits = std::sync::Arc::new(AtomicUsize::new(0));
    let h = hits.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(16) {
            let Ok(mut s) = stream else { continue };
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            h.fetch_add(1, Ordering::SeqCst);
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = s.write_all(head.as_bytes());
            let _ = s.write_all(&body);
        }
    });
    (port, hits)
}

pub fn sha256_hex(data: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Writes `<dir>/<name>.yaml`.
pub fn write_recipe(dir: &Path, name: &str, body: &str) -> PathBuf {
    let recipe = dir.join(format!("{name}.yaml"));
    fs::write(&recipe, body).unwrap();
    recipe
}

/// Runs `pkgbuild ARGS...` and returns its output.
pub fn pkgbuild<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Output {
    cmd().args(args).output().unwrap()
}

/// The `so:` name of the program interpreter the host's C compiler writes
/// into executables (glibc's loader).
pub fn host_loader_dep() -> &'static str {
    if cfg!(target_arch = "x86_64") {
        "so:ld-linux-x86-64.so.2"
    } else if cfg!(target_arch = "aarch64") {
        "so:ld-linux-aarch64.so.1"
    } else {
        panic!("add this architecture's glibc loader name")
    }
}

/// One APKINDEX record, with the fields a resolver needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexRecord {
    pub name: String,
    pub version: String,
    pub depends: Vec<String>,
    pub provides: Vec<String>,
    /// Every field by letter, for the rest (`k`, `i`, `o`, ...).
    pub fields: BTreeMap<char, String>,
}

/// Parses APKINDEX text (blank-line separated `L:value` records).
pub fn index_records(text: &str) -> Vec<IndexRecord> {
    let mut out = Vec::new();
    for block in text.split("\n\n").filter(|b| !b.trim().is_empty()) {
        let mut fields = BTreeMap::new();
        for line in block.lines() {
            let mut chars = line.chars();
            if let (Some(letter), Some(':')) = (chars.next(), chars.next()) {
                fields.insert(letter, chars.as_str().to_string());
            }
        }
        let list = |c: char| -> Vec<String> {
            fields
                .get(&c)
                .map(|v: &String| v.split_whitespace().map(String::from).collect())
                .unwrap_or_default()
        };
        out.push(IndexRecord {
            name: fields.get(&'P').cloned().unwrap_or_default(),
            version: fields.get(&'V').cloned().unwrap_or_default(),
            depends: list('D'),
            provides: list('p'),
            fields,
        });
    }
    out
}

/// The name part of a dependency or provides entry (`so:libc.so.6`,
/// `foo>=1.2` → `foo`, `cmd:x=1-r0` → `cmd:x`).
pub fn dep_name(entry: &str) -> &str {
    entry.split(['<', '>', '=', '~']).next().unwrap_or(entry)
}

/// What an installer does with an index, in miniature: starting from
/// `root`, every `D:` name must be a package name or a `p:` name of exactly
/// one package in the repository, unless `base` says the base system
/// provides it. Returns the package names to install, sorted, or the first
/// name nothing provides.
pub fn resolve_closure(
    records: &[IndexRecord],
    root: &str,
    base: impl Fn(&str) -> bool,
) -> Result<Vec<String>, String> {
    let mut chosen: Vec<String> = Vec::new();
    let mut queue = vec![root.to_string()];
    while let Some(want) = queue.pop() {
        if chosen.contains(&want) {
            continue;
        }
        let rec = records
            .iter()
            .find(|r| r.name == want)
            .ok_or_else(|| format!("no package {want}"))?;
        chosen.push(want.clone());
        for dep in rec.depends.iter().filter(|d| !d.starts_with('!')) {
            let name = dep_name(dep);
            if base(name) {
                continue;
            }
            let providers: Vec<&IndexRecord> = records
                .iter()
                .filter(|r| r.name == name || r.provides.iter().any(|p| dep_name(p) == name))
                .collect();
            match providers.as_slice() {
                [one] => queue.push(one.name.clone()),
                [] => return Err(format!("{want}: nothing provides {dep}")),
                many => {
                    let names: Vec<&str> = many.iter().map(|r| r.name.as_str()).collect();
                    return Err(format!("{want}: {dep} is provided by several: {names:?}"));
                }
            }
        }
    }
    chosen.sort();
    Ok(chosen)
}

/// The path to `pyspdxtools`, or None (skip) outside CI.
pub fn spdx_validator() -> Option<&'static str> {
    let found = Command::new("pyspdxtools")
        .arg("--help")
        .output()
        .is_ok_and(|o| o.status.success());
    require_that(
        found,
        "pyspdxtools",
        "it validates the SPDX documents (python3 -m pip install spdx-tools); \
         structural checks still ran",
    )
    .then_some("pyspdxtools")
}

/// Runs the validator on every document at once (one process each) and
/// returns, per document, whether it passed and what it printed.
pub fn run_spdx_validator(docs: &[(String, Vec<u8>)]) -> Option<Vec<(bool, String)>> {
    let tool = spdx_validator()?;
    let dir = tempfile::tempdir().unwrap();
    let children: Vec<_> = docs
        .iter()
        .map(|(label, bytes)| {
            // pyspdxtools picks the format from the file name.
            let path = dir.path().join(format!("{label}.spdx.json"));
            std::fs::write(&path, bytes).unwrap();
            Command::new(tool)
                .arg("-i")
                .arg(&path)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn pyspdxtools")
        })
        .collect();
    Some(
        children
            .into_iter()
            .map(|child| {
                let out = child.wait_with_output().unwrap();
                let text = format!(
                    "{}{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                );
                (out.status.success(), text)
            })
            .collect(),
    )
}

#[track_caller]
pub fn validate_spdx(docs: &[(String, Vec<u8>)]) {
    let Some(results) = run_spdx_validator(docs) else {
        return;
    };
    for ((label, bytes), (ok, text)) in docs.iter().zip(results) {
        assert!(
            ok,
            "pyspdxtools rejected {label}:\n{text}\n--- document ---\n{}",
            String::from_utf8_lossy(bytes)
        );
    }
}

/// A reproducible `.tar.gz` of `<parent>/<top>`, as upstreams publish
/// release archives (one top directory).
pub fn tarball(parent: &Path, top: &str) -> Vec<u8> {
    let out = Command::new("tar")
        .args([
            "--sort=name",
            "--mtime=@0",
            "--owner=0",
            "--group=0",
            "-czf",
            "-",
            top,
        ])
        .current_dir(parent)
        .output()
        .unwrap();
    assert_ok(&out);
    out.stdout
}

/// Runs git in `dir` with a fixed identity and no user configuration;
/// returns its trimmed stdout.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let o = Command::new("git")
        .args(["-c", "user.name=t", "-c", "user.email=t@example.org"])
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .output()
        .unwrap();
    assert_ok(&o);
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

/// Makes `dir` (already holding files) a git repository with one commit
/// tagged `tag`; returns the commit id.
pub fn git_repo_with_tag(dir: &Path, tag: &str) -> String {
    git(dir, &["init", "-q", "-b", "main"]);
    git(dir, &["add", "."]);
    git(dir, &["commit", "-qm", tag]);
    git(dir, &["tag", tag]);
    git(dir, &["rev-parse", "HEAD"])
}

/// A loopback listener nobody is expected to reach: a sandboxed step that
/// tries to connect must fail, and `accept` then finds no connection.
pub fn quiet_listener() -> (std::net::TcpListener, u16) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    listener.set_nonblocking(true).unwrap();
    (listener, port)
}

/// The first place two JSON values differ, for a readable failure.
pub fn first_difference(a: &serde_json::Value, b: &serde_json::Value, at: &str) -> Option<String> {
    use serde_json::Value as J;
    match (a, b) {
        (J::Object(x), J::Object(y)) => {
            x.keys()
                .chain(y.keys())
                .find_map(|k| match (x.get(k), y.get(k)) {
                    (Some(va), Some(vb)) => first_difference(va, vb, &format!("{at}.{k}")),
                    _ => Some(format!("{at}.{k}: present on one side only")),
                })
        }
        (J::Array(x), J::Array(y)) if x.len() == y.len() => x
            .iter()
            .zip(y)
            .enumerate()
            .find_map(|(i, (va, vb))| first_difference(va, vb, &format!("{at}[{i}]"))),
        _ if a == b => None,
        _ => Some(format!("{at}:\n  before: {a}\n  after:  {b}")),
    }
}
