//! Linters through the real binary: `checks.disabled` switches a linter off
//! for that one package during `pkgbuild build`, a required finding fails
//! the build naming the file and leaves the repository alone, and
//! `pkgbuild lint` runs the same linters on finished `.apk` files, keeping
//! off those the package's embedded recipe turned off.

mod util;

use std::path::{Path, PathBuf};

use util::*;

/// A recipe whose main package leaves a file in `tmp/` (a required
/// finding) and a libtool archive (a warning), with `checks` as given; its
/// `-extra` subpackage leaves one in `var/tmp/` with `sub_checks`.
fn tainted(dir: &Path, checks: &str, sub_checks: &str) -> PathBuf {
    write_recipe(
        dir,
        "tainted",
        &format!(
            r##"package:
  name: tainted
  version: 1.0.0
  epoch: 0
  description: leaves build debris behind
{checks}
pipeline:
  - runs: |
      mkdir -p "${{{{targets.destdir}}}}/tmp" "${{{{targets.destdir}}}}/usr/lib"
      echo debris > "${{{{targets.destdir}}}}/tmp/leftover"
      echo "# libtool" > "${{{{targets.destdir}}}}/usr/lib/libt.la"
subpackages:
  - name: tainted-extra
    description: more debris
{sub_checks}
    pipeline:
      - runs: |
          mkdir -p "${{{{targets.contextdir}}}}/var/tmp"
          echo debris > "${{{{targets.contextdir}}}}/var/tmp/cache"
"##
        ),
    )
}

const MAIN_OFF: &str = "  checks:\n    disabled:\n      - tempdir";
const SUB_OFF: &str = "    checks:\n      disabled:\n        - tempdir";

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn required_finding_fails_the_build_naming_the_file_and_keeps_the_repository() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("repo");
    // A repository with something in it already.
    let ok = write_recipe(
        tmp.path(),
        "fine",
        "package:\n  name: fine\n  version: 1.0.0\n  epoch: 0\n  description: f\npipeline:\n  - runs: mkdir -p ${{targets.destdir}}/usr/share/fine && echo x > ${{targets.destdir}}/usr/share/fine/f\n",
    );
    assert_ok(&build(&ok, &out, &[]));
    let before = snapshot(&out.join(arch()));

    // The main package disables tempdir; its subpackage does not, and the
    // main package's switch must not cover it.
    let recipe = tainted(tmp.path(), MAIN_OFF, "");
    let res = build(&recipe, &out, &[]);
    assert_eq!(res.status.code(), Some(1), "{}", show(&res));
    let err = String::from_utf8_lossy(&res.stderr);
    assert!(err.contains("tainted-extra"), "{err}");
    assert!(err.contains("[tempdir]"), "{err}");
    assert!(
        err.contains("var/tmp/cache"),
        "the file must be named:\n{err}"
    );
    assert!(
        !err.contains("tmp/leftover"),
        "tempdir is disabled for the main package:\n{err}"
    );
    assert_eq!(snapshot(&out.join(arch())), before, "repository changed");
}

#[test]
fn lint_honours_the_checks_disabled_each_package_carries() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("repo");
    // The main package turns off one more linter than its subpackage, so
    // each package must be found by its own name in the embedded recipe.
    let main_off = "  checks:\n    disabled:\n      - tempdir\n      - opt";
    let recipe = tainted(tmp.path(), main_off, SUB_OFF);
    let res = build(&recipe, &out, &[]);
    assert_ok(&res);
    // The warning-level linter still ran and was reported.
    let err = String::from_utf8_lossy(&res.stderr);
    assert!(
        err.contains("[libtool]") && err.contains("usr/lib/libt.la"),
        "{err}"
    );

    let main = apk(&out, "tainted-1.0.0-r0.apk");
    let extra = apk(&out, "tainted-extra-1.0.0-r0.apk");
    let m = main.display();
    let x = extra.display();
    let res = pkgbuild(&["lint".as_ref(), main.as_os_str(), extra.as_os_str()]);
    assert_ok(&res);
    assert_eq!(
        stdout(&res),
        format!(
            "{m}: disabled by the package: tempdir, opt\n\
             {m}: [libtool] warning: libtool archive (.la) (usr/lib/libt.la)\n\
             {x}: disabled by the package: tempdir\n\
             {x}: OK\n"
        )
    );

    // The audit flag runs them anyway and finds what they let through.
    let res = pkgbuild(&[
        "lint".as_ref(),
        "--ignore-package-checks".as_ref(),
        main.as_os_str(),
        extra.as_os_str(),
    ]);
    assert_eq!(res.status.code(), Some(1), "{}", show(&res));
    let text = stdout(&res);
    assert!(!text.contains("disabled by the package"), "{text}");
    for line in [
        format!("{m}: [libtool] warning: libtool archive (.la) (usr/lib/libt.la)"),
        format!("{m}: [tempdir] required: package writes to a temporary directory (tmp/leftover)"),
        format!("{x}: [tempdir] required: package writes to a temporary directory (var/tmp/cache)"),
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing `{line}` in:\n{text}"
        );
    }

    // --disable is honoured on packages too; warnings alone pass.
    let res = pkgbuild(&[
        "lint".as_ref(),
        "--ignore-package-checks".as_ref(),
        "--disable".as_ref(),
        "tempdir".as_ref(),
        main.as_os_str(),
    ]);
    assert_ok(&res);
    let text = stdout(&res);
    assert!(text.contains("[libtool] warning"), "{text}");
    assert!(!text.contains("[tempdir]"), "{text}");
}

/// A package written with the library, shipping `tmp/leftover`, with
/// `embedded` as its `.melange.yaml` when given.
fn debris_package(dir: &Path, name: &str, embedded: Option<&str>) -> PathBuf {
    use pkgbuild::apk::package::{write_package, PackageSpec, SignOptions};
    use pkgbuild::apk::pkginfo::PkgInfo;
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir(root.path().join("tmp")).unwrap();
    std::fs::write(root.path().join("tmp/leftover"), "x").unwrap();
    let spec = PackageSpec {
        root: root.path().to_path_buf(),
        info: PkgInfo {
            name: name.into(),
            version: "1.0-r0".into(),
            arch: "noarch".into(),
            ..Default::default()
        },
        control_extra: embedded
            .map(|y| vec![(".melange.yaml".to_string(), y.as_bytes().to_vec())])
            .unwrap_or_default(),
        ..Default::default()
    };
    write_package(&spec, &SignOptions::default(), dir)
        .unwrap()
        .path
}

#[test]
fn packages_without_a_usable_embedded_recipe_get_every_linter() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let off = "package:\n  name: NAME\n  version: 1.0\n  checks:\n    disabled: [tempdir]\n";
    for (name, embedded) in [
        ("plain", None),
        ("garbled", Some("package: [\n".to_string())),
        // A recipe for another package turns nothing off for this one.
        ("stranger", Some(off.replace("NAME", "someone-else"))),
    ] {
        let pkg = debris_package(d, name, embedded.as_deref());
        let res = pkgbuild(&["lint".as_ref(), pkg.as_os_str()]);
        assert_eq!(res.status.code(), Some(1), "{name}: {}", show(&res));
        assert_eq!(
            stdout(&res),
            format!(
                "{}: [tempdir] required: package writes to a temporary directory (tmp/leftover)\n",
                pkg.display()
            ),
            "{name}"
        );
    }
    // The same package with its own recipe's switch passes.
    let pkg = debris_package(d, "owned", Some(&off.replace("NAME", "owned")));
    let res = pkgbuild(&["lint".as_ref(), pkg.as_os_str()]);
    assert_ok(&res);
    assert_eq!(
        stdout(&res),
        format!(
            "{0}: disabled by the package: tempdir\n{0}: OK\n",
            pkg.display()
        )
    );
}

#[test]
fn lint_sees_device_nodes_and_fifos_that_extraction_skips() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("repo");
    let recipe = write_recipe(
        tmp.path(),
        "fifo",
        "package:\n  name: fifo\n  version: 1.0.0\n  epoch: 0\n  description: f\n  checks:\n    disabled:\n      - dev\npipeline:\n  - runs: mkdir -p ${{targets.destdir}}/dev && mkfifo ${{targets.destdir}}/dev/initctl\n",
    );
    assert_ok(&build(&recipe, &out, &[]));
    let pkg = apk(&out, "fifo-1.0.0-r0.apk");
    // The package turned `dev` off; the audit flag runs it anyway.
    let res = pkgbuild(&[
        "lint".as_ref(),
        "--ignore-package-checks".as_ref(),
        pkg.as_os_str(),
    ]);
    assert_eq!(res.status.code(), Some(1), "{}", show(&res));
    assert!(
        stdout(&res).contains(&format!(
            "{}: [dev] required: package writes to /dev (dev/initctl)",
            pkg.display()
        )),
        "{}",
        show(&res)
    );
}

#[test]
fn lint_takes_packages_by_content_and_reports_clean_ones_ok() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("repo");
    let recipe = write_recipe(
        tmp.path(),
        "clean",
        "package:\n  name: clean\n  version: 1.0.0\n  epoch: 0\n  description: c\npipeline:\n  - runs: mkdir -p ${{targets.destdir}}/usr/share/clean && echo x > ${{targets.destdir}}/usr/share/clean/f\n",
    );
    assert_ok(&build(&recipe, &out, &[]));
    // A package under another name is still recognised by its gzip magic,
    // and recipes and packages mix in one call.
    let renamed = tmp.path().join("clean.bin");
    std::fs::copy(apk(&out, "clean-1.0.0-r0.apk"), &renamed).unwrap();
    let res = pkgbuild(&["lint".as_ref(), recipe.as_os_str(), renamed.as_os_str()]);
    assert_ok(&res);
    assert_eq!(stdout(&res), format!("{}: OK\n", renamed.display()));
}

#[test]
fn lint_exit_codes_recipe_errors_2_unreadable_packages_1() {
    let tmp = tempfile::tempdir().unwrap();
    let bad_recipe = write_recipe(
        tmp.path(),
        "typo",
        "package:\n  name: typo\n  version: 1.0.0\n  epoch: 0\npipline: []\n",
    );
    let garbage = tmp.path().join("garbage.apk");
    std::fs::write(&garbage, b"\x1f\x8bnot really gzip").unwrap();

    let res = pkgbuild(&["lint".as_ref(), garbage.as_os_str()]);
    assert_eq!(res.status.code(), Some(1), "{}", show(&res));
    assert!(
        stdout(&res).starts_with(&format!("{}: error: ", garbage.display())),
        "{}",
        show(&res)
    );

    let res = pkgbuild(&["lint".as_ref(), garbage.as_os_str(), bad_recipe.as_os_str()]);
    assert_eq!(res.status.code(), Some(2), "{}", show(&res));
    assert!(
        String::from_utf8_lossy(&res.stderr).contains("typo.yaml:5:1"),
        "{}",
        show(&res)
    );

    let res = pkgbuild(&["lint", "--disable", "no-such-linter", "x.apk"]);
    assert_eq!(res.status.code(), Some(2), "{}", show(&res));
    assert!(
        String::from_utf8_lossy(&res.stderr).contains("no-such-linter"),
        "{}",
        show(&res)
    );
}

#[test]
fn lint_list_names_every_linter_with_its_level() {
    let res = pkgbuild(&["lint", "--list"]);
    assert_ok(&res);
    let text = stdout(&res);
    let levels: Vec<(&str, &str)> = text
        .lines()
        .map(|l| {
            let mut w = l.split_whitespace();
            (w.next().unwrap(), w.next().unwrap())
        })
        .collect();
    assert!(levels.contains(&("tempdir", "required")), "{text}");
    assert!(levels.contains(&("libtool", "warning")), "{text}");
    assert!(levels.contains(&("worldwrite", "required")), "{text}");
    assert_eq!(levels.len(), pkgbuild::meta::lint::LINTERS.len(), "{text}");
    assert!(levels.contains(&("rpath", "required")), "{text}");
}

#[test]
fn lint_on_packages_sees_the_permission_bits_the_package_carries() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("repo");
    let recipe = write_recipe(
        tmp.path(),
        "perms",
        r#"package:
  name: perms
  version: 1.0.0
  epoch: 0
  description: p
  checks:
    disabled:
      - setuidgid
      - worldwrite
pipeline:
  - runs: |
      mkdir -p "${{targets.destdir}}/usr/bin" "${{targets.destdir}}/usr/share/perms"
      printf '#!/bin/sh\ntrue\n' > "${{targets.destdir}}/usr/bin/su-ish"
      chmod 4755 "${{targets.destdir}}/usr/bin/su-ish"
      echo x > "${{targets.destdir}}/usr/share/perms/open"
      chmod 0666 "${{targets.destdir}}/usr/share/perms/open"
"#,
    );
    assert_ok(&build(&recipe, &out, &[]));
    let pkg = apk(&out, "perms-1.0.0-r0.apk");
    let res = pkgbuild(&[
        "lint".as_ref(),
        "--ignore-package-checks".as_ref(),
        pkg.as_os_str(),
    ]);
    assert_eq!(res.status.code(), Some(1), "{}", show(&res));
    let text = stdout(&res);
    let p = pkg.display();
    for line in [
        format!("{p}: [setuidgid] required: file is setuid (mode 4755) (usr/bin/su-ish)"),
        format!(
            "{p}: [worldwrite] required: world-writable file (mode 0666) (usr/share/perms/open)"
        ),
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing `{line}` in:\n{text}"
        );
    }
}
