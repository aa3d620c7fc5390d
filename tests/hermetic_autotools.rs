//! Real autotools projects built hermetically: the base repository of
//! `examples/base/` (the host's toolchain plus m4, perl, autoconf, automake,
//! libtool and pkgconf, built with the host runner) is served on
//! 127.0.0.1, and the libtwine + twine-cli fixture recipes, whose
//! `autoconf/configure` pipeline needs `autoconf` and `automake`, build in
//! guest roots made only of its packages (and of libtwine's, for the
//! program) from their served release tarballs. The program is then
//! installed with the library into a fresh root and run there.

mod util;

use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use pkgbuild::install::{self, Package, RootSetup, ScriptRun};
use pkgbuild::resolve::{self, RepoIndex};
use pkgbuild::upstream::{Client, ClientOptions, RepoSpec, TrustedKey};
use util::http::Server;
use util::{pkgbuild, show, test_key};

const ARCH: &str = "x86_64";
const TARBALLS: [&str; 2] = ["libtwine-1.0.0.tar.gz", "twine-cli-2.1.tar.gz"];

/// All `examples/base/*.yaml` built in one host-runner invocation into
/// `dir/base`; None (skip) when bubblewrap is missing or, outside CI, the
/// host lacks a Debian package a recipe copies (its error says
/// `apt-get install`).
fn build_base(dir: &Path) -> Option<PathBuf> {
    if !util::bwrap_or_skip() || util::arch() != ARCH {
        return None;
    }
    let out = dir.join("base");
    let mut args: Vec<OsString> = vec![
        "build".into(),
        "--runner".into(),
        "host".into(),
        "-q".into(),
        "--out-dir".into(),
        out.clone().into(),
        "--signing-key".into(),
        test_key().into(),
    ];
    let mut recipes = base_recipes();
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
    Some(out)
}

fn base_recipes() -> Vec<PathBuf> {
    fs::read_dir(util::repo_root().join("examples/base"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect()
}

fn public_key() -> PathBuf {
    let mut p = test_key().as_os_str().to_owned();
    p.push(".pub");
    PathBuf::from(p)
}

/// Install `world` from `repos` into a fresh root with the library's
/// resolver, client and installer, as `apk add --initdb` would.
fn install_fresh(repos: &[String], world: &[String], cache: &Path, root: &Path) {
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
    fs::create_dir_all(root).unwrap();
    let mut no_scripts = |s: &ScriptRun| Err(format!("unexpected script {}", s.kind));
    install::install(root, &pkgs, &setup, &mut no_scripts).unwrap();
}

/// Runs `argv` in `root` under bubblewrap, with nothing of the host.
fn run_in_root(root: &Path, argv: &[&str]) -> std::process::Output {
    Command::new("bwrap")
        .arg("--bind")
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

#[test]
fn autotools_release_tarballs_build_hermetically_from_the_served_base_then_run_in_a_fresh_root() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(base) = build_base(tmp.path()) else {
        return;
    };

    // The new base recipes pass the recipe linter.
    let new_recipes: Vec<PathBuf> = [
        "m4",
        "libcrypt1",
        "perl",
        "autoconf",
        "automake",
        "libtool",
        "pkgconf",
        "build-base",
        "binutils",
    ]
    .iter()
    .map(|n| util::repo_root().join(format!("examples/base/{n}.yaml")))
    .collect();
    let mut lint: Vec<OsString> = vec!["lint".into()];
    lint.extend(new_recipes.iter().map(Into::into));
    util::assert_ok(&pkgbuild(&lint));

    let base_server = Server::start(&base);
    let base_url = format!("http://127.0.0.1:{}", base_server.port);
    let releases = tmp.path().join("served/releases");
    fs::create_dir_all(&releases).unwrap();
    for name in TARBALLS {
        fs::copy(
            util::repo_root().join("tests/fixtures/sources").join(name),
            releases.join(name),
        )
        .unwrap();
    }
    let release_server = Server::start(&tmp.path().join("served"));

    // The fixture recipes as they are, alone in their directory, with the
    // mirror pointed at the release server.
    let recipes = tmp.path().join("recipes");
    fs::create_dir_all(&recipes).unwrap();
    for name in ["libtwine.yaml", "twine-cli.yaml"] {
        fs::copy(
            util::repo_root().join("tests/fixtures/recipes").join(name),
            recipes.join(name),
        )
        .unwrap();
    }
    let vars = tmp.path().join("mirror.yaml");
    fs::write(
        &vars,
        format!("mirror: {}\n", release_server.url("releases")),
    )
    .unwrap();

    let out = tmp.path().join("out");
    let cache = tmp.path().join("cache");
    let res = pkgbuild(&[
        "build".as_ref(),
        recipes.join("twine-cli.yaml").as_os_str(),
        recipes.join("libtwine.yaml").as_os_str(),
        "-r".as_ref(),
        base_url.as_ref(),
        "-k".as_ref(),
        public_key().as_os_str(),
        "--vars-file".as_ref(),
        vars.as_os_str(),
        "--out-dir".as_ref(),
        out.as_os_str(),
        "--signing-key".as_ref(),
        test_key().as_os_str(),
        // Its own cache, so the tarballs are really fetched from the
        // release server and the packages from the base.
        "--cache-dir".as_ref(),
        tmp.path().join("cache-root").as_os_str(),
        "--apk-cache-dir".as_ref(),
        cache.as_os_str(),
        "--build-date".as_ref(),
        util::EPOCH.as_ref(),
    ]);
    util::assert_ok(&res);
    let stderr = show(&res);
    assert!(stderr.contains("2 built, 0 failed"), "{stderr}");
    for name in TARBALLS {
        assert_eq!(
            release_server.count(name),
            1,
            "{name} was not fetched from the release server once"
        );
    }
    assert!(
        base_server.count(".apk") >= 20,
        "the toolchain and autotools came from the served base"
    );

    let arch_dir = out.join(ARCH);
    for file in [
        "libtwine-1.0.0-r0.apk",
        "libtwine-dev-1.0.0-r0.apk",
        "twine-cli-2.1-r0.apk",
    ] {
        assert!(arch_dir.join(file).is_file(), "{file} was not built");
    }
    let cli = arch_dir.join("twine-cli-2.1-r0.apk");
    let info = util::pkginfo(&cli);
    for dep in ["so:libtwine.so.1", "so:libc.so.6"] {
        assert!(
            info["depend"].iter().any(|d| d == dep),
            "twine-cli lacks depend = {dep}: {info:?}"
        );
    }

    // Each build environment came from the base (autoconf/configure's
    // needs included) and ran the tarball's own configure.
    for (apk, log) in [
        ("libtwine-1.0.0-r0.apk", "libtwine-1.0.0-r0.log"),
        ("twine-cli-2.1-r0.apk", "twine-cli-2.1-r0.log"),
    ] {
        let embedded = util::entries(&arch_dir.join(apk));
        let recipe = String::from_utf8(embedded[".melange.yaml"].content.clone()).unwrap();
        for pinned in [
            "- autoconf=2.",
            "- automake=1.",
            "- perl=5.",
            "- pkgconf=1.",
        ] {
            assert!(recipe.contains(pinned), "{apk}: no {pinned}:\n{recipe}");
        }
        assert!(recipe.contains(&base_url), "{recipe}");
        let text = fs::read_to_string(out.join("logs").join(log)).unwrap();
        assert!(
            text.contains("config.status: creating Makefile"),
            "{log}: configure did not run:\n{text}"
        );
        assert!(
            !text.contains("generating ./configure with autoreconf"),
            "{log}: the release tarball's configure was regenerated"
        );
        // configure found binutils' archiver under the triplet name, not
        // busybox's `ar` applet.
        if apk.starts_with("libtwine") {
            assert!(
                text.contains("checking the archiver (x86_64-pc-linux-gnu-ar) interface... ar"),
                "{text}"
            );
        }
    }
    let cli_log = fs::read_to_string(out.join("logs/twine-cli-2.1-r0.log")).unwrap();
    assert!(
        cli_log.contains("checking for twine_braid in -ltwine... yes"),
        "{cli_log}"
    );

    // Installed from the base plus the output repository into a fresh
    // root, the program runs against the packaged library.
    let root = tmp.path().join("root");
    install_fresh(
        &[base_url.clone(), out.to_string_lossy().into_owned()],
        &["twine-cli".to_string()],
        &cache,
        &root,
    );
    assert!(root.join("usr/lib/libtwine.so.1").exists());
    let ran = run_in_root(
        &root,
        &[
            "/usr/bin/twine",
            "-s",
            "+",
            "upstream",
            "release",
            "tarball",
        ],
    );
    assert!(ran.status.success(), "{}", show(&ran));
    assert_eq!(
        String::from_utf8_lossy(&ran.stdout),
        "upstream+release+tarball\n"
    );
    let ran = run_in_root(&root, &["/usr/bin/twine", "--version"]);
    assert!(ran.status.success(), "{}", show(&ran));
    assert_eq!(
        String::from_utf8_lossy(&ran.stdout),
        "twine 2.1 (libtwine 1.0.0)\n"
    );
}
