//! The base repository of `examples/base/` (this machine's glibc, busybox,
//! libcap and C toolchain), built with the host runner and the shared test
//! key once for all test binaries (cached under `target/test-base/`, see
//! `shared.rs`), plus what tests do with it afterwards: install packages
//! into a fresh root with pkgbuild's own client, resolver and installer,
//! and run a program there under bubblewrap.
//!
//! Every test binary gets the same directory, so tests only read it (serve
//! it, or name it as `file://`); one that must change it copies it first.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use sha2::{Digest, Sha256};

use pkgbuild::install::{self, Package, RootSetup, ScriptRun};
use pkgbuild::resolve::{self, RepoIndex};
use pkgbuild::upstream::{Client, ClientOptions, RepoSpec, TrustedKey};

use super::{pkgbuild, shared, show, test_key};

/// The only architecture the base is built and tested for.
pub const ARCH: &str = "x86_64";

/// The base repository root (`<root>/x86_64/APKINDEX.tar.gz`), built on
/// first use by any test binary; `None` (the caller skips) without
/// bubblewrap, on another architecture, or outside CI when the host lacks
/// a Debian package the recipes copy.
pub fn base() -> Option<&'static Path> {
    static BASE: OnceLock<Option<PathBuf>> = OnceLock::new();
    BASE.get_or_init(|| {
        if !super::bwrap_or_skip() || super::arch() != ARCH {
            return None;
        }
        let recipes = recipes();
        let name = format!("base-{}", cache_key(&recipes));
        let built = shared::dir(&name, |out| build(&recipes, out));
        match built {
            Ok(dir) => {
                shared::prune("base-", &dir);
                Some(dir)
            }
            Err(text) => {
                assert!(
                    text.contains("apt-get install"),
                    "base repository did not build:\n{text}"
                );
                super::require_that(false, "the base repository's host packages", &text);
                None
            }
        }
    })
    .as_deref()
}

/// `examples/base/*.yaml`, sorted.
fn recipes() -> Vec<PathBuf> {
    let mut recipes: Vec<PathBuf> = std::fs::read_dir(super::repo_root().join("examples/base"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    recipes.sort();
    recipes
}

/// What the cached repository depends on: the recipes (and the files
/// beside them), the binary that builds them (its bytes: cargo relinks it
/// for reasons that change nothing, and an mtime would rebuild the base
/// each time), the key that signs, this file (how it is built), and the
/// host's package database (the recipes copy host files).
fn cache_key(recipes: &[PathBuf]) -> String {
    let mut h = Sha256::new();
    h.update(include_str!("base.rs"));
    let mut files: Vec<PathBuf> = std::fs::read_dir(super::repo_root().join("examples/base"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    debug_assert!(recipes.iter().all(|r| files.contains(r)));
    for f in &files {
        h.update(f.file_name().unwrap().as_encoded_bytes());
        h.update([0]);
        h.update(std::fs::read(f).unwrap());
        h.update([0]);
    }
    let mut bin = std::fs::File::open(super::bin()).unwrap();
    std::io::copy(&mut bin, &mut h).unwrap();
    let dpkg = Path::new("/var/lib/dpkg/status");
    if let Ok(m) = std::fs::metadata(dpkg) {
        let mtime = m
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .unwrap_or_default();
        h.update(format!(
            "{}:{}:{}\n",
            dpkg.display(),
            m.len(),
            mtime.as_nanos()
        ));
    }
    h.update(std::fs::read(public_key()).unwrap());
    h.finalize()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// `pkgbuild build --runner host` of every base recipe into `out`; the
/// command's output as the error when it fails.
fn build(recipes: &[PathBuf], out: &Path) -> Result<(), String> {
    let mut args: Vec<std::ffi::OsString> = vec![
        "build".into(),
        "--runner".into(),
        "host".into(),
        "-q".into(),
        "--out-dir".into(),
        out.into(),
        "--signing-key".into(),
        test_key().into(),
    ];
    args.extend(recipes.iter().map(Into::into));
    let res = pkgbuild(&args);
    if res.status.success() {
        Ok(())
    } else {
        Err(show(&res))
    }
}

/// The public half of the test key, which signed the base.
pub fn public_key() -> PathBuf {
    let mut p = test_key().as_os_str().to_owned();
    p.push(".pub");
    PathBuf::from(p)
}

/// Install `world` from `repos` into a fresh root with the library's
/// resolver, client and installer, as `apk add --initdb` would.
pub fn install_fresh(repos: &[String], world: &[String], cache: &Path, root: &Path) {
    let client = Client::new(ClientOptions {
        cache_dir: cache.to_path_buf(),
        offline: false,
        timeout: std::time::Duration::from_secs(30),
    })
    .unwrap();
    let keys = vec![TrustedKey::from_file(&public_key()).unwrap()];
    let specs: Vec<RepoSpec> = repos.iter().map(|r| RepoSpec::parse(r).unwrap()).collect();
    let indexes: Vec<RepoIndex> = specs
        .iter()
        .map(|s| RepoIndex {
            tag: None,
            entries: client.index(s, ARCH, &keys).unwrap().entries,
        })
        .collect();
    let picks = resolve::resolve(&indexes, world, ARCH).unwrap();
    let files: Vec<(PathBuf, usize, usize)> = picks
        .iter()
        .map(|p| {
            let e = &indexes[p.repo].entries[p.entry];
            (
                client.package(&specs[p.repo], ARCH, e).unwrap(),
                p.repo,
                p.entry,
            )
        })
        .collect();
    let pkgs: Vec<Package> = files
        .iter()
        .map(|(path, r, e)| Package {
            path,
            entry: &indexes[*r].entries[*e],
            repository: &repos[*r],
        })
        .collect();
    let setup = RootSetup {
        arch: ARCH,
        world,
        repositories: repos,
        keys: &[],
    };
    std::fs::create_dir_all(root).unwrap();
    let mut no_scripts = |s: &ScriptRun| Err(format!("unexpected script {}", s.kind));
    install::install(root, &pkgs, &setup, &mut no_scripts).unwrap();
}

/// Run `cmd` (no shell) with `root` as `/` under bubblewrap.
pub fn run_in_root(root: &Path, argv: &[&str]) -> Output {
    Command::new("bwrap")
        .args(["--bind"])
        .arg(root)
        .args([
            "/",
            "--proc",
            "/proc",
            "--dev",
            "/dev",
            "--unshare-all",
            "--clearenv",
            "--setenv",
            "PATH",
            "/usr/bin:/bin",
        ])
        .args(argv)
        .output()
        .unwrap()
}
