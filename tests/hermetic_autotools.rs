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
use std::path::PathBuf;

use util::base::{base, install_fresh, public_key, run_in_root, ARCH};
use util::http::Server;
use util::{pkgbuild, show, test_key};

const TARBALLS: [&str; 2] = ["libtwine-1.0.0.tar.gz", "twine-cli-2.1.tar.gz"];

#[test]
fn autotools_release_tarballs_build_hermetically_from_the_served_base_then_run_in_a_fresh_root() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(base) = base() else {
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

    let base_server = Server::start(base);
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
