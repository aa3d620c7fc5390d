//! The base repository of `examples/base/` (this machine's glibc, busybox,
//! libcap and C toolchain), built once per test binary with the host runner
//! and the shared test key, plus what tests do with it afterwards: install
//! packages into a fresh root with pkgbuild's own client, resolver and
//! installer, and run a program there under bubblewrap.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use pkgbuild::install::{self, Package, RootSetup, ScriptRun};
use pkgbuild::resolve::{self, RepoIndex};
use pkgbuild::upstream::{Client, ClientOptions, RepoSpec, TrustedKey};

use super::{pkgbuild, show, test_key};

/// The only architecture the base is built and tested for.
pub const ARCH: &str = "x86_64";

/// The base repository root (`<root>/x86_64/APKINDEX.tar.gz`), built on
/// first use; `None` (the caller skips) without bubblewrap, on another
/// architecture, or outside CI when the host lacks a Debian package the
/// recipes copy.
pub fn base() -> Option<&'static Path> {
    static BASE: OnceLock<Option<(tempfile::TempDir, PathBuf)>> = OnceLock::new();
    BASE.get_or_init(|| {
        if !super::bwrap_or_skip() || super::arch() != ARCH {
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("base");
        let mut args: Vec<std::ffi::OsString> = vec![
            "build".into(),
            "--runner".into(),
            "host".into(),
            "-q".into(),
            "--out-dir".into(),
            out.clone().into(),
            "--signing-key".into(),
            test_key().into(),
        ];
        let mut recipes: Vec<PathBuf> = std::fs::read_dir(super::repo_root().join("examples/base"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
            .collect();
        recipes.sort();
        args.extend(recipes.into_iter().map(Into::into));
        let res = pkgbuild(&args);
        if !res.status.success() {
            let text = show(&res);
            assert!(
                std::env::var_os("CI").is_none() && text.contains("apt-get install"),
                "base repository did not build:\n{text}"
            );
            eprintln!("skipped: {text}");
            return None;
        }
        Some((dir, out))
    })
    .as_ref()
    .map(|(_, p)| p.as_path())
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
